/**
 * The int8 MobileNetV2 (QuantizeLinear, QLinearConv ×52, QLinearAdd, QLinearGlobalAveragePool,
 * QLinearMatMul, DequantizeLinear) is differentiated through its float shadow: gradcheck of the
 * shadow's own loss passes on real ImageNet images, the coverage says a straight-through rule was
 * used, and the shadow's logits agree in top-1 with the int8 model's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel } from '../../server/engine/model';
import { openDataset } from '../../server/engine/data';
import { buildGradientModel } from '../../server/engine/model/gradient';
import { formatGradcheck, gradcheck } from '../../server/engine/gradcheck';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `fixtures absent: ${FIXTURES}`;

const argmax = (z: Float32Array, i: number, K: number) => {
  let best = 0;
  for (let k = 1; k < K; k++) if (z[i * K + k] > z[i * K + best]) best = k;
  return best;
};

test('MobileNetV2 int8: float shadow gradcheck on real images, straight-through noted, top-1 agrees with the int8 model', { skip }, async () => {
  const model = await loadModel(join(FIXTURES, 'models', 'imagenet_mobilenetv2-12-int8.onnx'), {
    device: 'cpu',
    preprocess: 'imagenet',
    labels: join(FIXTURES, 'labels', 'imagenet_1k_wnids_names.txt'),
  });
  try {
    const ds = await openDataset(join(FIXTURES, 'imagenet_samples', 'labels.csv'), { labels: model.labels, limit: 8, seed: 3 });
    const D = 3 * 224 * 224;
    const imgs: Float32Array[] = [];
    const labels: number[] = [];
    for await (const batch of ds.stream(model.decodeSpec(0), { batchSize: 8 })) {
      for (const s of batch) {
        if (!s.image) continue;
        imgs.push(s.image.data);
        labels.push(s.record.label!);
      }
    }
    assert.equal(imgs.length, 8);
    const data = new Float32Array(imgs.length * D);
    imgs.forEach((a, i) => data.set(a, i * D));
    const batch = { data, n: imgs.length, channels: 3 as const, height: 224, width: 224 };

    const gm = await buildGradientModel(model, { device: 'cpu' });
    try {
      const cov = gm.coverage;
      assert.equal(cov.shadow, true);
      assert.ok(cov.notes.some((n) => /straight-through/.test(n) && /float shadow/.test(n)), cov.notes.join('\n'));
      const ops = Object.fromEntries(cov.ops.map((e) => [e.op, e.count]));
      assert.equal(ops.QLinearConv, 52);
      assert.equal(ops.QLinearAdd, 11);
      assert.equal(ops.QuantizeLinear, 1);
      assert.equal(ops.QLinearMatMul, 1);
      assert.equal(ops.QLinearGlobalAveragePool, 1);
      assert.match(cov.ops.find((e) => e.op === 'QLinearConv')!.rule, /float shadow/);
      // Shape → Gather → Unsqueeze → Concat → Reshape: a shape subgraph, not differentiated
      assert.equal(cov.constantOps.Shape, 1);
      assert.equal(cov.constantOps.Gather, 1);

      // the shadow's logits against the int8 model's, top-1
      const p = await model.predict(batch);
      const z = await gm.logits(batch);
      let agree = 0;
      for (let i = 0; i < batch.n; i++) if (argmax(p.logits, i, 1000) === argmax(z, i, 1000)) agree++;
      assert.ok(agree >= 7, `top-1 of the shadow agrees with the int8 model on ${agree} of 8 images`);

      // gradcheck of the shadow's own loss, at two real images
      for (const loss of ['ce', 'margin'] as const) {
        const r = await gradcheck(model, { gradient: gm, images: batch, labels, samples: 2, directions: 4, support: 64, loss, seed: 1, steps: 10 });
        assert.ok(r.pass, `${loss}:\n${formatGradcheck(r)}`);
        assert.ok(r.checked - r.belowNoise >= 3, `${loss}: too few samples compared\n${formatGradcheck(r)}`);
      }
    } finally {
      await gm.dispose();
    }
  } finally {
    await model.dispose();
  }
});
