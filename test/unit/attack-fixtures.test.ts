/**
 * P1 on the real public fixtures (../shared/fixtures), through the real gradient model
 * (model/gradient) and audit():
 *   - mnist-8 (undefended): PGD L∞ at ε = 0.3 brings robust accuracy to at most 1%, and Square
 *     agrees (both near zero);
 *   - CIFAR-10: the ResNet-2B adversarially trained at L∞ 2/255 keeps far more robust accuracy at
 *     ε = 2/255 than the undefended small CNN on the same 100 images; on the undefended CNN,
 *     PGD and Square agree at 8/255 (both near zero).
 * Small settings keep the whole file near half a minute on two cores: no bisection, no large-ε
 * run, a smaller Square budget.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { loadModel, type PreprocessOverride } from '../../server/engine/model';
import { attackProbe } from '../../server/engine/probes/attack';
import { cleanProbe } from '../../server/engine/probes/clean';
import type { Probe } from '../../server/engine/probes/probe';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;
const CIFAR = { scale: 1, mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] };

interface Metrics {
  cleanAccuracy: number;
  attacked: number;
  robustAccuracy: { pgd: number[] | null; square: number[] | null };
  whiteBox: { available: boolean };
}

async function attackAudit(file: string, data: string, preprocess: string | PreprocessOverride, params: Record<string, unknown>, opts: { labels?: string; limit?: number } = {}) {
  const model = await loadModel(join(FIXTURES, 'models', file), { device: 'cpu', preprocess, labels: opts.labels ? join(FIXTURES, opts.labels) : undefined });
  try {
    const dataset = await openDataset(join(FIXTURES, data), { labels: model.labels, limit: opts.limit, seed: 0 });
    const t0 = Date.now();
    const report = await audit(model, dataset, { probes: [cleanProbe(), attackProbe(params) as Probe<object>], batchSize: 64 });
    const res = report.probes.attack;
    assert.equal(res.status, 'ok', res.reason);
    console.log(`${file}: ${res.headline} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
    return { report, m: res.metrics as unknown as Metrics };
  } finally {
    await model.dispose();
  }
}

const FAST = { bisectionSteps: 0, largeEps: 0 };

test('mnist-8: PGD L∞ at ε = 0.3 leaves at most 1% robust accuracy, and Square agrees', { skip }, async () => {
  const { m } = await attackAudit('mnist-8_onnxzoo_cntk.onnx', 'mnist', 'unit', { ...FAST, attacks: ['pgd-linf', 'square'], eps: [0.3], queries: 300 }, { limit: 64 });
  assert.equal(m.whiteBox.available, true);
  assert.ok(m.cleanAccuracy >= 0.95, `clean ${m.cleanAccuracy}`);
  assert.ok(m.robustAccuracy.pgd![0] <= 0.01, `PGD robust accuracy ${m.robustAccuracy.pgd![0]}`);
  assert.ok(m.robustAccuracy.square![0] <= 0.05, `Square robust accuracy ${m.robustAccuracy.square![0]}`);
});

test('CIFAR-10: adversarial training holds at 2/255 where the undefended CNN falls; PGD and Square agree on the undefended one', { skip }, async () => {
  const params = { ...FAST, attacks: ['pgd-linf', 'square'], eps: ['2/255', '8/255'], queries: 500 };
  const data = 'cifar10_test_first100/labels.csv';
  const labels = 'labels/cifar10_classes.txt';
  const adv = await attackAudit('cifar10_resnet2b_advtrained.onnx', data, CIFAR, params, { labels });
  const plain = await attackAudit('cifar10_marabou_small_nhwc.onnx', data, 'unit', params, { labels });
  for (const r of [adv, plain]) assert.equal(r.m.whiteBox.available, true);
  const [advPgd2] = adv.m.robustAccuracy.pgd!;
  const [plainPgd2, plainPgd8] = plain.m.robustAccuracy.pgd!;
  const plainSquare8 = plain.m.robustAccuracy.square![1];
  // Robust accuracy at 2/255: ResNet-2B keeps most of its clean 77%; the plain CNN loses most of
  // its 61%.
  assert.ok(advPgd2 >= plainPgd2 + 0.25, `robust at 2/255: adversarially trained ${advPgd2} vs undefended ${plainPgd2}`);
  assert.ok(advPgd2 >= 0.5 * adv.m.cleanAccuracy, `adversarially trained keeps half its clean accuracy: ${advPgd2} of ${adv.m.cleanAccuracy}`);
  // On the undefended CNN both attacks reach ~0 at 8/255, and the white-box one is the stronger.
  assert.ok(plainPgd8 <= 0.05 && plainSquare8 <= 0.1, `undefended at 8/255: PGD ${plainPgd8}, Square ${plainSquare8}`);
  assert.ok(plainPgd8 <= plainSquare8 + 0.02);
  // No sanity warning on either: the gradient is not masked.
  for (const r of [adv, plain]) {
    const rules = r.report.findings.filter((f) => f.probe === 'attack' && f.subject.image === undefined).map((f) => f.rule);
    assert.ok(!rules.includes('attack/gradient-masking'), rules.join());
  }
});

test('ResNet-2B: the AutoAttack protocol (fast budgets) leaves no image robust that PGD-20 breaks, and breaks some PGD leaves', { skip }, async () => {
  // 40 images at 4/255 and 8/255: the adversarially trained model keeps enough robust images
  // there for the attacks to differ (Croce & Hein: APGD beats fixed-step PGD on such models).
  const base = { ...FAST, eps: ['4/255', '8/255'], epsL2: 'none' };
  const opts = { labels: 'labels/cifar10_classes.txt', limit: 40 };
  const data = 'cifar10_test_first100/labels.csv';
  const pgd = await attackAudit('cifar10_resnet2b_advtrained.onnx', data, CIFAR, { ...base, attacks: ['pgd-linf'] }, opts);
  const aa = await attackAudit('cifar10_resnet2b_advtrained.onnx', data, CIFAR, { ...base, preset: 'fast', queries: 300 }, opts);
  const robustSet = (r: typeof pgd, k: number, broken: (rec: Record<string, unknown>) => boolean) =>
    new Set(r.report.probes.attack.records.filter((x) => x.status === 'attacked' && !broken(x)).map((x) => x.image));
  let fewer = 0;
  for (const k of [0, 1]) {
    const byPgd = robustSet(pgd, k, (x) => ((x.pgd as number) & (1 << k)) !== 0);
    const byAa = robustSet(aa, k, (x) => (x.brokenBy as unknown[])[k] !== null);
    const extra = [...byAa].filter((i) => !byPgd.has(i));
    assert.deepEqual(extra, [], `at k=${k}: robust to the protocol but broken by PGD: ${extra}`);
    fewer += byPgd.size - byAa.size;
  }
  assert.ok(fewer >= 1, 'the protocol breaks images PGD-20 leaves robust');
  const m = aa.report.probes.attack.metrics as { protocol: { linf: Array<{ attack: string }> } };
  assert.deepEqual(m.protocol.linf.map((s) => s.attack), ['apgd-ce', 'apgd-t', 'square']);
});
