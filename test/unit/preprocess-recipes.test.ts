/**
 * The recipe that travels with a model: Hugging Face preprocessor_config.json (resample as
 * Pillow's integer codes, crop_pct), timm's config.json (pretrained_cfg), the `interpolation`
 * key, and which file gave each value (Preprocessing.origins, shown by `skeptic inspect`).
 * Plus the resampler on cases computed by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../server/engine/model';
import { describeModel } from '../../server/engine/model/describe';
import { axisCoeffs, resizeU8 } from '../../server/engine/image/resample';
import { SkepticInputError } from '../../server/engine/errors';
import { tinyClassifier, tmpDir, writeModel } from './helpers/onnx-builder';

function modelIn(dir: string, size = 8): string {
  return writeModel(tinyClassifier({ inputShape: ['N', 3, size, size] }).spec, 'm.onnx', dir);
}

async function load(file: string, opts = {}) {
  const m = await loadModel(file, { device: 'cpu', ...opts });
  await m.dispose();
  return m;
}

test('bilinear 4 → 2 by hand: taps, weights and the fixed-point result', () => {
  // Output 0: centre 1, support 2 (shrinking by 2 stretches the triangle), taps 0..2 with
  // weights 0.75, 0.75, 0.25, normalised to 3/7, 3/7, 1/7 (output 1 mirrors it).
  const c = axisCoeffs('bilinear', 4, 2);
  assert.deepEqual([Array.from(c.first), Array.from(c.count)], [[0, 1], [3, 3]]);
  const q = (w: number) => Math.round(w * 2 ** 22);
  assert.deepEqual(Array.from(c.k.subarray(0, 3)), [q(3 / 7), q(3 / 7), q(1 / 7)]);
  // [0, 70, 140, 210] → 70·3/7 + 140/7 = 50 and 70/7 + 140·3/7 + 210·3/7 = 160.
  const out = resizeU8({ data: Uint8Array.from([0, 70, 140, 210]), width: 4, height: 1, channels: 1 }, 2, 1, 'bilinear');
  assert.deepEqual(Array.from(out.data), [50, 160]);
  // Box 4 → 2 averages pairs; nearest 4 → 2 takes pixels 1 and 3 (centres 1.0 and 3.0).
  assert.deepEqual(Array.from(resizeU8({ data: Uint8Array.from([0, 70, 140, 210]), width: 4, height: 1, channels: 1 }, 2, 1, 'box').data), [35, 175]);
  assert.deepEqual(Array.from(resizeU8({ data: Uint8Array.from([0, 70, 140, 210]), width: 4, height: 1, channels: 1 }, 2, 1, 'nearest').data), [70, 210]);
  // Upscaling 2 → 4 along y (support 1, no stretch): 0.75/0.25 mixes, edges clamp.
  const up = resizeU8({ data: Uint8Array.from([0, 200]), width: 1, height: 2, channels: 1 }, 1, 4, 'bilinear');
  assert.deepEqual(Array.from(up.data), [0, 50, 150, 200]);
});

test('lanczos and bicubic overshoot is clipped to [0, 255]; a constant stays constant', () => {
  const step = Uint8Array.from([0, 0, 0, 255, 255, 255]);
  for (const f of ['lanczos', 'bicubic'] as const) {
    const out = resizeU8({ data: step, width: 6, height: 1, channels: 1 }, 17, 1, f).data;
    assert.ok(out.includes(0) && out.includes(255), f);
  }
  const flat = new Uint8Array(7 * 5 * 3).fill(123);
  for (const f of ['nearest', 'box', 'bilinear', 'hamming', 'bicubic', 'lanczos'] as const) {
    assert.ok(resizeU8({ data: flat, width: 7, height: 5, channels: 3 }, 3, 11, f).data.every((v) => v === 123), f);
  }
});

test('interpolation key: default bilinear, validated, carried into the decode spec', async () => {
  const file = modelIn(tmpDir());
  let m = await load(file, { preprocess: 'unit' });
  assert.equal(m.preprocessing.interpolation, 'bilinear');
  assert.equal(m.preprocessing.origins?.interpolation, 'default');
  m = await load(file, { preprocess: { preset: 'imagenet', interpolation: 'bicubic' } });
  assert.equal(m.decodeSpec().interpolation, 'bicubic');
  assert.equal(m.preprocessing.origins?.interpolation, '--preprocess');
  assert.equal(m.preprocessing.origins?.mean, "preset 'imagenet'");
  await assert.rejects(load(file, { preprocess: { interpolation: 'cubic' } }), /interpolation must be one of nearest, box, bilinear, hamming, bicubic, lanczos, not 'cubic'/);
});

test("resampler: torchvision's tensor path is opt-in and takes only its three filters", async () => {
  const file = modelIn(tmpDir());
  let m = await load(file, { preprocess: 'unit' });
  assert.equal(m.preprocessing.resampler, undefined); // Pillow's, the default, is not written out
  assert.equal(m.decodeSpec().resampler, undefined);
  m = await load(file, { preprocess: { preset: 'imagenet', resampler: 'tensor-antialias', interpolation: 'bicubic' } });
  assert.deepEqual([m.decodeSpec().resampler, m.decodeSpec().interpolation], ['tensor-antialias', 'bicubic']);
  assert.match(describeModel(m), /bicubic \(torchvision on tensors, antialiased\)/);
  await assert.rejects(load(file, { preprocess: { resampler: 'tensor', interpolation: 'lanczos' } }), /resampler 'tensor' \(torchvision on tensors\) takes interpolation nearest, bilinear, bicubic, not 'lanczos'/);
  await assert.rejects(load(file, { preprocess: { resampler: 'tensor-antialias', interpolation: 'nearest' } }), /antialiases only those/);
  await assert.rejects(load(file, { preprocess: { resampler: 'opencv' } }), /resampler must be one of pil, tensor, tensor-antialias/);
});

test('preprocessor_config.json: resample codes, crop_pct (ConvNeXt), and the file named for each value', async () => {
  const dir = tmpDir();
  const file = modelIn(dir, 224);
  const cfg = join(dir, 'preprocessor_config.json');
  writeFileSync(cfg, JSON.stringify({ do_resize: true, size: { shortest_edge: 224 }, crop_pct: 0.875, resample: 3, image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225], rescale_factor: 1 / 255 }));
  let m = await load(file);
  assert.equal(m.preprocessing.source, 'preprocessor_config.json');
  assert.equal(m.preprocessing.interpolation, 'bicubic');
  assert.equal(m.preprocessing.resizeShortSide, 256); // int(224 / 0.875)
  assert.equal(m.preprocessing.origins?.interpolation, `${cfg}: resample = 3`);
  assert.match(m.preprocessing.origins!.resizeShortSide, /shortest_edge = 224, crop_pct = 0\.875/);
  assert.equal(m.preprocessing.origins?.mean, `${cfg}: image_mean`);
  // Hugging Face's center_crop floors the offset; torchvision rounds it half to even.
  assert.equal(m.decodeSpec().cropRounding, 'floor');
  const text = describeModel(m);
  assert.match(text, /bicubic \(PIL\)/);
  assert.ok(text.includes(`${cfg}: resample = 3`), text);
  // Pillow's codes: 0 nearest, 1 lanczos, 2 bilinear, 4 box, 5 hamming.
  for (const [code, name] of [[0, 'nearest'], [1, 'lanczos'], [2, 'bilinear'], [4, 'box'], [5, 'hamming']] as const) {
    writeFileSync(cfg, JSON.stringify({ size: { height: 224, width: 224 }, resample: code }));
    m = await load(file);
    assert.equal(m.preprocessing.interpolation, name);
    assert.equal(m.preprocessing.resizeShortSide, undefined);
    assert.equal(m.decodeSpec().cropRounding, undefined);
  }
  writeFileSync(cfg, JSON.stringify({ size: { height: 224, width: 224 }, resample: 9 }));
  await assert.rejects(load(file), (e: unknown) => e instanceof SkepticInputError && e.file === cfg && /resample = 9 is not one of Pillow's filters/.test(e.message));
});

test("timm's config.json (pretrained_cfg): interpolation, crop_pct, mean/std, input_size", async () => {
  const dir = tmpDir();
  const file = modelIn(dir, 224);
  const cfg = join(dir, 'config.json');
  const pretrained = { input_size: [3, 224, 224], interpolation: 'bicubic', crop_pct: 0.9, crop_mode: 'center', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  writeFileSync(cfg, JSON.stringify({ architecture: 'vit_small_patch16_224', num_classes: 2, pretrained_cfg: pretrained }));
  let m = await load(file);
  assert.equal(m.preprocessing.source, 'config.json');
  assert.equal(m.preprocessing.interpolation, 'bicubic');
  assert.equal(m.preprocessing.resizeShortSide, 248); // floor(224 / 0.9)
  assert.deepEqual([m.preprocessing.scale, m.preprocessing.mean, m.preprocessing.std], [1, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]);
  assert.equal(m.preprocessing.origins?.interpolation, `${cfg}: pretrained_cfg.interpolation = bicubic`);
  assert.equal(m.preprocessing.origins?.mean, `${cfg}: pretrained_cfg.mean`);
  // crop_pct absent: timm's default 0.875; an explicit option still wins over the file.
  writeFileSync(cfg, JSON.stringify({ pretrained_cfg: { ...pretrained, crop_pct: undefined } }));
  m = await load(file);
  assert.equal(m.preprocessing.resizeShortSide, 256);
  assert.match(m.preprocessing.origins!.resizeShortSide, /timm's default 0\.875/);
  m = await load(file, { preprocess: 'imagenet' });
  assert.deepEqual([m.preprocessing.source, m.preprocessing.interpolation], ['cli', 'bilinear']);
  // A transformers model config (no pretrained_cfg) is not timm's: ignored.
  writeFileSync(cfg, JSON.stringify({ model_type: 'bert', hidden_size: 8 }));
  m = await load(file);
  assert.equal(m.preprocessing.source, 'assumed');
  writeFileSync(cfg, JSON.stringify({ pretrained_cfg: { ...pretrained, interpolation: 'spline' } }));
  await assert.rejects(load(file), (e: unknown) => e instanceof SkepticInputError && e.file === cfg && /pretrained_cfg\.interpolation = "spline"/.test(e.message));
});

test('metadata_props "skeptic.preprocessing" may name the interpolation', async () => {
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 8, 8] });
  spec.metadata = { 'skeptic.preprocessing': JSON.stringify({ preset: 'unit', interpolation: 'lanczos' }) };
  const m = await load(writeModel(spec, 'meta.onnx'));
  assert.deepEqual([m.preprocessing.source, m.preprocessing.interpolation], ['metadata', 'lanczos']);
  assert.match(m.preprocessing.origins!.interpolation, /metadata_props/);
});
