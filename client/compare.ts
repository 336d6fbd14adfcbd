/**
 * "Compare with…": picks the two reports (the one the command was run on, or a model's latest, as
 * NEW; another report as BASE), asks the daemon for the comparison (skeptic/compare) and shows it
 * in the report panel. "Show Only New Findings in Problems" asks the daemon to leave out of
 * Problems the findings the BASE of the last comparison (or a chosen one) already had.
 */
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { ProblemsBaselineRequest, ReportRequest, ReportsRequest, type ReportSummary } from '../server/protocol';
import type { ReportPanel } from './report-panel';

export class Comparisons {
  /** The last pair compared (folder URIs), for the Problems commands. */
  private last?: { base: string; new: string };
  /** Report folders whose Problems show only new findings. */
  private readonly filtered = new Set<string>();

  constructor(
    private readonly client: () => LanguageClient,
    private readonly panel: ReportPanel,
  ) {}

  /** arg: a report folder (URI string or Uri), a report.json, or an .onnx model; none: ask. */
  async compareWith(arg?: vscode.Uri | string): Promise<void> {
    const next = await this.newReport(arg);
    if (!next) return;
    const base = await this.pickBase(next, 'Skeptic: compare with which earlier report (BASE)?');
    if (!base) return;
    this.last = { base, new: next };
    await this.panel.showComparison(base, next);
  }

  async showOnlyNew(): Promise<void> {
    let pair = this.last;
    if (!pair) {
      const next = await this.newReport(undefined);
      const base = next ? await this.pickBase(next, 'Skeptic: hide the findings that which report (BASE) already had?') : undefined;
      if (!next || !base) return;
      pair = { base, new: next };
    }
    const { hidden } = await this.client().sendRequest(ProblemsBaselineRequest, { folder: pair.new, baseline: pair.base });
    this.filtered.add(pair.new);
    void vscode.window.showInformationMessage(`Skeptic: Problems shows only the new findings of ${vscode.Uri.parse(pair.new).fsPath} (${hidden} already in ${vscode.Uri.parse(pair.base).fsPath} hidden).`);
  }

  async showAll(): Promise<void> {
    for (const folder of this.filtered) await this.client().sendRequest(ProblemsBaselineRequest, { folder, baseline: null });
    this.filtered.clear();
  }

  private async newReport(arg?: vscode.Uri | string): Promise<string | undefined> {
    const uri = typeof arg === 'string' ? vscode.Uri.parse(arg) : arg;
    if (uri && /\.onnx$/i.test(uri.path)) {
      const res = await this.client().sendRequest(ReportRequest, { model: uri.toString() });
      if (!res) {
        void vscode.window.showInformationMessage(`Skeptic: ${uri.fsPath} has no report yet. Audit it first.`);
        return undefined;
      }
      return res.summary.folder;
    }
    if (uri) return (/report\.json$/i.test(uri.path) ? vscode.Uri.joinPath(uri, '..') : uri).toString();
    const all = await this.client().sendRequest(ReportsRequest);
    return this.pick(all, 'Skeptic: compare which report (NEW)?');
  }

  private async pickBase(next: string, title: string): Promise<string | undefined> {
    const all = await this.client().sendRequest(ReportsRequest);
    const self = all.find((s) => s.folder === next);
    // Reports of the same dataset first: they pair image by image.
    const others = all.filter((s) => s.folder !== next).sort((a, b) => Number(b.dataset === self?.dataset) - Number(a.dataset === self?.dataset));
    return this.pick(others, title, true);
  }

  private async pick(list: ReportSummary[], title: string, browse = false): Promise<string | undefined> {
    type Item = vscode.QuickPickItem & { folder?: string };
    const items: Item[] = list.map((s) => ({ label: `${s.modelName} on ${s.datasetName}`, description: s.verdict, detail: `${s.startedAt.slice(0, 16).replace('T', ' ')} · ${vscode.Uri.parse(s.folder).fsPath}`, folder: s.folder }));
    if (browse) items.push({ label: '$(folder-opened) Browse…', description: 'a report folder or report.json elsewhere' });
    if (!items.length) {
      void vscode.window.showInformationMessage('Skeptic: no report yet. Right-click an .onnx file and choose "Audit Robustness".');
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(items, { title });
    if (!picked) return undefined;
    if (picked.folder) return picked.folder;
    const files = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, filters: { 'Skeptic report': ['json'] }, title: 'Skeptic: BASE report' });
    const f = files?.[0];
    return f ? (/\.json$/i.test(f.path) ? vscode.Uri.joinPath(f, '..') : f).toString() : undefined;
  }
}
