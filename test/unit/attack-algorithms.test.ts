/**
 * The attacks (server/engine/attacks) on linear models, where every answer is known by hand.
 *
 * A linear classifier z = W·x + b on a C×H×W image, with label 0, is fooled exactly when
 * z₁ − z₀ = (w₁ − w₀)·x + (b₁ − b₀) turns positive. With m = z₀ − z₁ > 0 at the clean image and
 * v = w₁ − w₀, the smallest perturbation that does it (ignoring the [0,1] box, which the test
 * images stay far from) has
 *     ‖δ‖∞ = m / ‖v‖₁   (δ = ε·sign(v))          ‖δ‖₂ = m / ‖v‖₂   (δ = ε·v/‖v‖₂).
 * The gradient of either loss (cross-entropy or margin) is a positive multiple of v, so FGSM
 * moves each pixel by exactly ε·sign(v) (clipped), PGD L∞ reaches the corner δ = ε·sign(v) from
 * any random start within 2ε/α = 16 of its 20 steps, and PGD L2 turns towards v.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitF32, gradRows, l2Distance, linfDistance, projectL2, projectLinf, verdict, type GradientOracle, type LossKind } from '../../server/engine/attacks/base';
import { fgsm } from '../../server/engine/attacks/fgsm';
import { bisectMinimalEps } from '../../server/engine/attacks/minimal-eps';
import { pgd } from '../../server/engine/attacks/pgd';
import { pSelection, squareLinf } from '../../server/engine/attacks/square';
import { mulberry32 } from '../../server/engine/random';
import type { PixelBatch } from '../../server/engine/types';
import { fakeModel } from './helpers/fake';

const C = 3;
const H = 4;
const W = 4;
const D = C * H * W;

/** z = W·x + b: a fake LoadedModel (predict) and its exact gradient oracle. `negatedMargin`
 *  reports the margin the other way round (z_y − max_{j≠y} z_j), as some code does. */
function linear(Wm: number[][], b: number[], opts: { negatedMargin?: boolean } = {}) {
  const K = Wm.length;
  const logitsOf = (x: ArrayLike<number>, off = 0) => Wm.map((w, c) => w.reduce((a, wj, j) => a + wj * x[off + j], b[c]));
  const model = fakeModel({ channels: C, height: H, width: W, numClasses: K, logits: (px) => logitsOf(px) });
  let gradCalls = 0;
  const oracle: GradientOracle = {
    async lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: LossKind) {
      gradCalls++;
      const logits = new Float32Array(batch.n * K);
      const lossOut = new Float32Array(batch.n);
      const grad = new Float32Array(batch.n * D);
      for (let i = 0; i < batch.n; i++) {
        const z = logitsOf(batch.data, i * D);
        const y = labels[i];
        z.forEach((v, c) => (logits[i * K + c] = v));
        const coef = new Array<number>(K).fill(0);
        if (loss === 'ce') {
          const mx = Math.max(...z);
          const e = z.map((v) => Math.exp(v - mx));
          const s = e.reduce((a, v) => a + v, 0);
          lossOut[i] = -(z[y] - mx - Math.log(s));
          e.forEach((v, c) => (coef[c] = v / s - (c === y ? 1 : 0)));
        } else {
          let j = -1;
          for (let c = 0; c < K; c++) if (c !== y && (j < 0 || z[c] > z[j])) j = c;
          const sign = opts.negatedMargin ? -1 : 1;
          lossOut[i] = sign * (z[j] - z[y]);
          coef[j] = sign;
          coef[y] = -sign;
        }
        for (let d = 0; d < D; d++) grad[i * D + d] = coef.reduce((a, k, c) => a + k * Wm[c][d], 0);
      }
      return { logits, loss: lossOut, grad };
    },
  };
  return { model, oracle, calls: () => gradCalls, logitsOf };
}

/** A two-class problem with label 0 and clean margin z₀ − z₁ = m on image x. */
function twoClass(seed: number, m: number) {
  const rng = mulberry32(seed);
  const w0 = Array.from({ length: D }, () => rng() * 2 - 1);
  const w1 = Array.from({ length: D }, () => rng() * 2 - 1);
  const x = Float32Array.from({ length: D }, () => 0.3 + 0.4 * rng());
  const v = w1.map((w, j) => w - w0[j]);
  const vx = v.reduce((a, vj, j) => a + vj * x[j], 0);
  // b₁ − b₀ = −m − v·x, so that z₀ − z₁ = m.
  const lin = linear([w0, w1], [0, -m - vx]);
  const l1 = v.reduce((a, vj) => a + Math.abs(vj), 0);
  const l2 = Math.sqrt(v.reduce((a, vj) => a + vj * vj, 0));
  return { ...lin, x, v, dInf: m / l1, d2: m / l2 };
}

const one = (x: Float32Array): PixelBatch => ({ data: x, n: 1, channels: C, height: H, width: W });
const streams = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => mulberry32(seed * 1000 + i));

test('fitF32 and the projections keep every value in [0,1] and inside the ε-ball exactly', () => {
  const rng = mulberry32(3);
  const x = Float32Array.from({ length: 4000 }, (_, i) => (i % 10 === 0 ? 0 : i % 10 === 1 ? 1 : rng()));
  for (const eps of [1 / 255, 2 / 255, 8 / 255, 0.1, 0.3]) {
    const src = Float64Array.from(x, (v) => v + (rng() * 4 - 2) * eps);
    const adv = new Float32Array(x.length);
    projectLinf(adv, x, x.length, () => eps, [0], undefined, src);
    assert.ok(linfDistance(adv, x) <= eps, `‖δ‖∞ ${linfDistance(adv, x)} > ${eps}`);
    assert.ok(adv.every((v) => v >= 0 && v <= 1));
    // Values inside the ball and the box are kept (to float32 rounding).
    const inside = Float64Array.from(x, (v) => Math.min(1, Math.max(0, v + 0.5 * eps)));
    projectLinf(adv, x, x.length, () => eps, [0], undefined, inside);
    for (let j = 0; j < x.length; j++) assert.ok(Math.abs(adv[j] - inside[j]) < 1e-7);

    projectL2(adv, x, x.length, () => eps * 10, [0], undefined, src);
    assert.ok(l2Distance(adv, x) <= eps * 10, `‖δ‖₂ ${l2Distance(adv, x)} > ${eps * 10}`);
    assert.ok(adv.every((v) => v >= 0 && v <= 1));
  }
  // Clipping: a step out of the box stops at its edge.
  const adv = new Float32Array(2);
  projectLinf(adv, Float32Array.from([0.01, 0.99]), 2, () => 0.1, [0], undefined, Float64Array.from([-0.09, 1.09]));
  assert.deepEqual([...adv], [0, 1]);
  // One ulp down where rounding would overshoot: x + ε rounds above x + ε in float32.
  const xv = Math.fround(0.3);
  const e = 8 / 255;
  const f = fitF32(xv + e, xv - e, xv + e);
  assert.ok(f - xv <= e && f - xv > e - 1e-7);
});

test('FGSM moves each pixel by exactly ε·sign(w₁ − w₀), clipped to [0,1]', async () => {
  const lin = twoClass(1, 0.5);
  const x = Float32Array.from(lin.x);
  x[0] = 0.005; // clipped at 0 or kept, depending on the sign
  x[1] = 0.998;
  for (const loss of ['ce', 'margin'] as const) {
    const eps = [2 / 255, 0.1];
    const adv = await fgsm(lin.oracle, one(x), [0], eps, { loss });
    assert.equal(adv.length, 2 * D);
    eps.forEach((e, k) => {
      for (let j = 0; j < D; j++) {
        const want = Math.min(1, Math.max(0, x[j] + e * Math.sign(lin.v[j])));
        assert.ok(Math.abs(adv[k * D + j] - want) < 1e-7, `${loss} ε=${e} pixel ${j}: ${adv[k * D + j]} vs ${want}`);
        assert.ok(Math.abs(adv[k * D + j] - x[j]) <= e);
      }
    });
  }
});

test('PGD L∞ flips the label exactly when ε exceeds m / ‖w₁ − w₀‖₁', async () => {
  for (const seed of [1, 2, 3]) {
    const lin = twoClass(seed, 0.4);
    assert.ok(lin.dInf < 0.08 && lin.dInf > 0.001, `test image must stay clear of the box, d = ${lin.dInf}`);
    // Five images in one batch: the same image at ε just below and above the distance.
    const eps = [0.97, 0.995, 1.005, 1.03, 2].map((f) => f * lin.dInf);
    const batch: PixelBatch = { data: new Float32Array(eps.length * D), n: eps.length, channels: C, height: H, width: W };
    eps.forEach((_, i) => batch.data.set(lin.x, i * D));
    const labels = eps.map(() => 0);
    const r = await pgd(lin.oracle, batch, labels, { norm: 'linf', eps, rngs: streams(eps.length, seed) });
    const v = await verdict((b) => lin.model.predict(b), { ...batch, data: r.adv }, labels);
    assert.deepEqual([...v.fooled], [0, 0, 1, 1, 1], `seed ${seed}`);
    eps.forEach((e, i) => {
      assert.ok(linfDistance(r.adv, lin.x, i * D, 0, D) <= e, 'inside the ball');
      assert.ok(r.adv.subarray(i * D, (i + 1) * D).every((p) => p >= 0 && p <= 1));
    });
    // Where it failed, it sits on the optimum: the corner x + ε·sign(v).
    for (let j = 0; j < D; j++) assert.ok(Math.abs(r.adv[j] - (lin.x[j] + eps[0] * Math.sign(lin.v[j]))) < 1e-6);
    // Early stop: the rows that succeeded stopped before the last step.
    assert.ok(r.steps[4] < 20 && r.steps[0] === 20);
  }
});

test('PGD L2 flips the label exactly when ε exceeds m / ‖w₁ − w₀‖₂ (random start costs ~1%)', async () => {
  for (const seed of [4, 5]) {
    const lin = twoClass(seed, 0.2);
    // From a random start on the sphere, 20 steps of ε/8 turn δ to within cos θ ≈ 0.987 of v
    // (the projection's pull is tan(θ/2)·e^(−2.5) for θ₀ = 90°): success needs ε ≳ 1.013·d.
    const eps = [0.95, 0.99, 1.05, 1.5].map((f) => f * lin.d2);
    const batch: PixelBatch = { data: new Float32Array(eps.length * D), n: eps.length, channels: C, height: H, width: W };
    eps.forEach((_, i) => batch.data.set(lin.x, i * D));
    const labels = eps.map(() => 0);
    for (const loss of ['ce', 'margin'] as const) {
      const r = await pgd(lin.oracle, batch, labels, { norm: 'l2', eps, loss, rngs: streams(eps.length, seed) });
      const v = await verdict((b) => lin.model.predict(b), { ...batch, data: r.adv }, labels);
      assert.deepEqual([...v.fooled], [0, 0, 1, 1], `seed ${seed} ${loss}`);
      eps.forEach((e, i) => assert.ok(l2Distance(r.adv, lin.x, i * D, 0, D) <= e, `‖δ‖₂ ≤ ε, row ${i}`));
    }
  }
});

test('the margin loss is ascended whichever sign the gradient model reports it with', async () => {
  // Three classes; the runner-up changes along the way. Reported as z_y − max (negated): the
  // base reads the sign off the logits and still climbs.
  const rng = mulberry32(9);
  const Wm = [0, 1, 2].map(() => Array.from({ length: D }, () => rng() * 2 - 1));
  const x = Float32Array.from({ length: D }, () => 0.3 + 0.4 * rng());
  for (const negatedMargin of [false, true]) {
    const lin = linear(Wm, [0, 0, 0], { negatedMargin });
    const z = lin.logitsOf(x);
    const y = z.indexOf(Math.max(...z));
    const { grad } = await gradRows(lin.oracle, x, [0], [y], one(x), 'margin', 8);
    const j = z.map((v, c) => (c === y ? -Infinity : v)).indexOf(Math.max(...z.filter((_, c) => c !== y)));
    for (let d = 0; d < D; d++) assert.ok(Math.abs(grad[d] - (Wm[j][d] - Wm[y][d])) < 1e-5);
    const r = await pgd(lin.oracle, one(x), [y], { norm: 'linf', eps: 0.3, loss: 'margin', rngs: streams(1) });
    const v = await verdict((b) => lin.model.predict(b), one(r.adv), [y]);
    assert.equal(v.fooled[0], 1, `negated ${negatedMargin}`);
  }
});

test('minimal ε by bisection over PGD converges to m / ‖w₁ − w₀‖₁ within the bracket / 2^steps', async () => {
  for (const [seed, target] of [[6, 3 / 255], [7, 0.4 / 255], [8, 6.5 / 255]] as const) {
    const base = twoClass(seed, 1);
    // Rescale the margin so the distance is `target`.
    const lin = twoClass(seed, target / base.dInf);
    assert.ok(Math.abs(lin.dInf - target) < 1e-9);
    const grid = [0, 1 / 255, 2 / 255, 4 / 255, 8 / 255];
    const hi0 = grid.find((g) => g > target)!;
    const lo0 = grid[grid.indexOf(hi0) - 1];
    const steps = 7;
    const res = await bisectMinimalEps(
      [lo0],
      [hi0],
      steps,
      async (rows, eps) => {
        const r = await pgd(lin.oracle, one(lin.x), [0], { norm: 'linf', eps: eps[0], rngs: streams(1, seed) });
        const v = await verdict((b) => lin.model.predict(b), one(r.adv), [0]);
        return rows.map(() => ({ success: v.fooled[0] === 1, witness: v.pred[0] }));
      },
    );
    const tol = (hi0 - lo0) / 2 ** steps;
    assert.ok(res.hi[0] >= target && res.hi[0] - target <= tol, `seed ${seed}: ${res.hi[0] * 255}/255 vs ${target * 255}/255 (tol ${tol * 255})`);
    assert.ok(res.lo[0] <= target && res.hi[0] - res.lo[0] <= tol + 1e-15);
    assert.equal(res.calls[0], steps);
    assert.equal(res.witness[0], 1);
  }
  // Rows without a bracket are left alone; all rows advance in one call per step.
  let calls = 0;
  const r = await bisectMinimalEps([0, 0], [NaN, 1], 3, async (rows, eps) => {
    calls++;
    assert.deepEqual(rows, [1]);
    return eps.map((e) => ({ success: e > 0.3 }));
  });
  assert.equal(calls, 3);
  assert.equal(r.hi[1], 0.375);
  assert.ok(Number.isNaN(r.hi[0]));
});

test('Square Attack flips a linear model within its budget, inside the ε-ball and [0,1], counting queries', async () => {
  const lin = twoClass(10, 1.5);
  const x = Float32Array.from(lin.x);
  // Pixels at the box edges: the attack must clip there.
  x[0] = 0;
  x[5] = 1;
  x[17] = 0.001;
  const m = lin.logitsOf(x);
  const dInf = (m[0] - m[1]) / lin.v.reduce((a, vj) => a + Math.abs(vj), 0);
  assert.ok(dInf > 0.01 && dInf < 0.2, `clean image classified 0, d = ${dInf}`);
  for (const [factor, expect] of [[1.5, 1], [0.9, 0]] as const) {
    const eps = Math.max(factor * dInf, 0);
    const before = lin.model.imagesSeen;
    const r = await squareLinf((b) => lin.model.predict(b), one(x), [0], { eps, queries: 300, rngs: streams(1, 10) });
    assert.equal(r.success[0], expect, `ε = ${factor}·d`);
    assert.ok(linfDistance(r.adv, x) <= eps, `‖δ‖∞ = ${linfDistance(r.adv, x)} > ε = ${eps}`);
    assert.ok(r.adv.every((v) => v >= 0 && v <= 1));
    // Every model evaluation of the row is a query, the stripes included.
    assert.equal(r.queries[0], lin.model.imagesSeen - before);
    if (expect) assert.ok(r.queries[0] < 300 && r.queries[0] >= 1);
    else assert.equal(r.queries[0], 300, 'a failure spends the whole budget');
    const v = await verdict((b) => lin.model.predict(b), one(r.adv), [0]);
    assert.equal(v.fooled[0], expect);
    assert.equal(v.pred[0], r.pred[0]);
  }
  // Rows of a batch are independent: the same row alone or beside others gives the same result.
  const eps = 1.5 * dInf;
  const two: PixelBatch = { data: new Float32Array(2 * D), n: 2, channels: C, height: H, width: W };
  two.data.set(lin.x, 0);
  two.data.set(x, D);
  const a = await squareLinf((b) => lin.model.predict(b), two, [0, 0], { eps, queries: 300, rngs: [mulberry32(99), mulberry32(10_000)] });
  const b = await squareLinf((bb) => lin.model.predict(bb), one(x), [0], { eps, queries: 300, rngs: [mulberry32(10_000)] });
  assert.deepEqual([...a.adv.subarray(D)], [...b.adv]);
  assert.equal(a.queries[1], b.queries[0]);
});

test('Square Attack: the paper’s schedule for p, rescaled to the budget', () => {
  assert.equal(pSelection(0.8, 0, 10000), 0.8);
  assert.equal(pSelection(0.8, 10, 10000), 0.8);
  assert.equal(pSelection(0.8, 11, 10000), 0.4);
  assert.equal(pSelection(0.8, 201, 10000), 0.1);
  assert.equal(pSelection(0.8, 9999, 10000), 0.8 / 512);
  // Budget 1000: iteration 100 is "1000" of 10000 ⇒ p_init / 16; 101 ⇒ / 32.
  assert.equal(pSelection(0.8, 100, 1000), 0.05);
  assert.equal(pSelection(0.8, 101, 1000), 0.025);
});
