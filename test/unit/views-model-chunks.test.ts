/**
 * The model in slices of a run's rows (views/model-chunks.ts): the sliced graph gives the whole
 * graph's outputs at any row count, shares the weights, leaves graphs it cannot slice safely
 * alone; a composed view runner with the model in slices gives the same scores and features as
 * one with the model whole, on small built models and on the fixture models that compose.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../server/engine/model';
import { decodeModel, encodeModel, type onnx } from '../../server/engine/model/onnx';
import type { PixelImage } from '../../server/engine/types';
import { composedModel, modelChunkRows, modelChunks, setModelChunkRows, setViewRunPasses } from '../../server/engine/views/session';
import { viewsFor, type ViewOp, type ViewPlan } from '../../server/engine/views';
import { buildModel, convNet, seeded, writeModel } from './helpers/onnx-builder';
import { chunkModel, MODEL_CHUNK_PREFIX } from '../../server/engine/views/model-chunks';

async function run(bytes: Uint8Array, x: Float32Array, n: number, outputs: string[]): Promise<Float32Array[]> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ x: new ort.Tensor('float32', x, [n, 1, 8, 8]) }, outputs);
    return outputs.map((o) => out[o].data as Float32Array);
  } finally {
    await s.release();
  }
}

test('chunkModel: three copies of the model over row slices give the whole graph\'s outputs and features at 3, 7 and 11 rows, with the weights shared', async () => {
  const spec = convNet();
  const whole = buildModel({ ...spec, outputs: [...spec.outputs, { name: 'feat', shape: ['N', 4] }] });
  const m = decodeModel(whole, 'conv');
  const g = m.graph!;
  const nodes = chunkModel(g, g.node!, 'x', ['y', 'feat'], 3);
  assert.ok(nodes, 'sliced');
  g.node = nodes;
  const sliced = encodeModel(m);
  assert.equal(nodes.filter((n) => n.opType === 'Conv').length, 3, 'one Conv per slice');
  assert.equal(new Set(nodes.filter((n) => n.opType === 'Conv').map((n) => n.input![1])).size, 1, 'all reading the one weight tensor');
  assert.equal(g.initializer!.filter((t) => t.name === 'cw').length, 1);
  assert.deepEqual(g.output!.map((o) => o.name), ['y', 'feat']);
  assert.ok(!g.valueInfo!.some((v) => v.name === 'c'), 'the renamed tensor\'s value info is dropped');
  for (const n of [3, 7, 11]) {
    const x = seeded(n * 64, 10 + n, 0, 1);
    const [y0, f0] = await run(whole, x, n, ['y', 'feat']);
    const [y1, f1] = await run(sliced, x, n, ['y', 'feat']);
    assert.equal(y1.length, n * 3);
    assert.deepEqual(y1, y0, `scores at ${n} rows`);
    assert.deepEqual(f1, f0, `features at ${n} rows`);
  }
});

test('chunkModel leaves alone a graph with a subgraph (an If reads outer tensors by name), an output no node makes, and fewer than two chunks', () => {
  const T = 5; // AttributeType.GRAPH
  const withIf = (): onnx.IGraphProto => {
    const g = decodeModel(buildModel(convNet()), 'conv').graph!;
    const branch: onnx.IGraphProto = { name: 'b', node: [{ opType: 'Identity', input: ['feat'], output: ['o'] }], output: [{ name: 'o' }] };
    g.node!.push({ opType: 'If', input: ['cond'], output: ['z'], attribute: [{ name: 'then_branch', type: T, g: branch }, { name: 'else_branch', type: T, g: branch }] });
    return g;
  };
  const g = withIf();
  const before = JSON.stringify(g);
  assert.equal(chunkModel(g, g.node!, 'x', ['y'], 3), undefined);
  assert.equal(JSON.stringify(g), before, 'untouched');
  const plain = decodeModel(buildModel(convNet()), 'conv').graph!;
  assert.equal(chunkModel(plain, plain.node!, 'x', ['y', 'nowhere'], 3), undefined);
  assert.equal(chunkModel(plain, plain.node!, 'x', ['y'], 1), undefined);
  assert.equal(chunkModel(plain, [], 'x', ['y'], 3), undefined);
});

test('modelChunks: one copy per MODEL_CHUNK_ROWS rows of a full run, at most four, at most the views of one source', () => {
  const plan = (views: number): ViewPlan => ({ channels: 1, height: 28, width: 28, margin: 0, ops: Array.from({ length: views }, () => ({ kind: 'invert' }) as ViewOp) });
  // mnist-8's corruption runs: 17 sources × 76 views = 1,292 rows → 4 slices of ~323
  assert.equal(modelChunks(plan(76), 17), 4);
  // a run of one ImageNet image's 76 views, a CIFAR run of 341: whole
  assert.equal(modelChunks(plan(76), 1), 1);
  assert.equal(modelChunks(plan(1), 341), 1);
  // a 10×10 input: 64 sources of 76 views a run, 16 slices' worth, capped at 4
  assert.equal(modelChunks(plan(76), 64), 4);
  // WebGPU's kernels cost more a pass above ~32 rows: an ImageNet image's 76 corruption views in
  // three slices, its 43 shift views whole; the CPU's (and CUDA's) runs as before
  assert.equal(modelChunkRows('cpu'), 300);
  assert.equal(modelChunkRows('cuda'), 300);
  assert.equal(modelChunks(plan(76), 1, modelChunkRows('webgpu')), 3);
  assert.equal(modelChunks(plan(43), 1, modelChunkRows('webgpu')), 1);
  assert.equal(modelChunks(plan(76), 17, modelChunkRows('webgpu')), 4, 'still at most four');
  try {
    setModelChunkRows(10);
    assert.equal(modelChunks(plan(76), 17), 76, 'capped at the views of one source');
    assert.equal(modelChunks(plan(3), 7), 2);
    assert.throws(() => setModelChunkRows(0), RangeError);
  } finally {
    setModelChunkRows(undefined);
  }
});

test("the view runners take the slice size of the model's provider: a model on WebGPU gets slices of about 25 rows, one on the CPU its run whole", async () => {
  const file = writeModel(convNet(), 'conv.onnx');
  // 76 views of one source a run, as an ImageNet image's corruption views
  const plan: ViewPlan = { channels: 1, height: 8, width: 8, margin: 0, ops: Array.from({ length: 76 }, (_, i): ViewOp => ({ kind: 'brightness', delta: i / 200 })) };
  const model = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
  try {
    setViewRunPasses(76);
    const cpu = await viewsFor(model, plan);
    assert.equal(cpu.mode, 'composed', cpu.reason);
    assert.equal(cpu.modelSlices, 1);
    // the same model, said to run on WebGPU: its runner is built for WebGPU (on a machine without
    // one, its session falls back to the CPU; the slices are chosen before that)
    const onWebgpu = Object.create(model, { device: { value: { ...model.device, used: 'webgpu' } } }) as typeof model;
    const gpu = await viewsFor(onWebgpu, plan);
    assert.equal(gpu.mode, 'composed', gpu.reason);
    assert.equal(gpu.modelSlices, 3);
  } finally {
    setViewRunPasses(undefined);
    await model.dispose();
  }
});

for (const preprocess of ['unit', { mean: [0.5], std: [0.25] }]) {
  // with a mean and std, the slices start from the Add the view graph applies per group of views
  const how = typeof preprocess === 'string' ? preprocess : 'mean/std';
  test(`a composed view runner with the model in six slices gives the scores and features of one with the model whole, over runs of several sizes (${how})`, async () => {
    const file = writeModel(convNet(), 'conv.onnx');
    const ops: ViewOp[] = [
      { kind: 'crop', top: 0, left: 1 },
      { kind: 'crop', top: 2, left: 2 },
      { kind: 'brightness', delta: 0.2 },
      { kind: 'invert' },
      { kind: 'pixelate', factor: 0.5 },
      { kind: 'rotate', degrees: 90 },
    ];
    const plan: ViewPlan = { channels: 1, height: 8, width: 8, margin: 1, ops };
    const sources = Array.from({ length: 5 }, (_, i): { source: PixelImage } => ({ source: { data: seeded(100, 40 + i, 0, 1), channels: 1, height: 10, width: 10 } }));
    const results = [];
    for (const chunkRows of [undefined, 2]) {
      const model = await loadModel(file, { device: 'cpu', preprocess });
      try {
        setModelChunkRows(chunkRows);
        setViewRunPasses(18); // three sources a run: runs of 18 and 12 rows
        const built = await composedModel(model, plan, 3, 'feat');
        assert.ok('bytes' in built, 'reason' in built ? built.reason : '');
        assert.equal(built.chunks, chunkRows ? 6 : 1);
        if (chunkRows) {
          const nodes = decodeModel(built.bytes, 'composed').graph!.node!;
          const slicing = nodes.find((n) => n.output?.[0] === `${MODEL_CHUNK_PREFIX}0_input`);
          assert.ok(slicing, 'the first slice');
          // the slices read the view graph's output (after the preprocessing it applies per group)
          const producer = nodes.find((n) => n.output?.includes(slicing.input![0]));
          assert.ok(producer?.name?.startsWith('skeptic_view_') && !producer.name.startsWith(MODEL_CHUNK_PREFIX), `made by ${producer?.name}`);
          if (how === 'mean/std') assert.ok(nodes.some((n) => n.name?.startsWith('skeptic_view_') && n.input?.includes('skeptic_pre_b')), 'the mean/std Add is in the view graph');
        }
        const runner = await viewsFor(model, plan, { tensor: 'feat' });
        assert.equal(runner.mode, 'composed', runner.reason);
        assert.equal(runner.sourcesPerRun, 3);
        results.push(await runner.predict(sources));
      } finally {
        setModelChunkRows(undefined);
        setViewRunPasses(undefined);
        await model.dispose();
      }
    }
    const [whole, sliced] = results;
    assert.equal(sliced.n, 30);
    assert.deepEqual(sliced.logits, whole.logits);
    assert.deepEqual(sliced.probs, whole.probs);
    assert.ok(whole.feats && sliced.feats);
    assert.equal(sliced.feats.dims, 4);
    assert.deepEqual(sliced.feats.data, whole.feats.data);
  });
}

const FIXTURES = resolve(__dirname, '../../../shared/fixtures/models');
const fixtureModels = ['mnist-8_onnxzoo_cntk.onnx', 'mnist_convnet_maxpool_verivital.onnx', 'cifar10_resnet2b_advtrained.onnx', 'cifar10_marabou_small_nhwc.onnx', 'imagenet_mobilenetv2-12-int8.onnx'];
test('on the fixture models that compose (opset 8 made symbolic, NHWC, int8 QDQ), four slices give the whole model\'s scores bit for bit', { skip: !existsSync(join(FIXTURES, fixtureModels[0])) && 'no fixtures' }, async () => {
  for (const f of fixtureModels) {
    const got: Float32Array[] = [];
    for (const rows of [undefined, 2]) {
      const model = await loadModel(join(FIXTURES, f), { device: 'cpu' });
      try {
        const { channels: C, height: H, width: W } = model.info;
        const ops: ViewOp[] = [{ kind: 'invert' }, { kind: 'brightness', delta: 0.2 }, { kind: 'crop', top: 0, left: 1 }, { kind: 'rotate', degrees: 90 }];
        const plan: ViewPlan = { channels: C, height: H, width: W, margin: 1, ops };
        setModelChunkRows(rows);
        setViewRunPasses(8); // two sources a run: runs of 8 and 4 rows, slices of 1 and 2
        const built = await composedModel(model, plan, 2);
        assert.ok('bytes' in built, `${f}: ${'reason' in built ? built.reason : ''}`);
        assert.equal(built.chunks, rows ? 4 : 1, f);
        const runner = await viewsFor(model, plan);
        assert.equal(runner.mode, 'composed', `${f}: ${runner.reason}`);
        const sources = Array.from({ length: 3 }, (_, i) => ({ source: { data: seeded(C * (H + 2) * (W + 2), 60 + i, 0, 1), channels: C, height: H + 2, width: W + 2 } }));
        got.push((await runner.predict(sources)).logits);
      } finally {
        setModelChunkRows(undefined);
        setViewRunPasses(undefined);
        await model.dispose();
      }
    }
    assert.deepEqual(got[1], got[0], f);
  }
});

test('a provider that refuses the sliced graph gets the model whole, still composed', async () => {
  const file = writeModel(convNet(), 'conv.onnx');
  const plan: ViewPlan = { channels: 1, height: 8, width: 8, margin: 0, ops: [{ kind: 'invert' }, { kind: 'brightness', delta: 0.1 }, { kind: 'contrast', factor: 0.5 }] };
  const sources = [0, 1].map((i) => ({ source: { data: seeded(64, 80 + i, 0, 1), channels: 1 as const, height: 8, width: 8 } }));
  const Session = ort.InferenceSession as unknown as { create: (...a: unknown[]) => Promise<ort.InferenceSession> };
  const create = Session.create;
  let refused = 0;
  const got = [];
  for (const refuse of [false, true]) {
    const model = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
    Session.create = async (...a: unknown[]) => {
      if (refuse && a[0] instanceof Uint8Array && Buffer.from(a[0]).includes(MODEL_CHUNK_PREFIX)) {
        refused++;
        throw new Error('this provider does not take it');
      }
      return create.apply(Session, a);
    };
    try {
      setModelChunkRows(refuse ? 1 : undefined);
      const runner = await viewsFor(model, plan);
      assert.equal(runner.mode, 'composed', runner.reason);
      got.push(await runner.predict(sources));
    } finally {
      Session.create = create;
      setModelChunkRows(undefined);
      await model.dispose();
    }
  }
  assert.equal(refused, 1, 'the sliced graph was offered once');
  assert.deepEqual(got[1].logits, got[0].logits);
});

test('composed graphs built one after another over one model (its pixel graph decoded once, its weights encoded once) do not change each other, and each holds the model\'s weights once, as in the file', async () => {
  const file = writeModel(convNet(), 'conv.onnx');
  const model = await loadModel(file, { device: 'cpu', preprocess: { mean: [0.5], std: [0.25] } });
  try {
    const a: ViewPlan = { channels: 1, height: 8, width: 8, margin: 1, ops: [{ kind: 'crop', top: 0, left: 1 }, { kind: 'invert' }, { kind: 'brightness', delta: 0.2 }, { kind: 'rotate', degrees: 90 }] };
    const b: ViewPlan = { channels: 1, height: 8, width: 8, margin: 0, ops: [{ kind: 'contrast', factor: 0.5 }, { kind: 'pixelate', factor: 0.5 }] };
    setModelChunkRows(2);
    const first = await composedModel(model, a, 2, 'feat');
    const other = await composedModel(model, b, 3);
    const again = await composedModel(model, a, 2, 'feat');
    assert.ok('bytes' in first && 'bytes' in other && 'bytes' in again);
    assert.equal(first.chunks, 4, 'the model in slices');
    assert.deepEqual(again.bytes, first.bytes, 'the same plan builds the same bytes after another plan');
    const weights = decodeModel(buildModel(convNet()), 'file').graph!.initializer!;
    for (const built of [first, other]) {
      const g = decodeModel(built.bytes, 'composed').graph!;
      for (const w of weights) {
        const found = g.initializer!.filter((t) => t.name === w.name);
        assert.equal(found.length, 1, `${w.name} once`);
        assert.deepEqual(found[0].dims!.map(Number), w.dims!.map(Number));
        assert.deepEqual(Buffer.from(found[0].rawData!), Buffer.from(w.rawData!), `${w.name}'s values`);
      }
      // the preprocessing's constants (runModel's) come with the weights, named once
      const names = g.initializer!.map((t) => t.name);
      assert.equal(new Set(names).size, names.length, 'no initializer twice');
      assert.ok(names.includes('skeptic_pre_b'), 'the mean/std constant');
    }
    const runner = await viewsFor(model, a, { tensor: 'feat' });
    assert.equal(runner.mode, 'composed', runner.reason);
  } finally {
    setModelChunkRows(undefined);
    await model.dispose();
  }
});
