/**
 * The WebAssembly kernels (server/engine/wasm) against the JavaScript loops they stand in
 * for, bit for bit, and the committed module against its source. imagenet-c.test.ts holds the
 * kernels (on by default) to the per-pixel reference and to imagecorruptions as well.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { motionBlur, motionBlurPlane } from '../../server/engine/image/imagenet-c';
import { setWasmKernels, wasmKernelsOn } from '../../server/engine/wasm/kernels';
import { mulberry32 } from '../../server/engine/random';
import type { PixelImage } from '../../server/engine/types';

/** fn() with the kernels off, then on (they are on again afterwards). */
function bothWays<T>(fn: () => T): { loop: T; kernel: T } {
  setWasmKernels(false);
  try {
    assert.equal(wasmKernelsOn(), false);
    const loop = fn();
    setWasmKernels(true);
    return { loop, kernel: fn() };
  } finally {
    setWasmKernels(true);
  }
}

test('the committed WebAssembly module is the one kernels.wat assembles to (run node scripts/build-kernels.mjs after editing it)', async () => {
  // @ts-expect-error: a plain .mjs script, no types
  const { generated } = await import('../../scripts/build-kernels.mjs');
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const committed = readFileSync(join(__dirname, '../../server/engine/wasm/kernels-wasm.ts'), 'utf8');
  assert.equal(committed, await generated());
});

test('the kernels load in this runtime: the makers do not fall back to the loops unnoticed', () => {
  assert.equal(wasmKernelsOn(), true);
});

test('motion blur through the kernel: the loop\'s float32 values bit for bit, clipped, at odd sizes, one-pixel planes and taps past the border', () => {
  const rng = mulberry32(5);
  const clipped = { low: false, high: false };
  for (const [C, H, W] of [[3, 224, 224], [3, 17, 23], [1, 28, 28], [3, 1, 9], [1, 9, 1], [1, 1, 1], [3, 5, 40]] as Array<[1 | 3, number, number]>) {
    // the first half of each plane below 0, the second above 1, so that the clip at both ends is exercised
    const img: PixelImage = { data: Float32Array.from({ length: C * H * W }, (_, i) => ((i % (H * W)) < (H * W) / 2 ? -0.6 : 1.1) + 0.5 * rng()), channels: C, height: H, width: W };
    for (const [radius, sigma] of [[1, 1], [10, 3], [15, 12], [20, 15]]) {
      const seed = Math.floor(rng() * 1e9);
      const { loop, kernel } = bothWays(() => motionBlur(img, radius, sigma, mulberry32(seed), new Float32Array(img.data.length).fill(7)).data);
      assert.deepEqual(kernel, loop, `${C}×${H}×${W} radius ${radius}`);
      clipped.low ||= kernel.includes(0);
      clipped.high ||= kernel.includes(1);
    }
  }
  assert.deepEqual(clipped, { low: true, high: true }, 'the clip at both ends was exercised');
});

test('motion blur of a float64 or float32 plane through the kernel (snow\'s layer): the loop\'s sums bit for bit, before and after the kernel\'s memory grows', () => {
  const rng = mulberry32(9);
  for (const [H, W] of [[7, 5], [400, 300], [13, 2], [2, 13]]) {
    const plane = Float64Array.from({ length: H * W }, () => rng());
    for (const angle of [-135, -60, -45, 0, 13, 45, 90, 170]) {
      const { loop, kernel } = bothWays(() => [motionBlurPlane(plane, H, W, 12, 8, angle), motionBlurPlane(Float32Array.from(plane), H, W, 6, 2, angle)]);
      assert.deepEqual(kernel, loop, `${H}×${W} angle ${angle}`);
    }
  }
});

test('shot noise through the kernel: image/corrupt.ts\'s draws bit for bit on decoded (k/255) images at ImageNet-C\'s rates (and impulse noise\'s loop beside it); other values go to the loop', async () => {
  const { impulseNoise, shotNoise } = await import('../../server/engine/image/corrupt');
  const { impulse, shot } = await import('../../server/engine/views/corruptions');
  const { shotKernel } = await import('../../server/engine/wasm/kernels');
  const r = mulberry32(3);
  for (const [H, W] of [[224, 224], [28, 28], [5, 3]]) {
    // every level, 0 and 1 included, in random order
    const data = Float32Array.from({ length: 3 * H * W }, (_, i) => (i < 256 ? i : Math.floor(r() * 256)) / 255);
    const img = { data, channels: 3 as const, height: H, width: W };
    for (const rate of [60, 25, 12, 5, 3, 0.5, 500]) {
      const want = shotNoise(img, rate, mulberry32(rate * 7)).data;
      assert.deepEqual(shot(data, rate, rate * 7), want, `shot noise ${H}×${W} at rate ${rate}`);
      const { loop } = bothWays(() => shot(data, rate, rate * 7));
      assert.deepEqual(loop, want, `the loop, ${H}×${W} at rate ${rate}`);
    }
    for (const amount of [0.03, 0.06, 0.09, 0.17, 0.27, 0.9]) {
      assert.deepEqual(impulse(data, amount, 11), impulseNoise(img, amount, mulberry32(11)).data, `impulse noise ${H}×${W} at ${amount}`);
    }
  }
  // the kernel itself ran: true on levels, and it declines a value that is not one
  const levels = Float32Array.from({ length: 300 }, (_, i) => (i % 256) / 255);
  const out = new Float32Array(300);
  const { shotTablesForTest } = await import('../../server/engine/views/corruptions');
  assert.equal(shotKernel(levels, 60, 5, shotTablesForTest(60), out), true);
  for (const odd of [0.5, 1.5, 200.5 / 255]) {
    const x = Float32Array.from(levels);
    x[299] = odd;
    assert.equal(shotKernel(x, 60, 5, shotTablesForTest(60), out), false, `${odd} is not a level`);
    assert.deepEqual(shot(x, 60, 5), shotNoise({ data: x, channels: 1, height: 1, width: 300 }, 60, mulberry32(5)).data, `${odd}: the loop's draws`);
  }
});

test('shot noise\'s tables stay in the kernels\' memory from call to call: right after the other kernels wrote their own there, after the memory grew, and past the sixteen rates that start their region again', async () => {
  const { shotNoise } = await import('../../server/engine/image/corrupt');
  const { shotTablesForTest } = await import('../../server/engine/views/corruptions');
  const { shotKernel, uniformsKernel } = await import('../../server/engine/wasm/kernels');
  const r = mulberry32(17);
  const H = 28;
  const W = 28;
  const data = Float32Array.from({ length: H * W }, (_, i) => (i < 256 ? i : Math.floor(r() * 256)) / 255);
  const img = { data, channels: 1 as const, height: H, width: W };
  // ImageNet-C's five rates, then fifteen more (the sixteenth starts the region again), then the five again
  const rates = [60, 25, 12, 5, 3, ...Array.from({ length: 15 }, (_, i) => 4 + 7 * i), 60, 25, 12, 5, 3];
  for (const [round, rate] of rates.entries()) {
    const out = new Float32Array(H * W).fill(Number.NaN);
    assert.equal(shotKernel(data, rate, round, shotTablesForTest(rate), out), true, `rate ${rate}: the kernel ran`);
    assert.deepEqual(out, shotNoise(img, rate, mulberry32(round)).data, `rate ${rate}, call ${round}`);
    // the other kernels lay out their calls over the memory after the tables; every few calls one
    // large enough to grow it
    const side = round % 4 === 3 ? 200 + 40 * round : 9;
    const plane = Float64Array.from({ length: side * side }, () => r());
    const { loop, kernel } = bothWays(() => motionBlurPlane(plane, side, side, 10, 4, 20 * round));
    assert.deepEqual(kernel, loop);
    assert.equal(uniformsKernel(round, new Float32Array(4 * side), 0, 1), true);
  }
});

test('uniform draws through the kernel, four at a time: random.ts\'s loops bit for bit (uniforms, gaussian()\'s pairs, lo + span·u), a zero radius draw redrawn as gaussian() does', async () => {
  const { fillUniforms, gaussianUniforms, MULBERRY_STEP, uniforms } = await import('../../server/engine/random');
  const { uniformsKernel } = await import('../../server/engine/wasm/kernels');
  /** gaussian()'s draws from mulberry32(seed), written plainly: (radius, angle) pairs, a radius of 0 drawn again. */
  const plainPairs = (seed: number, n: number) => {
    const rng = mulberry32(seed);
    const out = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      let u = 0;
      while (u === 0) u = rng();
      out[2 * i] = u;
      out[2 * i + 1] = rng();
    }
    return out;
  };
  // mulberry32 returns exactly 0 at the state 0: these seeds reach it at draw 1, 2, 3 and 6 (a radius, an angle, a radius, an angle)
  const zeroAt = (k: number) => (-Math.imul(k, MULBERRY_STEP)) >>> 0;
  for (const seed of [1, 0xffffffff, 123456789, zeroAt(1), zeroAt(2), zeroAt(3), zeroAt(6)]) {
    for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 1001, 3 * 224 * 224]) {
      const { loop, kernel } = bothWays(() => [uniforms(seed, n).slice(), gaussianUniforms(seed, n).slice()]);
      assert.deepEqual(kernel, loop, `seed ${seed}, ${n} values`);
      const rng = mulberry32(seed);
      assert.deepEqual(kernel[0], Float32Array.from({ length: n }, () => rng()), `uniforms against the generator, seed ${seed}, ${n}`);
      assert.deepEqual(kernel[1], plainPairs(seed, n), `gaussian pairs against gaussian()'s draws, seed ${seed}, ${n}`);
    }
  }
  assert.equal(uniformsKernel(zeroAt(3), new Float32Array(8), 0, 1, true), false, 'a zero radius draw: the kernel declines');
  assert.equal(uniformsKernel(zeroAt(2), new Float32Array(8), 0, 1, true), true, 'a zero angle draw is kept');
  // lo + span·u through a generator that goes on afterwards (elastic's field: −1 + 2u)
  for (const n of [0, 3, 4, 9, 50000]) {
    const { loop, kernel } = bothWays(() => {
      const rng = mulberry32(77);
      const out = new Float32Array(n);
      fillUniforms(rng, out, -1, 2);
      return [out, rng(), rng()];
    });
    assert.deepEqual(kernel, loop, `fillUniforms of ${n}`);
    const rng = mulberry32(77);
    assert.deepEqual(kernel[0], Float32Array.from({ length: n }, () => -1 + 2 * rng()), `against the generator, ${n}`);
    assert.deepEqual(kernel.slice(1), [rng(), rng()], 'the generator goes on where the draws left it');
  }
});

test('snow through the kernels (its blur, layer and mix): the loop\'s values bit for bit, colour and grey, odd sizes, every severity', async () => {
  const { snow } = await import('../../server/engine/image/imagenet-c');
  const { severityConstant } = await import('../../server/engine/image/corrupt');
  const rng = mulberry32(17);
  for (const [C, H, W] of [[3, 224, 224], [1, 28, 28], [3, 17, 23], [3, 1, 7], [1, 9, 2]] as Array<[1 | 3, number, number]>) {
    const img: PixelImage = { data: Float32Array.from({ length: C * H * W }, () => Math.floor(rng() * 256) / 255), channels: C, height: H, width: W };
    for (const s of [1, 2, 3, 4, 5]) {
      const c = severityConstant('snow', s, H, W) as number[];
      const { loop, kernel } = bothWays(() => snow(img, c, mulberry32(100 * s + H), new Float32Array(img.data.length).fill(5)).data);
      assert.deepEqual(kernel, loop, `${C}×${H}×${W} severity ${s}`);
    }
  }
});

test('raw draws through the kernel (fog\'s plasma takes its draws beforehand): the generator\'s doubles bit for bit, and it goes on where they end', async () => {
  const { fillDraws } = await import('../../server/engine/random');
  const { fogLayer } = await import('../../server/engine/image/imagenet-c');
  for (const n of [0, 1, 3, 4, 5, 255, 65535]) {
    const { loop, kernel } = bothWays(() => {
      const rng = mulberry32(n + 1);
      const out = new Float64Array(n);
      fillDraws(rng, out);
      return [out, rng()];
    });
    assert.deepEqual(kernel, loop, `${n} draws`);
    const rng = mulberry32(n + 1);
    assert.deepEqual(kernel[0], Float64Array.from({ length: n }, () => rng()), `against the generator, ${n}`);
    assert.equal(kernel[1], rng(), 'the next draw');
  }
  for (const [H, W] of [[224, 224], [28, 28], [5, 9]]) {
    const { loop, kernel } = bothWays(() => fogLayer(H, W, 2.2, mulberry32(H + W)));
    assert.deepEqual(kernel, loop, `fog layer ${H}×${W}`);
  }
});

test('glass blur\'s shuffle with its draws made beforehand: the loop\'s index map, and image/imagenet-c.ts glassPermutation\'s', async () => {
  const { glassShuffle } = await import('../../server/engine/views/corruptions');
  const { glassPermutation } = await import('../../server/engine/image/imagenet-c');
  for (const [H, W, d, it] of [[224, 224, 1, 2], [224, 200, 3, 2], [32, 32, 2, 1], [9, 7, 1, 3], [4, 4, 2, 1]]) {
    const { loop, kernel } = bothWays(() => glassShuffle(H, W, d, it, 99 + d).slice());
    assert.deepEqual(kernel, loop, `${H}×${W} delta ${d}`);
    assert.deepEqual(kernel, glassPermutation(H, W, d, it, mulberry32(99 + d)), `${H}×${W} delta ${d} against glassPermutation`);
  }
});
