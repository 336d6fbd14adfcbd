/**
 * The style-transfer cue-conflict generator (Gatys et al. 2016 on the audited model's layers):
 *  - the loss graph (model/gradient/features.ts) against an independent computation: the demo
 *    model run by ONNX Runtime with the chosen layers added as outputs, the preprocessing done by
 *    hand, Gram matrices and losses in double precision in plain loops; its gradient against
 *    central finite differences of that independent loss;
 *  - the total-variation term against finite differences;
 *  - the optimisation: the style loss falls, the stimulus's Gram statistics end nearer the
 *    texture image's than the shape image's own, the same seed gives the same pixels;
 *  - the probe with generator "style-transfer" on the demo data, and on a model with no
 *    convolution (a clear error finding).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import '../../server/engine/fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import { audit } from '../../server/engine/audit';
import { addTotalVariation, styleTransfer } from '../../server/engine/cue/style-transfer';
import { openDataset } from '../../server/engine/data';
import { toBatch } from '../../server/engine/image/ops';
import { loadModel } from '../../server/engine/model';
import { buildStyleLoss, type FeatureLayers } from '../../server/engine/model/gradient';
import { byScale } from '../../server/engine/model/gradient/features';
import { decodeModel, encodeModel } from '../../server/engine/model/onnx';
import { cueConflictProbe } from '../../server/engine/probes/cue-conflict';
import type { Probe } from '../../server/engine/probes/probe';
import { derivedRng } from '../../server/engine/random';
import type { PixelImage } from '../../server/engine/types';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';
import { fakeDataset } from './helpers/fake';
import { node, seeded, tensor, tinyClassifier, writeModel } from './helpers/onnx-builder';

/** The first image of each of the first two classes in the demo's test split. */
async function demoPair(model: Awaited<ReturnType<typeof loadModel>>): Promise<{ a: PixelImage; b: PixelImage; la: number; lb: number }> {
  ensureDemoData();
  const ds = await openDataset(DEMO_TEST, { labels: model.labels, seed: 0 });
  const seen = new Map<number, PixelImage>();
  for await (const batch of ds.stream(model.decodeSpec(0), { batchSize: 16 })) {
    for (const s of batch) if (s.image && s.record.label !== undefined && !seen.has(s.record.label)) seen.set(s.record.label, s.image);
    if (seen.size >= 2) break;
  }
  const [[la, a], [lb, b]] = [...seen.entries()].sort((x, y) => x[0] - y[0]);
  return { a, b, la, lb };
}

/** Independent loss: ORT on the original file with the layers as outputs; everything else by hand. */
async function independentLoss(layers: FeatureLayers) {
  const m = decodeModel(readFileSync(DEMO_MODEL), DEMO_MODEL);
  const names = [...new Set([...layers.style.map((l) => l.name), layers.content.name])];
  m.graph!.output = names.map((name) => ({ name }));
  const session = await ort.InferenceSession.create(encodeModel(m), { executionProviders: ['cpu'] });
  const feats = async (img: PixelImage): Promise<Record<string, Float32Array>> => {
    // The demo model's preprocessing (its metadata): (x − 0.5) / 0.5 per channel.
    const x = Float32Array.from(img.data, (v) => (v - 0.5) / 0.5);
    const out = await session.run({ image: new ort.Tensor('float32', x, [1, img.channels, img.height, img.width]) });
    return Object.fromEntries(names.map((n) => [n, out[n].data as Float32Array]));
  };
  const gram = (f: Float32Array, C: number, M: number): Float64Array => {
    const g = new Float64Array(C * C);
    for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) {
      let s = 0;
      for (let k = 0; k < M; k++) s += f[i * M + k] * f[j * M + k];
      g[i * C + j] = s / M;
    }
    return g;
  };
  const sq = (a: ArrayLike<number>, b?: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += (a[i] - (b ? b[i] : 0)) ** 2;
    return s;
  };
  /** E_style, E_content and the weighted loss of x against B's Grams and A's content features. */
  return async (x: PixelImage, a: PixelImage, b: PixelImage, w: { style: number; content: number }) => {
    const [fx, fa, fb] = [await feats(x), await feats(a), await feats(b)];
    let style = 0;
    for (const l of layers.style) {
      const M = l.height * l.width;
      const gx = gram(fx[l.name], l.channels, M);
      const gb = gram(fb[l.name], l.channels, M);
      style += sq(gx, gb) / sq(gb);
    }
    style /= layers.style.length;
    const c = layers.content.name;
    const content = sq(fx[c], fa[c]) / sq(fa[c]);
    return { style, content, loss: w.style * style + w.content * content };
  };
}

test('style-transfer loss and gradient on the demo model equal an independent computation and finite differences', async () => {
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const sl = await buildStyleLoss(model);
  try {
    // The demo CNN: four Conv+Relu blocks (32², 16², 8², 4²). By scale (down to 1/16 of the side for
    // style, 1/8 for content): style at all four, content at the 4×4 block, its only conv.
    assert.deepEqual(sl.layers.candidates.map((l) => `${l.op} ${l.channels}×${l.height}×${l.width}`), ['Conv+Relu 16×32×32', 'Conv+Relu 32×16×16', 'Conv+Relu 32×8×8', 'Conv+Relu 64×4×4']);
    assert.deepEqual(sl.layers.style, sl.layers.candidates);
    assert.equal(sl.layers.content, sl.layers.candidates[3]);
    const { a, b } = await demoPair(model);
    const ref = await independentLoss(sl.layers);
    // A point away from both images: a blend with seeded noise.
    const rng = derivedRng(7, 'test');
    const x: PixelImage = { ...a, data: Float32Array.from(a.data, (v, i) => 0.5 * v + 0.3 * b.data[i] + 0.2 * rng()) };
    const w = { style: 10, content: 1 };
    const targetsA = await sl.features(toBatch([a]));
    const targetsB = await sl.features(toBatch([b]));
    const r = await sl.lossAndGrad(toBatch([x]), targetsB, targetsA, w);
    const want = await ref(x, a, b, w);
    const rel = (p: number, q: number) => Math.abs(p - q) / Math.max(1e-12, Math.abs(q));
    assert.ok(rel(r.style[0], want.style) < 1e-4, `E_style ${r.style[0]} vs ${want.style}`);
    assert.ok(rel(r.content[0], want.content) < 1e-4, `E_content ${r.content[0]} vs ${want.content}`);
    assert.ok(rel(r.loss[0], want.loss) < 1e-4, `loss ${r.loss[0]} vs ${want.loss}`);
    // The loss of A against its own content features is 0; of B against its own Grams too.
    const self = await sl.lossAndGrad(toBatch([b]), targetsB, targetsB, w);
    assert.ok(self.loss[0] < 1e-10, `B against itself: ${self.loss[0]}`);

    // Directional central differences of the independent loss, along seeded random directions.
    const h = 1e-3;
    for (let k = 0; k < 3; k++) {
      const dr = derivedRng(11, 'dir', String(k));
      const dir = Float32Array.from(x.data, () => dr() - 0.5);
      const norm = Math.sqrt(dir.reduce((s, v) => s + v * v, 0));
      for (let i = 0; i < dir.length; i++) dir[i] /= norm;
      const plus = await ref({ ...x, data: Float32Array.from(x.data, (v, i) => v + h * dir[i]) }, a, b, w);
      const minus = await ref({ ...x, data: Float32Array.from(x.data, (v, i) => v - h * dir[i]) }, a, b, w);
      const fd = (plus.loss - minus.loss) / (2 * h);
      let analytic = 0;
      for (let i = 0; i < dir.length; i++) analytic += r.grad[i] * dir[i];
      assert.ok(Math.abs(analytic - fd) <= 0.02 * Math.abs(fd) + 1e-4, `direction ${k}: analytic ${analytic} vs finite difference ${fd}`);
    }
  } finally {
    await sl.dispose();
    await model.dispose();
  }
});

test('total variation: value and gradient against finite differences', () => {
  const rng = derivedRng(3, 'tv');
  const [n, C, H, W] = [2, 3, 4, 5];
  const x = Float32Array.from({ length: n * C * H * W }, () => rng());
  const tvOf = (v: Float32Array) => addTotalVariation(v, new Float32Array(v.length), n, C, H, W, 2);
  // Hand-worked: one 1×2 channel [0, 1]: one pair, (1−0)² / 2 pixels × w.
  assert.deepEqual(Array.from(addTotalVariation(Float32Array.of(0, 1), new Float32Array(2), 1, 1, 1, 2, 3)), [1.5]);
  const grad = new Float32Array(x.length);
  addTotalVariation(x, grad, n, C, H, W, 2);
  for (const i of [0, 7, 33, 59, 61, 119]) {
    const h = 1e-3;
    const p = x.slice();
    p[i] += h;
    const m = x.slice();
    m[i] -= h;
    const img = Math.floor(i / (C * H * W));
    const fd = (tvOf(p)[img] - tvOf(m)[img]) / (2 * h);
    assert.ok(Math.abs(fd - grad[i]) < 1e-3, `pixel ${i}: ${grad[i]} vs ${fd}`);
  }
});

test('optimisation: the Gram statistics move to the texture image, deterministically for a seed', async () => {
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const sl = await buildStyleLoss(model);
  try {
    const { a, b } = await demoPair(model);
    const opts = { steps: 120 };
    const rngs = () => [derivedRng(5, 'pair', '0')];
    const r = await styleTransfer(sl, [a], [b], rngs(), opts);
    assert.ok(r.styleEnd[0] < 0.25 * r.styleStart[0], `E_style ${r.styleStart[0]} → ${r.styleEnd[0]}`);
    assert.ok(r.contentEnd[0] < r.contentStart[0], `E_content ${r.contentStart[0]} → ${r.contentEnd[0]} (noise start)`);
    // The stimulus is nearer B's texture statistics than A itself is.
    const tb = await sl.features(toBatch([b]));
    const ta = await sl.features(toBatch([a]));
    const ofA = await sl.lossAndGrad(toBatch([a]), tb, ta, { style: 1, content: 0 });
    assert.ok(r.styleEnd[0] < 0.5 * ofA.style[0], `stimulus ${r.styleEnd[0]} vs A ${ofA.style[0]}`);
    for (const v of r.images[0].data) assert.ok(v >= 0 && v <= 1);
    const again = await styleTransfer(sl, [a], [b], rngs(), opts);
    assert.deepEqual(again.images[0].data, r.images[0].data);
    const other = await styleTransfer(sl, [a], [b], [derivedRng(6, 'pair', '0')], opts);
    assert.notDeepEqual(other.images[0].data, r.images[0].data);
    // A batch of two makes the same stimuli as one at a time.
    const both = await styleTransfer(sl, [a, b], [b, a], [...rngs(), derivedRng(5, 'pair', '1')], opts);
    assert.deepEqual(both.images[0].data, r.images[0].data);
  } finally {
    await sl.dispose();
    await model.dispose();
  }
});

test('probe, generator "style-transfer": demo stimuli labelled by their sources, the losses reported, the same seed the same answers', async () => {
  ensureDemoData();
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  try {
    const dataset = await openDataset(DEMO_TEST, { labels: model.labels, limit: 40, seed: 1 });
    const steps: string[] = [];
    const run = async () =>
      audit(model, dataset, {
        probes: [cueConflictProbe({ generator: 'style-transfer', pairs: 24, steps: 150, controls: false }) as Probe<object>],
        seed: 2,
        onProgress: (p) => p.step && steps.push(p.step),
      });
    const report = await run();
    const p = report.probes['cue-conflict'];
    assert.equal(p.status, 'ok', p.reason);
    const m = p.metrics as any;
    console.log(`demo, style transfer: shape bias ${m.shapeBias} (${m.shape} shape vs ${m.texture} texture of ${m.conflicts}); ${JSON.stringify(m.stimuli.styleTransfer.meanStyleLoss)}`);
    assert.equal(m.stimuli.kind, 'generated');
    assert.match(m.stimuli.generator, /style transfer/);
    assert.equal(m.conflicts, 24);
    assert.deepEqual(Object.keys(m.byShape), ['circle', 'cross', 'square', 'triangle']);
    for (const v of Object.values(m.byShape) as any[]) assert.equal(v.conflicts, 6);
    const st = m.stimuli.styleTransfer;
    assert.equal(st.layers.style.length, 4);
    assert.ok(st.meanStyleLoss.end < 0.3 * st.meanStyleLoss.start, JSON.stringify(st));
    assert.equal(p.params.generator, 'style-transfer');
    assert.equal(p.params.steps, 150);
    // Gallery entries: shape from A's class, texture from B's class, answered by texture.
    const byId = new Map(dataset.records.map((r) => [r.id, model.labels!.names[r.label!]]));
    for (const g of m.gallery) {
      const [aId, bId] = g.id.split(' + ');
      assert.equal(g.shape, byId.get(aId));
      assert.equal(g.texture, byId.get(bId));
      assert.equal(g.answer, g.texture);
    }
    assert.ok(steps.some((s) => /^style transfer \d+\/24 stimuli, step \d+\/150$/.test(s)), steps.slice(0, 3).join('; '));
    const again = (await run()).probes['cue-conflict'].metrics as any;
    assert.deepEqual([again.shape, again.texture, again.other], [m.shape, m.texture, m.other]);
  } finally {
    await model.dispose();
  }
});

test('probe, generator "style-transfer" on a model without convolutions: an error finding that says why; bad parameters are refused', async () => {
  const { spec } = tinyClassifier();
  const model = await loadModel(writeModel(spec, 'mlp.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    const img = (v: number): PixelImage => ({ channels: 1, height: 4, width: 4, data: new Float32Array(16).fill(v) });
    const dataset = fakeDataset([0, 1, 2, 0, 1, 2].map((label, i) => ({ id: `i${i}`, label, image: img(i / 6) })));
    const report = await audit(model, dataset, { probes: [cueConflictProbe({ generator: 'style-transfer', controls: false }) as Probe<object>] });
    const f = report.findings.find((x) => x.rule === 'cue-conflict/generator-unsupported');
    assert.ok(f, JSON.stringify(report.findings));
    assert.equal(f.severity, 'error');
    assert.match(f.message, /style transfer is not possible.*no convolution output/s);
    assert.ok(report.rules['cue-conflict/generator-unsupported']);
  } finally {
    await model.dispose();
  }
  assert.throws(() => cueConflictProbe({ generator: 'vgg' }), /generator must be "quilt" or "style-transfer"/);
  assert.throws(() => cueConflictProbe({ generator: 'style-transfer', init: 'zeros' }), /init must be "noise" or "content"/);
  assert.throws(() => cueConflictProbe({ generator: 'style-transfer', steps: 2.5 }), /steps must be an integer/);
  assert.deepEqual(cueConflictProbe({ generator: 'style-transfer', styleLayers: 'a, b' }).params.styleLayers, ['a', 'b']);
});

test("layers by scale: on VGG-19's layout the choice is Gatys et al.'s (conv1_1 … conv5_1, conv4_2); on MobileNetV2's, the same rule", () => {
  const layer = (name: string, channels: number, side: number) => ({ name, op: 'Conv+Relu', channels, height: side, width: side });
  const vgg = [
    ...[1, 2].map((i) => layer(`conv1_${i}`, 64, 224)),
    ...[1, 2].map((i) => layer(`conv2_${i}`, 128, 112)),
    ...[1, 2, 3, 4].map((i) => layer(`conv3_${i}`, 256, 56)),
    ...[1, 2, 3, 4].map((i) => layer(`conv4_${i}`, 512, 28)),
    ...[1, 2, 3, 4].map((i) => layer(`conv5_${i}`, 512, 14)),
  ];
  const v = byScale(vgg, 224);
  assert.deepEqual(v.style.map((l) => l.name), ['conv1_1', 'conv2_1', 'conv3_1', 'conv4_1', 'conv5_1']);
  assert.equal(v.content.name, 'conv4_2');
  // MobileNetV2 (stride-2 stem): 112, 56, 28, 14 and 7; 7 is below 1/16 of 224.
  const mobile = [layer('a', 32, 112), layer('b', 16, 112), layer('c', 96, 56), layer('d', 144, 28), layer('e', 32, 28), layer('f', 192, 14), layer('g', 160, 7)];
  const m = byScale(mobile, 224);
  assert.deepEqual(m.style.map((l) => l.name), ['a', 'c', 'd', 'f']);
  assert.equal(m.content.name, 'e');
  // Nothing at 1/8: the coarsest style scale gives the content layer.
  const shallow = byScale([layer('x', 8, 32), layer('y', 8, 16)], 32);
  assert.deepEqual([shallow.style.map((l) => l.name), shallow.content.name], [['x', 'y'], 'y']);
});

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const noFixtures = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

test('int8 MobileNetV2 (fixture): style transfer runs through the float shadow and lowers the style loss', { skip: noFixtures }, async () => {
  const model = await loadModel(join(FIXTURES, 'models/imagenet_mobilenetv2-12-int8.onnx'), { device: 'cpu', preprocess: 'imagenet' });
  const sl = await buildStyleLoss(model);
  try {
    assert.ok(sl.coverage.shadow);
    assert.deepEqual(sl.layers.style.map((l) => l.height), [112, 56, 28, 14]);
    assert.equal(sl.layers.content.height, 28);
    const ds = await openDataset(join(FIXTURES, 'imagenet_samples/labels.csv'), { labels: model.labels, limit: 2, seed: 0 });
    const imgs: PixelImage[] = [];
    for await (const batch of ds.stream(model.decodeSpec(0), { batchSize: 2 })) for (const s of batch) if (s.image) imgs.push(s.image);
    const r = await styleTransfer(sl, [imgs[0]], [imgs[1]], [derivedRng(1, 'mobilenet')], { steps: 15 });
    console.log(`mobilenet int8, 15 steps: E_style ${r.styleStart[0]} → ${r.styleEnd[0]}, E_content ${r.contentStart[0]} → ${r.contentEnd[0]}`);
    assert.ok(r.styleEnd[0] < 0.5 * r.styleStart[0], `${r.styleStart[0]} → ${r.styleEnd[0]}`);
  } finally {
    await sl.dispose();
    await model.dispose();
  }
});

test('probe, generator "style-transfer": cancelling during the optimisation stops it and says so', async () => {
  ensureDemoData();
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  try {
    const dataset = await openDataset(DEMO_TEST, { labels: model.labels, limit: 40, seed: 1 });
    const controller = new AbortController();
    let steps = 0;
    const report = await audit(model, dataset, {
      probes: [cueConflictProbe({ generator: 'style-transfer', pairs: 24, steps: 100000, controls: false }) as Probe<object>],
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step && ++steps === 2) controller.abort();
      },
    });
    const m = report.probes['cue-conflict'].metrics as any;
    assert.match(m.stimuli.error, /cancelled/);
    assert.equal(m.conflicts, 0);
    assert.ok(steps < 10, `${steps} progress steps after the abort`);
  } finally {
    await model.dispose();
  }
});

test('a noise start with every feature dead (zero gradient) restarts from the shape image, and says so', async () => {
  // 1×1 Conv (weight 1, bias −0.65) + Relu: alive only where a pixel exceeds 0.65, so the
  // [0.4, 0.6] noise start has no live feature while the shape image's bright square has.
  const spec = {
    inputs: [{ name: 'x', shape: ['N', 1, 8, 8] as (string | number)[] }],
    outputs: [{ name: 'y', shape: ['N', 2] as (string | number)[] }],
    initializers: [tensor('cw', [1, 1, 1, 1], [1]), tensor('cb', [1], [-0.65]), tensor('W', [64, 2], seeded(128, 3)), tensor('b', [2], [0, 0])],
    nodes: [
      node('Conv', ['x', 'cw', 'cb'], ['c'], { kernel_shape: [1, 1] }),
      node('Relu', ['c'], ['r']),
      node('Flatten', ['r'], ['f'], { axis: 1 }),
      node('Gemm', ['f', 'W', 'b'], ['y']),
    ],
  };
  const model = await loadModel(writeModel(spec, 'dead.onnx'), { device: 'cpu', preprocess: 'unit' });
  const sl = await buildStyleLoss(model);
  try {
    const square = (lo: number, hi: number): PixelImage => {
      const d = new Float32Array(64);
      for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) d[y * 8 + x] = y >= lo && y < hi && x >= lo && x < hi ? 1 : 0;
      return { channels: 1, height: 8, width: 8, data: d };
    };
    const r = await styleTransfer(sl, [square(2, 6)], [square(1, 4)], [derivedRng(1, 'dead')], { steps: 30 });
    assert.deepEqual(r.dead, [true]);
    assert.equal(r.contentStart[0], 0, 'restarted from A: its content loss starts at 0');
    assert.ok(r.styleEnd[0] < r.styleStart[0], `${r.styleStart[0]} → ${r.styleEnd[0]}`);
  } finally {
    await sl.dispose();
    await model.dispose();
  }
});

test('probe, generator "style-transfer": a second audit reads the stimuli back from the cache, with the same answers', async () => {
  ensureDemoData();
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const cacheDir = mkdtempSync(join(tmpdir(), 'skeptic-st-cache-'));
  try {
    const dataset = await openDataset(DEMO_TEST, { labels: model.labels, limit: 40, seed: 1 });
    const run = async () => {
      const steps: string[] = [];
      const report = await audit(model, dataset, {
        probes: [cueConflictProbe({ generator: 'style-transfer', pairs: 16, steps: 40, controls: false }) as Probe<object>],
        seed: 4,
        cacheDir,
        onProgress: (p) => p.step && steps.push(p.step),
      });
      return { m: report.probes['cue-conflict'].metrics as any, steps };
    };
    const first = await run();
    const second = await run();
    assert.equal(first.m.stimuli.styleTransfer.cached, 0);
    assert.ok(first.steps.length > 0);
    assert.equal(second.m.stimuli.styleTransfer.cached, 16);
    assert.deepEqual(second.steps, [], 'nothing optimised the second time');
    assert.deepEqual([second.m.shape, second.m.texture, second.m.other], [first.m.shape, first.m.texture, first.m.other]);
    assert.deepEqual(second.m.gallery, first.m.gallery);
    assert.deepEqual(second.m.stimuli.styleTransfer.meanStyleLoss, first.m.stimuli.styleTransfer.meanStyleLoss);
    // Other parameters are another cache entry.
    const other = await audit(model, dataset, { probes: [cueConflictProbe({ generator: 'style-transfer', pairs: 16, steps: 41, controls: false }) as Probe<object>], seed: 4, cacheDir });
    assert.equal((other.probes['cue-conflict'].metrics as any).stimuli.styleTransfer.cached, 0);
  } finally {
    await model.dispose();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
