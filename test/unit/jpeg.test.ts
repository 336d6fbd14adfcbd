/**
 * image/jpeg.ts's greyscale round trip against the codec it stands for: sharp's own encode and
 * decode (libvips with mozjpeg/libjpeg-turbo), value for value, at every quality, on images whose
 * sizes are and are not whole 8×8 blocks, with content that reaches every corner of the
 * arithmetic (noise, smooth gradients, two-level images such as MNIST's, checkerboards that give
 * the largest coefficients there are), and on real MNIST digits when ../shared/fixtures exists.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { jpeg } from '../../server/engine/image/corrupt';
import { jpegGreyRoundTrip, lumaTable } from '../../server/engine/image/jpeg';
import { mulberry32 } from '../../server/engine/random';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const MNIST = join(FIXTURES, 'mnist/t10k-00000-04999-images-idx3-ubyte.gz');

/** sharp's round trip of a one-channel image (it writes YCbCr with flat chroma: every channel is the luma). */
async function viaSharp(src: Uint8Array, H: number, W: number, quality: number): Promise<Uint8Array> {
  const encoded = await sharp(Buffer.from(src), { raw: { width: W, height: H, channels: 1 } })
    .jpeg({ quality, chromaSubsampling: '4:2:0', optimiseCoding: false })
    .toBuffer();
  const { data, info } = await sharp(encoded).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.height, info.width], [H, W]);
  const out = new Uint8Array(H * W);
  for (let p = 0; p < H * W; p++) {
    out[p] = data[p * info.channels];
    for (let c = 1; c < info.channels; c++) assert.equal(data[p * info.channels + c], out[p], 'sharp gives a grey image back');
  }
  return out;
}

function sameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  assert.equal(count, 0, `${what}: ${count} of ${want.length} values differ, first at ${first} (${got[first]} vs sharp's ${want[first]})`);
}

const patterns: Record<string, (x: number, y: number, rnd: () => number) => number> = {
  noise: (_x, _y, rnd) => Math.floor(rnd() * 256),
  smooth: (x, y) => Math.round(127 + 120 * Math.sin(x / 3) * Math.cos(y / 5)),
  twoLevel: (_x, _y, rnd) => (rnd() < 0.3 ? 255 : 0),
  checker: (x, y) => ((x + y) % 2 ? 255 : 0),
  stripes: (x) => (x % 2 ? 255 : 0),
};

test('the quality scaling is libjpeg\'s: 5000/q below 50, 200 − 2q from 50, entries clamped to 1..255', () => {
  assert.deepEqual([...lumaTable(50)].slice(0, 8), [16, 11, 10, 16, 24, 40, 51, 61], 'quality 50 is Annex K itself');
  assert.ok(lumaTable(100).every((v) => v === 1));
  assert.equal(lumaTable(1)[0], 255, '16 · 5000% clamps to 255');
  // quality 7: scale trunc(5000/7) = 714; (16·714 + 50)/100 = 114.74 → 114
  assert.equal(lumaTable(7)[0], 114);
  // quality 80: scale 40; (11·40 + 50)/100 = 4.9 → 4
  assert.equal(lumaTable(80)[1], 4);
});

test('the greyscale round trip gives sharp\'s values at every quality, on sizes that are and are not whole blocks', async () => {
  const rnd = mulberry32(17);
  for (const [H, W] of [[8, 8], [28, 28], [13, 21], [1, 9], [40, 64]]) {
    for (const [name, f] of Object.entries(patterns)) {
      const src = new Uint8Array(H * W);
      for (let i = 0; i < src.length; i++) src[i] = f(i % W, Math.floor(i / W), rnd);
      // every quality on the MNIST size, every seventh elsewhere (and the ends)
      const qualities = H === 28 ? Array.from({ length: 100 }, (_, k) => k + 1) : [1, 2, 5, 10, 15, 18, 25, 40, 50, 51, 58, 65, 80, 93, 99, 100];
      for (const q of qualities) sameBytes(jpegGreyRoundTrip(src, H, W, q), await viaSharp(src, H, W, q), `${H}×${W} ${name} at quality ${q}`);
    }
  }
});

test('MNIST digits: the round trip gives sharp\'s values at the corruption severities\' qualities', { skip: !existsSync(MNIST) && 'no fixtures' }, async () => {
  const raw = gunzipSync(readFileSync(MNIST)).subarray(16);
  for (let k = 0; k < 40; k++) {
    const digit = raw.subarray(k * 784, (k + 1) * 784);
    for (const q of [80, 65, 58, 50, 40, 25, 18, 15, 10, 7]) sameBytes(jpegGreyRoundTrip(digit, 28, 28, q), await viaSharp(digit, 28, 28, q), `digit ${k} at quality ${q}`);
  }
});

test('jpeg() of a one-channel image is the round trip through sharp, scaled to [0,1], and writes every value of the array it is given', async () => {
  const rnd = mulberry32(5);
  const H = 20;
  const W = 27;
  const data = Float32Array.from({ length: H * W }, () => rnd());
  const bytes = Uint8Array.from(data, (v) => Math.round(v * 255));
  const into = new Float32Array(H * W).fill(7);
  const out = await jpeg({ data, channels: 1, height: H, width: W }, 30, undefined, into);
  assert.equal(out.data, into);
  const want = await viaSharp(bytes, H, W, 30);
  for (let p = 0; p < H * W; p++) assert.equal(into[p], Math.fround(want[p] / 255), `pixel ${p}`);
});
