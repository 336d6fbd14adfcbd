/**
 * The architecture-prior probe (P6, Ulyanov et al. CVPR 2018): on mnist-8 its three accuracies
 * (trained model, random-init features, raw pixels) per probe classifier are in the report; on a
 * small built model whose data a colour cue solves, the "trivial cues" finding; records are small
 * and the cache gives the same summary.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { loadModel } from '../../server/engine/model';
import { priorProbe } from '../../server/engine/probes/prior';
import type { Probe } from '../../server/engine/probes/probe';
import type { PixelImage } from '../../server/engine/types';
import { fakeDataset } from './helpers/fake';
import { node, tensor, writeModel } from './helpers/onnx-builder';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

test('mnist-8, 300 images: trained, random-init and pixel accuracies per probe classifier', { skip }, async () => {
  const model = await loadModel(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    const dataset = await openDataset(join(FIXTURES, 'mnist'), { limit: 300, seed: 0 });
    const report = await audit(model, dataset, { probes: [priorProbe() as Probe<object>], seed: 0 });
    const p = report.probes.prior;
    assert.equal(p.status, 'ok', p.reason);
    const m = p.metrics as any;
    console.log(`mnist-8 prior: ${p.headline}`);
    assert.equal(m.labelled, 300);
    assert.equal(m.featureTensor, 'Pooling160_Output_0_reshape0');
    assert.match(m.featureTensorFound, /MatMul 'Times212'/);
    assert.deepEqual([m.reinit.weights, m.reinit.biases], [3, 3]);
    assert.equal(m.featureDims.random, 256);
    for (const c of ['ncm', 'logreg']) {
      const r = m.probes[c];
      assert.ok(r.trainedModel >= 0.95, `${c} trained model ${r.trainedModel}`);
      for (const k of ['trainedFeatures', 'randomFeatures', 'pixels']) assert.ok(r[k] > 0.5 && r[k] <= 1, `${c} ${k} ${r[k]}`);
      assert.ok(r.trainedFeatures > r.pixels, `${c}: trained features beat pixels`);
      assert.ok(Math.abs(r.randomShare - r.randomFeatures / r.trainedModel) < 1e-5, `${c} share ${r.randomShare}`);
    }
    assert.match(p.headline!, /trained model 9\d\.\d%; logistic probe: trained features .*random-init .*pixels/);
    assert.deepEqual(p.records, [], 'features stay out of the report');
  } finally {
    await model.dispose();
  }
});

/** 8×8 RGB: noise plus a tint that decides the class (red: 0, green: 1, blue: 2). */
function tinted(cls: number, seed: number): PixelImage {
  const d = new Float32Array(3 * 64);
  let a = seed;
  for (let i = 0; i < d.length; i++) {
    a = (a * 1103515245 + 12345) >>> 0;
    d[i] = 0.3 * ((a >>> 8) / 16777216) + (Math.floor(i / 64) === cls ? 0.5 : 0);
  }
  return { data: d, channels: 3, height: 8, width: 8 };
}

test('a colour-solvable dataset: pixels and the untrained architecture match the trained model (finding); cache reuse', async () => {
  // Conv (3→8) → Relu → GlobalAveragePool → Flatten → Gemm: the trained weights read the tint.
  const convW = new Float32Array(8 * 3 * 9);
  for (let o = 0; o < 3; o++) convW[o * 27 + o * 9 + 4] = 1; // channel o passes colour o through
  const fc = new Float32Array(3 * 8);
  for (let k = 0; k < 3; k++) fc[k * 8 + k] = 10;
  const file = writeModel({
    inputs: [{ name: 'x', shape: ['N', 3, 8, 8] }],
    outputs: [{ name: 'y', shape: ['N', 3] }],
    initializers: [tensor('convW', [8, 3, 3, 3], convW), tensor('convB', [8], new Float32Array(8)), tensor('fcW', [3, 8], fc), tensor('fcB', [3], [0, 0, 0])],
    nodes: [
      node('Conv', ['x', 'convW', 'convB'], ['c'], { pads: [1, 1, 1, 1] }),
      node('Relu', ['c'], ['r']),
      node('GlobalAveragePool', ['r'], ['g']),
      node('Flatten', ['g'], ['f'], { axis: 1 }),
      node('Gemm', ['f', 'fcW', 'fcB'], ['y'], { transB: 1 }),
    ],
  });
  const model = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
  const cache = mkdtempSync(join(tmpdir(), 'skeptic-prior-cache-'));
  try {
    const items = Array.from({ length: 60 }, (_, i) => ({ id: `img${i}.png`, label: i % 3, image: tinted(i % 3, i + 1) }));
    const dataset = fakeDataset(items);
    const first = await audit(model, dataset, { probes: [priorProbe() as Probe<object>], cacheDir: cache, seed: 1 });
    const p = first.probes.prior;
    assert.equal(p.status, 'ok', p.reason);
    const m = p.metrics as any;
    assert.equal(m.probes.ncm.trainedModel, 1);
    assert.equal(m.featureTensor, 'f');
    assert.ok(m.probes.logreg.pixels >= 0.95, `pixels ${m.probes.logreg.pixels}`);
    assert.ok(m.probes.ncm.randomFeatures >= 0.9, `random ${m.probes.ncm.randomFeatures}`);
    const rules = first.findings.filter((f) => f.probe === 'prior').map((f) => f.metrics!.features);
    assert.deepEqual(rules.sort(), ['pixels', 'random']);
    assert.match(first.findings.find((f) => f.probe === 'prior')!.message, /trivial cues/);

    const second = await audit(model, dataset, { probes: [priorProbe() as Probe<object>], cacheDir: cache, seed: 1 });
    assert.equal(second.run.cache.hits, 60);
    assert.deepEqual((second.probes.prior.metrics as any).probes, m.probes);
    assert.deepEqual((second.probes.prior.metrics as any).reinit, m.reinit, 'the notes come back without running');

    const few = await audit(model, fakeDataset(items.slice(0, 6)), { probes: [priorProbe() as Probe<object>] });
    assert.match(few.probes.prior.headline!, /not enough labelled images/);
  } finally {
    await model.dispose();
    rmSync(cache, { recursive: true, force: true });
  }
});

test('no Gemm/MatMul: the pixel baseline still, and a message naming the parameter; a named tensor works', async () => {
  const W = new Float32Array(3 * 3);
  for (let k = 0; k < 3; k++) W[k * 3 + k] = 1;
  const file = writeModel({
    inputs: [{ name: 'x', shape: ['N', 3, 8, 8] }],
    outputs: [{ name: 'y', shape: ['N', 3] }],
    initializers: [tensor('W', [3, 3, 1, 1], W)],
    nodes: [node('Conv', ['x', 'W'], ['c']), node('GlobalAveragePool', ['c'], ['g']), node('Flatten', ['g'], ['y'], { axis: 1 })],
  });
  const model = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
  try {
    const dataset = fakeDataset(Array.from({ length: 30 }, (_, i) => ({ id: `i${i}.png`, label: i % 3, image: tinted(i % 3, i + 7) })));
    const r = await audit(model, dataset, { probes: [priorProbe() as Probe<object>] });
    const m = r.probes.prior.metrics as any;
    assert.equal(r.probes.prior.status, 'ok', r.probes.prior.reason);
    assert.match(m.randomUnavailable, /features' parameter/);
    assert.equal(m.probes.logreg.randomFeatures, null);
    assert.ok(m.probes.logreg.pixels > 0.9);
    const named = await audit(model, dataset, { probes: [priorProbe({ features: 'g' }) as Probe<object>] });
    const nm = named.probes.prior.metrics as any;
    assert.equal(nm.featureTensor, 'g');
    assert.equal(nm.featureDims.random, 3);
    assert.ok(nm.probes.ncm.trainedFeatures > 0.9);
  } finally {
    await model.dispose();
  }
});

test('parameters are checked', () => {
  assert.throws(() => priorProbe({ folds: 1 }), /prior\.folds/);
  assert.throws(() => priorProbe({ dims: 10.5 }), /integers/);
  assert.deepEqual(priorProbe({ features: 'h', margin: 0.1 }).cacheParams, { features: 'h', dims: 256, init: 'he-normal-fan-in/v1', record: 2 });
});
