/**
 * Output handling on hand-built models: kind from the graph (Softmax, LogSoftmax, through a
 * trailing Flatten), numerically (Gemm logits, a Div-normalised probability output), the
 * override, a Softmax over the wrong axis; logits/probs conversion; output selection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../server/engine/model';
import { detectKind, softmaxRows, classesOf, toHalf, fromHalf } from '../../server/engine/model/output';
import { linear, node, seeded, tensor, tinyClassifier, writeModel } from './helpers/onnx-builder';

const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

function softmax(z: Float32Array, n: number, K: number): Float32Array {
  const out = new Float32Array(n * K);
  softmaxRows(z, n, K, out);
  return out;
}

const N = 4;
const pixels = seeded(N * 16, 3, 0, 1);
const batch = { data: pixels, n: N, channels: 1 as const, height: 4, width: 4 };

test('Softmax head: probabilities from the graph; softmax(logits) gives p back', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ head: 'softmax', classes: 5 });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.outputKind, 'probabilities');
  assert.equal(m.info.outputKindSource, 'graph');
  const p = await m.predict(batch);
  const expected = softmax(linear(pixels, N, W, b, D, K), N, K);
  near(p.probs, expected, 1e-5, 'probs');
  near(softmax(p.logits, N, K), expected, 1e-5, 'softmax(logits)');
  for (let i = 0; i < N * K; i++) assert.ok(Math.abs(p.logits[i] - Math.log(expected[i])) < 1e-4);
  await m.dispose();
});

test('LogSoftmax head: log-probabilities from the graph; logits are the log-probs', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ head: 'logsoftmax' });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.outputKind, 'log-probabilities');
  assert.equal(m.info.outputKindSource, 'graph');
  const p = await m.predict(batch);
  const pr = softmax(linear(pixels, N, W, b, D, K), N, K);
  near(p.logits, Array.from(pr, Math.log), 1e-4, 'logits');
  near(p.probs, pr, 1e-5, 'probs');
  await m.dispose();
});

test('plain Gemm: logits detected numerically', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ classes: 4 });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.outputKind, 'logits');
  assert.equal(m.info.outputKindSource, 'numeric');
  const p = await m.predict(batch);
  const z = linear(pixels, N, W, b, D, K);
  near(p.logits, z, 1e-5, 'logits');
  near(p.probs, softmax(z, N, K), 1e-5, 'probs');
  await m.dispose();
});

test('Softmax followed by Flatten is still read from the graph', async () => {
  const { spec } = tinyClassifier({ head: 'softmax' });
  spec.nodes[spec.nodes.length - 1].outputs = ['s'];
  spec.nodes.push(node('Flatten', ['s'], ['y'], { axis: 1 }));
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual([m.info.outputKind, m.info.outputKindSource], ['probabilities', 'graph']);
  await m.dispose();
});

test('Exp / ReduceSum / Div normalisation: probabilities detected numerically', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ classes: 6 });
  spec.nodes[spec.nodes.length - 1].outputs = ['z'];
  spec.initializers!.push(tensor('axes', [1], [1], 'int64'));
  spec.nodes.push(
    node('Exp', ['z'], ['e']),
    node('ReduceSum', ['e', 'axes'], ['s'], { keepdims: 1 }),
    node('Div', ['e', 's'], ['y']),
  );
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.outputKind, 'probabilities');
  assert.equal(m.info.outputKindSource, 'numeric');
  const p = await m.predict(batch);
  near(p.probs, softmax(linear(pixels, N, W, b, D, K), N, K), 1e-5, 'probs');
  await m.dispose();
});

test('outputKind override wins', async () => {
  const { spec } = tinyClassifier({ head: 'softmax' });
  const m = await loadModel(writeModel(spec), { device: 'cpu', outputKind: 'logits' });
  assert.deepEqual([m.info.outputKind, m.info.outputKindSource], ['logits', 'override']);
  await m.dispose();
});

test('a Softmax over the batch axis is not trusted: numeric decision and a warning', async () => {
  const { spec } = tinyClassifier({ head: 'softmax', classes: 4 });
  spec.nodes[spec.nodes.length - 1].attrs = { axis: 0 };
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.outputKindSource, 'numeric');
  assert.equal(m.info.outputKind, 'logits');
  assert.ok(m.warnings.some((w) => /comes from Softmax, but its rows are not probabilities/.test(w)), m.warnings.join('\n'));
  await m.dispose();
});

test('several outputs: the first [N,K] one is used, with a warning', async () => {
  const { spec, K } = tinyClassifier({ classes: 3 });
  // an extra first output that is not class scores (the flattened features, [N,16]... is [N,K]-like,
  // so make it 3-D [N,4,4])
  spec.nodes.unshift(node('Identity', ['x'], ['feat']));
  spec.outputs.unshift({ name: 'feat', shape: ['N', 1, 4, 4] });
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.equal(m.info.numClasses, K);
  assert.ok(m.warnings.some((w) => /2 outputs .*using 'y'/.test(w)), m.warnings.join('\n'));
  await m.dispose();
});

test('float16 output is converted', async () => {
  const { spec, W, b, D, K } = tinyClassifier({ classes: 3 });
  spec.nodes[spec.nodes.length - 1].outputs = ['z'];
  spec.nodes.push(node('Cast', ['z'], ['y'], { to: 10 }));
  spec.outputs[0].type = 'float16';
  const m = await loadModel(writeModel(spec), { device: 'cpu' });
  const p = await m.predict(batch);
  near(p.logits, linear(pixels, N, W, b, D, K), 1e-2, 'logits');
  await m.dispose();
});

test('detectKind, classesOf and float16 helpers', () => {
  assert.equal(detectKind(Float32Array.from([0.2, 0.3, 0.5, 1, 0, 0]), 2, 3), 'probabilities');
  assert.equal(detectKind(Float32Array.from([Math.log(0.2), Math.log(0.3), Math.log(0.5)]), 1, 3), 'log-probabilities');
  assert.equal(detectKind(Float32Array.from([0.2, 0.3, 0.5, 2, -1, 0]), 2, 3), 'logits');
  assert.equal(detectKind(Float32Array.from([-1, -2, -3]), 1, 3), 'logits');
  assert.equal(classesOf([3, 10], 3), 10);
  assert.equal(classesOf([3, 1000, 1, 1], 3), 1000);
  assert.equal(classesOf([10], 1), 10);
  assert.equal(classesOf([10], 3), undefined);
  assert.equal(classesOf([3, 4, 4], 3), undefined);
  const x = Float32Array.from([0, 1, -2.5, 65504, 1e-7, 0.1, 1e6]);
  const h = new Uint16Array(x.length);
  const back = new Float32Array(x.length);
  toHalf(x, h, x.length);
  fromHalf(h, back, x.length);
  assert.deepEqual(Array.from(back.slice(0, 4)), [0, 1, -2.5, 65504]);
  assert.ok(Math.abs(back[4] - 1e-7) < 6e-8);
  assert.ok(Math.abs(back[5] - 0.1) < 1e-4);
  assert.equal(back[6], Infinity);
});
