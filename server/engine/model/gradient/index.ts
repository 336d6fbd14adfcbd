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
 * Losses: cross-entropy, logsumexp(z) − z_y, the Carlini–Wagner margin, max_{j≠y} z_j − z_y, and
 * the targeted DLR loss of APGD-T (attacks/dlr.ts; pass a target class per image), all on the
 * logits z before a final Softmax/LogSoftmax. An op without a rule throws
 * GradientUnsupportedError naming it. See prepare.ts (forward), rules.ts, backward.ts.
 */
import { readFile } from 'node:fs/promises';
import '../../fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import type { DeviceChoice, LoadedModel, PixelBatch } from '../../types';
import { createSession } from '../providers';
import type { InputPlan } from '../introspect';
import { buildGradientGraph, IO, type GradientCoverage } from './backward';
import { prepareForward, type RunMode } from './prepare';
import { probeForward } from './probe';
import { DEFAULT_VARIANTS, type Variants } from './rules';
import { GraphRunner, QUIET } from './runner';

export { GradientUnsupportedError, type UnsupportedOp } from './errors';
export type { GradientCoverage } from './backward';
export type { Variants as GradientVariants } from './rules';

/** ce: cross-entropy; margin: max_{j≠y} z_j − z_y; dlr-targeted: the targeted DLR loss of
 *  attacks/dlr.ts (needs a target class per image). */
export type GradientLoss = 'ce' | 'margin' | 'dlr-targeted';

export interface GradientResult {
  /** [n,K] logits (before a final Softmax/LogSoftmax; for int8 models, the float shadow's). */
  logits: Float32Array;
  /** [n] loss per image. */
  loss: Float32Array;
  /** [n,C,H,W] d loss_i / d pixels_i, in pixel space ([0,1] units). */
  grad: Float32Array;
}

export interface GradientModel {
  lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: GradientLoss, targets?: ArrayLike<number>): Promise<GradientResult>;
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

class Gradient extends GraphRunner implements GradientModel {
  private fwd?: Promise<ort.InferenceSession>;

  constructor(
    file: string,
    private readonly session: ort.InferenceSession,
    readonly device: 'cpu' | 'webgpu' | 'cuda',
    private readonly forwardBytes: Uint8Array,
    plan: InputPlan,
    mode: RunMode,
    pixel: string,
    readonly numClasses: number,
    readonly coverage: GradientCoverage,
    info: LoadedModel['info'],
  ) {
    super(file, plan, mode, pixel, info);
  }

  lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: GradientLoss, targets?: ArrayLike<number>): Promise<GradientResult> {
    try {
      this.check(batch, 'lossAndGrad');
      if (loss !== 'ce' && loss !== 'margin' && loss !== 'dlr-targeted') throw new Error(`lossAndGrad: unknown loss '${String(loss)}' (ce, margin, dlr-targeted)`);
      if (labels.length < batch.n) throw new Error(`lossAndGrad: ${labels.length} labels for ${batch.n} images`);
      if (loss === 'dlr-targeted' && (!targets || targets.length < batch.n)) throw new Error(`lossAndGrad: the targeted DLR loss needs a target class for each of the ${batch.n} images`);
      for (let i = 0; i < batch.n; i++) {
        const y = labels[i];
        if (!Number.isInteger(y) || y < 0 || y >= this.numClasses) throw new Error(`lossAndGrad: label ${y} of image ${i} is not a class index in [0, ${this.numClasses})`);
        const t = targets?.[i];
        if (loss === 'dlr-targeted' && (!Number.isInteger(t) || t! < 0 || t! >= this.numClasses)) throw new Error(`lossAndGrad: target ${t} of image ${i} is not a class index in [0, ${this.numClasses})`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serial(async () => {
      const n = batch.n;
      const K = this.numClasses;
      const per = this.per;
      const out: GradientResult = { logits: new Float32Array(n * K), loss: new Float32Array(n), grad: new Float32Array(n * per) };
      const useCe = new ort.Tensor('bool', Uint8Array.of(loss === 'ce' ? 1 : 0), [1]);
      const useDlr = new ort.Tensor('bool', Uint8Array.of(loss === 'dlr-targeted' ? 1 : 0), [1]);
      const step = this.step;
      for (let first = 0; first < n; first += step) {
        const m = Math.min(step, n - first);
        const rows = this.rows(m);
        const lab = new BigInt64Array(rows);
        const tgt = new BigInt64Array(rows);
        for (let i = 0; i < m; i++) {
          lab[i] = BigInt(labels[first + i]);
          if (loss === 'dlr-targeted') tgt[i] = BigInt(targets![first + i]);
        }
        const feeds = {
          [this.pixel]: this.feedPixels(batch.data, first, m),
          [IO.labels]: new ort.Tensor('int64', lab, [rows]),
          [IO.useCe]: useCe,
          [IO.useDlr]: useDlr,
          [IO.targets]: new ort.Tensor('int64', tgt, [rows]),
        };
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
  }

  logits(batch: PixelBatch): Promise<Float32Array> {
    try {
      this.check(batch, 'logits');
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serial(async () => {
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
  }

  async dispose(): Promise<void> {
    if (!(await this.drain())) return;
    await this.session.release();
    if (this.fwd) await (await this.fwd).release();
  }
}

export { buildStyleLoss, pickFeatureLayers, type FeatureLayer, type FeatureLayers, type FeatureTargets, type StyleLossModel, type StyleLossOptions, type StyleLossResult } from './features';
