/**
 * Resampling of 8-bit images exactly as Pillow's Image.resize computes it (Pillow 9.x, the
 * library behind torchvision's transforms on PIL images), so a model is audited on the pixels it
 * was trained and evaluated on.
 *
 * The algorithm (written from Pillow's description of Resample.c, not copied):
 * - Separable: a horizontal pass (only if the width changes) into an 8-bit intermediate image,
 *   then a vertical pass (only if the height changes). The intermediate is rounded and clipped to
 *   8 bits, which is part of what makes the result PIL's and not an ideal convolution.
 * - Per output coordinate i, the centre in the source is (i + 0.5)·scale with scale = in/out.
 *   When shrinking, the filter is stretched by scale (antialiasing): support = filter support ·
 *   max(scale, 1). The taps run over source pixels [trunc(centre − support + 0.5),
 *   trunc(centre + support + 0.5)) clipped to the image, with weights filter((x − centre + 0.5) /
 *   max(scale,1)), normalised to sum 1, then turned into 22-bit fixed point by rounding half away
 *   from zero.
 * - Each output is (2^21 + Σ pixel·weight) >> 22, clipped to [0,255].
 * - NEAREST is not a filter in Pillow: it is an affine scaling that samples source index
 *   trunc(x0 + i·scale) with x0 = scale/2, the position accumulated step by step in double
 *   precision (so rounding drifts exactly as Pillow's loop does).
 *
 * Coefficient tables depend only on (filter, in size, out size); they are cached, since an audit
 * resizes many images of the same few sizes.
 */

export const INTERPOLATIONS = ['nearest', 'box', 'bilinear', 'hamming', 'bicubic', 'lanczos'] as const;
export type Interpolation = (typeof INTERPOLATIONS)[number];

/** Pillow's integer codes for its filters (Image.Resampling), as Hugging Face configs give them. */
export const PIL_CODES: Record<number, Interpolation> = { 0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' };

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

// Pillow's hamming window uses single-precision constants (0.54f, 0.46f).
const H054 = Math.fround(0.54);
const H046 = Math.fround(0.46);

interface Filter {
  support: number;
  fn: (x: number) => number;
}

const FILTERS: Record<Exclude<Interpolation, 'nearest'>, Filter> = {
  box: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    fn: (x) => {
      const a = x < 0 ? -x : x;
      return a < 1 ? 1 - a : 0;
    },
  },
  hamming: {
    support: 1,
    fn: (x) => {
      const a = x < 0 ? -x : x;
      if (a === 0) return 1;
      if (a >= 1) return 0;
      const px = a * Math.PI;
      return (Math.sin(px) / px) * (H054 + H046 * Math.cos(px));
    },
  },
  bicubic: {
    // Keys' cubic with a = −0.5 (Pillow's choice; torchvision's tensor path uses −0.75 unless antialiased).
    support: 2,
    fn: (x) => {
      const a = x < 0 ? -x : x;
      const A = -0.5;
      if (a < 1) return ((A + 2) * a - (A + 3)) * a * a + 1;
      if (a < 2) return (((a - 5) * a + 8) * a - 4) * A;
      return 0;
    },
  },
  lanczos: { support: 3, fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

/** Fixed-point coefficients for one axis: output i reads `count[i]` source pixels from `first[i]`
 *  with weights k[i·ksize …]. */
export interface AxisCoeffs {
  ksize: number;
  first: Int32Array;
  count: Int32Array;
  k: Int32Array;
}

/** Computes the 22-bit integer weights Pillow uses to resample an axis of inSize to outSize. */
export function axisCoeffs(filter: Exclude<Interpolation, 'nearest'>, inSize: number, outSize: number): AxisCoeffs {
  const { ksize, first, count, w } = axisWeights(filter, inSize, outSize);
  const k = new Int32Array(outSize * ksize);
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    k[i] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
  }
  return { ksize, first, count, k };
}

/**
 * Pillow's normalised real-valued weights for one axis (what it uses on float 'F' images, and
 * what axisCoeffs rounds to 22 bits for 8-bit ones): output i reads count[i] pixels from first[i]
 * with weights w[i·ksize …].
 */
export function axisWeights(filter: Exclude<Interpolation, 'nearest'>, inSize: number, outSize: number): { ksize: number; first: Int32Array; count: Int32Array; w: Float64Array } {
  const f = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = f.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const out = new Float64Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    let lo = Math.trunc(centre - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(centre + support + 0.5);
    if (hi > inSize) hi = inSize;
    const n = hi - lo;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      const v = f.fn((x + lo - centre + 0.5) * ss);
      w[x] = v;
      sum += v;
    }
    for (let x = 0; x < n; x++) out[i * ksize + x] = sum !== 0 ? w[x] / sum : w[x];
    first[i] = lo;
    count[i] = n;
  }
  return { ksize, first, count, w: out };
}

/** axisWeights as a dense [outSize, inSize] matrix (row i: output i's weights over the input). */
export function resampleMatrix(filter: Exclude<Interpolation, 'nearest'>, inSize: number, outSize: number): Float64Array {
  const { ksize, first, count, w } = axisWeights(filter, inSize, outSize);
  const m = new Float64Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) for (let t = 0; t < count[i]; t++) m[i * inSize + first[i] + t] = w[i * ksize + t];
  return m;
}

const CACHE_MAX = 64;
const cache = new Map<string, AxisCoeffs>();

/** axisCoeffs, cached per (filter, in, out): the tables are reused for every image of that size. */
function cachedCoeffs(filter: Exclude<Interpolation, 'nearest'>, inSize: number, outSize: number): AxisCoeffs {
  const key = `${filter}:${inSize}:${outSize}`;
  let c = cache.get(key);
  if (c) return c;
  c = axisCoeffs(filter, inSize, outSize);
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(key, c);
  return c;
}

/** An interleaved 8-bit image: `channels` bytes per pixel, rows of width pixels. */
export interface U8Image {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** (sum >> 22) clipped to [0, 255]; sums stay within int32, as in Pillow's int accumulators. */
function clip(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// The loops below keep every sum an int32 (`| 0`), which V8 runs as integer arithmetic; Pillow
// accumulates in a C int, so the bound is the same (|Σ pixel·weight| < 255·1.3·2^22 < 2^31).

/** Horizontal pass over rows [y0, y1) of src, into a (y1−y0)-row image of output columns [x0, x1). */
function horizontal(src: U8Image, x0: number, x1: number, y0: number, y1: number, co: AxisCoeffs): U8Image {
  const C = src.channels;
  const inRow = src.width * C;
  const outRow = (x1 - x0) * C;
  const out = new Uint8Array((y1 - y0) * outRow);
  const { ksize, first, count, k } = co;
  const s = src.data;
  for (let y = y0; y < y1; y++) {
    const rowIn = y * inRow;
    let o = (y - y0) * outRow;
    if (C === 3) {
      for (let x = x0; x < x1; x++, o += 3) {
        const kb = x * ksize;
        const n = count[x];
        let p = rowIn + first[x] * 3;
        let a = HALF, b = HALF, c = HALF;
        for (let t = 0; t < n; t++, p += 3) {
          const w = k[kb + t];
          a = (a + Math.imul(s[p], w)) | 0;
          b = (b + Math.imul(s[p + 1], w)) | 0;
          c = (c + Math.imul(s[p + 2], w)) | 0;
        }
        out[o] = clip(a);
        out[o + 1] = clip(b);
        out[o + 2] = clip(c);
      }
    } else {
      for (let x = x0; x < x1; x++, o += C) {
        const kb = x * ksize;
        const n = count[x];
        const p = rowIn + first[x] * C;
        for (let ch = 0; ch < C; ch++) {
          let a = HALF;
          for (let t = 0, q = p + ch; t < n; t++, q += C) a = (a + Math.imul(s[q], k[kb + t])) | 0;
          out[o + ch] = clip(a);
        }
      }
    }
  }
  return { data: out, width: x1 - x0, height: y1 - y0, channels: C };
}

/** Vertical pass: output rows [y0, y1), row i reading rows first[i]−offset … of src. */
function vertical(src: U8Image, y0: number, y1: number, offset: number, co: AxisCoeffs): U8Image {
  const row = src.width * src.channels;
  const out = new Uint8Array((y1 - y0) * row);
  const { ksize, first, count, k } = co;
  const s = src.data;
  for (let y = y0; y < y1; y++) {
    const kb = y * ksize;
    const n = count[y];
    const base = (first[y] - offset) * row;
    const o = (y - y0) * row;
    for (let i = 0; i < row; i++) {
      let a = HALF;
      for (let t = 0, p = base + i; t < n; t++, p += row) a = (a + Math.imul(s[p], k[kb + t])) | 0;
      out[o + i] = clip(a);
    }
  }
  return { data: out, width: src.width, height: y1 - y0, channels: src.channels };
}

/** Pillow's NEAREST: affine scaling with the source position accumulated in double precision. */
export function nearestIndex(inSize: number, outSize: number): Int32Array {
  const a = inSize / outSize;
  const idx = new Int32Array(outSize);
  let pos = a * 0.5;
  for (let i = 0; i < outSize; i++) {
    const v = pos < 0 ? -1 : Math.trunc(pos);
    idx[i] = v < 0 ? 0 : v >= inSize ? inSize - 1 : v;
    pos += a;
  }
  return idx;
}

function nearest(src: U8Image, outW: number, outH: number, win: ResizeWindow): U8Image {
  const C = src.channels;
  const xs = nearestIndex(src.width, outW);
  const ys = nearestIndex(src.height, outH);
  const out = new Uint8Array((win.x1 - win.x0) * (win.y1 - win.y0) * C);
  const inRow = src.width * C;
  let o = 0;
  for (let y = win.y0; y < win.y1; y++) {
    const r = ys[y] * inRow;
    for (let x = win.x0; x < win.x1; x++) {
      const p = r + xs[x] * C;
      for (let c = 0; c < C; c++) out[o++] = src.data[p + c];
    }
  }
  return { data: out, width: win.x1 - win.x0, height: win.y1 - win.y0, channels: C };
}

/** Output columns [x0, x1) and rows [y0, y1) of a resize. */
export interface ResizeWindow {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/**
 * Resizes an interleaved 8-bit image to outW×outH as Pillow's Image.resize(size, filter) does
 * (whole image, no reducing_gap). Returns the source itself when the size is unchanged.
 */
export function resizeU8(src: U8Image, outW: number, outH: number, filter: Interpolation): U8Image {
  if (outW === src.width && outH === src.height) return checkResize(src, outW, outH);
  return resizeU8Window(src, outW, outH, filter, { x0: 0, x1: outW, y0: 0, y1: outH });
}

/**
 * The window `win` of resizeU8(src, outW, outH, filter), computed alone: each output pixel reads
 * the same taps of the same 8-bit intermediate, so the values are those of the whole resize, for
 * the work of the window (a decoder that centre-crops 224×224 out of a 256-pixel short side skips
 * a third of it). With the size unchanged, the window of the source.
 */
export function resizeU8Window(src: U8Image, outW: number, outH: number, filter: Interpolation, win: ResizeWindow): U8Image {
  checkResize(src, outW, outH);
  const { x0, x1, y0, y1 } = win;
  if (!(Number.isInteger(x0) && Number.isInteger(x1) && Number.isInteger(y0) && Number.isInteger(y1) && 0 <= x0 && x0 < x1 && x1 <= outW && 0 <= y0 && y0 < y1 && y1 <= outH)) {
    throw new RangeError(`bad resize window ${JSON.stringify(win)} of ${outW}x${outH}`);
  }
  if (filter === 'nearest' || (outW === src.width && outH === src.height)) {
    // the unchanged size as NEAREST's identity (each index maps to itself)
    if (outW === src.width && outH === src.height && x0 === 0 && y0 === 0 && x1 === outW && y1 === outH) return src;
    return nearest(src, outW, outH, win);
  }
  const needH = outW !== src.width;
  const needV = outH !== src.height;
  const vco = cachedCoeffs(filter, src.height, outH);
  let img = src;
  let offset = 0;
  if (needH) {
    // Only the rows the vertical pass reads are resampled horizontally (as Pillow does), and only
    // the window's columns.
    const r0 = needV ? vco.first[y0] : y0;
    const r1 = needV ? vco.first[y1 - 1] + vco.count[y1 - 1] : y1;
    img = horizontal(src, x0, x1, r0, r1, cachedCoeffs(filter, src.width, outW));
    offset = r0;
  } else if (x0 > 0 || x1 < outW) {
    img = columns(src, x0, x1);
  }
  if (needV) img = vertical(img, y0, y1, offset, vco);
  return img;
}

function checkResize(src: U8Image, outW: number, outH: number): U8Image {
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW <= 0 || outH <= 0) {
    throw new RangeError(`bad resize target ${outW}x${outH}`);
  }
  if (src.data.length !== src.width * src.height * src.channels) throw new RangeError('pixel buffer does not match its size');
  return src;
}

/** Columns [x0, x1) of every row (a width kept, a window's columns). */
function columns(src: U8Image, x0: number, x1: number): U8Image {
  const C = src.channels;
  const out = new Uint8Array(src.height * (x1 - x0) * C);
  for (let y = 0; y < src.height; y++) out.set(src.data.subarray((y * src.width + x0) * C, (y * src.width + x1) * C), y * (x1 - x0) * C);
  return { data: out, width: x1 - x0, height: src.height, channels: C };
}
