/**
 * The side-by-side comparison in the report webview, in headless Chromium (playwright-core), on
 * REAL reports: the demo model on 80 images of its data (BASE) and the same model fed BGR instead
 * of RGB (NEW, a re-export that got the channel order wrong), with the clean, shift, corruptions
 * and attack probes. Opened as the VS Code panel shows it (test/browser/harness openWebview with a
 * comparison: BASE's artifacts under one path, NEW's under another).
 *
 * Checks what the page shows against engine/compare's Comparison: the two summaries, one row per
 * comparable metric with its change, the overlaid plots (series of both reports, drawn), the
 * galleries of images that became fragile and recovered (counts, pictures of both reports loaded),
 * reveal messages, and no CSP violation or network request. A screenshot (dark theme) lands in
 * test-output/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { audit } from '../../server/engine/audit';
import { compareReports, type Comparison } from '../../server/engine/compare';
import { openDataset } from '../../server/engine/data';
import { loadModel } from '../../server/engine/model';
import { createProbes } from '../../server/engine/probes';
import type { Report } from '../../server/engine/report/schema';
import { writeReport } from '../../server/engine/report/write';
import { pct } from '../../webviews/lib/format';
import { browserSkipReason, cspViolations, launch, openWebview, screenshot, type Watch } from '../browser/harness';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';
import { loadReport } from '../../server/engine/compare/load';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const window: any;
declare const document: any;

const ROOT = resolve(__dirname, '../..');
const OUT = join(ROOT, 'test-output');
const BUNDLE = join(ROOT, 'dist/webviews');
const skip = browserSkipReason();

let browser: Browser;
let work: string;
let base: Report;
let next: Report;
let comparison: Comparison;

async function makeReport(dir: string, preprocess?: string): Promise<Report> {
  const model = await loadModel(DEMO_MODEL, { device: 'cpu', preprocess });
  try {
    const dataset = await openDataset(DEMO_TEST, { labels: model.labels, limit: 80, seed: 0 });
    const params = { attack: { attacks: ['pgd-linf'], maxImages: 30, bisectionSteps: 2, largeEps: 0 } };
    const report = await audit(model, dataset, { probes: createProbes(['clean', 'shift', 'corruptions', 'attack'], params), seed: 0, batchSize: 64, limit: 80, outDir: dir, baseDir: ROOT });
    await writeReport(report, dir, ['json']);
    return loadReport(join(dir, 'report.json'));
  } finally {
    await model.dispose();
  }
}

before(async () => {
  if (skip) return;
  ensureDemoData();
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  mkdirSync(OUT, { recursive: true });
  work = mkdtempSync(join(tmpdir(), 'skeptic-webview-compare-'));
  base = await makeReport(join(work, 'base'));
  next = await makeReport(join(work, 'new'), JSON.stringify({ channelOrder: 'bgr' }));
  comparison = compareReports(base, next);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const newWatch = (): Watch => ({ refused: [], console: [], errors: [] });

async function plotInfo(page: Page, id: string) {
  const fig = page.locator(`figure[data-plot="${id}"]`);
  assert.equal(await fig.count(), 1, `one plot ${id}`);
  await page.waitForFunction((sel: string) => !!document.querySelector(sel), `figure[data-plot="${id}"] .uplot canvas`, { timeout: 10_000 });
  return { series: JSON.parse((await fig.getAttribute('data-series')) ?? '[]') as string[], points: Number(await fig.getAttribute('data-points')) };
}

test('compare view: summaries, metric differences, overlaid plots, galleries of changed images', { skip, timeout: 180_000 }, async () => {
  // One theme: the report page's own tests cover light and dark; this one is about the comparison.
  for (const theme of ['dark'] as const) {
    const watch = newWatch();
    const { page, context } = await openWebview(browser, { report: next, reportDir: join(work, 'new'), bundleDir: BUNDLE, theme, watch, comparison: { comparison, baseReport: base, baseDir: join(work, 'base') } });
    try {
      assert.equal(await page.locator('#app').getAttribute('data-view'), 'compare');
      // The two summaries.
      for (const [which, r] of [['base', base], ['new', next]] as const) {
        const sideEl = page.locator(`.compare-side[data-side="${which}"]`);
        assert.match((await sideEl.textContent()) ?? '', new RegExp(r.probes.clean.headline!.replace(/[.%()]/g, '\\$&')));
        assert.equal(Number(await sideEl.locator('[data-findings]').getAttribute('data-findings')), r.findings.length);
      }
      // One row per comparable metric, with its change; clean accuracy worse, with both values.
      const comparable = comparison.metrics.filter((m) => m.comparable);
      assert.equal(await page.locator('tr[data-key]').count(), comparable.length);
      for (const m of comparable) assert.equal(await page.locator(`tr[data-key="${m.key}"]`).getAttribute('data-change'), m.change, m.key);
      const acc = comparison.metrics.find((m) => m.key === 'clean.accuracy')!;
      assert.equal(acc.change, 'worse');
      const cells = await page.locator('tr[data-key="clean.accuracy"] td').allTextContents();
      assert.deepEqual(cells.slice(0, 2), [pct(acc.base), pct(acc.new)]);
      assert.match(cells[4], /McNemar/);

      // Overlaid plots, drawn.
      const attack = await plotInfo(page, 'compare-attack');
      assert.deepEqual(attack.series, ['BASE: any L∞ attack', 'NEW: any L∞ attack']);
      assert.equal(attack.points, 2 * (base.probes.attack.metrics.eps as { linf: number[] }).linf.length);
      const corr = await plotInfo(page, 'compare-corruptions');
      assert.deepEqual(corr.series, ['BASE', 'NEW']);
      assert.equal(corr.points, 2 * (base.probes.corruptions.metrics.perCorruption as unknown[]).length);
      const shift = await plotInfo(page, 'compare-shift');
      assert.deepEqual(shift.series, ['BASE: horizontal', 'NEW: horizontal', 'BASE: vertical', 'NEW: vertical']);
      assert.equal(shift.points, 4 * (base.probes.shift.plots!.shifts as number[]).length);
      assert.equal(await page.locator('figure[data-plot="compare-shift-prob"]').count(), 1);

      // Galleries: counts, and the first card's pictures from both reports load.
      assert.ok(comparison.images.fragile.length > 0);
      for (const id of ['fragile', 'recovered'] as const) {
        assert.equal(Number(await page.locator(`[data-gallery="${id}"]`).getAttribute('data-count')), comparison.images[id].length, id);
      }
      const card = page.locator('[data-gallery="fragile"] .cell:first-child .change-card');
      assert.equal(await card.getAttribute('data-image'), comparison.images.fragile[0].id);
      await page.evaluate(() => document.querySelectorAll('img[loading="lazy"]').forEach((i: any) => (i.loading = 'eager')));
      const srcs = await card.locator('img').evaluateAll((imgs: any[]) => imgs.map((i) => i.getAttribute('src')));
      // An image that became fragile has NEW's pictures of its finding (BASE drew it only if it had one there).
      assert.ok(srcs.some((s: string) => s.includes('/report/artifacts/')), srcs.join(', '));
      const recoveredSrcs: string[] = await page.locator('[data-gallery="recovered"] .change-card img').evaluateAll((imgs: any[]) => imgs.map((i) => i.getAttribute('src')));
      if (comparison.images.recovered.length) assert.ok(recoveredSrcs.every((s) => /\/(base|report)\/artifacts\//.test(s)) && recoveredSrcs.some((s) => s.includes('/base/')), recoveredSrcs.join(', '));
      await page.waitForFunction(() => [...document.querySelectorAll('[data-gallery="fragile"] .cell:first-child img')].every((i: any) => i.complete && i.naturalWidth > 0), null, { timeout: 10_000 });

      // Enter on a card asks the editor to show its manifest row.
      await card.focus();
      await page.keyboard.press('Enter');
      const posted = (await page.evaluate(() => window.__posted)) as Array<{ type: string; uri?: string; line?: number }>;
      const reveal = posted.find((m) => m.type === 'reveal');
      assert.deepEqual(reveal, { type: 'reveal', uri: comparison.images.fragile[0].uri, line: comparison.images.fragile[0].line });

      await screenshot(page, join(OUT, `webview-compare-${theme}.png`));
      assert.deepEqual(await cspViolations(page, watch), [], 'no Content-Security-Policy violations');
      assert.deepEqual(watch.refused, [], 'no request left the page');
      assert.deepEqual(watch.errors, [], 'no page errors');
    } finally {
      await context.close();
    }
  }
});
