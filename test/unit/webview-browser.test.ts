/**
 * The report webview in headless Chromium (playwright-core), on REAL reports the engine produces
 * in this test: the demo model on its generated data (all default probes), and, when
 * ../shared/fixtures exists, mnist-8 on the MNIST idx files. The same bundle is opened twice:
 *  - as VS Code shows it: renderReportHtml with the bundle and the artifacts as resource URIs under
 *    one origin (the webview's cspSource), acquireVsCodeApi stubbed, VS Code's theme variables;
 *  - as the standalone report.html that writeReport writes, from file:// with every non-file
 *    request refused.
 * Checks: what the page shows against the report JSON (probe cards, findings, plot series and
 * points, gallery counts and labels), paging by button and keyboard, reveal messages, refusal of
 * artifact paths outside the report folder, no CSP violations, no network; screenshots in light
 * and dark themes land in test-output/ (gitignored).
 *
 * Needs Chromium at /usr/bin/chromium (apt-get install -y chromium) or SKEPTIC_CHROMIUM; without
 * it the tests are skipped with that reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { audit } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { loadModel } from '../../server/engine/model';
import { createProbes, DEFAULT_PROBES, PROBES } from '../../server/engine/probes';
import type { Finding, Report } from '../../server/engine/report/schema';
import { writeReport } from '../../server/engine/report/write';
import { eps as epsText, pct } from '../../webviews/lib/format';
import { browserSkipReason, cspViolations, launch, openStandalone, openWebview, screenshot, VSCODE_THEMES, WEBVIEW_ORIGIN, type Watch } from '../browser/harness';
import { loadReport } from '../../server/engine/compare/load';

// The page's globals, for callbacks that run in the browser (this project compiles without DOM types).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare function getComputedStyle(el: unknown): any;

const ROOT = resolve(__dirname, '../..');
const OUT = join(ROOT, 'test-output');
const BUNDLE = join(ROOT, 'dist/webviews');
const FIXTURES = resolve(ROOT, '../shared/fixtures');
const skip = browserSkipReason();
if (skip) console.log(`# webview browser tests skipped: ${skip}`);
const noFixtures = skip || (existsSync(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx')) ? false : `no fixtures at ${FIXTURES}`);

let browser: Browser;
let work: string;
const demo = { report: undefined as unknown as Report, dir: '' };
const mnist = { report: undefined as unknown as Report, dir: '' };

// The default probes, and the attack, cue-conflict and prior probes where the engine has them.
const EXTRA = ['attack', 'cue-conflict', 'prior'].filter((p) => PROBES[p]);

async function makeReport(o: { model: string; data: string; preprocess?: string; limit: number; dir: string; probes: string[]; params?: Record<string, Record<string, unknown>> }): Promise<Report> {
  const model = await loadModel(o.model, { device: 'cpu', preprocess: o.preprocess });
  try {
    const dataset = await openDataset(o.data, { labels: model.labels, limit: o.limit, seed: 0 });
    const report = await audit(model, dataset, { probes: createProbes(o.probes, o.params), seed: 0, batchSize: 64, limit: o.limit, outDir: o.dir, baseDir: ROOT });
    const written = await writeReport(report, o.dir, ['json', 'html']);
    assert.deepEqual(written.map((f) => f.slice(o.dir.length + 1)), ['report.json', 'report.html']);
    return loadReport(join(o.dir, 'report.json'));
  } finally {
    await model.dispose();
  }
}

before(async () => {
  if (skip) return;
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) {
    const r = spawnSync(process.execPath, cmd, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  mkdirSync(OUT, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'skeptic-webview-'));
  demo.dir = join(work, 'demo');
  // Every probe; the patch gallery asks for 30 images so that it has pages to turn, and the attack
  // runs a lighter schedule than its default (the views, not the attack, are under test).
  // The ood probe's feature detectors are asked for, so that their overlay plot is drawn.
  const params: Record<string, Record<string, unknown>> = { patches: { renderImages: 30 }, ood: { detectors: 'all' } };
  if (EXTRA.includes('attack')) params.attack = { preset: 'fast', apgdSteps: 10, targets: 2, steps: 10, bisectionSteps: 3, queries: 100 };
  demo.report = await makeReport({ model: join(ROOT, 'models/demo/shapes-cnn.onnx'), data: join(ROOT, 'models/demo/data/test.csv'), limit: 40, dir: demo.dir, probes: [...DEFAULT_PROBES, ...EXTRA], params });
  assert.ok((demo.report.probes.ood.metrics as { detectors?: { scores: string[] } }).detectors?.scores.length, 'the demo report has feature detectors to overlay');
  if (!noFixtures) {
    mnist.dir = join(work, 'mnist');
    mnist.report = await makeReport({ model: join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), data: join(FIXTURES, 'mnist'), preprocess: 'unit', limit: 100, dir: mnist.dir, probes: DEFAULT_PROBES });
  }
  browser = await launch();
});

after(async () => {
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const newWatch = (): Watch => ({ refused: [], console: [], errors: [] });

async function attr(page: Page, selector: string, name: string): Promise<string | null> {
  return page.locator(selector).first().getAttribute(name);
}

async function plotInfo(page: Page, id: string): Promise<{ series: string[]; points: number; canvas: boolean }> {
  const fig = page.locator(`figure[data-plot="${id}"]`);
  assert.equal(await fig.count(), 1, `one plot ${id}`);
  return {
    series: JSON.parse((await fig.getAttribute('data-series')) ?? '[]'),
    points: Number(await fig.getAttribute('data-points')),
    canvas: (await fig.locator('.uplot canvas').count()) > 0,
  };
}

const withArtifacts = (r: Report, probe: string) => r.probes[probe]?.records.filter((x) => Array.isArray(x.artifacts) && x.artifacts.length).length ?? 0;
const className = (r: Report, i: unknown) =>
  typeof i === 'number' ? (r.model.labels?.names[i] ?? r.dataset.classes?.[i] ?? r.images.find((x) => x.label === i && x.labelName)?.labelName ?? `class ${i}`) : '–';
const SEV_ORDER = { error: 0, warning: 1, info: 2 };
const sortedFindings = (r: Report): Finding[] => [...r.findings].sort((a, b) => SEV_ORDER[a.severity] - SEV_ORDER[b.severity]);

/** What the page shows, checked against the report JSON. */
async function checkContent(page: Page, r: Report, mode: 'webview' | 'standalone'): Promise<void> {
  assert.match((await page.locator('[data-meta="model"]').textContent()) ?? '', new RegExp(r.model.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.match((await page.locator('[data-meta="dataset"]').textContent()) ?? '', new RegExp(r.dataset.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.match((await page.locator('[data-meta="device"]').textContent()) ?? '', new RegExp(r.device.used));
  // The preprocessing, and which file or option gave each value.
  const pre = (await page.locator('[data-preprocessing]').textContent()) ?? '';
  assert.ok(pre.includes(`${r.model.preprocessing.interpolation ?? 'bilinear'} (PIL); source ${r.model.preprocessing.source}`), pre);
  for (const [k, v] of Object.entries(r.model.preprocessing.origins ?? {})) assert.ok(pre.includes(`${k}: ${v}`), `${k} in ${pre}`);

  // Summary: one card per probe with its headline; findings counted by severity.
  const ids = Object.keys(r.probes);
  assert.equal(await page.locator('.probe-card').count(), ids.length);
  for (const id of ids) {
    const card = page.locator(`.probe-card[data-probe="${id}"]`);
    assert.equal((await card.locator('.probe-card-headline').textContent())?.trim(), r.probes[id].headline?.trim(), `${id} headline`);
    assert.equal(await page.locator(`section[data-probe="${id}"] h2`).count(), 1, `${id} section`);
  }
  const counts = { error: 0, warning: 0, info: 0 };
  for (const f of r.findings) counts[f.severity]++;
  assert.deepEqual(JSON.parse((await attr(page, '.severity-counts', 'data-counts')) ?? '{}'), counts);

  // Findings: all of them, paged; the first page in severity order with its locations.
  assert.equal(Number(await attr(page, '[data-gallery="findings"]', 'data-count')), r.findings.length);
  const cards = page.locator('[data-gallery="findings"] .finding');
  assert.equal(await cards.count(), Math.min(25, r.findings.length));
  if (r.findings.length) {
    const first = sortedFindings(r)[0];
    assert.equal((await cards.first().locator('.finding-message').textContent())?.trim(), first.message);
    assert.equal(await cards.first().getAttribute('data-rule'), first.rule);
    assert.equal(await cards.first().getAttribute('role'), mode === 'webview' ? 'button' : null, 'findings are buttons only where they can reveal');
  }

  const plots = (r.probes.shift?.plots ?? {}) as { shifts?: number[]; worst?: Array<{ image: number }> };
  if (r.probes.shift && plots.worst?.length) {
    for (const dir of ['h', 'v']) {
      const p = await plotInfo(page, `shift-worst-${dir}`);
      assert.deepEqual(p.series, plots.worst.map((w) => r.images[w.image].id), 'one line per worst image, named by the image');
      assert.equal(p.points, plots.shifts!.length);
      assert.ok(p.canvas, 'uPlot drew the shift plot');
    }
    const acc = await plotInfo(page, 'shift-accuracy');
    assert.deepEqual(acc.series, ['horizontal', 'vertical']);
    assert.equal(acc.points, plots.shifts!.length);
  }

  if (r.probes.clean) {
    const per = (r.probes.clean.metrics as { perClass: Array<{ name: string }> }).perClass;
    assert.equal((await plotInfo(page, 'clean-per-class')).points, per.length);
    if (r.model.numClasses <= 30) assert.equal(await page.locator('table.confusion tbody tr').count(), (r.probes.clean.metrics as { confusion: unknown[] }).confusion.length);
  }

  if (r.probes.patches) {
    const m = r.probes.patches.metrics as { grids: Array<{ grid: number }> };
    assert.equal((await plotInfo(page, 'patches-grids')).points, m.grids.length);
    const n = withArtifacts(r, 'patches');
    const g = page.locator('[data-gallery="patches-gallery"]');
    assert.equal(Number(await g.getAttribute('data-count')), n);
    if (n) {
      // The first card: the shuffled images, each captioned with the model's prediction on it.
      const rec = r.probes.patches.records.filter((x) => x.artifacts?.length)[0] as { image: number; pred: number; shuffled: number[] };
      const card = g.locator('.card').first();
      assert.equal(await card.locator('.card-title').textContent(), r.images[rec.image].id);
      const captions = await card.locator('figure.thumb figcaption').allTextContents();
      assert.equal(captions[0], `original${className(r, rec.pred)}`);
      (r.probes.patches.params.grids as number[]).forEach((grid, j) => assert.ok(captions.includes(`${grid}×${grid}${className(r, rec.shuffled[j])}`), `caption of the ${grid}×${grid} shuffle`));
      await checkImages(page, '[data-gallery="patches-gallery"]', mode);
    }
  }

  if (r.probes.ood) {
    const m = r.probes.ood.metrics as { sets: Record<string, unknown>; primaryScore: string };
    const p = r.probes.ood.plots as { roc: Record<string, Record<string, unknown[] | null>>; reliability: unknown[] | null };
    assert.equal(await page.locator('table.ood-sets tbody tr').count(), Object.keys(m.sets).length);
    assert.deepEqual((await plotInfo(page, 'ood-roc')).series, Object.keys(p.roc[m.primaryScore]).filter((k) => p.roc[m.primaryScore][k]?.length));
    if (p.reliability) assert.equal((await plotInfo(page, 'ood-reliability')).points, p.reliability.length);
    const hist = await plotInfo(page, 'ood-hist');
    assert.equal(hist.series[0], 'data');
    assert.ok(Object.keys(m.sets).includes(hist.series[1]));
    assert.equal(Number(await attr(page, '[data-gallery="ood-gallery"]', 'data-count')), withArtifacts(r, 'ood'));
    // The feature detectors: one ROC plot overlays every score on the chosen OOD set.
    const det = (m as { detectors?: { scores: string[] } }).detectors;
    if (det?.scores.length) {
      const overlay = await plotInfo(page, 'ood-roc-overlay');
      assert.ok(['msp', ...det.scores].every((s) => overlay.series.includes(s)), `overlay series ${overlay.series}`);
      assert.ok(overlay.canvas, 'uPlot drew the overlay');
    }
  }

  if (r.probes.corruptions) {
    const pl = r.probes.corruptions.plots as { corruptions: string[]; accuracy: Record<string, number[]> | null; severities: number[] };
    const rows = page.locator('table.heatmap tbody tr');
    assert.equal(await rows.count(), pl.corruptions.length);
    if (pl.accuracy) {
      const c0 = pl.corruptions[0];
      assert.equal((await rows.first().locator('td').first().textContent())?.trim(), pct(pl.accuracy[c0][0]), 'heat-map cell = accuracy at severity 1');
    }
    // a CE column only where the report has Corruption Errors (ImageNet); its cells are the report's
    const ces = ((r.probes.corruptions.metrics as { perCorruption?: Array<{ ce: number | null }> }).perCorruption ?? []).map((c) => c.ce);
    assert.equal(await page.locator('table.heatmap td.ce').count(), ces.some((c) => c !== null) ? pl.corruptions.length : 0);
    if (ces[0] != null) assert.equal((await page.locator('table.heatmap td.ce').first().textContent())?.trim(), pct(ces[0]));
    const sev = await plotInfo(page, 'corruptions-severity');
    assert.deepEqual(sev.series, pl.corruptions);
    assert.equal(sev.points, pl.severities.length);
    assert.equal(Number(await attr(page, '[data-gallery="corruptions-gallery"]', 'data-count')), withArtifacts(r, 'corruptions'));
  }

  if (r.probes.attack) await checkAttack(page, r);
  if (r.probes['cue-conflict']) await checkCueConflict(page, r);
  if (r.probes.prior) {
    const m = r.probes.prior.metrics as { probes?: Record<string, Record<string, unknown>> };
    if (m.probes) {
      const p = await plotInfo(page, 'prior-accuracies');
      assert.equal(p.series.length, Object.keys(m.probes).length, 'one series per classifier');
      assert.equal(p.series[0], 'logistic regression');
    }
  }

  // Every plot on the page was drawn.
  const figs = await page.locator('figure[data-plot]').count();
  assert.equal(await page.locator('figure[data-plot] .uplot').count(), figs, 'every figure holds a uPlot chart');
}

async function checkAttack(page: Page, r: Report): Promise<void> {
  const p = r.probes.attack;
  const pl = p.plots as { eps?: { linf: number[]; l2: number[] }; robustAccuracy?: Record<string, unknown[] | null> };
  if (pl.robustAccuracy && pl.eps) {
    // L2 curves are the keys ending in L2 (pgdL2, apgdCeL2, anyL2...); null: not run or not its own.
    const linf = Object.entries(pl.robustAccuracy).filter(([k, v]) => Array.isArray(v) && !/L2$/.test(k));
    const l2 = Object.entries(pl.robustAccuracy).filter(([k, v]) => Array.isArray(v) && /L2$/.test(k));
    const plot = await plotInfo(page, 'attack-robust-linf');
    assert.equal(plot.series.length, linf.length, 'one curve per L∞ attack that ran');
    assert.equal(plot.points, linf.length * pl.eps.linf.length);
    if (l2.length) assert.equal((await plotInfo(page, 'attack-robust-l2')).points, l2.length * pl.eps.l2.length);
    // The protocol log: one row per attack that ran, after the clean row.
    const protocol = (p.metrics as { protocol?: { linf: unknown[] } }).protocol;
    if (protocol?.linf.length) assert.equal(await page.locator('.attack-protocol table').first().locator('tbody tr').count(), protocol.linf.length + 1);
  }
  const recs = p.records.filter((x) => x.artifacts?.length) as Array<{ image: number; minEps: number; pred: number; advLabel: number }>;
  const g = page.locator('[data-gallery="attack-gallery"]');
  assert.equal(Number(await g.getAttribute('data-count')), recs.length);
  if (recs.length) {
    // Smallest minimal ε first: original, adversarial and perturbation with the labels.
    const first = [...recs].sort((a, b) => a.minEps - b.minEps || a.image - b.image)[0];
    const card = g.locator('.card').first();
    assert.equal(await card.locator('.card-title').textContent(), r.images[first.image].id);
    const digits = (p.metrics as { domain?: string }).domain === 'digits';
    assert.match((await card.locator('.card-meta').textContent()) ?? '', new RegExp(`minimal ε ${(digits ? String(Math.round(first.minEps * 1e4) / 1e4) : epsText(first.minEps)).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    const captions = await card.locator('figure.thumb figcaption').allTextContents();
    assert.equal(captions[0], `original${className(r, first.pred)}`);
    assert.ok(captions[1].startsWith(`adversarial${className(r, first.advLabel)}`), captions[1]);
    assert.ok(captions[2].startsWith('perturbation'));
    await checkImages(page, '[data-gallery="attack-gallery"]', page.url().startsWith('file:') ? 'standalone' : 'webview');
  }
}

async function checkCueConflict(page: Page, r: Report): Promise<void> {
  const p = r.probes['cue-conflict'];
  const m = p.metrics as { shapeBias: number | null; gallery?: Array<{ shape: string; texture: string; answer: string }> };
  const byShape = ((p.plots ?? {}) as { byShape?: unknown[] }).byShape ?? [];
  if (m.shapeBias !== null) {
    const fig = await plotInfo(page, 'cue-conflict-shape-bias');
    assert.equal(fig.points, 1 + byShape.length, 'all stimuli, then one bar per shape category');
    const caption = (await page.locator('figure[data-plot="cue-conflict-shape-bias"] .note').textContent()) ?? '';
    assert.match(caption, /humans ≈ 0\.96/);
    assert.match(caption, /ResNet-50 ≈ 0\.22/);
  }
  const stimuli = m.gallery ?? [];
  const g = page.locator('[data-gallery="cue-conflict-gallery"]');
  assert.equal(Number(await g.getAttribute('data-count')), stimuli.length);
  if (stimuli.length) {
    const dd = await g.locator('.card').first().locator('dd').allTextContents();
    assert.deepEqual([dd[0], dd[1], dd[2].replace(/ \(.*\)$/, '')], [stimuli[0].shape, stimuli[0].texture, stimuli[0].answer]);
    await g.getByLabel('decided by texture only').check();
    assert.equal(Number(await g.getAttribute('data-count')), stimuli.filter((s) => s.answer === s.texture).length);
    await g.getByLabel('decided by texture only').uncheck();
  }
}

/** The images of a gallery's first page load, from where the host allows. */
async function checkImages(page: Page, gallery: string, mode: 'webview' | 'standalone'): Promise<void> {
  const imgs = page.locator(`${gallery} img`);
  await imgs.first().scrollIntoViewIfNeeded();
  await page.waitForFunction((sel: string) => [...document.querySelectorAll(`${sel} .cell:first-child img`)].every((i: any) => i.complete && i.naturalWidth > 0), gallery, { timeout: 10_000 });
  const srcs = await imgs.evaluateAll((els: any[]) => els.map((e) => e.getAttribute('src')));
  for (const s of srcs) {
    if (mode === 'standalone') assert.match(s, /^data:image\/(png|webp);base64,/);
    else assert.ok(s.startsWith(`${WEBVIEW_ORIGIN}/report/artifacts/`), s);
  }
}

function assertQuiet(watch: Watch, violations: string[]): void {
  assert.deepEqual(violations, [], 'no Content-Security-Policy violations');
  assert.deepEqual(watch.refused, [], 'no request left the page');
  assert.deepEqual(watch.errors, [], 'no page errors');
  assert.deepEqual(watch.console.filter((l) => l.startsWith('error')), [], 'no console errors');
}

test('webview, as the VS Code panel shows it, on the demo report', { skip, timeout: 120_000 }, async (t) => {
  const watch = newWatch();
  const { page, context } = await openWebview(browser, { report: demo.report, reportDir: demo.dir, bundleDir: BUNDLE, theme: 'light', watch });
  const posted = async (): Promise<unknown[]> => page.evaluate(() => window.__posted);
  try {
    await t.test('summary, findings, plots and galleries match the report; the page posts ready', async () => {
      await checkContent(page, demo.report, 'webview');
      assert.deepEqual((await posted())[0], { type: 'ready' });
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)', 'the editor background');
    });

    await t.test('the CSP is in force: an image from elsewhere is refused and reported', async () => {
      await page.evaluate(() => {
        const i = document.createElement('img');
        i.src = 'https://example.com/x.png';
        document.body.appendChild(i);
      });
      await page.waitForFunction(() => window.__cspViolations.length > 0);
      assert.match((await cspViolations(page, watch)).join('\n'), /img-src https:\/\/example\.com/);
      await page.evaluate(() => {
        window.__cspViolations.length = 0;
        document.querySelector('img[src^="https://example.com"]').remove();
      });
      watch.console.length = 0;
    });

    await t.test('screenshots in the light theme, then after VS Code switches to the dark theme (plots re-coloured)', async () => {
      await screenshot(page, join(OUT, 'webview-light.png'));
      const swatch = () => page.evaluate(() => getComputedStyle(document.querySelector('.swatch')).backgroundColor);
      assert.equal(await swatch(), 'rgb(26, 133, 255)', 'the light theme\'s charts.blue');
      // VS Code swaps the variables on <html> and the class on <body>.
      await page.evaluate((vars: Record<string, string>) => {
        for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
        document.documentElement.style.setProperty('color-scheme', 'dark');
        document.body.classList.replace('vscode-light', 'vscode-dark');
      }, VSCODE_THEMES.dark.vars as unknown as Record<string, string>);
      await page.waitForFunction(() => getComputedStyle(document.querySelector('.swatch')).backgroundColor === 'rgb(55, 148, 255)');
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(31, 31, 31)');
      assert.equal(await page.locator('figure[data-plot] .uplot').count(), await page.locator('figure[data-plot]').count(), 'plots rebuilt');
      await screenshot(page, join(OUT, 'webview-dark.png'));
      assert.ok(statSync(join(OUT, 'webview-dark.png')).size > 10_000);
    });

    await t.test('a click, Enter or Space on a finding posts a reveal with that finding\'s own subject; arrows move, Tab leaves', async () => {
      await page.evaluate(() => window.scrollTo(0, 0));
      const sorted = sortedFindings(demo.report);
      const expected = (f: Finding) => ({ type: 'reveal', uri: f.subject.uri, ...(f.subject.line !== undefined ? { line: f.subject.line } : {}) });
      const start = (await posted()).length;
      const cards = page.locator('[data-gallery="findings"] .finding');
      const k = sorted.slice(0, 25).findIndex((f) => f.subject.line !== undefined);
      assert.ok(k >= 0, 'the demo has a finding on a manifest row');
      await cards.nth(k).click();
      await cards.first().focus();
      await page.keyboard.press('ArrowDown');
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.index), '1');
      await page.keyboard.press('Enter');
      await page.keyboard.press('ArrowUp');
      await page.keyboard.press(' ');
      assert.deepEqual((await posted()).slice(start), [expected(sorted[k]), expected(sorted[1]), expected(sorted[0])]);
      assert.equal(await page.locator('[data-gallery="findings"] .card[tabindex="0"]').count(), 1, 'one tab stop in the list');
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => !!document.activeElement?.closest('[data-gallery="findings"] ul')), false, 'Tab leaves the list');
    });

    await t.test('galleries page by buttons and keyboard; Enter on a card reveals its manifest row', async () => {
      const g = page.locator('[data-gallery="patches-gallery"]');
      assert.equal(withArtifacts(demo.report, 'patches'), 30, 'the patch probe rendered the 30 images asked for');
      assert.equal(await g.getAttribute('data-pages'), '3');
      await g.getByRole('button', { name: /Next page/ }).click();
      assert.equal(await g.getAttribute('data-page'), '2');
      assert.equal(await g.locator('.card').first().getAttribute('data-index'), '12');
      const recs = demo.report.probes.patches.records.filter((x) => x.artifacts?.length);
      assert.equal(await g.locator('.card .card-title').first().textContent(), demo.report.images[recs[12].image].id);
      await g.locator('.card').first().focus();
      await page.keyboard.press('End');
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.index), '23');
      await page.keyboard.press('ArrowRight');
      assert.equal(await g.getAttribute('data-page'), '3');
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.index), '24');
      await page.keyboard.press('PageUp');
      assert.equal(await g.getAttribute('data-page'), '2');
      await page.keyboard.press('ArrowLeft');
      assert.equal(await g.getAttribute('data-page'), '1');
      assert.equal(await page.evaluate(() => document.activeElement?.dataset.index), '11');
      await page.keyboard.press('Enter');
      const img = demo.report.images[recs[11].image];
      assert.deepEqual((await posted()).at(-1), { type: 'reveal', uri: img.uri, line: img.line });
    });

    await t.test('a gallery of 3,000 images (sent with showReport) keeps one page of images in the document', async () => {
      const g = page.locator('[data-gallery="patches-gallery"]');
      const recs = demo.report.probes.patches.records.filter((x) => x.artifacts?.length);
      const inDocument = await page.locator('img').count();
      const big = structuredClone(demo.report);
      big.probes.patches.records = Array.from({ length: 3000 }, (_, i) => ({ ...recs[i % recs.length] }));
      await page.evaluate((report: unknown) => window.postMessage({ type: 'showReport', report, artifactBase: 'https://skeptic-webview.test/report/' }, '*'), big);
      await page.waitForFunction(() => document.querySelector('[data-gallery="patches-gallery"]')?.dataset.count === '3000');
      assert.equal(await g.getAttribute('data-pages'), '250');
      const bound = 12 * (3 + 2); // 12 cards a page, at most original + 3 shuffles + 2 evidence maps each
      assert.ok((await g.locator('img').count()) <= bound);
      await g.locator('input.page-input').fill('200');
      await g.locator('input.page-input').press('Enter');
      assert.equal(await g.getAttribute('data-page'), '200');
      assert.equal(await g.locator('.card').first().getAttribute('data-index'), String(199 * 12));
      assert.ok((await g.locator('img').count()) <= bound);
      assert.ok((await page.locator('img').count()) <= inDocument + bound, 'the document holds the same pages\' worth of images as before');
    });

    await t.test('artifact paths that leave the report folder are never requested; reveal sends only the report\'s own file: URIs', async () => {
      const evil = structuredClone(demo.report);
      const bad = ['../../etc/passwd.png', '/etc/passwd.png', 'file:///etc/passwd.png', 'https://example.com/x.png', 'artifacts/%2e%2e/%2e%2e/x.png', 'C:/Windows/x.png', 'artifacts\\..\\x.png', 'javascript:alert(1)'];
      evil.probes.patches.records = [{ image: 0, pred: 0, conf: 1, shuffled: [0, 0, 0], artifacts: bad }];
      evil.findings = [
        { ...evil.findings[0], id: 'x1', message: 'foreign uri', subject: { uri: 'https://example.com/', path: 'x' } },
        { ...evil.findings[0], id: 'x2', message: 'command uri', subject: { uri: 'command:workbench.action.terminal.new', path: 'y' } },
      ];
      await page.evaluate((report: unknown) => window.postMessage({ type: 'showReport', report, artifactBase: 'https://skeptic-webview.test/report/' }, '*'), evil);
      await page.waitForFunction(() => document.querySelector('[data-gallery="findings"]')?.dataset.count === '2');
      const card = page.locator('[data-gallery="patches-gallery"] .card');
      assert.equal(await card.count(), 1);
      assert.equal(await card.locator('img').count(), 0, 'no <img> for any bad path');
      assert.equal(await card.locator('.noimg').count(), bad.length);
      const n = (await posted()).length;
      await page.locator('[data-gallery="findings"] .finding').first().click();
      await page.locator('[data-gallery="findings"] .finding').nth(1).click();
      assert.equal((await posted()).length, n, 'no reveal for URIs that are not the report\'s file: subjects');
    });

    await t.test('a probe this page does not know, and a failed probe, render generically', async () => {
      const odd = structuredClone(demo.report);
      const art = demo.report.probes.patches.records.find((x) => x.artifacts?.length)!.artifacts!;
      odd.probes['future-probe'] = { title: 'Future probe', status: 'ok', params: { k: 1 }, metrics: { score: 0.25, nested: { a: [1, 2] } }, headline: 'score 25%', records: [{ image: 0, artifacts: art }], count: 1 };
      odd.probes.shift = { ...odd.probes.shift, status: 'failed', reason: 'the model would not run', metrics: {}, plots: undefined, records: [] };
      await page.evaluate((report: unknown) => window.postMessage({ type: 'showReport', report, artifactBase: 'https://skeptic-webview.test/report/' }, '*'), odd);
      await page.waitForSelector('section[data-probe="future-probe"]');
      assert.equal(Number(await attr(page, '[data-gallery="future-probe-gallery"]', 'data-count')), 1);
      assert.equal(await page.locator('section[data-probe="future-probe"] img').count(), art.length);
      assert.match((await page.locator('section[data-probe="shift"] .reason').textContent()) ?? '', /would not run/);
      assert.equal(await page.locator('.probe-card[data-probe="future-probe"] .key-value').textContent(), '0', 'no findings: its key number');
    });

    assertQuiet(watch, await cspViolations(page, watch));
  } finally {
    await context.close();
  }
});

test('standalone report.html opens from file:// with no network: same content, embedded images, no CSP violations, light and dark', { skip, timeout: 60_000 }, async () => {
  const file = join(demo.dir, 'report.html');
  const html = readFileSync(file, 'utf8');
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; img-src data:; style-src &#39;nonce-/);
  assert.doesNotMatch(html, /<(link|script)[^>]+(src|href)=/i, 'nothing loaded from outside the file');
  const watch = newWatch();
  const { page, context } = await openStandalone(browser, { file, scheme: 'light', watch });
  try {
    await checkContent(page, demo.report, 'standalone');
    assert.equal(await page.evaluate(() => document.body.classList.contains('standalone')), true);
    assert.equal(await page.locator('.finding .loc.link').count(), 0, 'locations are plain text');
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)');
    await screenshot(page, join(OUT, 'standalone-light.png'), { fullPage: false });
    // The browser's colour scheme turns dark: the page follows (prefers-color-scheme) and redraws its plots.
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(30, 31, 34)');
    await page.waitForFunction(() => getComputedStyle(document.querySelector('.swatch')).backgroundColor === 'rgb(94, 168, 255)');
    await screenshot(page, join(OUT, 'standalone-dark.png'), { fullPage: false });
    assertQuiet(watch, await cspViolations(page, watch));
  } finally {
    await context.close();
  }
});

test('mnist-8 fixture (idx data, 1-channel 28×28, 10 classes): webview and standalone show the report', { skip: noFixtures, timeout: 60_000 }, async () => {
  assert.equal(mnist.report.dataset.selected, 100);
  const watch = newWatch();
  const { page, context } = await openWebview(browser, { report: mnist.report, reportDir: mnist.dir, bundleDir: BUNDLE, theme: 'dark', watch });
  try {
    await checkContent(page, mnist.report, 'webview');
    await screenshot(page, join(OUT, 'webview-mnist-dark.png'));
    assertQuiet(watch, await cspViolations(page, watch));
  } finally {
    await context.close();
  }
  const w2 = newWatch();
  const s = await openStandalone(browser, { file: join(mnist.dir, 'report.html'), scheme: 'light', watch: w2 });
  try {
    await checkContent(s.page, mnist.report, 'standalone');
    assertQuiet(w2, await cspViolations(s.page, w2));
  } finally {
    await s.context.close();
  }
});
