/**
 * Feature taps (model/features.ts) and the classifier head (model/head.ts) on the fixture models
 * and the demo model: which tensor is chosen, and that the head read from the graph recomputes the
 * model's own logits from the tapped features (W·f + b against predict(), same images), which is
 * what ReAct and ViM rely on. A hand-made 1×1-convolution classifier covers the Conv head.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { describeModel, loadModel } from '../../server/engine/model';
import { classifierOutput, featureRunner, findFeatureTensor } from '../../server/engine/model/features';
import { linearHead } from '../../server/engine/model/head';
import { decodeModel } from '../../server/engine/model/onnx';
import { headLogits } from '../../server/engine/ood/detector';
import { derivedRng } from '../../server/engine/random';
import { buildModel, node, seeded, tensor } from './helpers/onnx-builder';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

test('a 1×1 Conv classifier: its input is the tap, and W·f + b equals what onnxruntime computes', async () => {
  const bytes = buildModel({
    inputs: [{ name: 'x', shape: ['N', 3, 4, 4] }],
    outputs: [{ name: 'y', shape: ['N', 5] }, { name: 'g', shape: ['N', 3, 1, 1] }],
    initializers: [tensor('W', [5, 3, 1, 1], seeded(15, 1)), tensor('B', [5], seeded(5, 2))],
    nodes: [node('GlobalAveragePool', ['x'], ['g']), node('Conv', ['g', 'W', 'B'], ['c']), node('Flatten', ['c'], ['y'])],
  });
  const m = decodeModel(bytes, 'conv.onnx');
  assert.deepEqual(findFeatureTensor(m, 'y'), { name: 'g', how: "input of 1×1 Conv 'Conv_1'" });
  const head = linearHead(m, 'g');
  assert.equal(head.K, 5);
  assert.equal(head.d, 3);
  const s = await ort.InferenceSession.create(bytes);
  const x = Float32Array.from(seeded(2 * 48, 3));
  const out = await s.run({ x: new ort.Tensor('float32', x, [2, 3, 4, 4]) }, ['g', 'y']);
  for (let i = 0; i < 2; i++) {
    const z = headLogits(head, out.g.data as Float32Array, i * 3);
    for (let k = 0; k < 5; k++) assert.ok(Math.abs(z[k] - (out.y.data as Float32Array)[i * 5 + k]) < 1e-5);
  }
  await s.release();
});

const CASES = [
  { file: 'models/mnist-8_onnxzoo_cntk.onnx', preprocess: 'unit', tensor: 'Pooling160_Output_0_reshape0', how: /MatMul 'Times212'/, K: 10, d: 256, tol: 1e-4 },
  { file: 'models/cifar10_resnet2b_advtrained.onnx', preprocess: undefined, tensor: '32', how: /Gemm/, K: 10, d: 100, tol: 1e-4 },
  // int8: the head is the dequantized QLinearMatMul + QLinearAdd; the model's own logits are
  // requantized (one output step ≈ 0.1-0.2), so they agree to a few steps only.
  { file: 'models/imagenet_mobilenetv2-12-int8.onnx', preprocess: 'imagenet', tensor: '472_quantized', how: /^MatMul '.*' of the dequantized graph$/, K: 1000, d: 1280, tol: 1.0 },
  { file: '../../wt/i17/models/demo/shapes-cnn.onnx', preprocess: undefined, tensor: undefined, how: /Gemm|MatMul|Conv/, K: undefined, d: undefined, tol: 1e-4 },
];

for (const c of CASES) {
  const file = c.file.startsWith('../') ? resolve(__dirname, '../../models/demo/shapes-cnn.onnx') : join(FIXTURES, c.file);
  test(`feature tap and head on ${c.file.split('/').pop()}: the tensor, and W·f + b recomputes the model's logits`, { skip: c.file.startsWith('../') ? false : skip }, async () => {
    const model = await loadModel(file, { device: 'cpu', ...(c.preprocess ? { preprocess: c.preprocess } : {}) });
    try {
      const proto = decodeModel(readFileSync(file), file);
      const out = classifierOutput(proto, model.info.numClasses);
      const f = findFeatureTensor(proto, out);
      if (c.tensor) assert.equal(f.name, c.tensor);
      assert.match(f.how, /^input of /);
      const head = linearHead(proto, f.name);
      assert.match(head.how, c.how);
      // `skeptic inspect` names the tensor and the head.
      const line = describeModel(model).split('\n').find((l) => l.startsWith('Features'));
      assert.ok(line?.includes(`'${f.name}'`) && line.includes(`head ${head.K}×${head.d} from ${head.how}`), line);
      assert.equal(head.K, model.info.numClasses);
      if (c.d) assert.equal(head.d, c.d);
      const runner = await featureRunner(model, decodeModel(readFileSync(file), file), f.name, 32, { name: out, count: head.K });
      const n = 4;
      const { channels: C, height: H, width: W } = model.info;
      const rng = derivedRng(0, 'features-test');
      const px = Float32Array.from({ length: n * C * H * W }, () => rng());
      const r = await runner.run(px, n);
      const pred = await model.predict({ n, channels: C, height: H, width: W, data: px });
      assert.equal(r.dims, head.d);
      let worst = 0;
      let agree = 0;
      for (let i = 0; i < n; i++) {
        const z = headLogits(head, r.data, i * head.d);
        let am = 0;
        let bm = 0;
        for (let k = 0; k < head.K; k++) {
          worst = Math.max(worst, Math.abs(z[k] - pred.logits[i * head.K + k]));
          if (z[k] > z[am]) am = k;
          if (pred.logits[i * head.K + k] > pred.logits[i * head.K + bm]) bm = k;
          // The tap's own run gives the same logits as predict() (one run, both outputs).
          assert.ok(Math.abs(r.output![i * head.K + k] - pred.logits[i * head.K + k]) <= 1e-5 * Math.max(1, Math.abs(pred.logits[i * head.K + k])));
        }
        if (am === bm) agree++;
      }
      assert.ok(worst <= c.tol, `max |W·f + b − logits| = ${worst}`);
      assert.ok(agree >= n - 1, `top-1 agrees on ${agree}/${n}`);
      await runner.release();
    } finally {
      await model.dispose();
    }
  });
}
