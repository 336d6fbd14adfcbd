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
  /** The step of the pick that is open, to keep its list current. */
  private step?: { update(all: ReportSummary[]): number };

  constructor(
    private readonly client: () => LanguageClient,
    private readonly panel: ReportPanel,
  ) {}

  /** arg: a report folder (URI string or Uri), a report.json, or an .onnx model; none: ask. */
  async compareWith(arg?: vscode.Uri | string): Promise<void> {
    const pair = await this.pickPair(arg, 'Skeptic: compare with which earlier report (BASE)?');
    if (!pair) return;
    this.last = pair;
    await this.panel.showComparison(pair.base, pair.new);
  }

  async showOnlyNew(): Promise<void> {
    const pair = this.last ?? (await this.pickPair(undefined, 'Skeptic: hide the findings that which report (BASE) already had?'));
    if (!pair) return;
    const { hidden } = await this.client().sendRequest(ProblemsBaselineRequest, { folder: pair.new, baseline: pair.base });
    this.filtered.add(pair.new);
    void vscode.window.showInformationMessage(`Skeptic: Problems shows only the new findings of ${vscode.Uri.parse(pair.new).fsPath} (${hidden} already in ${vscode.Uri.parse(pair.base).fsPath} hidden).`);
  }

  async showAll(): Promise<void> {
    for (const folder of this.filtered) await this.client().sendRequest(ProblemsBaselineRequest, { folder, baseline: null });
    this.filtered.clear();
  }

  /** The daemon's reports changed: the open pick (if any) lists them as they are now. */
  reportsChanged(all: ReportSummary[]): void {
    this.step?.update(all);
  }

  /**
   * NEW (from `arg`, or asked) and BASE (asked), in one quick pick that stays open from one step
   * to the next. It ignores focus-out: run from the command palette while a report panel has the
   * focus, the panel takes the focus back as the palette closes, and a pick that closed on blur
   * would vanish under the pointer (the end-to-end test saw it happen).
   */
  private async pickPair(arg: vscode.Uri | string | undefined, baseTitle: string): Promise<{ base: string; new: string } | undefined> {
    const pick = vscode.window.createQuickPick<Item>();
    pick.ignoreFocusOut = true;
    try {
      let next: string | undefined;
      if (arg) next = await this.newReport(arg);
      else {
        pick.title = 'Skeptic: compare which report (NEW)?';
        next = await this.choose(pick, (all) => all, false);
      }
      if (!next) return undefined;
      pick.title = baseTitle;
      const base = await this.choose(
        pick,
        (all) => {
          const self = all.find((s) => s.folder === next);
          // Reports of the same dataset first: they pair image by image.
          return all.filter((s) => s.folder !== next).sort((a, b) => Number(b.dataset === self?.dataset) - Number(a.dataset === self?.dataset));
        },
        true,
      );
      return base ? { base, new: next } : undefined;
    } finally {
      pick.dispose();
    }
  }

  /**
   * One step of the pick: shown busy at once (before the daemon answers), then the reports that
   * `among` keeps (and "Browse…" where `browse`), kept current while it is open: a report that
   * lands meanwhile (a CLI run, CI) shows up. Resolves to the chosen folder, or undefined when the
   * person leaves.
   */
  private async choose(pick: vscode.QuickPick<Item>, among: (all: ReportSummary[]) => ReportSummary[], browse: boolean): Promise<string | undefined> {
    pick.items = [];
    pick.value = '';
    pick.busy = true;
    // Listening before anything is awaited: the person may leave while the list is on its way.
    let accepted!: (item: Item | undefined) => void;
    const chosen = new Promise<Item | undefined>((resolve) => (accepted = resolve));
    const listeners = [pick.onDidAccept(() => accepted(pick.selectedItems[0] ?? pick.activeItems[0])), pick.onDidHide(() => accepted(undefined))];
    const update = (all: ReportSummary[]) => {
      const active = pick.activeItems[0]?.folder;
      const items: Item[] = among(all).map((s) => ({ label: `${s.modelName} on ${s.datasetName}`, description: s.verdict, detail: `${s.startedAt.slice(0, 16).replace('T', ' ')} · ${vscode.Uri.parse(s.folder).fsPath}`, folder: s.folder }));
      if (browse) items.push({ label: '$(folder-opened) Browse…', description: 'a report folder or report.json elsewhere', browse: true });
      pick.items = items;
      const keep = active && items.find((i) => i.folder === active);
      if (keep) pick.activeItems = [keep];
      return items.length;
    };
    let picked: Item | undefined;
    try {
      pick.show();
      const all = await Promise.race([this.client().sendRequest(ReportsRequest), chosen.then(() => undefined)]);
      if (!all) return undefined;
      if (!update(all)) {
        pick.hide();
        void vscode.window.showInformationMessage('Skeptic: no report yet. Right-click an .onnx file and choose "Audit Robustness".');
        return undefined;
      }
      pick.busy = false;
      this.step = { update };
      picked = await chosen;
    } finally {
      this.step = undefined;
      for (const l of listeners) l.dispose();
    }
    if (!picked) return undefined;
    if (picked.folder) return picked.folder;
    pick.hide();
    const files = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, filters: { 'Skeptic report': ['json'] }, title: 'Skeptic: BASE report' });
    const f = files?.[0];
    return f ? (/\.json$/i.test(f.path) ? vscode.Uri.joinPath(f, '..') : f).toString() : undefined;
  }

  /** The NEW report named by a command's argument: a report folder, its report.json, or a model. */
  private async newReport(arg: vscode.Uri | string): Promise<string | undefined> {
    const uri = typeof arg === 'string' ? vscode.Uri.parse(arg) : arg;
    if (/\.onnx$/i.test(uri.path)) {
      const res = await this.client().sendRequest(ReportRequest, { model: uri.toString() });
      if (!res) {
        void vscode.window.showInformationMessage(`Skeptic: ${uri.fsPath} has no report yet. Audit it first.`);
        return undefined;
      }
      return res.summary.folder;
    }
    return (/report\.json$/i.test(uri.path) ? vscode.Uri.joinPath(uri, '..') : uri).toString();
  }
}

type Item = vscode.QuickPickItem & { folder?: string; browse?: boolean };
