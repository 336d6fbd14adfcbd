/**
 * The prior probe's classifiers (server/engine/prior/classify.ts) on synthetic cases with known
 * answers, its stratified folds, and the feature packing (prior/project.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crossValidate, logRegFit, matrix, ncmPredict, standardise, stratifiedFolds } from '../../server/engine/prior/classify';
import { pack, pixelVector, projection, unpack } from '../../server/engine/prior/project';
import { gaussian, mulberry32 } from '../../server/engine/random';

/** n samples per class; class c has mean `means[c]` (padded with zeros to d), unit variance. */
function gaussians(means: number[][], n: number, d: number, seed: number): { x: number[][]; y: number[] } {
  const rng = mulberry32(seed);
  const x: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < means.length; c++) {
      x.push(Array.from({ length: d }, (_, j) => (means[c][j] ?? 0) + gaussian(rng)));
      y.push(c);
    }
  }
  return { x, y };
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 on erf). */
function phi(z: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const erf = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(z * z) / 2);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

test('two linearly separable Gaussian classes: both probes ≈ 100% under 5-fold CV', () => {
  const { x, y } = gaussians([[6], [-6]], 100, 10, 1);
  const folds = stratifiedFolds(y, 5, 0);
  for (const kind of ['ncm', 'logreg'] as const) {
    const r = crossValidate(matrix(x), y, folds, 5, kind);
    assert.equal(r.n, 200);
    assert.ok(r.accuracy >= 0.995, `${kind}: ${r.accuracy}`);
  }
});

test('overlapping classes: accuracy near the Bayes rate Φ(μ) for means ±μ', () => {
  const mu = 0.5;
  const { x, y } = gaussians([[mu], [-mu]], 1000, 3, 2);
  const bayes = phi(mu); // 0.6915
  const folds = stratifiedFolds(y, 5, 1);
  for (const kind of ['ncm', 'logreg'] as const) {
    const r = crossValidate(matrix(x), y, folds, 5, kind);
    assert.ok(Math.abs(r.accuracy - bayes) < 0.03, `${kind}: ${r.accuracy} vs Bayes ${bayes.toFixed(4)}`);
  }
});

test('three classes where the class means differ in direction: multinomial probes separate them', () => {
  const { x, y } = gaussians([[4, 0], [0, 4], [-4, -4]], 60, 5, 3);
  const folds = stratifiedFolds(y, 5, 2);
  const lr = crossValidate(matrix(x), y, folds, 5, 'logreg');
  const ncm = crossValidate(matrix(x), y, folds, 5, 'ncm');
  assert.ok(lr.accuracy > 0.97 && ncm.accuracy > 0.97, `${lr.accuracy} ${ncm.accuracy}`);
  assert.equal(lr.notConverged, 0);
  // Labels need not be 0..K−1.
  const shifted = crossValidate(matrix(x), y.map((c) => c * 7 + 3), folds, 5, 'logreg');
  assert.equal(shifted.correct, lr.correct);
});

test('logistic regression converges to a stationary point of the regularised loss', () => {
  const { x, y } = gaussians([[1, 1], [-1, 0]], 50, 2, 4);
  const m = logRegFit(matrix(x), y, 2, { l2: 0.1, maxIter: 500, tol: 1e-8 });
  assert.ok(m.converged, `iterations ${m.iterations}`);
  // With equal λ on both classes' weights, the optimum has w0 = −w1 (softmax is shift-invariant).
  for (let j = 0; j < 2; j++) assert.ok(Math.abs(m.theta[j] + m.theta[2 + j]) < 1e-6);
  // A stronger penalty gives smaller weights.
  const strong = logRegFit(matrix(x), y, 2, { l2: 10, maxIter: 500 });
  assert.ok(Math.abs(strong.theta[0]) < Math.abs(m.theta[0]));
});

test('nearest class mean and standardisation by hand', () => {
  const tr = matrix([[0, 0], [0, 2], [10, 0], [10, 2]]);
  assert.deepEqual(ncmPredict(tr, [0, 0, 1, 1], 2, matrix([[1, 1], [9, 5], [5.1, 0]])), [0, 1, 1]);
  const { train, test: te } = standardise(matrix([[1, 5], [3, 5]]), matrix([[2, 7]]));
  assert.deepEqual(Array.from(train.data), [-1, 0, 1, 0]);
  assert.deepEqual(Array.from(te.data), [0, 2], 'a constant feature keeps scale 1');
});

test('folds: stratified, balanced, deterministic for a seed', () => {
  const y = [...Array(23).fill(0), ...Array(10).fill(1), ...Array(7).fill(2)];
  const f = stratifiedFolds(y, 5, 9);
  assert.deepEqual(stratifiedFolds(y, 5, 9), f);
  assert.notDeepEqual(stratifiedFolds(y, 5, 10), f);
  const sizes = [0, 1, 2, 3, 4].map((k) => f.filter((v) => v === k).length);
  assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${sizes}`);
  for (const c of [0, 1, 2]) {
    const n = y.filter((v) => v === c).length;
    for (let k = 0; k < 5; k++) {
      const m = y.filter((v, i) => v === c && f[i] === k).length;
      assert.ok(m === Math.floor(n / 5) || m === Math.ceil(n / 5), `class ${c} fold ${k}: ${m} of ${n}`);
    }
  }
});

test('projection keeps distances roughly, packing round-trips within float16 precision', () => {
  const D = 2000;
  const p = projection(D, 256, 1, 'test');
  assert.equal(p.kind, 'gaussian');
  const rng = mulberry32(5);
  const a = Float32Array.from({ length: D }, () => gaussian(rng));
  const b = Float32Array.from({ length: D }, () => gaussian(rng));
  const dist = (u: ArrayLike<number>, v: ArrayLike<number>) => Math.sqrt(Array.from(u).reduce((s, x, i) => s + (x - v[i]) ** 2, 0));
  const ratio = dist(p.apply(a), p.apply(b)) / dist(a, b);
  assert.ok(Math.abs(ratio - 1) < 0.15, `distance ratio ${ratio}`);
  assert.deepEqual(Array.from(projection(D, 256, 1, 'test').apply(a)), Array.from(p.apply(a)), 'seeded');
  assert.equal(projection(100, 256, 1, 'x').kind, 'identity');
  assert.equal(projection(40000, 256, 1, 'x').kind, 'hash');
  const v = p.apply(a);
  const back = unpack(pack(v));
  const scale = Math.max(...Array.from(v, Math.abs));
  for (let i = 0; i < v.length; i++) assert.ok(Math.abs(back[i] - v[i]) <= scale * 1e-3);
  assert.ok(pack(v).f16.length <= 700);
  const big = { data: new Float32Array(3 * 224 * 224).fill(0.5), channels: 3 as const, height: 224, width: 224 };
  const px = pixelVector(big);
  assert.ok(px.length <= 4096 && px.length >= 3000, `${px.length}`);
  assert.ok(Math.abs(px[0] - 0.5) < 1e-6);
});
