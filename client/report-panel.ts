/**
 * The "Skeptic Report" webview panel: the report page (webviews/report.ts, bundled into
 * dist/webviews/) with the report embedded, artifacts (PNGs) loaded from the report's folder.
 * One panel, reused; when a newer report of the shown folder arrives it is sent to the page
 * (ShowReportMessage) instead of reloading it. The page's 'reveal' opens the file a finding
 * points at, at its line.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import type { Report } from '../server/engine/report/schema';
import { CompareRequest, ReportRequest, ReportsRequest, type CompareResult, type ReportResult, type ShowReportMessage, type WebviewToExtension } from '../server/protocol';
import { renderReportHtml } from './report-html';

export class ReportPanel implements vscode.Disposable {
  private panel?: vscode.WebviewPanel;
  private folder?: string;
  /** The pair shown when the page is a comparison (folder URIs). */
  private compared?: { base: string; new: string };
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly client: () => LanguageClient,
  ) {}

  /** Shows the report in `folder` (a file URI), or lets the person pick among the reports. */
  async show(folder?: string): Promise<void> {
    let target = folder;
    if (!target) {
      const all = await this.client().sendRequest(ReportsRequest);
      if (all.length === 0) {
        void vscode.window.showInformationMessage('Skeptic: no report yet. Right-click an .onnx file and choose "Audit Robustness".');
        return;
      }
      if (all.length === 1) target = all[0].folder;
      else {
        const pick = await vscode.window.showQuickPick(
          all.map((s) => ({ label: `${s.modelName} on ${s.datasetName}`, description: s.verdict, detail: `${s.startedAt.slice(0, 16).replace('T', ' ')} · ${s.device}`, folder: s.folder })),
          // ignoreFocusOut: run from the palette while this panel has the focus, the panel takes it
          // back as the palette closes, and a pick that closed on blur would vanish (client/compare.ts)
          { title: 'Skeptic: show which report?', ignoreFocusOut: true },
        );
        if (!pick) return;
        target = pick.folder;
      }
    }
    const res = await this.client().sendRequest(ReportRequest, { folder: target });
    if (!res) {
      void vscode.window.showWarningMessage(`Skeptic: no report in ${vscode.Uri.parse(target).fsPath}`);
      return;
    }
    this.render(res);
  }

  /** Shows two reports side by side (folder URIs): BASE and NEW, compared by the daemon. */
  async showComparison(base: string, next: string): Promise<void> {
    const res = await this.client().sendRequest(CompareRequest, { base, new: next });
    if (!res) {
      void vscode.window.showWarningMessage(`Skeptic: no report in ${vscode.Uri.parse(base).fsPath} or ${vscode.Uri.parse(next).fsPath}`);
      return;
    }
    this.render(res.new, res);
    this.compared = { base, new: next };
  }

  /** A report changed on disk: refresh the page if it shows that folder. */
  async refresh(folder: string): Promise<void> {
    if (this.panel && this.compared && (this.compared.base === folder || this.compared.new === folder)) {
      await this.showComparison(this.compared.base, this.compared.new);
      return;
    }
    if (!this.panel || this.folder !== folder) return;
    const res = await this.client().sendRequest(ReportRequest, { folder });
    if (!res) return;
    const msg: ShowReportMessage = { type: 'showReport', report: res.report, artifactBase: this.panel.webview.asWebviewUri(vscode.Uri.parse(folder)).toString() };
    void this.panel.webview.postMessage(msg);
  }

  private render(res: ReportResult, comparison?: CompareResult): void {
    const folderUri = vscode.Uri.parse(res.summary.folder);
    const baseUri = comparison ? vscode.Uri.parse(comparison.base.summary.folder) : undefined;
    const assets = vscode.Uri.joinPath(this.context.extensionUri, 'dist', 'webviews');
    const options: vscode.WebviewOptions = { enableScripts: true, localResourceRoots: [assets, folderUri, ...(baseUri ? [baseUri] : [])] };
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel('skeptic.report', 'Skeptic Report', vscode.ViewColumn.Active, { ...options, retainContextWhenHidden: false });
      this.panel.onDidDispose(() => {
        this.panel = undefined;
        this.folder = undefined;
        this.compared = undefined;
      }, null, this.disposables);
      this.panel.webview.onDidReceiveMessage((m: WebviewToExtension) => void this.onMessage(m), null, this.disposables);
    } else {
      this.panel.webview.options = options;
      this.panel.reveal();
    }
    this.folder = res.summary.folder;
    this.compared = undefined;
    const webview = this.panel.webview;
    this.panel.title = comparison
      ? `Skeptic: ${comparison.base.summary.modelName} → ${res.summary.modelName}`
      : `Skeptic: ${res.summary.modelName} on ${res.summary.datasetName}`;
    webview.html = renderReportHtml({
      report: res.report as Report,
      assets: {
        kind: 'uri',
        js: webview.asWebviewUri(vscode.Uri.joinPath(assets, 'report.js')).toString(),
        css: webview.asWebviewUri(vscode.Uri.joinPath(assets, 'report.css')).toString(),
        cspSource: webview.cspSource,
      },
      artifactBase: webview.asWebviewUri(folderUri).toString(),
      nonce: randomBytes(16).toString('base64'),
      ...(comparison && baseUri
        ? { comparison: { comparison: comparison.comparison, baseReport: comparison.base.report as Report, baseArtifactBase: webview.asWebviewUri(baseUri).toString() } }
        : {}),
    });
  }

  private async onMessage(m: WebviewToExtension): Promise<void> {
    if (m?.type !== 'reveal' || typeof m.uri !== 'string') return;
    const uri = vscode.Uri.parse(m.uri);
    if (uri.scheme !== 'file') return;
    const lower = uri.path.toLowerCase();
    try {
      if (lower.endsWith('.onnx') || /\.(idx\d-ubyte)(\.gz)?$/.test(lower)) {
        // A binary file: show it in the explorer (and its diagnostics in Problems).
        await vscode.commands.executeCommand('revealInExplorer', uri);
      } else if (/\.(png|jpe?g|webp|gif|bmp|tiff?|avif)$/.test(lower)) {
        await vscode.commands.executeCommand('vscode.open', uri, vscode.ViewColumn.Beside);
      } else {
        const line = Math.max(0, (m.line ?? 1) - 1);
        const doc = await vscode.workspace.openTextDocument(uri);
        const range = doc.lineAt(Math.min(line, doc.lineCount - 1)).range;
        await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, selection: range, preview: true });
      }
    } catch (e) {
      void vscode.window.showWarningMessage(`Skeptic: cannot open ${uri.fsPath}: ${(e as Error).message}`);
    }
  }

  dispose(): void {
    this.panel?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
