/**
 * Hendrycks' common corruptions (image/corrupt.ts holds the definitions and the constant table)
 * as views: defocus blur, pixelation, brightness and contrast become graph ops; Gaussian noise
 * becomes a graph op (Box–Muller) fed with the uniforms gaussian() would draw; shot noise (Poisson, whose number of draws
 * depends on the pixel), impulse noise (a tight loop) and JPEG (sharp) are made on the CPU and fed as given
 * views. The draws come from the caller's per-image, per-corruption-and-severity seed (mulberry32) exactly as
 * image/corrupt.ts draws them, so a view is the same image (to float32 rounding) whichever path
 * made it: the report does not change. ImageNet-C's other corruptions and the extras use the ops
 * of views/imagenet-c.ts, with their per-image draws (glass blur's shuffle, fog's plasma, frost's
 * texture crop, elastic's taps) made here; motion blur, snow and spatter are made whole on the CPU.
 */
import { diskKernel, jpeg, severityConstant, shotNoise, SMALL_MAX_SIDE, type CorruptionName, type CorruptOptions } from '../image/corrupt';
import { frostLayer, frostTextures } from '../image/frost';
import { elasticTaps, fogLayer, glassPermutation, motionBlur, snow, zoomFactors } from '../image/imagenet-c';
import { spatter } from '../image/spatter';
import { gaussianUniforms, mulberry32 } from '../random';
import type { PixelImage } from '../types';
import type { ViewInputs, ViewOp } from './plan';

export interface CorruptionViews {
  /** One view per (corruption, severity), in the order given. */
  ops: ViewOp[];
  /** The per-image inputs those views read. */
  inputs(img: PixelImage, seed: (name: CorruptionName, severity: number) => number): Promise<ViewInputs>;
}

type Made = { slot: 'noise' | 'given'; make: (img: PixelImage, seed: number) => Float32Array | Promise<Float32Array> };

/** The CPU part of an ImageNet-C view (views/imagenet-c.ts): per-image planes drawn with the seed, placed at fixed planes. */
type MadeC = {
  name: CorruptionName;
  severity: number;
  at: Partial<Record<'layer' | 'index' | 'weight', number>>;
  make: (img: PixelImage, seed: number) => Promise<Partial<Record<'layer' | 'index' | 'weight', Float32Array | Int32Array>>>;
};

export function corruptionViews(list: Array<[CorruptionName, number]>, height: number, width: number, opts: CorruptOptions = {}): CorruptionViews {
  const ops: ViewOp[] = [];
  const made: Array<{ name: CorruptionName; severity: number } & Made> = [];
  const madeC: MadeC[] = [];
  const planes = { layer: 0, index: 0, weight: 0 };
  const small = Math.min(height, width) <= SMALL_MAX_SIDE;
  let noise = 0;
  let given = 0;
  for (const [name, severity] of list) {
    const c = severityConstant(name, severity, height, width);
    const t = c as number[];
    switch (name) {
      // ImageNet-C's other corruptions: the draws here (in image/imagenet-c.ts's order), the arithmetic in the graph
      case 'glass_blur': {
        const index = planes.index++;
        ops.push({ kind: 'glass', sigma: t[0], index });
        madeC.push({ name, severity, at: { index }, make: async (img, seed) => ({ index: glassPermutation(img.height, img.width, t[1], t[2], mulberry32(seed)) }) });
        break;
      }
      case 'zoom_blur':
        ops.push({ kind: 'zoom', factors: zoomFactors(t[0], t[1]) });
        break;
      case 'fog': {
        const slot = planes.layer++;
        ops.push({ kind: 'fog', strength: t[0], slot });
        madeC.push({ name, severity, at: { layer: slot }, make: async (img, seed) => {
          const p = fogLayer(img.height, img.width, t[1], mulberry32(seed));
          const layer = new Float32Array(img.data.length);
          for (let ch = 0; ch < img.channels; ch++) layer.set(p, ch * p.length);
          return { layer };
        } });
        break;
      }
      case 'frost': {
        const slot = planes.layer++;
        ops.push({ kind: 'frost', a: t[0], b: t[1], slot });
        madeC.push({ name, severity, at: { layer: slot }, make: async (img, seed) => {
          const textures = await frostTextures(img.height, img.width, small, opts.frostDir);
          return { layer: frostLayer(img.channels, img.height, img.width, textures, mulberry32(seed)) };
        } });
        break;
      }
      case 'elastic_transform': {
        // two rounds of bilinear taps: the affine warp, then the displacement field
        const stages = 2;
        const index = planes.index;
        const weight = planes.weight;
        planes.index += 4 * stages;
        planes.weight += 4 * stages;
        ops.push({ kind: 'elastic', index, weight, stages });
        madeC.push({ name, severity, at: { index, weight }, make: async (img, seed) => elasticTaps(img.height, img.width, t, mulberry32(seed)) });
        break;
      }
      case 'motion_blur':
        // CPU-made: the blur's direction is drawn per image (see views/imagenet-c.ts)
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed) => motionBlur(img, t[0], t[1], mulberry32(seed)).data });
        break;
      case 'snow':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed) => snow(img, t, mulberry32(seed)).data });
        break;
      case 'spatter':
        // CPU-made: its liquid layer is drawn per pixel and runs through Canny, a distance transform and
        // histogram equalisation (image/spatter.ts) before it is mixed in
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed) => spatter(img, t, mulberry32(seed)).data });
        break;
      case 'speckle_noise':
        ops.push({ kind: 'speckle', sigma: c as number, slot: noise++ });
        made.push({ name, severity, slot: 'noise', make: (img, seed) => gaussianUniforms(seed, img.data.length) });
        break;
      case 'gaussian_blur':
        ops.push({ kind: 'gaussian', sigma: c as number });
        break;
      case 'saturate':
        ops.push({ kind: 'saturate', scale: t[0], shift: t[1] });
        break;
      case 'gaussian_noise':
        ops.push({ kind: 'noise', sigma: c as number, slot: noise++ });
        made.push({ name, severity, slot: 'noise', make: (img, seed) => gaussianUniforms(seed, img.data.length) });
        break;
      case 'shot_noise':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed) => shotNoise(img, c as number, mulberry32(seed)).data });
        break;
      case 'impulse_noise':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed) => impulse(img.data, c as number, seed) });
        break;
      case 'jpeg_compression':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: async (img) => (await jpeg(img, c as number)).data });
        break;
      case 'defocus_blur': {
        const [radius, alias] = c as [number, number];
        ops.push({ kind: 'blur', kernel: diskKernel(radius, alias) });
        break;
      }
      case 'pixelate':
        ops.push({ kind: 'pixelate', factor: c as number });
        break;
      case 'brightness':
        ops.push({ kind: 'brightness', delta: c as number });
        break;
      case 'contrast':
        ops.push({ kind: 'contrast', factor: c as number });
        break;
    }
  }
  const counts = { ...planes };
  return {
    ops,
    async inputs(img, seed) {
      const plane = img.data.length;
      const out: ViewInputs = {};
      if (noise) out.noise = new Float32Array(noise * plane * 2);
      if (given) out.given = new Float32Array(given * plane);
      const k = { noise: 0, given: 0 };
      const planes = await Promise.all(made.map((m) => m.make(img, seed(m.name, m.severity))));
      made.forEach((m, i) => {
        out[m.slot]!.set(planes[i], k[m.slot]++ * planes[i].length);
      });
      if (madeC.length) {
        const n = img.height * img.width;
        const per = { layer: img.data.length, index: n, weight: n };
        if (counts.layer) out.layer = new Float32Array(counts.layer * per.layer);
        if (counts.index) out.index = new Int32Array(counts.index * per.index);
        if (counts.weight) out.weight = new Float32Array(counts.weight * per.weight);
        const drawn = await Promise.all(madeC.map((m) => m.make(img, seed(m.name, m.severity))));
        madeC.forEach((m, i) => {
          for (const key of ['layer', 'index', 'weight'] as const) {
            if (m.at[key] !== undefined) (out[key] as Float32Array | Int32Array).set(drawn[i][key]!, m.at[key]! * per[key]);
          }
        });
      }
      return out;
    },
  };
}

/**
 * image/corrupt.ts's impulseNoise with mulberry32(seed) inlined: the same draws in the same order
 * (one per value, a second for the salt-or-pepper choice when the first is below `amount`).
 */
function impulse(x: Float32Array, amount: number, seed: number): Float32Array {
  const out = new Float32Array(x.length);
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < x.length; i++) {
    if (next() < amount) out[i] = next() < 0.5 ? 0 : 1;
    else out[i] = x[i] < 0 ? 0 : x[i] > 1 ? 1 : x[i];
  }
  return out;
}
