/**
 * The style-transfer loss of Gatys, Ecker & Bethge ("Image style transfer using convolutional
 * neural networks", CVPR 2016) on the audited model's own convolutional layers, differentiated
 * in pixel space through the same backward graph as the class-score losses (backward.ts, with a
 * different head):
 *
 *   style layers l ∈ S:  F_l [C_l, M_l] (M_l = H_l·W_l),  G_l = F_l F_lᵀ / M_l  (the Gram matrix)
 *   E_style   = (1/|S|) Σ_l ‖G_l − T_l‖² / ‖T_l‖²        T_l: the Gram matrix of the texture image
 *   E_content = ‖F_c − P‖² / ‖P‖²                        P: the content layer's features of the shape image
 *   loss      = w_style·E_style + w_content·E_content    (per image)
 *
 * Each term is divided by the squared norm of its target (Gatys weight each layer by
 * 1/(4 N_l² M_l²) instead, tuned for VGG-19): these weights are dimensionless, so one setting
 * of w_style / w_content suits any architecture and any layer.
 *
 * The gradients with respect to the features are written by hand in the head (the rules then
 * carry them back to the pixels):  ∂E_l/∂F_l = 4 (G_l − T_l) F_l / (M_l ‖T_l‖²)  (G and T are
 * symmetric),  ∂E_content/∂F_c = 2 (F_c − P) / ‖P‖².
 *
 * Layers (pickFeatureLayers): the outputs of the model's Conv nodes (QLinearConv in an int8
 * graph, through its float shadow), each followed through a BatchNormalization and an activation
 * when those are its only consumers, keeping those with at least 2×2 positions. Style and content
 * layers are chosen by scale as Gatys et al.'s are on VGG-19 (byScale, below); both can be named.
 */
import { readFile } from 'node:fs/promises';
import '../../fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import type { DeviceChoice, LoadedModel, PixelBatch } from '../../types';
import { onnx } from '../onnx';
import { createSession } from '../providers';
import type { InputPlan } from '../introspect';
import { differentiate, IO, vi, type GradientCoverage, type Head } from './backward';
import { Builder } from './builder';
import { GradientUnsupportedError } from './errors';
import { prepareForward, type Forward, type RunMode } from './prepare';
import { probeForward, type Probe } from './probe';
import { DEFAULT_VARIANTS } from './rules';
import { GraphRunner, QUIET } from './runner';

export interface FeatureLayer {
  /** The tensor's name in the prepared graph. */
  name: string;
  /** The op that made it, in the model's terms ("Conv", "QLinearConv", then "+Relu" ...). */
  op: string;
  channels: number;
  height: number;
  width: number;
}

export interface FeatureLayers {
  /** Every candidate, in graph order. */
  candidates: FeatureLayer[];
  style: FeatureLayer[];
  content: FeatureLayer;
}

const FOLLOW = new Set(['BatchNormalization', 'Relu', 'LeakyRelu', 'PRelu', 'Elu', 'Selu', 'Clip', 'HardSwish', 'HardSigmoid', 'Sigmoid', 'Tanh']);
const CONV = new Set(['Conv', 'QLinearConv', 'ConvInteger']);

/**
 * Gatys et al.'s layers on VGG-19 are conv1_1 … conv5_1, the first conv at each scale from the
 * input's down to 1/16 of it, and conv4_2 for content, the second conv at 1/8. By scale, not
 * depth, the same choice carries over to any architecture: the first conv output at each
 * spatial size down to 1/16 of the input side (at most 5; the finest kept when there are more),
 * and for content the second conv output at the first size at or below 1/8 (its first when it
 * has one; the coarsest of the style sizes when nothing is that small).
 */
export function byScale(layers: FeatureLayer[], side: number): { style: FeatureLayer[]; content: FeatureLayer } {
  const scale = (l: FeatureLayer) => Math.min(l.height, l.width);
  const sizes = [...new Set(layers.map(scale))].sort((a, b) => b - a);
  const styleSizes = sizes.filter((s) => s * 16 >= side).slice(0, 5);
  if (!styleSizes.length) styleSizes.push(sizes[0]);
  const style = styleSizes.map((s) => layers.find((l) => scale(l) === s)!);
  const contentSize = sizes.find((s) => s * 8 <= side) ?? styleSizes[styleSizes.length - 1];
  const atSize = layers.filter((l) => scale(l) === contentSize);
  return { style, content: atSize[1] ?? atSize[0] };
}

/** The candidate layers and the default (or named) style and content layers; see the module comment. */
export function pickFeatureLayers(fw: Forward, probe: Probe, names: { style?: string[]; content?: string } = {}): FeatureLayers {
  const nodes = fw.m.graph?.node ?? [];
  const consumers = new Map<string, onnx.INodeProto[]>();
  for (const n of nodes) for (const x of n.input ?? []) if (x) consumers.set(x, [...(consumers.get(x) ?? []), n]);
  const outputs = new Set((fw.m.graph?.output ?? []).map((o) => o.name ?? ''));
  // The last output of each conv (a shadowed QLinearConv is several float nodes with one origin).
  const convOut = new Map<string, { name: string; op: string }>();
  for (const n of nodes) {
    const out0 = n.output?.[0] ?? '';
    const origin = fw.origin.get(out0);
    const op = origin?.op ?? n.opType ?? '';
    if (!CONV.has(op) || fw.prefixOutputs.has(out0)) continue;
    const key = origin ? `o${origin.id}` : `n${out0}`;
    convOut.set(key, { name: out0, op });
  }
  const candidates: FeatureLayer[] = [];
  const seen = new Set<string>();
  for (const c of convOut.values()) {
    let name = c.name;
    let op = c.op;
    for (let hops = 0; hops < 3; hops++) {
      const next = consumers.get(name);
      if (!next || next.length !== 1 || outputs.has(name) || !FOLLOW.has(next[0].opType ?? '') || fw.origin.has(next[0].output?.[0] ?? '')) break;
      name = next[0].output![0];
      op += `+${next[0].opType}`;
    }
    const m = probe.meta.get(name);
    if (!m || m.dtype !== 'float32' || m.d1.length !== 4 || seen.has(name)) continue;
    seen.add(name);
    const [, channels, height, width] = m.d1;
    candidates.push({ name, op, channels, height, width });
  }
  const withPositions = candidates.filter((c) => c.height * c.width >= 4);
  const byName = (n: string, role: string): FeatureLayer => {
    const c = candidates.find((x) => x.name === n);
    if (c) return c;
    const m = probe.meta.get(n);
    if (m && m.dtype === 'float32' && m.d1.length === 4) {
      const [, channels, height, width] = m.d1;
      return { name: n, op: 'named', channels, height, width };
    }
    throw new GradientUnsupportedError(fw.file, [{ op: role, nodes: [n], reason: m ? `'${n}' is not a float [N,C,H,W] tensor` : `no tensor '${n}' in the graph` }], `the ${role} layer`);
  };
  if (!withPositions.length && !(names.style?.length && names.content)) {
    throw new GradientUnsupportedError(
      fw.file,
      [{ op: 'Conv', nodes: [], reason: 'no convolution output with at least 2×2 positions; name the style and content tensors (styleLayers, contentLayer)' }],
      'style transfer needs convolutional feature maps',
    );
  }
  const { style: autoStyle, content: autoContent } = byScale(withPositions, Math.min(fw.plan.height, fw.plan.width));
  const style = names.style?.length ? names.style.map((n) => byName(n, 'style')) : autoStyle;
  const content = names.content ? byName(names.content, 'content') : autoContent;
  return { candidates, style, content };
}

/** Names of the style-loss model's own inputs and outputs. */
export const FIO = {
  gram: (i: number) => `skeptic_gram_${i}`,
  styleTarget: (i: number) => `skeptic_style_target_${i}`,
  content: 'skeptic_content',
  contentTarget: 'skeptic_content_target',
  styleWeight: 'skeptic_style_weight',
  contentWeight: 'skeptic_content_weight',
  styleLoss: 'skeptic_style_loss',
  contentLoss: 'skeptic_content_loss',
} as const;

/** Keeps ‖T‖² away from 0 (an all-zero target: a dead layer on this image). */
const NORM_FLOOR = 1e-8;

function styleHead(layers: FeatureLayers): Head {
  const S = layers.style.length;
  const dims = (l: FeatureLayer, batch: onnx.TensorShapeProto.IDimension) => [batch, { dimValue: l.channels }, { dimValue: l.height }, { dimValue: l.width }];
  return {
    reads: [...new Set([...layers.style.map((l) => l.name), layers.content.name])],
    what: `Gram matrices of ${S} layer${S > 1 ? 's' : ''} (${layers.style.map((l) => `'${l.name}'`).join(', ')}) and the features of '${layers.content.name}'`,
    dependsOn: 'the feature maps',
    build(b) {
      const seeds = new Map<string, string>();
      const seed = (v: string, g: string) => seeds.set(v, seeds.has(v) ? b.op('Add', [seeds.get(v)!, g]) : g);
      const ws = b.op('Mul', [FIO.styleWeight, b.scalar(1 / S)]);
      const styleTerms: string[] = [];
      layers.style.forEach((l, i) => {
        const M = l.height * l.width;
        const f = b.reshape(l.name, [0, l.channels, M]);
        const gram = b.op('Mul', [b.op('MatMul', [f, b.transpose(f, [0, 2, 1])]), b.scalar(1 / M)]);
        b.node('Identity', [gram], [], [FIO.gram(i)]);
        const t = FIO.styleTarget(i);
        const d = b.op('Sub', [gram, t]);
        const z = b.op('Max', [b.reduce('ReduceSum', b.mul(t, t), [1, 2], true), b.scalar(NORM_FLOOR)]);
        styleTerms.push(b.reshape(b.op('Div', [b.reduce('ReduceSum', b.mul(d, d), [1, 2], true), z]), [-1]));
        // ∂(w/S·E_l)/∂F = w/S · 4 (G − T) F / (M ‖T‖²)
        const gf = b.op('Div', [b.mul(b.op('MatMul', [d, f]), b.scalar(4 / M)), z]);
        seed(l.name, b.reshape(b.mul(gf, ws), [0, l.channels, l.height, l.width]));
      });
      const eStyle = b.mul(S > 1 ? b.op('Sum', styleTerms) : styleTerms[0], b.scalar(1 / S));
      b.node('Identity', [eStyle], [], [FIO.styleLoss]);

      const c = layers.content;
      b.node('Identity', [c.name], [], [FIO.content]);
      const dc = b.op('Sub', [c.name, FIO.contentTarget]);
      const zc = b.op('Max', [b.reduce('ReduceSum', b.mul(FIO.contentTarget, FIO.contentTarget), [1, 2, 3], true), b.scalar(NORM_FLOOR)]);
      const eContent = b.reshape(b.op('Div', [b.reduce('ReduceSum', b.mul(dc, dc), [1, 2, 3], true), zc]), [-1]);
      b.node('Identity', [eContent], [], [FIO.contentLoss]);
      seed(c.name, b.op('Div', [b.mul(b.mul(dc, FIO.contentWeight), b.scalar(2)), zc]));

      b.node('Add', [b.mul(eStyle, FIO.styleWeight), b.mul(eContent, FIO.contentWeight)], [], [IO.loss]);
      return seeds;
    },
    inputs: (batch) => [
      ...layers.style.map((l, i) => vi(FIO.styleTarget(i), 1, [batch, { dimValue: l.channels }, { dimValue: l.channels }])),
      vi(FIO.contentTarget, 1, dims(layers.content, batch)),
      vi(FIO.styleWeight, 1, [{ dimValue: 1 }]),
      vi(FIO.contentWeight, 1, [{ dimValue: 1 }]),
    ],
    outputs: (batch) => [vi(IO.loss, 1, [batch]), vi(FIO.styleLoss, 1, [batch]), vi(FIO.contentLoss, 1, [batch])],
    forwardOutputs: (batch) => [
      ...layers.style.map((l, i) => vi(FIO.gram(i), 1, [batch, { dimValue: l.channels }, { dimValue: l.channels }])),
      vi(FIO.content, 1, dims(layers.content, batch)),
    ],
  };
}

/** Per image: the Gram matrix of each style layer and the content layer's features. */
export interface FeatureTargets {
  n: number;
  /** Per style layer, [n, C_l, C_l]. */
  grams: Float32Array[];
  /** [n, C, H, W] of the content layer. */
  content: Float32Array;
}

export interface StyleLossResult {
  /** [n] w_style·E_style + w_content·E_content. */
  loss: Float32Array;
  /** [n] E_style and E_content (unweighted). */
  style: Float32Array;
  content: Float32Array;
  /** [n,C,H,W] d loss / d pixels. */
  grad: Float32Array;
}

export interface StyleLossModel {
  layers: FeatureLayers;
  coverage: GradientCoverage;
  device: 'cpu' | 'webgpu' | 'cuda';
  /** Gram matrices and content features of a pixel batch (forward only). */
  features(batch: PixelBatch): Promise<FeatureTargets>;
  /** The loss of each image i of `batch` against the style targets of `style` image i and the
   *  content targets of `content` image i, and its gradient. */
  lossAndGrad(batch: PixelBatch, style: FeatureTargets, content: FeatureTargets, weights: { style: number; content: number }): Promise<StyleLossResult>;
  dispose(): Promise<void>;
}

export interface StyleLossOptions {
  /** Tensor names of the style layers and of the content layer (default: picked, see above). */
  styleLayers?: string[];
  contentLayer?: string;
  device?: DeviceChoice;
  batchSize?: number;
}

export async function buildStyleLoss(model: LoadedModel, opts: StyleLossOptions = {}): Promise<StyleLossModel> {
  const bytes = await readFile(model.path);
  const D = model.info.channels * model.info.height * model.info.width;
  const fw = prepareForward(model, bytes, opts.batchSize ?? (D <= 4096 ? 32 : D <= 65536 ? 16 : 8));
  const probe = await probeForward(fw);
  const layers = pickFeatureLayers(fw, probe, { style: opts.styleLayers, content: opts.contentLayer });
  const built = differentiate(fw, probe, new Builder(fw.opset), styleHead(layers), DEFAULT_VARIANTS);
  const device = opts.device ?? model.device.used;
  const full = await createSession(built.full, device, model.path);
  const forward = await createSession(built.forward, full.used, model.path);
  return new StyleLoss(model.path, full.session, forward.session, full.used, fw.plan, fw.mode, fw.pixel, layers, built.coverage, model.info);
}

class StyleLoss extends GraphRunner implements StyleLossModel {
  constructor(
    file: string,
    private readonly session: ort.InferenceSession,
    private readonly forward: ort.InferenceSession,
    readonly device: 'cpu' | 'webgpu' | 'cuda',
    plan: InputPlan,
    mode: RunMode,
    pixel: string,
    readonly layers: FeatureLayers,
    readonly coverage: GradientCoverage,
    info: LoadedModel['info'],
  ) {
    super(file, plan, mode, pixel, info);
  }

  private gramSize(i: number): number {
    return this.layers.style[i].channels ** 2;
  }

  private get contentSize(): number {
    const c = this.layers.content;
    return c.channels * c.height * c.width;
  }

  features(batch: PixelBatch): Promise<FeatureTargets> {
    try {
      this.check(batch, 'features');
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serial(async () => {
      const n = batch.n;
      const out: FeatureTargets = { n, grams: this.layers.style.map((_, i) => new Float32Array(n * this.gramSize(i))), content: new Float32Array(n * this.contentSize) };
      for (let first = 0; first < n; first += this.step) {
        const m = Math.min(this.step, n - first);
        const res = await this.forward.run({ [this.pixel]: this.feedPixels(batch.data, first, m) }, QUIET);
        out.grams.forEach((g, i) => g.set((res[FIO.gram(i)].data as Float32Array).subarray(0, m * this.gramSize(i)), first * this.gramSize(i)));
        out.content.set((res[FIO.content].data as Float32Array).subarray(0, m * this.contentSize), first * this.contentSize);
      }
      return out;
    });
  }

  lossAndGrad(batch: PixelBatch, style: FeatureTargets, content: FeatureTargets, weights: { style: number; content: number }): Promise<StyleLossResult> {
    try {
      this.check(batch, 'lossAndGrad');
      if (style.n < batch.n || content.n < batch.n) throw new Error(`lossAndGrad: targets for ${Math.min(style.n, content.n)} images, ${batch.n} to optimise`);
      if (!(weights.style >= 0 && weights.content >= 0)) throw new Error('lossAndGrad: weights must be non-negative numbers');
    } catch (e) {
      return Promise.reject(e);
    }
    return this.serial(async () => {
      const n = batch.n;
      const out: StyleLossResult = { loss: new Float32Array(n), style: new Float32Array(n), content: new Float32Array(n), grad: new Float32Array(n * this.per) };
      const c = this.layers.content;
      const ws = new ort.Tensor('float32', Float32Array.of(weights.style), [1]);
      const wc = new ort.Tensor('float32', Float32Array.of(weights.content), [1]);
      for (let first = 0; first < n; first += this.step) {
        const m = Math.min(this.step, n - first);
        const rows = this.rows(m);
        const feeds: Record<string, ort.Tensor> = {
          [this.pixel]: this.feedPixels(batch.data, first, m),
          [FIO.contentTarget]: new ort.Tensor('float32', this.padRows(content.content, this.contentSize, first, m), [rows, c.channels, c.height, c.width]),
          [FIO.styleWeight]: ws,
          [FIO.contentWeight]: wc,
        };
        this.layers.style.forEach((l, i) => {
          feeds[FIO.styleTarget(i)] = new ort.Tensor('float32', this.padRows(style.grams[i], this.gramSize(i), first, m), [rows, l.channels, l.channels]);
        });
        let res: ort.InferenceSession.ReturnType;
        try {
          res = await this.session.run(feeds, QUIET);
        } catch (e) {
          throw new Error(`${this.file}: the style-transfer graph failed to run (${(e as Error).message.split('\n')[0]})`);
        }
        out.loss.set((res[IO.loss].data as Float32Array).subarray(0, m), first);
        out.style.set((res[FIO.styleLoss].data as Float32Array).subarray(0, m), first);
        out.content.set((res[FIO.contentLoss].data as Float32Array).subarray(0, m), first);
        out.grad.set((res[IO.grad].data as Float32Array).subarray(0, m * this.per), first * this.per);
      }
      return out;
    });
  }

  async dispose(): Promise<void> {
    if (!(await this.drain())) return;
    await this.session.release();
    await this.forward.release();
  }
}
