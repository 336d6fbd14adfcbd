/**
 * Common corruptions (Hendrycks & Dietterich, ICLR 2019, "Benchmarking neural network robustness
 * to common corruptions and perturbations"): ImageNet-C's 15 and three of its 4 "extra" ones at
 * severities 1–5, on pixel-space images (planar CHW float32 in [0,1]). The first eight are
 * defined below, the others in image/imagenet-c.ts and image/frost.ts.
 *
 * Constants per severity are Hendrycks' own, from the two scripts that made the benchmarks
 * (hendrycks/robustness, ImageNet-C/create_c/make_imagenet_c.py and make_cifar_c.py):
 *   - inputs whose short side is at most SMALL_MAX_SIDE (64) px, e.g. MNIST 28×28, CIFAR 32×32,
 *     Tiny ImageNet 64×64, use CIFAR-10-C's table: Hendrycks made it milder for small images;
 *   - larger inputs use ImageNet-C's table (made at 224×224); the defocus disk radius, the one
 *     constant in pixels that scales with the image, is multiplied by side/224, so the blur covers
 *     the same fraction of the picture at any resolution.
 * The table below is the whole specification; `severityConstant` reads it.
 *
 * Definitions (x in [0,1], results clipped to [0,1]):
 *   gaussian_noise  x + N(0, c²) per value
 *   shot_noise      Poisson(x·c) / c per value (Poisson sampled exactly: inversion below 10,
 *                   Hörmann's PTRS transformed rejection above, as numpy does)
 *   impulse_noise   each value independently, with probability c, becomes 0 or 1 (equally
 *                   likely): scikit-image's random_noise(mode='s&p', amount=c)
 *   defocus_blur    correlation with Hendrycks' disk(radius, alias_blur): the pixel centres
 *                   within `radius` of the centre, normalised, then smoothed by a Gaussian of
 *                   σ = alias_blur over a 3×3 (radius ≤ 8) or 5×5 window on the reference's
 *                   grid (see diskKernel); borders reflect (OpenCV's BORDER_REFLECT_101,
 *                   filter2D's default)
 *   jpeg_compression encode with sharp (libjpeg, 4:2:0 chroma) at quality c, decode; values are
 *                   first rounded to 8 bits, as any JPEG writer does. One-channel images, and
 *                   colour ones up to 224×224, take image/jpeg.ts's round trip instead: libjpeg's
 *                   integer arithmetic without the file, the same values as sharp's
 *   pixelate        Pillow's BOX resize down to int(side·c), Pillow's NEAREST back up (Pillow's
 *                   weights, without its 8-bit rounding)
 *   brightness      HSV value + c, clipped (hue and saturation kept): every channel of a pixel is
 *                   scaled by V'/V; a black pixel becomes grey c. For grey images: x + c, clipped
 *   contrast        (x − m)·c + m, with m the per-channel mean of the image
 * Randomness comes only from the `rng` argument (seeded by the caller, per image).
 */
import { loadSharp } from './sharp';
import { gaussian } from '../random';
import type { PixelImage } from '../types';
import { toBytes } from './files';
import { nearestIndex, resampleMatrix } from './resample';
import { frostFromLayer, frostLayer, frostTextures } from './frost';
import { COLOUR_MIN_SIDE, jpegBlocks, jpegFromBlocksPlanar, type JpegBlocks } from './jpeg';
import * as C from './imagenet-c';
import { reflect101 } from './imagenet-c';
import { spatter } from './spatter';

export { reflect101 };

export const CORRUPTIONS = [
  'gaussian_noise',
  'shot_noise',
  'impulse_noise',
  'defocus_blur',
  'jpeg_compression',
  'pixelate',
  'brightness',
  'contrast',
  // ImageNet-C's other seven (image/imagenet-c.ts, image/frost.ts)
  'glass_blur',
  'motion_blur',
  'zoom_blur',
  'snow',
  'frost',
  'fog',
  'elastic_transform',
] as const;
/** ImageNet-C's "extra" corruptions (held out from the 15 in the paper): opt-in. Spatter: image/spatter.ts. */
export const EXTRA_CORRUPTIONS = ['speckle_noise', 'gaussian_blur', 'spatter', 'saturate'] as const;
export type CorruptionName = (typeof CORRUPTIONS)[number] | (typeof EXTRA_CORRUPTIONS)[number];

/** Inputs whose short side is at most this use CIFAR-10-C's constants, larger ones ImageNet-C's. */
export const SMALL_MAX_SIDE = 64;

type Table = Record<CorruptionName, ReadonlyArray<number | readonly number[]>>;

/**
 * ImageNet-C (224×224). defocus_blur: [radius, alias_blur]; glass_blur: [σ, max_delta,
 * iterations]; motion_blur: [radius, σ]; zoom_blur: [step, count] of numpy's arange(1, stop,
 * step) (the zoom factors 1 + i·step); snow: [mean, std, zoom, threshold, blur radius, blur σ,
 * mix]; frost: [image weight, texture weight]; fog: [strength, wibble decay];
 * elastic_transform: [alpha, σ, affine] of Hendrycks' affine + elastic recipe in units of
 * IMSIZE (make_imagenet_c.py's 244 at 224 px, scaled with the side; make_cifar_c.py's side):
 * AlexNet's errors, mCE's baseline, were measured on this version, not on imagecorruptions'
 * rewritten one;
 * spatter: [mean, std, σ, threshold, intensity (water) or mud σ, 0 water / 1 mud];
 * saturate: [scale, shift].
 */
export const IMAGENET_C: Table = {
  gaussian_noise: [0.08, 0.12, 0.18, 0.26, 0.38],
  shot_noise: [60, 25, 12, 5, 3],
  impulse_noise: [0.03, 0.06, 0.09, 0.17, 0.27],
  defocus_blur: [[3, 0.1], [4, 0.5], [6, 0.5], [8, 0.5], [10, 0.5]],
  jpeg_compression: [25, 18, 15, 10, 7],
  pixelate: [0.6, 0.5, 0.4, 0.3, 0.25],
  brightness: [0.1, 0.2, 0.3, 0.4, 0.5],
  contrast: [0.4, 0.3, 0.2, 0.1, 0.05],
  glass_blur: [[0.7, 1, 2], [0.9, 2, 1], [1, 2, 3], [1.1, 3, 2], [1.5, 4, 2]],
  motion_blur: [[10, 3], [15, 5], [15, 8], [15, 12], [20, 15]],
  zoom_blur: [[0.01, 12], [0.01, 16], [0.02, 11], [0.02, 13], [0.03, 11]],
  snow: [[0.1, 0.3, 3, 0.5, 10, 4, 0.8], [0.2, 0.3, 2, 0.5, 12, 4, 0.7], [0.55, 0.3, 4, 0.9, 12, 8, 0.7], [0.55, 0.3, 4.5, 0.85, 12, 8, 0.65], [0.55, 0.3, 2.5, 0.85, 12, 12, 0.55]],
  frost: [[1, 0.4], [0.8, 0.6], [0.7, 0.7], [0.65, 0.7], [0.6, 0.75]],
  fog: [[1.5, 2], [2, 2], [2.5, 1.7], [2.5, 1.5], [3, 1.4]],
  elastic_transform: [[2, 0.7, 0.1], [2, 0.08, 0.2], [0.05, 0.01, 0.02], [0.07, 0.01, 0.02], [0.12, 0.01, 0.02]],
  speckle_noise: [0.15, 0.2, 0.35, 0.45, 0.6],
  gaussian_blur: [1, 2, 3, 4, 6],
  spatter: [[0.65, 0.3, 4, 0.69, 0.6, 0], [0.65, 0.3, 3, 0.68, 0.6, 0], [0.65, 0.3, 2, 0.68, 0.5, 0], [0.65, 0.3, 1, 0.65, 1.5, 1], [0.67, 0.4, 1, 0.65, 1.5, 1]],
  saturate: [[0.3, 0], [0.1, 0], [2, 0], [5, 0.1], [20, 0.2]],
};

/** CIFAR-10-C (32×32), from make_cifar_c.py (its Wand motion blur's radius and σ go to the numpy one). */
export const CIFAR_C: Table = {
  gaussian_noise: [0.04, 0.06, 0.08, 0.09, 0.1],
  shot_noise: [500, 250, 100, 75, 50],
  impulse_noise: [0.01, 0.02, 0.03, 0.05, 0.07],
  defocus_blur: [[0.3, 0.4], [0.4, 0.5], [0.5, 0.6], [1, 0.2], [1.5, 0.1]],
  jpeg_compression: [80, 65, 58, 50, 40],
  pixelate: [0.95, 0.9, 0.85, 0.75, 0.65],
  brightness: [0.05, 0.1, 0.15, 0.2, 0.3],
  contrast: [0.75, 0.5, 0.4, 0.3, 0.15],
  glass_blur: [[0.05, 1, 1], [0.25, 1, 1], [0.4, 1, 1], [0.25, 1, 2], [0.4, 1, 2]],
  motion_blur: [[6, 1], [6, 1.5], [6, 2], [8, 2], [9, 2.5]],
  zoom_blur: [[0.01, 7], [0.01, 12], [0.01, 16], [0.01, 21], [0.01, 26]],
  snow: [[0.1, 0.2, 1, 0.6, 8, 3, 0.95], [0.1, 0.2, 1, 0.5, 10, 4, 0.9], [0.15, 0.3, 1.75, 0.55, 10, 4, 0.9], [0.25, 0.3, 2.25, 0.6, 12, 6, 0.85], [0.3, 0.3, 1.25, 0.65, 14, 12, 0.8]],
  frost: [[1, 0.2], [1, 0.3], [0.9, 0.4], [0.85, 0.4], [0.75, 0.45]],
  fog: [[0.2, 3], [0.5, 3], [0.75, 2.5], [1, 2], [1.5, 1.75]],
  // make_cifar_c.py's [alpha, σ, affine] over IMSIZE (here: times the image's side)
  elastic_transform: [[0, 0, 0.08], [0.05, 0.2, 0.07], [0.08, 0.06, 0.06], [0.1, 0.04, 0.05], [0.1, 0.03, 0.03]],
  speckle_noise: [0.06, 0.1, 0.12, 0.16, 0.2],
  gaussian_blur: [0.4, 0.6, 0.7, 0.8, 1],
  spatter: [[0.62, 0.1, 0.7, 0.7, 0.5, 0], [0.65, 0.1, 0.8, 0.7, 0.5, 0], [0.65, 0.3, 1, 0.69, 0.5, 0], [0.65, 0.1, 0.7, 0.69, 0.6, 1], [0.65, 0.1, 0.5, 0.68, 0.6, 1]],
  saturate: [[0.3, 0], [0.1, 0], [1.5, 0], [2, 0.1], [2.5, 0.2]],
};

export function isCorruption(name: string): name is CorruptionName {
  return (CORRUPTIONS as readonly string[]).includes(name) || (EXTRA_CORRUPTIONS as readonly string[]).includes(name);
}

/**
 * The constant of a corruption at a severity (1–5) for an image of this size: a number, or the
 * table's tuple ([radius, alias_blur] for defocus_blur, radius already scaled to the image; the
 * other corruptions' constants are used as the tables give them, as imagecorruptions does).
 */
export function severityConstant(name: CorruptionName, severity: number, height: number, width: number): number | number[] {
  if (!Number.isInteger(severity) || severity < 1 || severity > 5) throw new RangeError(`severity must be 1..5, got ${severity}`);
  const side = Math.min(height, width);
  const small = side <= SMALL_MAX_SIDE;
  const c = (small ? CIFAR_C : IMAGENET_C)[name][severity - 1];
  if (typeof c === 'number') return c;
  // elastic: to pixels (IMSIZE = 244 at 224 px, "244 should have been 224" in the reference)
  if (name === 'elastic_transform') return c.map((v) => v * (small ? side : (244 * side) / 224));
  if (name !== 'defocus_blur') return [...c];
  return [small ? c[0] : (c[0] * side) / 224, c[1]];
}

/** Options of corrupt(): where frost's textures come from (default: the procedural ones). */
export interface CorruptOptions {
  frostDir?: string;
}

/** Applies a corruption at a severity, with the table's constant for the image's size. */
export async function corrupt(img: PixelImage, name: CorruptionName, severity: number, rng: () => number, opts: CorruptOptions = {}): Promise<PixelImage> {
  const c = severityConstant(name, severity, img.height, img.width);
  const t = c as number[];
  switch (name) {
    case 'glass_blur':
      return C.glassBlur(img, t[0], t[1], t[2], rng);
    case 'motion_blur':
      return C.motionBlur(img, t[0], t[1], rng);
    case 'zoom_blur':
      return C.zoomBlur(img, C.zoomFactors(t[0], t[1]));
    case 'snow':
      return C.snow(img, t, rng);
    case 'frost': {
      const small = Math.min(img.height, img.width) <= SMALL_MAX_SIDE;
      const textures = await frostTextures(img.height, img.width, small, opts.frostDir);
      return frostFromLayer(img, t[0], t[1], frostLayer(img.channels, img.height, img.width, textures, rng));
    }
    case 'fog':
      return C.fog(img, t[0], t[1], rng);
    case 'elastic_transform':
      return C.elastic(img, t, rng);
    case 'speckle_noise':
      return C.speckleNoise(img, c as number, rng);
    case 'gaussian_blur':
      return C.gaussianBlur(img, c as number);
    case 'spatter':
      return spatter(img, t, rng);
    case 'saturate':
      return C.saturate(img, t[0], t[1]);
    case 'gaussian_noise':
      return gaussianNoise(img, c as number, rng);
    case 'shot_noise':
      return shotNoise(img, c as number, rng);
    case 'impulse_noise':
      return impulseNoise(img, c as number, rng);
    case 'defocus_blur': {
      const [radius, alias] = c as [number, number];
      return defocusBlur(img, radius, alias);
    }
    case 'jpeg_compression':
      return jpeg(img, c as number);
    case 'pixelate':
      return pixelate(img, c as number);
    case 'brightness':
      return brightness(img, c as number);
    case 'contrast':
      return contrast(img, c as number);
  }
}

const clip01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

function like(img: PixelImage, data: Float32Array): PixelImage {
  return { data, channels: img.channels, height: img.height, width: img.width };
}

/** x + N(0, sigma²) per value, clipped. */
export function gaussianNoise(img: PixelImage, sigma: number, rng: () => number): PixelImage {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clip01(img.data[i] + sigma * gaussian(rng));
  return like(img, out);
}

/** Poisson(x·rate)/rate per value, clipped: photon noise with `rate` photons at full intensity. */
export function shotNoise(img: PixelImage, rate: number, rng: () => number): PixelImage {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clip01(poisson(img.data[i] * rate, rng) / rate);
  return like(img, out);
}

/** Salt and pepper: each value, with probability `amount`, becomes 0 or 1 (equally likely). */
export function impulseNoise(img: PixelImage, amount: number, rng: () => number): PixelImage {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) {
    if (rng() < amount) out[i] = rng() < 0.5 ? 0 : 1;
    else out[i] = clip01(img.data[i]);
  }
  return like(img, out);
}

/** HSV value + delta, clipped; hue and saturation kept. */
export function brightness(img: PixelImage, delta: number): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const out = new Float32Array(img.data.length);
  for (let p = 0; p < n; p++) {
    let v = 0;
    for (let c = 0; c < C; c++) v = Math.max(v, clip01(img.data[c * n + p]));
    const v2 = clip01(v + delta);
    for (let c = 0; c < C; c++) out[c * n + p] = v > 0 ? clip01((clip01(img.data[c * n + p]) * v2) / v) : v2;
  }
  return like(img, out);
}

/** (x − m)·factor + m per channel, m the channel's mean; clipped. */
export function contrast(img: PixelImage, factor: number): PixelImage {
  const n = img.height * img.width;
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    let s = 0;
    for (let p = 0; p < n; p++) s += img.data[c * n + p];
    const m = s / n;
    for (let p = 0; p < n; p++) out[c * n + p] = clip01((img.data[c * n + p] - m) * factor + m);
  }
  return like(img, out);
}

/**
 * Hendrycks' disk(radius, alias_blur) as a kernel, row-major: on the grid of integer offsets
 * −8…8 (radius ≤ 8) or −r…r (r = ⌊radius⌋, larger radii), the offsets (x, y) with
 * x² + y² ≤ radius², normalised, then smoothed as cv2.GaussianBlur does it: a k×k Gaussian of
 * σ = alias_blur (k = 3 for radius ≤ 8, else 5; weights exp(−d²/2σ²), normalised, as
 * getGaussianKernel), borders of the grid reflected (BORDER_REFLECT_101). Not renormalised: where
 * the disk touches the grid's edge (radius 8 and above) the reflection adds mass, and the
 * reference's kernel sums to a little more than 1 (1.013 at radius 8); so does this one. All-zero
 * outer rows and columns are trimmed (the same correlation, a smaller kernel). alias_blur 0 means
 * no smoothing. The grid of a non-integer radius above 8 (Skeptic scales the radius with the
 * image) is −⌊radius⌋…⌊radius⌋, centred, where numpy's arange would not be.
 */
export function diskKernel(radius: number, aliasBlur: number): { size: number; weights: Float64Array } {
  const k = radius <= 8 ? 3 : 5;
  const g = (k - 1) / 2;
  const R = radius <= 8 ? 8 : Math.floor(radius);
  const N = 2 * R + 1;
  const disk = new Float64Array(N * N);
  let count = 0;
  for (let y = -R; y <= R; y++) {
    for (let x = -R; x <= R; x++) {
      if (x * x + y * y <= radius * radius) {
        disk[(y + R) * N + (x + R)] = 1;
        count++;
      }
    }
  }
  for (let i = 0; i < disk.length; i++) disk[i] /= count;
  const gauss = new Float64Array(k);
  let gs = 0;
  for (let i = 0; i < k; i++) {
    gauss[i] = aliasBlur > 0 ? Math.exp(-((i - g) ** 2) / (2 * aliasBlur * aliasBlur)) : i === g ? 1 : 0;
    gs += gauss[i];
  }
  for (let i = 0; i < k; i++) gauss[i] /= gs;
  // separable smoothing, the grid's borders reflected (rows, then columns)
  const tmp = new Float64Array(N * N);
  for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += gauss[i] * disk[y * N + reflect101(x + i - g, N)];
    tmp[y * N + x] = s;
  }
  const full = new Float64Array(N * N);
  for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += gauss[i] * tmp[reflect101(y + i - g, N) * N + x];
    full[y * N + x] = s;
  }
  // trim all-zero outer rings (the kernel is symmetric)
  let h = R;
  const ringZero = (h: number) => {
    for (let t = -h; t <= h; t++) {
      for (const [y, x] of [[-h, t], [h, t], [t, -h], [t, h]]) if (full[(y + R) * N + (x + R)] !== 0) return false;
    }
    return true;
  };
  while (h > 0 && ringZero(h)) h--;
  const size = 2 * h + 1;
  const weights = new Float64Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) weights[y * size + x] = full[(y - h + R) * N + (x - h + R)];
  return { size, weights };
}

/** Defocus blur: correlation with diskKernel(radius, aliasBlur), borders reflected; clipped. */
export function defocusBlur(img: PixelImage, radius: number, aliasBlur: number): PixelImage {
  const { size, weights } = diskKernel(radius, aliasBlur);
  const h = (size - 1) / 2;
  const { channels: C, height: H, width: W } = img;
  const PW = W + 2 * h;
  const PH = H + 2 * h;
  // Only the non-zero taps (a disk is about π/4 of its square), as offsets into the padded plane.
  const offs: number[] = [];
  const wts: number[] = [];
  for (let dy = 0; dy < size; dy++) {
    for (let dx = 0; dx < size; dx++) {
      const w = weights[dy * size + dx];
      if (w > 0) {
        offs.push(dy * PW + dx);
        wts.push(w);
      }
    }
  }
  const off = Int32Array.from(offs);
  const wt = Float64Array.from(wts);
  const T = off.length;
  const padded = new Float64Array(PH * PW);
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    for (let y = 0; y < PH; y++) {
      const sy = reflect101(y - h, H);
      for (let x = 0; x < PW; x++) padded[y * PW + x] = img.data[base + sy * W + reflect101(x - h, W)];
    }
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const o = y * PW + x;
        let s = 0;
        for (let t = 0; t < T; t++) s += wt[t] * padded[o + off[t]];
        out[base + y * W + x] = clip01(s);
      }
    }
  }
  return like(img, out);
}

/**
 * Area-average resize to h×w (each output pixel is the mean of the input area it covers,
 * fractional pixels weighted by their overlap). For an integer factor it is the block mean.
 */
export function resizeArea(img: PixelImage, h: number, w: number): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const ry = weights1d(H, h);
  const rx = weights1d(W, w);
  const out = new Float32Array(C * h * w);
  const tmp = new Float64Array(h * W);
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    tmp.fill(0);
    for (let y = 0; y < h; y++) for (const [j, wt] of ry[y]) for (let x = 0; x < W; x++) tmp[y * W + x] += wt * img.data[base + j * W + x];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (const [j, wt] of rx[x]) s += wt * tmp[y * W + j];
        out[c * h * w + y * w + x] = s;
      }
    }
  }
  return { data: out, channels: C, height: h, width: w };
}

/** For each of n output cells over N input cells: the input cells it covers and their weights. */
function weights1d(N: number, n: number): Array<Array<[number, number]>> {
  const scale = N / n;
  return Array.from({ length: n }, (_, i) => {
    const a = i * scale;
    const b = (i + 1) * scale;
    const cells: Array<[number, number]> = [];
    for (let j = Math.floor(a); j < Math.min(N, Math.ceil(b)); j++) {
      const overlap = Math.min(b, j + 1) - Math.max(a, j);
      if (overlap > 0) cells.push([j, overlap / scale]);
    }
    return cells;
  });
}

/** Nearest-neighbour resize to h×w: output pixel y takes input ⌊(y + ½)·H/h⌋. */
export function resizeNearest(img: PixelImage, h: number, w: number): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const out = new Float32Array(C * h * w);
  const sy = Array.from({ length: h }, (_, y) => Math.min(H - 1, Math.floor(((y + 0.5) * H) / h)));
  const sx = Array.from({ length: w }, (_, x) => Math.min(W - 1, Math.floor(((x + 0.5) * W) / w)));
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[c * h * w + y * w + x] = img.data[c * H * W + sy[y] * W + sx[x]];
  }
  return { data: out, channels: C, height: h, width: w };
}

/** The reduced size of pixelate: Python's int(side·factor) (at least 1). */
export function pixelateSize(side: number, factor: number): number {
  return Math.max(1, Math.trunc(side * factor));
}

/**
 * Pixelate as the reference does it: Pillow's BOX resize down to int(side·factor) (each output
 * averages the input pixels whose centres fall in its box), Pillow's NEAREST back up. Pillow works
 * on the 8-bit image and rounds after each BOX pass; this keeps the float values (the weights are
 * Pillow's unrounded ones, as it uses for float images), so it differs from the reference only by
 * that rounding.
 */
export function pixelate(img: PixelImage, factor: number): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const h = pixelateSize(H, factor);
  const w = pixelateSize(W, factor);
  const my = resampleMatrix('box', H, h);
  const mx = resampleMatrix('box', W, w);
  const sy = nearestIndex(h, H);
  const sx = nearestIndex(w, W);
  const out = new Float32Array(C * H * W);
  const tmp = new Float64Array(h * W);
  const small = new Float64Array(h * w);
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    tmp.fill(0);
    for (let y = 0; y < h; y++) for (let j = 0; j < H; j++) {
      const a = my[y * H + j];
      if (a !== 0) for (let x = 0; x < W; x++) tmp[y * W + x] += a * img.data[base + j * W + x];
    }
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = 0; j < W; j++) s += mx[x * W + j] * tmp[y * W + j];
      small[y * w + x] = s;
    }
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[base + y * W + x] = small[sy[y] * w + sx[x]];
  }
  return { data: out, channels: C, height: H, width: W };
}

/**
 * Largest colour image (pixels) whose JPEG round trip image/jpeg.ts makes: sharp costs ~1.6 ms of
 * CPU a round trip whatever the size (two calls through libvips), these loops about 0.06 µs a
 * pixel. CPU for five qualities (2 cores, best of 3): 32×32 0.5 ms against sharp's 8.5, 128×128
 * 4.6 against 9.6, 160×160 7.4 against 10.5, 224×224 13.7 against 13.9. With the forward half
 * computed once for the five (jpegBlocksOf, as the corruption views do): 160×160 5.4–6.6 ms,
 * 224×224 10.7–12.1 against sharp's 12.1–16.3, but 384×384 31–34 against 21–25 (sharp's SIMD
 * codec wins on size), and the same bytes as sharp's at 224×224 (300 round trips of the fixture
 * ImageNet images, every ImageNet-C quality). So the limit is ImageNet's 224×224: an ImageNet
 * image's five qualities cost a few ms less, and the views worker (views/cpu-worker.ts) never
 * loads sharp, whose native library took 50–100 ms of its start (image/sharp.ts).
 */
const JS_JPEG_MAX_PIXELS = 224 * 224;

/**
 * The part of jpeg()'s round trip that every quality shares (image/jpeg.ts jpegBlocks: the
 * forward DCT, after the colour conversion and downsampling), for an image that goes through
 * image/jpeg.ts: one-channel images, and colour ones up to JS_JPEG_MAX_PIXELS. Undefined for the
 * images sharp takes. `bytes`: toBytes(img).
 */
export function jpegBlocksOf(img: PixelImage, bytes: Uint8Array = toBytes(img)): JpegBlocks | undefined {
  const { channels: C, height: H, width: W } = img;
  if (C === 1) return jpegBlocks(bytes, H, W, false);
  if (C === 3 && H >= COLOUR_MIN_SIDE && W >= COLOUR_MIN_SIDE && H * W <= JS_JPEG_MAX_PIXELS) return jpegBlocks(bytes, H, W, true);
  return undefined;
}

/**
 * JPEG round trip at a quality (1–100); same size and channel count. `bytes`: the image as
 * toBytes(img) gives it, and `blocks`: jpegBlocksOf(img), when the caller has them already (one
 * image at several qualities computes them once).
 * One-channel images, and colour images up to JS_JPEG_MAX_PIXELS, through image/jpeg.ts (sharp's
 * values: for a grey image sharp writes YCbCr whose chroma is flat 128, so its luma round trip is
 * the greyscale one); larger colour images through sharp.
 */
export async function jpeg(img: PixelImage, quality: number, bytes: Buffer = toBytes(img), out: Float32Array = new Float32Array(img.data.length), blocks = jpegBlocksOf(img, bytes)): Promise<PixelImage> {
  const { channels: C, height: H, width: W } = img;
  if (blocks) {
    jpegFromBlocksPlanar(blocks, quality, out);
    return like(img, out);
  }
  const encoded = await loadSharp()(bytes, { raw: { width: W, height: H, channels: C } })
    // optimised Huffman tables only make the file smaller (the same coefficients, so the same
    // decoded pixels: corrupt.test.ts), at a second pass over the image: 10% of a round trip
    .jpeg({ quality: Math.round(quality), chromaSubsampling: '4:2:0', optimiseCoding: false })
    .toBuffer();
  const { data, info } = await loadSharp()(encoded).raw().toBuffer({ resolveWithObject: true });
  if (info.width !== W || info.height !== H) throw new Error(`JPEG round trip changed the size to ${info.width}×${info.height}`);
  const got = info.channels;
  const n = H * W;
  for (let c = 0; c < C; c++) {
    // a colour image comes back with 3 channels (or 4)
    const src = Math.min(c, got - 1);
    const plane = c * n;
    for (let p = 0; p < n; p++) out[plane + p] = data[p * got + src] / 255;
  }
  return like(img, out);
}

// ---------------------------------------------------------------------------------------------
// Poisson variates

const LOG_FACT = (() => {
  const t = new Float64Array(256);
  for (let k = 1; k < 256; k++) t[k] = t[k - 1] + Math.log(k);
  return t;
})();

/** ln k! (table below 256, Stirling's series above: error < 1e-12). */
export function logFactorial(k: number): number {
  if (k < 256) return LOG_FACT[k];
  const x = k;
  return x * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI * x) + 1 / (12 * x) - 1 / (360 * x ** 3) + 1 / (1260 * x ** 5);
}

/**
 * A Poisson(lambda) variate: inversion by sequential search below 10, Hörmann's PTRS
 * ("The transformed rejection method for generating Poisson random variables", 1993) above,
 * the same split numpy uses.
 */
export function poisson(lambda: number, rng: () => number): number {
  if (!(lambda > 0)) return 0;
  if (lambda < 10) {
    const u = rng();
    let k = 0;
    let p = Math.exp(-lambda);
    let F = p;
    while (u > F && k < 200) {
      k++;
      p *= lambda / k;
      F += p;
    }
    return k;
  }
  const slam = Math.sqrt(lambda);
  const loglam = Math.log(lambda);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invalpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const U = rng() - 0.5;
    const V = rng();
    const us = 0.5 - Math.abs(U);
    const k = Math.floor(((2 * a) / us + b) * U + lambda + 0.43);
    if (us >= 0.07 && V <= vr) return k;
    if (k < 0 || (us < 0.013 && V > us)) continue;
    if (Math.log(V) + Math.log(invalpha) - Math.log(a / (us * us) + b) <= -lambda + k * loglam - logFactorial(k)) return k;
  }
}
