/**
 * Cue-conflict stimuli by style transfer in the manner of Gatys, Ecker & Bethge (CVPR 2016), on
 * the audited model's own convolutional layers (model/gradient/features.ts has the loss): the
 * stimulus matches the content features of the shape image A at one deep layer and the Gram
 * statistics of the texture image B at several layers. Geirhos et al. (ICLR 2019) made their
 * stimuli by style transfer too (AdaIN, with VGG-19); here the model judges its own statistics,
 * so the texture a stimulus carries is texture as this model sees it.
 *
 * Optimisation, per stimulus (all of a batch at once, independently):
 *  - start: seeded uniform noise in [0.4, 0.6] (opts.init 'noise', as Gatys), or A itself
 *    ('content': faster, but A's own texture partly survives). Noise can leave every feature of
 *    a model dead (a ReLU network trained on dark MNIST digits sees nothing in mid-grey noise):
 *    the gradient is then exactly zero and Adam would never move. Such a stimulus restarts from
 *    A, and the result marks it (dead);
 *  - loss: w_style·E_style + w_content·E_content (features.ts) + w_tv·TV, TV the mean squared
 *    difference of neighbouring pixels (computed here, with its exact gradient: it keeps the
 *    high-frequency noise that small models' Gram matrices do not constrain out of the image);
 *  - Adam (Kingma & Ba 2015; β1 0.9, β2 0.999, ε 1e-8) on the pixels, projected onto [0,1]
 *    after each step, for opts.steps steps of size opts.lr.
 * Deterministic: the noise is seeded per pair and everything else is a fixed computation.
 */
import { throwIfAborted } from '../errors';
import { toBatch } from '../image/ops';
import type { FeatureTargets, StyleLossModel } from '../model/gradient/features';
import type { PixelImage } from '../types';

export interface StyleTransferOptions {
  /** Adam steps (default 300). */
  steps?: number;
  /** Adam step size in pixel units (default 0.02). */
  lr?: number;
  /** Weights of the style, content and total-variation terms (defaults 10, 1, 30). */
  styleWeight?: number;
  contentWeight?: number;
  tvWeight?: number;
  /** Starting image (default 'noise'). */
  init?: 'noise' | 'content';
}

export const STYLE_DEFAULTS: Required<StyleTransferOptions> = { steps: 300, lr: 0.02, styleWeight: 10, contentWeight: 1, tvWeight: 30, init: 'noise' };

export interface StyleTransferResult {
  images: PixelImage[];
  /** Per stimulus: E_style and E_content at the start and at the end (the optimisation's record). */
  styleStart: Float32Array;
  styleEnd: Float32Array;
  contentStart: Float32Array;
  contentEnd: Float32Array;
  /** Per stimulus: whether its noise start had a zero gradient, so it restarted from the shape image. */
  dead: boolean[];
}

/**
 * Adds the gradient of w·TV to `grad` and returns w·TV per image, TV = mean over channels and
 * pixel pairs of (x_right − x)² and (x_below − x)², divided by the pixels per image.
 */
export function addTotalVariation(x: Float32Array, grad: Float32Array, n: number, C: number, H: number, W: number, w: number): Float32Array {
  const out = new Float32Array(n);
  if (!w) return out;
  const per = C * H * W;
  const k = w / (H * W);
  for (let i = 0; i < n; i++) {
    let tv = 0;
    for (let c = 0; c < C; c++) {
      const base = i * per + c * H * W;
      for (let y = 0; y < H; y++) {
        for (let xx = 0; xx < W; xx++) {
          const p = base + y * W + xx;
          if (xx + 1 < W) {
            const d = x[p + 1] - x[p];
            tv += d * d;
            grad[p] -= 2 * k * d;
            grad[p + 1] += 2 * k * d;
          }
          if (y + 1 < H) {
            const d = x[p + W] - x[p];
            tv += d * d;
            grad[p] -= 2 * k * d;
            grad[p + W] += 2 * k * d;
          }
        }
      }
    }
    out[i] = k * tv;
  }
  return out;
}

/** Makes one stimulus per (shape, texture) pair; `rngs[i]` seeds pair i's starting noise. */
export async function styleTransfer(
  loss: StyleLossModel, shapes: PixelImage[], textures: PixelImage[], rngs: Array<() => number>,
  options: StyleTransferOptions = {}, signal?: AbortSignal, onStep?: (step: number, steps: number) => void,
): Promise<StyleTransferResult> {
  const o = { ...STYLE_DEFAULTS, ...options };
  const n = shapes.length;
  if (textures.length !== n || rngs.length !== n) throw new Error(`styleTransfer: ${n} shapes, ${textures.length} textures, ${rngs.length} seeds`);
  const empty: Float32Array = new Float32Array(0);
  if (!n) return { images: [], styleStart: empty, styleEnd: empty, contentStart: empty, contentEnd: empty, dead: [] };
  const { channels: C, height: H, width: W } = shapes[0];
  const style: FeatureTargets = await loss.features(toBatch(textures));
  const x = toBatch(shapes);
  const content: FeatureTargets = await loss.features(x);
  const per = C * H * W;
  if (o.init === 'noise') for (let i = 0; i < n; i++) for (let j = 0; j < per; j++) x.data[i * per + j] = 0.4 + 0.2 * rngs[i]();
  const m = new Float32Array(x.data.length);
  const v = new Float32Array(x.data.length);
  const b1 = 0.9;
  const b2 = 0.999;
  const weights = { style: o.styleWeight, content: o.contentWeight };
  let styleStart: Float32Array = empty;
  let contentStart: Float32Array = empty;
  const dead: boolean[] = new Array(n).fill(false);
  for (let t = 1; t <= o.steps; t++) {
    throwIfAborted(signal);
    let r = await loss.lossAndGrad(x, style, content, weights);
    if (t === 1 && o.init === 'noise') {
      for (let i = 0; i < n; i++) {
        if (!r.grad.subarray(i * per, (i + 1) * per).every((g) => g === 0)) continue;
        x.data.set(shapes[i].data, i * per);
        dead[i] = true;
      }
      if (dead.some(Boolean)) r = await loss.lossAndGrad(x, style, content, weights);
    }
    if (t === 1) {
      styleStart = r.style.slice();
      contentStart = r.content.slice();
    }
    addTotalVariation(x.data, r.grad, n, C, H, W, o.tvWeight);
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    for (let j = 0; j < x.data.length; j++) {
      const g = r.grad[j];
      m[j] = b1 * m[j] + (1 - b1) * g;
      v[j] = b2 * v[j] + (1 - b2) * g * g;
      const next = x.data[j] - (o.lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + 1e-8);
      x.data[j] = next < 0 ? 0 : next > 1 ? 1 : next;
    }
    onStep?.(t, o.steps);
  }
  // The losses of the final image (the last gradient step moved it once more).
  const end = await loss.lossAndGrad(x, style, content, weights);
  const images: PixelImage[] = [];
  for (let i = 0; i < n; i++) images.push({ channels: C, height: H, width: W, data: x.data.slice(i * per, (i + 1) * per) });
  return {
    images, dead,
    styleStart: o.steps > 0 ? styleStart : end.style, styleEnd: end.style,
    contentStart: o.steps > 0 ? contentStart : end.content, contentEnd: end.content,
  };
}
