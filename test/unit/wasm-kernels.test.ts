/**
 * The WebAssembly kernels (server/engine/image/wasm) against the JavaScript loops they stand in
 * for, bit for bit, and the committed module against its source. imagenet-c.test.ts holds the
 * kernels (on by default) to the per-pixel reference and to imagecorruptions as well.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { motionBlur, motionBlurPlane } from '../../server/engine/image/imagenet-c';
import { setWasmKernels, wasmKernelsOn } from '../../server/engine/image/wasm/kernels';
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
  const committed = readFileSync(join(__dirname, '../../server/engine/image/wasm/kernels-wasm.ts'), 'utf8');
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
