/**
 * On the real public fixtures (../shared/fixtures), the clean accuracy Skeptic reports equals the
 * figure in PROVENANCE.md within half a point, for every model with a documented preprocessing.
 * That checks decoding, resizing/cropping, normalisation, layout, labels and output handling
 * end to end against numbers measured independently.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import '../../server/engine/fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { audit } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { loadModel } from '../../server/engine/model';
import { createProbes } from '../../server/engine/probes';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const have = existsSync(FIXTURES);
const skip = have ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

const CIFAR = { scale: 1, mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] };

const CASES = [
  { model: 'mnist-8_onnxzoo_cntk.onnx', data: 'mnist', preprocess: 'unit', accuracy: 0.9834 },
  { model: 'mnist_convnet_maxpool_verivital.onnx', data: 'mnist', preprocess: 'unit', accuracy: 0.97 },
  { model: 'cifar10_resnet2b_advtrained.onnx', data: 'cifar10_test_first100/labels.csv', preprocess: CIFAR, labels: 'labels/cifar10_classes.txt', accuracy: 0.77 },
  { model: 'cifar10_marabou_small_nhwc.onnx', data: 'cifar10_test_first100/labels.csv', preprocess: 'unit', labels: 'labels/cifar10_classes.txt', accuracy: 0.61 },
  // PROVENANCE.md gives 75% / 93% for the Zoo convention (short side 256, centre crop 224). Two
  // independent pipelines following that convention get more: sharp resize + crop with ONNX
  // Runtime directly, 81% / 96%; Skeptic (torchvision's exact geometry), 84% / 97%. Resizing
  // straight to 224×224 gives 74% / 92%, so the documented figure most likely came from a cruder
  // resize. The check here: at least the documented figures, and within 3 images (of 100) of an
  // independent sharp + ONNX Runtime pipeline computed below, whose resampling differs slightly.
  { model: 'imagenet_mobilenetv2-12-int8.onnx', data: 'imagenet_samples/labels.csv', preprocess: 'imagenet', labels: 'labels/imagenet_1k_wnids_names.txt', accuracy: 0.75, top5: 0.93, atLeast: true },
];

for (const c of CASES) {
  test(`${c.model} on ${c.data}: clean accuracy as in PROVENANCE.md`, { skip }, async () => {
    const model = await loadModel(join(FIXTURES, 'models', c.model), {
      device: 'cpu',
      preprocess: c.preprocess,
      labels: c.labels ? join(FIXTURES, c.labels) : undefined,
    });
    try {
      const dataset = await openDataset(join(FIXTURES, c.data), { labels: model.labels });
      const report = await audit(model, dataset, { probes: createProbes(['clean']), batchSize: 64 });
      const m = report.probes.clean.metrics as { accuracy: number; top5Accuracy?: number; labelled: number };
      assert.equal(m.labelled, dataset.records.length, 'every image labelled');
      assert.equal(report.findings.filter((f) => f.probe === 'data').length, 0, 'no unreadable items');
      if (c.atLeast) {
        assert.ok(m.accuracy >= c.accuracy && m.top5Accuracy! >= c.top5!, `top-1 ${m.accuracy}, top-5 ${m.top5Accuracy}`);
        const ind = await independentImagenet(join(FIXTURES, 'models', c.model));
        assert.ok(Math.abs(m.accuracy - ind.top1) <= 0.03, `top-1 ${m.accuracy} vs independent ${ind.top1}`);
        assert.ok(Math.abs(m.top5Accuracy! - ind.top5) <= 0.03, `top-5 ${m.top5Accuracy} vs independent ${ind.top5}`);
      } else {
        assert.ok(Math.abs(m.accuracy - c.accuracy) <= 0.005, `accuracy ${m.accuracy} vs ${c.accuracy}`);
      }
    } finally {
      await model.dispose();
    }
  });
}

/** The Zoo convention written plainly: sharp resizes the short side to 256 and crops the centre
 *  224×224, then (x/255 − mean)/std per channel, one image per ONNX Runtime run. */
async function independentImagenet(modelPath: string): Promise<{ top1: number; top5: number }> {
  const session = await ort.InferenceSession.create(modelPath);
  const rows = readFileSync(join(FIXTURES, 'imagenet_samples/labels.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  let top1 = 0;
  let top5 = 0;
  for (const [file, index] of rows) {
    const path = join(FIXTURES, 'imagenet_samples', file);
    const meta = await sharp(path).metadata();
    const s = 256 / Math.min(meta.width!, meta.height!);
    const w = Math.round(meta.width! * s);
    const h = Math.round(meta.height! * s);
    const rgb = await sharp(path)
      .resize(w, h)
      .extract({ left: Math.floor((w - 224) / 2), top: Math.floor((h - 224) / 2), width: 224, height: 224 })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer();
    const x = new Float32Array(3 * 224 * 224);
    for (let i = 0; i < 224 * 224; i++) for (let ch = 0; ch < 3; ch++) x[ch * 224 * 224 + i] = (rgb[i * 3 + ch] / 255 - mean[ch]) / std[ch];
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, 224, 224]) });
    const logits = out[session.outputNames[0]].data as Float32Array;
    const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a]);
    if (order[0] === Number(index)) top1++;
    if (order.slice(0, 5).includes(Number(index))) top5++;
  }
  await session.release();
  return { top1: top1 / rows.length, top5: top5 / rows.length };
}
