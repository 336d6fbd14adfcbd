/**
 * The daemon's side of comparing audits, through a real LSP connection (the built dist/server.js):
 * skeptic/compare returns engine/compare's comparison of two stored reports, and
 * skeptic/problemsBaseline makes the published diagnostics of a report only its new findings
 * (and all of them again). Reports: the demo model on 60 images, and the same model fed BGR.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { compareReports, type Comparison } from '../../server/engine/compare';
import type { Report } from '../../server/engine/report/schema';
import { CompareRequest, ProblemsBaselineRequest } from '../../server/protocol';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';
import { ROOT, TestDaemon } from './helpers/lsp-client';
import { loadReport } from '../../server/engine/compare/load';

let ws: string;
let daemon: TestDaemon;
const folder = (n: string) => join(ws, '.skeptic/reports', n);
const read = (n: string) => loadReport(join(folder(n), 'report.json')) as Report;

before(async () => {
  ensureDemoData();
  const b = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(b.status, 0, b.stderr);
  ws = mkdtempSync(join(tmpdir(), 'skeptic-daemon-compare-'));
  mkdirSync(join(ws, '.skeptic/reports'), { recursive: true });
  for (const [name, extra] of [['base', []], ['new', ['--preprocess', '{"channelOrder":"bgr"}']]] as const) {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), 'audit', DEMO_MODEL, '--data', DEMO_TEST, '--limit', '60', '--probes', 'clean,shift', '--quiet', '--out', folder(name), ...extra], { cwd: ws, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  daemon = await TestDaemon.start({ workspace: ws });
});
after(async () => {
  await daemon?.stop();
  rmSync(ws, { recursive: true, force: true });
});

const mine = (n: string) => (d: { data?: unknown }) => (d.data as { report?: string } | undefined)?.report === pathToFileURL(folder(n)).href;

test('skeptic/compare: the engine comparison of two stored reports; unknown folders give null', async () => {
  const res = await daemon.connection.sendRequest(CompareRequest, { base: pathToFileURL(folder('base')).href, new: pathToFileURL(folder('new')).href });
  assert.ok(res);
  const c = res.comparison as Comparison;
  const expected = compareReports(read('base'), read('new'));
  assert.deepEqual(c.metrics, expected.metrics);
  assert.deepEqual(c.images, expected.images);
  assert.equal(c.metrics.find((m) => m.key === 'clean.accuracy')?.change, 'worse');
  assert.equal(res.base.summary.folder, pathToFileURL(folder('base')).href);
  assert.equal((res.new.report as Report).findings.length, read('new').findings.length);
  assert.equal(await daemon.connection.sendRequest(CompareRequest, { base: pathToFileURL(join(ws, 'nowhere')).href, new: pathToFileURL(folder('new')).href }), null);
});

test('skeptic/problemsBaseline: Problems shows only the findings the baseline lacks, then all again', async () => {
  const manifest = pathToFileURL(DEMO_TEST).href;
  const base = read('base');
  const next = read('new');
  const known = new Set(base.findings.map((f) => f.id));
  const fresh = next.findings.filter((f) => !known.has(f.id));
  const onManifest = (fs: Report['findings']) => fs.filter((f) => f.subject.uri === manifest).length;
  assert.ok(fresh.length > 0 && fresh.length < next.findings.length, `${fresh.length} of ${next.findings.length} new`);
  await daemon.waitFor('all of NEW on the manifest', () => (daemon.diagnostics.get(manifest) ?? []).filter(mine('new')).length === onManifest(next.findings));

  const { hidden } = await daemon.connection.sendRequest(ProblemsBaselineRequest, { folder: pathToFileURL(folder('new')).href, baseline: pathToFileURL(folder('base')).href });
  assert.equal(hidden, next.findings.length - fresh.length);
  await daemon.waitFor('only the new findings of NEW', () => (daemon.diagnostics.get(manifest) ?? []).filter(mine('new')).length === onManifest(fresh));
  const ids = new Set((daemon.diagnostics.get(manifest) ?? []).filter(mine('new')).map((d) => (d.data as { finding: string }).finding));
  assert.deepEqual([...ids].sort(), fresh.filter((f) => f.subject.uri === manifest).map((f) => f.id).sort());
  // BASE's own diagnostics are untouched.
  assert.equal((daemon.diagnostics.get(manifest) ?? []).filter(mine('base')).length, onManifest(base.findings));

  await daemon.connection.sendRequest(ProblemsBaselineRequest, { folder: pathToFileURL(folder('new')).href, baseline: null });
  await daemon.waitFor('all of NEW again', () => (daemon.diagnostics.get(manifest) ?? []).filter(mine('new')).length === onManifest(next.findings));
});
