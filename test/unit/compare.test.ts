/**
 * `skeptic compare` and the regression gate, on the demo model (models/demo) through the bundled
 * CLI, and the tests it uses against hand-computed cases.
 *
 * Reports (120 images, small attack):
 *   A  the demo model, seed 0;
 *   B  the same model, seed 1: nothing may come out significantly different;
 *   C  the same model fed BGR instead of RGB (a re-export that got the channel order wrong): a
 *      real regression, which the gate must catch;
 *   D  seed 0 with shift.k = 4: the shift metrics that depend on k are not comparable.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { compareReports, loadReport, metricDefs, regressions, toleranceFor, type Comparison } from '../../server/engine/compare';
import { aurocSe, holm, mcnemarExact, pairedBootstrap, pairedProportions, twoProportionZ } from '../../server/engine/compare/stats';
import type { Report } from '../../server/engine/report/schema';
import { DEMO, DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';

const ROOT = resolve(__dirname, '../..');
let work: string;
const dir = (n: string) => join(work, n);

function skeptic(args: string[], cwd = work) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), ...args], { cwd, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// The first 120 images of the demo's test split, as a manifest of its own: --limit samples by
// seed, and the seed is what B changes.
const AUDIT = () => ['--data', join(work, 'first120.csv'), '--probes', 'clean,shift,corruptions,attack', '--quiet', '--no-cache'];
const ATTACK = ['attack.maxImages=40', 'attack.bisectionSteps=0', 'attack.largeEps=0', 'attack.attacks=pgd-linf'].flatMap((p) => ['--param', p]);

before(() => {
  ensureDemoData();
  const b = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  work = mkdtempSync(join(tmpdir(), 'skeptic-compare-'));
  // The images are copied, not linked: a link out of the dataset's folder is an error finding.
  const rows = readFileSync(DEMO_TEST, 'utf8').split('\n').slice(0, 121);
  for (const row of rows.slice(1)) {
    const file = row.split(',')[0];
    mkdirSync(dirname(join(work, file)), { recursive: true });
    copyFileSync(join(DEMO, 'data', file), join(work, file));
  }
  writeFileSync(join(work, 'first120.csv'), rows.join('\n') + '\n');
  const runs: Array<[string, string[]]> = [
    ['A', []],
    ['B', ['--seed', '1']],
    ['C', ['--preprocess', '{"channelOrder":"bgr"}', '--baseline', join(work, 'A'), '--format', 'json,sarif']],
    ['D', ['--param', 'shift.k=4']],
  ];
  for (const [name, extra] of runs) {
    const r = skeptic(['audit', DEMO_MODEL, ...AUDIT(), ...ATTACK, ...extra, '--out', dir(name)]);
    assert.equal(r.code, 0, `audit ${name}: ${r.stderr}`);
  }
});
after(() => rmSync(work, { recursive: true, force: true }));

const metric = (c: Comparison, key: string) => {
  const m = c.metrics.find((x) => x.key === key);
  assert.ok(m, `no metric ${key} in ${c.metrics.map((x) => x.key).join(', ')}`);
  return m;
};

test('exact McNemar against hand-computed binomial tails', () => {
  // b = 1, c = 6: n = 7, P(X ≤ 1) = (C(7,0) + C(7,1)) / 2^7 = 8/128; two-sided 16/128.
  assert.ok(Math.abs(mcnemarExact(1, 6) - 0.125) < 1e-12);
  assert.equal(mcnemarExact(6, 1), mcnemarExact(1, 6));
  // b = 2, c = 10: n = 12, (1 + 12 + 66) / 4096 · 2 = 158/4096.
  assert.ok(Math.abs(mcnemarExact(2, 10) - 158 / 4096) < 1e-12);
  // b = 0, c = 5: 2 / 32.
  assert.ok(Math.abs(mcnemarExact(0, 5) - 1 / 16) < 1e-12);
  // Balanced discordance, or none at all: no evidence.
  assert.equal(mcnemarExact(4, 4), 1);
  assert.equal(mcnemarExact(0, 0), 1);
  // From per-image outcomes: 10 images, BASE right on 1–8, NEW right on 1–5, 9, 10 → b = 3 (6,7,8), c = 2 (9,10).
  const base = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0].map(Boolean);
  const next = [1, 1, 1, 1, 1, 0, 0, 0, 1, 1].map(Boolean);
  const r = pairedProportions(base, next);
  assert.deepEqual([r.b, r.c, r.n], [3, 2, 10]);
  assert.ok(Math.abs(r.diff - -0.1) < 1e-12);
  // n = 5, P(X ≤ 2) = (1 + 5 + 10)/32 = 1/2, two-sided 1.
  assert.equal(r.p, 1);
});

test('two-proportion z, Holm, Hanley–McNeil and the paired bootstrap against hand computations', () => {
  // 60/100 vs 40/100: pooled p = 0.5, se = sqrt(0.25 · 0.02) = 0.0707107, z = 2.828427, p = 0.004678.
  const t = twoProportionZ(60, 100, 40, 100);
  assert.ok(Math.abs(t.diff - -0.2) < 1e-12);
  assert.ok(Math.abs(t.p - 0.004678) < 2e-6, String(t.p));
  // Holm: sorted 0.01, 0.02, 0.04 → ×3, ×2, ×1 = 0.03, 0.04, 0.04 (monotone).
  assert.deepEqual(holm([0.04, 0.01, 0.02]).map((x) => +x.toFixed(10)), [0.04, 0.03, 0.04]);
  // Hanley–McNeil: AUC 0.5, 10 vs 10: Q1 = 1/3, Q2 = 1/3; var = (0.25 + 9·(1/3 − 1/4)·2)/100 = 0.0175.
  assert.ok(Math.abs(aurocSe(0.5, 10, 10) - Math.sqrt(0.0175)) < 1e-12);
  // Bootstrap: the interval holds the mean difference, and the same seed gives the same interval.
  const a = Array.from({ length: 200 }, (_, i) => (i % 7) / 7);
  const b = a.map((x, i) => x + 0.05 + ((i % 3) - 1) * 0.02);
  const r1 = pairedBootstrap(a, b, { seed: 3 });
  const r2 = pairedBootstrap(a, b, { seed: 3 });
  assert.deepEqual(r1, r2);
  const d = b.reduce((s, x) => s + x, 0) / 200 - a.reduce((s, x) => s + x, 0) / 200;
  assert.ok(Math.abs(r1.diff - d) < 1e-12 && r1.ci![0] < d && r1.ci![1] > d && r1.p < 1e-6, JSON.stringify(r1));
  assert.equal(pairedBootstrap(a, a).p, 1);
});

test('per-image measures average back to the numbers each probe reports', () => {
  for (const name of ['A', 'C', 'D']) {
    const r = loadReport(dir(name));
    let checked = 0;
    for (const d of metricDefs(r, r)) {
      const per = d.perImage?.(r);
      const v = d.value(r);
      if (!per || v === null) continue;
      const xs = [...per.values()].map(Number);
      assert.ok(Math.abs(xs.reduce((s, x) => s + x, 0) / xs.length - v) < 1e-5, `${name} ${d.key}: per-image mean vs reported ${v}`);
      checked++;
    }
    assert.ok(checked >= 15, `only ${checked} metrics checked`);
  }
});

test('the demo model against itself with another seed: no significant change, gate passes', () => {
  const c = compareReports(loadReport(dir('A')), loadReport(dir('B')));
  assert.equal(c.commonImages, 120);
  assert.equal(c.sameDataset, true);
  assert.ok(c.notes.some((n) => /seeds differ/.test(n)));
  const tested = c.metrics.filter((m) => m.p !== null);
  assert.ok(tested.length >= 15);
  assert.deepEqual(tested.filter((m) => m.significant).map((m) => m.key), []);
  assert.equal(metric(c, 'clean.accuracy').test, 'mcnemar-exact');
  assert.deepEqual(metric(c, 'clean.accuracy').discordant, { b: 0, c: 0 });
  const r = skeptic(['compare', dir('A'), join(dir('B'), 'report.json'), '--fail-on-regression']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /clean\.accuracy\s+93\.3%\s+93\.3%/);
  assert.match(r.stdout, /exact McNemar/);
});

test('a BGR re-export: significant regressions, named by the paired test; the gate exits 1', () => {
  const base = loadReport(dir('A'));
  const next = loadReport(dir('C'));
  const c = compareReports(base, next);
  const acc = metric(c, 'clean.accuracy');
  // Recount the discordant pairs from the records themselves.
  const correct = (r: Report) => new Map(r.probes.clean.records.map((x) => [r.images[x.image].id, x.correct as boolean]));
  const [ca, cc] = [correct(base), correct(next)];
  let b = 0;
  let cnt = 0;
  for (const [id, ok] of ca) {
    if (ok && !cc.get(id)) b++;
    if (!ok && cc.get(id)) cnt++;
  }
  assert.deepEqual(acc.discordant, { b, c: cnt });
  assert.equal(acc.test, 'mcnemar-exact');
  assert.ok(Math.abs(acc.p! - mcnemarExact(b, cnt)) < 1e-12);
  assert.equal(acc.change, 'worse');
  assert.ok(acc.base! - acc.new! > 0.2, `${acc.base} → ${acc.new}`);
  assert.equal(metric(c, 'corruptions.meanCorruptionAccuracy').test, 'paired-bootstrap');
  assert.equal(metric(c, 'corruptions.meanCorruptionAccuracy').change, 'worse');
  assert.ok(regressions(c).some((r) => r.metric.key === 'clean.accuracy'));

  const fail = skeptic(['compare', dir('A'), dir('C'), '--fail-on-regression']);
  assert.equal(fail.code, 1, fail.stderr);
  assert.match(fail.stderr, /regression\(s\): .*clean\.accuracy/);
  // Without the flag it only reports.
  assert.equal(skeptic(['compare', dir('A'), dir('C')]).code, 0);
  // A tolerance larger than every drop lets it pass; flags and skeptic.json both count.
  assert.equal(skeptic(['compare', dir('A'), dir('C'), '--fail-on-regression', '--tolerance', '*=1']).code, 0);
  assert.equal(skeptic(['compare', dir('A'), dir('C'), '--fail-on-regression', '--tolerance', '*=100%', '--tolerance', 'clean.accuracy=0.01']).code, 1);
  const cfg = join(work, 'tolerant.json');
  writeFileSync(cfg, JSON.stringify({ compare: { tolerances: { '*': 1 } } }));
  assert.equal(skeptic(['compare', dir('A'), dir('C'), '--fail-on-regression', '--config', cfg]).code, 0);
  // Bad input: one line, exit 2.
  const bad = skeptic(['compare', dir('A'), join(work, 'missing')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /missing: no such report/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.equal(skeptic(['compare', dir('A'), dir('C'), '--tolerance', 'clean.accuracy=lots']).code, 2);
});

test('tolerances: the most specific key wins', () => {
  const t = { '*': 0.5, attack: 0.1, 'attack.robustAccuracy.pgd': 0.05, 'attack.robustAccuracy.pgd@8/255': 0.01 };
  assert.equal(toleranceFor('attack.robustAccuracy.pgd@8/255', t), 0.01);
  assert.equal(toleranceFor('attack.robustAccuracy.pgd@2/255', t), 0.05);
  assert.equal(toleranceFor('attack.robustAccuracy.square@2/255', t), 0.1);
  assert.equal(toleranceFor('clean.accuracy', t), 0.5);
  assert.equal(toleranceFor('clean.accuracy', {}), 0);
});

test('different probe parameters: only the metrics that stay comparable are compared, the others say why', () => {
  const c = compareReports(loadReport(dir('A')), loadReport(dir('D')));
  const adj = metric(c, 'shift.adjacentFlipRate');
  assert.equal(adj.comparable, false);
  assert.match(adj.note!, /shift\.k differs \(8 vs 4\)/);
  assert.equal(metric(c, 'shift.changedAnywhereRate').comparable, false);
  // The 1-pixel flip does not depend on k: still compared, paired; so is everything else.
  assert.equal(metric(c, 'shift.oneFlipRate').comparable, true);
  assert.equal(metric(c, 'shift.oneFlipRate').test, 'mcnemar-exact');
  assert.equal(metric(c, 'clean.accuracy').comparable, true);
  const text = skeptic(['compare', dir('A'), dir('D')]).stdout;
  assert.match(text, /Not comparable \(2\):\n {2}shift\.adjacentFlipRate: shift\.k differs/);
});

test('different datasets: unpaired tests, or paired on the common images', () => {
  const a = loadReport(dir('A'));
  const c = loadReport(dir('C'));
  // NEW audited only the first half of the images, under other ids for the second half.
  const half = structuredClone(c);
  half.dataset.sha256 = 'other';
  half.images = half.images.map((img, i) => (i < 60 ? img : { ...img, id: `elsewhere/${img.id}` }));
  const partial = compareReports(a, half);
  assert.equal(partial.commonImages, 60);
  const acc = metric(partial, 'clean.accuracy');
  assert.equal(acc.test, 'mcnemar-exact');
  assert.equal(acc.n, 60);
  assert.match(acc.note!, /paired on the 60 image\(s\)/);
  // No image in common: an unpaired two-proportion test of each report's own numbers.
  const other = structuredClone(half);
  other.images = other.images.map((img) => ({ ...img, id: `elsewhere/${img.id}` }));
  const none = compareReports(a, other);
  assert.equal(none.commonImages, 0);
  assert.ok(none.notes.some((n) => /no image in common/.test(n)));
  const acc2 = metric(none, 'clean.accuracy');
  assert.equal(acc2.test, 'two-proportion-z');
  assert.equal(acc2.base, a.probes.clean.metrics.accuracy);
  assert.deepEqual(acc2.n, [120, 120]);
  assert.deepEqual(none.images, { fragile: [], recovered: [] });
});

test('images that became fragile and recovered, by file and row; JSON, Markdown and HTML outputs', () => {
  const base = loadReport(dir('A'));
  const next = loadReport(dir('C'));
  const c = compareReports(base, next);
  const perImage = (r: Report) => new Set(r.findings.filter((f) => f.subject.image !== undefined).map((f) => r.images[f.subject.image!].id));
  const [fa, fc] = [perImage(base), perImage(next)];
  assert.deepEqual(c.images.fragile.map((i) => i.id).sort(), [...fc].filter((id) => !fa.has(id)).sort());
  assert.deepEqual(c.images.recovered.map((i) => i.id).sort(), [...fa].filter((id) => !fc.has(id)).sort());
  assert.ok(c.images.fragile.length > 0, 'no image became fragile');
  for (const i of c.images.fragile) assert.ok(i.line! >= 2 && i.path.endsWith('first120.csv'), JSON.stringify(i));

  const json = skeptic(['compare', dir('A'), dir('C'), '--json']);
  const parsed = JSON.parse(json.stdout) as Comparison & { regressions: Array<{ metric: string }> };
  assert.equal(parsed.comparisonSchemaVersion, 1);
  assert.ok(parsed.regressions.some((r) => r.metric === 'clean.accuracy'));
  assert.equal(parsed.images.fragile.length, c.images.fragile.length);
  const md = skeptic(['compare', dir('A'), dir('C'), '--format', 'markdown']).stdout;
  assert.match(md, /\| `clean\.accuracy` \| 93\.3% \| /);
  assert.match(md, /\*\*\d+ regression\(s\)\*\*/);
  assert.match(md, /<summary>Images that became fragile \(\d+\)<\/summary>/);
  const out = join(work, 'cmp.html');
  assert.equal(skeptic(['compare', dir('A'), dir('C'), '--format', 'html', '--out', out]).code, 0);
  const html = readFileSync(out, 'utf8');
  assert.match(html, /<tr class="worse" data-key="clean.accuracy">/);
});

test('audit --baseline: SARIF results carry baselineState new / unchanged / absent', () => {
  const base = loadReport(dir('A'));
  const next = loadReport(dir('C'));
  const sarif = JSON.parse(readFileSync(join(dir('C'), 'report.sarif'), 'utf8'));
  const results = sarif.runs[0].results as Array<{ baselineState: string; partialFingerprints: { skepticFindingId: string }; ruleIndex: number; ruleId: string }>;
  const ids = (state: string) => results.filter((r) => r.baselineState === state).map((r) => r.partialFingerprints.skepticFindingId).sort();
  const was = new Set(base.findings.map((f) => f.id));
  const now = new Set(next.findings.map((f) => f.id));
  assert.deepEqual(ids('new'), next.findings.filter((f) => !was.has(f.id)).map((f) => f.id).sort());
  assert.deepEqual(ids('unchanged'), next.findings.filter((f) => was.has(f.id)).map((f) => f.id).sort());
  assert.deepEqual(ids('absent'), base.findings.filter((f) => !now.has(f.id)).map((f) => f.id).sort());
  assert.ok(ids('new').length > 0 && ids('absent').length + ids('unchanged').length > 0);
  assert.equal(results.length, next.findings.length + ids('absent').length);
  // Every result's rule is in the driver's rules, absent ones included.
  const rules = sarif.runs[0].tool.driver.rules as Array<{ id: string }>;
  for (const r of results) assert.equal(rules[r.ruleIndex].id, r.ruleId);
  // Without a baseline there is no baselineState.
  const plain = skeptic(['audit', DEMO_MODEL, '--data', DEMO_TEST, '--limit', '20', '--probes', 'clean', '--quiet', '--format', 'sarif', '--out', dir('P')]);
  assert.equal(plain.code, 0, plain.stderr);
  const s2 = JSON.parse(readFileSync(join(dir('P'), 'report.sarif'), 'utf8'));
  assert.ok(s2.runs[0].results.every((r: object) => !('baselineState' in r)));
});

test('skeptic.json "compare": the daemon accepts tolerances and alpha, flags wrong values; the schema agrees', async () => {
  const { validateConfig } = await import('../../server/daemon/config-doc');
  const ctx = { modelInput: () => undefined, exists: () => true, schemaProvided: false, docsUrl: 'https://example.test/README.md' };
  const ok = validateConfig(JSON.stringify({ compare: { tolerances: { '*': 0.01, 'attack.robustAccuracy': 0.02 }, alpha: 0.01 } }), '/x/skeptic.json', ctx);
  assert.deepEqual(ok.map((d) => d.message), []);
  const bad = validateConfig(JSON.stringify({ compare: { tolerances: { 'clean.accuracy': 'lots' }, alpha: 2, gate: true } }), '/x/skeptic.json', ctx);
  const msgs = bad.map((d) => d.message).join('\n');
  assert.match(msgs, /tolerance of 'clean\.accuracy' must be a non-negative number/);
  assert.match(msgs, /"alpha" must be a number between 0 and 1/);
  assert.match(msgs, /unknown key 'gate'/);
  const { default: Ajv } = await import('ajv');
  const validate = new Ajv({ strict: false }).compile(JSON.parse(readFileSync(join(ROOT, 'schemas/skeptic.schema.json'), 'utf8')));
  assert.equal(validate({ compare: { tolerances: { '*': 0.01 }, alpha: 0.05 } }), true);
  assert.equal(validate({ compare: { tolerances: { '*': -1 } } }), false);
});

test('mCE (ImageNet-shaped models only) is compared as a value: a row only where a report has it, lower is better, never tested', () => {
  const base = loadReport(dir('A'));
  const next = loadReport(dir('B'));
  // The demo model is not ImageNet-shaped, so its reports carry mCE null: no row at all.
  assert.equal(base.probes.corruptions.metrics.mCE, null);
  assert.ok(!compareReports(base, next).metrics.some((m) => m.key === 'corruptions.mCE'));
  base.probes.corruptions.metrics.mCE = 0.8;
  next.probes.corruptions.metrics.mCE = 0.9;
  const row = metric(compareReports(base, next), 'corruptions.mCE');
  assert.equal(row.comparable, true);
  assert.equal(row.base, 0.8);
  assert.equal(row.new, 0.9);
  assert.equal(row.unit, 'fraction');
  assert.equal(row.better, 'lower');
  assert.equal(row.test, 'none');
});
