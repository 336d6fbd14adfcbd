/**
 * Keeping per-image feature records small.
 *
 *  - Projection to at most `k` dimensions (default 256): a vector of D ≤ k values is kept as it is;
 *    otherwise it is multiplied by a seeded Gaussian matrix R (k×D, entries N(0, 1/k)), which
 *    preserves distances and inner products up to a small distortion (Johnson–Lindenstrauss), so
 *    nearest-mean and linear probes behave as on the full features. Above 32,768 dimensions the
 *    matrix would be too large to hold; a seeded signed feature hash (each input dimension adds
 *    ±x to one of the k outputs; Weinberger et al., ICML 2009) is used instead. Both depend only
 *    on (seed, D, purpose), so every image of an audit is projected alike.
 *  - Raw pixels: the model-input image area-averaged down until C·h·w ≤ 4096 (aspect kept), then
 *    projected as above.
 *  - Storage: each projected vector is divided by its largest absolute value and stored as
 *    float16, base64 (k = 256: 684 characters), with the scale beside it.
 */
import { resizeArea } from '../image/corrupt';
import { fromHalf, toHalf } from '../model/output';
import { derivedRng, gaussian } from '../random';
import type { PixelImage } from '../types';

export const DENSE_LIMIT = 32768;
export const PIXEL_LIMIT = 4096;

export interface Projection {
  /** Input and output dimensions. */
  D: number;
  k: number;
  kind: 'identity' | 'gaussian' | 'hash';
  apply(x: ArrayLike<number>, offset?: number): Float32Array;
}

export function projection(D: number, k: number, seed: number, purpose: string): Projection {
  if (D <= k) {
    return {
      D, k: D, kind: 'identity',
      apply: (x, o = 0) => {
        const out = new Float32Array(D);
        for (let j = 0; j < D; j++) out[j] = x[o + j];
        return out;
      },
    };
  }
  const rng = derivedRng(seed, 'prior/projection', purpose, String(D), String(k));
  if (D <= DENSE_LIMIT) {
    const R = new Float32Array(k * D);
    const s = 1 / Math.sqrt(k);
    for (let i = 0; i < R.length; i++) R[i] = gaussian(rng) * s;
    return {
      D, k, kind: 'gaussian',
      apply: (x, o = 0) => {
        const out = new Float32Array(k);
        for (let r = 0; r < k; r++) {
          let acc = 0;
          const row = r * D;
          for (let j = 0; j < D; j++) acc += R[row + j] * x[o + j];
          out[r] = acc;
        }
        return out;
      },
    };
  }
  const bucket = new Uint32Array(D);
  const sign = new Int8Array(D);
  for (let j = 0; j < D; j++) {
    bucket[j] = Math.floor(rng() * k);
    sign[j] = rng() < 0.5 ? -1 : 1;
  }
  return {
    D, k, kind: 'hash',
    apply: (x, o = 0) => {
      const out = new Float32Array(k);
      for (let j = 0; j < D; j++) out[bucket[j]] += sign[j] * x[o + j];
      return out;
    },
  };
}

/** The raw-pixel vector: the image area-averaged until C·h·w ≤ limit. */
export function pixelVector(img: PixelImage, limit = PIXEL_LIMIT): Float32Array {
  const { channels: C, height: H, width: W } = img;
  if (C * H * W <= limit) return img.data.slice(0, C * H * W);
  const f = Math.sqrt(limit / (C * H * W));
  const h = Math.max(1, Math.floor(H * f));
  const w = Math.max(1, Math.floor(W * f));
  return resizeArea(img, h, w).data;
}

/** A stored vector: float16 base64 of x / scale. */
export interface Packed {
  scale: number;
  f16: string;
}

export function pack(x: Float32Array): Packed {
  let m = 0;
  for (const v of x) if (Math.abs(v) > m && Number.isFinite(v)) m = Math.abs(v);
  const scale = m > 0 ? m : 1;
  const norm = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) norm[i] = Number.isFinite(x[i]) ? x[i] / scale : 0;
  const h = new Uint16Array(x.length);
  toHalf(norm, h, x.length);
  return { scale, f16: Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('base64') };
}

export function unpack(p: Packed): Float32Array {
  const buf = Buffer.from(p.f16, 'base64');
  const h = new Uint16Array(buf.byteLength / 2);
  for (let i = 0; i < h.length; i++) h[i] = buf.readUInt16LE(2 * i);
  const out = new Float32Array(h.length);
  fromHalf(h, out, h.length);
  for (let i = 0; i < out.length; i++) out[i] *= p.scale;
  return out;
}
