/**
 * The ImageNet-C corruptions image/corrupt.ts did not have: glass, motion and zoom blur, snow,
 * fog, elastic transform (frost is in image/frost.ts), and the "extra" speckle noise, Gaussian
 * blur and saturate. Plain loops over planar CHW float32 pixels in [0,1], float64 arithmetic:
 * these are the definitions, and the independent references the view graphs are tested against.
 *
 * Each follows bethgelab's imagecorruptions (the pip package people run, which re-implements
 * Hendrycks' Wand-based motion blur and snow in numpy), with Hendrycks & Dietterich's constants
 * (image/corrupt.ts holds the tables). Where imagecorruptions differs from hendrycks/robustness
 * make_imagenet_c.py it is said at the function. Conventions of the reference's libraries kept:
 *   - skimage.filters.gaussian: scipy's sampled Gaussian, radius ⌊truncate·σ + ½⌋ (truncate 4),
 *     weights exp(−x²/2σ²) normalised, separable, border 'nearest' (edge repeated);
 *   - scipy.ndimage.zoom (order 1, grid_mode False): output size round(n·z) (Python's round,
 *     half to even), output o samples the input at o·(n−1)/(n_out−1), linearly;
 *   - scipy.ndimage.map_coordinates (order 1, mode 'reflect'): bilinear, indices outside the
 *     image mirrored half-sample (… b a | a b … y z | z y …).
 * Randomness comes only from the `rng` argument, drawn in the reference's order (uniforms as
 * low + (high − low)·u, normals by Box–Muller as random.ts gaussian()); the draws are split
 * from the arithmetic (…Draws / …Taps / …Layer functions), so that views/imagenet-c.ts can make
 * the same draws on the CPU and leave the arithmetic to the graph.
 */
import { fillDraws, fillNormals, fillNormalsOrZero, fillUniforms, gaussian, skipNormals } from '../random';
import type { PixelImage } from '../types';
import { motionBlurKernel, snowMixKernel } from '../wasm/kernels';

const clip01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

function like(img: PixelImage, data: Float32Array): PixelImage {
  return { data, channels: img.channels, height: img.height, width: img.width };
}

/**
 * Float64 planes reused from one call to the next, one per call site (snow's layer, motion blur's
 * padded plane, fog's plasma map, …). The CPU makers are synchronous and a thread runs one at a
 * time, so a site's plane is never in use twice. A fresh array per call (megabytes a 224² image)
 * cost its zeroing and page faults, and V8 starts a collection for every ~64 MB of new
 * ArrayBuffers: the corruptions probe allocated 3 GB on 100 ImageNet images (bench/README.md).
 * A site gets its plane back with the values of its last call: it writes every value it reads,
 * or asks for the plane zeroed. Planes are at most the model's input size; each thread (the views
 * workers have their own module state) keeps one per site.
 */
const scratchPlanes = new Map<string, Float64Array>();
function scratch(site: string, n: number, zeroed = false): Float64Array {
  let a = scratchPlanes.get(site);
  if (!a || a.length < n) {
    scratchPlanes.set(site, (a = new Float64Array(n)));
    zeroed = false; // new: zero already
  }
  const v = a.length === n ? a : a.subarray(0, n);
  if (zeroed) v.fill(0);
  return v;
}

/** Fills every scratch plane with `value` (the tests poison them with NaN: a site that reads a value
 *  it did not write then gives a different result). */
export function fillScratch(value: number): void {
  for (const a of scratchPlanes.values()) a.fill(value);
}

/** Python's round(): to the nearest integer, halves to even. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** scipy.ndimage's sampled Gaussian: 2r+1 weights, r = ⌊truncate·σ + ½⌋, normalised. */
export function gaussianWeights(sigma: number, truncate = 4): Float64Array {
  const r = Math.floor(truncate * sigma + 0.5);
  const w = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += w[i + r] = Math.exp((-0.5 * i * i) / (sigma * sigma));
  for (let i = 0; i < w.length; i++) w[i] /= s;
  return w;
}

/** Index i into [0, n) at a border: 'nearest' repeats the edge, 'reflect' mirrors half-sample. */
export function borderIndex(i: number, n: number, mode: 'nearest' | 'reflect'): number {
  if (i >= 0 && i < n) return i;
  if (mode === 'nearest') return i < 0 ? 0 : n - 1;
  const period = 2 * n;
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - 1 - j;
}

/** A plane (H×W, row-major) correlated with 1-D weights along rows then columns (scipy's axis order). */
export function filterPlane(plane: ArrayLike<number>, H: number, W: number, wy: Float64Array, wx: Float64Array, mode: 'nearest' | 'reflect'): Float64Array {
  // a kernel longer than the line (elastic's σ of 171 px): fold it into an n×n matrix first
  if (wy.length > H || wx.length > W) return filterFolded(plane, H, W, fold(wy, H, mode), fold(wx, W, mode));
  // source index of tap k for output o, border applied once (no call per tap)
  const table = (w: Float64Array, n: number) => {
    const r = (w.length - 1) / 2;
    const t = new Int32Array(n * w.length);
    for (let o = 0; o < n; o++) for (let k = 0; k < w.length; k++) t[o * w.length + k] = borderIndex(o + k - r, n, mode);
    return t;
  };
  const ty = table(wy, H);
  const tx = table(wx, W);
  const Ky = wy.length;
  const Kx = wx.length;
  const tmp = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let k = 0; k < Ky; k++) {
      const a = wy[k];
      const src = ty[y * Ky + k] * W;
      for (let x = 0; x < W; x++) tmp[y * W + x] += a * plane[src + x];
    }
  }
  const out = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) {
      let s = 0;
      const base = x * Kx;
      for (let k = 0; k < Kx; k++) s += wx[k] * tmp[row + tx[base + k]];
      out[row + x] = s;
    }
  }
  return out;
}

/** The n×n matrix of a correlation along a line of n with weights w and a border mode: m[o·n + j]. */
export function fold(w: Float64Array, n: number, mode: 'nearest' | 'reflect'): Float64Array {
  const r = (w.length - 1) / 2;
  const m = new Float64Array(n * n);
  for (let o = 0; o < n; o++) for (let k = 0; k < w.length; k++) m[o * n + borderIndex(o + k - r, n, mode)] += w[k];
  return m;
}

/** filterPlane with folded matrices (rows, then columns). */
function filterFolded(plane: ArrayLike<number>, H: number, W: number, my: Float64Array, mx: Float64Array): Float64Array {
  const tmp = new Float64Array(H * W);
  for (let y = 0; y < H; y++) for (let j = 0; j < H; j++) {
    const a = my[y * H + j];
    if (a !== 0) for (let x = 0; x < W; x++) tmp[y * W + x] += a * plane[j * W + x];
  }
  const out = new Float64Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let j = 0; j < W; j++) s += mx[x * W + j] * tmp[y * W + j];
    out[y * W + x] = s;
  }
  return out;
}

/** skimage.filters.gaussian(x, sigma, channel_axis=-1): each channel blurred, border 'nearest' (unclipped, float64). */
function gaussianPlanes(data: ArrayLike<number>, C: number, H: number, W: number, sigma: number): Float64Array {
  const w = gaussianWeights(sigma);
  const out = new Float64Array(C * H * W);
  for (let c = 0; c < C; c++) {
    const plane = Array.prototype.slice.call(data, c * H * W, (c + 1) * H * W) as number[];
    out.set(filterPlane(plane, H, W, w, w, 'nearest'), c * H * W);
  }
  return out;
}

/** Extra: Gaussian blur of σ pixels (skimage's gaussian), clipped. */
export function gaussianBlur(img: PixelImage, sigma: number): PixelImage {
  const b = gaussianPlanes(img.data, img.channels, img.height, img.width, sigma);
  return like(img, Float32Array.from(b, clip01));
}

/**
 * Glass blur's local shuffle as an index map: entry p is the source pixel that ends at p. The
 * reference visits, `iterations` times, every pixel (h, w) for h from H−d down to d+1 and w from
 * W−d down to d+1, with dx then dy drawn from randint(−d, d) (d excluded), and "swaps" it with
 * (h+dy, w+dx) by a tuple assignment of numpy views, which copies: (h, w) takes the other
 * pixel's current value and the other keeps its own (checked with the reference's numba
 * function: a 6×6 image keeps 30 distinct pixels after one pass). That is what ImageNet-C is
 * made of, so it is what happens here.
 */
export function glassPermutation(H: number, W: number, maxDelta: number, iterations: number, rng: () => number): Int32Array {
  const perm = new Int32Array(H * W);
  for (let p = 0; p < perm.length; p++) perm[p] = p;
  const d = maxDelta;
  for (let it = 0; it < iterations; it++) {
    for (let h = H - d; h > d; h--) {
      for (let w = W - d; w > d; w--) {
        const dx = -d + Math.floor(rng() * 2 * d);
        const dy = -d + Math.floor(rng() * 2 * d);
        perm[h * W + w] = perm[(h + dy) * W + (w + dx)];
      }
    }
  }
  return perm;
}

/** The glass blur after the shuffle is drawn: blur, to 8 bits (truncated, as np.uint8), shuffle, blur, clip. */
export function glassFromPermutation(img: PixelImage, sigma: number, perm: Int32Array): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const first = gaussianPlanes(img.data, C, H, W, sigma);
  const shuffled = new Float64Array(C * n);
  for (let c = 0; c < C; c++) {
    for (let p = 0; p < n; p++) shuffled[c * n + p] = Math.floor(Math.min(255, Math.max(0, first[c * n + perm[p]] * 255))) / 255;
  }
  return like(img, Float32Array.from(gaussianPlanes(shuffled, C, H, W, sigma), clip01));
}

/** Glass blur: [σ, max_delta, iterations]. */
export function glassBlur(img: PixelImage, sigma: number, maxDelta: number, iterations: number, rng: () => number): PixelImage {
  return glassFromPermutation(img, sigma, glassPermutation(img.height, img.width, maxDelta, iterations, rng));
}

/** numpy's arange(1, stop, step) for zoom blur, as (step, count): 1 + i·step. */
export function zoomFactors(step: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => 1 + i * step);
}

/**
 * One axis of clipped_zoom: the centre ⌈N/z⌉ cells (from ⌊(N − ⌈N/z⌉)/2⌋) zoomed by z with
 * scipy's order-1 zoom to round(⌈N/z⌉·z) cells. For each of `out` output cells (default: all of
 * them): the two input cells and their weights; cells past the zoomed size get weight 0.
 */
export function zoomTaps(N: number, z: number, out?: number): { i0: Int32Array; i1: Int32Array; w0: Float64Array; w1: Float64Array; size: number } {
  const { top, ch } = zoomCrop(N, z);
  const size = roundHalfEven(ch * z);
  const n = out ?? size;
  const ratio = size > 1 ? (ch - 1) / (size - 1) : 1;
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const w0 = new Float64Array(n);
  const w1 = new Float64Array(n);
  for (let o = 0; o < Math.min(n, size); o++) {
    const c = o * ratio;
    const f = Math.floor(c);
    const a = c - f;
    i0[o] = top + f;
    i1[o] = top + Math.min(f + 1, ch - 1);
    w0[o] = 1 - a;
    w1[o] = f + 1 <= ch - 1 ? a : 0;
  }
  return { i0, i1, w0, w1, size };
}

/** The cells of an axis that clipped_zoom reads: the centre ⌈N/z⌉, from ⌊(N − ⌈N/z⌉)/2⌋ (z ≥ 1). */
function zoomCrop(N: number, z: number): { top: number; ch: number } {
  const ch = Math.ceil(N / z);
  return { top: Math.floor((N - ch) / 2), ch };
}

/** make() kept in `map` under `key`, for tables every image of a size asks for again (read only).
 *  A handful of keys per input size: past 64 the map starts over, so it never grows without bound. */
function kept<T>(map: Map<string, T>, key: string, make: () => T): T {
  let v = map.get(key);
  if (v === undefined) {
    if (map.size >= 64) map.clear();
    map.set(key, (v = make()));
  }
  return v;
}

/** zoomTaps(N, z) kept per (N, z): clippedZoomPlane asks for the same few (a size, five zooms) for
 *  every image, and at 28×28 making them again cost more than the zoom itself. */
const zoomTapsKept = new Map<string, ReturnType<typeof zoomTaps>>();
const keptZoomTaps = (N: number, z: number) => kept(zoomTapsKept, `${N} ${z}`, () => zoomTaps(N, z));

/** A plane zoomed by clipped_zoom (centre crop, scipy zoom) to round(⌈N/z⌉·z) per axis. */
function clippedZoomPlane(plane: ArrayLike<number>, H: number, W: number, z: number, site?: string): { data: Float64Array; h: number; w: number } {
  const ty = keptZoomTaps(H, z);
  const tx = keptZoomTaps(W, z);
  const h = ty.size;
  const w = tx.size;
  const { i0, i1, w0, w1 } = tx;
  const data = site ? scratch(site, h * w) : new Float64Array(h * w); // every value written below
  for (let y = 0; y < h; y++) {
    const r0 = ty.i0[y] * W;
    const r1 = ty.i1[y] * W;
    const a0 = ty.w0[y];
    const a1 = ty.w1[y];
    const row = y * w;
    for (let x = 0; x < w; x++) {
      data[row + x] = a0 * (w0[x] * plane[r0 + i0[x]] + w1[x] * plane[r0 + i1[x]]) + a1 * (w0[x] * plane[r1 + i0[x]] + w1[x] * plane[r1 + i1[x]]);
    }
  }
  return { data, h, w };
}

/** Zoom blur: the mean of the image and its clipped zooms by each factor (each cropped to the
 *  top-left H×W, or added there when smaller), clipped. */
export function zoomBlur(img: PixelImage, factors: number[]): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const acc = new Float64Array(C * n);
  for (let i = 0; i < acc.length; i++) acc[i] = img.data[i];
  for (const z of factors) {
    for (let c = 0; c < C; c++) {
      const zoomed = clippedZoomPlane(img.data.subarray(c * n, (c + 1) * n), H, W, z);
      for (let y = 0; y < Math.min(H, zoomed.h); y++) for (let x = 0; x < Math.min(W, zoomed.w); x++) acc[c * n + y * W + x] += zoomed.data[y * zoomed.w + x];
    }
  }
  return like(img, Float32Array.from(acc, (v) => clip01(v / (factors.length + 1))));
}

/**
 * The plasma fractal (diamond–square) of imagecorruptions' fog: a mapsize² map (a power of
 * two) in [0,1], each step adding uniform(−wibble, wibble)·wibble to the mean of its
 * neighbours (wrapping), wibble starting at 100 and divided by `decay` per level.
 */
export function plasmaFractal(mapsize: number, decay: number, rng: () => number, site?: string): Float64Array {
  if (mapsize & (mapsize - 1)) throw new RangeError(`plasma map size ${mapsize} is not a power of two`);
  const N = mapsize;
  const mask = N - 1; // wrapping: i & mask is i mod N for a power of two (negative i too)
  const m = site ? scratch(site, N * N, true) : new Float64Array(N * N);
  let step = N;
  let wibble = 100;
  // Every point but (0, 0) takes one draw, in the order below: drawn beforehand in one pass (four
  // at a time in the WebAssembly kernel), then read in that order
  const u = site ? scratch(`${site}.draws`, N * N - 1) : new Float64Array(N * N - 1);
  fillDraws(rng, u);
  let k = 0;
  // Each phase reads only points an earlier phase wrote (corners, then centres) and writes others,
  // so it can write as it goes: the same sums, in the same order, with the draws in the same order.
  while (step >= 2) {
    const half = step / 2;
    // squares: centres from the four corners
    for (let y = half; y < N; y += step) {
      const ya = (y - half) * N;
      const yb = ((y + half) & mask) * N;
      for (let x = half; x < N; x += step) {
        const xa = x - half;
        const xb = (x + half) & mask;
        m[y * N + x] = (m[ya + xa] + m[yb + xa] + m[ya + xb] + m[yb + xb]) / 4 + wibble * (-wibble + 2 * wibble * u[k++]);
      }
    }
    // diamonds: on the rows of the corners (between two corners, above and below centres) …
    for (let y = 0; y < N; y += step) {
      const ya = ((y + half) & mask) * N;
      const yb = ((y - half) & mask) * N;
      for (let x = half; x < N; x += step) m[y * N + x] = (m[ya + x] + m[yb + x] + m[y * N + ((x - half) & mask)] + m[y * N + ((x + half) & mask)]) / 4 + wibble * (-wibble + 2 * wibble * u[k++]);
    }
    // … and on the rows of the centres
    for (let y = half; y < N; y += step) {
      const ya = (y - half) * N;
      const yb = ((y + half) & mask) * N;
      for (let x = 0; x < N; x += step) m[y * N + x] = (m[y * N + ((x + half) & mask)] + m[y * N + ((x - half) & mask)] + m[ya + x] + m[yb + x]) / 4 + wibble * (-wibble + 2 * wibble * u[k++]);
    }
    step = half;
    wibble /= decay;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < m.length; i++) {
    const v = m[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo || 1;
  for (let i = 0; i < m.length; i++) m[i] = (m[i] - lo) / range;
  return m;
}

/** Fog's per-image layer: the top-left H×W of a plasma map of the next power of two ≥ max(H, W). */
export function fogLayer(H: number, W: number, decay: number, rng: () => number, out: Float32Array = new Float32Array(H * W)): Float32Array {
  let N = 1;
  while (N < Math.max(H, W)) N *= 2;
  const p = plasmaFractal(N, decay, rng, 'fog.plasma');
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[y * W + x] = p[y * N + x];
  return out;
}

/** Fog with a drawn layer: (x + s·layer)·max/(max + s), max over the whole image, clipped. */
export function fogFromLayer(img: PixelImage, strength: number, layer: ArrayLike<number>): PixelImage {
  const n = img.height * img.width;
  let max = -Infinity;
  for (const v of img.data) max = Math.max(max, v);
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clip01(((img.data[i] + strength * layer[i % n]) * max) / (max + strength));
  return like(img, out);
}

/** Fog: [strength, wibble decay]. */
export function fog(img: PixelImage, strength: number, decay: number, rng: () => number): PixelImage {
  return fogFromLayer(img, strength, fogLayer(img.height, img.width, decay, rng));
}

/**
 * imagecorruptions' numpy motion blur of a plane (its stand-in for ImageMagick's): 2r+1 copies
 * of the plane, copy i shifted by −⌈i·(sin a, cos a) − ½⌉ with edges repeated, weighted by a
 * half-Gaussian of σ over i (normalised), stopping at a shift as large as the plane.
 */
export function motionBlurPlane(plane: ArrayLike<number>, H: number, W: number, radius: number, sigma: number, angle: number, site?: string): Float64Array {
  const taps = motionTaps(H, W, radius, sigma, angle);
  if (plane instanceof Float32Array || plane instanceof Float64Array) {
    const out = site ? scratch(site, H * W) : new Float64Array(H * W); // written whole
    if (motionBlurKernel(plane, H, W, taps, out)) return out;
  }
  const padded = padColumns(plane, H, W, taps, site ? scratch(`${site}.padded`, H * (W + 2 * tapPad(taps))) : undefined);
  const out = site ? scratch(site, H * W, true) : new Float64Array(H * W); // summed into
  for (let y = 0; y < H; y++) shiftAddRow(out.subarray(y * W, (y + 1) * W), padded, y, H, W, taps);
  return out;
}

/** The copies motionBlurPlane adds up: weight i of the copy shifted by (dy i, dx i), up to the first shift as large as the plane. */
export function motionTaps(H: number, W: number, radius: number, sigma: number, angle: number): { weight: Float64Array; dy: Int32Array; dx: Int32Array } {
  const width = 2 * radius + 1;
  const k = motionWeights(radius, sigma);
  const py = width * Math.sin((angle * Math.PI) / 180);
  const px = width * Math.cos((angle * Math.PI) / 180);
  const hyp = Math.hypot(py, px);
  let count = 0;
  const dy = new Int32Array(width);
  const dx = new Int32Array(width);
  for (let i = 0; i < width; i++) {
    dy[i] = -Math.ceil((i * py) / hyp - 0.5);
    dx[i] = -Math.ceil((i * px) / hyp - 0.5);
    if (Math.abs(dy[i]) >= H || Math.abs(dx[i]) >= W) break;
    count++;
  }
  return { weight: k.subarray(0, count), dy: dy.subarray(0, count), dx: dx.subarray(0, count) };
}

/** The motion kernel's normalised half-Gaussian weights, kept per (radius, σ): only the angle is
 *  drawn per image, and the weights' exps were a tenth of snow at 28×28. */
const motionWeightsKept = new Map<string, Float64Array>();
function motionWeights(radius: number, sigma: number): Float64Array {
  return kept(motionWeightsKept, `${radius} ${sigma}`, () => {
    const width = 2 * radius + 1;
    const k = new Float64Array(width);
    let z = 0;
    for (let i = 0; i < width; i++) z += k[i] = Math.exp(-(i * i) / (2 * sigma * sigma)) / (Math.sqrt(2 * Math.PI) * sigma);
    for (let i = 0; i < width; i++) k[i] /= z;
    return k;
  });
}

/** Columns added on each side of a plane for these taps: the largest horizontal shift. */
function tapPad(taps: { dx: Int32Array }): number {
  let P = 0;
  for (const dx of taps.dx) P = Math.max(P, Math.abs(dx));
  return P;
}

/**
 * The plane in float64 with tapPad(taps) columns added on each side, repeating its first and
 * last column: every tap then reads a whole row with no clamp (the values a clamped index reads).
 */
function padColumns(plane: ArrayLike<number>, H: number, W: number, taps: { dx: Int32Array }, out?: Float64Array): Float64Array {
  const P = tapPad(taps);
  const Wp = W + 2 * P;
  const padded = out ?? new Float64Array(H * Wp);
  for (let y = 0; y < H; y++) {
    const row = y * Wp;
    const first = plane[y * W];
    const last = plane[y * W + W - 1];
    for (let x = 0; x < P; x++) padded[row + x] = first;
    for (let x = 0; x < W; x++) padded[row + P + x] = plane[y * W + x];
    for (let x = P + W; x < Wp; x++) padded[row + x] = last;
  }
  return padded;
}

/**
 * Output row y of the motion blur: acc[x] = Σ_i a_i·src[clamp(y − dy_i), clamp(x − dx_i)], taps in
 * order (the same doubles as a loop over taps and clamped indices), one row at a time so that the
 * sum stays in cache. `padded` is the plane from padColumns, so a tap's row is one run with no
 * clamp, and eight taps go in one pass over the row (then four, then one): ((acc + a0·s0) +
 * a1·s1) + … is the sum in the same order, with an eighth of the loads and stores of acc (the
 * five ImageNet-C severities of a 224² image: 63 → 22 ms, against 27–31 at four taps a pass).
 */
function shiftAddRow(acc: Float64Array, padded: Float64Array, y: number, H: number, W: number, taps: { weight: Float64Array; dy: Int32Array; dx: Int32Array }): void {
  const Wp = padded.length / H;
  const P = (Wp - W) / 2;
  const n = taps.weight.length;
  const at = (i: number) => {
    const sy = y - taps.dy[i];
    return (sy < 0 ? 0 : sy >= H ? H - 1 : sy) * Wp + P - taps.dx[i];
  };
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const a0 = taps.weight[i], a1 = taps.weight[i + 1], a2 = taps.weight[i + 2], a3 = taps.weight[i + 3];
    const a4 = taps.weight[i + 4], a5 = taps.weight[i + 5], a6 = taps.weight[i + 6], a7 = taps.weight[i + 7];
    const o0 = at(i), o1 = at(i + 1), o2 = at(i + 2), o3 = at(i + 3), o4 = at(i + 4), o5 = at(i + 5), o6 = at(i + 6), o7 = at(i + 7);
    for (let x = 0; x < W; x++) {
      acc[x] = acc[x] + a0 * padded[o0 + x] + a1 * padded[o1 + x] + a2 * padded[o2 + x] + a3 * padded[o3 + x] +
        a4 * padded[o4 + x] + a5 * padded[o5 + x] + a6 * padded[o6 + x] + a7 * padded[o7 + x];
    }
  }
  for (; i + 4 <= n; i += 4) {
    const a0 = taps.weight[i], a1 = taps.weight[i + 1], a2 = taps.weight[i + 2], a3 = taps.weight[i + 3];
    const o0 = at(i), o1 = at(i + 1), o2 = at(i + 2), o3 = at(i + 3);
    for (let x = 0; x < W; x++) acc[x] = acc[x] + a0 * padded[o0 + x] + a1 * padded[o1 + x] + a2 * padded[o2 + x] + a3 * padded[o3 + x];
  }
  for (; i < n; i++) {
    const a = taps.weight[i];
    const o = at(i);
    for (let x = 0; x < W; x++) acc[x] += a * padded[o + x];
  }
}

/** Motion blur: [radius, σ]; the angle is drawn from uniform(−45°, 45°); clipped. */
export function motionBlur(img: PixelImage, radius: number, sigma: number, rng: () => number, out: Float32Array = new Float32Array(img.data.length)): PixelImage {
  const angle = -45 + 90 * rng();
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const taps = motionTaps(H, W, radius, sigma, angle);
  // the WebAssembly kernel where it runs (the same values, about 4× faster), else the loop below
  if (motionBlurKernel(img.data.subarray(0, n), H, W, taps, out.subarray(0, n))) {
    for (let c = 1; c < C; c++) motionBlurKernel(img.data.subarray(c * n, (c + 1) * n), H, W, taps, out.subarray(c * n, (c + 1) * n));
    return like(img, out);
  }
  const acc = scratch('motion.row', W); // zeroed per row below
  const padded = scratch('motion.padded', H * (W + 2 * tapPad(taps))); // padColumns writes it all
  for (let c = 0; c < C; c++) {
    padColumns(img.data.subarray(c * n, (c + 1) * n), H, W, taps, padded);
    for (let y = 0; y < H; y++) {
      acc.fill(0);
      shiftAddRow(acc, padded, y, H, W, taps);
      const row = c * n + y * W;
      for (let x = 0; x < W; x++) out[row + x] = acc[x] < 0 ? 0 : acc[x] > 1 ? 1 : acc[x];
    }
  }
  return like(img, out);
}

/**
 * Snow: [mean, std, zoom, threshold, blur radius, blur σ, mix]. A layer of N(mean, std) per
 * pixel, clipped-zoomed, zero below the threshold, clipped, motion-blurred at an angle drawn
 * from uniform(−135°, −45°), rounded to 8 bits; the image is mixed towards max(x, 1.5·grey + ½)
 * (grey: 0.299 R + 0.587 G + 0.114 B) and gets the layer plus the layer turned 180°, clipped.
 */
export function snow(img: PixelImage, c: readonly number[], rng: () => number, out: Float32Array = new Float32Array(img.data.length)): PixelImage {
  const [mean, std, zoom, threshold, radius, sigma, mix] = c;
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  // The layer's normals in row order, as gaussian() per pixel would draw them; clipped_zoom reads
  // only its centre crop (1/z² of it: 20–64% at ImageNet-C's zooms above 1), so only those are computed,
  // and the generator steps past the others (a few ns each against ~50 for log, sqrt and cos).
  const noise = scratch('snow.noise', n); // the zoom reads only the values written below
  let drawn = 0; // values the generator is past, in row order
  if (zoom === 1) {
    // No zoom: each zoomed value is its own normal (weights 1 and 0), and every value below the
    // threshold becomes 0 just after, so a normal that certainly falls below it need not be
    // computed (86–96% of them at the small-image table's two zoom-1 severities; ImageNet-C's
    // own snow zooms by 2 to 4.5).
    fillNormalsOrZero(rng, noise, mean, std, threshold);
    drawn = n;
  } else {
    const rows = zoomCrop(H, zoom);
    const cols = zoomCrop(W, zoom);
    for (let y = rows.top; y < rows.top + rows.ch; y++) {
      const at = y * W + cols.top;
      skipNormals(rng, at - drawn);
      fillNormals(rng, noise.subarray(at, at + cols.ch), mean, std);
      drawn = at + cols.ch;
    }
  }
  skipNormals(rng, n - drawn);
  // a zoom by 1 gives each value back (1·v + 0·neighbour), so it is left out
  const z = zoom === 1 ? { data: noise, h: H, w: W } : clippedZoomPlane(noise, H, W, zoom, 'snow.zoomed');
  for (let i = 0; i < z.data.length; i++) z.data[i] = z.data[i] < threshold ? 0 : clip01(z.data[i]);
  const blurred = motionBlurPlane(z.data, z.h, z.w, radius, sigma, -135 + 90 * rng(), 'snow.blurred');
  const hs = Math.min(H, z.h);
  const ws = Math.min(W, z.w);
  // the layer and the mix below in the WebAssembly kernel where it runs (the same values, ~3× faster)
  if (snowMixKernel(blurred, z.w, hs, ws, img.data, C, H, W, mix, out)) return like(img, out);
  const layer = scratch('snow.layer', n, true); // written up to hs × ws
  for (let y = 0; y < hs; y++) {
    for (let x = 0; x < ws; x++) {
      const a = Math.round(blurred[y * z.w + x] * 255) / 255;
      const b = Math.round(blurred[(hs - 1 - y) * z.w + (ws - 1 - x)] * 255) / 255;
      layer[y * W + x] = a + b;
    }
  }
  const x0 = img.data;
  const keep = 1 - mix;
  for (let p = 0; p < n; p++) {
    const grey = C === 3 ? 0.299 * x0[p] + 0.587 * x0[n + p] + 0.114 * x0[2 * n + p] : x0[p];
    const lit = grey * 1.5 + 0.5;
    const add = layer[p];
    for (let ch = 0; ch < C; ch++) {
      const x = x0[ch * n + p];
      // max(x, lit) as a comparison (lit ≥ ½, never NaN): Math.max's NaN and −0 checks cost a third of the loop
      out[ch * n + p] = clip01(mix * x + keep * (x > lit ? x : lit) + add);
    }
  }
  return like(img, out);
}

/** Bilinear taps into an H×W plane at (cy, cx): planes k = 0..3 of (y0,x0), (y0,x1), (y1,x0), (y1,x1), indices through `border`. */
export function bilinearTaps(index: Int32Array, weight: Float32Array, n: number, p: number, cy: number, cx: number, H: number, W: number, border: (i: number, n: number) => number): void {
  const y0 = Math.floor(cy);
  const x0 = Math.floor(cx);
  const fy = cy - y0;
  const fx = cx - x0;
  setTaps(index, weight, n, p, border(y0, H) * W, border(y0 + 1, H) * W, border(x0, W), border(x0 + 1, W), fy, fx);
}

/** Writes pixel p's four taps (rows ya, yb as offsets, columns xa, xb) and their bilinear weights into planes 0–3. */
function setTaps(index: Int32Array, weight: Float32Array, n: number, p: number, ya: number, yb: number, xa: number, xb: number, fy: number, fx: number): void {
  index[p] = ya + xa;
  index[n + p] = ya + xb;
  index[2 * n + p] = yb + xa;
  index[3 * n + p] = yb + xb;
  weight[p] = (1 - fy) * (1 - fx);
  weight[n + p] = (1 - fy) * fx;
  weight[2 * n + p] = fy * (1 - fx);
  weight[3 * n + p] = fy * fx;
}

const reflectHalf = (i: number, n: number) => borderIndex(i, n, 'reflect');
/** OpenCV's BORDER_REFLECT_101 (… 2 1 | 0 1 … n−1 | n−2 …): index i of [0, n) reflected at the borders without repeating the edge. */
export function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

/** A displacement field: uniform(±max) per pixel, Gaussian-smoothed (σy, σx, truncate 3, border 'reflect'), times alpha, to float32. */
function displacement(H: number, W: number, max: number, sy: number, sx: number, alpha: number, rng: () => number): Float32Array {
  const u = new Float64Array(H * W);
  for (let p = 0; p < u.length; p++) u[p] = -max + 2 * max * rng();
  if (!(sy > 0 && sx > 0)) return Float32Array.from(u, (v) => v * alpha);
  const s = filterPlane(u, H, W, gaussianWeights(sy, 3), gaussianWeights(sx, 3), 'reflect');
  return Float32Array.from(s, (v) => v * alpha);
}

/**
 * Elastic transform's sampling, drawn, as two rounds of four bilinear taps per output pixel
 * (planes 4s + k, k = 0..3: (y0,x0), (y0,x1), (y1,x0), (y1,x1)); round 0 is applied first.
 * Hendrycks' recipe (make_imagenet_c.py, make_cifar_c.py), c = [alpha, σ, affine] in pixels:
 *   1. a random affine warp: three points around the centre moved by uniform(±affine) (six
 *      float32 draws), the map through them (getAffineTransform), sampled bilinearly at its
 *      inverse with OpenCV's BORDER_REFLECT_101 (OpenCV's 1/32-pixel coordinate rounding is not
 *      reproduced);
 *   2. a displacement field per axis, uniform(±1) per pixel, Gaussian-smoothed (σ, truncate 3,
 *      border 'reflect'), times alpha, float32 (dx drawn first), sampled at (y + dy, x + dx) with
 *      indices mirrored half-sample (map_coordinates' 'reflect').
 * imagecorruptions rewrote this transform to be resolution-independent; its version is milder
 * than none and harsher than some of these severities, and AlexNet's errors (mCE's baseline)
 * were measured on this one, so this one is used.
 */
export function elasticTaps(H: number, W: number, c: readonly number[], rng: () => number): { index: Int32Array; weight: Float32Array; stages: number } {
  const n = H * W;
  const [alpha, sigma] = c;
  const index = new Int32Array(8 * n);
  const weight = new Float32Array(8 * n);
  elasticAffineTaps(H, W, c[2], rng, index, weight);
  const dx = displacement(H, W, 1, sigma, sigma, alpha, rng);
  const dy = displacement(H, W, 1, sigma, sigma, alpha, rng);
  const ib = index.subarray(4 * n);
  const wb = weight.subarray(4 * n);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) bilinearTaps(ib, wb, n, y * W + x, y + dy[y * W + x], x + dx[y * W + x], H, W, reflectHalf);
  return { index, weight, stages: 2 };
}

/**
 * Elastic's draws for the view graph (views/imagenet-c.ts), in elasticTaps' order: the affine
 * warp's four taps (round 1, as elasticTaps makes them: index and weight planes 0–3), then the
 * displacement field's uniform(±1) draws, dx's then dy's, as weight planes 4 and 5 (float32).
 * The graph smooths them (the filter is linear: a matrix product or a Conv per axis), scales
 * them by alpha and makes round 2's taps itself.
 */
export function elasticDraws(H: number, W: number, c: readonly number[], rng: () => number, index: Int32Array = new Int32Array(4 * H * W), weight: Float32Array = new Float32Array(6 * H * W)): { index: Int32Array; weight: Float32Array } {
  const n = H * W;
  elasticAffineTaps(H, W, c[2], rng, index, weight);
  fillUniforms(rng, weight.subarray(4 * n, 6 * n), -1, 2);
  return { index, weight };
}

/** Round 1 of elastic (the random affine warp), its six draws made: four bilinear tap planes into index and weight (planes 0–3). */
function elasticAffineTaps(H: number, W: number, affine: number, rng: () => number, index: Int32Array, weight: Float32Array): void {
  const n = H * W;
  const side = Math.min(H, W);
  // the affine: three source points around the centre, each coordinate moved by uniform(±affine)
  // (numbers and a typed array, not arrays of arrays: whether a drawn coordinate came out whole
  // changed the arrays' element kinds, and V8 threw this function's optimised code away for it)
  const cy = Math.floor(H / 2);
  const cx = Math.floor(W / 2);
  const sq = Math.floor(side / 3);
  const src = Float64Array.of(cy + sq, cx + sq, cy + sq, cx - sq, cy - sq, cx - sq); // as the reference writes them (row-first, read by OpenCV as x, y)
  const dst = new Float64Array(6);
  for (let k = 0; k < 6; k++) dst[k] = Math.fround(src[k] + Math.fround(-affine + 2 * affine * rng()));
  // M maps src → dst (OpenCV's x = first coordinate); the warp samples the source at M⁻¹·(x, y)
  const inv = invertAffine(affineThroughPoints(src, dst));
  // bilinearTaps(…, reflect101) with the border inlined (no border callback per pixel): the same values
  const i0 = inv[0], i1 = inv[1], i2 = inv[2], i3 = inv[3], i4 = inv[4], i5 = inv[5];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      const sx = i0 * x + i1 * y + i2;
      const sy = i3 * x + i4 * y + i5;
      const y0 = Math.floor(sy);
      const x0 = Math.floor(sx);
      const ya = (y0 >= 0 && y0 < H ? y0 : reflect101(y0, H)) * W;
      const yb = (y0 + 1 >= 0 && y0 + 1 < H ? y0 + 1 : reflect101(y0 + 1, H)) * W;
      const xa = x0 >= 0 && x0 < W ? x0 : reflect101(x0, W);
      const xb = x0 + 1 >= 0 && x0 + 1 < W ? x0 + 1 : reflect101(x0 + 1, W);
      setTaps(index, weight, n, p, ya, yb, xa, xb, sy - y0, sx - x0);
    }
  }
}

/** The affine map [a b c; d e f] taking three points (x, y) to three others (OpenCV's getAffineTransform). */
export function affineThrough(src: number[][], dst: number[][]): number[] {
  return [...affineThroughPoints(Float64Array.from(src.flat()), Float64Array.from(dst.flat()))];
}

/** The determinant of [a b c; d e f; g h i], along its first row. */
function det3(a: number, b: number, c: number, d: number, e: number, f: number, g: number, h: number, i: number): number {
  return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
}

/** affineThrough with the points as (x0, y0, x1, y1, x2, y2): by Cramer's rule on the rows (x, y, 1). */
function affineThroughPoints(src: Float64Array, dst: Float64Array): Float64Array {
  const x0 = src[0], y0 = src[1], x1 = src[2], y1 = src[3], x2 = src[4], y2 = src[5];
  const D = det3(x0, y0, 1, x1, y1, 1, x2, y2, 1);
  const m = new Float64Array(6);
  for (let r = 0; r < 2; r++) {
    // column j of the system replaced by the targets' coordinate r
    const b0 = dst[r];
    const b1 = dst[2 + r];
    const b2 = dst[4 + r];
    m[3 * r] = det3(b0, y0, 1, b1, y1, 1, b2, y2, 1) / D;
    m[3 * r + 1] = det3(x0, b0, 1, x1, b1, 1, x2, b2, 1) / D;
    m[3 * r + 2] = det3(x0, y0, b0, x1, y1, b1, x2, y2, b2) / D;
  }
  return m;
}

function invertAffine(m: Float64Array): Float64Array {
  const a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5];
  const det = a * e - b * d;
  return Float64Array.of(e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det);
}

/** Resampling by drawn taps, stage after stage: out[c, p] = Σ_k weight[k, p]·x[c, index[k, p]]; clipped at the end. */
export function fromTaps(img: PixelImage, taps: { index: Int32Array; weight: Float32Array; stages?: number }): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  const stages = taps.stages ?? 1;
  const K = taps.index.length / n / stages;
  let cur = Float64Array.from(img.data);
  for (let s = 0; s < stages; s++) {
    const next = new Float64Array(C * n);
    const o = s * K * n;
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < n; p++) {
        let v = 0;
        for (let k = 0; k < K; k++) v += taps.weight[o + k * n + p] * cur[c * n + taps.index[o + k * n + p]];
        next[c * n + p] = v;
      }
    }
    cur = next;
  }
  return like(img, Float32Array.from(cur, clip01));
}

/** Elastic transform: [alpha, σ, affine] in pixels. */
export function elastic(img: PixelImage, c: readonly number[], rng: () => number): PixelImage {
  return fromTaps(img, elasticTaps(img.height, img.width, c, rng));
}

/** Extra: speckle noise, x + x·N(0, σ²) per value, clipped. */
export function speckleNoise(img: PixelImage, sigma: number, rng: () => number): PixelImage {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clip01(img.data[i] + img.data[i] * sigma * gaussian(rng));
  return like(img, out);
}

/**
 * Extra: saturate, HSV saturation S·scale + shift, clipped, through skimage's rgb2hsv and
 * hsv2rgb (a grey pixel has hue 0, so a shift tints it red, as in the reference). A one-channel
 * image is unchanged (the reference converts it to RGB and keeps the red channel, which is V).
 */
export function saturate(img: PixelImage, scale: number, shift: number): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const n = H * W;
  if (C !== 3) return like(img, Float32Array.from(img.data, clip01));
  const out = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) {
    const r = img.data[p];
    const g = img.data[n + p];
    const b = img.data[2 * n + p];
    const v = Math.max(r, g, b);
    const delta = v - Math.min(r, g, b);
    let s = v > 0 ? delta / v : 0;
    if (delta === 0) s = 0;
    let h = 0;
    if (delta > 0) {
      if (b === v) h = 4 + (r - g) / delta;
      else if (g === v) h = 2 + (b - r) / delta;
      else h = (g - b) / delta;
      h = (((h / 6) % 1) + 1) % 1;
    }
    s = clip01(s * scale + shift);
    const hi = Math.floor(h * 6) % 6;
    const f = h * 6 - Math.floor(h * 6);
    const P = v * (1 - s);
    const Q = v * (1 - f * s);
    const T = v * (1 - (1 - f) * s);
    const rgb = [[v, T, P], [Q, v, P], [P, v, T], [P, Q, v], [T, P, v], [v, P, Q]][hi];
    for (let c = 0; c < 3; c++) out[c * n + p] = clip01(rgb[c]);
  }
  return like(img, out);
}
