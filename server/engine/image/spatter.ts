/**
 * Spatter, ImageNet-C's fourth "extra" corruption (bethgelab/imagecorruptions' `spatter`, the same
 * as make_imagenet_c.py's; make_cifar_c.py's constants up to 64 px), with the OpenCV steps it
 * runs written out plainly here so that the result is the reference's given the same liquid layer:
 *
 *   liquid   N(c0, c1²) per pixel, skimage's Gaussian blur σ = c2 (border 'nearest'), values
 *            below c3 set to 0.
 *   water    (c5 = 0, severities 1–3 on ImageNet): the layer to 8 bits (truncated); its Canny
 *            edges (50, 150); the 5×5 chamfer distance to the nearest edge (cv2.DIST_L2, 5),
 *            capped at 20; a 3×3 box blur truncated to 8 bits; histogram equalisation; the
 *            "emboss" kernel [[-2,-1,0],[-1,1,1],[0,1,2]] saturated to 8 bits; a 3×3 box blur
 *            rounded to 8 bits. m = layer8 · that, divided by its maximum, times c4; the image
 *            gets m times pale turquoise (175, 238, 238)/255 added, clipped.
 *   mud      (c5 = 1): m = skimage Gaussian (σ = c4) of the mask layer > c3, values below 0.8 set
 *            to 0; x·(1 − m) + m·(63, 42, 20)/255, clipped.
 * Grey images get the colour's grey (skimage's rgb2gray weights), as imagecorruptions does.
 * One deliberate difference: where no liquid survives the threshold the reference divides 0 by 0
 * and returns NaN; here the image is returned unchanged.
 *
 * The layer is drawn per pixel, so there is no graph version: views/corruptions.ts makes spatter
 * on the CPU and feeds it as a finished ("given") view, like motion blur and snow.
 */
import { fillNormals } from '../random';
import type { PixelImage } from '../types';
import { filterPlane, gaussianWeights, reflect101 } from './imagenet-c';

const clip01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** skimage.filters.gaussian(plane, σ) (scipy's sampled kernel, truncate 4, border 'nearest'), float64. */
export function skimageGaussian(plane: ArrayLike<number>, H: number, W: number, sigma: number): Float64Array {
  const w = gaussianWeights(sigma, 4);
  return filterPlane(plane, H, W, w, w, 'nearest');
}

/**
 * cv2.Canny(src, low, high) on an 8-bit plane: 3×3 Sobel (border replicated), L1 magnitude
 * |dx| + |dy|, non-maximum suppression along the gradient quantised to 0°/45°/90°/135° with
 * OpenCV's fixed-point tan 22.5° test and its tie rules (strict towards one neighbour, ≥ towards
 * the other, except diagonals), magnitudes outside the image 0, then hysteresis over 8-neighbours
 * from the pixels above `high`. Returns 255 on edges, 0 elsewhere.
 */
export function canny(src: ArrayLike<number>, H: number, W: number, low: number, high: number): Uint8Array {
  const lo = Math.floor(low);
  const hi = Math.floor(high);
  const n = H * W;
  const dx = new Int32Array(n);
  const dy = new Int32Array(n);
  const mag = new Int32Array(n);
  for (let y = 0; y < H; y++) {
    const ym = Math.max(y - 1, 0) * W;
    const y0 = y * W;
    const yp = Math.min(y + 1, H - 1) * W;
    for (let x = 0; x < W; x++) {
      const xm = Math.max(x - 1, 0);
      const xp = Math.min(x + 1, W - 1);
      const gx = src[ym + xp] + 2 * src[y0 + xp] + src[yp + xp] - (src[ym + xm] + 2 * src[y0 + xm] + src[yp + xm]);
      const gy = src[yp + xm] + 2 * src[yp + x] + src[yp + xp] - (src[ym + xm] + 2 * src[ym + x] + src[ym + xp]);
      dx[y0 + x] = gx;
      dy[y0 + x] = gy;
      mag[y0 + x] = Math.abs(gx) + Math.abs(gy);
    }
  }
  const at = (y: number, x: number) => (y < 0 || y >= H || x < 0 || x >= W ? 0 : mag[y * W + x]);
  const SHIFT = 15;
  const TG22 = Math.floor(0.4142135623730950488 * (1 << SHIFT) + 0.5);
  // 0: candidate (weak), 1: not an edge, 2: edge
  const map = new Uint8Array(n).fill(1);
  const stack: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      const m = mag[p];
      if (m <= lo) continue;
      const xs = dx[p];
      const ys = dy[p];
      const ax = Math.abs(xs);
      const ay = Math.abs(ys) * (1 << SHIFT);
      const tg22x = ax * TG22;
      let keep: boolean;
      if (ay < tg22x) keep = m > at(y, x - 1) && m >= at(y, x + 1);
      else {
        const tg67x = tg22x + ax * (1 << (SHIFT + 1));
        if (ay > tg67x) keep = m > at(y - 1, x) && m >= at(y + 1, x);
        else {
          const s = (xs ^ ys) < 0 ? -1 : 1;
          keep = m > at(y - 1, x - s) && m > at(y + 1, x + s);
        }
      }
      if (!keep) continue;
      if (m > hi) {
        map[p] = 2;
        stack.push(p);
      } else map[p] = 0;
    }
  }
  while (stack.length) {
    const p = stack.pop()!;
    const y = Math.floor(p / W);
    const x = p - y * W;
    for (let a = -1; a <= 1; a++) for (let b = -1; b <= 1; b++) {
      const yy = y + a;
      const xx = x + b;
      if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
      const q = yy * W + xx;
      if (map[q] === 0) {
        map[q] = 2;
        stack.push(q);
      }
    }
  }
  const out = new Uint8Array(n);
  for (let p = 0; p < n; p++) out[p] = map[p] === 2 ? 255 : 0;
  return out;
}

/**
 * cv2.distanceTransform(src, cv2.DIST_L2, 5): distance from each non-zero pixel to the nearest
 * zero one by OpenCV's 5×5 chamfer (steps 1, 1.4 and 2.1969 for the knight's move, in 16.16
 * fixed point), one forward and one backward pass, nothing outside the image. A plane without
 * zeros gets OpenCV's cap, (2³¹ − 1)/4 · 2⁻¹⁶ ≈ 8192, everywhere. Float32 values.
 */
export function distanceTransform5(src: ArrayLike<number>, H: number, W: number): Float32Array {
  const fix = (v: number) => Math.round(Math.fround(v) * 65536);
  const HV = fix(1);
  const DIAG = fix(1.4);
  const LONG = fix(2.1969);
  const INF = 0x7fffffff >> 2;
  const B = 2;
  const step = W + 2 * B;
  const tmp = new Float64Array((H + 2 * B) * step).fill(INF);
  const at = (y: number, x: number) => (y + B) * step + x + B;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const j = at(y, x);
      if (!src[y * W + x]) {
        tmp[j] = 0;
        continue;
      }
      tmp[j] = Math.min(
        tmp[j - 2 * step - 1] + LONG, tmp[j - 2 * step + 1] + LONG, tmp[j - step - 2] + LONG, tmp[j - step - 1] + DIAG,
        tmp[j - step] + HV, tmp[j - step + 1] + DIAG, tmp[j - step + 2] + LONG, tmp[j - 1] + HV,
      );
    }
  }
  const out = new Float32Array(H * W);
  for (let y = H - 1; y >= 0; y--) {
    for (let x = W - 1; x >= 0; x--) {
      const j = at(y, x);
      let t0 = tmp[j];
      if (t0 > HV) {
        t0 = Math.min(
          t0, tmp[j + 2 * step + 1] + LONG, tmp[j + 2 * step - 1] + LONG, tmp[j + step + 2] + LONG, tmp[j + step + 1] + DIAG,
          tmp[j + step] + HV, tmp[j + step - 1] + DIAG, tmp[j + step - 2] + LONG, tmp[j + 1] + HV,
        );
        tmp[j] = t0;
      }
      out[y * W + x] = Math.min(t0, INF) / 65536;
    }
  }
  return out;
}

/**
 * cv2.equalizeHist on an 8-bit plane: lut[v] = round(cdf'(v) · 255 / (n − count of the lowest
 * level)) with the cdf counted from the level above the lowest (float32 scale, as OpenCV); a
 * constant plane stays as it is.
 */
export function equalizeHist(src: ArrayLike<number>): Uint8Array {
  const hist = new Int32Array(256);
  for (let i = 0; i < src.length; i++) hist[src[i]]++;
  let i = 0;
  while (!hist[i]) i++;
  const out = new Uint8Array(src.length);
  if (hist[i] === src.length) {
    out.fill(i);
    return out;
  }
  const scale = Math.fround(255 / (src.length - hist[i]));
  const lut = new Uint8Array(256);
  let sum = 0;
  for (lut[i++] = 0; i < 256; i++) {
    sum += hist[i];
    lut[i] = Math.min(255, roundEven(Math.fround(sum * scale)));
  }
  for (let p = 0; p < src.length; p++) out[p] = lut[src[p]];
  return out;
}

/** cvRound: nearest, halves to even. */
function roundEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Σ of the 3×3 window around each pixel (border reflect-101), in float64. */
function boxSum3(src: ArrayLike<number>, H: number, W: number): Float64Array {
  const out = new Float64Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let a = -1; a <= 1; a++) {
      const row = reflect101(y + a, H) * W;
      for (let b = -1; b <= 1; b++) s += src[row + reflect101(x + b, W)];
    }
    out[y * W + x] = s;
  }
  return out;
}

/** cv2.blur(src, (3, 3)) on a float32 plane: float32 output (sums in float64, as OpenCV). */
export function blur3Float(src: ArrayLike<number>, H: number, W: number): Float32Array {
  const s = boxSum3(src, H, W);
  return Float32Array.from(s, (v) => v * (1 / 9));
}

/** cv2.blur(src, (3, 3)) on an 8-bit plane: 8-bit output, rounded (a sum of 9 integers / 9 never ties). */
export function blur3Uint8(src: ArrayLike<number>, H: number, W: number): Uint8Array {
  const s = boxSum3(src, H, W);
  return Uint8Array.from(s, (v) => Math.round(v / 9));
}

/** cv2.filter2D(src, cv2.CV_8U, k) with a 3×3 integer kernel: correlation, border reflect-101, saturated to 0..255. */
export function filter2D3Uint8(src: ArrayLike<number>, H: number, W: number, k: readonly number[]): Uint8Array {
  const out = new Uint8Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let a = 0; a < 3; a++) {
      const row = reflect101(y + a - 1, H) * W;
      for (let b = 0; b < 3; b++) s += k[a * 3 + b] * src[row + reflect101(x + b - 1, W)];
    }
    out[y * W + x] = s < 0 ? 0 : s > 255 ? 255 : s;
  }
  return out;
}

const EMBOSS = [-2, -1, 0, -1, 1, 1, 0, 1, 2];

/** The water branch's weight plane from the thresholded liquid layer: layer8 · dist (before the max normalisation). */
export function waterWeight(liquid: ArrayLike<number>, H: number, W: number): Float64Array {
  const n = H * W;
  const layer8 = new Uint8Array(n);
  for (let p = 0; p < n; p++) layer8[p] = Math.trunc(liquid[p] * 255);
  const edges = canny(layer8, H, W, 50, 150);
  const notEdge = Uint8Array.from(edges, (v) => 255 - v);
  const dist = distanceTransform5(notEdge, H, W);
  for (let p = 0; p < n; p++) if (dist[p] > 20) dist[p] = 20;
  const d8 = Uint8Array.from(blur3Float(dist, H, W), (v) => Math.trunc(v));
  const eq = equalizeHist(d8);
  const emb = filter2D3Uint8(eq, H, W, EMBOSS);
  const b = blur3Uint8(emb, H, W);
  const out = new Float64Array(n);
  for (let p = 0; p < n; p++) out[p] = Math.fround(layer8[p] * b[p]);
  return out;
}

/** The liquid layer: N(mean, std²) per pixel from rng, skimage-blurred with σ, values below `threshold` zeroed. */
export function liquidLayer(H: number, W: number, mean: number, std: number, sigma: number, threshold: number, rng: () => number): Float64Array {
  const noise = new Float64Array(H * W);
  fillNormals(rng, noise, mean, std);
  const layer = skimageGaussian(noise, H, W, sigma);
  for (let p = 0; p < layer.length; p++) if (layer[p] < threshold) layer[p] = 0;
  return layer;
}

const WATER = [175 / 255, 238 / 255, 238 / 255];
const MUD = [63 / 255, 42 / 255, 20 / 255];
const greyOf = (c: number[]) => 0.2125 * c[0] + 0.7154 * c[1] + 0.0721 * c[2];

/** Spatter with the constants c = [mean, std, σ, threshold, intensity or mud σ, mud?] (see the header). */
export function spatter(img: PixelImage, c: readonly number[], rng: () => number): PixelImage {
  return spatterFromLayer(img, c, liquidLayer(img.height, img.width, c[0], c[1], c[2], c[3], rng));
}

/** Spatter given its (blurred, thresholded) liquid layer. */
export function spatterFromLayer(img: PixelImage, c: readonly number[], liquid: ArrayLike<number>): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const out = new Float32Array(C * n);
  if (c[5] === 0) {
    const m = waterWeight(liquid, H, W);
    let max = 0;
    for (let p = 0; p < n; p++) max = Math.max(max, m[p]);
    const k = max > 0 ? c[4] / max : 0;
    const colour = C === 3 ? WATER : [greyOf(WATER)];
    for (let ch = 0; ch < C; ch++) for (let p = 0; p < n; p++) out[ch * n + p] = clip01(img.data[ch * n + p] + m[p] * k * colour[ch]);
  } else {
    const mask = new Float64Array(n);
    for (let p = 0; p < n; p++) mask[p] = liquid[p] > c[3] ? 1 : 0;
    const m = skimageGaussian(mask, H, W, c[4]);
    for (let p = 0; p < n; p++) if (m[p] < 0.8) m[p] = 0;
    const colour = C === 3 ? MUD : [greyOf(MUD)];
    for (let ch = 0; ch < C; ch++) for (let p = 0; p < n; p++) out[ch * n + p] = clip01(img.data[ch * n + p] * (1 - m[p]) + m[p] * colour[ch]);
  }
  return { data: out, channels: img.channels, height: H, width: W };
}
