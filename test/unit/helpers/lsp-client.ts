/**
 * A real LSP client for protocol tests: starts the built daemon (dist/server.js) as a child
 * process with `--node-ipc`, as VS Code does, and speaks JSON-RPC over that IPC channel with
 * vscode-languageserver-protocol's connection. Collects what the daemon pushes (diagnostics,
 * progress, notifications) and answers what it asks (configuration, applyEdit, progress tokens).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  ApplyWorkspaceEditRequest, ConfigurationRequest, createProtocolConnection, ExitNotification, InitializeRequest,
  InitializedNotification, IPCMessageReader, IPCMessageWriter, LogMessageNotification, PublishDiagnosticsNotification,
  ShutdownRequest, WorkDoneProgress, WorkDoneProgressCreateRequest, type Diagnostic, type InitializeResult,
  type ProtocolConnection, type TextEdit, type WorkDoneProgressBegin, type WorkDoneProgressEnd, type WorkDoneProgressReport,
} from 'vscode-languageserver-protocol/node';

export const ROOT = resolve(__dirname, '../../..');
export const SERVER = join(ROOT, 'dist/server.js');

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

export interface DaemonOptions {
  workspace: string;
  initializationOptions?: Record<string, unknown>;
  /** `workspace/configuration` answer for the section "skeptic". */
  settings?: Record<string, unknown>;
  /** The daemon's script (default: dist/server.js of this checkout). */
  server?: string;
}

export class TestDaemon {
  readonly diagnostics = new Map<string, Diagnostic[]>();
  readonly logs: string[] = [];
  readonly notifications: Array<{ method: string; params: unknown }> = [];
  readonly progress = new Map<string | number, ProgressValue[]>();
  initializeResult!: InitializeResult;
  private waiters: Array<() => void> = [];
  private constructor(
    readonly child: ChildProcess,
    readonly connection: ProtocolConnection,
  ) {}

  static async start(o: DaemonOptions): Promise<TestDaemon> {
    const child = fork(o.server ?? SERVER, ['--node-ipc'], { cwd: o.workspace, execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const connection = createProtocolConnection(new IPCMessageReader(child), new IPCMessageWriter(child));
    const d = new TestDaemon(child, connection);
    child.stderr?.on('data', (b: Buffer) => d.logs.push(b.toString()));
    connection.onNotification(PublishDiagnosticsNotification.type, (p) => {
      d.diagnostics.set(p.uri, p.diagnostics);
      d.poke();
    });
    connection.onNotification(LogMessageNotification.type, (p) => {
      d.logs.push(p.message);
      d.poke();
    });
    connection.onNotification('skeptic/reportsChanged', (params: unknown) => {
      d.notifications.push({ method: 'skeptic/reportsChanged', params });
      d.poke();
    });
    connection.onRequest(ConfigurationRequest.type, (p) => p.items.map((i) => (i.section === 'skeptic' ? (o.settings ?? null) : null)));
    connection.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
    connection.onRequest(ApplyWorkspaceEditRequest.type, (p) => {
      for (const [uri, edits] of Object.entries(p.edit.changes ?? {})) applyToDisk(uri, edits);
      for (const c of p.edit.documentChanges ?? []) {
        if ('kind' in c && c.kind === 'create') writeFileSync(fileURLToPath(c.uri), '', { flag: 'a' });
        else if ('textDocument' in c) applyToDisk(c.textDocument.uri, c.edits as TextEdit[]);
      }
      return { applied: true };
    });
    connection.listen();
    d.initializeResult = await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: pathToFileURL(o.workspace).href,
      workspaceFolders: [{ uri: pathToFileURL(o.workspace).href, name: 'ws' }],
      capabilities: {
        workspace: { configuration: true, applyEdit: true, workspaceEdit: { documentChanges: true, resourceOperations: ['create'] } },
        window: { workDoneProgress: true },
        textDocument: { publishDiagnostics: { relatedInformation: true, codeDescriptionSupport: true } },
      },
      initializationOptions: o.initializationOptions ?? {},
    });
    await connection.sendNotification(InitializedNotification.type, {});
    return d;
  }

  /** Records the $/progress values sent to a token the test chose. */
  watchProgress(token: string): ProgressValue[] {
    const values: ProgressValue[] = [];
    this.progress.set(token, values);
    this.connection.onProgress(WorkDoneProgress.type, token, (v) => {
      values.push(v);
      this.poke();
    });
    return values;
  }

  private poke(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves once `check` returns a truthy value (re-checked on every message from the daemon). */
  async waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; daemon log:\n${this.logs.slice(-30).join('\n')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  diagnosticsOf(file: string): Diagnostic[] {
    return this.diagnostics.get(pathToFileURL(file).href) ?? [];
  }

  async stop(): Promise<void> {
    try {
      await Promise.race([this.connection.sendRequest(ShutdownRequest.type), new Promise((r) => setTimeout(r, 2000))]);
      await this.connection.sendNotification(ExitNotification.type);
    } catch {
      // already gone
    }
    await new Promise<void>((r) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return r();
      const t = setTimeout(() => {
        this.child.kill('SIGKILL');
        r();
      }, 3000);
      this.child.once('exit', () => {
        clearTimeout(t);
        r();
      });
    });
    this.connection.dispose();
  }
}

function applyToDisk(uri: string, edits: TextEdit[]): void {
  const file = fileURLToPath(uri);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // a new file
  }
  const lines = text.split('\n');
  const offset = (p: { line: number; character: number }) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  for (const e of sorted) text = text.slice(0, offset(e.range.start)) + e.newText + text.slice(offset(e.range.end));
  writeFileSync(file, text);
}
