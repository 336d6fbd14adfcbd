/**
 * A weights-free cue-conflict generator: a stimulus that carries the SHAPE of image A and the
 * TEXTURE of image B, for any dataset and label set, plus the single-cue controls. Pure
 * functions of the pixels and a seeded PRNG: the same images and seed give the same stimuli.
 *
 * Shape of A (shapeCarrier):
 *  - background model: per channel, the least-squares plane a + b·x + c·y fitted to A's border
 *    frame (⌈min(H,W)/16⌉ px wide): a flat colour or a smooth gradient, without A's texture;
 *  - silhouette: the colour distance of each pixel to that background, box-blurred (radius
 *    ⌈min(H,W)/32⌉), thresholded by Otsu's method; holes not connected to the border are filled.
 *    It is reliable when the object stands out from a smooth background (digits, the demo's
 *    shapes, product shots) and crude on cluttered photos. A silhouette covering less than 3% or
 *    more than 90% of the image counts as failed: the whole frame is then the object;
 *  - edges: the Sobel gradient magnitude of A's luminance after a box blur of radius round(p/2)
 *    (p the texture patch side, below: A's own fine texture fades, outlines stay), divided by its
 *    98th percentile and clipped to [0,1], combined (max) with the silhouette's outline;
 *  - shading: A's luminance box-blurred at the texture patch scale (radius p/2), standardised
 *    inside the silhouette.
 *
 * Texture of B (quiltTexture): image quilting in the manner of Efros & Freeman (SIGGRAPH 2001),
 * simplified: square patches of p = clamp(round(min(H,W)/5), 5, 48) px, laid on a grid with an
 * overlap of ⌈p/4⌉; each patch is the best of `candidates` (8) random patches of B lying wholly
 * inside B's silhouette (at least 80%, then 50%, then anywhere, when fewer than 4 do), by the sum of squared
 * differences over the overlap with what is already placed; overlaps are feathered linearly
 * (no minimum-error cut). The result has B's colours and local structure and none of its layout.
 *
 * The stimulus (compose): inside A's silhouette the quilted texture of B; outside, A's background
 * model. The silhouette alone carries A's shape: neither A's edges nor its shading are added,
 * since at small sizes both bring back some of A's own texture, and a drawn outline is an extra
 * shape cue the model never saw in training (on the demo model it moved the shape bias from 0.18
 * to 0.41). With a failed silhouette the texture fills the frame and A's luminance edges, drawn
 * over it (weight 0.6) in black or white, whichever contrasts with the texture's mean luminance,
 * and its shading (the texture brightened and darkened by a factor 1 + 0.25·shading, clipped to
 * [0.3, 1.7]) carry its shape, as in Geirhos et al.'s style-transfer stimuli.
 *
 * Controls (one image each, labelled with the image's own class):
 *  - edges: A's edge map drawn in A's foreground colour (mean inside the silhouette) over its
 *    background colour (mean outside), so a white-on-black digit stays white on black;
 *  - silhouette: A's silhouette filled with the foreground colour over the background colour
 *    (undefined when the silhouette failed);
 *  - texture: the quilted texture of A over the whole frame (no shape).
 */
import type { PixelImage } from '../types';

export interface ShapeCarrier {
  height: number;
  width: number;
  /** Soft silhouette in [0,1] (all ones when `silhouetteOk` is false). */
  mask: Float32Array;
  silhouetteOk: boolean;
  /** Share of the image the silhouette covers (before the fallback). */
  coverage: number;
  /** Edge strength in [0,1]: luminance edges at the texture scale, and the silhouette's outline. */
  edges: Float32Array;
  /** The silhouette's outline in [0,1] (zeros when the silhouette failed). */
  outline: Float32Array;
  /** Standardised low-frequency luminance (0 outside the silhouette). */
  shading: Float32Array;
  /** The background model, per channel plane (planar C×H×W). */
  background: Float32Array;
  /** Mean colour inside and outside the silhouette, per channel. */
  fg: number[];
  bg: number[];
}

export interface GeneratorOptions {
  /** Texture patch side (default clamp(round(min(H,W)/5), 5, 48)). */
  patch?: number;
  /** Candidate patches per quilting slot (default 8). */
  candidates?: number;
  /** Weight of A's edges drawn over the stimulus when the silhouette failed (default 0.6). */
  edgeWeight?: number;
  /** Strength of A's shading on the texture when the silhouette failed (default 0.25). */
  shading?: number;
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

export function luminance(img: PixelImage): Float32Array {
  const n = img.height * img.width;
  if (img.channels === 1) return img.data.slice(0, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 0.299 * img.data[i] + 0.587 * img.data[n + i] + 0.114 * img.data[2 * n + i];
  return out;
}

/** Box blur of radius r (window 2r+1) with clamped borders, separable, O(H·W). */
export function boxBlur(src: Float32Array, H: number, W: number, r: number): Float32Array {
  if (r <= 0) return src.slice();
  const tmp = new Float32Array(H * W);
  const out = new Float32Array(H * W);
  const k = 2 * r + 1;
  const at = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    let s = 0;
    for (let d = -r; d <= r; d++) s += src[row + at(d, W)];
    for (let x = 0; x < W; x++) {
      tmp[row + x] = s / k;
      s += src[row + at(x + r + 1, W)] - src[row + at(x - r, W)];
    }
  }
  for (let x = 0; x < W; x++) {
    let s = 0;
    for (let d = -r; d <= r; d++) s += tmp[at(d, H) * W + x];
    for (let y = 0; y < H; y++) {
      out[y * W + x] = s / k;
      s += tmp[at(y + r + 1, H) * W + x] - tmp[at(y - r, H) * W + x];
    }
  }
  return out;
}

/** Sobel gradient magnitude with clamped borders. */
export function sobel(src: Float32Array, H: number, W: number): Float32Array {
  const out = new Float32Array(H * W);
  const v = (y: number, x: number) => src[(y < 0 ? 0 : y >= H ? H - 1 : y) * W + (x < 0 ? 0 : x >= W ? W - 1 : x)];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const gx = v(y - 1, x + 1) + 2 * v(y, x + 1) + v(y + 1, x + 1) - v(y - 1, x - 1) - 2 * v(y, x - 1) - v(y + 1, x - 1);
      const gy = v(y + 1, x - 1) + 2 * v(y + 1, x) + v(y + 1, x + 1) - v(y - 1, x - 1) - 2 * v(y - 1, x) - v(y - 1, x + 1);
      out[y * W + x] = Math.sqrt(gx * gx + gy * gy);
    }
  }
  return out;
}

/** Otsu's threshold over values in [lo, hi] (256 bins). */
export function otsu(values: Float32Array): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) return hi;
  const bins = 256;
  const hist = new Float64Array(bins);
  const scale = (bins - 1) / (hi - lo);
  for (const v of values) hist[Math.round((v - lo) * scale)]++;
  const n = values.length;
  let sumAll = 0;
  for (let i = 0; i < bins; i++) sumAll += i * hist[i];
  let wB = 0;
  let sumB = 0;
  let best = 0;
  let bestVar = -1;
  for (let t = 0; t < bins; t++) {
    wB += hist[t];
    if (wB === 0) continue;
    const wF = n - wB;
    if (wF === 0) break;
    sumB += t * hist[t];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const between = wB * wF * (mB - mF) ** 2;
    if (between > bestVar) {
      bestVar = between;
      best = t;
    }
  }
  return lo + (best + 0.5) / scale;
}

/** Per channel, the plane a + b·x + c·y fitted (least squares) to the border frame of width f. */
export function backgroundPlane(img: PixelImage, f = Math.max(1, Math.ceil(Math.min(img.height, img.width) / 16))): Float32Array {
  return evalPlane(fitPlane(img, f), img.channels, img.height, img.width);
}

/** backgroundPlane's coefficients: per channel (a, b, c) of a + b·(x − cx) + c·(y − cy). */
export function fitPlane(img: PixelImage, f = Math.max(1, Math.ceil(Math.min(img.height, img.width) / 16))): Float64Array {
  const { channels: C, height: H, width: W } = img;
  const coefs = new Float64Array(3 * C);
  // Normal equations over the frame pixels, coordinates centred for conditioning.
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  const inFrame = (y: number, x: number) => y < f || y >= H - f || x < f || x >= W - f;
  let n = 0;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!inFrame(y, x)) continue;
      const u = x - cx;
      const v = y - cy;
      n++;
      sx += u;
      sy += v;
      sxx += u * u;
      syy += v * v;
      sxy += u * v;
    }
  }
  const A = [
    [n, sx, sy],
    [sx, sxx, sxy],
    [sy, sxy, syy],
  ];
  for (let c = 0; c < C; c++) {
    const o = c * H * W;
    let b0 = 0;
    let b1 = 0;
    let b2 = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (!inFrame(y, x)) continue;
        const v = img.data[o + y * W + x];
        b0 += v;
        b1 += v * (x - cx);
        b2 += v * (y - cy);
      }
    }
    coefs.set(solve3(A, [b0, b1, b2]) ?? [b0 / n, 0, 0], 3 * c);
  }
  return coefs;
}

/** The planes of fitPlane's coefficients, clipped to [0,1] (planar C×H×W). */
export function evalPlane(coefs: Float64Array, C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(C * H * W);
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  for (let c = 0; c < C; c++) {
    const o = c * H * W;
    const [a, b, d] = [coefs[3 * c], coefs[3 * c + 1], coefs[3 * c + 2]];
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) out[o + y * W + x] = clamp01(a + b * (x - cx) + d * (y - cy));
    }
  }
  return out;
}

function solve3(A: number[][], b: number[]): number[] | undefined {
  const m = A.map((r, i) => [...r, b[i]]);
  for (let i = 0; i < 3; i++) {
    let p = i;
    for (let r = i + 1; r < 3; r++) if (Math.abs(m[r][i]) > Math.abs(m[p][i])) p = r;
    if (Math.abs(m[p][i]) < 1e-12) return undefined;
    [m[i], m[p]] = [m[p], m[i]];
    for (let r = 0; r < 3; r++) {
      if (r === i) continue;
      const f = m[r][i] / m[i][i];
      for (let c = i; c < 4; c++) m[r][c] -= f * m[i][c];
    }
  }
  return [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]];
}

/** Fills the holes of a binary mask: background pixels not 4-connected to the border. */
export function fillHoles(mask: Uint8Array, H: number, W: number): Uint8Array {
  const outside = new Uint8Array(H * W);
  const stack: number[] = [];
  const push = (i: number) => {
    if (!mask[i] && !outside[i]) {
      outside[i] = 1;
      stack.push(i);
    }
  };
  for (let x = 0; x < W; x++) {
    push(x);
    push((H - 1) * W + x);
  }
  for (let y = 0; y < H; y++) {
    push(y * W);
    push(y * W + W - 1);
  }
  while (stack.length) {
    const i = stack.pop()!;
    const y = Math.floor(i / W);
    const x = i - y * W;
    if (x > 0) push(i - 1);
    if (x < W - 1) push(i + 1);
    if (y > 0) push(i - W);
    if (y < H - 1) push(i + W);
  }
  const out = new Uint8Array(H * W);
  for (let i = 0; i < H * W; i++) out[i] = outside[i] ? 0 : 1;
  return out;
}

/** Default texture patch side for an H×W image. */
export function patchSide(H: number, W: number): number {
  return Math.max(5, Math.min(48, Math.round(Math.min(H, W) / 5)));
}

export function shapeCarrier(img: PixelImage, opts: GeneratorOptions = {}): ShapeCarrier {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const { background, filled, coverage, silhouetteOk } = silhouetteOf(img);
  const mask = silhouetteOk ? softMask(filled, H, W) : new Float32Array(n).fill(1);

  const p = opts.patch ?? patchSide(H, W);
  const lum = luminance(img);
  const outline = new Float32Array(n);
  if (silhouetteOk) {
    const o = sobel(mask, H, W);
    let mx = 0;
    for (const v of o) if (v > mx) mx = v;
    for (let i = 0; i < n; i++) outline[i] = mx > 0 ? o[i] / mx : 0;
  }
  const { edges, shading } = edgesAndShading(lum, H, W, p, mask, outline);

  const fg: number[] = [];
  const bg: number[] = [];
  for (let c = 0; c < C; c++) {
    let sf = 0;
    let nf = 0;
    let sb = 0;
    let nb = 0;
    for (let i = 0; i < n; i++) {
      const val = img.data[c * n + i];
      if (filled[i]) {
        sf += val;
        nf++;
      } else {
        sb += val;
        nb++;
      }
    }
    fg.push(nf ? sf / nf : 1);
    bg.push(nb ? sb / nb : 0);
  }
  if (!silhouetteOk) {
    // No object found: black on white (Geirhos's edge stimuli), or the reverse for a dark image.
    const meanLum = lum.reduce((a, b) => a + b, 0) / n;
    const dark = meanLum < 0.5;
    for (let c = 0; c < C; c++) {
      fg[c] = dark ? 1 : 0;
      bg[c] = dark ? 0 : 1;
    }
  }
  return { height: H, width: W, mask, silhouetteOk, coverage, edges, outline, shading, background, fg, bg };
}

/** The background model and the silhouette (hard, holes filled) of an image; see the module comment. */
function silhouetteOf(img: PixelImage): { coefs: Float64Array; background: Float32Array; filled: Uint8Array; coverage: number; silhouetteOk: boolean } {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const coefs = fitPlane(img);
  const background = evalPlane(coefs, C, H, W);
  const dist = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let d = 0;
    for (let c = 0; c < C; c++) d += (img.data[c * n + i] - background[c * n + i]) ** 2;
    dist[i] = Math.sqrt(d);
  }
  const blurred = boxBlur(dist, H, W, Math.max(1, Math.ceil(Math.min(H, W) / 32)));
  const t = otsu(blurred);
  const hard = new Uint8Array(n);
  for (let i = 0; i < n; i++) hard[i] = blurred[i] > t ? 1 : 0;
  const filled = fillHoles(hard, H, W);
  let cover = 0;
  for (let i = 0; i < n; i++) cover += filled[i];
  const coverage = cover / n;
  return { coefs, background, filled, coverage, silhouetteOk: coverage >= 0.03 && coverage <= 0.9 };
}

/** The soft silhouette: the filled mask box-blurred with radius 1. */
function softMask(filled: Uint8Array, H: number, W: number): Float32Array {
  return boxBlur(Float32Array.from(filled), H, W, 1);
}

/** Edges (luminance edges at the patch scale, and the outline) and shading; see the module comment. */
function edgesAndShading(lum: Float32Array, H: number, W: number, p: number, mask: Float32Array, outline: Float32Array): { edges: Float32Array; shading: Float32Array } {
  const n = H * W;
  const e = sobel(boxBlur(lum, H, W, Math.max(1, Math.round(p / 2))), H, W);
  const sorted = Float32Array.from(e).sort();
  const p98 = sorted[Math.min(n - 1, Math.floor(0.98 * n))] || 1;
  const edges = new Float32Array(n);
  for (let i = 0; i < n; i++) edges[i] = Math.max(clamp01(e[i] / p98), outline[i]);

  const low = boxBlur(lum, H, W, Math.max(1, Math.round(p / 2)));
  let m = 0;
  let w = 0;
  for (let i = 0; i < n; i++) {
    m += mask[i] * low[i];
    w += mask[i];
  }
  m /= w || 1;
  let v = 0;
  for (let i = 0; i < n; i++) v += mask[i] * (low[i] - m) ** 2;
  const sd = Math.sqrt(v / (w || 1)) || 1;
  const shading = new Float32Array(n);
  for (let i = 0; i < n; i++) shading[i] = mask[i] * ((low[i] - m) / sd);
  return { edges, shading };
}

/**
 * What compose() reads of a shape image, kept small between the audit's decode of the image and
 * the stimuli made from it in the summary: the background plane's coefficients, and the filled
 * silhouette (one byte a pixel) or, when the silhouette failed, the luminance its edges and
 * shading come from. composeCarrier() expands it to exactly the planes shapeCarrier() makes.
 */
export interface ShapeMaterial {
  channels: 1 | 3;
  height: number;
  width: number;
  silhouetteOk: boolean;
  coefs: Float64Array;
  /** The filled silhouette (silhouette found). */
  filled?: Uint8Array;
  /** The luminance (silhouette failed). */
  lum?: Float32Array;
  patch: number;
}

export function shapeMaterial(img: PixelImage, opts: GeneratorOptions = {}): ShapeMaterial {
  const { coefs, filled, silhouetteOk } = silhouetteOf(img);
  const base = { channels: img.channels, height: img.height, width: img.width, silhouetteOk, coefs, patch: opts.patch ?? patchSide(img.height, img.width) };
  return silhouetteOk ? { ...base, filled } : { ...base, lum: luminance(img) };
}

/** The planes compose() reads, from a shape's material: the same values shapeCarrier() gives
 *  (shading and edges are zero where a silhouette was found: compose() does not read them then). */
export type ComposeCarrier = Pick<ShapeCarrier, 'height' | 'width' | 'mask' | 'silhouetteOk' | 'background' | 'shading' | 'edges'>;

export function composeCarrier(m: ShapeMaterial): ComposeCarrier {
  const { channels: C, height: H, width: W } = m;
  const n = H * W;
  const background = evalPlane(m.coefs, C, H, W);
  if (m.silhouetteOk) return { height: H, width: W, silhouetteOk: true, mask: softMask(m.filled!, H, W), background, shading: new Float32Array(n), edges: new Float32Array(n) };
  const mask = new Float32Array(n).fill(1);
  const { edges, shading } = edgesAndShading(m.lum!, H, W, m.patch, mask, new Float32Array(n));
  return { height: H, width: W, silhouetteOk: false, mask, background, shading, edges };
}

/** The ink compose() draws A's edges in over a texture: black on a light texture, else white. */
export function inkFor(texture: PixelImage): number {
  const n = texture.height * texture.width;
  const tl = luminance(texture);
  const meanT = tl.reduce((x, y) => x + y, 0) / n;
  return meanT > 0.5 ? 0 : 1;
}

/**
 * Quilts an H×W texture from `src`'s patches lying inside `mask` (soft mask, ≥ 0.5 counts as
 * inside; undefined: anywhere). See the module comment.
 */
export function quiltTexture(src: PixelImage, mask: Float32Array | undefined, rng: () => number, opts: GeneratorOptions = {}): PixelImage {
  const { channels: C, height: H, width: W } = src;
  const n = H * W;
  const p = Math.min(opts.patch ?? patchSide(H, W), H, W);
  const o = Math.max(1, Math.ceil(p / 4));
  const step = Math.max(1, p - o);
  const candidates = Math.max(1, opts.candidates ?? 8);

  // Valid top-left positions: patches mostly inside the mask (integral image of the hard mask).
  const positions: number[] = [];
  if (mask) {
    const ii = new Float64Array((H + 1) * (W + 1));
    for (let y = 0; y < H; y++) {
      let row = 0;
      for (let x = 0; x < W; x++) {
        row += mask[y * W + x] >= 0.5 ? 1 : 0;
        ii[(y + 1) * (W + 1) + x + 1] = ii[y * (W + 1) + x + 1] + row;
      }
    }
    const inside = (y: number, x: number) =>
      (ii[(y + p) * (W + 1) + x + p] - ii[y * (W + 1) + x + p] - ii[(y + p) * (W + 1) + x] + ii[y * (W + 1) + x]) / (p * p);
    for (const need of [1, 0.8, 0.5]) {
      for (let y = 0; y <= H - p; y++) for (let x = 0; x <= W - p; x++) if (inside(y, x) >= need) positions.push(y * W + x);
      if (positions.length >= 4) break;
      positions.length = 0;
    }
  }
  if (positions.length === 0) for (let y = 0; y <= H - p; y++) for (let x = 0; x <= W - p; x++) positions.push(y * W + x);

  const out = new Float32Array(C * n);
  const weight = new Float32Array(n);
  const ys: number[] = [];
  const xs: number[] = [];
  for (let y = 0; ; y += step) {
    ys.push(Math.min(y, H - p));
    if (y + p >= H) break;
  }
  for (let x = 0; ; x += step) {
    xs.push(Math.min(x, W - p));
    if (x + p >= W) break;
  }
  for (const ty of ys) {
    for (const tx of xs) {
      // Choose the candidate that best matches the overlap already written (weight > 0).
      let best = positions[Math.floor(rng() * positions.length)];
      if (candidates > 1) {
        let bestErr = overlapError(src, best, out, weight, ty, tx, p);
        for (let k = 1; k < candidates; k++) {
          const cand = positions[Math.floor(rng() * positions.length)];
          const err = overlapError(src, cand, out, weight, ty, tx, p);
          if (err < bestErr) {
            bestErr = err;
            best = cand;
          }
        }
      }
      const sy = Math.floor(best / W);
      const sx = best - sy * W;
      // Feathered blend: weight ramps up over the first o pixels of each side that overlaps.
      for (let dy = 0; dy < p; dy++) {
        for (let dx = 0; dx < p; dx++) {
          const wy = ty > 0 ? Math.min(1, (dy + 1) / (o + 1)) : 1;
          const wx = tx > 0 ? Math.min(1, (dx + 1) / (o + 1)) : 1;
          const a = wy * wx;
          const di = (ty + dy) * W + tx + dx;
          const si = (sy + dy) * W + sx + dx;
          const prev = weight[di] > 0 ? 1 - a : 0;
          const norm = prev + a;
          for (let c = 0; c < C; c++) out[c * n + di] = (prev * out[c * n + di] + a * src.data[c * n + si]) / norm;
          weight[di] = 1;
        }
      }
    }
  }
  return { data: out, channels: C, height: H, width: W };
}

function overlapError(src: PixelImage, pos: number, out: Float32Array, weight: Float32Array, ty: number, tx: number, p: number): number {
  const { channels: C, height: H, width: W } = src;
  const n = H * W;
  const sy = Math.floor(pos / W);
  const sx = pos - sy * W;
  let err = 0;
  for (let dy = 0; dy < p; dy++) {
    for (let dx = 0; dx < p; dx++) {
      const di = (ty + dy) * W + tx + dx;
      if (!weight[di]) continue;
      const si = (sy + dy) * W + sx + dx;
      for (let c = 0; c < C; c++) err += (out[c * n + di] - src.data[c * n + si]) ** 2;
    }
  }
  return err;
}

/** The cue-conflict stimulus: A's shape carrier filled with texture T (B's quilted texture). */
export function compose(a: ComposeCarrier, texture: PixelImage, opts: GeneratorOptions = {}): PixelImage {
  const { height: H, width: W } = a;
  const C = texture.channels;
  const n = H * W;
  if (texture.height !== H || texture.width !== W) throw new RangeError('texture and shape differ in size');
  const edgeWeight = opts.edgeWeight ?? 0.6;
  const k = opts.shading ?? 0.25;
  const ink = inkFor(texture);
  const out = new Float32Array(C * n);
  for (let c = 0; c < C; c++) {
    const bgc = a.background.length === C * n ? c : 0; // A gray, texture RGB: broadcast the plane
    for (let i = 0; i < n; i++) {
      if (a.silhouetteOk) {
        out[c * n + i] = a.mask[i] * texture.data[c * n + i] + (1 - a.mask[i]) * a.background[bgc * n + i];
        continue;
      }
      const shade = Math.max(0.3, Math.min(1.7, 1 + k * a.shading[i]));
      const inside = clamp01(texture.data[c * n + i] * shade);
      const bgv = a.background[bgc * n + i];
      let v = a.mask[i] * inside + (1 - a.mask[i]) * bgv;
      const e = edgeWeight * a.edges[i];
      v = (1 - e) * v + e * ink;
      out[c * n + i] = v;
    }
  }
  return { data: out, channels: C, height: H, width: W };
}

/** The edges control: A's edges in its foreground colour over its background colour. */
export function edgeControl(a: ShapeCarrier): PixelImage {
  const C = a.fg.length as 1 | 3;
  const n = a.height * a.width;
  const out = new Float32Array(C * n);
  for (let c = 0; c < C; c++) for (let i = 0; i < n; i++) out[c * n + i] = a.bg[c] + a.edges[i] * (a.fg[c] - a.bg[c]);
  return { data: out, channels: C, height: a.height, width: a.width };
}

/** The silhouette control (undefined when the silhouette failed). */
export function silhouetteControl(a: ShapeCarrier): PixelImage | undefined {
  if (!a.silhouetteOk) return undefined;
  const C = a.fg.length as 1 | 3;
  const n = a.height * a.width;
  const out = new Float32Array(C * n);
  for (let c = 0; c < C; c++) for (let i = 0; i < n; i++) out[c * n + i] = a.bg[c] + a.mask[i] * (a.fg[c] - a.bg[c]);
  return { data: out, channels: C, height: a.height, width: a.width };
}

/** Quantises a [0,1] image to bytes (the generator keeps texture banks this way). */
export function toBytes01(img: PixelImage): Uint8Array {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(clamp01(img.data[i]) * 255);
  return out;
}

export function fromBytes01(bytes: Uint8Array, channels: 1 | 3, height: number, width: number): PixelImage {
  const data = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) data[i] = bytes[i] / 255;
  return { data, channels, height, width };
}
