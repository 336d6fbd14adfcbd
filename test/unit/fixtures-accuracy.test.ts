/**
 * On the real public fixtures (../shared/fixtures), the clean accuracy Skeptic reports equals the
 * figure in PROVENANCE.md within half a point, for every model with a documented preprocessing.
 * That checks decoding, resizing/cropping, normalisation, layout, labels and output handling
 * end to end against numbers measured independently.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
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
  // PROVENANCE.md: 82% / 97% with torchvision's evaluation transform (Resize(256) bilinear with
  // antialiasing on PIL, CenterCrop(224), ToTensor, Normalize) and ONNX Runtime. The imagenet
  // preset is that transform, pixel for pixel (test/unit/preprocess-reference.test.ts).
  { model: 'imagenet_mobilenetv2-12-int8.onnx', data: 'imagenet_samples/labels.csv', preprocess: 'imagenet', labels: 'labels/imagenet_1k_wnids_names.txt', accuracy: 0.82, top5: 0.97 },
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
      if (c.top5 !== undefined) assert.ok(Math.abs(m.top5Accuracy! - c.top5) <= 0.005, `top-5 ${m.top5Accuracy} vs ${c.top5}`);
      assert.ok(Math.abs(m.accuracy - c.accuracy) <= 0.005, `accuracy ${m.accuracy} vs ${c.accuracy}`);
    } finally {
      await model.dispose();
    }
  });
}
