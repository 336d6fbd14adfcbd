/**
 * ImageNet-C's corruptions beyond the first eight (image/imagenet-c.ts, image/frost.ts) against
 * bethgelab/imagecorruptions and the scipy calls it makes, on a tiny seeded 10×11 image:
 * test/reference/imagenet-c/cases.json, written by make_reference.py there (Debian's Python).
 * Exact to float rounding where nothing is drawn at random (zoom blur, Gaussian blur, saturate,
 * the motion-blur kernel at a given angle, scipy's Gaussian weights and map_coordinates' reflect
 * border, glass blur's loop fed the same draws); the random corruptions by their properties.
 * bench/corruptions-reference.ts compares all of them at 224 px with the reference's own draws.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { corrupt } from '../../server/engine/image/corrupt';
import { FROST_PHOTO_STATS, frostLayer, frostTextures, proceduralFrost } from '../../server/engine/image/frost';
import {
  affineThrough, bilinearTaps, borderIndex, elasticDraws, elasticTaps, reflect101, filterPlane, fogLayer, gaussianBlur, gaussianWeights, glassPermutation, motionBlurPlane, plasmaFractal,
  roundHalfEven, saturate, zoomBlur, zoomFactors,
} from '../../server/engine/image/imagenet-c';
import { IMAGENET_C, pixelate, severityConstant } from '../../server/engine/image/corrupt';
import { mulberry32 } from '../../server/engine/random';
import { blur3Float, blur3Uint8, canny, distanceTransform5, equalizeHist, filter2D3Uint8, skimageGaussian, spatterFromLayer, waterWeight } from '../../server/engine/image/spatter';
import type { PixelImage } from '../../server/engine/types';

const ref = JSON.parse(readFileSync(resolve(__dirname, '../reference/imagenet-c/cases.json'), 'utf8'));
const img: PixelImage = { data: Float32Array.from(ref.image as number[], (v) => v / 255), channels: 3, height: ref.height, width: ref.width };

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

test('zoom blur, Gaussian blur and saturate equal imagecorruptions at every severity (ImageNet-C constants)', () => {
  for (let s = 1; s <= 5; s++) {
    const [step, count] = IMAGENET_C.zoom_blur[s - 1] as number[];
    // the reference sums float32 zoom layers; ours float64
    assert.ok(maxDiff(zoomBlur(img, zoomFactors(step, count)).data, ref.zoom_blur[s - 1]) < 2e-6, `zoom blur s${s}`);
    assert.ok(maxDiff(gaussianBlur(img, IMAGENET_C.gaussian_blur[s - 1] as number).data, ref.gaussian_blur[s - 1]) < 1e-6, `gaussian blur s${s}`);
    const [a, b] = IMAGENET_C.saturate[s - 1] as number[];
    assert.ok(maxDiff(saturate(img, a, b).data, ref.saturate[s - 1]) < 1e-6, `saturate s${s}`);
  }
  // numpy's arange(1, 1.11, 0.01) has 12 entries (1.00 … 1.11): the table stores (step, count)
  assert.deepEqual(zoomFactors(0.01, 12).map((z) => z.toFixed(2)).slice(-2), ['1.10', '1.11']);
  assert.equal(roundHalfEven(112.5), 112);
  assert.equal(roundHalfEven(113.5), 114);
});

test('pixelate equals Pillow\'s BOX down and NEAREST up on float planes, and imagecorruptions\' 8-bit output to its rounding', () => {
  for (const c of ref.pixelate as Array<{ factor: number; uint8: number[]; float: number[] }>) {
    const got = pixelate(img, c.factor).data;
    assert.ok(maxDiff(got, c.float) < 1e-6, `factor ${c.factor}: ${maxDiff(got, c.float)}`);
    // Pillow rounds to 8 bits after each of its two BOX passes: at most one level off
    assert.ok(maxDiff(got, c.uint8) <= 1 / 255 + 1e-6, `factor ${c.factor} against the 8-bit reference`);
  }
});

test('motion blur at a given angle equals the reference\'s numpy _motion_blur, including shifts past the border', () => {
  const n = img.height * img.width;
  for (const c of ref.motion as Array<{ radius: number; sigma: number; angle: number; out: number[] }>) {
    const got = new Float64Array(3 * n);
    for (let ch = 0; ch < 3; ch++) got.set(motionBlurPlane(img.data.subarray(ch * n, (ch + 1) * n), img.height, img.width, c.radius, c.sigma, c.angle), ch * n);
    assert.ok(maxDiff(got, c.out) < 1e-6, `radius ${c.radius} angle ${c.angle}`);
  }
});

/** motionBlurPlane as it was first written (a clamped index per pixel): the reference for the three-run rows. */
function motionBlurPlaneDirect(plane: ArrayLike<number>, H: number, W: number, radius: number, sigma: number, angle: number): Float64Array {
  const width = 2 * radius + 1;
  const k = new Float64Array(width);
  let z = 0;
  for (let i = 0; i < width; i++) z += k[i] = Math.exp(-(i * i) / (2 * sigma * sigma)) / (Math.sqrt(2 * Math.PI) * sigma);
  for (let i = 0; i < width; i++) k[i] /= z;
  const py = width * Math.sin((angle * Math.PI) / 180);
  const px = width * Math.cos((angle * Math.PI) / 180);
  const hyp = Math.hypot(py, px);
  const out = new Float64Array(H * W);
  for (let i = 0; i < width; i++) {
    const dy = -Math.ceil((i * py) / hyp - 0.5);
    const dx = -Math.ceil((i * px) / hyp - 0.5);
    if (Math.abs(dy) >= H || Math.abs(dx) >= W) break;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      out[y * W + x] += k[i] * plane[Math.min(H - 1, Math.max(0, y - dy)) * W + Math.min(W - 1, Math.max(0, x - dx))];
    }
  }
  return out;
}

test('motion blur\'s row runs (clamped left, shifted middle, clamped right) give the per-pixel clamped loop\'s values bit for bit, at every angle and past the border', () => {
  const rng = mulberry32(21);
  for (const [H, W] of [[9, 13], [13, 9], [3, 40], [40, 3], [31, 31]]) {
    const plane = Float32Array.from({ length: H * W }, () => rng());
    for (const angle of [-135, -90, -60, -45, -20, 0, 13, 45, 90, 170, -45 + 90 * rng()]) {
      for (const [radius, sigma] of [[1, 1], [6, 2], [15, 8], [20, 15]]) {
        const want = motionBlurPlaneDirect(plane, H, W, radius, sigma, angle);
        assert.deepEqual(motionBlurPlane(plane, H, W, radius, sigma, angle), want, `${H}×${W} angle ${angle} radius ${radius}`);
        assert.deepEqual(motionBlurPlane(Float64Array.from(plane), H, W, radius, sigma, angle), want, 'a float64 plane (snow\'s layer)');
      }
    }
  }
});

test('scipy\'s Gaussian weights and map_coordinates\' half-sample reflect border', () => {
  for (const c of ref.gaussian_weights as Array<{ sigma: number; truncate: number; filtered: number[] }>) {
    const w = gaussianWeights(c.sigma, c.truncate);
    const r = (w.length - 1) / 2;
    const want = c.filtered.slice(20 - r, 21 + r);
    assert.ok(maxDiff(w, want) < 1e-12, `σ ${c.sigma}`);
    assert.ok(c.filtered.slice(0, 20 - r).every((v) => v === 0), 'radius ⌊truncate·σ + ½⌋');
  }
  const mc = ref.map_coordinates;
  const [ys, xs] = mc.coords as number[][];
  const index = new Int32Array(4 * ys.length);
  const weight = new Float32Array(4 * ys.length);
  ys.forEach((y, p) => bilinearTaps(index, weight, ys.length, p, y, xs[p], 5, 6, (i, n) => borderIndex(i, n, 'reflect')));
  const got = ys.map((_, p) => [0, 1, 2, 3].reduce((s, k) => s + weight[k * ys.length + p] * mc.plane[index[k * ys.length + p]], 0));
  assert.ok(maxDiff(got, mc.values) < 1e-6, `${got} vs ${mc.values}`);
  // a kernel longer than the plane (folded into a matrix) equals the tap-by-tap sum
  const plane = Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.7));
  const w = gaussianWeights(3, 4);
  const r = (w.length - 1) / 2;
  const direct = new Float64Array(30);
  for (let y = 0; y < 5; y++) for (let x = 0; x < 6; x++) {
    let s = 0;
    for (let a = 0; a < w.length; a++) for (let b = 0; b < w.length; b++) s += w[a] * w[b] * plane[borderIndex(y + a - r, 5, 'reflect') * 6 + borderIndex(x + b - r, 6, 'reflect')];
    direct[y * 6 + x] = s;
  }
  assert.ok(maxDiff(filterPlane(plane, 5, 6, w, w, 'reflect'), direct) < 1e-12);
});

test('glass blur\'s loop fed the reference\'s draws gives its index map (its "swap" copies)', () => {
  const g = ref.glass;
  let k = 0;
  // u such that −d + ⌊u·2d⌋ is the drawn value
  const rng = () => (g.draws[k++] + g.d + 0.5) / (2 * g.d);
  const got = glassPermutation(g.H, g.W, g.d, g.iterations, rng);
  assert.equal(k, g.draws.length, 'two draws per visited pixel');
  assert.deepEqual(Array.from(got), g.index);
  assert.ok(new Set(got).size < g.H * g.W, 'some pixels are duplicated, as in the reference');
});

/** plasmaFractal as first written (each phase's sums gathered first, wrapping by modulo): the reference for the in-place loops. */
function plasmaFractalDirect(N: number, decay: number, rng: () => number): Float64Array {
  const m = new Float64Array(N * N);
  let step = N;
  let wibble = 100;
  const at = (y: number, x: number) => m[(((y % N) + N) % N) * N + (((x % N) + N) % N)];
  const wibbled = (sum: number) => sum / 4 + wibble * (-wibble + 2 * wibble * rng());
  while (step >= 2) {
    const half = step / 2;
    const sq: number[] = [];
    for (let y = 0; y < N; y += step) for (let x = 0; x < N; x += step) sq.push(at(y, x) + at(y + step, x) + at(y, x + step) + at(y + step, x + step));
    let k = 0;
    for (let y = half; y < N; y += step) for (let x = half; x < N; x += step) m[y * N + x] = wibbled(sq[k++]);
    const top: number[] = [];
    for (let y = 0; y < N; y += step) for (let x = half; x < N; x += step) top.push(at(y + half, x) + at(y - half, x) + at(y, x - half) + at(y, x + half));
    k = 0;
    for (let y = 0; y < N; y += step) for (let x = half; x < N; x += step) m[y * N + x] = wibbled(top[k++]);
    const side: number[] = [];
    for (let y = half; y < N; y += step) for (let x = 0; x < N; x += step) side.push(at(y, x + half) + at(y, x - half) + at(y - half, x) + at(y + half, x));
    k = 0;
    for (let y = half; y < N; y += step) for (let x = 0; x < N; x += step) m[y * N + x] = wibbled(side[k++]);
    step = half;
    wibble /= decay;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of m) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  for (let i = 0; i < m.length; i++) m[i] = (m[i] - lo) / (hi - lo || 1);
  return m;
}

test('the plasma fractal written in place gives the gathered-sums loop\'s map bit for bit (same draws, same order)', () => {
  for (const [N, decay, seed] of [[2, 2, 1], [8, 3, 2], [32, 1.4, 3], [256, 1.7, 4]]) {
    assert.deepEqual(plasmaFractal(N, decay, mulberry32(seed)), plasmaFractalDirect(N, decay, mulberry32(seed)), `${N} decay ${decay}`);
  }
});

test('plasma fractal: a power-of-two map in [0, 1], seeded; fog layer is its top-left corner', () => {
  const a = plasmaFractal(32, 2, mulberry32(5));
  assert.equal(a.length, 1024);
  assert.equal(Math.min(...a), 0);
  assert.equal(Math.max(...a), 1);
  assert.deepEqual(a, plasmaFractal(32, 2, mulberry32(5)));
  assert.notDeepEqual(a, plasmaFractal(32, 2, mulberry32(6)));
  const layer = fogLayer(20, 30, 2, mulberry32(5));
  assert.equal(layer.length, 20 * 30);
  assert.equal(layer[19 * 30 + 29], Math.fround(a[19 * 32 + 29]));
  // larger wibble decay: smoother map (smaller mean neighbour difference)
  const rough = (m: Float64Array) => m.reduce((s, v, i) => s + (i % 32 ? Math.abs(v - m[i - 1]) : 0), 0);
  assert.ok(rough(plasmaFractal(32, 3, mulberry32(1))) < rough(plasmaFractal(32, 1.4, mulberry32(1))));
  assert.throws(() => plasmaFractal(30, 2, mulberry32(1)), /power of two/);
});

test('elastic transform: two rounds of bilinear taps (affine, field), weights summing to 1; constants kept; the affine maps its three points', () => {
  // make_imagenet_c.py's severity 1 at 224 px: alpha 488, σ 170.8 (a kernel longer than the image), affine 24.4
  const t = elasticTaps(64, 80, [488, 170.8, 24.4], mulberry32(3));
  assert.equal(t.stages, 2);
  const n = 64 * 80;
  for (let p = 0; p < n; p += 97) {
    for (const s of [0, 1]) {
      const w = [0, 1, 2, 3].reduce((a, k) => a + t.weight[(4 * s + k) * n + p], 0);
      assert.ok(Math.abs(w - 1) < 1e-6, 'bilinear weights sum to 1');
    }
  }
  // a constant image stays constant (borders included)
  const flat: PixelImage = { data: new Float32Array(3 * n).fill(0.3), channels: 3, height: 64, width: 80 };
  const rng = mulberry32(9);
  const out = corrupt(flat, 'elastic_transform', 5, rng);
  return out.then((o) => {
    assert.ok(maxDiff(o.data, flat.data) < 1e-6);
    const M = affineThrough([[0, 0], [1, 0], [0, 1]], [[2, 3], [4, 3], [2, 6]]);
    assert.deepEqual(M.map((v) => Math.round(v * 1e9) / 1e9), [2, 0, 2, 0, 3, 3]);
    assert.deepEqual((severityConstant('elastic_transform', 3, 224, 224) as number[]).map((v: number) => +v.toFixed(6)), [12.2, 2.44, 4.88], '244·(0.05, 0.01, 0.02)');
    assert.deepEqual((severityConstant('elastic_transform', 2, 32, 32) as number[]).map((v: number) => +v.toFixed(6)), [1.6, 6.4, 2.24], '32·(0.05, 0.2, 0.07)');
  });
});

test('elastic\'s draws for the graph: the affine warp\'s taps are bilinearTaps with reflect101 at the inverse affine map (and elasticTaps\' round 1); then dx\'s and dy\'s uniforms', () => {
  for (const [H, W, c] of [[64, 80, [488, 170.8, 24.4]], [33, 21, [12.2, 2.44, 4.88]], [5, 5, [1, 1, 3]]] as Array<[number, number, number[]]>) {
    const n = H * W;
    const got = elasticDraws(H, W, c, mulberry32(H));
    // the same draws, the affine solved here from its three points
    const rng = mulberry32(H);
    const cy = Math.floor(H / 2);
    const cx = Math.floor(W / 2);
    const sq = Math.floor(Math.min(H, W) / 3);
    const src = [[cy + sq, cx + sq], [cy + sq, cx - sq], [cy - sq, cx - sq]];
    const dst = src.map(([a, b]) => [Math.fround(a + Math.fround(-c[2] + 2 * c[2] * rng())), Math.fround(b + Math.fround(-c[2] + 2 * c[2] * rng()))]);
    const [a, b, t, d, e, f] = affineThrough(src, dst);
    const det = a * e - b * d;
    const inv = [e / det, -b / det, (b * f - t * e) / det, -d / det, a / det, (t * d - a * f) / det];
    const index = new Int32Array(4 * n);
    const weight = new Float32Array(4 * n);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      bilinearTaps(index, weight, n, y * W + x, inv[3] * x + inv[4] * y + inv[5], inv[0] * x + inv[1] * y + inv[2], H, W, reflect101);
    }
    assert.deepEqual(got.index, index, `${H}×${W} affine indices`);
    assert.deepEqual(got.weight.subarray(0, 4 * n), weight, `${H}×${W} affine weights`);
    assert.deepEqual(got.weight.subarray(4 * n), Float32Array.from({ length: 2 * n }, () => -1 + 2 * rng()), 'the field\'s uniforms, dx then dy');
    const taps = elasticTaps(H, W, c, mulberry32(H));
    assert.deepEqual(taps.index.subarray(0, 4 * n), index);
    assert.deepEqual(taps.weight.subarray(0, 4 * n), weight);
  }
});

test('procedural frost: seeded, the photographs\' channel statistics, crops inside the texture; a folder replaces them, bad files named', async () => {
  const t = proceduralFrost(0, 64, 64, false);
  assert.deepEqual(t.data, proceduralFrost(0, 64, 64, false).data);
  assert.ok(t.height > 64 && t.width > 64);
  const n = t.height * t.width;
  for (let c = 0; c < 3; c++) {
    const plane = t.data.subarray(c * n, (c + 1) * n);
    const mean = plane.reduce((s, v) => s + v, 0) / n;
    assert.ok(Math.abs(mean - FROST_PHOTO_STATS[0].mean[c]) < 0.02, `channel ${c} mean ${mean}`);
  }
  const textures = await frostTextures(64, 64, false);
  assert.equal(textures.length, 5);
  const layer = frostLayer(1, 64, 64, textures, mulberry32(2));
  assert.equal(layer.length, 64 * 64);
  assert.ok(layer.every((v) => v >= 0 && v <= 1));
  // the colour layer is the texture's crop at the drawn place, value for value (written into a filled array)
  for (const [H, W, seed] of [[64, 64, 3], [37, 50, 4]]) {
    const got = frostLayer(3, H, W, textures, mulberry32(seed), new Float32Array(3 * H * W).fill(9));
    const r = mulberry32(seed);
    const tex = textures[Math.floor(r() * textures.length)];
    const top = Math.floor(r() * (tex.height - H));
    const left = Math.floor(r() * (tex.width - W));
    const want = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) want[(c * H + y) * W + x] = tex.data[(c * tex.height + top + y) * tex.width + left + x];
    assert.deepEqual(got, want, `${H}×${W}`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'skeptic-frost-'));
  try {
    await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 200, g: 220, b: 240 } } }).png().toFile(join(dir, 'a.png'));
    const mine = await frostTextures(48, 48, false, dir);
    assert.equal(mine.length, 1);
    assert.ok(mine[0].height > 48 && mine[0].width > 48, 'scaled to cover the image, then by 1.1');
    const rgb: PixelImage = { data: new Float32Array(3 * 48 * 48).fill(0.5), channels: 3, height: 48, width: 48 };
    const frosted = await corrupt(rgb, 'frost', 1, mulberry32(1), { frostDir: dir });
    // severity 1 above 64 px? no: 48 px uses CIFAR's (1, 0.2): 0.5 + 0.2·(200/255)
    assert.ok(Math.abs(frosted.data[0] - (0.5 + 0.2 * (200 / 255))) < 0.01, `${frosted.data[0]}`);
    const other = mkdtempSync(join(tmpdir(), 'skeptic-frost-'));
    writeFileSync(join(other, 'b.jpg'), 'not a jpeg');
    await assert.rejects(frostTextures(48, 48, false, other), /corruptions\.frostDir: .*b\.jpg: cannot be read as an image/);
    rmSync(other, { recursive: true, force: true });
    const empty = mkdtempSync(join(tmpdir(), 'skeptic-frost-'));
    await assert.rejects(frostTextures(48, 48, false, empty), /has no PNG, JPEG, WebP or TIFF images/);
    rmSync(empty, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spatter\'s steps equal OpenCV and skimage: Canny, the 5×5 chamfer distance, box blurs, equalizeHist, the emboss filter, the Gaussians', () => {
  const s = ref.spatter;
  const { H, W } = s;
  const liquid = skimageGaussian(s.noise, H, W, 1);
  for (let p = 0; p < liquid.length; p++) if (liquid[p] < 0.68) liquid[p] = 0;
  assert.ok(maxDiff(liquid, s.liquid) < 1e-11, 'skimage gaussian σ 1, border nearest');
  const layer8 = Uint8Array.from(s.liquid as number[], (v) => Math.trunc(v * 255));
  assert.deepEqual(Array.from(layer8), s.layer8);
  assert.deepEqual(Array.from(canny(layer8, H, W, 50, 150)), s.canny);
  assert.ok(s.canny.some((v: number) => v === 255), 'the layer has edges');
  const dist = distanceTransform5(Uint8Array.from(s.canny as number[], (v) => 255 - v), H, W);
  assert.deepEqual(Array.from(dist), s.dist);
  const blur8 = Uint8Array.from(blur3Float(dist.map((v) => Math.min(v, 20)), H, W), Math.trunc);
  assert.deepEqual(Array.from(blur8), s.blur8);
  assert.deepEqual(Array.from(equalizeHist(s.blur8)), s.equalized);
  assert.deepEqual(Array.from(filter2D3Uint8(s.equalized, H, W, [-2, -1, 0, -1, 1, 1, 0, 1, 2])), s.emboss);
  assert.deepEqual(Array.from(blur3Uint8(s.emboss, H, W)), s.final);
  // the whole water weight (layer8 · final) from the thresholded layer
  assert.deepEqual(Array.from(waterWeight(s.liquid, H, W)), s.layer8.map((v: number, p: number) => v * s.final[p]));
  const mask = Float64Array.from(s.liquid as number[], (v) => (v > 0.68 ? 1 : 0));
  assert.ok(maxDiff(skimageGaussian(mask, H, W, 1.5), s.mud) < 1e-6, 'mud mask σ 1.5');
  // a smoother image: weak edges kept only when connected to strong ones; a spread histogram
  assert.deepEqual(Array.from(canny(s.smooth, H, W, 50, 150)), s.smoothCanny);
  assert.deepEqual(Array.from(equalizeHist(s.smooth)), s.smoothEqualized);
  assert.ok(maxDiff(blur3Float(Float32Array.from(s.smooth as number[], (v) => v / 7), H, W), s.smoothBlur) < 1e-5);
  // two zeros: long chamfer paths; none at all: OpenCV's cap everywhere
  const sparse = new Uint8Array(H * W).fill(9);
  sparse[3 * W + 4] = sparse[15 * W + 19] = 0;
  assert.deepEqual(Array.from(distanceTransform5(sparse, H, W)), s.sparseDist);
  assert.ok(distanceTransform5(new Uint8Array(12).fill(3), 3, 4).every((v) => v === 8192));
  assert.deepEqual(Array.from(equalizeHist([7, 7, 7])), [7, 7, 7], 'a constant plane stays');
});

test('spatter given the layer\'s normal draws equals imagecorruptions\' spatter at every severity (water 1–3, mud 4–5)', () => {
  const s = ref.spatter;
  const { H, W } = s;
  const image: PixelImage = { data: Float32Array.from(s.image as number[], (v) => v / 255), channels: 3, height: H, width: W };
  for (let sev = 1; sev <= 5; sev++) {
    const c = IMAGENET_C.spatter[sev - 1] as number[];
    const liquid = skimageGaussian((s.z as number[]).map((z) => c[0] + c[1] * z), H, W, c[2]);
    for (let p = 0; p < liquid.length; p++) if (liquid[p] < c[3]) liquid[p] = 0;
    const got = spatterFromLayer(image, c, liquid).data;
    assert.ok(maxDiff(got, s.out[sev - 1]) < 1e-6, `severity ${sev}: ${maxDiff(got, s.out[sev - 1])}`);
    assert.ok(maxDiff(got, image.data) > 0.05, `severity ${sev} changes the image`);
  }
});

test('spatter: seeded; water (severities 1–3) adds pale turquoise, mud (4–5) darkens towards brown; grey images get the colour\'s grey', async () => {
  const H = 96;
  const n = H * H;
  const data = new Float32Array(3 * n);
  for (let i = 0; i < data.length; i++) data[i] = 0.2 + 0.4 * ((i * 7919) % 101) / 101;
  const rgb: PixelImage = { data, channels: 3, height: H, width: H };
  const a = await corrupt(rgb, 'spatter', 2, mulberry32(4));
  assert.deepEqual(a.data, (await corrupt(rgb, 'spatter', 2, mulberry32(4))).data);
  assert.notDeepEqual(a.data, (await corrupt(rgb, 'spatter', 2, mulberry32(5))).data);
  for (const s of [1, 2, 3]) {
    const o = await corrupt(rgb, 'spatter', s, mulberry32(s));
    let changed = 0;
    for (let p = 0; p < n; p++) {
      const d = [0, 1, 2].map((c) => o.data[c * n + p] - data[c * n + p]);
      assert.ok(d.every((v) => v >= -1e-7), 'water only adds');
      if (d[1] > 1e-6) {
        changed++;
        // added in proportion 175 : 238 : 238 (where nothing clipped)
        if (o.data[p] < 1 && o.data[n + p] < 1) assert.ok(Math.abs(d[0] / d[1] - 175 / 238) < 1e-4);
        assert.ok(Math.abs(d[1] - d[2]) < 1e-6 || o.data[n + p] === 1 || o.data[2 * n + p] === 1);
      }
    }
    assert.ok(changed > n / 100 && changed < n, `severity ${s}: ${changed} pixels changed`);
  }
  for (const s of [4, 5]) {
    const o = await corrupt(rgb, 'spatter', s, mulberry32(s));
    let mud = 0;
    for (let p = 0; p < n; p++) {
      if (o.data[p] === data[p]) continue;
      mud++;
      const m = (data[n + p] - o.data[n + p]) / (data[n + p] - 42 / 255);
      assert.ok(m >= 0.8 - 1e-4 && m <= 1 + 1e-4, `mud weight ${m} ≥ 0.8`);
      assert.ok(Math.abs(o.data[p] - (data[p] * (1 - m) + m * 63 / 255)) < 1e-4);
    }
    assert.ok(mud > n / 100, `severity ${s}: ${mud} mud pixels`);
  }
  const grey: PixelImage = { data: data.slice(0, n), channels: 1, height: H, width: H };
  const g = await corrupt(grey, 'spatter', 5, mulberry32(5));
  const o = await corrupt(rgb, 'spatter', 5, mulberry32(5));
  for (let p = 0; p < n; p++) {
    const m = o.data[n + p] === data[n + p] ? 0 : (data[n + p] - o.data[n + p]) / (data[n + p] - 42 / 255);
    assert.ok(Math.abs(g.data[p] - (data[p] * (1 - m) + m * (0.2125 * 63 + 0.7154 * 42 + 0.0721 * 20) / 255)) < 1e-4);
  }
});

test('snow equals its definition written plainly (a gaussian() call per value, the zoom by its taps, the clamped-index motion blur, Math.max), bit for bit', async () => {
  const { snow, zoomTaps } = await import('../../server/engine/image/imagenet-c');
  const { gaussian } = await import('../../server/engine/random');
  const plain = (x: PixelImage, c: number[], rng: () => number): Float32Array => {
    const [mean, std, zoom, threshold, radius, sigma, mix] = c;
    const { channels: C, height: H, width: W } = x;
    const n = H * W;
    const noise = Array.from({ length: n }, () => mean + std * gaussian(rng));
    const ty = zoomTaps(H, zoom);
    const tx = zoomTaps(W, zoom);
    const z = new Float64Array(ty.size * tx.size);
    for (let y = 0; y < ty.size; y++) for (let xx = 0; xx < tx.size; xx++) {
      const at = (r: number, col: number) => noise[r * W + col];
      const v = ty.w0[y] * (tx.w0[xx] * at(ty.i0[y], tx.i0[xx]) + tx.w1[xx] * at(ty.i0[y], tx.i1[xx])) + ty.w1[y] * (tx.w0[xx] * at(ty.i1[y], tx.i0[xx]) + tx.w1[xx] * at(ty.i1[y], tx.i1[xx]));
      z[y * tx.size + xx] = v < threshold ? 0 : Math.min(1, Math.max(0, v));
    }
    const blurred = motionBlurPlaneDirect(z, ty.size, tx.size, radius, sigma, -135 + 90 * rng());
    const hs = Math.min(H, ty.size);
    const ws = Math.min(W, tx.size);
    const layer = new Float64Array(n);
    for (let y = 0; y < hs; y++) for (let xx = 0; xx < ws; xx++) {
      layer[y * W + xx] = Math.round(blurred[y * tx.size + xx] * 255) / 255 + Math.round(blurred[(hs - 1 - y) * tx.size + (ws - 1 - xx)] * 255) / 255;
    }
    const out = new Float32Array(C * n);
    for (let p = 0; p < n; p++) {
      const grey = C === 3 ? 0.299 * x.data[p] + 0.587 * x.data[n + p] + 0.114 * x.data[2 * n + p] : x.data[p];
      for (let ch = 0; ch < C; ch++) {
        const v = x.data[ch * n + p];
        out[ch * n + p] = Math.min(1, Math.max(0, mix * v + (1 - mix) * Math.max(v, grey * 1.5 + 0.5) + layer[p]));
      }
    }
    return out;
  };
  const r = mulberry32(5);
  const grey: PixelImage = { data: Float32Array.from({ length: 30 * 26 }, () => Math.round(r() * 255) / 255), channels: 1, height: 30, width: 26 };
  for (const x of [img, grey]) {
    for (const severity of [1, 2, 3, 4, 5]) {
      const c = severityConstant('snow', severity, x.height, x.width) as number[];
      const out = new Float32Array(x.data.length).fill(9);
      assert.deepEqual(snow(x, c, mulberry32(severity), out).data, plain(x, c, mulberry32(severity)), `${x.channels} channels, severity ${severity}`);
    }
  }
});

test('the scratch planes the CPU makers reuse never carry a value from one call to the next: poisoned with NaN between calls, snow, motion blur and fog give the same values', async () => {
  const { fillScratch, motionBlur, snow } = await import('../../server/engine/image/imagenet-c');
  const image = (C: 1 | 3, H: number, W: number, seed: number): PixelImage => {
    const rng = mulberry32(seed);
    return { data: Float32Array.from({ length: C * H * W }, () => Math.round(rng() * 255) / 255), channels: C, height: H, width: W };
  };
  // a larger image first, then smaller ones: a site then hands out a view of a longer plane
  const cases: Array<[1 | 3, number, number]> = [[3, 40, 36], [3, 17, 23], [1, 28, 28], [3, 9, 12]];
  for (const [C, H, W] of cases) {
    const x = image(C, H, W, 7 * H + W);
    for (const s of [1, 3, 5]) {
      const t = severityConstant('snow', s, H, W) as number[];
      const [r, sigma] = severityConstant('motion_blur', s, H, W) as number[];
      const decay = (severityConstant('fog', s, H, W) as number[])[1];
      const run = () => ({
        snow: snow(x, t, mulberry32(11 + s)).data,
        motion: motionBlur(x, r, sigma, mulberry32(13 + s)).data,
        fog: fogLayer(H, W, decay, mulberry32(17 + s)),
      });
      const first = run();
      fillScratch(Number.NaN);
      const again = run();
      for (const k of ['snow', 'motion', 'fog'] as const) {
        assert.ok(again[k].every((v) => Number.isFinite(v)), `${k} ${C}×${H}×${W} severity ${s}: a NaN from a poisoned scratch plane`);
        assert.deepEqual(again[k], first[k], `${k} ${C}×${H}×${W} severity ${s}`);
      }
    }
  }
});
