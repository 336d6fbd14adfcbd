/**
 * The corruption functions (image/corrupt.ts), each against its defining property on cases small
 * enough to work out by hand, and the severity table against Hendrycks' constants.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  brightness, contrast, corrupt, CORRUPTIONS, defocusBlur, diskKernel, gaussianNoise, impulseNoise, jpeg,
  pixelate, poisson, reflect101, resizeArea, severityConstant, shotNoise,
} from '../../server/engine/image/corrupt';
import sharp from 'sharp';
import { toBytes } from '../../server/engine/image/files';
import { derivedRng, mulberry32 } from '../../server/engine/random';
import type { PixelImage } from '../../server/engine/types';
import { gray } from './helpers/fake';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `at ${i}: ${a[i]} vs ${b[i]}`);
};
const constant = (v: number, h: number, w: number, channels: 1 | 3 = 1): PixelImage => ({
  data: new Float32Array(channels * h * w).fill(v), channels, height: h, width: w,
});
const noisy = (seed: number, h: number, w: number, channels: 1 | 3 = 3): PixelImage => {
  const rng = mulberry32(seed);
  return { data: Float32Array.from({ length: channels * h * w }, () => rng()), channels, height: h, width: w };
};
const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: ArrayLike<number>) => {
  const m = mean(xs);
  return Array.from(xs).reduce((a, b) => a + (b - m) ** 2, 0) / xs.length;
};

test('severity table: CIFAR-10-C constants up to 64 px, ImageNet-C above, blur radius scaled by side/224', () => {
  assert.equal(severityConstant('gaussian_noise', 1, 32, 32), 0.04);
  assert.equal(severityConstant('gaussian_noise', 5, 224, 224), 0.38);
  assert.equal(severityConstant('jpeg_compression', 3, 28, 28), 58);
  assert.equal(severityConstant('jpeg_compression', 3, 64, 100), 58, 'the short side decides');
  assert.equal(severityConstant('jpeg_compression', 3, 65, 100), 15);
  assert.deepEqual(severityConstant('defocus_blur', 4, 32, 32), [1, 0.2]);
  assert.deepEqual(severityConstant('defocus_blur', 1, 224, 224), [3, 0.1]);
  assert.deepEqual(severityConstant('defocus_blur', 5, 448, 448), [20, 0.5]);
  assert.deepEqual(severityConstant('defocus_blur', 2, 112, 200), [2, 0.5]);
  assert.throws(() => severityConstant('contrast', 0, 32, 32), /severity/);
  assert.throws(() => severityConstant('contrast', 6, 32, 32), /severity/);
});

test('brightness adds to the HSV value and clips: grey shifts by c, colour keeps hue and saturation', () => {
  // Grey: x + 0.2, clipped at 1.
  close(brightness(gray([[0.2, 0.9], [0.5, 0]]), 0.2).data, [0.4, 1, 0.7, 0.2]);
  // Where nothing clips the mean moves by exactly c.
  const g = gray([[0.1, 0.3], [0.2, 0.4]]);
  assert.ok(Math.abs(mean(brightness(g, 0.15).data) - (mean(g.data) + 0.15)) < 1e-6);
  // RGB, two pixels: (0.5, 0.25, 0) → V 0.5 → 0.6, every channel × 1.2 = (0.6, 0.3, 0);
  // black → grey (0.1, 0.1, 0.1). Planar CHW: R0 R1 G0 G1 B0 B1.
  const rgb: PixelImage = { data: Float32Array.from([0.5, 0, 0.25, 0, 0, 0]), channels: 3, height: 1, width: 2 };
  close(brightness(rgb, 0.1).data, [0.6, 0.1, 0.3, 0.1, 0, 0.1]);
  // V clips at 1: (0.95, 0.475, 0) + 0.1 → (1, 0.5, 0).
  const bright: PixelImage = { data: Float32Array.from([0.95, 0.475, 0]), channels: 3, height: 1, width: 1 };
  close(brightness(bright, 0.1).data, [1, 0.5, 0]);
});

test('contrast scales around the per-channel mean and clips', () => {
  // mean 0.5; factor 0.5 halves every distance to it.
  const g = gray([[0, 1], [0.5, 0.5]]);
  close(contrast(g, 0.5).data, [0.25, 0.75, 0.5, 0.5]);
  assert.ok(Math.abs(mean(contrast(g, 0.5).data) - 0.5) < 1e-7, 'the mean is kept');
  // factor 3: (0 − 0.5)·3 + 0.5 = −1 → 0; (1 − 0.5)·3 + 0.5 = 2 → 1.
  close(contrast(g, 3).data, [0, 1, 0.5, 0.5]);
  // Each channel around its own mean: R mean 0.2, G mean 0.6.
  const rgb: PixelImage = { data: Float32Array.from([0.1, 0.3, 0.4, 0.8, 0, 0]), channels: 3, height: 1, width: 2 };
  close(contrast(rgb, 0.5).data, [0.15, 0.25, 0.5, 0.7, 0, 0]);
});

test('impulse noise sets the expected fraction of values to 0 or 1, half each, and leaves the rest', () => {
  const img = constant(0.5, 64, 64, 3); // 12,288 values
  const out = impulseNoise(img, 0.2, mulberry32(42));
  const zeros = out.data.filter((v) => v === 0).length / out.data.length;
  const ones = out.data.filter((v) => v === 1).length / out.data.length;
  const kept = out.data.filter((v) => v === 0.5).length / out.data.length;
  // Binomial SE of the fraction: sqrt(0.2·0.8/12288) = 0.0036; tolerances are > 4 SE.
  assert.ok(Math.abs(zeros + ones - 0.2) < 0.015, `flipped ${zeros + ones}`);
  assert.ok(Math.abs(zeros - ones) < 0.015, `zeros ${zeros} ones ${ones}`);
  assert.ok(Math.abs(kept + zeros + ones - 1) < 1e-12, 'every other value is untouched');
  // Same seed, same pixels.
  assert.deepEqual(impulseNoise(img, 0.2, mulberry32(42)).data, out.data);
});

test('gaussian noise: zero mean, standard deviation sigma, clipped; seeded', () => {
  const img = constant(0.5, 64, 64, 3);
  const out = gaussianNoise(img, 0.05, mulberry32(1));
  assert.ok(Math.abs(mean(out.data) - 0.5) < 0.003);
  assert.ok(Math.abs(Math.sqrt(variance(out.data)) - 0.05) < 0.003);
  const clipped = gaussianNoise(constant(0.99, 16, 16), 0.5, mulberry32(2));
  assert.ok(clipped.data.every((v) => v >= 0 && v <= 1) && clipped.data.some((v) => v === 1));
  assert.deepEqual(gaussianNoise(img, 0.05, mulberry32(1)).data, out.data);
  assert.notDeepEqual(gaussianNoise(img, 0.05, mulberry32(3)).data, out.data);
});

test('poisson variates have mean and variance lambda, by inversion and by PTRS', () => {
  for (const lambda of [0.5, 3, 9.5, 10, 30, 250]) {
    const rng = mulberry32(Math.round(lambda * 10));
    const xs = Array.from({ length: 20000 }, () => poisson(lambda, rng));
    assert.ok(xs.every((x) => Number.isInteger(x) && x >= 0));
    const se = Math.sqrt(lambda / xs.length);
    assert.ok(Math.abs(mean(xs) - lambda) < 5 * se, `λ=${lambda}: mean ${mean(xs)}`);
    assert.ok(Math.abs(variance(xs) / lambda - 1) < 0.06, `λ=${lambda}: variance ${variance(xs)}`);
  }
  assert.equal(poisson(0, mulberry32(1)), 0);
});

test('shot noise: Poisson(x·rate)/rate keeps the mean, variance x/rate', () => {
  const img = constant(0.4, 64, 64, 3);
  for (const rate of [60, 500]) {
    const out = shotNoise(img, rate, mulberry32(rate));
    assert.ok(Math.abs(mean(out.data) - 0.4) < 0.005, `rate ${rate}: mean ${mean(out.data)}`);
    assert.ok(Math.abs(variance(out.data) / (0.4 / rate) - 1) < 0.08, `rate ${rate}: variance ${variance(out.data)}`);
    // Values are multiples of 1/rate.
    assert.ok(out.data.slice(0, 50).every((v) => Math.abs(v * rate - Math.round(v * rate)) < 1e-3));
  }
});

test('disk kernel: Hendrycks disk, normalised (reflected at the grid edge as the reference); radius 1 without alias blur is a plus of five 0.2s', () => {
  const k = diskKernel(1, 0);
  assert.equal(k.size, 3); // no smoothing: the all-zero outer rings of the 17×17 grid are trimmed
  // Row-major 3×3, the plus.
  const expected = new Array(9).fill(0);
  for (const [y, x] of [[0, 1], [1, 0], [1, 1], [1, 2], [2, 1]]) expected[y * 3 + x] = 0.2;
  close(k.weights, expected, 1e-12);
  for (const [r, a] of [[0.3, 0.4], [1.5, 0.1], [3, 0.1], [10, 0.5]]) {
    const { size, weights } = diskKernel(r, a);
    // sums to 1 unless the disk touches the reference's grid (radius ≥ 8), where cv2.GaussianBlur's
    // reflected border adds mass: imagecorruptions' disk(10, 0.5) sums to 1.0107858 (float32)
    assert.ok(Math.abs(weights.reduce((s, v) => s + v, 0) - (r === 10 ? 1.0107858 : 1)) < 1e-6, `radius ${r}`);
    // Symmetric under transposition and both flips.
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const w = weights[y * size + x];
        assert.ok(Math.abs(w - weights[x * size + y]) < 1e-12 && Math.abs(w - weights[(size - 1 - y) * size + (size - 1 - x)]) < 1e-12);
      }
    }
  }
  // Radius 0.3 is the centre pixel alone, smoothed by the 3×3 Gaussian of σ 0.4:
  // g = [e^(−1/0.32), 1, e^(−1/0.32)] / sum, kernel = g ⊗ g.
  const e = Math.exp(-1 / (2 * 0.4 * 0.4));
  const g = [e / (1 + 2 * e), 1 / (1 + 2 * e), e / (1 + 2 * e)];
  const small = diskKernel(0.3, 0.4);
  assert.equal(small.size, 3);
  close(small.weights, g.flatMap((a) => g.map((b) => a * b)), 1e-12);
});

test('defocus blur: constant images stay constant; an impulse spreads into the kernel; borders reflect', () => {
  for (const [r, a] of [[0.3, 0.4], [1.5, 0.1], [3, 0.5]]) {
    const out = defocusBlur(constant(0.37, 9, 7, 3), r, a);
    close(out.data, new Float32Array(3 * 9 * 7).fill(0.37), 1e-6);
  }
  const img = constant(0, 7, 7);
  img.data[3 * 7 + 3] = 1;
  const out = defocusBlur(img, 1, 0);
  const expected = new Array(49).fill(0);
  for (const [y, x] of [[2, 3], [3, 2], [3, 3], [3, 4], [4, 3]]) expected[y * 7 + x] = 0.2;
  close(out.data, expected);
  assert.deepEqual([-2, -1, 0, 4, 5, 6, 9].map((i) => reflect101(i, 5)), [2, 1, 0, 4, 3, 2, 1]);
  // A lit corner: reflect-101 does not repeat the edge pixel, so the corner counts once and
  // gives 0.2 to itself and to each of its two neighbours.
  const corner = constant(0, 4, 4);
  corner.data[0] = 1;
  const c = defocusBlur(corner, 1, 0);
  assert.ok(Math.abs(c.data[0] - 0.2) < 1e-7 && Math.abs(c.data[1] - 0.2) < 1e-7 && Math.abs(c.data[4] - 0.2) < 1e-7);
});

test('pixelate: constant stays constant, a checkerboard becomes its block average; Pillow\'s BOX counts whole pixels by their centres', () => {
  close(pixelate(constant(0.3, 32, 32, 3), 0.75).data, new Float32Array(3 * 32 * 32).fill(0.3), 1e-6);
  close(pixelate(constant(0.3, 28, 28), 0.65).data, new Float32Array(28 * 28).fill(0.3), 1e-6);
  // 1-px checkerboard at factor 0.5: every 2×2 block holds two 0s and two 1s ⇒ 0.5 everywhere.
  const checker = gray([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]);
  close(pixelate(checker, 0.5).data, new Array(16).fill(0.5));
  // Values 0..15 at factor 0.5: block means 2.5, 4.5, 10.5, 12.5, each repeated over its block.
  const ramp = gray([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]);
  close(pixelate(ramp, 0.5).data, [2.5, 2.5, 4.5, 4.5, 2.5, 2.5, 4.5, 4.5, 10.5, 10.5, 12.5, 12.5, 10.5, 10.5, 12.5, 12.5]);
  // A 2-px checkerboard is already made of 2×2 blocks: unchanged.
  const coarse = gray([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]);
  close(pixelate(coarse, 0.5).data, coarse.data);
  // 3 → int(3·0.67) = 2 with Pillow's BOX: box 0 is [0, 1.5), holding the centres of pixels 0 and
  // 1 (1.5 is in it: Pillow's box is (−½, ½]), box 1 only pixel 2's; NEAREST back up reads
  // pixels 0, 1, 1 (positions ⅓, 1, 5⁄3). An area average would give 1/3 and 5/3 instead.
  close(pixelate(gray([[0, 1, 2]]), 0.67).data, [0.5, 2, 2]);
  close(pixelate(gray([[0], [1], [2]]), 0.67).data, [0.5, 2, 2]);
  // the area resize (used by the prior probe) keeps fractional weights: 3 → 2 cells of 1.5 pixels
  close(resizeArea(gray([[0, 1, 2]]), 1, 2).data, [(0 + 0.5 * 1) / 1.5, (0.5 * 1 + 2) / 1.5]);
});

test('JPEG changes a noisy image but keeps its size and channels, and is deterministic', async () => {
  for (const channels of [3, 1] as const) {
    const img = noisy(7, 32, 32, channels);
    const out = await jpeg(img, 40);
    assert.deepEqual([out.channels, out.height, out.width], [channels, 32, 32]);
    const mad = mean(out.data.map((v, i) => Math.abs(v - img.data[i])));
    assert.ok(mad > 0.05, `a noisy image should change visibly (mean |Δ| ${mad})`);
    assert.deepEqual((await jpeg(img, 40)).data, out.data);
  }
  // The round trip skips optimised Huffman tables: the same pixels as sharp's default (which optimises them)
  const photo = noisy(11, 40, 56, 3);
  for (const quality of [80, 40, 10]) {
    const raw = { raw: { width: 56, height: 40, channels: 3 as const } };
    const encoded = await sharp(toBytes(photo), raw).jpeg({ quality, chromaSubsampling: '4:2:0' }).toBuffer();
    const want = Float32Array.from(await sharp(encoded).raw().toBuffer(), (v) => v / 255);
    const got = (await jpeg(photo, quality)).data;
    // got is planar (CHW), want interleaved (HWC)
    for (let p = 0; p < 40 * 56; p++) for (let c = 0; c < 3; c++) assert.equal(got[c * 40 * 56 + p], want[p * 3 + c], `quality ${quality}, pixel ${p}, channel ${c}`);
  }
  // A flat mid grey survives almost unchanged; odd sizes are kept.
  const flat = await jpeg(constant(0.5, 28, 27, 3), 10);
  assert.deepEqual([flat.height, flat.width], [28, 27]);
  assert.ok(flat.data.every((v) => Math.abs(v - 0.5) <= 3 / 255));
});

test('corrupt: every corruption keeps the size, stays in [0,1], and is deterministic per seed', async () => {
  const img = noisy(3, 32, 32, 3);
  for (const name of CORRUPTIONS) {
    for (const s of [1, 5]) {
      const a = await corrupt(img, name, s, derivedRng(1, `corruptions/${name}/${s}`, 'sha'));
      const b = await corrupt(img, name, s, derivedRng(1, `corruptions/${name}/${s}`, 'sha'));
      assert.deepEqual([a.channels, a.height, a.width], [3, 32, 32]);
      assert.ok(a.data.every((v) => v >= 0 && v <= 1), name);
      assert.deepEqual(a.data, b.data, `${name} is deterministic`);
      if (name.endsWith('_noise')) {
        const c = await corrupt(img, name, s, derivedRng(2, `corruptions/${name}/${s}`, 'sha'));
        assert.notDeepEqual(c.data, a.data, `${name} varies with the seed`);
      }
    }
  }
});
