/**
 * The ood probe's feature path on a model its view graph cannot be put in front of.
 *
 * With feature detectors on, the composed view session returns every view's penultimate features
 * beside its class scores (views/session.ts ViewFeatures). A model the plan cannot be composed
 * with runs the views standalone, and the features then come from the feature tap run on the
 * views the standalone graph made (probes/ood.ts runAll). The two paths must give the same
 * records and the same metrics.
 *
 * Twins: one network written twice, at opset 9 or 10 with an op whose meaning changed by opset 11
 * (Dropout; QuantizeLinear/QLinearMatMul), which makes the plan standalone (session.ts
 * composedModel), and at opset 13, which composes. The same weights compute the same function,
 * so whatever differs between the twins' reports comes from the path the views took.
 *   float:     x → Flatten → Gemm(784×16) → Relu → Dropout → Gemm(16×10)      features: Dropout's output
 *   quantized: x → Flatten → Gemm(784×16) → Relu → QuantizeLinear → QLinearMatMul(16×10) → DequantizeLinear
 *              features: the uint8 QLinearMatMul input, dequantized with its scale and zero point
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { loadModel } from '../../server/engine/model';
import { unpack } from '../../server/engine/prior/project';
import { GENERATED_SETS, oodProbe, oodViews, type OodRecord } from '../../server/engine/probes/ood';
import { viewsFor } from '../../server/engine/views';
import { openTap } from '../../server/engine/ood/compose';
import type { LoadedModel } from '../../server/engine/types';
import { node, seeded, tensor, writeModel, type ModelSpec } from './helpers/onnx-builder';

const FIXTURES = path.resolve(__dirname, '../../../shared/fixtures');
const HIDDEN = 16;
const D = 28 * 28;

function twin(opset: number, quantized: boolean): ModelSpec {
  const inits = [tensor('W1', [D, HIDDEN], seeded(D * HIDDEN, 3, -0.1, 0.1)), tensor('b1', [HIDDEN], seeded(HIDDEN, 4, -0.2, 0.2))];
  const nodes = [node('Flatten', ['x'], ['flat'], { axis: 1 }), node('Gemm', ['flat', 'W1', 'b1'], ['h']), node('Relu', ['h'], ['r'])];
  if (!quantized) {
    inits.push(tensor('W2', [HIDDEN, 10], seeded(HIDDEN * 10, 5)), tensor('b2', [10], seeded(10, 6)));
    nodes.push(node('Dropout', ['r'], ['feat']), node('Gemm', ['feat', 'W2', 'b2'], ['y']));
  } else {
    // uint8 activations at scale 1/64 (Relu's outputs on MNIST stay below 4), int8 weights at 1/127
    const w = Array.from(seeded(HIDDEN * 10, 5), (v) => Math.round(v * 127));
    inits.push(
      tensor('s_a', [], [1 / 64]), tensor('z_a', [], [0], 'uint8'),
      tensor('W2q', [HIDDEN, 10], w, 'int8'), tensor('s_w', [], [1 / 127]), tensor('z_w', [], [0], 'int8'),
      tensor('s_y', [], [1 / 16]), tensor('z_y', [], [128], 'uint8'),
    );
    nodes.push(
      node('QuantizeLinear', ['r', 's_a', 'z_a'], ['feat']),
      node('QLinearMatMul', ['feat', 's_a', 'z_a', 'W2q', 's_w', 'z_w', 's_y', 'z_y'], ['yq']),
      node('DequantizeLinear', ['yq', 's_y', 'z_y'], ['y']),
    );
  }
  return { inputs: [{ name: 'x', shape: ['N', 1, 28, 28] }], outputs: [{ name: 'y', shape: ['N', 10] }], initializers: inits, nodes, opset };
}

/** The mode the ood probe's plan takes on a model, with the feature tensor the tap chose. */
async function pathOf(model: LoadedModel): Promise<{ mode: string; reason?: string; features: boolean; tensor: string }> {
  const tap = await openTap(model);
  assert.ok(tap.runner, `tap: ${tap.error}`);
  const v = oodViews([...GENERATED_SETS], 1, 28, 28, 8);
  const r = await viewsFor(model, { channels: 1, height: 28, width: 28, margin: 0, ops: [{ kind: 'crop', top: 0, left: 0 }, ...v.ops] }, { tensor: tap.tensor, quant: tap.quant });
  await tap.runner!.release();
  return { mode: r.mode, reason: r.reason, features: r.features, tensor: tap.tensor };
}

for (const quantized of [false, true]) {
  test(`ood feature detectors: the standalone view path gives the composed path's records and metrics (${quantized ? 'quantized' : 'float'} features)`, async (t) => {
    if (!existsSync(FIXTURES)) {
      t.skip(`fixtures not found at ${FIXTURES}`);
      return;
    }
    const old = await loadModel(writeModel(twin(quantized ? 10 : 9, quantized), 'old.onnx'), { preprocess: 'unit', device: 'cpu' });
    const now = await loadModel(writeModel(twin(13, quantized), 'new.onnx'), { preprocess: 'unit', device: 'cpu' });
    try {
      const a = await pathOf(old);
      const b = await pathOf(now);
      assert.equal(a.mode, 'standalone');
      assert.match(a.reason!, quantized ? /opset 10 .*QuantizeLinear/ : /opset 9 .*Dropout/);
      assert.equal(a.features, false, 'a standalone runner gives no features: the tap does');
      assert.deepEqual([b.mode, b.features], ['composed', true]);
      assert.equal(a.tensor, 'feat');
      assert.equal(b.tensor, 'feat');

      const mnist = await openDataset(path.join(FIXTURES, 'mnist'), { limit: 48, seed: 0 });
      const params = { detectors: 'all', k: 5 };
      // evaluateOnly keeps the raw records (features included); the full audit gives the metrics
      const records = async (m: LoadedModel) =>
        (await audit(m, mnist, { probes: [oodProbe(params)], seed: 0, batchSize: 16, evaluateOnly: true })).probes.ood.records as unknown as OodRecord[];
      const ra = await records(old);
      const rb = await records(now);
      assert.equal(ra.length, 48);
      assert.equal(rb.length, 48);
      let featValues = 0;
      let maxFeatDiff = 0;
      const close = (x: number, y: number, what: string) => assert.ok(Math.abs(x - y) <= 1e-5 * Math.max(1, Math.abs(y)), `${what}: ${x} vs ${y}`);
      const sameFeat = (x: OodRecord['feat'], y: OodRecord['feat'], what: string) => {
        assert.ok(x && y, `${what}: features on both paths`);
        const u = unpack(x);
        const v = unpack(y);
        assert.equal(u.length, HIDDEN);
        assert.equal(v.length, HIDDEN);
        // float16 storage: the same float32 values pack alike; allow one float16 step of the scale
        for (let i = 0; i < u.length; i++) {
          maxFeatDiff = Math.max(maxFeatDiff, Math.abs(u[i] - v[i]));
          assert.ok(Math.abs(u[i] - v[i]) <= Math.max(x.scale, y.scale) * 2 ** -10, `${what}[${i}]: ${u[i]} vs ${v[i]}`);
        }
        featValues += u.length;
      };
      let scored = 0;
      for (let i = 0; i < ra.length; i++) {
        const x = ra[i];
        const y = rb[i];
        assert.equal(x.pred, y.pred, `image ${i} pred`);
        close(x.msp, y.msp, `image ${i} msp`);
        close(x.energy!, y.energy!, `image ${i} energy`);
        assert.equal(x.fit, y.fit);
        sameFeat(x.feat, y.feat, `image ${i} features`);
        for (const set of GENERATED_SETS) {
          close(x.ood[set]!.msp, y.ood[set]!.msp, `image ${i} ${set} msp`);
          close(x.ood[set]!.energy!, y.ood[set]!.energy!, `image ${i} ${set} energy`);
        }
        assert.equal(!!x.oodFeat, !x.fit, 'variants carry features in the score half only');
        if (!x.fit) {
          scored++;
          for (const set of GENERATED_SETS) sameFeat(x.oodFeat![set], y.oodFeat![set], `image ${i} ${set} features`);
        }
      }
      assert.ok(scored > 10 && scored < 38, `score half ${scored}`);
      // the features are not all zero (a Relu that never fires would make the comparison empty)
      assert.ok(ra.some((r) => unpack(r.feat!).some((v) => v > 0)));

      const full = async (m: LoadedModel) => (await audit(m, mnist, { probes: [oodProbe(params)], seed: 0, batchSize: 16 })).probes.ood;
      const ma = (await full(old)).metrics as Record<string, any>;
      const mb = (await full(now)).metrics as Record<string, any>;
      assert.deepEqual(ma.detectors.scores, ['mahalanobis', 'knn', 'vim', 'react']);
      assert.deepEqual(mb.detectors.scores, ma.detectors.scores);
      assert.equal(ma.detectors.tensor, 'feat');
      assert.equal(ma.detectors.fit, mb.detectors.fit);
      let maxMetricDiff = 0;
      for (const set of GENERATED_SETS) {
        for (const what of ['auroc', 'fprAtTpr', 'mean'] as const) {
          for (const score of ['msp', 'energy', ...ma.detectors.scores]) {
            const x = ma.sets[set][what][score];
            const y = mb.sets[set][what][score];
            assert.equal(typeof x, typeof y, `${set} ${what} ${score}`);
            if (typeof x !== 'number') continue;
            maxMetricDiff = Math.max(maxMetricDiff, Math.abs(x - y));
            // a score one float16 step away can swap places with another: a rank metric moves by
            // at most a pair or two of 24 × 24 (AUROC) or one of 24 (FPR)
            const tol = what === 'mean' ? 1e-3 * Math.max(1, Math.abs(y)) : what === 'auroc' ? 2.5 / (24 * 24) : 1 / 24;
            assert.ok(Math.abs(x - y) <= tol, `${set} ${what} ${score}: standalone ${x}, composed ${y}`);
          }
        }
      }
      t.diagnostic(`${featValues} feature values compared, largest difference ${maxFeatDiff}; largest metric difference ${maxMetricDiff}`);
    } finally {
      await old.dispose();
      await now.dispose();
    }
  });
}
