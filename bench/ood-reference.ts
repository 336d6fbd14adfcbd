/**
 * Recipe: Skeptic's feature-space OOD detectors (server/engine/ood/) against a NumPy/SciPy
 * reference (bench/ood_reference.py) on real features: mnist-8's penultimate features of MNIST
 * images from the feature tap, fitted on the first 400 and scored on the next 200.
 *
 *   node --import tsx bench/ood-reference.ts        (needs ../shared/fixtures and /usr/bin/python3
 *                                                     with numpy and scipy)
 *
 * The ridge is 0 here so that Mahalanobis compares with the plain pinv of the tied covariance.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openDataset } from '../server/engine/data';
import { toBatch } from '../server/engine/image/ops';
import { loadModel } from '../server/engine/model';
import { fitDetectors, openTap, pack, scoreAll } from '../server/engine/ood/compose';
import { unpack } from '../server/engine/prior/project';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');

async function main(): Promise<void> {
  const model = await loadModel(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { preprocess: 'unit', device: 'cpu' });
  const tap = await openTap(model);
  if (!tap.runner || !tap.head) throw new Error(tap.error ?? tap.headError ?? 'no tap');
  const feats: Float32Array[] = [];
  const labels: number[] = [];
  const ds = await openDataset(join(FIXTURES, 'mnist'), { limit: 600, seed: 0 });
  for await (const batch of ds.stream(model.decodeSpec(0), { batchSize: 100 })) {
    const r = await tap.runner.run(toBatch(batch.map((s) => s.image!)).data, batch.length);
    // Through the records' float16 packing, as the probe sees them.
    for (let i = 0; i < batch.length; i++) {
      feats.push(unpack(pack(r.data.slice(i * r.dims, (i + 1) * r.dims))));
      labels.push(batch[i].record.label!);
    }
  }
  const fit = feats.slice(0, 400);
  const test = feats.slice(400);
  const fitted = fitDetectors(['mahalanobis', 'knn', 'vim', 'react'], fit.map((f, i) => ({ feat: pack(f), cls: labels[i] })), tap.head, undefined, 0, {
    k: 50, ridge: 0, percentile: 90,
  });
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-ood-ref-'));
  const file = join(dir, 'features.json');
  writeFileSync(file, JSON.stringify({
    fit: fit.map((f) => Array.from(f)), cls: labels.slice(0, 400), test: test.map((f) => Array.from(f)),
    K: tap.head.K, d: tap.head.d, W: Array.from(tap.head.W), b: Array.from(tap.head.b),
    scores: test.map((f) => scoreAll(fitted, f)),
    info: Object.fromEntries(Object.entries(fitted.fitted).map(([k, v]) => [k, v!.info])),
  }));
  await tap.runner.release();
  await model.dispose();
  process.stdout.write(execFileSync('/usr/bin/python3', [join(__dirname, 'ood_reference.py'), file], { encoding: 'utf8' }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
