/**
 * The Skeptic extension: starts the analysis daemon (server/server.ts, over LSP), and gives it a
 * face in VS Code: commands and explorer menus, the audit progress notification, the status bar
 * item, the report webview, and the "Skeptic" output channel with the daemon's log.
 *
 * In an untrusted workspace (limited support, see package.json) the daemon still validates
 * skeptic.json and shows saved reports, but loads no model until the workspace is trusted.
 */
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { CLIENT_COMMANDS, ReportsChangedNotification } from '../server/protocol';
import { Audits } from './audit';
import { Comparisons } from './compare';
import { createDaemon } from './daemon';
import { ReportPanel } from './report-panel';
import { StatusBar } from './status';

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('Skeptic', { log: true });
  const status = new StatusBar();
  const getClient = () => {
    if (!client) throw new Error('the Skeptic daemon is not running');
    return client;
  };
  const panel = new ReportPanel(context, getClient);
  const comparisons = new Comparisons(getClient, panel);
  const audits = new Audits(getClient, status, (folder) => panel.show(folder));
  context.subscriptions.push(output, status, panel);

  client = createDaemon(context, output);
  /** Each report's summary as last heard from the daemon (JSON), by folder. */
  const lastSummary = new Map<string, string>();
  context.subscriptions.push(
    client.onNotification(ReportsChangedNotification, ({ reports }) => {
      status.setLast(reports[0]);
      comparisons.reportsChanged(reports);
      // The daemon sends every report whenever one changes: refresh the panel only for a report
      // that is new or different, so an audit elsewhere in the workspace (a CI run, the CLI) does
      // not rebuild the page someone is reading (its scroll, gallery pages and focus).
      for (const r of reports) {
        const key = JSON.stringify(r);
        if (lastSummary.get(r.folder) === key) continue;
        lastSummary.set(r.folder, key);
        void panel.refresh(r.folder);
      }
    }),
  );

  const command = (id: string, fn: (...args: never[]) => unknown) =>
    context.subscriptions.push(
      vscode.commands.registerCommand(id, async (...args: never[]) => {
        try {
          await fn(...args);
        } catch (e) {
          output.error(`${id}: ${(e as Error).stack ?? e}`);
          void vscode.window.showErrorMessage(`Skeptic: ${(e as Error).message}`);
        }
      }),
    );
  command('skeptic.auditModel', (uri?: vscode.Uri) => audits.auditModel(uri));
  command('skeptic.auditDataset', (uri?: vscode.Uri) => audits.auditDataset(uri));
  command(CLIENT_COMMANDS.showReport, (folder?: string) => panel.show(typeof folder === 'string' ? folder : undefined));
  command(CLIENT_COMMANDS.compareWith, (arg?: vscode.Uri | string) => comparisons.compareWith(arg));
  command('skeptic.problemsOnlyNew', () => comparisons.showOnlyNew());
  command('skeptic.problemsAll', () => comparisons.showAll());
  command('skeptic.cancelAudit', () => audits.cancel());
  command('skeptic.restartDaemon', async () => {
    output.info('restarting the daemon');
    await getClient().restart();
  });
  command('skeptic.openSettings', () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:skeptic.skeptic'));
  command('skeptic.showLog', () => output.show(true));

  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
