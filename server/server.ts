/**
 * The analysis daemon: a Language Server Protocol server over the engine, and nothing more than
 * glue. It answers the editor (custom `skeptic/*` requests typed in protocol.ts, the same actions
 * as `workspace/executeCommand` commands, hover, completion, code lenses), publishes diagnostics
 * where the data lives, and hands every model and image to a worker process (worker.ts), so
 * this process never blocks on inference and survives a crash inside ONNX Runtime.
 *
 * Transport: whatever the client starts it with (`--node-ipc` from VS Code, `--stdio` from
 * other editors), as vscode-languageserver reads it from the command line.
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { applyEdits } from 'jsonc-parser';
import {
  CodeLensRefreshRequest, createConnection, DiagnosticSeverity, ProposedFeatures, TextDocuments, TextDocumentSyncKind,
  WorkDoneProgressReporter, type CancellationToken, type CodeLens, type Diagnostic, type WorkspaceEdit,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { CONFIG_FILE, findConfig, loadConfig } from './engine/config';
import { TOOL_VERSION } from './engine/version';
import {
  addModelEntryEdits, configCompletion, configEntries, configHover, entryDiagnostics, validateConfig, type ConfigContext,
} from './daemon/config-doc';
import { compareStored, ProblemsBaselines } from './daemon/compare';
import { CompareRequest, ProblemsBaselineRequest } from './protocol';
import { diskText, DiagnosticsHub, reportDiagnostics, ZERO_RANGE } from './daemon/diagnostics';
import { byProximity, scanWorkspace, workspaceLabel, type WorkspaceScan } from './daemon/discover';
import { DEFAULT_SETTINGS, resolveJob, rootOf } from './daemon/job';
import { REPORTS_DIR, ReportStore, type StoredReport } from './daemon/reports';
import { embeddableReport } from './engine/report/per-image';
import { WorkerCrashError, WorkerHost, WorkerJobError } from './daemon/worker-host';
import {
  AuditRequest, CancelRequest, CLIENT_COMMANDS, DAEMON_COMMANDS, DatasetsRequest, ModelsRequest, ReportRequest,
  ReportsChangedNotification, ReportsRequest, SaveModelEntryRequest, SetTrustedNotification, StatusRequest,
  type AuditParams, type AuditResult, type DatasetsResult, type InitializationOptions, type JobProgress, type ModelCandidate,
  type ModelInput, type ProbeCatalog, type ReportParams, type ReportResult, type SaveModelEntryResult, type SkepticSettings,
  type StatusResult,
} from './protocol';

/** A cancelled audit gets this long to stop at a batch boundary before its worker is ended. */
const CANCEL_GRACE_MS = 10_000;
/** skeptic.json is re-validated this long after the last keystroke. */
const VALIDATE_DELAY_MS = 150;
/** The workspace scan (datasets, models) is reused for this long. */
const SCAN_TTL_MS = 5_000;

const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);
const log = (line: string) => connection.console.log(line);

let roots: string[] = [];
let trusted = true;
let schemaProvided = false;
/** The README beside the bundle (vsce packs it as readme.md): the rules' documentation. */
let docsUrl = pathToFileURL(['README.md', 'readme.md'].map((f) => join(__dirname, '..', f)).find((f) => existsSync(f)) ?? join(__dirname, '..', 'README.md')).href;
let canConfigure = false;
let canWorkDone = false;
let canApplyEdit = false;
let canRefreshLenses = false;
let canWatchFolders = false;

const worker = new WorkerHost(log);
const reports = new ReportStore();
const hub = new DiagnosticsHub((uri, diagnostics) => void connection.sendDiagnostics({ uri, diagnostics }));
const configFiles = new Set<string>();
let catalog: ProbeCatalog | undefined;

// ---------------------------------------------------------------------------------------------
// Model inputs (for skeptic.json's preprocessing check), read by the worker and kept per file
// version. Never in an untrusted workspace.

const inputs = new Map<string, { stamp: string; value?: ModelInput; pending?: boolean }>();

function stampOf(file: string): string | undefined {
  try {
    const st = statSync(file);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

function modelInput(file: string): ModelInput | undefined {
  if (!trusted) return undefined;
  const stamp = stampOf(file);
  if (!stamp) return undefined;
  const known = inputs.get(file);
  if (known?.stamp === stamp) return known.value;
  inputs.set(file, { stamp, pending: true });
  worker.inspect(file).then(
    (value) => inputs.set(file, { stamp, value }),
    (e: Error) => {
      inputs.set(file, { stamp });
      log(`inspect ${file}: ${e.message}`);
    },
  ).finally(() => validateAllConfigs());
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Text of files, diagnostics

const textOf = (uri: string) => documents.get(uri)?.getText() ?? diskText(uri);

function configContext(): ConfigContext {
  return { catalog, modelInput, exists: existsSync, schemaProvided, docsUrl };
}

const problemsBaselines = new ProblemsBaselines();

function publishReport(stored: StoredReport): void {
  // With a baseline chosen (skeptic/problemsBaseline), only the findings it does not have.
  const baseline = problemsBaselines.baselineOf(stored.folder);
  const report = problemsBaselines.filter(stored.report, baseline ? reports.get(baseline)?.report : undefined);
  hub.set(`report:${stored.folder}`, reportDiagnostics(report, stored.summary.folder, docsUrl, textOf));
}

function reportFor(modelUri: string, datasetUri: string) {
  return reports.latestFor(modelUri, datasetUri)?.report;
}

function validateConfigFile(file: string): void {
  const uri = pathToFileURL(file).href;
  const text = textOf(uri);
  if (text === undefined) {
    configFiles.delete(file);
    hub.clear(`config:${file}`);
    return;
  }
  configFiles.add(file);
  let diagnostics: Diagnostic[];
  try {
    diagnostics = [...validateConfig(text, file, configContext()), ...entryDiagnostics(text, file, reportFor, docsUrl)];
  } catch (e) {
    // A bug here must cost a diagnostic, never the daemon.
    log(`validating ${file}: ${(e as Error).stack}`);
    diagnostics = [{ range: ZERO_RANGE, severity: DiagnosticSeverity.Error, source: 'skeptic.json', message: `Skeptic could not check this file: ${(e as Error).message}` }];
  }
  hub.set(`config:${file}`, new Map([[uri, diagnostics]]));
}

function validateAllConfigs(): void {
  for (const f of configFiles) validateConfigFile(f);
}

function reportsChanged(): void {
  validateAllConfigs();
  void connection.sendNotification(ReportsChangedNotification, { reports: reports.all().map((r) => r.summary) });
  if (canRefreshLenses) connection.sendRequest(CodeLensRefreshRequest.type).catch(() => undefined);
}

function loadReport(folder: string): void {
  const problem = reports.load(folder);
  log(problem ? `report: ${problem}` : `report: read ${folder}`);
  const stored = reports.get(folder);
  if (stored) publishReport(stored);
  else hub.clear(`report:${folder}`);
}

// ---------------------------------------------------------------------------------------------
// Workspace scan

let scan: { at: number; result: Promise<WorkspaceScan> } | undefined;

function workspaceScan(): Promise<WorkspaceScan> {
  if (!scan || Date.now() - scan.at > SCAN_TTL_MS) scan = { at: Date.now(), result: scanWorkspace(roots) };
  return scan.result;
}

async function start(): Promise<void> {
  const found = await workspaceScan();
  const bases = new Set([...roots, ...found.configs.map((c) => dirname(c))]);
  for (const base of bases) {
    for (const p of reports.scan(base)) log(`report: ${p}`);
  }
  for (const r of reports.all()) publishReport(r);
  for (const c of found.configs) configFiles.add(c);
  log(`read ${reports.all().length} report(s) and ${configFiles.size} skeptic.json file(s) in ${roots.join(', ') || '(no folder)'}`);
  reportsChanged();
  try {
    catalog = await worker.describe();
    validateAllConfigs();
  } catch (e) {
    log(`the worker could not describe the probes: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Settings

async function settingsFor(uri: string): Promise<SkepticSettings> {
  if (!canConfigure) return DEFAULT_SETTINGS;
  try {
    const s = (await connection.workspace.getConfiguration({ scopeUri: uri, section: 'skeptic' })) as Partial<SkepticSettings> | null;
    return { ...DEFAULT_SETTINGS, ...(s ?? {}) };
  } catch {
    return DEFAULT_SETTINGS;
  }
}

// ---------------------------------------------------------------------------------------------
// Audits

interface Running {
  model: string;
  dataset: string;
  startedAt: string;
  jobId: number;
  progress: JobProgress;
  cancelRequested: boolean;
  killTimer?: NodeJS.Timeout;
  killed: boolean;
}

let running: Running | undefined;

function cancelAudit(): boolean {
  const r = running;
  if (!r) return false;
  if (!r.cancelRequested) {
    r.cancelRequested = true;
    log(`audit: cancelling ${basename(r.model)} on ${basename(r.dataset)}`);
    if (r.jobId) stopJob(r);
  }
  return true;
}

/** Asks the worker to stop; ends it if it has not within the grace period. */
function stopJob(r: Running): void {
  worker.cancel(r.jobId);
  r.killTimer = setTimeout(() => {
    log(`audit: the worker did not stop within ${CANCEL_GRACE_MS / 1000} s; ending it`);
    r.killed = true;
    worker.kill();
  }, CANCEL_GRACE_MS);
}

function progressMessage(p: JobProgress): string {
  const what = p.phase === 'evaluating' ? `${p.probe ?? 'reading'}${p.step ? `: ${p.step}` : ''}` : `${p.phase}${p.probe ? ` ${p.probe}` : ''}${p.step ? `: ${p.step}` : ''}`;
  return `${what} ${p.done}/${p.total}${p.cacheHits ? ` (${p.cacheHits} cached)` : ''}`;
}

async function runAudit(params: AuditParams, progress: WorkDoneProgressReporter, tokens: CancellationToken[]): Promise<AuditResult> {
  const failed = (error: string): AuditResult => {
    log(`audit: ${error}`);
    return { status: 'failed', error };
  };
  if (!trusted) return failed('this workspace is not trusted: Skeptic loads no model until you trust it');
  if (running) return failed(`an audit is already running (${basename(running.model)} on ${basename(running.dataset)}); cancel it first`);
  if (!params?.model) return failed('audit: "model" (a file URI) is required');

  let resolved;
  try {
    const settings = await settingsFor(params.model);
    resolved = resolveJob(params, settings, roots);
  } catch (e) {
    return failed((e as Error).message);
  }
  const { job } = resolved;
  const r: Running = {
    model: job.model,
    dataset: job.dataset,
    startedAt: new Date().toISOString(),
    jobId: 0,
    progress: { done: 0, total: 0, phase: 'loading', cacheHits: 0 },
    cancelRequested: false,
    killed: false,
  };
  // Another request may have started one while the settings were fetched.
  if (running) return failed('an audit is already running; cancel it first');
  running = r;
  hub.clear('audit-error');
  log(`audit: ${job.model} on ${job.dataset} (probes ${job.probes?.join(',') ?? 'default'}, device ${job.device}${job.limit ? `, limit ${job.limit}` : ''})`);
  progress.begin(`Skeptic: ${basename(job.model)} on ${basename(job.dataset)}`, 0, 'loading the model', true);
  const onCancel = tokens.map((t) => t.onCancellationRequested(() => cancelAudit()));
  try {
    const { id, done } = worker.audit(job, (p) => {
      r.progress = p;
      progress.report(p.total ? Math.floor((100 * p.done) / p.total) : 0, progressMessage(p));
    });
    r.jobId = id;
    if (r.cancelRequested) stopJob(r);
    else if (tokens.some((t) => t.isCancellationRequested)) cancelAudit();
    const result = await done;
    loadReport(dirname(result.reportFile));
    reportsChanged();
    const stored = reports.get(dirname(result.reportFile));
    const status = result.cancelled ? 'cancelled' : 'ok';
    log(`audit: ${status}, ${stored?.summary.verdict ?? 'no report'} (${result.reportFile})`);
    return { status, report: stored?.summary };
  } catch (e) {
    if (e instanceof WorkerCrashError) {
      if (r.killed) {
        return {
          status: 'cancelled',
          error: `the worker did not stop within ${CANCEL_GRACE_MS / 1000} s and was ended; finished batches are in the cache, so the next audit resumes from there`,
        };
      }
      const where = r.progress.total ? ` while ${r.progress.probe ?? r.progress.phase} was running (${r.progress.done}/${r.progress.total} images)` : ' while loading the model';
      return failed(
        `the audit ended: ${e.message}${where}. ONNX Runtime or the image decoder may have crashed on this model or data; ` +
          'the daemon is still running, and batches that finished are in the cache, so auditing again resumes from there',
      );
    }
    if (e instanceof WorkerJobError && e.file) {
      const line = Math.max(0, (e.line ?? 1) - 1);
      const range = { start: { line, character: 0 }, end: { line, character: e.line ? 1000 : 0 } };
      hub.set('audit-error', new Map([[pathToFileURL(e.file).href, [{ range, severity: DiagnosticSeverity.Error, source: 'skeptic', code: 'audit/input', message: e.message }]]]));
    }
    return failed((e as Error).message);
  } finally {
    clearTimeout(r.killTimer);
    onCancel.forEach((d) => d.dispose());
    progress.done();
    running = undefined;
  }
}

/** Progress for an audit started through executeCommand: the client's token when it gave one,
 *  else one the daemon creates (window/workDoneProgress/create), whose cancel button cancels. */
async function commandProgress(given: WorkDoneProgressReporter, token: CancellationToken): Promise<{ progress: WorkDoneProgressReporter; tokens: CancellationToken[] }> {
  if (!WorkDoneProgressReporter.isNullInstance(given) || !canWorkDone) return { progress: given, tokens: [token] };
  const created = await connection.window.createWorkDoneProgress();
  return { progress: created, tokens: [token, created.token] };
}

// ---------------------------------------------------------------------------------------------
// Reports

function reportResult(params: ReportParams | null | undefined): ReportResult | null {
  let stored: StoredReport | undefined;
  if (params?.folder) stored = reports.get(fileURLToPath(params.folder));
  else stored = reports.latestFor(params?.model, params?.dataset);
  // The webview shows what a page can hold; 200,000 images would take the IPC channel a minute.
  return stored ? { summary: stored.summary, report: embeddableReport(stored.report) } : null;
}

function describeReport(modelUri: string, datasetUri?: string): string | undefined {
  const r = reports.latestFor(modelUri, datasetUri);
  if (!r) return undefined;
  const s = r.summary;
  const lines = s.probes.map((p) => `- \`${p.id}\` ${p.status}${p.headline ? `: ${p.headline}` : ''}`);
  return `Last audit on **${s.datasetName}** (${s.startedAt.slice(0, 16).replace('T', ' ')}, ${s.device}): ${s.verdict}\n\n${lines.join('\n')}`;
}

// ---------------------------------------------------------------------------------------------
// Choosing the data

async function datasetsFor(modelUri?: string): Promise<DatasetsResult> {
  const found = await workspaceScan();
  const model = modelUri ? fileURLToPath(modelUri) : undefined;
  const out: DatasetsResult = {
    candidates: byProximity(found.datasets, (d) => d.path, model).map((d) => ({
      uri: pathToFileURL(d.path).href,
      kind: d.kind,
      label: workspaceLabel(d.path, roots),
      ...(d.detail ? { detail: d.detail } : {}),
    })),
  };
  if (model) {
    const configFile = findConfig(dirname(model));
    try {
      const entry = configFile ? loadConfig(configFile).models.find((m) => m.path === model && m.dataset) : undefined;
      if (entry?.dataset && existsSync(entry.dataset)) {
        out.configured = { dataset: pathToFileURL(entry.dataset).href, configFile: pathToFileURL(configFile!).href };
      }
    } catch (e) {
      log(`${configFile}: ${(e as Error).message}`);
    }
  }
  return out;
}

async function modelsFor(datasetUri?: string): Promise<ModelCandidate[]> {
  const found = await workspaceScan();
  const near = datasetUri ? fileURLToPath(datasetUri) : undefined;
  return byProximity(found.models, (m) => m, near ? join(near, 'x') : undefined).map((m) => {
    const c: ModelCandidate = { uri: pathToFileURL(m).href, label: workspaceLabel(m, roots) };
    const configFile = findConfig(dirname(m));
    try {
      const entry = configFile ? loadConfig(configFile).models.find((e) => e.path === m && e.dataset) : undefined;
      if (entry?.dataset) c.configuredDataset = pathToFileURL(entry.dataset).href;
    } catch {
      // a broken skeptic.json is reported on the file itself
    }
    return c;
  });
}

async function saveModelEntry(modelUri: string, datasetUri: string): Promise<SaveModelEntryResult> {
  const model = fileURLToPath(modelUri);
  const dataset = fileURLToPath(datasetUri);
  const root = rootOf(roots, model) ?? dirname(model);
  const near = findConfig(dirname(model));
  const file = near && rootOf([root], near) ? near : join(root, CONFIG_FILE);
  const uri = pathToFileURL(file).href;
  const created = !existsSync(file) && !documents.get(uri);
  const text = textOf(uri) ?? '';
  const edits = addModelEntryEdits(text, file, model, dataset);
  if (canApplyEdit) {
    const edit: WorkspaceEdit = created
      ? { documentChanges: [{ kind: 'create', uri, options: { ignoreIfExists: true } }, { textDocument: { uri, version: null }, edits }] }
      : { changes: { [uri]: edits } };
    const r = await connection.workspace.applyEdit({ label: `Skeptic: add ${basename(model)} to ${CONFIG_FILE}`, edit });
    if (r.applied) return { configFile: uri, applied: true, created };
    log(`${CONFIG_FILE}: the client did not apply the edit (${r.failureReason ?? 'no reason given'})`);
    return { configFile: uri, applied: false, created: false };
  }
  // A client without workspace/applyEdit asked us to save: write the file ourselves.
  const lines = text.split('\n');
  const offset = (p: { line: number; character: number }) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  const next = applyEdits(text, edits.map((e) => ({ offset: offset(e.range.start), length: offset(e.range.end) - offset(e.range.start), content: e.newText })));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, next);
  validateConfigFile(file);
  return { configFile: uri, applied: true, created };
}

// ---------------------------------------------------------------------------------------------
// Code lenses: "N fragile images: show gallery" on skeptic.json entries and on manifests

function lenses(uri: string): CodeLens[] {
  const lens = (line: number, r: StoredReport, prefix = ''): CodeLens => {
    const n = r.summary.fragileImages;
    const title = `${prefix}${n ? `${n} fragile image${n === 1 ? '' : 's'}: show gallery` : 'no fragile images: show report'}`;
    return { range: { start: { line, character: 0 }, end: { line, character: 0 } }, command: { title, command: CLIENT_COMMANDS.showReport, arguments: [r.summary.folder] } };
  };
  const path = fileURLToPath(uri);
  if (basename(path) === CONFIG_FILE) {
    const text = textOf(uri);
    if (text === undefined) return [];
    return configEntries(text, path).flatMap((e) => {
      const r = e.model && e.dataset ? reports.latestFor(pathToFileURL(e.model).href, pathToFileURL(e.dataset).href) : undefined;
      return r ? [lens(e.range.start.line, r)] : [];
    });
  }
  const mine = reports.all().filter((r) => r.report.dataset.uri === uri);
  return mine.map((r) => lens(0, r, mine.length > 1 ? `${r.summary.modelName}: ` : ''));
}

// ---------------------------------------------------------------------------------------------
// LSP wiring

connection.onInitialize((params) => {
  const opts = (params.initializationOptions ?? {}) as InitializationOptions;
  trusted = opts.trusted ?? true;
  schemaProvided = !!opts.schemaProvided;
  if (opts.docsUrl) docsUrl = opts.docsUrl;
  canConfigure = !!params.capabilities.workspace?.configuration;
  canWorkDone = !!params.capabilities.window?.workDoneProgress;
  canApplyEdit = !!params.capabilities.workspace?.applyEdit;
  canRefreshLenses = !!params.capabilities.workspace?.codeLens?.refreshSupport;
  canWatchFolders = !!params.capabilities.workspace?.workspaceFolders;
  const folders = params.workspaceFolders?.map((f) => f.uri) ?? (params.rootUri ? [params.rootUri] : []);
  roots = folders.filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u));
  return {
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      hoverProvider: true,
      completionProvider: { triggerCharacters: ['"'] },
      codeLensProvider: { resolveProvider: false },
      executeCommandProvider: { commands: Object.values(DAEMON_COMMANDS) },
      workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
    },
    serverInfo: { name: 'skeptic', version: TOOL_VERSION },
  };
});

connection.onInitialized(() => {
  void start().catch((e) => log(`start-up: ${(e as Error).stack}`));
  if (!canWatchFolders) return;
  connection.workspace.onDidChangeWorkspaceFolders((e) => {
    for (const f of e.removed) roots = roots.filter((r) => r !== fileURLToPath(f.uri));
    for (const f of e.added) roots.push(fileURLToPath(f.uri));
    scan = undefined;
    void start().catch((err) => log(`rescan: ${(err as Error).message}`));
  });
});

connection.onShutdown(() => worker.dispose());
process.on('exit', () => worker.dispose());


connection.onNotification(SetTrustedNotification, ({ trusted: t }) => {
  trusted = t;
  log(`workspace trust: ${t ? 'trusted' : 'restricted'}`);
  validateAllConfigs();
});

connection.onRequest(AuditRequest, (params, token) => runAudit(params, connection.window.attachWorkDoneProgress(params.workDoneToken), [token]));
connection.onRequest(CancelRequest, () => ({ cancelled: cancelAudit() }));
connection.onRequest(ReportRequest, (params) => reportResult(params));
connection.onRequest(ReportsRequest, () => reports.all().map((r) => r.summary));
connection.onRequest(CompareRequest, (params) => {
  // A report outside the workspace's .skeptic/reports (picked with "Browse…") is read on demand.
  const stored = (uri: string) => {
    const folder = fileURLToPath(uri);
    if (!reports.has(folder)) reports.load(folder);
    return reports.get(folder);
  };
  const base = stored(params.base);
  const next = stored(params.new);
  return base && next ? compareStored(base, next) : null;
});
connection.onRequest(ProblemsBaselineRequest, (params) => {
  const folder = fileURLToPath(params.folder);
  const baseline = params.baseline ? fileURLToPath(params.baseline) : null;
  problemsBaselines.set(folder, baseline);
  const stored = reports.get(folder);
  if (stored) publishReport(stored);
  const base = baseline ? reports.get(baseline)?.report : undefined;
  return { hidden: stored && base ? stored.report.findings.length - problemsBaselines.filter(stored.report, base).findings.length : 0 };
});
connection.onRequest(DatasetsRequest, (params) => datasetsFor(params?.model));
connection.onRequest(ModelsRequest, (params) => modelsFor(params?.dataset));
connection.onRequest(SaveModelEntryRequest, (params) => saveModelEntry(params.model, params.dataset));
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
connection.onRequest(StatusRequest, (): StatusResult => {
  const out: StatusResult = { version: TOOL_VERSION, trusted, eventLoopDelayMs: { p50: loopDelay.percentile(50) / 1e6, max: loopDelay.max / 1e6 } };
  loopDelay.reset();
  if (worker.pid !== undefined) out.workerPid = worker.pid;
  if (running) {
    out.audit = { model: pathToFileURL(running.model).href, dataset: pathToFileURL(running.dataset).href, startedAt: running.startedAt, ...running.progress };
  }
  return out;
});

connection.onExecuteCommand(async (params, token, workDone) => {
  const arg = params.arguments?.[0];
  switch (params.command) {
    case DAEMON_COMMANDS.audit: {
      const p = await commandProgress(workDone, token);
      return runAudit(arg as AuditParams, p.progress, p.tokens);
    }
    case DAEMON_COMMANDS.cancel:
      return { cancelled: cancelAudit() };
    case DAEMON_COMMANDS.report:
      return reportResult(arg as ReportParams | undefined);
    default:
      return null;
  }
});

const isConfig = (uri: string) => uri.startsWith('file:') && basename(fileURLToPath(uri)) === CONFIG_FILE;

connection.onHover((params) => {
  const uri = params.textDocument.uri;
  if (!isConfig(uri)) return null;
  const text = textOf(uri);
  return text === undefined ? null : configHover(text, fileURLToPath(uri), params.position, configContext(), describeReport);
});

connection.onCompletion(async (params) => {
  const uri = params.textDocument.uri;
  if (!isConfig(uri)) return [];
  const text = textOf(uri);
  if (text === undefined) return [];
  const found = await workspaceScan();
  return configCompletion(text, fileURLToPath(uri), params.position, configContext(), { models: found.models, datasets: found.datasets.map((d) => d.path) });
});

connection.onCodeLens((params) => (params.textDocument.uri.startsWith('file:') ? lenses(params.textDocument.uri) : []));

const pendingValidation = new Map<string, NodeJS.Timeout>();
documents.onDidChangeContent(({ document }) => {
  if (!isConfig(document.uri)) return;
  const file = fileURLToPath(document.uri);
  clearTimeout(pendingValidation.get(file));
  pendingValidation.set(file, setTimeout(() => {
    pendingValidation.delete(file);
    validateConfigFile(file);
  }, VALIDATE_DELAY_MS));
});
documents.onDidClose(({ document }) => {
  if (isConfig(document.uri)) validateConfigFile(fileURLToPath(document.uri));
});

connection.onDidChangeWatchedFiles(({ changes }) => {
  let reportsTouched = false;
  for (const c of changes) {
    if (!c.uri.startsWith('file:')) continue;
    const file = fileURLToPath(c.uri);
    if (basename(file) === 'report.json' && dirname(dirname(file)).endsWith(sep + REPORTS_DIR)) {
      loadReport(dirname(file));
      reportsTouched = true;
    } else if (basename(file) === CONFIG_FILE) {
      scan = undefined;
      validateConfigFile(file);
      for (const p of reports.scan(dirname(file))) log(`report: ${p}`);
      for (const r of reports.all()) publishReport(r);
      reportsTouched = true;
    } else if (file.endsWith('.onnx')) {
      scan = undefined;
      inputs.delete(file);
      validateAllConfigs();
    }
  }
  if (reportsTouched) reportsChanged();
});

// A bug in a handler must cost one answer, never the daemon (and the diagnostics it holds).
process.on('uncaughtException', (e) => log(`internal error: ${e.stack ?? e.message}`));
process.on('unhandledRejection', (e) => log(`internal error: ${(e as Error)?.stack ?? String(e)}`));

documents.listen(connection);
connection.listen();
