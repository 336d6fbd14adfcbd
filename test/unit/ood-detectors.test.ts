/**
 * The feature-space OOD detectors (server/engine/ood/) against plain references on hand-made
 * features: Gaussian clusters where the right answer is known, small cases computed directly
 * (explicit inverse, brute-force neighbours, the head applied by hand), and the linear algebra
 * against its defining identities.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { cholesky, cholSolve, symmetricEigen } from '../../server/engine/ood/linalg';
import { mahalanobis } from '../../server/engine/ood/mahalanobis';
import { kthSmallest, knn } from '../../server/engine/ood/knn';
import { vim, vimOrigin } from '../../server/engine/ood/vim';
import { percentile, react } from '../../server/engine/ood/react';
import type { FitData } from '../../server/engine/ood/detector';
import type { LinearHead } from '../../server/engine/model/head';
import { auroc } from '../../server/engine/metrics';
import { gaussian, mulberry32 } from '../../server/engine/random';

const rng = mulberry32(17);
const randn = () => gaussian(rng);

/** n points per class around the given centres with unit noise (times `spread`). */
function clusters(centres: number[][], n: number, spread = 1): FitData {
  const d = centres[0].length;
  const x = new Float32Array(centres.length * n * d);
  const cls = new Int32Array(centres.length * n);
  centres.forEach((c, k) => {
    for (let i = 0; i < n; i++) {
      const r = k * n + i;
      cls[r] = k;
      for (let j = 0; j < d; j++) x[r * d + j] = c[j] + spread * randn();
    }
  });
  return { n: centres.length * n, d, x, cls, seed: 0 };
}

/** Gauss–Jordan inverse, independent of the Cholesky code under test. */
function inverse(A: number[][]): number[][] {
  const n = A.length;
  const M = A.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    const v = M[c][c];
    for (let j = 0; j < 2 * n; j++) M[c][j] /= v;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c];
      for (let j = 0; j < 2 * n; j++) M[r][j] -= f * M[c][j];
    }
  }
  return M.map((row) => row.slice(n));
}

test('linalg: Cholesky solves A·x = b; Jacobi eigenpairs satisfy A·v = λ·v with orthonormal V', () => {
  const n = 7;
  const B = Array.from({ length: n * n }, () => randn());
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = i === j ? 0.5 : 0;
    for (let k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k];
    A[i * n + j] = s;
  }
  const b = Array.from({ length: n }, () => randn());
  const x = cholSolve(cholesky(A, n), n, b);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += A[i * n + j] * x[j];
    assert.ok(Math.abs(s - b[i]) < 1e-10, `row ${i}: ${s} vs ${b[i]}`);
  }
  const { values, vectors } = symmetricEigen(A, n);
  for (let r = 1; r < n; r++) assert.ok(values[r - 1] >= values[r], 'descending');
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += A[i * n + j] * vectors[j * n + r];
      assert.ok(Math.abs(s - values[r] * vectors[i * n + r]) < 1e-9, `A·v = λ·v for pair ${r}`);
    }
    for (let q = 0; q < n; q++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += vectors[i * n + r] * vectors[i * n + q];
      assert.ok(Math.abs(dot - (r === q ? 1 : 0)) < 1e-10, 'orthonormal');
    }
  }
  assert.throws(() => cholesky(Float64Array.of(1, 2, 2, 1), 2), /not positive definite/);
});

test('Mahalanobis equals the direct float64 formula (explicit inverse of the tied covariance) on a small case', () => {
  const data = clusters([[0, 0, 0], [4, 0, 1], [0, 5, -2]], 20, 1.3);
  const { n, d, x, cls } = data;
  // Direct: class means, tied covariance (1/n), explicit inverse, min over classes.
  const mu = [0, 1, 2].map((c) => {
    const rows = [...Array(n).keys()].filter((i) => cls[i] === c);
    return [0, 1, 2].map((j) => rows.reduce((s, i) => s + x[i * d + j], 0) / rows.length);
  });
  const S = [0, 1, 2].map(() => [0, 0, 0]);
  for (let i = 0; i < n; i++) {
    const r = [0, 1, 2].map((j) => x[i * d + j] - mu[cls[i]][j]);
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) S[a][b] += (r[a] * r[b]) / n;
  }
  const P = inverse(S);
  const direct = (f: number[]) =>
    -Math.min(...mu.map((m) => {
      const z = f.map((v, j) => v - m[j]);
      let s = 0;
      for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) s += z[a] * P[a][b] * z[b];
      return s;
    }));
  const fitted = mahalanobis(0).fit(data);
  for (const f of [[0.5, -0.2, 0.1], [4, 1, 1], [10, 10, 10], [-3, 2, 0]]) {
    const got = fitted.score(Float32Array.from(f));
    const want = direct(f.map((v) => Math.fround(v)));
    assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${got} vs ${want}`);
  }
});

test('KNN equals a brute-force k-th nearest neighbour over normalised features; k is capped at n − 1', () => {
  const data = clusters([[1, 0, 0, 0], [0, 1, 0, 0]], 15, 0.3);
  const { n, d, x } = data;
  const norm = (v: number[]) => {
    const s = Math.hypot(...v);
    return v.map((t) => t / s);
  };
  const bank = [...Array(n).keys()].map((i) => norm(Array.from(x.subarray(i * d, (i + 1) * d))));
  for (const k of [1, 5, 50]) {
    const fitted = knn(k).fit(data);
    const kk = Math.min(k, n - 1);
    assert.equal(fitted.info.k, kk);
    for (const f of [[1, 0.1, 0, 0], [0.2, 0.9, 0.1, 0], [0, 0, 1, 1]]) {
      const q = norm(f.map((v) => Math.fround(v)));
      const dists = bank.map((b) => Math.hypot(...b.map((v, j) => v - q[j]))).sort((a, b) => a - b);
      const got = fitted.score(Float32Array.from(f));
      assert.ok(Math.abs(got - -dists[kk - 1]) < 1e-6, `k=${k}: ${got} vs ${-dists[kk - 1]}`);
    }
  }
});

test('KNN: quickselect equals sorting, ties included; the bank is capped by a seeded subsample', () => {
  for (const n of [1, 2, 7, 50]) {
    const a = Float64Array.from({ length: n }, () => Math.round(randn() * 3));
    const sorted = Array.from(a).sort((x, y) => x - y);
    for (let k = 1; k <= n; k++) assert.ok(kthSmallest(a, n, k) === sorted[k - 1], `k=${k}`);
  }
  const data = clusters([[1, 0], [0, 1]], 15, 0.3);
  const a = knn(3, 10).fit(data);
  const b = knn(3, 10).fit(data);
  assert.equal(a.info.bank, 10);
  assert.equal(a.score(Float32Array.of(0.7, 0.7)), b.score(Float32Array.of(0.7, 0.7)), 'the same seed, the same bank');
});

/** A random K×d head. */
function randomHead(K: number, d: number): LinearHead {
  return { W: Float64Array.from({ length: K * d }, () => randn()), b: Float64Array.from({ length: K }, () => randn()), K, d, how: 'test' };
}

test('ReAct: the clip is the 90th percentile (numpy linear) and the score is logsumexp of W·min(f, c) + b', () => {
  assert.equal(percentile(Float64Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90), 9.1); // numpy.percentile(range(1,11), 90)
  assert.equal(percentile(Float64Array.of(5), 90), 5);
  const data = clusters([[1, 2, 0.5], [0, 1, 3]], 10, 1);
  const head = randomHead(4, 3);
  const fitted = react(90).fit({ ...data, head });
  const c = percentile(data.x, 90);
  assert.equal(fitted.info.clip, c);
  const f = [5, 0.2, -1];
  const z = [0, 1, 2, 3].map((k) => head.b[k] + f.reduce((s, v, j) => s + head.W[k * 3 + j] * Math.min(Math.fround(v), c), 0));
  const m = Math.max(...z);
  const want = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
  assert.ok(Math.abs(fitted.score(Float32Array.from(f)) - want) < 1e-12);
});

test('ViM: u = −pinv(W)·b (W·u = −b, u in the row space), and both subspace routes (d×d and Gram) agree', () => {
  const head = randomHead(3, 8);
  const u = vimOrigin(head);
  for (let k = 0; k < 3; k++) {
    let s = head.b[k];
    for (let j = 0; j < 8; j++) s += head.W[k * 8 + j] * u[j];
    assert.ok(Math.abs(s) < 1e-8, `W·u + b = ${s}`);
  }
  // Minimum norm: u = Wᵀy for some y, i.e. u is orthogonal to W's null space. Check via the
  // projection onto the row space: ‖u‖² = u·(Wᵀ(WWᵀ)⁻¹W u) computed with the explicit inverse.
  const WWt = [0, 1, 2].map((a) => [0, 1, 2].map((c) => [...Array(8).keys()].reduce((s, j) => s + head.W[a * 8 + j] * head.W[c * 8 + j], 0)));
  const Wu = [0, 1, 2].map((a) => [...Array(8).keys()].reduce((s, j) => s + head.W[a * 8 + j] * u[j], 0));
  const inv = inverse(WWt);
  const y = [0, 1, 2].map((a) => [0, 1, 2].reduce((s, c) => s + inv[a][c] * Wu[c], 0));
  const proj = [...Array(8).keys()].map((j) => [0, 1, 2].reduce((s, a) => s + head.W[a * 8 + j] * y[a], 0));
  for (let j = 0; j < 8; j++) assert.ok(Math.abs(proj[j] - u[j]) < 1e-8, 'u lies in the row space of W');

  const data = { ...clusters([[2, 0, 1, 0, 0, 1, 0, 0], [0, 2, 0, 1, 1, 0, 0, 0]], 3, 0.5), head };
  const dense = vim(100).fit(data);
  const gram = vim(6).fit(data);
  assert.equal(dense.info.dim, gram.info.dim);
  assert.ok(Math.abs(Number(dense.info.alpha) - Number(gram.info.alpha)) < 1e-8 * Number(dense.info.alpha));
  for (const f of [[1, 1, 1, 1, 1, 1, 1, 1], [2, 0, 1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 5, 5]]) {
    const a = dense.score(Float32Array.from(f));
    const b = gram.score(Float32Array.from(f));
    assert.ok(Math.abs(a - b) < 1e-8 * Math.max(1, Math.abs(a)), `${a} vs ${b}`);
  }
});

test('Gaussian clusters: every detector ranks points from a far cluster below held-out in-distribution points', () => {
  const d = 16;
  const centres = [0, 1, 2].map((c) => Array.from({ length: d }, (_, j) => (j % 3 === c ? 6 : 0)));
  const fit = clusters(centres, 60);
  const held = clusters(centres, 30);
  // OOD: the same spread, but in the directions none of the classes use (and the classes' own
  // dimensions at zero), so the class logits see nothing and the features lie off the clusters.
  const ood = clusters([Array.from({ length: d }, (_, j) => (j >= 12 ? 8 : 0))], 90);
  // A head that reads the class dimensions (what a trained last layer would look like).
  const head: LinearHead = { W: Float64Array.from({ length: 3 * d }, (_, i) => (i % d) % 3 === Math.floor(i / d) && (i % d) < 12 ? 1 : 0), b: new Float64Array(3), K: 3, d, how: 'test' };
  for (const det of [mahalanobis(), knn(10), vim(), react()]) {
    const f = det.fit({ ...fit, head });
    const s = (x: FitData) => [...Array(x.n).keys()].map((i) => f.score(x.x, i * d));
    const a = auroc(s(held), s(ood))!;
    assert.ok(a > 0.95, `${det.name}: AUROC ${a}`);
  }
});
