/**
 * CPU threads per ONNX Runtime session. ORT's own default on Linux is half of
 * std::thread::hardware_concurrency(), which assumes two hardware threads per core: right on a
 * hyperthreaded desktop, half the machine on a VM or CI runner without SMT. Measured on the
 * 2-core development VM: the default ran one thread, and two threads made MobileNetV2-int8
 * 1.9× faster (3.3 → 1.7 ms per image) and mnist-8 1.6× faster. So Skeptic asks for the number of
 * physical cores this process may use (Linux: distinct (package, core) pairs in sysfs, capped by
 * os.availableParallelism(), which honours CPU affinity), and leaves ORT's default elsewhere.
 * `--threads N`, skeptic.json "threads" or SKEPTIC_THREADS override it.
 *
 * The CPUs the process may use at all (cpuBudget) are os.availableParallelism() unless `--cpus N`
 * or SKEPTIC_CPUS=N says fewer: a scheduler that grants a job some of a node's CPUs without
 * pinning it to them (Slurm without task/affinity or cgroup cores, a Kubernetes pod's CPU request)
 * leaves the whole node visible, and the threads, lanes and worker threads sized from it would
 * take CPUs other jobs were given.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** Most CPUs --cpus and SKEPTIC_CPUS may name (a sanity cap, as the threads' MAX_THREADS is). */
export const MAX_CPUS = 1024;

/** The budget setCpuBudget set (undefined: SKEPTIC_CPUS, or none). */
let budget: number | undefined;
/** The session threads chosen, whether they were (cpuThreads resolves them on first use), and
 *  whether a caller named them (setCpuThreads(n)) rather than the automatic choice. */
let chosen: number | undefined;
let resolved = false;
let named = false;

/** A whole number from 1 to `max` in environment variable `name`; undefined when unset or not one. */
function countFromEnv(name: string, max = Infinity): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : undefined;
}

function budgetFromEnv(): number | undefined {
  return countFromEnv('SKEPTIC_CPUS', MAX_CPUS);
}

/** The CPUs this process may use: os.availableParallelism() (CPU affinity, a container's CPU set),
 *  at most what setCpuBudget (--cpus) or else SKEPTIC_CPUS says. */
export function cpuBudget(): number {
  const allowed = availableParallelism();
  return Math.min(allowed, budget ?? budgetFromEnv() ?? allowed);
}

/** Caps the CPUs this process uses from now on (undefined: back to SKEPTIC_CPUS or all it may run
 *  on); the automatic thread count follows it. */
export function setCpuBudget(n: number | undefined): void {
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new RangeError(`cpus must be a positive integer, not ${n}`);
  budget = n;
  if (!named) resolved = false; // the automatic choice is made again, within the new budget
}

/** Physical cores (Linux sysfs), at most the CPUs this process may use (cpuBudget); undefined when unknown. */
export function physicalCores(root = '/sys/devices/system/cpu', limit = cpuBudget()): number | undefined {
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

/** A budget someone set, for a platform whose cores are unknown (ORT's default knows no budget). */
function namedBudget(): number | undefined {
  return (budget ?? budgetFromEnv()) === undefined ? undefined : cpuBudget();
}

/** The threads no caller named: SKEPTIC_THREADS, else the physical cores, else a budget someone set. */
function automaticThreads(): number | undefined {
  return countFromEnv('SKEPTIC_THREADS') ?? physicalCores() ?? namedBudget();
}

/** Threads for new CPU sessions (undefined: ORT's default). */
export function cpuThreads(): number | undefined {
  if (!resolved) {
    chosen = automaticThreads();
    resolved = true;
  }
  return chosen;
}

/** Sets the threads for sessions created from now on (undefined: back to the automatic choice). */
export function setCpuThreads(n: number | undefined): void {
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new RangeError(`threads must be a positive integer, not ${n}`);
  chosen = n ?? automaticThreads();
  named = n !== undefined;
  resolved = true;
}
