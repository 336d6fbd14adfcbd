/**
 * The audit commands. "Audit Robustness" on a model uses the dataset skeptic.json gives it;
 * otherwise a quick pick offers the workspace's datasets (the daemon finds them), and once one
 * is chosen the person is offered to save the pair to skeptic.json (never written unasked).
 * "Audit Dataset With Model..." does the same from the dataset's side. The audit runs with a
 * cancellable notification that shows the probe and the count.
 */
import * as vscode from 'vscode';
import { WorkDoneProgress, type LanguageClient, type WorkDoneProgressBegin, type WorkDoneProgressReport } from 'vscode-languageclient/node';
import {
  AuditRequest, CancelRequest, DatasetsRequest, ModelsRequest, SaveModelEntryRequest, type AuditResult, type DatasetCandidate,
} from '../server/protocol';
import type { StatusBar } from './status';

const KIND_ICON: Record<DatasetCandidate['kind'], string> = { folder: '$(folder)', csv: '$(table)', jsonl: '$(json)', idx: '$(file-binary)' };

export class Audits {
  private running = false;

  constructor(
    private readonly client: () => LanguageClient,
    private readonly status: StatusBar,
    private readonly showReport: (folder: string) => Promise<void>,
  ) {}

  private trustedOrSay(): boolean {
    if (vscode.workspace.isTrusted) return true;
    void vscode.window
      .showWarningMessage('Skeptic loads and runs models only in a trusted workspace.', 'Manage Workspace Trust')
      .then((a) => a && vscode.commands.executeCommand('workbench.trust.manage'));
    return false;
  }

  /** Audit Robustness: `uri` is the .onnx file (explorer), else the active one, else a pick. */
  async auditModel(uri?: vscode.Uri): Promise<void> {
    if (!this.trustedOrSay()) return;
    const model = uri ?? activeFile('.onnx') ?? (await this.pickModel());
    if (!model) return;
    const choice = await this.client().sendRequest(DatasetsRequest, { model: model.toString() });
    if (choice.configured) {
      await this.run(model, vscode.Uri.parse(choice.configured.dataset));
      return;
    }
    const dataset = await pickDataset(choice.candidates, model);
    if (!dataset) return;
    void this.offerToSave(model, dataset);
    await this.run(model, dataset);
  }

  /** Audit Dataset With Model...: `uri` is a folder or a manifest. */
  async auditDataset(uri?: vscode.Uri): Promise<void> {
    if (!this.trustedOrSay()) return;
    const dataset = uri ?? (await pickDataset((await this.client().sendRequest(DatasetsRequest, {})).candidates));
    if (!dataset) return;
    const model = await this.pickModel(dataset);
    if (!model) return;
    const known = (await this.client().sendRequest(DatasetsRequest, { model: model.toString() })).configured;
    if (known?.dataset !== dataset.toString()) void this.offerToSave(model, dataset);
    await this.run(model, dataset);
  }

  async cancel(): Promise<void> {
    const r = await this.client().sendRequest(CancelRequest);
    if (!r.cancelled) void vscode.window.showInformationMessage('Skeptic: no audit is running.');
  }

  private async pickModel(dataset?: vscode.Uri): Promise<vscode.Uri | undefined> {
    const models = await this.client().sendRequest(ModelsRequest, dataset ? { dataset: dataset.toString() } : {});
    if (models.length === 0) {
      void vscode.window.showWarningMessage('Skeptic: no .onnx model in this workspace.');
      return undefined;
    }
    const pick = await vscode.window.showQuickPick(
      models.map((m) => ({
        label: `$(symbol-class) ${m.label}`,
        description: m.configuredDataset && dataset && m.configuredDataset === dataset.toString() ? 'configured for this dataset' : undefined,
        uri: m.uri,
      })),
      // ignoreFocusOut: a report panel that had the focus takes it back as the palette closes (client/compare.ts)
      { title: dataset ? `Skeptic: audit ${basename(dataset)} with which model?` : 'Skeptic: audit which model?', matchOnDescription: true, ignoreFocusOut: true },
    );
    return pick && vscode.Uri.parse(pick.uri);
  }

  private async offerToSave(model: vscode.Uri, dataset: vscode.Uri): Promise<void> {
    const answer = await vscode.window.showInformationMessage(
      `Save "${basename(model)}" with "${basename(dataset)}" in skeptic.json, so the next audit uses it without asking?`,
      'Save to skeptic.json',
      'Not Now',
    );
    if (answer !== 'Save to skeptic.json') return;
    const r = await this.client().sendRequest(SaveModelEntryRequest, { model: model.toString(), dataset: dataset.toString() });
    if (!r.applied) {
      void vscode.window.showWarningMessage(`Skeptic: could not edit ${vscode.Uri.parse(r.configFile).fsPath}.`);
      return;
    }
    // The daemon's edit went through the editor (undoable); write it to disk, as asked.
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(r.configFile));
    await doc.save();
  }

  /** Runs one audit with a cancellable notification; reports the outcome. */
  async run(model: vscode.Uri, dataset: vscode.Uri): Promise<AuditResult | undefined> {
    if (this.running) {
      void vscode.window.showWarningMessage('Skeptic: an audit is already running. Cancel it first (Skeptic: Cancel Audit).');
      return undefined;
    }
    this.running = true;
    void vscode.commands.executeCommand('setContext', 'skeptic.auditRunning', true);
    const client = this.client();
    const title = `Skeptic: auditing ${basename(model)} on ${basename(dataset)}`;
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
        const workDoneToken = `skeptic-audit-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        let shown = 0;
        const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v) => {
          if (v.kind === 'end') return;
          const p = v as WorkDoneProgressBegin | WorkDoneProgressReport;
          const pct = p.percentage ?? shown;
          progress.report({ message: p.message, increment: Math.max(0, pct - shown) });
          shown = Math.max(shown, pct);
          if (p.message) this.status.auditing(p.message);
        });
        const onCancel = token.onCancellationRequested(() => {
          progress.report({ message: 'cancelling: finishing the current batch…' });
          void client.sendRequest(CancelRequest);
        });
        this.status.auditing('starting');
        try {
          return await client.sendRequest(AuditRequest, { model: model.toString(), dataset: dataset.toString(), workDoneToken });
        } finally {
          sub.dispose();
          onCancel.dispose();
        }
      });
      void this.announce(result);
      return result;
    } catch (e) {
      void vscode.window.showErrorMessage(`Skeptic: the audit request failed: ${(e as Error).message}`);
      return undefined;
    } finally {
      this.running = false;
      this.status.idle();
      void vscode.commands.executeCommand('setContext', 'skeptic.auditRunning', false);
    }
  }

  private async announce(r: AuditResult): Promise<void> {
    const show = 'Show Report';
    if (r.status === 'failed') {
      const a = await vscode.window.showErrorMessage(`Skeptic: ${r.error}`, 'Show Log');
      if (a) this.client().outputChannel.show(true);
      return;
    }
    const s = r.report;
    const text =
      r.status === 'cancelled'
        ? `Skeptic: audit cancelled${s ? `; the partial report is kept (${s.verdict})` : ''}.${r.error ? ` ${r.error}` : ''}`
        : `Skeptic: ${s?.modelName} on ${s?.datasetName}: ${s?.verdict} (${s?.device}).`;
    const a = s ? await vscode.window.showInformationMessage(text, show) : await vscode.window.showWarningMessage(text);
    if (a === show && s) await this.showReport(s.folder);
  }
}

async function pickDataset(candidates: DatasetCandidate[], model?: vscode.Uri): Promise<vscode.Uri | undefined> {
  type Item = vscode.QuickPickItem & { uri?: string; browse?: boolean };
  const items: Item[] = candidates.map((c) => ({ label: `${KIND_ICON[c.kind]} ${c.label}`, description: c.detail, uri: c.uri }));
  items.push({ label: '$(folder-opened) Browse…', description: 'class folders, a .csv/.jsonl manifest, or an idx folder', browse: true });
  const pick = await vscode.window.showQuickPick(items, {
    title: model ? `Skeptic: audit ${basename(model)} on which dataset?` : 'Skeptic: which dataset?',
    placeHolder: candidates.length ? 'Datasets found in the workspace, nearest first' : 'No dataset found in the workspace: browse for one',
    matchOnDescription: true,
    ignoreFocusOut: true, // as pickModel's
  });
  if (!pick) return undefined;
  if (!pick.browse) return vscode.Uri.parse(pick.uri!);
  const chosen = await vscode.window.showOpenDialog({
    canSelectFiles: true,
    canSelectFolders: true,
    canSelectMany: false,
    openLabel: 'Audit on this dataset',
    filters: { 'Manifests and folders': ['csv', 'jsonl', 'ndjson'] },
  });
  return chosen?.[0];
}

function activeFile(ext: string): vscode.Uri | undefined {
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  const uri = tab && typeof tab === 'object' && 'uri' in tab ? (tab as { uri: vscode.Uri }).uri : undefined;
  return uri?.path.toLowerCase().endsWith(ext) ? uri : undefined;
}

function basename(uri: vscode.Uri): string {
  return uri.path.slice(uri.path.lastIndexOf('/') + 1);
}
