/**
 * CPU threads per ONNX Runtime session. ORT's own default on Linux is half of
 * std::thread::hardware_concurrency(), which assumes two hardware threads per core: right on a
 * hyperthreaded desktop, half the machine on a VM or CI runner without SMT. Measured on the
 * 2-core development VM: the default ran one thread, and two threads made MobileNetV2-int8
 * 1.9× faster (3.3 → 1.7 ms per image) and mnist-8 1.6× faster. So Skeptic asks for the number of
 * physical cores this process may use (Linux: distinct (package, core) pairs in sysfs, capped by
 * os.availableParallelism(), which honours CPU affinity), and leaves ORT's default elsewhere.
 * `--threads N`, skeptic.json "threads" or SKEPTIC_THREADS override it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** Physical cores (Linux sysfs), at most the CPUs this process may run on; undefined when unknown. */
export function physicalCores(root = '/sys/devices/system/cpu', limit = availableParallelism()): number | undefined {
  if (process.platform !== 'linux' && root === '/sys/devices/system/cpu') return undefined;
  try {
    const cores = new Set<string>();
    for (const d of readdirSync(root)) {
      if (!/^cpu\d+$/.test(d)) continue;
      const topo = join(root, d, 'topology');
      try {
        cores.add(`${readFileSync(join(topo, 'physical_package_id'), 'utf8').trim()}/${readFileSync(join(topo, 'core_id'), 'utf8').trim()}`);
      } catch {
        // an offline CPU has no topology
      }
    }
    return cores.size ? Math.max(1, Math.min(cores.size, limit)) : undefined;
  } catch {
    return undefined;
  }
}

function fromEnv(): number | undefined {
  const v = process.env.SKEPTIC_THREADS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

let chosen: number | undefined;
let resolved = false;

/** Threads for new CPU sessions (undefined: ORT's default). */
export function cpuThreads(): number | undefined {
  if (!resolved) {
    chosen = fromEnv() ?? physicalCores();
    resolved = true;
  }
  return chosen;
}

/** Sets the threads for sessions created from now on (undefined: back to the automatic choice). */
export function setCpuThreads(n: number | undefined): void {
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new RangeError(`threads must be a positive integer, not ${n}`);
  chosen = n ?? fromEnv() ?? physicalCores();
  resolved = true;
}
