/**
 * APGD (server/engine/attacks/apgd.ts) and the targeted DLR loss (attacks/dlr.ts and the gradient
 * graph's loss head), against hand-made cases:
 *   - the checkpoints and the step-size rule on plain loss sequences, where each condition can be
 *     told apart, and APGD maximising a concave quadratic (−‖x − c‖², no model at all);
 *   - the DLR loss: its gradient against central finite differences; the in-graph head against the
 *     JS formula on a linear ONNX model (exact gradient Wᵀ·∂L/∂z) and, on the fixture ResNet-2B,
 *     against finite differences of the model itself (gradcheck);
 *   - targeted versus untargeted on a linear model with four classes whose distances are known;
 *   - determinism for a seed, and one gradient call per iteration.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { apgd, apgdCheckpoints, apgdTargeted, StepSizeSchedule } from '../../server/engine/attacks/apgd';
import { linfDistance, type GradientOracle, type LossKind } from '../../server/engine/attacks/base';
import { dlrTargeted, dlrTargetedGrad, targetClasses } from '../../server/engine/attacks/dlr';
import { formatGradcheck, gradcheck } from '../../server/engine/gradcheck';
import { loadModel } from '../../server/engine/model';
import { buildGradientModel } from '../../server/engine/model/gradient';
import { mulberry32 } from '../../server/engine/random';
import type { PixelBatch } from '../../server/engine/types';
import { tinyClassifier, writeModel } from './helpers/onnx-builder';
import { logitLoss } from './helpers/logit-loss';

const streams = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => mulberry32(seed * 1000 + i));

test('checkpoints: windows of 22%, then 3% shorter each, down to 6% of the iterations', () => {
  assert.deepEqual(apgdCheckpoints(100), [22, 41, 57, 70, 80, 87, 93, 99]);
  assert.deepEqual(apgdCheckpoints(10), [2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(apgdCheckpoints(1), [1]);
});

/** Feeds `losses` to a fresh schedule; returns the iterations (1-based counts) where it halved. */
function halvings(losses: number[], start = 0, nIter = 100): { at: number[]; step: number } {
  const s = new StepSizeSchedule(nIter, 1, start);
  const at: number[] = [];
  losses.forEach((l, i) => {
    if (s.record(l).halved) at.push(i + 1);
  });
  return { at, step: s.step };
}

test('step-size rule: a steadily rising loss never halves; a flat one halves at every checkpoint (condition 1)', () => {
  const rising = halvings(Array.from({ length: 100 }, (_, i) => i + 1));
  assert.deepEqual(rising.at, []);
  assert.equal(rising.step, 1);
  const flat = halvings(new Array(100).fill(0));
  assert.deepEqual(flat.at, apgdCheckpoints(100));
  assert.equal(flat.step, 2 ** -8);
});

test('step-size rule: condition 1 counts the steps that raised the loss against ρ = 0.75 of the window', () => {
  // First window: 22 steps. 16 rises (≤ 0.75·22 = 16.5) halve; 17 do not (the best improves, and
  // condition 2 cannot fire at the first checkpoint).
  const window = (rises: number) => Array.from({ length: 22 }, (_, i) => (i < rises ? i + 1 : rises - 0.5));
  assert.deepEqual(halvings(window(16)).at, [22]);
  assert.deepEqual(halvings(window(17)).at, []);
  // The first step is compared with the start point's loss: from a start at 10, a first loss of
  // 1 is a fall, so 17 rises then lack one.
  assert.deepEqual(halvings(window(17).map((l, i) => (i === 0 ? 0.5 : l)), 0.9).at, [22]);
});

test('step-size rule: condition 2 halves when the step was kept at the last checkpoint and the best loss did not improve', () => {
  // Window 1 (22 steps): rising to 22, no halving. Window 2 (19 steps): a fall to −100, then 18
  // rises that stay below 22: condition 1 holds (18 > 0.75·19), condition 2 fires.
  const w1 = Array.from({ length: 22 }, (_, i) => i + 1);
  const w2 = [-100, ...Array.from({ length: 18 }, (_, i) => -99 + i)];
  assert.deepEqual(halvings([...w1, ...w2]).at, [41]);
  // The same second window after a halving at the first checkpoint: condition 2 does not fire.
  const flat1 = new Array(22).fill(0);
  assert.deepEqual(halvings([...flat1, ...w2]).at, [22]);
  // ... and it stops firing once the best improves.
  const w2up = [...w2.slice(0, 18), 30];
  assert.deepEqual(halvings([...w1, ...w2up]).at, []);
});

/** An oracle whose "loss" is −‖x − c‖² (never misclassified: logits favour the label). */
function quadratic(c: Float64Array, D: number): GradientOracle & { calls: number } {
  const o = {
    calls: 0,
    async lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>) {
      o.calls++;
      const loss = new Float32Array(batch.n);
      const grad = new Float32Array(batch.n * D);
      const logits = new Float32Array(batch.n * 2);
      for (let i = 0; i < batch.n; i++) {
        let s = 0;
        for (let j = 0; j < D; j++) {
          const d = batch.data[i * D + j] - c[j];
          s += d * d;
          grad[i * D + j] = -2 * d;
        }
        loss[i] = -s;
        logits[i * 2 + labels[i]] = 1;
      }
      return { logits, loss, grad };
    },
  };
  return o;
}

test('APGD on a concave quadratic: halvings only at checkpoints, back to the best point, and convergence to the maximum', async () => {
  const D = 8;
  const x = Float32Array.from({ length: D }, (_, j) => 0.3 + 0.05 * j);
  const eps = 0.1;
  // the maximum c inside the ε-ball, away from its corners
  const c = Float64Array.from(x, (v, j) => v + eps * (j % 2 ? 0.37 : -0.61));
  for (const norm of ['linf', 'l2'] as const) {
    const oracle = quadratic(c, D);
    const trace: Array<{ iteration: number; loss: number; step: number; halved: boolean }> = [];
    const steps = 100;
    const res = await apgd(oracle, { data: x, n: 1, channels: 1, height: 1, width: D }, [0], {
      norm, eps: norm === 'linf' ? eps : eps * Math.sqrt(D), steps, rngs: streams(1), onIteration: (e) => trace.push(e),
    });
    const checks = new Set(apgdCheckpoints(steps));
    const halvedAt = trace.filter((e) => e.halved).map((e) => e.iteration + 1);
    assert.ok(halvedAt.length >= 3, `${norm}: the sign steps oscillate around c, so the step is halved (${halvedAt})`);
    for (const h of halvedAt) assert.ok(checks.has(h), `${norm}: halved at iteration ${h}, not a checkpoint`);
    // The step size halves exactly at those iterations and nowhere else.
    const eta0 = 2 * (norm === 'linf' ? eps : eps * Math.sqrt(D));
    let expect = eta0;
    for (const e of trace) {
      if (e.halved) expect /= 2;
      assert.equal(e.step, expect);
    }
    // The result is the best point: within a few final steps of c, far closer than the first step.
    let dist = 0;
    for (let j = 0; j < D; j++) dist = Math.max(dist, Math.abs(res.adv[j] - c[j]));
    assert.ok(dist < (eta0 / 2 ** halvedAt.length) * 2 + 1e-6, `${norm}: ‖adv − c‖∞ = ${dist}`);
    assert.ok(-trace.reduce((m, e) => Math.max(m, e.loss), -Infinity) < 1e-3, `${norm}: best loss`);
    // One gradient call per iteration, plus the start point.
    assert.equal(oracle.calls, steps + 1);
    assert.equal(res.gradCalls[0], steps + 1);
    assert.ok(linfDistance(res.adv, x) <= (norm === 'linf' ? eps : eps * Math.sqrt(D)));
  }
});

test('DLR: the gradient equals central finite differences; invariant to shift and scale of the logits', () => {
  const rng = mulberry32(5);
  for (const K of [10, 5, 4, 3, 2]) {
    for (let trial = 0; trial < 20; trial++) {
      const z = Float64Array.from({ length: K }, () => 4 * rng() - 2);
      const y = Math.floor(rng() * K);
      const t = (y + 1 + Math.floor(rng() * (K - 1))) % K;
      const g = dlrTargetedGrad(z, 0, K, y, t);
      const h = 1e-6;
      for (let k = 0; k < K; k++) {
        const zp = Float64Array.from(z);
        const zm = Float64Array.from(z);
        zp[k] += h;
        zm[k] -= h;
        const fd = (dlrTargeted(zp, 0, K, y, t) - dlrTargeted(zm, 0, K, y, t)) / (2 * h);
        assert.ok(Math.abs(fd - g[k]) <= 1e-5 * Math.max(1, Math.abs(fd)), `K=${K} class ${k}: fd ${fd} vs ${g[k]}`);
      }
      const shifted = Float64Array.from(z, (v) => 3 * v + 7);
      assert.ok(Math.abs(dlrTargeted(shifted, 0, K, y, t) - dlrTargeted(z, 0, K, y, t)) < 1e-9);
    }
  }
  // By hand: z = [4, 3, 2, 1, 0], y = 0, t = 1: −(4 − 3)/(4 − ½(2 + 1)) = −0.4.
  assert.ok(Math.abs(dlrTargeted([4, 3, 2, 1, 0], 0, 5, 0, 1) + 0.4) < 1e-12);
  // Targets: the largest logits after the label's.
  assert.deepEqual(targetClasses([0.1, 5, 0.3, 2, 0.2], 0, 5, 1, 3), [3, 2, 4]);
  assert.deepEqual(targetClasses([0.1, 5, 0.3], 0, 3, 1, 9), [2, 0]);
});

test('DLR head in the gradient graph: loss and gradient equal the JS formula (Wᵀ·∂L/∂z on a linear model), K = 6 and K = 3', async () => {
  for (const K of [6, 3]) {
    const { spec, W, b, D } = tinyClassifier({ classes: K, head: 'softmax', seed: 11 });
    const { loadModel: load } = await import('../../server/engine/model');
    const m = await load(writeModel(spec, `dlr${K}.onnx`), { device: 'cpu', preprocess: 'unit' });
    const gm = await buildGradientModel(m, { device: 'cpu' });
    try {
      const n = 5;
      const rng = mulberry32(K);
      const data = Float32Array.from({ length: n * D }, () => rng());
      const labels = [0, 1, 2, 1, 0].map((v) => v % K);
      const targets = labels.map((y, i) => (y + 1 + (i % (K - 1))) % K);
      const r = await gm.lossAndGrad({ data, n, channels: 1, height: 4, width: 4 }, labels, 'dlr-targeted', targets);
      for (let i = 0; i < n; i++) {
        const z = Array.from({ length: K }, (_, k) => b[k] + Array.from({ length: D }, (_, d) => data[i * D + d] * W[d * K + k]).reduce((a, v) => a + v, 0));
        assert.ok(Math.abs(r.loss[i] - dlrTargeted(z, 0, K, labels[i], targets[i])) < 1e-5, `loss ${r.loss[i]}`);
        const gz = dlrTargetedGrad(z, 0, K, labels[i], targets[i]);
        for (let d = 0; d < D; d++) {
          const want = gz.reduce((a, g, k) => a + g * W[d * K + k], 0);
          assert.ok(Math.abs(r.grad[i * D + d] - want) < 1e-4 * Math.max(1, Math.abs(want)), `K=${K} grad ${r.grad[i * D + d]} vs ${want}`);
        }
      }
      await assert.rejects(gm.lossAndGrad({ data, n, channels: 1, height: 4, width: 4 }, labels, 'dlr-targeted'), /target class/);
    } finally {
      await gm.dispose();
      await m.dispose();
    }
  }
});

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `fixtures absent: ${FIXTURES}`;

test('DLR head on the fixture ResNet-2B: the input gradient passes gradcheck (finite differences of the model)', { skip }, async () => {
  const m = await loadModel(join(FIXTURES, 'models', 'cifar10_resnet2b_advtrained.onnx'), {
    device: 'cpu', preprocess: { scale: 1, mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] },
  });
  try {
    const r = await gradcheck(m, { loss: 'dlr-targeted', samples: 2, directions: 4, seed: 1 });
    assert.ok(r.pass, formatGradcheck(r));
    assert.ok(r.checked - r.belowNoise >= 4, formatGradcheck(r));
    assert.ok(r.lossMismatch < 1e-4);
  } finally {
    await m.dispose();
  }
});

/**
 * Four classes, z_k = w_k·x + b_k with orthogonal directions: from x (label 0), class k needs an
 * L∞ step of s_k = m_k / ‖w_k − w_0‖₁. Class 1 is nearest, then 2, then 3.
 */
function fourClass() {
  const D = 12;
  const dir = (k: number) => Array.from({ length: D }, (_, j) => (Math.floor(j / 4) === k - 1 ? (j % 2 ? 1 : -1) : 0));
  const Wm = [new Array(D).fill(0), dir(1), dir(2), dir(3)];
  const x = new Float32Array(D).fill(0.5);
  // margins z_0 − z_k at x: 4·s_k with s = 0.02, 0.05, 0.08 (‖w_k‖₁ = 4)
  const bias = [0, -0.08, -0.2, -0.32];
  const logitsOf = (p: ArrayLike<number>, off: number) => Wm.map((w, k) => w.reduce((a, wj, j) => a + wj * (p[off + j] - 0.5), bias[k]));
  let calls = 0;
  const oracle: GradientOracle = {
    async lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: LossKind, targets?: ArrayLike<number>) {
      calls++;
      const logits = new Float32Array(batch.n * 4);
      const lossOut = new Float32Array(batch.n);
      const grad = new Float32Array(batch.n * D);
      for (let i = 0; i < batch.n; i++) {
        const z = logitsOf(batch.data, i * D);
        logits.set(z, i * 4);
        const { loss: l, grad: gz } = logitLoss(z, labels[i], loss, targets?.[i]);
        lossOut[i] = l;
        for (let j = 0; j < D; j++) grad[i * D + j] = Wm.reduce((a, w, k) => a + gz[k] * w[j], 0);
      }
      return { logits, loss: lossOut, grad };
    },
  };
  return { D, x, oracle, logitsOf, calls: () => calls };
}

test('targeted versus untargeted on a linear model: APGD-T reaches the class it aims at, APGD-CE the nearest', async () => {
  const f = fourClass();
  const batch = { data: f.x, n: 1, channels: 1 as const, height: 1, width: f.D };
  const argmax = (z: number[]) => z.indexOf(Math.max(...z));
  // ε = 0.1 reaches every class: the untargeted attack takes the nearest (1).
  const ce = await apgd(f.oracle, batch, [0], { norm: 'linf', eps: 0.1, steps: 20, rngs: streams(1) });
  assert.equal(ce.stopped[0], 1);
  assert.equal(argmax(f.logitsOf(ce.adv, 0)), 1);
  for (const t of [1, 2, 3]) {
    const r = await apgd(f.oracle, batch, [0], { norm: 'linf', eps: 0.1, steps: 20, rngs: streams(1), loss: 'dlr-targeted', targets: [t] });
    assert.equal(r.stopped[0], 1, `target ${t}`);
    assert.equal(argmax(f.logitsOf(r.adv, 0)), t, `aimed at ${t}`);
  }
  // ε = 0.03 only reaches class 1; APGD-T's first target is the 2nd largest clean logit (1).
  const t1 = await apgdTargeted(f.oracle, batch, [0], { norm: 'linf', eps: 0.03, steps: 20, rngs: streams(1), targetCount: 3 });
  assert.equal(t1.stopped[0], 1);
  assert.equal(argmax(f.logitsOf(t1.adv, 0)), 1);
  // ε = 0.015 reaches none: every target runs (3 × 21 calls) and the row stays unfooled.
  const calls0 = f.calls();
  const none = await apgdTargeted(f.oracle, batch, [0], { norm: 'linf', eps: 0.015, steps: 20, rngs: streams(1), targetCount: 3, cleanLogits: Float32Array.from(f.logitsOf(f.x, 0)) });
  assert.equal(none.stopped[0], 0);
  assert.equal(f.calls() - calls0, 3 * 21);
  assert.equal(none.gradCalls[0], 3 * 21);
  assert.ok(linfDistance(none.adv, f.x) <= 0.015);
});

test('determinism: the same random streams give the same path and candidates; other streams other ones; a row is independent of the batch', async () => {
  const D = 8;
  const n = 3;
  const x0 = Float32Array.from({ length: D }, (_, j) => 0.3 + 0.05 * j);
  const c = Float64Array.from(x0, (v, j) => v + 0.1 * (j % 2 ? 0.37 : -0.61));
  const oracle = quadratic(c, D);
  const data = new Float32Array(n * D);
  for (let i = 0; i < n; i++) data.set(x0, i * D);
  const batch = { data, n, channels: 1 as const, height: 1, width: D };
  const eps = (norm: 'linf' | 'l2') => (norm === 'linf' ? 0.1 : 0.3);
  const run = async (seed: number, norm: 'linf' | 'l2') => {
    const trace: number[] = [];
    const r = await apgd(oracle, batch, [0, 0, 0], { norm, eps: eps(norm), steps: 10, rngs: streams(n, seed), onIteration: (e) => trace.push(e.loss) });
    return { ...r, trace };
  };
  for (const norm of ['linf', 'l2'] as const) {
    const a = await run(7, norm);
    const b = await run(7, norm);
    assert.deepEqual(a.adv, b.adv);
    assert.deepEqual(a.trace, b.trace);
    const other = await run(8, norm);
    assert.notDeepEqual(a.trace, other.trace);
    assert.notDeepEqual(a.adv, other.adv);
    // Row 1 of the batch equals a batch of its stream alone.
    const alone = await apgd(oracle, { ...batch, data: x0, n: 1 }, [0], { norm, eps: eps(norm), steps: 10, rngs: [mulberry32(7 * 1000 + 1)] });
    assert.deepEqual(a.adv.subarray(D, 2 * D), alone.adv);
  }
});
