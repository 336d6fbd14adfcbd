/**
 * Loading: bad files (missing, empty, truncated, text, no graph, a directory, an op ONNX Runtime
 * does not know), options validation, execution-provider fallback, labels, describeModel,
 * introspection (opset, producer, op histogram, quantization, metadata).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeModel, loadModel } from '../../server/engine/model';
import { SkepticInputError } from '../../server/engine/errors';
import { createSession, cudaInstalled, webgpuMisfit } from '../../server/engine/model/providers';
import { onnx } from 'onnx-proto';
import { buildModel, linear, node, seeded, tensor, tinyClassifier, tmpDir, writeModel } from './helpers/onnx-builder';
import { makeViews, viewsFor, type ViewPlan } from '../../server/engine/views';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');

async function rejectsNaming(file: string, re: RegExp, opts = {}): Promise<void> {
  await assert.rejects(loadModel(file, { device: 'cpu', ...opts }), (e: unknown) => {
    assert.ok(e instanceof SkepticInputError, `expected SkepticInputError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message}`);
    assert.equal(e.file, file);
    assert.match(e.message, re);
    return true;
  });
}

test('bad files: missing, empty, truncated, text, no graph, directory, unknown op', async () => {
  const dir = tmpDir();
  await rejectsNaming(join(dir, 'nope.onnx'), /model .*nope\.onnx: not found/);
  const empty = join(dir, 'empty.onnx');
  writeFileSync(empty, '');
  await rejectsNaming(empty, /the file is empty/);
  const good = buildModel(tinyClassifier({ inputShape: ['N', 1, 8, 8], classes: 10 }).spec);
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(truncated, good.subarray(0, Math.floor(good.length / 2)));
  await rejectsNaming(truncated, /not an ONNX model \(protobuf parse failed: /);
  const text = join(dir, 'notes.onnx');
  writeFileSync(text, 'This is not a model.\nJust some notes about one.\n');
  await rejectsNaming(text, /not an ONNX model.*looks like text/);
  await rejectsNaming(writeModel({ inputs: [], outputs: [], nodes: [], noGraph: true }, 'nograph.onnx', dir), /not an ONNX model: it has no graph/);
  await rejectsNaming(dir, /is a folder, not a file/);
  const { spec } = tinyClassifier();
  spec.nodes.push(node('NoSuchOp', ['y'], ['y2']));
  spec.outputs = [{ name: 'y2', shape: ['N', 3] }];
  await rejectsNaming(writeModel(spec, 'unknown-op.onnx', dir), /ONNX Runtime cannot load the model \(.*NoSuchOp/);
});

test('bad files: a truncated real model (mnist-8)', { skip: existsSync(FIXTURES) ? false : `fixtures absent: ${FIXTURES}` }, async () => {
  const bytes = readFileSync(join(FIXTURES, 'models', 'mnist-8_onnxzoo_cntk.onnx'));
  const file = join(tmpDir(), 'mnist-8-truncated.onnx');
  writeFileSync(file, bytes.subarray(0, 10000));
  await rejectsNaming(file, /not an ONNX model \(protobuf parse failed/);
});

test('external data: weights in a file beside the model are inlined; outside the folder is refused', async () => {
  const dir = tmpDir();
  const { spec, W, b, D, K } = tinyClassifier();
  const m = onnx.ModelProto.decode(buildModel(spec));
  const w = m.graph!.initializer!.find((t) => t.name === 'W')!;
  writeFileSync(join(dir, 'weights.bin'), Buffer.concat([Buffer.alloc(8), Buffer.from(w.rawData!)]));
  w.rawData = new Uint8Array(0);
  w.dataLocation = 1;
  w.externalData = [{ key: 'location', value: 'weights.bin' }, { key: 'offset', value: '8' }, { key: 'length', value: String(D * K * 4) }];
  const file = join(dir, 'ext.onnx');
  writeFileSync(file, onnx.ModelProto.encode(m).finish());
  const model = await loadModel(file, { device: 'cpu', preprocess: 'mnist' });
  assert.ok(model.warnings.some((x) => /1 tensors are stored in external data files/.test(x)));
  const x = seeded(2 * 16, 1, 0, 1);
  const p = await model.predict({ data: x, n: 2, channels: 1, height: 4, width: 4 });
  const expected = linear(Array.from(x, (v) => (v - 0.1307) / 0.3081), 2, W, b, D, K);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(p.logits[i] - expected[i]) < 1e-4);
  // the views' composed session inlines the weights too, and scores its views as the model does
  const plan: ViewPlan = { channels: 1, height: 4, width: 4, margin: 0, ops: [{ kind: 'invert' }, { kind: 'brightness', delta: 0.2 }] };
  const runner = await viewsFor(model, plan);
  assert.equal(runner.mode, 'composed', runner.reason);
  const source = { data: x.subarray(0, 16), channels: 1 as const, height: 4, width: 4 };
  const got = await runner.predict([{ source }]);
  const want = await model.predict({ data: await makeViews(plan, [{ source }]), n: 2, channels: 1, height: 4, width: 4 });
  for (let i = 0; i < want.logits.length; i++) assert.ok(Math.abs(got.logits[i] - want.logits[i]) < 1e-5, `view logit ${i}`);
  await model.dispose();
  w.externalData = [{ key: 'location', value: '../weights.bin' }];
  writeFileSync(file, onnx.ModelProto.encode(m).finish());
  await rejectsNaming(file, /tensor 'W' has external data at '..\/weights.bin', outside the model's folder/);
});

test('options are validated', async () => {
  const file = writeModel(tinyClassifier().spec);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  await assert.rejects(loadModel(file, { device: 'gpu' as any }), /--device: unknown device 'gpu'/);
  await assert.rejects(loadModel(file, { batchSize: 0 }), /--batch-size: expected a positive integer/);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  await assert.rejects(loadModel(file, { outputKind: 'scores' as any }), /unknown kind 'scores'/);
});

for (const device of ['webgpu', 'cuda'] as const) {
  test(`device '${device}' unavailable: falls back to cpu with a fallback line and a warning`, async (t) => {
    const file = writeModel(tinyClassifier().spec);
    const t0 = performance.now();
    const m = await loadModel(file, { device });
    const ms = performance.now() - t0;
    if (m.device.used === device) {
      t.skip(`${device} works on this machine`);
      await m.dispose();
      return;
    }
    t.diagnostic(`${device} attempt + cpu load: ${ms.toFixed(0)} ms`);
    assert.equal(m.device.requested, device);
    assert.equal(m.device.used, 'cpu');
    assert.equal(m.device.fallbacks.length, 1);
    assert.match(m.device.fallbacks[0], new RegExp(`^${device}: .+`));
    if (device === 'cuda' && !cudaInstalled()) assert.match(m.device.fallbacks[0], /not installed/);
    assert.ok(m.warnings.some((w) => w.startsWith(`${device} was requested but could not start; running on cpu`)), m.warnings.join('\n'));
    assert.match(describeModel(m), new RegExp(`Device +cpu \\(requested ${device}\\)(, \\d+ CPU threads?)?\\n +fallback +${device}: `));
    await m.dispose();
  });
}

test("device 'auto' records each provider it fell back from, without warnings", async () => {
  const m = await loadModel(writeModel(tinyClassifier().spec));
  assert.equal(m.device.requested, 'auto');
  if (m.device.used === 'cpu') {
    assert.ok(m.device.fallbacks.some((f) => f.startsWith('webgpu: ')), m.device.fallbacks.join('\n'));
    if (!cudaInstalled()) assert.ok(m.device.fallbacks.some((f) => f.startsWith('cuda: ')));
  }
  assert.ok(!m.warnings.some((w) => /requested/.test(w)));
  await m.dispose();
});

test("device 'auto' passes over WebGPU for a quantized model, saying why (ONNX Runtime has no WebGPU kernels for its QLinear and QuantizeLinear nodes); asked for by name, WebGPU is tried", async () => {
  // the reason, from the op counts: quantized operator nodes and QDQ's QuantizeLinear count, DequantizeLinear does not
  assert.equal(webgpuMisfit({ Conv: 3, Relu: 3, Gemm: 1 }), undefined);
  assert.equal(webgpuMisfit({ DequantizeLinear: 4, Conv: 2 }), undefined);
  assert.match(webgpuMisfit({ QLinearConv: 52, QuantizeLinear: 1, QLinearAdd: 10, Conv: 1 })!, /^the model's quantized nodes \(52 QLinearConv, 10 QLinearAdd, 1 QuantizeLinear\) have no WebGPU kernels/);
  assert.match(webgpuMisfit({ QuantizeLinear: 8, DequantizeLinear: 16, Conv: 8 })!, /\(8 QuantizeLinear\)/);
  const bytes = readFileSync(writeModel(tinyClassifier().spec));
  const auto = await createSession(bytes, 'auto', 'tiny.onnx', 'all', true, { webgpu: 'its nodes are quantized' });
  assert.equal(auto.used, 'cpu');
  assert.ok(auto.fallbacks.includes('webgpu: its nodes are quantized; ask for --device webgpu to try anyway'), auto.fallbacks.join('\n'));
  await auto.session.release();
  const asked = await createSession(bytes, 'webgpu', 'tiny.onnx', 'all', true, { webgpu: 'its nodes are quantized' });
  assert.ok(asked.used === 'webgpu' || !asked.fallbacks.some((f) => f.includes('quantized')), 'asked for by name, WebGPU is tried');
  await asked.session.release();
  const int8 = join(FIXTURES, 'models/imagenet_mobilenetv2-12-int8.onnx');
  if (existsSync(int8)) {
    const m = await loadModel(int8, { preprocess: 'imagenet' });
    assert.equal(m.device.used === 'webgpu', false);
    assert.ok(m.device.fallbacks.some((f) => /^webgpu: the model's quantized nodes \(\d+ QLinearConv, .*\) have no WebGPU kernels/.test(f)), m.device.fallbacks.join('\n'));
    await m.dispose();
  }
});

test('labels: <model>.labels.txt beats labels.txt; WNID lines; count mismatch warns', async () => {
  const dir = tmpDir();
  const file = writeModel(tinyClassifier({ classes: 3 }).spec, 'net.onnx', dir);
  writeFileSync(join(dir, 'labels.txt'), 'a\nb\nc\n');
  let m = await loadModel(file, { device: 'cpu' });
  assert.deepEqual(m.labels, { names: ['a', 'b', 'c'], keys: [['a'], ['b'], ['c']], source: join(dir, 'labels.txt') });
  await m.dispose();
  writeFileSync(join(dir, 'net.labels.txt'), 'n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\r\nHot Dog\n\n');
  m = await loadModel(file, { device: 'cpu' });
  assert.equal(m.labels?.source, join(dir, 'net.labels.txt'));
  assert.deepEqual(m.labels?.names, ['tench', 'goldfish', 'Hot Dog']);
  assert.deepEqual(m.labels?.keys[1], ['n01443537', 'goldfish', 'goldfish, carassius auratus', 'n01443537 goldfish, carassius auratus']);
  assert.deepEqual(m.labels?.keys[2], ['hot dog']);
  assert.ok(!m.warnings.some((w) => /labels/.test(w)));
  await m.dispose();
  const other = join(dir, 'four.txt');
  writeFileSync(other, 'w\nx\ny\nz\n');
  m = await loadModel(file, { device: 'cpu', labels: other });
  assert.equal(m.labels?.names.length, 4);
  assert.ok(m.warnings.some((w) => w === `4 labels (from ${other}) but the model has 3 classes`), m.warnings.join('\n'));
  await m.dispose();
  await assert.rejects(loadModel(file, { device: 'cpu', labels: join(dir, 'missing.txt') }), (e: unknown) => {
    assert.ok(e instanceof SkepticInputError);
    assert.equal(e.message, `labels file not found: ${join(dir, 'missing.txt')}`);
    return true;
  });
});

test('labels from metadata: skeptic.labels JSON, a comma list, a Python-style dict; none', async () => {
  for (const [metadata, names] of [
    [{ 'skeptic.labels': '["cat","dog","n02084071 dog, domestic dog"]' }, ['cat', 'dog', 'dog']],
    [{ classes: 'cat, dog, bird' }, ['cat', 'dog', 'bird']],
    [{ names: "{0: 'person', 1: 'bicycle', 2: 'car'}" }, ['person', 'bicycle', 'car']],
  ] as const) {
    const m = await loadModel(writeModel(tinyClassifier({ metadata: { ...metadata } }).spec), { device: 'cpu' });
    assert.deepEqual(m.labels?.names, names);
    assert.equal(m.labels?.source, 'metadata');
    await m.dispose();
  }
  const m = await loadModel(writeModel(tinyClassifier({ metadata: { classes: 'just one thing' } }).spec), { device: 'cpu' });
  assert.equal(m.labels, undefined);
  assert.match(describeModel(m), /Labels +none/);
  await m.dispose();
});

test('introspection and describeModel', async () => {
  const { spec } = tinyClassifier({ head: 'softmax', metadata: { author: 'me' } });
  spec.producer = 'hand';
  spec.initializers!.push(tensor('sc', [], [0.1]), tensor('zp', [], [0], 'uint8'));
  spec.nodes.unshift(node('QuantizeLinear', ['x', 'sc', 'zp'], ['q']), node('DequantizeLinear', ['q', 'sc', 'zp'], ['dq']));
  spec.nodes[2].inputs = ['dq'];
  const m = await loadModel(writeModel(spec, 'described.onnx'), { device: 'cpu', preprocess: 'unit' });
  const i = m.info;
  assert.equal(i.opset, 13);
  assert.equal(i.producer, 'hand');
  assert.deepEqual(i.opHistogram, { QuantizeLinear: 1, DequantizeLinear: 1, Flatten: 1, Gemm: 1, Softmax: 1 });
  assert.equal(i.quantized, true);
  assert.deepEqual(i.metadata, { author: 'me' });
  assert.deepEqual(i.inputs, [{ name: 'x', type: 'float32', shape: ['N', 1, 4, 4] }]);
  assert.deepEqual(i.outputs, [{ name: 'y', type: 'float32', shape: ['N', 3] }]);
  const text = describeModel(m);
  for (const re of [
    /^Model +.*described\.onnx$/m,
    /^SHA-256 +[0-9a-f]{64}$/m,
    /^Producer +hand, opset 13$/m,
    /^Input +x  float32 \[N,1,4,4\]$/m,
    /^Layout +NCHW, grayscale 4×4$/m,
    /^Output +y  float32 \[N,3\]$/m,
    /^Classes +3$/m,
    /^Output kind +probabilities \(from the graph\)$/m,
    /^Batch +declared N; dynamic$/m,
    /^Quantized +yes$/m,
    /^Ops +DequantizeLinear 1, Flatten 1, Gemm 1, QuantizeLinear 1, Softmax 1$/m,
    /^Preprocessing +preset unit; resize to 4×4; bilinear \(PIL\); scale 1; mean \[0\]; std \[1\]; gray \(source: cli\)$/m,
    /^Device +cpu \(requested cpu\)(, \d+ CPU threads?)?$/m,
    /^Metadata +author = me$/m,
  ]) assert.match(text, re);
  assert.ok(!/\x1b\[/.test(text), 'no colour codes');
  // Unwrapped by default (a pipe or a log); wrapped at a terminal's width, on spaces, with the
  // continuation under the value column, and the same words in the same order.
  assert.ok(text.split('\n').every((l) => !/^ {14}\S/.test(l)), 'no continuation lines without a width');
  const narrow = describeModel(m, { width: 60 });
  const lines = narrow.split('\n');
  assert.ok(lines.some((l) => /^ {14}\S/.test(l)), 'long values wrap');
  for (const l of lines) assert.ok(l.length <= 60 || !l.slice(14).includes(' '), `line within 60 columns: ${l}`);
  assert.equal(narrow.replace(/\n {14}/g, ' '), text);
  await m.dispose();
});
