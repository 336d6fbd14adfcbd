/**
 * ONNX Runtime's WebGPU provider on a machine without a GPU: Chromium's SwiftShader, a software
 * Vulkan driver that Debian's chromium package ships, through the Vulkan loader (libvulkan1).
 * Slow (a CPU pretending to be a GPU), but the provider, its kernels and ORT's placement of nodes
 * are the ones a real GPU gets, so a test can check which nodes run where and what they compute.
 * The models run in a child process (helpers/webgpu-child.ts), whose ORT log says where each
 * node was placed.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { onnx } from '../../../server/engine/model/onnx';

export const SWIFTSHADER_ICD = process.env.SKEPTIC_VK_ICD ?? '/usr/lib/chromium/vk_swiftshader_icd.json';

let missing: string | null | undefined;
/** Why the software WebGPU cannot run here, or undefined (checked once: the files, then a one-node model on it). */
export function softwareWebgpuMissing(): string | undefined {
  if (missing === undefined) missing = whyMissing() ?? null;
  return missing ?? undefined;
}

function whyMissing(): string | undefined {
  if (process.platform !== 'linux') return 'the software WebGPU (SwiftShader) is set up for Linux only';
  if (!existsSync(SWIFTSHADER_ICD)) return `no SwiftShader Vulkan driver at ${SWIFTSHADER_ICD} (apt-get install -y chromium)`;
  const loader = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'].some((d) => existsSync(join(d, 'libvulkan.so.1')));
  if (!loader) return 'no Vulkan loader (apt-get install -y libvulkan1)';
  // y = −x: whether ONNX Runtime's WebGPU provider starts on it at all
  const neg: onnx.IModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'probe',
      node: [{ opType: 'Neg', input: ['x'], output: ['y'], name: 'neg' }],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } }],
    },
  };
  try {
    runOnWebgpu([{ bytes: onnx.ModelProto.encode(neg).finish() }]);
    return undefined;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

export interface WebgpuModel {
  bytes: Uint8Array;
  /** Run once with these inputs and return this output's values. */
  feeds?: Record<string, ort.Tensor>;
  output?: string;
}

export interface WebgpuRun {
  /** Names of the nodes ORT placed on the CPU provider (fused nodes as "<first node>/<fusion>"). */
  cpuNodes: string[];
  /** Op types per provider (CPUExecutionProvider, WebGpuExecutionProvider), with their counts, after ORT's graph optimisations. */
  ops: Record<string, Record<string, number>>;
  output?: Float32Array;
}

/** A file's bytes as float32 values (a copy: a small file's Buffer is a view into a shared pool). */
function floats(bytes: Buffer): Float32Array {
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Creates (and, with feeds, runs) each model on WebGPU in a child process; throws when the provider cannot start. */
export function runOnWebgpu(models: WebgpuModel[]): WebgpuRun[] {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-webgpu-'));
  try {
    const job = {
      models: models.map((m, i) => {
        const path = join(dir, `m${i}.onnx`);
        writeFileSync(path, m.bytes);
        const feeds = m.feeds && Object.fromEntries(Object.entries(m.feeds).map(([name, t], k) => {
          const file = join(dir, `m${i}-f${k}.bin`);
          const data = t.data as Float32Array | Int32Array;
          writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          return [name, { type: t.type, dims: t.dims, file }];
        }));
        return { path, feeds, output: m.output, out: m.feeds ? join(dir, `m${i}-out.bin`) : undefined };
      }),
    };
    writeFileSync(join(dir, 'job.json'), JSON.stringify(job));
    // The child's stderr goes to a file, not a pipe: ORT writes its log to stderr from C++, and
    // through a pipe the parent drains too slowly (a loaded machine) the rest of a log was lost
    // mid-line, placements and all (4 of 30 runs of MobileNetV2-int8's ~94 KB log, two at a time)
    const logFile = join(dir, 'stderr.log');
    const log = openSync(logFile, 'w');
    let r: ReturnType<typeof spawnSync>;
    try {
      r = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, 'webgpu-child.ts'), join(dir, 'job.json')], {
        stdio: ['ignore', 'ignore', log],
        env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER_ICD, SKEPTIC_ORT_LOG: '0' },
      });
    } finally {
      closeSync(log);
    }
    const stderr = readFileSync(logFile, 'utf8');
    const missing = /@@NO-WEBGPU (.*)/.exec(stderr);
    if (missing) throw new Error(`WebGPU did not start: ${missing[1]}`);
    if (r.status !== 0) throw new Error(`the WebGPU child failed (${r.status ?? r.signal}): ${r.error?.message ?? ''}${stderr.slice(-2000)}`);
    if (!stderr.includes('@@DONE')) throw new Error(`the WebGPU child did not finish: ${stderr.slice(-2000)}`);
    // ORT's verbose log: "Node(s) placed on [<provider>]. Number of nodes: N", then a line
    // "<op type> (<node name>)" per node ("All nodes placed on [...]" lists none)
    const runs = new Map<string, Omit<WebgpuRun, 'output'>>();
    let current: Omit<WebgpuRun, 'output'> = { cpuNodes: [], ops: {} };
    let provider = '';
    for (const line of stderr.split('\n')) {
      const model = /^@@MODEL (.*)/.exec(line);
      if (model) {
        runs.set(model[1], (current = { cpuNodes: [], ops: {} }));
        provider = '';
        continue;
      }
      const placed = /placed on \[(\w+)\]/.exec(line);
      if (placed) {
        provider = placed[1];
        current.ops[provider] ??= {};
        continue;
      }
      const node = /VerifyEachNodeIsAssignedToAnEp\]\s+(\S+) \(([^)]*)\)/.exec(line);
      if (node && provider) {
        current.ops[provider][node[1]] = (current.ops[provider][node[1]] ?? 0) + 1;
        if (provider === 'CPUExecutionProvider') current.cpuNodes.push(node[2]);
      }
    }
    return job.models.map((m) => ({
      ...(runs.get(m.path) ?? { cpuNodes: [], ops: {} }),
      output: m.out ? floats(readFileSync(m.out)) : undefined,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
