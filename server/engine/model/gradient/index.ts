/**
 * Input gradients of any ONNX image classifier, without a training runtime: Skeptic reads the
 * model's graph, puts the pixel-space preprocessing in front, and writes a second ONNX model whose
 * inputs are the pixel batch [N,C,H,W] in [0,1] and the labels, and whose outputs are the logits
 * [N,K], the per-image loss [N] and d loss_i / d pixels_i [N,C,H,W]. It runs in ONNX Runtime on
 * any execution provider.
 *
 *   const gm = await buildGradientModel(model);
 *   const { logits, loss, grad } = await gm.lossAndGrad(batch, labels, 'ce');   // or 'margin'
 *
 * Losses: cross-entropy, logsumexp(z) − z_y, and the Carlini–Wagner margin, max_{j≠y} z_j − z_y,
 * both on the logits z before a final Softmax/LogSoftmax. An op without a rule throws
 * GradientUnsupportedError naming it. See prepare.ts (forward), rules.ts, backward.ts.
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import type { DeviceChoice, LoadedModel, PixelBatch } from '../../types';
import { createSession } from '../providers';
import { pixelDims } from '../pixels';
import type { InputPlan } from '../introspect';
import { buildGradientGraph, IO, type GradientCoverage } from './backward';
import { prepareForward, type RunMode } from './prepare';
import { probeForward } from './probe';
import { DEFAULT_VARIANTS, type Variants } from './rules';

export { GradientUnsupportedError, type UnsupportedOp } from './errors';
export type { GradientCoverage } from './backward';
export type { Variants as GradientVariants } from './rules';

export type GradientLoss = 'ce' | 'margin';

export interface GradientResult {
  /** [n,K] logits (before a final Softmax/LogSoftmax; for int8 models, the float shadow's). */
  logits: Float32Array;
  /** [n] loss per image. */
  loss: Float32Array;
  /** [n,C,H,W] d loss_i / d pixels_i, in pixel space ([0,1] units). */
  grad: Float32Array;
}

export interface GradientModel {
  lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: GradientLoss): Promise<GradientResult>;
  /** The logits alone, from a forward-only copy of the same graph (cheaper than lossAndGrad). */
  logits(batch: PixelBatch): Promise<Float32Array>;
  coverage: GradientCoverage;
  /** Number of classes. */
  numClasses: number;
  /** The execution provider that runs the gradient graph. */
  device: 'cpu' | 'webgpu' | 'cuda';
  dispose(): Promise<void>;
}

export interface BuildGradientOptions {
  /** Default: the provider the model runs on. */
  device?: DeviceChoice;
  /** Largest batch per session.run for a model with a free batch (default 64 images up to
   *  64×64, 32 up to 147×147, else 16). */
  batchSize?: number;
  /** Alternative formulations, for the benchmark. */
  variants?: Partial<Variants>;
}

const QUIET: ort.InferenceSession.RunOptions = { logSeverityLevel: 4 };

export async function buildGradientModel(model: LoadedModel, opts: BuildGradientOptions = {}): Promise<GradientModel> {
  const bytes = await readFile(model.path);
  // runs: larger for small images (per-run overhead), smaller for large ones (every activation
  // is kept for the backward pass: ~100 MB per 224×224 image in a ResNet-50)
  const D = model.info.channels * model.info.height * model.info.width;
  const fw = prepareForward(model, bytes, opts.batchSize ?? (D <= 4096 ? 64 : D <= 65536 ? 32 : 16));
  const probe = await probeForward(fw);
  const K = model.info.numClasses;
  const built = buildGradientGraph(fw, probe, K, model.info.outputKind, { ...DEFAULT_VARIANTS, ...opts.variants });
  const device = opts.device ?? model.device.used;
  const created = await createSession(built.full, device, model.path);
  return new Gradient(model.path, created.session, created.used, built.forward, fw.plan, fw.mode, fw.pixel, K, built.coverage, model.info);
}

class Gradient implements GradientModel {
  private queue: Promise<unknown> = Promise.resolve();
  private fwd?: Promise<ort.InferenceSession>;
  private disposed = false;
  private readonly per: number;

  constructor(
    private readonly file: string,
    private readonly session: ort.InferenceSession,
    readonly device: 'cpu' | 'webgpu' | 'cuda',
    private readonly forwardBytes: Uint8Array,
    private readonly plan: InputPlan,
    private readonly mode: RunMode,
    private readonly pixel: string,
    readonly numClasses: number,
    readonly coverage: GradientCoverage,
    private readonly info: LoadedModel['info'],
  ) {
    this.per = plan.channels * plan.height * plan.width;
  }

  private get step(): number {
    return this.mode.kind === 'dynamic' ? this.mode.max : this.mode.kind === 'fixed' ? this.mode.size : 1;
  }

  private check(batch: PixelBatch, what: string): void {
    if (this.disposed) throw new Error(`${what}() after dispose()`);
    const { channels, height, width } = this.info;
    if (batch.channels !== channels || batch.height !== height || batch.width !== width) {
      throw new Error(`${what}: got ${batch.channels}×${batch.height}×${batch.width} images; the model takes ${channels}×${height}×${width}`);
    }
    if (batch.data.length < batch.n * this.per) throw new Error(`${what}: data holds ${batch.data.length} values, expected ${batch.n}×${this.per}`);
  }

  /** The pixels of images [first, first+m), padded to the run size. */
  private feedPixels(src: Float32Array, first: number, m: number): ort.Tensor {
    const rows = this.mode.kind === 'fixed' ? this.mode.size : m;
    const per = this.per;
    let data = src.subarray(first * per, (first + m) * per);
    if (rows > m) {
      const padded = new Float32Array(rows * per);
      padded.set(data);
      data = padded;
    }
    return new ort.Tensor('float32', data, pixelDims(this.plan, rows));
  }

  lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: GradientLoss): Promise<GradientResult> {
    try {
      this.check(batch, 'lossAndGrad');
      if (loss !== 'ce' && loss !== 'margin') throw new Error(`lossAndGrad: unknown loss '${String(loss)}' (ce, margin)`);
      if (labels.length < batch.n) throw new Error(`lossAndGrad: ${labels.length} labels for ${batch.n} images`);
      for (let i = 0; i < batch.n; i++) {
        const y = labels[i];
        if (!Number.isInteger(y) || y < 0 || y >= this.numClasses) throw new Error(`lossAndGrad: label ${y} of image ${i} is not a class index in [0, ${this.numClasses})`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const p = this.queue.then(async () => {
      const n = batch.n;
      const K = this.numClasses;
      const per = this.per;
      const out: GradientResult = { logits: new Float32Array(n * K), loss: new Float32Array(n), grad: new Float32Array(n * per) };
      const useCe = new ort.Tensor('bool', Uint8Array.of(loss === 'ce' ? 1 : 0), [1]);
      const step = this.step;
      for (let first = 0; first < n; first += step) {
        const m = Math.min(step, n - first);
        const rows = this.mode.kind === 'fixed' ? this.mode.size : m;
        const lab = new BigInt64Array(rows);
        for (let i = 0; i < m; i++) lab[i] = BigInt(labels[first + i]);
        const feeds = { [this.pixel]: this.feedPixels(batch.data, first, m), [IO.labels]: new ort.Tensor('int64', lab, [rows]), [IO.useCe]: useCe };
        let res: ort.InferenceSession.ReturnType;
        try {
          res = await this.session.run(feeds, QUIET);
        } catch (e) {
          throw new Error(`${this.file}: the gradient graph failed to run (${(e as Error).message.split('\n')[0]})`);
        }
        out.logits.set((res[IO.logits].data as Float32Array).subarray(0, m * K), first * K);
        out.loss.set((res[IO.loss].data as Float32Array).subarray(0, m), first);
        out.grad.set((res[IO.grad].data as Float32Array).subarray(0, m * per), first * per);
      }
      return out;
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  logits(batch: PixelBatch): Promise<Float32Array> {
    try {
      this.check(batch, 'logits');
    } catch (e) {
      return Promise.reject(e);
    }
    const p = this.queue.then(async () => {
      this.fwd ??= createSession(this.forwardBytes, this.device, this.file).then((c) => c.session);
      const session = await this.fwd;
      const n = batch.n;
      const K = this.numClasses;
      const out = new Float32Array(n * K);
      for (let first = 0; first < n; first += this.step) {
        const m = Math.min(this.step, n - first);
        const res = await session.run({ [this.pixel]: this.feedPixels(batch.data, first, m) }, QUIET);
        out.set((res[IO.logits].data as Float32Array).subarray(0, m * K), first * K);
      }
      return out;
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue;
    await this.session.release();
    if (this.fwd) await (await this.fwd).release();
  }
}
