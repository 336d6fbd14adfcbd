/**
 * Starting the analysis daemon (dist/server.js) with vscode-languageclient, over Node IPC, and
 * what the client tells it: which files it follows (skeptic.json, manifests), which file changes
 * it hears of (skeptic.json, report.json, .onnx), workspace trust and where the docs are.
 * The daemon's log (and its worker's) goes to the "Skeptic" output channel.
 */
import { existsSync } from 'node:fs';
import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { SetTrustedNotification, type InitializationOptions } from '../server/protocol';

export function createDaemon(context: vscode.ExtensionContext, output: vscode.LogOutputChannel): LanguageClient {
  const module = vscode.Uri.joinPath(context.extensionUri, 'dist', 'server.js').fsPath;
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc },
    debug: { module, transport: TransportKind.ipc, options: { execArgv: ['--nolazy', '--inspect=6019'] } },
  };
  const watch = (glob: string) => {
    const w = vscode.workspace.createFileSystemWatcher(glob);
    context.subscriptions.push(w);
    return w;
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', pattern: '**/skeptic.json' },
      { scheme: 'file', pattern: '**/*.{csv,jsonl,ndjson}' },
    ],
    synchronize: {
      fileEvents: [watch('**/skeptic.json'), watch('**/.skeptic/reports/*/report.json'), watch('**/*.onnx')],
    },
    outputChannel: output,
    initializationOptions: (): InitializationOptions => ({
      trusted: vscode.workspace.isTrusted,
      // contributes.jsonValidation gives VS Code's JSON support our schema: it completes and
      // explains keys; the daemon adds what a static schema cannot know.
      schemaProvided: true,
      // vsce packs the README as readme.md; a development checkout has README.md.
      docsUrl: vscode.Uri.joinPath(context.extensionUri, existsSync(vscode.Uri.joinPath(context.extensionUri, 'readme.md').fsPath) ? 'readme.md' : 'README.md').toString(),
    }),
  };
  const client = new LanguageClient('skeptic', 'Skeptic', serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      if (client.isRunning()) void client.sendNotification(SetTrustedNotification, { trusted: true });
    }),
  );
  return client;
}
