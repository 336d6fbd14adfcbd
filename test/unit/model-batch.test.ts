/**
 * Batch and input-layout handling on hand-built models: fixed batch 16 (padding), an output
 * without batch axis, Reshape constants rewritten by the batch patch (initializer, Constant node,
 * IR 3), a patch that does not verify, flattened inputs, unbatched CHW, unsupported shapes,
 * float16 / uint8 inputs, run splitting, concurrency, misuse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeModel, loadModel } from '../../server/engine/model';
import { SkepticInputError } from '../../server/engine/errors';
import { attr, linear, node, seeded, tensor, tinyClassifier, writeModel, type ModelSpec } from './helpers/onnx-builder';

const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what = 'value') => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

const gray = (n: number, seed = 5) => ({ data: seeded(n * 16, seed, 0, 1), n, channels: 1 as const, height: 4, width: 4 });

test('fixed batch 16: runs are padded with zeros, padding rows dropped', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ inputShape: [16, 1, 4, 4], classes: 3 });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual(m.info.batch, { declared: 16, effective: 16, patched: false });
  for (const n of [5, 20]) {
    const x = gray(n, n);
    const p = await m.predict(x);
    assert.equal(p.n, n);
    near(p.logits, linear(x.data, n, W, b, D, K), 1e-5, `n=${n}`);
  }
  assert.match(describeModel(m), /Batch +declared 16; fixed 16, runs padded with zeros/);
  await m.dispose();
});

test('fixed batch 16 with in-graph preprocessing (mnist preset)', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ inputShape: [16, 1, 4, 4], classes: 3 });
  const m = await loadModel(writeModel(spec), { device: 'cpu', preprocess: 'mnist' });
  const x = gray(19);
  const t = Array.from(x.data, (v) => (v - 0.1307) / 0.3081);
  near((await m.predict(x)).logits, linear(t, 19, W, b, D, K), 1e-4);
  await m.dispose();
});

test('uint8 input at opset 10 (no Round op): converted in JS', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ inputType: 'uint8', opset: 10 });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  const x = gray(3);
  const q = Array.from(x.data, (v) => Math.round(v * 255));
  near((await m.predict(x)).logits, linear(q, 3, W, b, D, K), 1e-3);
  await m.dispose();
});

test('fixed batch 1 with an output without batch axis ([K]): one image per run', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ inputShape: [1, 1, 4, 4], classes: 3 });
  spec.nodes[spec.nodes.length - 1].outputs = ['z'];
  spec.initializers!.push(tensor('kshape', [1], [3], 'int64'));
  spec.nodes.push(node('Reshape', ['z', 'kshape'], ['y']));
  spec.outputs = [{ name: 'y', shape: [3] }];
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.numClasses, 3);
  assert.deepEqual(m.info.batch, { declared: 1, effective: 1, patched: false });
  assert.ok(m.warnings.some((w) => /no batch axis/.test(w)), m.warnings.join('\n'));
  const x = gray(3);
  near((await m.predict(x)).logits, linear(x.data, 3, W, b, D, K), 1e-5);
  await m.dispose();
});

/** x [1,1,4,4] → Reshape(shape) → Gemm: the batch is baked into the Reshape's shape. */
function reshapeModel(shape: number[], how: 'initializer' | 'constant', irVersion = 8): { spec: ModelSpec; W: Float32Array; b: Float32Array } {
  const W = seeded(16 * 3, 11);
  const b = seeded(3, 12);
  const nodes = [node('Reshape', ['x', 'shape'], ['f']), node('Gemm', ['f', 'W', 'bias'], ['y'])];
  const initializers = [tensor('W', [16, 3], W), tensor('bias', [3], b)];
  if (how === 'initializer') initializers.push(tensor('shape', [shape.length], shape, 'int64'));
  else nodes.unshift(node('Constant', [], ['shape'], { value: attr.t(tensor('c', [shape.length], shape, 'int64')) }));
  return {
    spec: {
      inputs: [{ name: 'x', shape: [1, 1, 4, 4] }],
      outputs: [{ name: 'y', shape: [1, 3] }],
      valueInfo: [{ name: 'f', shape: [1, 16] }],
      nodes,
      initializers,
      irVersion,
      opset: irVersion < 4 ? 8 : 13,
    },
    W,
    b,
  };
}

for (const [shape, how, ir, change] of [
  [[1, 16], 'initializer', 8, '[1,16] → [-1,16]'],
  [[1, -1], 'initializer', 8, '[1,-1] → [0,-1]'],
  [[1, 16], 'constant', 8, '[1,16] → [-1,16]'],
  [[1, 16], 'initializer', 3, '[1,16] → [-1,16]'],
] as const) {
  test(`batch patch rewrites a Reshape ${how} ${JSON.stringify(shape)} (IR ${ir}) and verifies`, async () => {
    const { spec, W, b } = reshapeModel([...shape], how, ir);
    const m = await loadModel(writeModel(spec), { device: 'cpu', batchSize: 4 });
    assert.deepEqual(m.info.batch, { declared: 1, effective: 'dynamic', patched: true });
    assert.ok(m.warnings.some((w) => w.includes(change)), m.warnings.join('\n'));
    const x = gray(9);
    near((await m.predict(x)).logits, linear(x.data, 9, W, b, 16, 3), 1e-5);
    await m.dispose();
  });
}

test('declared dynamic but batch 1 baked into a Reshape: falls back to single runs, then patches', async () => {
  const { spec, W, b } = reshapeModel([1, 16], 'initializer');
  spec.inputs[0].shape = ['N', 1, 4, 4];
  spec.outputs[0].shape = ['N', 3];
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual(m.info.batch, { declared: 'N', effective: 'dynamic', patched: true });
  assert.ok(m.warnings.some((w) => /declares a batch of N but fails on a batch of 3 .*\[1,16\] → \[-1,16\]/.test(w)), m.warnings.join('\n'));
  const x = gray(6);
  near((await m.predict(x)).logits, linear(x.data, 6, W, b, 16, 3), 1e-5);
  await m.dispose();
});

test('declared dynamic, output [1,K] whatever the batch: single runs', async () => {
  // Slice(axis 0, 0..1) keeps only the first image, so a batch of 3 answers [1,K]
  const { spec, W, b, D, K } = tinyClassifier();
  spec.initializers!.push(tensor('st', [1], [0], 'int64'), tensor('en', [1], [1], 'int64'), tensor('ax', [1], [0], 'int64'));
  spec.nodes.unshift(node('Slice', ['x', 'st', 'en', 'ax'], ['xs']));
  spec.nodes[1].inputs = ['xs'];
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual(m.info.batch, { declared: 'N', effective: 1, patched: false });
  assert.ok(m.warnings.some((w) => /fails on a batch of 3 \(no output has one row per image \(y \[1,3\]\)\) and could not be run batched/.test(w)), m.warnings.join('\n'));
  const x = gray(4);
  near((await m.predict(x)).logits, linear(x.data, 4, W, b, D, K), 1e-5);
  await m.dispose();
});

test('a batch patch that does not verify falls back to one image per run, with a warning', async () => {
  // Slice(axis 0, 0..1) keeps only the first image: batched runs would drop the others.
  const { spec, W, b, D, K } = tinyClassifier({ inputShape: [1, 1, 4, 4] });
  spec.initializers!.push(tensor('st', [1], [0], 'int64'), tensor('en', [1], [1], 'int64'), tensor('ax', [1], [0], 'int64'));
  spec.nodes.unshift(node('Slice', ['x', 'st', 'en', 'ax'], ['xs']));
  spec.nodes[1].inputs = ['xs'];
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual(m.info.batch, { declared: 1, effective: 1, patched: false });
  assert.ok(m.warnings.some((w) => /could not be run batched/.test(w)), m.warnings.join('\n'));
  const x = gray(4);
  near((await m.predict(x)).logits, linear(x.data, 4, W, b, D, K), 1e-5);
  await m.dispose();
});

for (const [shape, channels] of [
  [['N', 16], 1],
  [['N', 48, 1], 3],
  [[1, 1, 1, 16], 1],
] as const) {
  test(`flattened input ${JSON.stringify(shape)} → layout flat, ${channels} channel(s)`, async () => {
    const { spec, W, b, D, K } = tinyClassifier({ inputShape: [...shape] });
    const m = await loadModel(writeModel(spec), { device: 'cpu' });
    assert.equal(m.info.layout, 'flat');
    assert.equal(m.info.channels, channels);
    assert.equal(m.info.height, 4);
    assert.equal(m.info.width, 4);
    const n = 3;
    const x = { data: seeded(n * D, 9, 0, 1), n, channels, height: 4, width: 4 };
    near((await m.predict(x)).logits, linear(x.data, n, W, b, D, K), 1e-5);
    if (channels === 3) assert.ok(m.warnings.some((w) => /channel-planar \(CHW\)/.test(w)));
    await m.dispose();
  });
}

for (const shape of [['N', 4, 4], [1, 4, 4]] as const) {
  test(`grayscale [N,H,W] input ${JSON.stringify(shape)} with the mnist preset`, async () => {
    const { spec, W, b, D, K } = tinyClassifier({ inputShape: [...shape] });
    const m = await loadModel(writeModel(spec), { device: 'cpu', preprocess: 'mnist' });
    assert.deepEqual([m.info.layout, m.info.channels, m.info.height, m.info.width, m.info.batch.effective], ['NCHW', 1, 4, 4, 'dynamic']);
    const x = gray(5);
    near((await m.predict(x)).logits, linear(Array.from(x.data, (v) => (v - 0.1307) / 0.3081), 5, W, b, D, K), 1e-4);
    await m.dispose();
  });
}

test('unbatched CHW input [3,4,4]: one image per run', async () => {
  const W = seeded(48 * 2, 1);
  const b = seeded(2, 2);
  const spec: ModelSpec = {
    inputs: [{ name: 'img', shape: [3, 4, 4] }],
    outputs: [{ name: 'y', shape: [1, 2] }],
    initializers: [tensor('s', [2], [1, 48], 'int64'), tensor('W', [48, 2], W), tensor('b', [2], b)],
    nodes: [node('Reshape', ['img', 's'], ['f']), node('Gemm', ['f', 'W', 'b'], ['y'])],
  };
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual([m.info.layout, m.info.channels, m.info.batch.declared, m.info.batch.effective], ['NCHW', 3, 'none', 1]);
  const x = { data: seeded(2 * 48, 4, 0, 1), n: 2, channels: 3 as const, height: 4, width: 4 };
  near((await m.predict(x)).logits, linear(x.data, 2, W, b, 48, 2), 1e-5);
  await m.dispose();
});

for (const [shape, why] of [
  [['N', 4, 8, 8], /unsupported input 'x' of shape \[N,4,8,8\]: no channel dimension of 1 or 3/],
  [['N', 10], /unsupported input 'x' of shape \[N,10\]: the flattened size 10 is neither H·W nor 3·H·W/],
  [['N', 1, 3, 4, 4], /unsupported input 'x' of shape \[N,1,3,4,4\]: rank 5 is not supported/],
  [['N', 'C', 'H', 'W'], /channel dimension is symbolic/],
] as const) {
  test(`unsupported input ${JSON.stringify(shape)}: a clear SkepticInputError`, async () => {
    const { spec } = tinyClassifier({ inputShape: [...shape] });
    const file = writeModel(spec, 'odd-input.onnx');
    await assert.rejects(loadModel(file, { device: 'cpu' }), (e: unknown) => {
      assert.ok(e instanceof SkepticInputError);
      assert.ok(e.message.includes(file), e.message);
      assert.match(e.message, why);
      assert.equal(e.file, file);
      return true;
    });
  });
}

test('two inputs and non-float inputs are refused clearly', async () => {
  const { spec } = tinyClassifier();
  spec.inputs.push({ name: 'extra', shape: ['N', 1] });
  await assert.rejects(loadModel(writeModel(spec), { device: 'cpu' }), /has 2 inputs \('x' \[N,1,4,4\], 'extra' \[N,1\]\); Skeptic audits single-input/);
  const { spec: s2 } = tinyClassifier({ inputType: 'int32' });
  await assert.rejects(loadModel(writeModel(s2), { device: 'cpu' }), /input 'x' has element type int32/);
});

test('float16 input: converted from float32', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ inputType: 'float16' });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  const x = gray(3);
  near((await m.predict(x)).logits, linear(x.data, 3, W, b, D, K), 2e-2);
  await m.dispose();
});

test('uint8 input: assumed raw255, rounded to 0..255', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ inputType: 'uint8' });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.preprocessing.scale, 255);
  assert.equal(m.preprocessing.source, 'assumed');
  const x = gray(3);
  const q = Array.from(x.data, (v) => Math.round(v * 255));
  near((await m.predict(x)).logits, linear(q, 3, W, b, D, K), 1e-3);
  await m.dispose();
});

test('runs are split at batchSize; concurrent predicts are serialised; misuse throws', async () => {
  const { spec, W, b, D, K } = tinyClassifier();
  const m = await loadModel(writeModel(spec), { device: 'cpu', batchSize: 4 });
  const x1 = gray(10, 1);
  const x2 = gray(7, 2);
  const [p1, p2] = await Promise.all([m.predict(x1), m.predict(x2)]);
  near(p1.logits, linear(x1.data, 10, W, b, D, K), 1e-5, 'p1');
  near(p2.logits, linear(x2.data, 7, W, b, D, K), 1e-5, 'p2');
  const empty = await m.predict({ data: new Float32Array(0), n: 0, channels: 1, height: 4, width: 4 });
  assert.equal(empty.logits.length, 0);
  await assert.rejects(m.predict({ data: new Float32Array(48), n: 1, channels: 3, height: 4, width: 4 }), /the model takes 1×4×4/);
  await m.dispose();
  await assert.rejects(m.predict(x1), /after dispose/);
});
