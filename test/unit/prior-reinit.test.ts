/**
 * Re-initialising an ONNX graph (server/engine/prior/reinit.ts), the float copy of a quantized
 * graph (prior/dequantize.ts) and the penultimate feature tensor (model/features.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import '../../server/engine/fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../server/engine/model';
import { decodeModel, encodeModel, onnx, tensorValues } from '../../server/engine/model/onnx';
import { dequantize } from '../../server/engine/prior/dequantize';
import { classifierOutput, featureRunner, findFeatureTensor } from '../../server/engine/model/features';
import { reinitialize } from '../../server/engine/prior/reinit';
import { openDataset } from '../../server/engine/data';
import { toBatch } from '../../server/engine/image/ops';
import { buildModel, node, seeded, tensor } from './helpers/onnx-builder';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

/** Conv(+bias) → BatchNorm → Relu → GAP → Flatten → MatMul(W reshaped CNTK-style) → Add(bias) →
 *  Relu → Gemm(transB) → Mul(by a constant that is not a weight) → y. */
function net(): onnx.ModelProto {
  const bytes = buildModel({
    inputs: [{ name: 'x', shape: ['N', 3, 8, 8] }],
    outputs: [{ name: 'y', shape: ['N', 10] }],
    initializers: [
      tensor('convW', [64, 3, 3, 3], seeded(64 * 27, 1)),
      tensor('convB', [64], seeded(64, 2)),
      tensor('bnS', [64], seeded(64, 3, 0.5, 2)),
      tensor('bnB', [64], seeded(64, 4)),
      tensor('bnM', [64], seeded(64, 5)),
      tensor('bnV', [64], seeded(64, 6, 0.5, 2)),
      tensor('mmW4', [16, 2, 2, 512], seeded(64 * 512, 7)), // reshaped to [64, 512]: fan-in 64
      tensor('mmShape', [2], [64, 512], 'int64'),
      tensor('mmB', [512], seeded(512, 8)),
      tensor('fcW', [10, 512], seeded(5120, 9)), // transB: fan-in 512
      tensor('fcB', [10], seeded(10, 10)),
      tensor('scale', [1], [3]),
    ],
    nodes: [
      node('Conv', ['x', 'convW', 'convB'], ['c'], { pads: [1, 1, 1, 1] }),
      node('BatchNormalization', ['c', 'bnS', 'bnB', 'bnM', 'bnV'], ['bn']),
      node('Relu', ['bn'], ['r']),
      node('GlobalAveragePool', ['r'], ['g']),
      node('Flatten', ['g'], ['f'], { axis: 1 }),
      node('Reshape', ['mmW4', 'mmShape'], ['mmW']),
      node('MatMul', ['f', 'mmW'], ['m']),
      node('Add', ['m', 'mmB'], ['h0']),
      node('Relu', ['h0'], ['h']),
      node('Gemm', ['h', 'fcW', 'fcB'], ['z'], { transB: 1 }),
      node('Mul', ['z', 'scale'], ['y']),
    ],
  });
  return decodeModel(bytes, 'net.onnx');
}

const values = (m: onnx.ModelProto, name: string) => tensorValues(m.graph!.initializer!.find((t) => t.name === name)!);
const stats = (v: number[]) => {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean, variance: v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length };
};

test('He normal by fan-in, biases zero, BatchNorm reset to the identity, other constants kept', async () => {
  const m = net();
  const report = reinitialize(m, 5);
  assert.deepEqual([report.weights, report.biases, report.normalisations, report.kept], [3, 3, 4, 1]);
  assert.deepEqual(report.keptNames, ['scale']);
  for (const [name, fanIn] of [['convW', 27], ['mmW4', 64], ['fcW', 512]] as const) {
    const s = stats(values(m, name));
    const want = 2 / fanIn;
    const n = values(m, name).length;
    // The sample variance of n normals has a standard error of about want·√(2/n).
    assert.ok(Math.abs(s.variance - want) < 4 * want * Math.sqrt(2 / n), `${name}: variance ${s.variance} vs 2/${fanIn} = ${want}`);
    assert.ok(Math.abs(s.mean) < 4 * Math.sqrt(want / n), `${name}: mean ${s.mean}`);
  }
  for (const b of ['convB', 'mmB', 'fcB', 'bnB', 'bnM']) assert.ok(values(m, b).every((v) => v === 0), b);
  for (const b of ['bnS', 'bnV']) assert.ok(values(m, b).every((v) => v === 1), b);
  assert.deepEqual(values(m, 'scale'), [3]);
  assert.deepEqual(values(m, 'mmShape'), [64, 512], 'integer tensors untouched');

  // Deterministic for a seed, different for another; the graph still runs.
  const again = net();
  reinitialize(again, 5);
  assert.deepEqual(values(again, 'fcW'), values(m, 'fcW'));
  const other = net();
  reinitialize(other, 6);
  assert.notDeepEqual(values(other, 'fcW'), values(m, 'fcW'));
  const s = await ort.InferenceSession.create(encodeModel(m));
  const out = await s.run({ x: new ort.Tensor('float32', seeded(2 * 3 * 64, 3, 0, 1), [2, 3, 8, 8]) });
  assert.deepEqual(out.y.dims, [2, 10]);
  assert.ok(Array.from(out.y.data as Float32Array).every(Number.isFinite));
  await s.release();
});

test('a big layer: the empirical variance is 2/fan_in within 2%', () => {
  const m = decodeModel(buildModel({
    inputs: [{ name: 'x', shape: ['N', 1024] }],
    outputs: [{ name: 'y', shape: ['N', 512] }],
    initializers: [tensor('W', [1024, 512], new Float32Array(1024 * 512))],
    nodes: [node('MatMul', ['x', 'W'], ['y'])],
  }), 'big.onnx');
  reinitialize(m, 0);
  const s = stats(values(m, 'W'));
  assert.ok(Math.abs(s.variance / (2 / 1024) - 1) < 0.02, `variance ${s.variance}`);
  assert.ok(Math.abs(s.mean) < 1e-3);
});

test('the penultimate tensor: the input of the last Gemm/MatMul on the way to the output', () => {
  const m = net();
  assert.equal(classifierOutput(m, 10), 'y');
  assert.deepEqual(findFeatureTensor(m, 'y'), { name: 'h', how: "input of Gemm 'Gemm_9'" });
  // CNTK's mnist-8: the weight of its MatMul is a Reshape of a stored tensor.
  const mnist = decodeModel(buildModel({
    inputs: [{ name: 'x', shape: [1, 256] }],
    outputs: [{ name: 'y', shape: [1, 10] }],
    initializers: [tensor('W4', [16, 4, 4, 10], new Float32Array(2560)), tensor('s', [2], [256, 10], 'int64')],
    nodes: [node('Reshape', ['W4', 's'], ['W']), node('MatMul', ['x', 'W'], ['y'])],
  }), 'm.onnx');
  assert.equal(findFeatureTensor(mnist, 'y').name, 'x');
  const convOnly = decodeModel(buildModel({
    inputs: [{ name: 'x', shape: ['N', 1, 4, 4] }],
    outputs: [{ name: 'y', shape: ['N', 2, 1, 1] }],
    initializers: [tensor('W', [2, 1, 4, 4], new Float32Array(32))],
    nodes: [node('Conv', ['x', 'W'], ['y'])],
  }), 'c.onnx');
  assert.throws(() => findFeatureTensor(convOnly, 'y'), /name the penultimate feature tensor/);
});

test('MobileNetV2-int8: the float copy computes what the int8 model computes; re-initialised, it runs', { skip }, async () => {
  const file = join(FIXTURES, 'models/imagenet_mobilenetv2-12-int8.onnx');
  const model = await loadModel(file, { device: 'cpu', preprocess: 'imagenet' });
  try {
    const ds = await openDataset(join(FIXTURES, 'imagenet_samples/labels.csv'), { limit: 12 });
    const images = [];
    for await (const b of ds.stream(model.decodeSpec(0), { batchSize: 12 })) images.push(...b.map((s) => s.image!));
    const batch = toBatch(images);
    const int8 = await model.predict(batch);

    const float = decodeModel(readFileSync(file), file);
    const { ops } = dequantize(float, 'range');
    assert.equal(ops.QLinearConv, 52);
    assert.ok(!float.graph!.node!.some((n) => n.opType!.startsWith('QLinear')));
    const tensorName = findFeatureTensor(decodeModel(readFileSync(file), file), 'output').name;
    assert.equal(tensorName, '472_quantized');
    const runner = await featureRunner(model, float, 'output');
    const out = await runner.run(batch.data, batch.n);
    await runner.release();
    let agree = 0;
    for (let i = 0; i < batch.n; i++) {
      const row = (a: ArrayLike<number>) => Array.from({ length: 1000 }, (_, k) => a[i * 1000 + k]);
      const top = (r: number[]) => r.indexOf(Math.max(...r));
      if (top(row(out.data)) === top(row(int8.logits))) agree++;
    }
    console.log(`float copy of the int8 graph: same top-1 on ${agree}/12`);
    assert.ok(agree >= 10, `float copy agrees with int8 on ${agree}/12`);

    // The quantized feature tensor itself, dequantized in JS, from the original graph.
    const trained = await featureRunner(model, decodeModel(readFileSync(file), file), tensorName);
    const feats = await trained.run(batch.data, 2);
    await trained.release();
    assert.equal(feats.dims, 1280);
    assert.ok(feats.data.some((v) => v > 0) && feats.data.every((v) => v >= 0), 'post-ReLU6 features');

    const random = decodeModel(readFileSync(file), file);
    dequantize(random, 'relu');
    const rep = reinitialize(random, 0);
    assert.equal(rep.weights, 53);
    assert.equal(rep.kept, 0);
    const rr = await featureRunner(model, random, tensorName);
    const rf = await rr.run(batch.data, 2);
    await rr.release();
    assert.equal(rf.dims, 1280);
    assert.ok(rf.data.every(Number.isFinite) && rf.data.some((v) => v !== 0));
  } finally {
    await model.dispose();
  }
});

test('an unsupported quantized op is named', () => {
  const m = decodeModel(buildModel({
    inputs: [{ name: 'x', type: 'uint8', shape: ['N', 4] }],
    outputs: [{ name: 'y', type: 'int32', shape: ['N', 2] }],
    initializers: [tensor('W', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8], 'uint8')],
    nodes: [node('MatMulInteger', ['x', 'W'], ['y'])],
  }), 'q.onnx');
  assert.throws(() => dequantize(m, 'relu'), /MatMulInteger/);
});
