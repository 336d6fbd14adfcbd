/**
 * Execution providers. `auto` tries CUDA (only when its provider library is installed next to
 * onnxruntime-node's binding), then WebGPU (bundled), then CPU. Creating a session throws when a
 * provider cannot start; each failure is caught, recorded as "<ep>: <reason>", and the next one
 * is tried. A WebGPU failure for want of an adapter is remembered for the process: the first
 * attempt costs ~0.3 s on a machine without a GPU (measured), later ones nothing.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import '../fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import type { DeviceChoice, DeviceInfo } from '../types';
import { SkepticInputError } from '../errors';
import { cpuThreads } from './threads';
import { findVulkan, linuxGpus, noAdapterHint, noGpuReason, softwareOnlyReason } from './vulkan';

export type Provider = DeviceInfo['used'];

/**
 * 'all' for the sessions that run audits (ResNet-50: 51 vs 76 ms per image on 2 cores), but it
 * costs ~1.9 s to create there; 'disabled' (16 ms) for a session that only runs a few probe
 * images before being replaced by a batch-patched copy.
 */
export type OptLevel = 'all' | 'disabled';

export interface CreatedSession {
  session: ort.InferenceSession;
  used: Provider;
  fallbacks: string[];
}

/** Remembered, process-wide: a provider that cannot start on this machine, and why. */
const unavailable = new Map<Provider, string>();

/** Whether onnxruntime-node's CUDA provider library is installed (it is a separate download). */
export function cudaInstalled(): boolean {
  try {
    // The binding lives in bin/napi-v6/<platform>/<arch>/ beside dist/.
    const dist = dirname(require.resolve('onnxruntime-node'));
    const dir = join(dist, '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(join(dir, lib));
  } catch {
    // Cannot tell (e.g. bundled without require.resolve): let the attempt decide.
    return true;
  }
}

/**
 * Session options for every session Skeptic creates; threads.ts says how many CPU threads.
 * `memPattern: false` turns off ORT's memory patterns (views/session.ts: a pattern is planned
 * per input shape on the second run, another large allocation faulted in page by page).
 */
export function sessionOptions(ep: Provider, level: OptLevel = 'all', memPattern = true): ort.InferenceSession.SessionOptions {
  const threads = cpuThreads();
  return {
    ...(threads ? { intraOpNumThreads: threads } : {}),
    ...(memPattern ? {} : { enableMemPattern: false }),
    executionProviders: [ep],
    graphOptimizationLevel: level,
    executionMode: 'sequential',
    // warnings such as "unused initializer" are not the user's business; errors still print
    logSeverityLevel: ortLogLevel(),
    // ORT's intra-op threads spin between kernels by default, taking the cores from the main
    // thread that decodes and makes the next run's views meanwhile (and from anything else on the
    // machine). Measured with bench/audit.ts on 2 cores: the default audit of mnist-8 on 1,000
    // MNIST images 11.5 → 7.2 s wall, CPU 21.0 → 11.3 s; MobileNetV2-int8 on 100 ImageNet images
    // the same wall time at 8% less CPU; the bare loops no slower.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/**
 * What the view graphs (views/graph.ts) may ask of a provider's kernels beyond float32 and int32
 * arithmetic. ONNX Runtime's WebGPU kernels take no float64 (WGSL has no 64-bit floats) and have
 * no Sum (measured on onnxruntime-node 1.30's own library over SwiftShader's software Vulkan);
 * the CPU's and CUDA's take both. A node a provider has no kernel for runs on the CPU, between
 * copies: the view graphs for WebGPU avoid them.
 */
export interface ViewKernels {
  /** float64 elementwise ops, MatMul and reductions */
  float64: boolean;
  /** the n-ary Sum (else a chain of Adds) */
  sum: boolean;
}

export function viewKernels(p: Provider): ViewKernels {
  return p === 'webgpu' ? { float64: false, sum: false } : { float64: true, sum: true };
}

/**
 * ONNX Runtime's own log level for the sessions Skeptic creates: 3 (errors) unless
 * SKEPTIC_ORT_LOG says 0 (verbose: which provider each node runs on, for a GPU audit that is
 * slower than it should be), 1 (info), 2 (warnings, such as nodes left to the CPU) or 4 (fatal).
 */
export function ortLogLevel(): 0 | 1 | 2 | 3 | 4 {
  const v = process.env.SKEPTIC_ORT_LOG;
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 4 ? (n as 0 | 1 | 2 | 3 | 4) : 3;
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // ORT prefixes messages with the source location; keep the part a person can act on
  let line = msg.split('\n')[0];
  // "<src>:<line> <function> <condition> was false. <what happened>": keep what happened
  const i = line.indexOf(' was false. ');
  if (i >= 0) line = line.slice(i + ' was false. '.length);
  line = line.replace(/^\/onnxruntime_src\/\S+\s+/, '');
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

function candidates(device: DeviceChoice): Provider[] {
  switch (device) {
    case 'cpu': return ['cpu'];
    case 'webgpu': return ['webgpu', 'cpu'];
    case 'cuda': return ['cuda', 'cpu'];
    default: return ['cuda', 'webgpu', 'cpu'];
  }
}

/**
 * Op types of quantized graphs that ONNX Runtime's WebGPU provider has no kernels for (measured
 * on onnxruntime-node 1.30's own library over SwiftShader's software Vulkan: MobileNetV2-int8's
 * QLinearConv, QLinearAdd, QLinearMatMul, QLinearGlobalAveragePool and QuantizeLinear all land
 * on the CPU; views-webgpu.test.ts checks it). A model made of them would run its heavy nodes on
 * the CPU anyway, copying tensors to and from the GPU around each.
 */
export function isWebgpuMissingOp(op: string): boolean {
  return op.startsWith('QLinear') || ['QuantizeLinear', 'DynamicQuantizeLinear', 'ConvInteger', 'MatMulInteger', 'MatMulIntegerToFloat', 'QGemm', 'DynamicQuantizeMatMul'].includes(op);
}

/** Why `auto` should not pick WebGPU for a model with these op counts (undefined: nothing against it). */
export function webgpuMisfit(opHistogram: Record<string, number>): string | undefined {
  const missing = Object.entries(opHistogram).filter(([op]) => isWebgpuMissingOp(op)).sort((a, b) => b[1] - a[1]);
  if (!missing.length) return undefined;
  return `the model's quantized nodes (${missing.map(([op, n]) => `${n} ${op}`).join(', ')}) have no WebGPU kernels in ONNX Runtime: they would run on the CPU, with copies to and from the GPU around each`;
}

/**
 * Creates a session on the first provider of `device`'s list that starts. `avoid`: providers
 * `auto` passes over for this model, and why (asked for by name, they are tried).
 */
export async function createSession(bytes: Uint8Array, device: DeviceChoice, file: string, level: OptLevel = 'all', memPattern = true, avoid: Partial<Record<Provider, string>> = {}): Promise<CreatedSession> {
  const fallbacks: string[] = [];
  for (const ep of candidates(device)) {
    if (ep === 'cpu') {
      return { session: await createOn(bytes, 'cpu', file, level, memPattern), used: 'cpu', fallbacks };
    }
    const against = avoid[ep];
    if (device === 'auto' && against) {
      fallbacks.push(`${ep}: ${against}; ask for --device ${ep} to try anyway`);
      continue;
    }
    const known = unavailable.get(ep);
    if (known) {
      fallbacks.push(`${ep}: ${known}`);
      continue;
    }
    // What stops a provider before any attempt, remembered for the process. CUDA: its library is
    // not installed. WebGPU, for `auto` on Linux: Vulkan would find only a software driver
    // (lavapipe, SwiftShader), or no device node is a GPU's (a VM's virtual display is none); the
    // attempt would fail, or start and run the audit on the CPU many times slower than the CPU
    // provider, and Dawn prints its Vulkan complaints straight to stderr, where JavaScript cannot
    // hush them.
    const obstacle = ep === 'cuda'
      ? (cudaInstalled() ? undefined : 'provider library not installed (install onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12)')
      : device === 'auto' && process.platform === 'linux' ? (softwareOnlyReason(findVulkan()) ?? noGpuReason(linuxGpus())) : undefined;
    if (obstacle) {
      unavailable.set(ep, obstacle);
      fallbacks.push(`${ep}: ${obstacle}`);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(bytes, sessionOptions(ep, level, memPattern));
      return { session, used: ep, fallbacks };
    } catch (e) {
      let why = firstLine(e);
      // ORT says only "No supported adapters"; on Linux, say what the Vulkan setup lacks (vulkan.ts)
      if (ep === 'webgpu' && process.platform === 'linux' && /adapter/i.test(why)) why = `${why}; ${noAdapterHint(findVulkan())}`;
      // No adapter / no library: the machine, not this model. Do not pay for it again.
      if (/adapter|shared library|load library|cannot open|not found|not available/i.test(why)) unavailable.set(ep, why);
      fallbacks.push(`${ep}: ${why}`);
    }
  }
  throw new Error('unreachable: cpu is always a candidate');
}

/** Creates a session on one provider; a failure is the model's fault (SkepticInputError). */
export async function createOn(bytes: Uint8Array, ep: Provider, file: string, level: OptLevel = 'all', memPattern = true): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, sessionOptions(ep, level, memPattern));
  } catch (e) {
    throw new SkepticInputError(`${file}: ONNX Runtime cannot load the model (${firstLine(e)})`, file);
  }
}
