/**
 * image/jpeg.ts's greyscale and colour round trips against the codec they stand for: sharp's own
 * encode and decode (libvips with mozjpeg), value for value, at every quality, on images whose
 * sizes are and are not whole 8×8 blocks and 16×16 MCUs, with content that reaches every corner of the
 * arithmetic (noise, smooth gradients, two-level images such as MNIST's, checkerboards that give
 * the largest coefficients there are), and on real MNIST digits when ../shared/fixtures exists.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { jpeg, jpegBlocksOf } from '../../server/engine/image/corrupt';
import { chromaTable, COLOUR_MIN_SIDE, jpegBlocks, jpegColourRoundTrip, jpegFromBlocks, jpegGreyRoundTrip, lumaTable } from '../../server/engine/image/jpeg';
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
  assert.deepEqual([...chromaTable(50)].slice(0, 4), [17, 18, 24, 47]);
  assert.ok(chromaTable(50).slice(32).every((v) => v === 99));
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

/** sharp's round trip of an RGB image (interleaved bytes in and out). */
async function viaSharpColour(src: Uint8Array, H: number, W: number, quality: number): Promise<Uint8Array> {
  const encoded = await sharp(Buffer.from(src), { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:2:0', optimiseCoding: false })
    .toBuffer();
  const { data, info } = await sharp(encoded).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.height, info.width, info.channels], [H, W, 3]);
  return data;
}

const colourPatterns: Record<string, (x: number, y: number, c: number, rnd: () => number) => number> = {
  noise: (_x, _y, _c, rnd) => Math.floor(rnd() * 256),
  smooth: (x, y, c) => Math.round(127 + 120 * Math.sin(x / 3 + c) * Math.cos(y / 5 - c)),
  checker: (x, y, c) => ((x + y + c) % 2 ? 255 : 0),
  saturated: (x, y, c) => (c === (x + 2 * y) % 3 ? 255 : 0),
};

function colourImage(H: number, W: number, f: (x: number, y: number, c: number, rnd: () => number) => number, rnd: () => number): Uint8Array {
  const src = new Uint8Array(H * W * 3);
  for (let i = 0; i < src.length; i++) src[i] = f(Math.floor(i / 3) % W, Math.floor(i / 3 / W), i % 3, rnd);
  return src;
}

test('the colour round trip (4:2:0) gives sharp\'s values at every quality of a CIFAR-size image', async () => {
  const rnd = mulberry32(23);
  for (const [name, f] of Object.entries(colourPatterns)) {
    const src = colourImage(32, 32, f, rnd);
    for (let q = 1; q <= 100; q++) sameBytes(jpegColourRoundTrip(src, 32, 32, q), await viaSharpColour(src, 32, 32, q), `32×32 ${name} at quality ${q}`);
  }
});

test('the colour round trip gives sharp\'s values at every size from 6 to 20 a side and at sizes that are not whole MCUs', async () => {
  const rnd = mulberry32(29);
  // odd and even heights pad the chroma rows differently (jcprepct.c pads after downsampling)
  for (let H = COLOUR_MIN_SIDE; H <= 20; H++) {
    for (let W = COLOUR_MIN_SIDE; W <= 20; W++) {
      const src = colourImage(H, W, colourPatterns.noise, rnd);
      sameBytes(jpegColourRoundTrip(src, H, W, 50), await viaSharpColour(src, H, W, 50), `${H}×${W} noise at quality 50`);
    }
  }
  for (const [H, W] of [[13, 21], [40, 64], [17, 33], [50, 31]]) {
    for (const [name, f] of Object.entries(colourPatterns)) {
      const src = colourImage(H, W, f, rnd);
      for (const q of [1, 10, 25, 58, 80, 95, 100]) sameBytes(jpegColourRoundTrip(src, H, W, q), await viaSharpColour(src, H, W, q), `${H}×${W} ${name} at quality ${q}`);
    }
  }
  assert.throws(() => jpegColourRoundTrip(new Uint8Array(5 * 9 * 3), 5, 9, 50), /below 6/);
});

test('jpeg() of a colour image is sharp\'s round trip (planar, in [0,1]) below the size limit and above it', async () => {
  const rnd = mulberry32(31);
  for (const [H, W] of [[24, 30], [170, 160], [224, 224], [240, 232], [4, 9]]) {
    const data = Float32Array.from({ length: 3 * H * W }, () => rnd());
    const bytes = new Uint8Array(H * W * 3);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) bytes[p * 3 + c] = Math.round(data[c * H * W + p] * 255);
    const want = await viaSharpColour(bytes, H, W, 40);
    const out = await jpeg({ data, channels: 3, height: H, width: W }, 40);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) assert.equal(out.data[c * H * W + p], Math.fround(want[p * 3 + c] / 255), `${H}×${W}: pixel ${p}, channel ${c}`);
  }
  // smooth content at ImageNet-C's qualities (7–25), where most blocks keep their DC alone and
  // take the inverse's one-value shortcut; sizes going down and up again, so the planes the
  // round trip reuses from call to call held a larger image's values before
  for (const [H, W] of [[224, 224], [40, 64], [97, 131], [16, 16]]) {
    const bytes = colourImage(H, W, colourPatterns.smooth, rnd);
    const data = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) data[c * H * W + p] = bytes[p * 3 + c] / 255;
    const blocks = jpegBlocksOf({ data, channels: 3, height: H, width: W });
    for (const q of [25, 18, 15, 10, 7]) {
      const want = await viaSharpColour(bytes, H, W, q);
      const out = await jpeg({ data, channels: 3, height: H, width: W }, q, undefined, undefined, blocks);
      for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) assert.equal(out.data[c * H * W + p], Math.fround(want[p * 3 + c] / 255), `smooth ${H}×${W} at quality ${q}: pixel ${p}, channel ${c}`);
    }
  }
});

test('jpeg() of a one-channel image is sharp\'s grey round trip (in [0,1]) at ImageNet-C\'s qualities, after larger and smaller images', async () => {
  const rnd = mulberry32(37);
  for (const [H, W] of [[64, 64], [28, 28], [13, 21], [40, 48]]) {
    for (const [name, f] of Object.entries(patterns)) {
      const bytes = Uint8Array.from({ length: H * W }, (_, i) => f(i % W, Math.floor(i / W), rnd));
      const data = Float32Array.from(bytes, (v) => v / 255);
      for (const q of [80, 25, 10, 7]) {
        const want = await viaSharp(bytes, H, W, q);
        const out = await jpeg({ data, channels: 1, height: H, width: W }, q);
        for (let p = 0; p < H * W; p++) assert.equal(out.data[p], Math.fround(want[p] / 255), `${name} ${H}×${W} at quality ${q}: pixel ${p}`);
      }
    }
  }
});

test('an image\'s blocks (jpegBlocks, the forward half) serve every quality: the same bytes as a round trip of its own at each, grey and colour, and the blocks unchanged by use', async () => {
  const rnd = mulberry32(17);
  for (const [colour, H, W] of [[false, 28, 28], [false, 13, 21], [true, 32, 32], [true, 23, 18]] as const) {
    const C = colour ? 3 : 1;
    const src = Uint8Array.from({ length: H * W * C }, (_, i) => (i % 7 === 0 ? 255 : Math.floor(rnd() * 256)));
    const blocks = jpegBlocks(src, H, W, colour);
    const before = blocks.planes.map((p) => p.coef.slice());
    for (const q of [80, 65, 58, 50, 40, 10, 100]) {
      const alone = colour ? jpegColourRoundTrip(src, H, W, q) : jpegGreyRoundTrip(src, H, W, q);
      sameBytes(jpegFromBlocks(blocks, q), alone, `${colour ? 'colour' : 'grey'} ${W}×${H} quality ${q} from shared blocks`);
    }
    blocks.planes.forEach((p, k) => assert.deepEqual(p.coef, before[k], `plane ${k} left as it was`));
  }
  // jpeg() with the blocks given, as the corruption views pass them for an image's five qualities
  const img = { channels: 1 as const, height: 12, width: 12, data: Float32Array.from({ length: 144 }, (_, i) => (i * 37) % 256 / 255) };
  const blocks = jpegBlocksOf(img)!;
  for (const q of [80, 40]) assert.deepEqual((await jpeg(img, q, undefined, undefined, blocks)).data, (await jpeg(img, q)).data);
  assert.ok(jpegBlocksOf({ channels: 3, height: 224, width: 224, data: new Float32Array(3 * 224 * 224) }), 'an ImageNet-size colour image takes the loops');
  assert.equal(jpegBlocksOf({ channels: 3, height: 232, width: 224, data: new Float32Array(3 * 232 * 224) }), undefined, 'a colour image above the limit goes to sharp');
});
