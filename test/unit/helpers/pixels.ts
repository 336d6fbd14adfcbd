/** Small synthetic images and a distance between arrays, for the view tests. */
import assert from 'node:assert/strict';
import type { PixelImage } from '../../../server/engine/types';

/** A C×H×W image of seeded uniform values in [0, 1) (quantised to multiples of 1/quantum when given). */
export function image(C: number, H: number, W: number, seed: number, quantum = 0): PixelImage {
  const data = new Float32Array(C * H * W);
  let a = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    const u = a / 2 ** 32;
    data[i] = quantum ? Math.floor(u * quantum) / quantum : u;
  }
  return { data, channels: C as 1 | 3, height: H, width: W };
}

/** The largest absolute difference between two arrays of the same length. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
