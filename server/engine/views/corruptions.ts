/**
 * Hendrycks' common corruptions (image/corrupt.ts holds the definitions and the constant table)
 * as views: defocus blur, pixelation, brightness and contrast become graph ops; Gaussian noise
 * becomes a graph op (Box–Muller) fed with the uniforms gaussian() would draw; shot noise (Poisson, whose number of draws
 * depends on the pixel), impulse noise (a tight loop) and JPEG (sharp) are made on the CPU and fed as given
 * views. The draws come from the caller's per-image, per-corruption-and-severity seed (mulberry32) exactly as
 * image/corrupt.ts draws them, so a view is the same image (to float32 rounding) whichever path
 * made it: the report does not change.
 */
import { diskKernel, jpeg, severityConstant, shotNoise, type CorruptionName } from '../image/corrupt';
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

export function corruptionViews(list: Array<[CorruptionName, number]>, height: number, width: number): CorruptionViews {
  const ops: ViewOp[] = [];
  const made: Array<{ name: CorruptionName; severity: number } & Made> = [];
  let noise = 0;
  let given = 0;
  for (const [name, severity] of list) {
    const c = severityConstant(name, severity, height, width);
    switch (name) {
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
