/**
 * Preprocessing: tensor values on a hand-computed case (scale, mean/std, BGR, NCHW/NHWC/flat),
 * source precedence (options > preprocessor_config.json > metadata > assumed), the HF and
 * Windows ML translations, presets and validation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, PRESETS } from '../../server/engine/model';
import { makeFiller } from '../../server/engine/model/preprocess';
import { SkepticInputError } from '../../server/engine/errors';
import { node, tinyClassifier, tmpDir, writeModel, type Dim, type ModelSpec } from './helpers/onnx-builder';

/**
 * A model whose output is its input, flattened: predict's logits are the preprocessed tensor.
 * At opset < 7 Skeptic cannot put the preprocessing in the graph and fills the tensor in JS, so
 * both paths are checked.
 */
function echo(shape: Dim[], opset = 13): ModelSpec {
  const flat = shape.length === 2;
  return {
    inputs: [{ name: 'x', shape }],
    outputs: [{ name: 'y', shape: ['N', 12] }],
    nodes: [flat ? node('Identity', ['x'], ['y']) : node('Flatten', ['x'], ['y'], { axis: 1 })],
    opset,
  };
}

// One 2×2 RGB image, planar: R, G, B.
const R = [0.0, 0.25, 0.5, 1.0];
const G = [0.1, 0.2, 0.3, 0.4];
const B = [0.9, 0.8, 0.7, 0.6];
const image = { data: Float32Array.from([...R, ...G, ...B]), n: 1, channels: 3 as const, height: 2, width: 2 };
const pre = { scale: 2, mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 2], channelOrder: 'bgr' as const };
// By hand: model channel 0 is B: (2·B − 0.1)/0.5; channel 1 is G: (2·G − 0.2)/0.25; channel 2 is R: (2·R − 0.3)/2.
const c0 = [3.4, 3.0, 2.6, 2.2];
const c1 = [0, 0.8, 1.6, 2.4];
const c2 = [-0.15, 0.1, 0.35, 0.85];

const near = (a: ArrayLike<number>, b: number[], tol = 1e-5) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};

const CASES = [
  ['NCHW', ['N', 3, 2, 2], [...c0, ...c1, ...c2]],
  ['NHWC', ['N', 2, 2, 3], [0, 1, 2, 3].flatMap((i) => [c0[i], c1[i], c2[i]])],
  ['flat', ['N', 12], [...c0, ...c1, ...c2]],
] as const;

for (const opset of [13, 6]) {
  for (const [layout, shape, expected] of CASES) {
    test(`tensor values by hand: scale 2, mean/std, bgr, ${layout} (${opset < 7 ? 'JS fill' : 'in-graph'}, opset ${opset})`, async () => {
      const m = await loadModel(writeModel(echo([...shape], opset)), { device: 'cpu', preprocess: pre, outputKind: 'logits', batchSize: 2 });
      assert.equal(m.info.layout, layout);
      // three copies of the image: runs of 2 + 1
      const three = { ...image, n: 3, data: Float32Array.from([...image.data, ...image.data, ...image.data]) };
      const p = await m.predict(three);
      near(p.logits, [...expected, ...expected, ...expected]);
      await m.dispose();
    });
  }
}

test('makeFiller (the JS path) by hand, NHWC bgr, from an offset', () => {
  const plan = { name: 'x', type: 'float32', dims: ['N', 2, 2, 3], layout: 'NHWC', channels: 3, height: 2, width: 2, batchAxis: 0, declaredBatch: 'N', sizeAssumed: false } as const;
  const fill = makeFiller({ ...pre, source: 'cli' }, { ...plan, dims: [...plan.dims] });
  const src = Float32Array.from([...new Array(12).fill(0), ...image.data]);
  const dst = new Float32Array(12);
  fill(src, 1, 1, dst);
  near(dst, [...CASES[1][2]]);
});

test('grayscale: mean/std of length 1; a 3-value preset is refused, naming the option', async () => {
  const { spec } = tinyClassifier();
  const file = writeModel(spec);
  const m = await loadModel(file, { device: 'cpu', preprocess: 'mnist' });
  assert.deepEqual(m.preprocessing.mean, [0.1307]);
  assert.deepEqual(m.preprocessing.std, [0.3081]);
  await m.dispose();
  await assert.rejects(loadModel(file, { device: 'cpu', preprocess: 'imagenet' }), (e: unknown) => {
    assert.ok(e instanceof SkepticInputError);
    assert.match(e.message, /^--preprocess: mean has 3 values \(from preset 'imagenet'\); the model takes 1 channel, so give 1 value$/);
    return true;
  });
});

test('presets: imagenet resize scales with the input; RGB expands 1-value means', async () => {
  for (const [size, short] of [[224, 256], [32, 37]]) {
    const { spec } = tinyClassifier({ inputShape: ['N', 3, size, size] });
    const m = await loadModel(writeModel(spec), { device: 'cpu', preprocess: 'imagenet' });
    assert.equal(m.preprocessing.resizeShortSide, short);
    assert.equal(m.preprocessing.preset, 'imagenet');
    assert.deepEqual(m.decodeSpec(), { channels: 3, height: size, width: size, resizeShortSide: short, interpolation: 'bilinear', margin: 0 });
    await m.dispose();
  }
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 4, 4] });
  const file = writeModel(spec);
  const m = await loadModel(file, { device: 'cpu', preprocess: '{"preset":"signed","channelOrder":"bgr"}' });
  assert.deepEqual([m.preprocessing.mean, m.preprocessing.std, m.preprocessing.channelOrder], [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 'bgr']);
  assert.equal(m.decodeSpec(2).resizeShortSide, undefined);
  await m.dispose();
  const raw = await loadModel(file, { device: 'cpu', preprocess: { preset: 'raw255' } });
  assert.equal(raw.preprocessing.scale, 255);
  await raw.dispose();
  assert.deepEqual(Object.keys(PRESETS).sort(), ['imagenet', 'mnist', 'raw255', 'signed', 'unit']);
});

test('bad overrides: SkepticInputError naming the option', async () => {
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 4, 4] });
  const file = writeModel(spec);
  const cases: [Parameters<typeof loadModel>[1], RegExp][] = [
    [{ preprocess: 'imagenett' }, /^--preprocess: unknown preset 'imagenett' \(known: imagenet, unit, signed, raw255, mnist\)/],
    [{ preprocess: { mean: [0.5, 0.5] } }, /^--preprocess: mean has 2 values; the model takes 3 channels, so give 1 or 3 values/],
    [{ preprocess: { std: [1, 0, 1] } }, /std must not contain 0/],
    [{ preprocess: '{"stdev": [1]}' }, /unknown key 'stdev'/],
    [{ preprocess: '{"mean": [0.5' }, /^--preprocess: invalid JSON/],
    [{ preprocess: { preset: 'unit', scale: -1 } }, /scale must be a positive number/],
    [{ preprocess: { resizeShortSide: 2 } }, /resizeShortSide must be an integer ≥ the model's input size \(4\)/],
    [{ preprocess: { mean: [1, 2, 3, 4] }, preprocessSource: 'skeptic.json' }, /^skeptic.json "preprocess": mean has 4 values/],
  ];
  for (const [opts, re] of cases) {
    await assert.rejects(loadModel(file, { device: 'cpu', ...opts }), (e: unknown) => {
      assert.ok(e instanceof SkepticInputError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
});

const HF = {
  do_resize: true,
  size: { shortest_edge: 10 },
  do_center_crop: true,
  crop_size: { height: 8, width: 8 },
  do_rescale: true,
  rescale_factor: 0.00392156862745098,
  do_normalize: true,
  image_mean: [0.485, 0.456, 0.406],
  image_std: [0.229, 0.224, 0.225],
};

test('source precedence: options > preprocessor_config.json > metadata > assumed', async () => {
  const meta = { 'skeptic.preprocessing': JSON.stringify({ preset: 'signed' }) };
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 8, 8], metadata: meta });
  const withHf = tmpDir();
  writeFileSync(join(withHf, 'preprocessor_config.json'), JSON.stringify(HF));
  const a = writeModel(spec, 'm.onnx', withHf);
  const b = writeModel(spec, 'm.onnx');
  const bare = writeModel(tinyClassifier({ inputShape: ['N', 3, 8, 8] }).spec);

  const load = async (file: string, opts = {}) => {
    const m = await loadModel(file, { device: 'cpu', ...opts });
    await m.dispose();
    return m;
  };
  let m = await load(a, { preprocess: 'raw255' });
  assert.deepEqual([m.preprocessing.source, m.preprocessing.scale], ['cli', 255]);
  m = await load(a, { preprocess: { preset: 'mnist' }, preprocessSource: 'skeptic.json' });
  assert.deepEqual([m.preprocessing.source, m.preprocessing.mean[0]], ['skeptic.json', 0.1307]);
  m = await load(a);
  assert.equal(m.preprocessing.source, 'preprocessor_config.json');
  assert.equal(m.preprocessing.resizeShortSide, 10);
  assert.ok(Math.abs(m.preprocessing.scale - 1) < 1e-9);
  assert.deepEqual(m.preprocessing.mean, HF.image_mean);
  assert.deepEqual(m.preprocessing.std, HF.image_std);
  assert.ok(!m.warnings.some((w) => /preprocessing not specified/.test(w)));
  m = await load(b);
  assert.deepEqual([m.preprocessing.source, m.preprocessing.preset, m.preprocessing.mean], ['metadata', 'signed', [0.5, 0.5, 0.5]]);
  m = await load(bare);
  assert.deepEqual([m.preprocessing.source, m.preprocessing.preset], ['assumed', 'unit']);
  assert.ok(m.warnings.some((w) => /preprocessing not specified: assuming pixels in \[0,1\].*--preprocess/.test(w)));
});

test('preprocessor_config.json: size {height,width}, no rescale, crop mismatch warning, bad JSON', async () => {
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 8, 8] });
  const dir = tmpDir();
  const file = writeModel(spec, 'm.onnx', dir);
  const cfg = join(dir, 'preprocessor_config.json');
  writeFileSync(cfg, JSON.stringify({ size: { height: 16, width: 16 }, do_center_crop: true, crop_size: { height: 224, width: 224 }, do_rescale: false, do_normalize: false }));
  const m = await loadModel(file, { device: 'cpu' });
  assert.deepEqual([m.preprocessing.scale, m.preprocessing.mean, m.preprocessing.resizeShortSide], [255, [0, 0, 0], undefined]);
  assert.ok(m.warnings.some((w) => w.includes('says 224×224 but the model\'s input is 8×8')), m.warnings.join('\n'));
  await m.dispose();
  writeFileSync(cfg, JSON.stringify({ size: { height: 10, width: 10 }, crop_size: { height: 8, width: 8 }, do_center_crop: true }));
  const m2 = await loadModel(file, { device: 'cpu' });
  assert.equal(m2.preprocessing.resizeShortSide, 10);
  await m2.dispose();
  writeFileSync(cfg, '{ "size": ');
  await assert.rejects(loadModel(file, { device: 'cpu' }), (e: unknown) => {
    assert.ok(e instanceof SkepticInputError);
    assert.equal(e.file, cfg);
    assert.match(e.message, /preprocessor_config\.json: invalid JSON/);
    return true;
  });
});

test('symbolic H/W take their size from preprocessor_config.json crop_size', async () => {
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 'h', 'w'] });
  // Flatten+Gemm needs a fixed D, so use a global pooling head instead.
  spec.nodes = [node('GlobalAveragePool', ['x'], ['g']), node('Flatten', ['g'], ['y'], { axis: 1 })];
  spec.initializers = [];
  spec.outputs = [{ name: 'y', shape: ['N', 3] }];
  const dir = tmpDir();
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ ...HF, crop_size: { height: 6, width: 6 } }));
  const m = await loadModel(writeModel(spec, 'm.onnx', dir), { device: 'cpu' });
  assert.deepEqual([m.info.height, m.info.width, m.info.numClasses], [6, 6, 3]);
  assert.ok(m.warnings.some((w) => /symbolic height and width; feeding 6×6/.test(w)));
  await m.dispose();
  const m2 = await loadModel(writeModel(spec), { device: 'cpu' });
  assert.deepEqual([m2.info.height, m2.info.width], [224, 224]);
  await m2.dispose();
});

test('Windows ML metadata keys: Normalized_1_1 + Bgr8; NominalRange_0_255', async () => {
  const mk = (metadata: Record<string, string>) => writeModel(tinyClassifier({ inputShape: ['N', 3, 4, 4], metadata }).spec);
  const m = await loadModel(mk({ 'Image.NominalPixelRange': 'Normalized_1_1', 'Image.BitmapPixelFormat': 'Bgr8' }), { device: 'cpu' });
  assert.deepEqual([m.preprocessing.source, m.preprocessing.preset, m.preprocessing.channelOrder, m.preprocessing.mean[0]], ['metadata', 'signed', 'bgr', 0.5]);
  await m.dispose();
  const m2 = await loadModel(mk({ 'Image.NominalPixelRange': 'NominalRange_0_255' }), { device: 'cpu' });
  assert.deepEqual([m2.preprocessing.scale, m2.preprocessing.channelOrder], [255, 'rgb']);
  await m2.dispose();
  await assert.rejects(loadModel(mk({ 'skeptic.preprocessing': '{"preset": "nope"}' }), { device: 'cpu' }), /metadata_props: unknown preset 'nope'/);
});
