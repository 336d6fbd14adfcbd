/**
 * Frost (ImageNet-C): c0·x + c1·F, clipped, with F a random crop of a frost texture. The
 * reference crops one of five photographs of frosted glass (imagecorruptions: each scaled to
 * cover the image, then by 1.1, bicubic; make_cifar_c.py: scaled by 0.2), a random one per image.
 *
 * Skeptic does not ship those photographs. By default it generates five textures, seeded and the
 * same on every machine: low-frequency haze (a plasma fractal) under ice needles with side
 * branches, drawn at the photographs' scale (1.1 px per photo pixel for images above 64 px, 0.2
 * up to 64 px, as the reference scales them), then mapped per channel to the mean and standard
 * deviation measured on the reference's photographs frost1–frost5 (so the corruption brightens
 * and tints the image by as much as the reference's does). They look like frost, not like those
 * photographs: the structure (crystal shapes, sharpness) differs. A user's folder of texture
 * images (`corruptions.frostDir`) replaces them, scaled as imagecorruptions scales its photographs
 * (bicubic through sharp, which is not OpenCV's kernel).
 */
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { loadSharp } from './sharp';
import { SkepticInputError } from '../errors';
import { mulberry32 } from '../random';
import type { PixelImage } from '../types';
import { filterPlane, gaussianWeights, plasmaFractal } from './imagenet-c';

/** An RGB texture, planar CHW in [0,1]. */
export interface FrostTexture {
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Per-channel (R, G, B) mean and standard deviation of the reference's frost1–frost5 (measured
 * with PIL on bethgelab/imagecorruptions' files; frost2 and frost3 have the same statistics).
 */
export const FROST_PHOTO_STATS: ReadonlyArray<{ mean: [number, number, number]; std: [number, number, number] }> = [
  { mean: [0.305, 0.585, 0.65], std: [0.106, 0.065, 0.06] },
  { mean: [0.787, 0.805, 0.841], std: [0.084, 0.087, 0.089] },
  { mean: [0.787, 0.805, 0.841], std: [0.084, 0.087, 0.089] },
  { mean: [0.54, 0.599, 0.648], std: [0.112, 0.112, 0.117] },
  { mean: [0.441, 0.484, 0.528], std: [0.174, 0.17, 0.163] },
];

/** Pixels per photograph pixel at which the reference crops its photographs. */
export const frostScale = (small: boolean) => (small ? 0.2 : 1.1);

const FROST_SEED = 0xf2057;
const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff']);

/** Procedural texture k (0–4) for images of H×W: side ⌈1.5·max(H, W)⌉ + 1, features at the photographs' scale. */
export function proceduralFrost(k: number, H: number, W: number, small: boolean): FrostTexture {
  const rng = mulberry32(FROST_SEED + 7919 * k);
  const s = frostScale(small);
  const T = Math.ceil(1.5 * Math.max(H, W)) + 1;
  let N = 1;
  while (N < T) N *= 2;
  const haze = plasmaFractal(N, 2, rng);
  const ice = new Float64Array(T * T);
  const line = (x: number, y: number, angle: number, length: number, value: number) => {
    const dx = Math.cos(angle);
    const dy = Math.sin(angle);
    for (let t = 0; t <= length; t += 0.5) {
      const px = Math.round(x + t * dx);
      const py = Math.round(y + t * dy);
      if (px >= 0 && px < T && py >= 0 && py < T) ice[py * T + px] = Math.max(ice[py * T + px], value * (1 - (0.5 * t) / (length + 1)));
    }
  };
  const needles = Math.ceil((T * T) / (500 * s * s));
  for (let i = 0; i < needles; i++) {
    const x = rng() * T;
    const y = rng() * T;
    const angle = rng() * 2 * Math.PI;
    const length = s * (12 + 48 * rng());
    const value = 0.5 + 0.5 * rng();
    line(x, y, angle, length, value);
    const branches = 2 + Math.floor(rng() * 3);
    for (let j = 0; j < branches; j++) {
      const at = length * (0.2 + 0.6 * rng());
      const side = rng() < 0.5 ? -1 : 1;
      line(x + at * Math.cos(angle), y + at * Math.sin(angle), angle + (side * Math.PI) / 3, length * (0.2 + 0.3 * rng()), value * 0.8);
    }
  }
  const w = gaussianWeights(Math.max(0.5, 0.8 * s));
  const soft = filterPlane(ice, T, T, w, w, 'nearest');
  const mix = new Float64Array(T * T);
  let sum = 0;
  for (let y = 0; y < T; y++) for (let x = 0; x < T; x++) sum += mix[y * T + x] = 0.45 * haze[y * N + x] + soft[y * T + x];
  const mean = sum / mix.length;
  let sq = 0;
  for (const v of mix) sq += (v - mean) ** 2;
  const sd = Math.sqrt(sq / mix.length) || 1;
  const stats = FROST_PHOTO_STATS[k % FROST_PHOTO_STATS.length];
  const data = new Float32Array(3 * T * T);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < T * T; p++) data[c * T * T + p] = Math.min(1, Math.max(0, stats.mean[c] + (stats.std[c] * (mix[p] - mean)) / sd));
  }
  return { data, height: T, width: T };
}

const procedural = new Map<string, FrostTexture[]>();

/** The five procedural textures for images of H×W (made once per size). */
export function proceduralFrosts(H: number, W: number, small: boolean): FrostTexture[] {
  const key = `${H}x${W}/${small}`;
  let t = procedural.get(key);
  if (!t) {
    t = FROST_PHOTO_STATS.map((_, k) => proceduralFrost(k, H, W, small));
    procedural.set(key, t);
  }
  return t;
}

/** The texture files of a folder, sorted by name; clear errors naming the folder. */
export async function frostFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
    names = await readdir(dir);
  } catch (e) {
    throw new SkepticInputError(`corruptions.frostDir: cannot read ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const files = names.filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort().map((n) => join(dir, n));
  if (!files.length) throw new SkepticInputError(`corruptions.frostDir: ${dir} has no PNG, JPEG, WebP or TIFF images`);
  return files;
}

/**
 * A user's texture, scaled as the reference scales its photographs for an H×W image: above 64 px
 * to cover the image then by 1.1; up to 64 px by 0.2 (but never below the image plus one pixel).
 */
export async function loadFrost(file: string, H: number, W: number, small: boolean): Promise<FrostTexture> {
  try {
    const meta = await loadSharp()(file).metadata();
    const h0 = meta.height ?? 0;
    const w0 = meta.width ?? 0;
    if (!(h0 > 0 && w0 > 0)) throw new Error('no size');
    let f = small ? 0.2 : Math.max(1, H / h0, W / w0) * 1.1;
    f = Math.max(f, (H + 1) / h0, (W + 1) / w0);
    const width = Math.ceil(w0 * f);
    const height = Math.ceil(h0 * f);
    const { data, info } = await loadSharp()(file).removeAlpha().toColourspace('srgb').resize(width, height, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer({ resolveWithObject: true });
    const n = info.width * info.height;
    const out = new Float32Array(3 * n);
    for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[c * n + p] = data[p * info.channels + Math.min(c, info.channels - 1)] / 255;
    return { data: out, height: info.height, width: info.width };
  } catch (e) {
    throw new SkepticInputError(`corruptions.frostDir: ${file}: cannot be read as an image (${(e as Error).message.split('\n')[0]})`);
  }
}

const folders = new Map<string, Promise<FrostTexture[]>>();

/** The textures for an H×W image: a user's folder's, or the procedural ones. */
export function frostTextures(H: number, W: number, small: boolean, dir?: string): Promise<FrostTexture[]> {
  if (!dir) return Promise.resolve(proceduralFrosts(H, W, small));
  const key = `${dir}|${H}x${W}/${small}`;
  let t = folders.get(key);
  if (!t) {
    t = frostFiles(dir).then((files) => Promise.all(files.map((f) => loadFrost(f, H, W, small))));
    folders.set(key, t);
    t.catch(() => folders.delete(key));
  }
  return t;
}

/**
 * Frost's per-image layer, C×H×W: texture ⌊u·count⌋ (the reference's randint(5) over its
 * first five photographs), cropped at rows ⌊u·(Ht − H)⌋, columns ⌊u·(Wt − W)⌋; one channel
 * gets 0.2989 R + 0.587 G + 0.114 B, as the reference's rgb2gray.
 */
export function frostLayer(C: number, H: number, W: number, textures: FrostTexture[], rng: () => number, out: Float32Array = new Float32Array(C * H * W)): Float32Array {
  const t = textures[Math.floor(rng() * textures.length)];
  const top = Math.floor(rng() * (t.height - H));
  const left = Math.floor(rng() * (t.width - W));
  const n = H * W;
  const tn = t.height * t.width;
  for (let y = 0; y < H; y++) {
    const row = (top + y) * t.width + left;
    if (C === 1) {
      for (let x = 0; x < W; x++) {
        const q = row + x;
        out[y * W + x] = 0.2989 * t.data[q] + 0.587 * t.data[tn + q] + 0.114 * t.data[2 * tn + q];
      }
    } else for (let c = 0; c < C; c++) out.set(t.data.subarray(c * tn + row, c * tn + row + W), c * n + y * W); // a row of the crop as one copy
  }
  return out;
}

/** Frost with a drawn layer: a·x + b·layer, clipped. */
export function frostFromLayer(img: PixelImage, a: number, b: number, layer: ArrayLike<number>): PixelImage {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, a * img.data[i] + b * layer[i]));
  return { data: out, channels: img.channels, height: img.height, width: img.width };
}
