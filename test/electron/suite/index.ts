/**
 * The end-to-end scenario through the extension API, inside VS Code's extension host (loaded by
 * @vscode/test-electron from test/electron/run.ts, bundled by it into test-output/electron/).
 * The workspace (test/e2e/workspace.ts) holds skeptic.json pairing the model with its manifest,
 * so the audit needs no quick pick, and settings for three probes on 24 images on the CPU.
 *
 *   1. the extension activates (workspaceContains skeptic.json);
 *   2. skeptic.auditModel on shapes-cnn.onnx writes report.json (the probes, 24 images, cpu);
 *   3. vscode.languages.getDiagnostics has every finding: on the model, and on the manifest rows
 *      with the range of the row's path;
 *   4. skeptic.showReport opens the report webview; the gallery images it shows are on disk;
 *   5. a second, longer audit (every probe, 400 images) stops on skeptic.cancelAudit with a
 *      partial report marked cancelled.
 * What only the UI shows (the context menu, the quick pick, hovers, the status bar, the webview's
 * content) is checked by the code-server suite, test/e2e/vscode.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import { loadPerImage } from '../../../server/engine/report/per-image';
import type { Report } from '../../../server/engine/report/schema';
import { LIMIT, LONG, PROBES, REPORT } from '../../e2e/workspace';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, fn: () => T | undefined): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not after ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

export async function run(): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  assert.ok(folder, 'VS Code opened the test workspace');
  const ws = folder.fsPath;
  const model = vscode.Uri.joinPath(folder, 'shapes-cnn.onnx');
  const csv = vscode.Uri.joinPath(folder, 'data/test.csv');
  const reportFile = join(ws, REPORT);
  // report.json with its per-image files (images, records, every finding)
  const readReport = () => loadPerImage(JSON.parse(readFileSync(reportFile, 'utf8')) as Report, dirname(reportFile));
  let report!: Report;

  const steps: Array<[string, () => Promise<void>]> = [
    ['the extension activates', async () => {
      const ext = vscode.extensions.getExtension('skeptic.skeptic');
      assert.ok(ext, 'skeptic.skeptic is loaded');
      await ext.activate();
      assert.ok(ext.isActive);
    }],
    ['skeptic.auditModel on the model writes report.json', async () => {
      // Resolves when the audit has ended (the command awaits it).
      await vscode.commands.executeCommand('skeptic.auditModel', model);
      assert.ok(existsSync(reportFile), `${reportFile} was written (see the Skeptic output channel)`);
      report = readReport();
      assert.equal(report.run.cancelled, false);
      assert.deepEqual(Object.keys(report.probes).sort(), [...PROBES].sort());
      assert.equal(report.dataset.evaluated, LIMIT);
      assert.equal(report.device.used, 'cpu');
    }],
    ['the findings are diagnostics on the model and on manifest rows', async () => {
      const onModel = report.findings.filter((f) => f.subject.path.endsWith('shapes-cnn.onnx'));
      const onRows = report.findings.filter((f) => f.subject.path.endsWith('test.csv') && f.subject.line);
      assert.ok(onModel.length > 0 && onRows.length > 0, `findings on the model and on rows: ${report.findings.map((f) => f.rule).join(', ')}`);
      const code = (d: vscode.Diagnostic) => (typeof d.code === 'object' ? String(d.code.value) : String(d.code));
      await until('the diagnostics of every finding', 30_000, () => {
        const m = vscode.languages.getDiagnostics(model);
        const c = vscode.languages.getDiagnostics(csv);
        return onModel.every((f) => m.some((d) => code(d) === f.rule && d.source === f.probe)) && onRows.every((f) => c.some((d) => code(d) === f.rule && d.range.start.line === f.subject.line! - 1)) ? true : undefined;
      });
      // A row's diagnostic covers the row's path cell: what the squiggle underlines.
      const doc = await vscode.workspace.openTextDocument(csv);
      for (const f of onRows) {
        const d = vscode.languages.getDiagnostics(csv).find((x) => code(x) === f.rule && x.range.start.line === f.subject.line! - 1)!;
        assert.equal(doc.getText(d.range), report.images[f.subject.image!].id, `the range of ${f.id}`);
        assert.equal(d.message, f.message);
        assert.equal(d.severity, f.severity === 'error' ? vscode.DiagnosticSeverity.Error : f.severity === 'warning' ? vscode.DiagnosticSeverity.Warning : vscode.DiagnosticSeverity.Information);
      }
    }],
    ['skeptic.showReport opens the report webview', async () => {
      const dir = join(ws, REPORT, '..');
      await vscode.commands.executeCommand('skeptic.showReport', vscode.Uri.file(dir).toString());
      const tab = await until('the report tab', 20_000, () =>
        vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.includes('skeptic.report')),
      );
      assert.match(tab.label, /^Skeptic: shapes-cnn/);
      // The galleries' images: the page loads them from the report's folder.
      const attack = report.probes.attack.records.filter((r) => Array.isArray(r.artifacts) && r.artifacts.length);
      const cue = ((report.probes['cue-conflict'].metrics as { gallery?: Array<{ artifact?: string }> }).gallery ?? []);
      assert.ok(attack.length > 0, 'an adversarial gallery');
      assert.ok(cue.length > 0, 'a cue-conflict gallery');
      for (const r of attack) for (const a of r.artifacts!) assert.ok(existsSync(join(dir, a)), `artifact ${a}`);
    }],
    ['a longer audit stops on skeptic.cancelAudit, with a partial report', async () => {
      const file = join(ws, 'skeptic.json');
      const cfg = JSON.parse(readFileSync(file, 'utf8')) as { models: Array<Record<string, unknown>> };
      Object.assign(cfg.models[0], LONG);
      writeFileSync(file, JSON.stringify(cfg, null, 2) + '\n');
      const first = report.run.startedAt;
      let settled = false;
      const audit = Promise.resolve(vscode.commands.executeCommand('skeptic.auditModel', model)).finally(() => (settled = true));
      // Cancel until it takes: a cancel that arrives before the audit has started is answered
      // "no audit is running" and changes nothing.
      const end = Date.now() + 60_000;
      await sleep(2_000);
      while (!settled && Date.now() < end) {
        await vscode.commands.executeCommand('skeptic.cancelAudit');
        await Promise.race([audit, sleep(2_000)]);
      }
      await audit;
      const r = readReport();
      assert.notEqual(r.run.startedAt, first, 'a new report.json');
      assert.equal(r.run.cancelled, true, 'report.json: run.cancelled');
    }],
  ];

  for (const [name, fn] of steps) {
    const s = Date.now();
    try {
      await fn();
      console.log(`  ✔ ${name} (${((Date.now() - s) / 1000).toFixed(1)} s)`);
    } catch (e) {
      console.log(`  ✖ ${name}: ${(e as Error).stack ?? e}`);
      throw e;
    }
  }
}
