/**
 * Every message type that crosses a process or frame boundary in Skeptic, in one place (as
 * rust-analyzer's lsp_ext.ts does): custom LSP requests and notifications between the VS Code
 * client and the daemon, the messages between the daemon and its worker process, and the messages
 * between the report webview and the extension. The daemon's side lives in server.ts and
 * server/daemon/, the worker's in worker.ts, the client's in client/, the webview's in webviews/.
 * Webviews import types only, so the LSP classes below never reach the browser bundle.
 */
import { NotificationType, RequestType, RequestType0, type WorkDoneProgressParams } from 'vscode-languageserver-protocol';

// ---------------------------------------------------------------------------------------------
// Report webview ⇄ extension (postMessage). The standalone HTML report has no extension: it
// sends nothing and degrades links to plain text.

/** The webview asks the editor to show a file (and line) a finding points at. */
export interface RevealMessage {
  type: 'reveal';
  /** file:// URI from the report (a finding's subject). */
  uri: string;
  /** 1-based line, for manifest rows. */
  line?: number;
}

/** The webview has loaded and can take a report. */
export interface ReadyMessage {
  type: 'ready';
}

export type WebviewToExtension = RevealMessage | ReadyMessage;

/** The extension replaces the report shown (after a new audit finished). */
export interface ShowReportMessage {
  type: 'showReport';
  /** The report, as report.json holds it. */
  report: unknown;
  /** Base URI that artifact paths (relative to the report folder) resolve against. */
  artifactBase: string;
}

export type ExtensionToWebview = ShowReportMessage;

/** The data the page of a comparison carries (besides NEW's `report` and `artifactBase`), in
 *  <script id="skeptic-data">: the comparison (engine/compare Comparison), BASE's report and the
 *  base URI its artifacts resolve against. */
export interface EmbeddedComparison {
  comparison: unknown;
  baseReport: unknown;
  baseArtifactBase?: string;
}

// ---------------------------------------------------------------------------------------------
// Client ⇄ daemon (LSP). Custom requests carry the `skeptic/` prefix. Every action a person can
// take is also a `workspace/executeCommand` command (DAEMON_COMMANDS, advertised in the
// daemon's capabilities) so that any LSP client, not only VS Code, can drive an audit.
// URIs are `file://` strings, as in LSP.

export type Device = 'auto' | 'cpu' | 'webgpu' | 'cuda';

/** skeptic/audit: audit a model on a dataset. Progress goes to `workDoneToken` when the client
 *  gives one (`$/progress` with "probe done/total" messages). Resolves when the audit ended:
 *  finished, cancelled (the partial report is kept) or failed (the error says why). */
export interface AuditParams extends WorkDoneProgressParams {
  /** The .onnx file. */
  model: string;
  /** Class folders, a .csv/.jsonl manifest or an idx folder. Default: the model's `dataset`
   *  in skeptic.json. */
  dataset?: string;
  /** The rest default to the model's skeptic.json entry, then to the `skeptic.*` settings. */
  probes?: string[];
  params?: Record<string, Record<string, unknown>>;
  limit?: number;
  seed?: number;
  device?: Device;
  batchSize?: number;
  /** Recompute instead of reading the results cache. */
  noCache?: boolean;
}

export type AuditStatus = 'ok' | 'cancelled' | 'failed';

export interface AuditResult {
  status: AuditStatus;
  /** Why it failed: names the file (and row) for bad input; says so when the worker crashed. */
  error?: string;
  /** The report written (also for a cancelled audit: what finished). */
  report?: ReportSummary;
}

/** A report as the editor lists it: where it lives and what it says, in a few numbers. */
export interface ReportSummary {
  /** The report's folder (<base>/.skeptic/reports/<model>--<dataset>/) and its report.json. */
  folder: string;
  reportUri: string;
  model: string;
  dataset: string;
  modelName: string;
  datasetName: string;
  startedAt: string;
  cancelled: boolean;
  /** The execution provider that ran the model (cpu, webgpu, cuda). */
  device: string;
  findings: { error: number; warning: number; info: number };
  /** Distinct images with a robustness finding (data problems not counted). */
  fragileImages: number;
  /** One line for the status bar, e.g. "2 warnings, 5 fragile images" or "no findings". */
  verdict: string;
  probes: Array<{ id: string; status: string; headline?: string }>;
}

export const AuditRequest = new RequestType<AuditParams, AuditResult, void>('skeptic/audit');

/** skeptic/cancel: stop the running audit. The probe stops at the next batch, what finished is
 *  summarised and written; a worker that does not stop within a grace period is ended. */
export interface CancelResult {
  /** False when no audit was running. */
  cancelled: boolean;
}
export const CancelRequest = new RequestType0<CancelResult, void>('skeptic/cancel');

/** skeptic/report: a report in full, by folder, or the latest for a model (and dataset), or the
 *  latest of all when no parameter is given. Null when there is none. A report on more than 2,000
 *  images comes with the first 2,000 and a warning saying so (as the standalone HTML embeds it). */
export interface ReportParams {
  folder?: string;
  model?: string;
  dataset?: string;
}
export interface ReportResult {
  summary: ReportSummary;
  /** The report with its per-image data (server/engine/report/schema.ts Report). */
  report: unknown;
}
export const ReportRequest = new RequestType<ReportParams, ReportResult | null, void>('skeptic/report');

/** skeptic/reports: every report the daemon knows, newest first. */
export const ReportsRequest = new RequestType0<ReportSummary[], void>('skeptic/reports');

/** skeptic/reportsChanged (daemon → client): reports were read (start-up, a file watcher) or
 *  written (an audit ended). Newest first. */
export const ReportsChangedNotification = new NotificationType<{ reports: ReportSummary[] }>('skeptic/reportsChanged');

/** skeptic/compare: two reports side by side (engine/compare): BASE and NEW are report folders
 *  (file URIs). Null when either has no report. */
export interface CompareParams {
  base: string;
  new: string;
}
export interface CompareResult {
  /** engine/compare's Comparison (JSON). */
  comparison: unknown;
  base: ReportResult;
  new: ReportResult;
}
export const CompareRequest = new RequestType<CompareParams, CompareResult | null, void>('skeptic/compare');

/** skeptic/problemsBaseline: show in Problems only the findings of report `folder` that its
 *  `baseline` report does not have (matched by finding id); baseline null shows them all again.
 *  Resolves to how many findings are hidden. */
export interface ProblemsBaselineParams {
  folder: string;
  baseline: string | null;
}
export const ProblemsBaselineRequest = new RequestType<ProblemsBaselineParams, { hidden: number }, void>('skeptic/problemsBaseline');

/** skeptic/datasets: what to audit a model on. `configured` is the model's dataset in skeptic.json
 *  (use it without asking); `candidates` are the workspace's datasets, nearest first. */
export interface DatasetsParams {
  model?: string;
}
export interface DatasetCandidate {
  uri: string;
  kind: 'folder' | 'csv' | 'jsonl' | 'idx';
  /** Path relative to its workspace folder. */
  label: string;
  /** e.g. "4 classes", "manifest". */
  detail?: string;
}
export interface DatasetsResult {
  configured?: { dataset: string; configFile: string };
  candidates: DatasetCandidate[];
}
export const DatasetsRequest = new RequestType<DatasetsParams, DatasetsResult, void>('skeptic/datasets');

/** skeptic/models: the workspace's .onnx files (nearest to `dataset` first). */
export interface ModelCandidate {
  uri: string;
  label: string;
  /** The dataset skeptic.json gives this model, if any. */
  configuredDataset?: string;
}
export const ModelsRequest = new RequestType<{ dataset?: string }, ModelCandidate[], void>('skeptic/models');

/** skeptic/saveModelEntry: add (or update) `{ "path": model, "dataset": dataset }` in the nearest
 *  skeptic.json, creating one in the workspace folder if there is none. The daemon applies the
 *  edit through workspace/applyEdit, so the client sees (and saves, or undoes) it. The client
 *  asks the person first: a user's file is never written without being asked. */
export interface SaveModelEntryParams {
  model: string;
  dataset: string;
}
export interface SaveModelEntryResult {
  configFile: string;
  applied: boolean;
  created: boolean;
}
export const SaveModelEntryRequest = new RequestType<SaveModelEntryParams, SaveModelEntryResult, void>('skeptic/saveModelEntry');

/** skeptic/status: cheap, answered at once; also the latency probe of the tests. */
export interface StatusResult {
  version: string;
  trusted: boolean;
  /** The audit running now, if any. */
  audit?: { model: string; dataset: string; startedAt: string; done: number; total: number; probe?: string; phase: string };
  /** The worker process (undefined until the first job). */
  workerPid?: number;
  /** How long the daemon's event loop was held up since the last status request (ms): how
   *  long any request could have waited for the daemon itself. */
  eventLoopDelayMs?: { p50: number; max: number };
}
export const StatusRequest = new RequestType0<StatusResult, void>('skeptic/status');

/** skeptic/setTrusted (client → daemon): the workspace was trusted. Until then no model is
 *  loaded or inspected; skeptic.json is still validated and saved reports shown. */
export const SetTrustedNotification = new NotificationType<{ trusted: boolean }>('skeptic/setTrusted');

/** Options the client passes in `initialize`. */
export interface InitializationOptions {
  /** Workspace trust (default true: a plain LSP client has no such notion). */
  trusted?: boolean;
  /** The client validates skeptic.json's structure with schemas/skeptic.schema.json (VS Code's
   *  JSON support): the daemon then leaves key completions and key hovers to it. */
  schemaProvided?: boolean;
  /** Base URL of the rule documentation (a README); diagnostics link to `<docs>#probe-<id>`. */
  docsUrl?: string;
}

/** `workspace/executeCommand` commands the daemon offers (arguments: the request's params). */
export const DAEMON_COMMANDS = {
  /** [AuditParams] → AuditResult; progress through window/workDoneProgress. */
  audit: 'skeptic.daemon.audit',
  /** [] → CancelResult */
  cancel: 'skeptic.daemon.cancel',
  /** [ReportParams?] → ReportResult | null */
  report: 'skeptic.daemon.report',
} as const;

/** VS Code commands of the client that the daemon's code lenses invoke. */
export const CLIENT_COMMANDS = {
  /** [folder?: string] opens the report webview on that report folder. */
  showReport: 'skeptic.showReport',
  /** [report folder or model URI?] compares that report (or the model's latest) with another. */
  compareWith: 'skeptic.compareWith',
} as const;

/** The `skeptic.*` settings, as `workspace/configuration` returns the section "skeptic". */
export interface SkepticSettings {
  device: Device;
  probes: string[];
  probeParameters: Record<string, Record<string, unknown>>;
  /** "probe.param" → value, e.g. { "shift.maxFlipRate": 0.05 }. */
  thresholds: Record<string, number>;
  batchSize: number;
  /** 0: the whole dataset. */
  limit: number;
  seed: number;
  /** Results cache folder; empty: <base>/.skeptic/cache. Relative to the workspace folder. */
  cacheLocation: string;
  useCache: boolean;
  /** Read dataset files whose links lead outside the dataset's folder (as --follow-symlinks). */
  followSymlinks: boolean;
}

// ---------------------------------------------------------------------------------------------
// Daemon ⇄ worker process (Node IPC channel of child_process.fork). The worker runs the engine
// so that inference never blocks the daemon and a native crash ends only the worker.

/** An audit with every path resolved and every option decided. */
export interface AuditJob {
  model: string;
  dataset: string;
  preprocess?: string | Record<string, unknown>;
  labels?: string;
  outputKind?: string;
  /** Undefined: the engine's default probes. */
  probes?: string[];
  params: Record<string, Record<string, unknown>>;
  seed: number;
  limit?: number;
  batchSize: number;
  device: Device;
  /** CPU threads per session (skeptic.json "threads"); undefined: the engine's default. */
  threads?: number;
  /** Lanes (skeptic.json "lanes"); undefined: auto (engine/shard/lanes.ts lanePlan). */
  lanes?: number | 'auto';
  cacheDir?: string;
  outDir: string;
  baseDir: string;
  /** skeptic.json "followSymlinks" (else the skeptic.followSymlinks setting): as --follow-symlinks. */
  followSymlinks?: boolean;
}

/** What the engine offers, for validation, hover and completion of skeptic.json. */
export interface ProbeCatalog {
  probes: Array<{ id: string; title: string; summary: string; params: Record<string, unknown>; rules: Record<string, { name: string; text: string; help: string }> }>;
}

/** A model's input as Skeptic feeds it (static reading of the graph, no session). */
export interface ModelInput {
  layout: 'NCHW' | 'NHWC' | 'flat';
  channels: 1 | 3;
  height: number;
  width: number;
  input: { name: string; type: string; shape: (number | string)[] };
  outputs: Array<{ name: string; type: string; shape: (number | string)[] }>;
}

export interface JobProgress {
  done: number;
  total: number;
  phase: string;
  probe?: string;
  cacheHits: number;
  /** Work inside the phase, in words ("style transfer 32/200 stimuli"). */
  step?: string;
}

export type DaemonToWorker =
  | { type: 'audit'; id: number; job: AuditJob }
  | { type: 'describe'; id: number }
  | { type: 'inspect'; id: number; model: string }
  | { type: 'cancel'; id: number };

export interface WorkerError {
  name: string;
  message: string;
  /** For SkepticInputError: the file (and line) the problem is in. */
  file?: string;
  line?: number;
}

export type WorkerToDaemon =
  | { type: 'ready'; pid: number }
  | { type: 'progress'; id: number; progress: JobProgress }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number; error: WorkerError };

/** The audit job's result: report.json was written there. */
export interface AuditJobResult {
  reportFile: string;
  cancelled: boolean;
}
