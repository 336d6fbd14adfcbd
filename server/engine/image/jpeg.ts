/**
 * A baseline JPEG round trip (encode at a quality, decode) without the file in between: the
 * lossy part of libjpeg's codec alone. A JPEG file stores each 8×8 block's quantised DCT
 * coefficients losslessly (Huffman coding), so encoding and decoding give back exactly what
 * quantising the forward DCT and running the inverse DCT gives, and that is all this module
 * computes, in libjpeg's integer arithmetic:
 * - each plane padded to whole blocks by repeating its last column and row (jcsample.c
 *   expand_right_edge, jcprepct.c);
 * - samples centred on 0, the "islow" forward DCT (jfdctint.c, scaled by 8);
 * - quantisation by the standard (Annex K) luminance or chrominance table scaled for the quality
 *   (jcparam.c: 5000/q below 50, 200 − 2q from 50, entries clamped to 1..255), dividing through
 *   libjpeg-turbo's reciprocal, correction and shift (jcdctmgr.c compute_reciprocal, quantize),
 *   which is what its SIMD quantiser computes;
 * - dequantisation, the "islow" inverse DCT (jidctint.c) and its range-limit table (jdmaster.c);
 * - for colour, 4:2:0 chroma: the conversions and resampling of jpegColourRoundTrip.
 * Everything before the quantisation is the same at every quality: jpegBlocks computes it once
 * for an image, jpegFromBlocks the rest at a quality (the corruption views' five JPEG severities).
 *
 * Why: sharp's round trip for a small image is mostly fixed cost (two calls through libvips:
 * ~1.7 ms of CPU for a 32×32 image), while these integer loops take about a microsecond a block.
 * test/unit/jpeg.test.ts checks every value against sharp's own encode and decode (libvips with
 * mozjpeg), at every quality, on noise, gradients, two-level images, checkerboards and MNIST
 * digits, at sizes that are and are not whole blocks and MCUs.
 */

const LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

const CHROMA = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
  ...new Array<number>(32).fill(99),
];

/** A quantisation table for a quality 1..100 (force_baseline: entries 1..255), row-major. */
function scaledTable(base: number[], quality: number): Int32Array {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  // jpeg_quality_scaling returns an int: 5000/q truncated
  const scale = q < 50 ? Math.trunc(5000 / q) : 200 - 2 * q;
  const t = new Int32Array(64);
  for (let i = 0; i < 64; i++) t[i] = Math.min(255, Math.max(1, Math.trunc((base[i] * scale + 50) / 100)));
  return t;
}

/** The luminance quantisation table for a quality 1..100. */
export function lumaTable(quality: number): Int32Array {
  return scaledTable(LUMA, quality);
}

/** The chrominance quantisation table for a quality 1..100. */
export function chromaTable(quality: number): Int32Array {
  return scaledTable(CHROMA, quality);
}

/** Per coefficient: libjpeg-turbo's reciprocal, correction and total shift for divisor q·8 (16-bit DCTELEM). */
interface Divisors {
  recip: Int32Array;
  corr: Int32Array;
  shift: Int32Array;
  /** the smallest |t| that does not quantise to 0: ((|t| + corr)·recip) >>> shift is 0 below it */
  least: Int32Array;
  /** the smallest of least's AC entries: a block whose AC coefficients are all below it is DC alone */
  leastAc: number;
}

function divisorsFor(table: Int32Array): Divisors {
  const recip = new Int32Array(64);
  const corr = new Int32Array(64);
  const shift = new Int32Array(64);
  for (let i = 0; i < 64; i++) {
    const d = table[i] << 3; // ≥ 8: compute_reciprocal's divisor-1 case never arises for the DCT
    const b = 31 - Math.clz32(d); // flss(d) − 1
    let r = 16 + b;
    let fq = Math.floor(2 ** r / d);
    const fr = 2 ** r % d;
    let c = Math.floor(d / 2);
    if (fr === 0) {
      fq = Math.floor(fq / 2);
      r--;
    } else if (fr <= Math.floor(d / 2)) c++;
    else fq++;
    recip[i] = fq;
    corr[i] = c;
    shift[i] = r;
  }
  const least = new Int32Array(64);
  for (let i = 0; i < 64; i++) {
    // (a + corr)·recip < 2^shift exactly when a < ⌈2^shift / recip⌉ − corr (all below 2^53)
    least[i] = Math.max(0, Math.ceil(2 ** shift[i] / recip[i]) - corr[i]);
  }
  let leastAc = Infinity;
  for (let i = 1; i < 64; i++) leastAc = Math.min(leastAc, least[i]);
  return { recip, corr, shift, least, leastAc };
}

type Quant = { table: Int32Array; div: Divisors };
const tables = new Map<string, Quant>();
function quantFor(quality: number, chroma = false): Quant {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  const key = `${chroma ? 'c' : 'y'}${q}`;
  let t = tables.get(key);
  if (!t) {
    const table = chroma ? chromaTable(q) : lumaTable(q);
    tables.set(key, (t = { table, div: divisorsFor(table) }));
  }
  return t;
}

// jfdctint.c / jidctint.c constants: FIX(x) = round(x · 2^13)
const F0_298 = 2446;
const F0_390 = 3196;
const F0_541 = 4433;
const F0_765 = 6270;
const F0_899 = 7373;
const F1_175 = 9633;
const F1_501 = 12299;
const F1_847 = 15137;
const F1_961 = 16069;
const F2_053 = 16819;
const F2_562 = 20995;
const F3_072 = 25172;
const CONST_BITS = 13;
const PASS1_BITS = 2;

/**
 * Both transforms in int32 arithmetic, as libjpeg-turbo's SIMD code computes them (16-bit samples
 * and coefficients, 32-bit products and sums), so nothing here passes 2^31; DESCALE(x, n) is
 * (x + 2^(n−1)) >> n, rounding half up. test/unit/jpeg.test.ts's checkerboards at quality 100 give
 * the largest coefficients there are.
 */
const S1 = CONST_BITS - PASS1_BITS;
const H1 = 1 << (S1 - 1);
const S2 = CONST_BITS + PASS1_BITS;
const H2 = 1 << (S2 - 1);
const S3 = CONST_BITS + PASS1_BITS + 3;
const H3 = 1 << (S3 - 1);

/** jpeg_fdct_islow in place on 64 centred samples: rows, then columns. */
function fdct(d: Int32Array): void {
  for (let o = 0; o < 64; o += 8) fdctPass(d, o, 1, true);
  for (let o = 0; o < 8; o++) fdctPass(d, o, 8, false);
}

/**
 * One 8-point pass of jpeg_fdct_islow on d[o + k·step], in place: the row pass scales by
 * 2^PASS1_BITS and descales its products by CONST_BITS − PASS1_BITS, the column pass removes
 * that scale and descales by CONST_BITS + PASS1_BITS.
 */
function fdctPass(d: Int32Array, o: number, step: number, rows: boolean): void {
  const a0 = d[o], a1 = d[o + step], a2 = d[o + 2 * step], a3 = d[o + 3 * step];
  const a4 = d[o + 4 * step], a5 = d[o + 5 * step], a6 = d[o + 6 * step], a7 = d[o + 7 * step];
  const tmp0 = a0 + a7, tmp7 = a0 - a7, tmp1 = a1 + a6, tmp6 = a1 - a6;
  const tmp2 = a2 + a5, tmp5 = a2 - a5, tmp3 = a3 + a4, tmp4 = a3 - a4;
  const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
  const sh = rows ? S1 : S2;
  const half = rows ? H1 : H2;
  d[o] = rows ? (tmp10 + tmp11) << PASS1_BITS : (tmp10 + tmp11 + (1 << (PASS1_BITS - 1))) >> PASS1_BITS;
  d[o + 4 * step] = rows ? (tmp10 - tmp11) << PASS1_BITS : (tmp10 - tmp11 + (1 << (PASS1_BITS - 1))) >> PASS1_BITS;
  const z1e = (tmp12 + tmp13) * F0_541;
  d[o + 2 * step] = (z1e + tmp13 * F0_765 + half) >> sh;
  d[o + 6 * step] = (z1e - tmp12 * F1_847 + half) >> sh;
  const z5 = (tmp4 + tmp6 + tmp5 + tmp7) * F1_175;
  const z1 = -(tmp4 + tmp7) * F0_899;
  const z2 = -(tmp5 + tmp6) * F2_562;
  const z3 = -(tmp4 + tmp6) * F1_961 + z5;
  const z4 = -(tmp5 + tmp7) * F0_390 + z5;
  d[o + 7 * step] = (tmp4 * F0_298 + z1 + z3 + half) >> sh;
  d[o + 5 * step] = (tmp5 * F2_053 + z2 + z4 + half) >> sh;
  d[o + 3 * step] = (tmp6 * F3_072 + z2 + z3 + half) >> sh;
  d[o + step] = (tmp7 * F1_501 + z1 + z4 + half) >> sh;
}

/** jdmaster.c's post-IDCT range limit, indexed by (value & 1023): value + 128 clamped to 0..255. */
const RANGE = (() => {
  const t = new Uint8Array(1024);
  for (let i = 0; i < 1024; i++) t[i] = i < 128 ? i + 128 : i < 512 ? 255 : i < 896 ? 0 : i - 896;
  return t;
})();

/**
 * jpeg_idct_islow of 64 dequantised coefficients (columns into ws, then rows through the range
 * limit) into 8×8 samples at out[at + y·W + x].
 */
function idct(c: Int32Array, ws: Int32Array, row: Int32Array, out: Uint8Array, at: number, W: number): void {
  for (let col = 0; col < 8; col++) idctPass(c, col, 8, ws, S1, H1);
  for (let w = 0, o = at; w < 64; w += 8, o += W) {
    idctPass(ws, w, 1, row, S3, H3);
    for (let x = 0; x < 8; x++) out[o + x] = RANGE[row[x] & 1023];
  }
}

/** jpeg_idct_islow's shortcut for a column or row whose AC terms are all 0: its DC, descaled by 2^sh. */
function dcPass(x0: number, sh: number, half: number): number {
  return ((x0 << CONST_BITS) + half) >> sh;
}

/**
 * One 8-point pass of jpeg_idct_islow: src[o + k·step] to dst[o + k·step] (dst: the same layout
 * as src for the column pass, 8 values for a row), descaled by 2^sh. A column or row whose AC
 * terms are all 0 takes libjpeg's shortcut, which gives the values the full pass gives.
 */
function idctPass(src: Int32Array, o: number, step: number, dst: Int32Array, sh: number, half: number): void {
  const x0 = src[o], x1 = src[o + step], x2 = src[o + 2 * step], x3 = src[o + 3 * step];
  const x4 = src[o + 4 * step], x5 = src[o + 5 * step], x6 = src[o + 6 * step], x7 = src[o + 7 * step];
  const d = step === 1 ? 0 : o; // a row goes to dst[0..7]
  if ((x1 | x2 | x3 | x4 | x5 | x6 | x7) === 0) {
    const dc = dcPass(x0, sh, half);
    for (let k = 0; k < 8; k++) dst[d + k * step] = dc;
    return;
  }
  const z1e = (x2 + x6) * F0_541;
  const tmp2e = z1e - x6 * F1_847;
  const tmp3e = z1e + x2 * F0_765;
  const tmp0e = (x0 + x4) << CONST_BITS;
  const tmp1e = (x0 - x4) << CONST_BITS;
  const tmp10 = tmp0e + tmp3e, tmp13 = tmp0e - tmp3e, tmp11 = tmp1e + tmp2e, tmp12 = tmp1e - tmp2e;
  const z5 = (x7 + x3 + x5 + x1) * F1_175;
  const z1 = -(x7 + x1) * F0_899;
  const z2 = -(x5 + x3) * F2_562;
  const z3 = -(x7 + x3) * F1_961 + z5;
  const z4 = -(x5 + x1) * F0_390 + z5;
  const t0 = x7 * F0_298 + z1 + z3;
  const t1 = x5 * F2_053 + z2 + z4;
  const t2 = x3 * F3_072 + z2 + z3;
  const t3 = x1 * F1_501 + z1 + z4;
  dst[d] = (tmp10 + t3 + half) >> sh;
  dst[d + 7 * step] = (tmp10 - t3 + half) >> sh;
  dst[d + step] = (tmp11 + t2 + half) >> sh;
  dst[d + 6 * step] = (tmp11 - t2 + half) >> sh;
  dst[d + 2 * step] = (tmp12 + t1 + half) >> sh;
  dst[d + 5 * step] = (tmp12 - t1 + half) >> sh;
  dst[d + 3 * step] = (tmp13 + t0 + half) >> sh;
  dst[d + 4 * step] = (tmp13 - t0 + half) >> sh;
}

/**
 * One component's forward half: `plane` (PH×PW samples, both whole blocks) block by block,
 * centred and through the forward DCT, into coefficients block after block (64 each, row-major
 * in the block). What every quality quantises: an image's five JPEG severities compute it once.
 */
function forwardPlane(plane: Uint8Array, PH: number, PW: number): CodedPlane {
  const coef = new Int32Array(PH * PW);
  const maxAc = new Int32Array((PH * PW) >> 6);
  // the loop in a function of its own: V8 compiles it on stack replacement mid-loop, and an
  // object built after such a loop sent the compiled code back to the interpreter on every call
  forwardBlocks(plane, PH, PW, coef, maxAc);
  return { coef, maxAc, PH, PW };
}

function forwardBlocks(plane: Uint8Array, PH: number, PW: number, coef: Int32Array, maxAc: Int32Array): void {
  const blk = new Int32Array(64);
  let k = 0;
  for (let by = 0; by < PH; by += 8) {
    for (let bx = 0; bx < PW; bx += 8, k += 64) {
      const at = by * PW + bx;
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) blk[y * 8 + x] = plane[at + y * PW + x] - 128;
      fdct(blk);
      coef.set(blk, k);
      maxAc[k >> 6] = largestAc(blk);
    }
  }
}

/** The largest |AC coefficient| of a block. */
function largestAc(blk: Int32Array): number {
  let m = 0;
  for (let i = 1; i < 64; i++) {
    const a = blk[i] < 0 ? -blk[i] : blk[i];
    if (a > m) m = a;
  }
  return m;
}

/**
 * One component's quality-dependent half: each block's coefficients (forwardPlane's, left as
 * they are) quantised by `quant`, dequantised and through the inverse DCT into `plane` (PH×PW).
 */
function inversePlane({ coef, maxAc, PH, PW }: CodedPlane, quant: Quant, plane: Uint8Array): void {
  const { table, div } = quant;
  const { recip, corr, shift, least, leastAc } = div;
  const blk = new Int32Array(64);
  const ws = new Int32Array(64);
  const row = new Int32Array(8);
  let k = 0;
  for (let by = 0; by < PH; by += 8) {
    for (let bx = 0; bx < PW; bx += 8, k += 64) {
      let ac = 0; // any AC coefficient left after quantisation
      // a block whose AC coefficients all quantise to 0 (most chroma blocks at low qualities)
      // needs its DC alone
      for (let i = 0, end = maxAc[k >> 6] < leastAc ? 1 : 64; i < end; i++) {
        const t = coef[k + i];
        const a = t < 0 ? -t : t;
        // most coefficients quantise to 0 at the qualities ImageNet-C uses: one comparison
        if (a < least[i]) {
          blk[i] = 0;
          continue;
        }
        // |t| + correction, times the reciprocal (< 2^32: exact in a double, then >>> as uint32),
        // shifted; the sign back, and times the table entry to dequantise
        const q = (((a + corr[i]) * recip[i]) >>> shift[i]) | 0;
        blk[i] = (t < 0 ? -q : q) * table[i];
        ac |= i;
      }
      const at = by * PW + bx;
      if (ac === 0) {
        // DC alone: every column's and row's pass takes jpeg_idct_islow's shortcut, so the block
        // is one value (the column pass's DC, through the row pass's)
        const v = RANGE[dcPass(dcPass(blk[0], S1, H1), S3, H3) & 1023];
        for (let y = 0, o = at; y < 8; y++, o += PW) plane.fill(v, o, o + 8);
      } else idct(blk, ws, row, plane, at, PW);
    }
  }
}

/** A plane's DCT coefficients, each block's largest |AC coefficient|, and its size in whole blocks. */
interface CodedPlane {
  coef: Int32Array;
  maxAc: Int32Array;
  PH: number;
  PW: number;
}

/**
 * An image's JPEG round trip up to the quantisation, which alone depends on the quality: its
 * planes' forward DCT coefficients (greyscale: the one plane; colour: Y, then Cb and Cr after
 * the conversion and 4:2:0 downsampling). jpegFromBlocks finishes it at any quality.
 */
export interface JpegBlocks {
  height: number;
  width: number;
  colour: boolean;
  planes: CodedPlane[];
}

/**
 * The forward half of the greyscale (`colour` false: H×W bytes) or colour (H×W×3 interleaved,
 * each side at least COLOUR_MIN_SIDE) round trip of an 8-bit image.
 */
export function jpegBlocks(src: Uint8Array, H: number, W: number, colour: boolean): JpegBlocks {
  if (!colour) {
    const BH = Math.ceil(H / 8) * 8;
    const BW = Math.ceil(W / 8) * 8;
    const plane = new Uint8Array(BH * BW);
    // the right and bottom edges repeated to whole blocks (jcsample.c expand_right_edge, jcprepct.c)
    for (let y = 0; y < BH; y++) {
      const row = Math.min(y, H - 1) * W;
      for (let x = 0; x < BW; x++) plane[y * BW + x] = src[row + Math.min(x, W - 1)];
    }
    return { height: H, width: W, colour, planes: [forwardPlane(plane, BH, BW)] };
  }
  if (H < COLOUR_MIN_SIDE || W < COLOUR_MIN_SIDE) throw new RangeError(`colour JPEG round trip: ${W}×${H} is below ${COLOUR_MIN_SIDE} on a side`);
  // whole MCUs of 16×16: luma in 8×8 blocks, chroma half size in 8×8 blocks
  const MH = Math.ceil(H / 16) * 16;
  const MW = Math.ceil(W / 16) * 16;
  const Y = new Uint8Array(MH * MW);
  const Cb = new Uint8Array(MH * MW);
  const Cr = new Uint8Array(MH * MW);
  for (let y = 0; y < MH; y++) {
    const row = Math.min(y, H - 1) * W;
    for (let x = 0; x < MW; x++) {
      const p = (row + Math.min(x, W - 1)) * 3;
      const r = src[p], g = src[p + 1], b = src[p + 2];
      const o = y * MW + x;
      Y[o] = (Y_R * r + Y_G * g + Y_B * b + ONE_HALF) >> 16;
      Cb[o] = (CB_R * r + CB_G * g + HALF * b + CBCR_OFFSET + ONE_HALF - 1) >> 16;
      Cr[o] = (HALF * r + CR_G * g + CR_B * b + CBCR_OFFSET + ONE_HALF - 1) >> 16;
    }
  }
  const CH = MH / 2;
  const CW = MW / 2;
  const cb = new Uint8Array(CH * CW);
  const cr = new Uint8Array(CH * CW);
  const dh = (H + 1) >> 1;
  for (let j = 0; j < CH; j++) {
    if (j >= dh) {
      // below the image the downsampled rows repeat the last one (jcprepct.c pads after downsampling)
      cb.copyWithin(j * CW, (dh - 1) * CW, dh * CW);
      cr.copyWithin(j * CW, (dh - 1) * CW, dh * CW);
      continue;
    }
    const r0 = 2 * j * MW;
    const r1 = r0 + MW;
    for (let i = 0, bias = 1; i < CW; i++, bias ^= 3) {
      const a = r0 + 2 * i;
      const b = r1 + 2 * i;
      cb[j * CW + i] = (Cb[a] + Cb[a + 1] + Cb[b] + Cb[b + 1] + bias) >> 2;
      cr[j * CW + i] = (Cr[a] + Cr[a + 1] + Cr[b] + Cr[b + 1] + bias) >> 2;
    }
  }
  return {
    height: H,
    width: W,
    colour,
    planes: [forwardPlane(Y, MH, MW), forwardPlane(cb, CH, CW), forwardPlane(cr, CH, CW)],
  };
}

/**
 * The rest of the round trip at a quality 1..100: quantisation, dequantisation, the inverse DCT
 * and, for colour, the upsampling and conversion back; into `out` (H×W, or H×W×3 interleaved).
 * `blocks` is only read: the same blocks give every quality.
 */
export function jpegFromBlocks(blocks: JpegBlocks, quality: number, out?: Uint8Array): Uint8Array {
  const { height: H, width: W } = blocks;
  if (!blocks.colour) {
    const { plane, PW } = greyFromBlocks(blocks, quality);
    const grey = out ?? new Uint8Array(H * W);
    for (let y = 0; y < H; y++) grey.set(plane.subarray(y * PW, y * PW + W), y * W);
    return grey;
  }
  const rgb = out ?? new Uint8Array(H * W * 3);
  colourFromBlocks(blocks, quality, rgb, undefined);
  return rgb;
}

/** k/255 for each byte k, as the float32 that `k / 255` stores. */
const UNIT = Float32Array.from({ length: 256 }, (_, k) => k / 255);

/**
 * jpegFromBlocks, written as values in [0, 1] into C planes of H×W (the float32 of each byte
 * / 255, the corruption views' layout): no interleaved bytes in between.
 */
export function jpegFromBlocksPlanar(blocks: JpegBlocks, quality: number, out: Float32Array): Float32Array {
  const { height: H, width: W } = blocks;
  if (!blocks.colour) {
    const { plane, PW } = greyFromBlocks(blocks, quality);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[y * W + x] = UNIT[plane[y * PW + x]];
    return out;
  }
  colourFromBlocks(blocks, quality, undefined, out);
  return out;
}

/** The grey half of jpegFromBlocks: the plane through the inverse (whole blocks, PW samples a row; reused from call to call). */
function greyFromBlocks(blocks: JpegBlocks, quality: number): { plane: Uint8Array; PW: number } {
  const coded = blocks.planes[0];
  const plane = scratchBytes(0, coded.PH * coded.PW); // every sample written by inversePlane
  inversePlane(coded, quantFor(quality), plane);
  return { plane, PW: coded.PW };
}

/**
 * The colour half of jpegFromBlocks: the three planes through the inverse, the chroma upsampled
 * and each pixel converted to RGB, written as interleaved bytes into `rgb` or as planar values
 * in [0, 1] into `planar` (one branch a pixel, always the same way: cheaper than a callback,
 * which V8 does not inline once two are passed).
 */
function colourFromBlocks(blocks: JpegBlocks, quality: number, rgb: Uint8Array | undefined, planar: Float32Array | undefined): void {
  const { height: H, width: W } = blocks;
  const n = H * W;
  const [luma, blue, red] = blocks.planes;
  const MW = luma.PW;
  const CW = blue.PW;
  // every sample of the three planes is written by inversePlane, so they are reused call to call
  const Y = scratchBytes(0, luma.PH * MW);
  const cb = scratchBytes(1, blue.PH * CW);
  const cr = scratchBytes(2, red.PH * CW);
  inversePlane(luma, quantFor(quality), Y);
  const chroma = quantFor(quality, true);
  inversePlane(blue, chroma, cb);
  inversePlane(red, chroma, cr);
  const dw = (W + 1) >> 1;
  const dh = (H + 1) >> 1;
  // fancy upsampling over the chroma samples the image has (ceil(W/2) × ceil(H/2)); the rows
  // above the first and below the last are those rows again (jdmainct.c's context pointers)
  const upCb = new Uint8Array(2 * dw);
  const upCr = new Uint8Array(2 * dw);
  for (let y = 0; y < H; y++) {
    const j = y >> 1;
    const k = y & 1 ? Math.min(j + 1, dh - 1) : Math.max(j - 1, 0);
    upsampleRow(cb, j * CW, k * CW, dw, upCb);
    upsampleRow(cr, j * CW, k * CW, dw, upCr);
    for (let x = 0; x < W; x++) {
      const yy = Y[y * MW + x];
      const b = upCb[x];
      const r = upCr[x];
      const R = clamp255(yy + CR_R[r]);
      const G = clamp255(yy + ((CB_GT[b] + CR_GT[r]) >> 16));
      const B = clamp255(yy + CB_B[b]);
      const o = y * W + x;
      if (planar) {
        planar[o] = UNIT[R];
        planar[n + o] = UNIT[G];
        planar[2 * n + o] = UNIT[B];
      } else {
        rgb![3 * o] = R;
        rgb![3 * o + 1] = G;
        rgb![3 * o + 2] = B;
      }
    }
  }
}

/** Byte planes reused from call to call (a thread runs one round trip at a time), by slot. */
const scratchPlanes: Uint8Array[] = [];
function scratchBytes(slot: number, n: number): Uint8Array {
  let b = scratchPlanes[slot];
  if (!b || b.length < n) scratchPlanes[slot] = b = new Uint8Array(n);
  return b.subarray(0, n);
}

/**
 * The greyscale JPEG round trip of an 8-bit image (H×W bytes, row-major) at a quality 1..100:
 * the bytes a baseline libjpeg encode and decode give back, into `out` (H×W).
 */
export function jpegGreyRoundTrip(src: Uint8Array, H: number, W: number, quality: number, out: Uint8Array = new Uint8Array(H * W)): Uint8Array {
  return jpegFromBlocks(jpegBlocks(src, H, W, false), quality, out);
}

// jccolor.c / jdcolor.c: colour conversion in 16-bit fixed point, FIX(x) = round(x · 2^16)
const FIX = (x: number) => Math.trunc(x * 65536 + 0.5);
const ONE_HALF = 1 << 15;
const CBCR_OFFSET = 128 << 16;
const Y_R = FIX(0.299), Y_G = FIX(0.587), Y_B = FIX(0.114);
const CB_R = -FIX(0.16874), CB_G = -FIX(0.33126), HALF = FIX(0.5);
const CR_G = -FIX(0.41869), CR_B = -FIX(0.08131);
/** jdcolor.c build_ycc_rgb_table, indexed by the chroma sample 0..255. */
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_GT = new Int32Array(256);
const CB_GT = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + ONE_HALF) >> 16;
  CB_B[i] = (FIX(1.772) * x + ONE_HALF) >> 16;
  CR_GT[i] = -FIX(0.71414) * x;
  CB_GT[i] = -FIX(0.34414) * x + ONE_HALF;
}
const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Smallest image the colour round trip takes: libjpeg upsamples chroma by replication instead when it is 2 samples wide or less. */
export const COLOUR_MIN_SIDE = 6;

/**
 * The colour JPEG round trip of an 8-bit RGB image (H×W×3 bytes, interleaved, as sharp takes raw
 * input) at a quality 1..100, with 4:2:0 chroma: what libjpeg's encode and decode give back,
 * into `out` (interleaved). The steps, each libjpeg's integer arithmetic:
 * - RGB → YCbCr (jccolor.c), the image's right and bottom edges repeated to whole MCUs;
 * - chroma halved both ways by 2×2 sums with the alternating bias 1, 2 (jcsample.c h2v2_downsample);
 * - each plane's blocks through the DCT, quantisation (luminance and chrominance tables) and back;
 * - chroma doubled by the "fancy" triangle filter (jdsample.c h2v2_fancy_upsample: 3/4 of the
 *   nearer sample, 1/4 of the farther, both ways; the first and last rows and columns repeated);
 * - YCbCr → RGB through jdcolor.c's tables, clamped.
 * Width and height at least COLOUR_MIN_SIDE.
 */
export function jpegColourRoundTrip(src: Uint8Array, H: number, W: number, quality: number, out: Uint8Array = new Uint8Array(H * W * 3)): Uint8Array {
  return jpegFromBlocks(jpegBlocks(src, H, W, true), quality, out);
}

/** jdsample.c h2v2_fancy_upsample for one output row: the nearer chroma row at `near`, the farther at `far`, `dw` samples → 2·dw. */
function upsampleRow(c: Uint8Array, near: number, far: number, dw: number, out: Uint8Array): void {
  let thiscol = c[near] * 3 + c[far];
  let nextcol = c[near + 1] * 3 + c[far + 1];
  out[0] = (thiscol * 4 + 8) >> 4;
  out[1] = (thiscol * 3 + nextcol + 7) >> 4;
  let lastcol = thiscol;
  thiscol = nextcol;
  let o = 2;
  for (let i = 2; i < dw; i++) {
    nextcol = c[near + i] * 3 + c[far + i];
    out[o++] = (thiscol * 3 + lastcol + 8) >> 4;
    out[o++] = (thiscol * 3 + nextcol + 7) >> 4;
    lastcol = thiscol;
    thiscol = nextcol;
  }
  out[o++] = (thiscol * 3 + lastcol + 8) >> 4;
  out[o] = (thiscol * 4 + 7) >> 4;
}
