/**
 * `skeptic compare` on two real public models (../shared/fixtures), the first 100 CIFAR-10 test
 * images, clean accuracy and PGD L∞ at 2/255 and 8/255 (small settings: no bisection, no large-ε
 * run):
 *   - ResNet-2B, adversarially trained at L∞ 2/255 (BASE), against an undefended small CNN (NEW):
 *     robust accuracy at 2/255 is significantly worse by the exact McNemar test on the same
 *     images, and the gate fails on it;
 *   - the undefended CNN against itself with another seed (other PGD random starts): no
 *     significant difference anywhere, the gate passes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { compareReports, regressions } from '../../server/engine/compare';
import { mcnemarExact } from '../../server/engine/compare/stats';
import { openDataset } from '../../server/engine/data';
import { loadModel, type PreprocessOverride } from '../../server/engine/model';
import { attackProbe } from '../../server/engine/probes/attack';
import { cleanProbe } from '../../server/engine/probes/clean';
import type { Probe } from '../../server/engine/probes/probe';
import type { Report } from '../../server/engine/report/schema';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;
const CIFAR = { scale: 1, mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] };
const PARAMS = { attacks: ['pgd-linf'], eps: ['2/255', '8/255'], bisectionSteps: 0, largeEps: 0, maxImages: 100 };

async function run(file: string, preprocess: string | PreprocessOverride, seed: number): Promise<Report> {
  const model = await loadModel(join(FIXTURES, 'models', file), { device: 'cpu', preprocess, labels: join(FIXTURES, 'labels/cifar10_classes.txt') });
  try {
    const dataset = await openDataset(join(FIXTURES, 'cifar10_test_first100/labels.csv'), { labels: model.labels, seed });
    const t0 = Date.now();
    const report = await audit(model, dataset, { probes: [cleanProbe(), attackProbe(PARAMS) as Probe<object>], batchSize: 64, seed });
    console.log(`${file} seed ${seed}: ${report.probes.attack.headline} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
    return report;
  } finally {
    await model.dispose();
  }
}

test('adversarially trained ResNet-2B → undefended CNN: robust accuracy at 2/255 regresses significantly (McNemar); the CNN against itself with another seed does not', { skip }, async () => {
  const robust = await run('cifar10_resnet2b_advtrained.onnx', CIFAR, 0);
  const plain = await run('cifar10_marabou_small_nhwc.onnx', 'unit', 0);
  const plain1 = await run('cifar10_marabou_small_nhwc.onnx', 'unit', 1);

  const c = compareReports(robust, plain);
  assert.equal(c.commonImages, 100);
  const m = c.metrics.find((x) => x.key === 'attack.robustAccuracy.pgd@2/255')!;
  assert.equal(m.test, 'mcnemar-exact');
  assert.equal(m.n, 100);
  // The discordant pairs, recounted from the records: robust under ResNet-2B and not under the CNN (b), and the reverse (c).
  const robustAt = (r: Report) => new Map(r.probes.attack.records.map((x) => [r.images[x.image].id, x.status === 'attacked' && ((x.pgd as number) & 1) === 0]));
  const [ra, rb] = [robustAt(robust), robustAt(plain)];
  let b = 0;
  let cc = 0;
  for (const [id, ok] of ra) {
    if (ok && !rb.get(id)) b++;
    if (!ok && rb.get(id)) cc++;
  }
  assert.deepEqual(m.discordant, { b, c: cc });
  assert.ok(Math.abs(m.p! - mcnemarExact(b, cc)) < 1e-12);
  assert.equal(m.change, 'worse', JSON.stringify(m));
  assert.ok(m.base! - m.new! >= 0.25, `${m.base} → ${m.new}`);
  assert.ok(m.pAdjusted! < 0.001);
  assert.ok(regressions(c).some((r) => r.metric.key === 'attack.robustAccuracy.pgd@2/255'));
  // A tolerance above the drop lets that metric through.
  assert.ok(!regressions(c, { 'attack.robustAccuracy': 0.9 }).some((r) => r.metric.key.startsWith('attack.robustAccuracy')));
  // Every image that became fragile has a finding in the CNN's report.
  for (const i of c.images.fragile) assert.ok(plain.findings.some((f) => f.subject.image === i.newImage));

  const same = compareReports(plain, plain1);
  assert.ok(same.notes.some((n) => /seeds differ/.test(n)));
  const tested = same.metrics.filter((x) => x.p !== null);
  assert.ok(tested.length >= 4);
  assert.deepEqual(tested.filter((x) => x.significant).map((x) => `${x.key} ${x.diff}`), []);
  assert.deepEqual(regressions(same), []);
});
