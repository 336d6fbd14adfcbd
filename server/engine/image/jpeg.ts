/**
 * A baseline JPEG round trip (encode at a quality, decode) without the file in between: the
 * lossy part of libjpeg's codec alone, for greyscale images. A JPEG file stores each 8×8 block's
 * quantised DCT coefficients losslessly (Huffman coding), so encoding and decoding give back
 * exactly what quantising the forward DCT and running the inverse DCT gives, and that is all this
 * module computes, in libjpeg's integer arithmetic:
 * - the image padded to whole blocks by repeating its last column and row (jcprepct.c);
 * - samples centred on 0, the "islow" forward DCT (jfdctint.c, scaled by 8);
 * - quantisation by the standard (Annex K) luminance table scaled for the quality
 *   (jcparam.c: 5000/q below 50, 200 − 2q from 50, entries clamped to 1..255), dividing through
 *   libjpeg-turbo's reciprocal, correction and shift (jcdctmgr.c compute_reciprocal, quantize),
 *   which is what its SIMD quantiser computes;
 * - dequantisation, the "islow" inverse DCT (jidctint.c) and its range-limit table (jdmaster.c).
 *
 * Why: sharp's round trip for a small image is mostly fixed cost (two calls through libvips: ~2 ms
 * for a 28×28 image, 1 ms an image even in mosaics), while these integer loops take a few
 * microseconds a block. image/jpeg.test.ts checks every value against sharp's own encode and
 * decode, at every quality, on random, flat and MNIST images of sizes that are and are not whole
 * blocks. Colour images still go through sharp (image/corrupt.ts jpeg()).
 */

const LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/** The quantisation table for a quality 1..100 (force_baseline: entries 1..255), row-major. */
export function lumaTable(quality: number): Int32Array {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  // jpeg_quality_scaling returns an int: 5000/q truncated
  const scale = q < 50 ? Math.trunc(5000 / q) : 200 - 2 * q;
  const t = new Int32Array(64);
  for (let i = 0; i < 64; i++) t[i] = Math.min(255, Math.max(1, Math.trunc((LUMA[i] * scale + 50) / 100)));
  return t;
}

/** Per coefficient: libjpeg-turbo's reciprocal, correction and total shift for divisor q·8 (16-bit DCTELEM). */
interface Divisors {
  recip: Int32Array;
  corr: Int32Array;
  shift: Int32Array;
}

function divisorsFor(table: Int32Array): Divisors {
  const recip = new Int32Array(64);
  const corr = new Int32Array(64);
  const shift = new Int32Array(64);
  for (let i = 0; i < 64; i++) {
    const d = table[i] << 3;
    if (d === 1) {
      recip[i] = 1;
      corr[i] = 0;
      shift[i] = 0;
      continue;
    }
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
  return { recip, corr, shift };
}

const tables = new Map<number, { table: Int32Array; div: Divisors }>();
function quantFor(quality: number) {
  const q = Math.min(100, Math.max(1, Math.round(quality)));
  let t = tables.get(q);
  if (!t) {
    const table = lumaTable(q);
    tables.set(q, (t = { table, div: divisorsFor(table) }));
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
 * (x + 2^(n−1)) >> n, rounding half up. image/jpeg.test.ts's checkerboards at quality 100 give
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
  for (let o = 0; o < 64; o += 8) {
    const a0 = d[o], a1 = d[o + 1], a2 = d[o + 2], a3 = d[o + 3], a4 = d[o + 4], a5 = d[o + 5], a6 = d[o + 6], a7 = d[o + 7];
    const tmp0 = a0 + a7, tmp7 = a0 - a7, tmp1 = a1 + a6, tmp6 = a1 - a6;
    const tmp2 = a2 + a5, tmp5 = a2 - a5, tmp3 = a3 + a4, tmp4 = a3 - a4;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    d[o] = (tmp10 + tmp11) << PASS1_BITS;
    d[o + 4] = (tmp10 - tmp11) << PASS1_BITS;
    const z1e = (tmp12 + tmp13) * F0_541;
    d[o + 2] = (z1e + tmp13 * F0_765 + H1) >> S1;
    d[o + 6] = (z1e - tmp12 * F1_847 + H1) >> S1;
    const z5 = (tmp4 + tmp6 + tmp5 + tmp7) * F1_175;
    const z1 = -(tmp4 + tmp7) * F0_899;
    const z2 = -(tmp5 + tmp6) * F2_562;
    const z3 = -(tmp4 + tmp6) * F1_961 + z5;
    const z4 = -(tmp5 + tmp7) * F0_390 + z5;
    d[o + 7] = (tmp4 * F0_298 + z1 + z3 + H1) >> S1;
    d[o + 5] = (tmp5 * F2_053 + z2 + z4 + H1) >> S1;
    d[o + 3] = (tmp6 * F3_072 + z2 + z3 + H1) >> S1;
    d[o + 1] = (tmp7 * F1_501 + z1 + z4 + H1) >> S1;
  }
  for (let o = 0; o < 8; o++) {
    const a0 = d[o], a1 = d[o + 8], a2 = d[o + 16], a3 = d[o + 24], a4 = d[o + 32], a5 = d[o + 40], a6 = d[o + 48], a7 = d[o + 56];
    const tmp0 = a0 + a7, tmp7 = a0 - a7, tmp1 = a1 + a6, tmp6 = a1 - a6;
    const tmp2 = a2 + a5, tmp5 = a2 - a5, tmp3 = a3 + a4, tmp4 = a3 - a4;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    d[o] = (tmp10 + tmp11 + (1 << (PASS1_BITS - 1))) >> PASS1_BITS;
    d[o + 32] = (tmp10 - tmp11 + (1 << (PASS1_BITS - 1))) >> PASS1_BITS;
    const z1e = (tmp12 + tmp13) * F0_541;
    d[o + 16] = (z1e + tmp13 * F0_765 + H2) >> S2;
    d[o + 48] = (z1e - tmp12 * F1_847 + H2) >> S2;
    const z5 = (tmp4 + tmp6 + tmp5 + tmp7) * F1_175;
    const z1 = -(tmp4 + tmp7) * F0_899;
    const z2 = -(tmp5 + tmp6) * F2_562;
    const z3 = -(tmp4 + tmp6) * F1_961 + z5;
    const z4 = -(tmp5 + tmp7) * F0_390 + z5;
    d[o + 56] = (tmp4 * F0_298 + z1 + z3 + H2) >> S2;
    d[o + 40] = (tmp5 * F2_053 + z2 + z4 + H2) >> S2;
    d[o + 24] = (tmp6 * F3_072 + z2 + z3 + H2) >> S2;
    d[o + 8] = (tmp7 * F1_501 + z1 + z4 + H2) >> S2;
  }
}

/** jdmaster.c's post-IDCT range limit, indexed by (value & 1023): value + 128 clamped to 0..255. */
const RANGE = (() => {
  const t = new Uint8Array(1024);
  for (let i = 0; i < 1024; i++) t[i] = i < 128 ? i + 128 : i < 512 ? 255 : i < 896 ? 0 : i - 896;
  return t;
})();

/**
 * jpeg_idct_islow of 64 dequantised coefficients (columns into ws, then rows) into 8×8 samples at
 * out[at + y·W + x]. A column or row whose AC terms are all 0 takes libjpeg's shortcut (the same
 * values as the full pass).
 */
function idct(c: Int32Array, ws: Int32Array, out: Uint8Array, at: number, W: number): void {
  for (let col = 0; col < 8; col++) {
    const x0 = c[col], x1 = c[col + 8], x2 = c[col + 16], x3 = c[col + 24];
    const x4 = c[col + 32], x5 = c[col + 40], x6 = c[col + 48], x7 = c[col + 56];
    if ((x1 | x2 | x3 | x4 | x5 | x6 | x7) === 0) {
      const dc = x0 << PASS1_BITS;
      for (let r = 0; r < 64; r += 8) ws[col + r] = dc;
      continue;
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
    ws[col] = (tmp10 + t3 + H1) >> S1;
    ws[col + 56] = (tmp10 - t3 + H1) >> S1;
    ws[col + 8] = (tmp11 + t2 + H1) >> S1;
    ws[col + 48] = (tmp11 - t2 + H1) >> S1;
    ws[col + 16] = (tmp12 + t1 + H1) >> S1;
    ws[col + 40] = (tmp12 - t1 + H1) >> S1;
    ws[col + 24] = (tmp13 + t0 + H1) >> S1;
    ws[col + 32] = (tmp13 - t0 + H1) >> S1;
  }
  for (let w = 0, o = at; w < 64; w += 8, o += W) {
    const x0 = ws[w], x1 = ws[w + 1], x2 = ws[w + 2], x3 = ws[w + 3], x4 = ws[w + 4], x5 = ws[w + 5], x6 = ws[w + 6], x7 = ws[w + 7];
    if ((x1 | x2 | x3 | x4 | x5 | x6 | x7) === 0) {
      const v = RANGE[((x0 + (1 << (PASS1_BITS + 2))) >> (PASS1_BITS + 3)) & 1023];
      for (let x = 0; x < 8; x++) out[o + x] = v;
      continue;
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
    out[o] = RANGE[((tmp10 + t3 + H3) >> S3) & 1023];
    out[o + 7] = RANGE[((tmp10 - t3 + H3) >> S3) & 1023];
    out[o + 1] = RANGE[((tmp11 + t2 + H3) >> S3) & 1023];
    out[o + 6] = RANGE[((tmp11 - t2 + H3) >> S3) & 1023];
    out[o + 2] = RANGE[((tmp12 + t1 + H3) >> S3) & 1023];
    out[o + 5] = RANGE[((tmp12 - t1 + H3) >> S3) & 1023];
    out[o + 3] = RANGE[((tmp13 + t0 + H3) >> S3) & 1023];
    out[o + 4] = RANGE[((tmp13 - t0 + H3) >> S3) & 1023];
  }
}

/**
 * The greyscale JPEG round trip of an 8-bit image (H×W bytes, row-major) at a quality 1..100:
 * the bytes a baseline libjpeg encode and decode give back, into `out` (H×W).
 */
export function jpegGreyRoundTrip(src: Uint8Array, H: number, W: number, quality: number, out: Uint8Array = new Uint8Array(H * W)): Uint8Array {
  const { table, div } = quantFor(quality);
  const { recip, corr, shift } = div;
  const BH = Math.ceil(H / 8) * 8;
  const BW = Math.ceil(W / 8) * 8;
  const dec = new Uint8Array(BH * BW);
  const blk = new Int32Array(64);
  const ws = new Int32Array(64);
  for (let by = 0; by < BH; by += 8) {
    for (let bx = 0; bx < BW; bx += 8) {
      for (let y = 0; y < 8; y++) {
        const row = Math.min(by + y, H - 1) * W;
        for (let x = 0; x < 8; x++) blk[y * 8 + x] = src[row + Math.min(bx + x, W - 1)] - 128;
      }
      fdct(blk);
      for (let i = 0; i < 64; i++) {
        const t = blk[i];
        // |t| + correction, times the reciprocal (< 2^32: exact in a double, then >>> as uint32),
        // shifted; the sign back, and times the table entry to dequantise
        const q = ((((t < 0 ? -t : t) + corr[i]) * recip[i]) >>> shift[i]) | 0;
        blk[i] = (t < 0 ? -q : q) * table[i];
      }
      idct(blk, ws, dec, by * BW + bx, BW);
    }
  }
  for (let y = 0; y < H; y++) out.set(dec.subarray(y * BW, y * BW + W), y * W);
  return out;
}
