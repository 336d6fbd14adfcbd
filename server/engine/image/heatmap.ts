/**
 * Heatmaps for evidence maps: per-patch values spread back over the pixels they cover, a colour
 * map, and an overlay on a greyed copy of the image, all in pixel space (CHW float32 in [0,1]).
 */
import type { PixelImage } from '../types';

/** Control points of a perceptually ordered dark-to-bright map (close to matplotlib's inferno). */
const STOPS: Array<[number, number, number]> = [
  [0.0, 0.0, 0.016],
  [0.258, 0.039, 0.408],
  [0.576, 0.149, 0.404],
  [0.867, 0.318, 0.227],
  [0.988, 0.647, 0.039],
  [0.988, 1.0, 0.643],
];

/** The colour of v ∈ [0,1] (clipped), as [r, g, b] in [0,1]; piecewise linear between stops. */
export function colormap(v: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(t));
  const f = t - i;
  const a = STOPS[i];
  const b = STOPS[i + 1];
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

/**
 * Spreads per-patch values (row-major over `tops` × `lefts`, each patch size×size) over an
 * H×W map: each pixel gets the mean of the patches that cover it (0 where none does).
 */
export function spreadPatches(
  values: ArrayLike<number>,
  tops: number[],
  lefts: number[],
  size: number,
  height: number,
  width: number,
): Float32Array {
  const sum = new Float64Array(height * width);
  const count = new Uint32Array(height * width);
  tops.forEach((top, i) => {
    lefts.forEach((left, j) => {
      const v = values[i * lefts.length + j];
      for (let y = top; y < Math.min(height, top + size); y++) {
        for (let x = left; x < Math.min(width, left + size); x++) {
          sum[y * width + x] += v;
          count[y * width + x]++;
        }
      }
    });
  });
  const out = new Float32Array(height * width);
  for (let p = 0; p < out.length; p++) out[p] = count[p] ? sum[p] / count[p] : 0;
  return out;
}

/**
 * An RGB image: the image in grey, blended with the colour-mapped heat (values in [0,1]):
 * (1 − alpha)·grey + alpha·colour.
 */
export function overlay(img: PixelImage, heat: ArrayLike<number>, alpha = 0.55): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const out = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) {
    let grey = 0;
    if (C === 3) grey = 0.299 * img.data[p] + 0.587 * img.data[n + p] + 0.114 * img.data[2 * n + p];
    else grey = img.data[p];
    const col = colormap(heat[p]);
    for (let c = 0; c < 3; c++) out[c * n + p] = (1 - alpha) * grey + alpha * col[c];
  }
  return { data: out, channels: 3, height: H, width: W };
}
