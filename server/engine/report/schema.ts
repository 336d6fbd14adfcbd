/**
 * Report schema, version 2: the contract between the engine and every front end (CLI summary,
 * SARIF, the daemon's diagnostics, the webviews). report.schema.json is the same contract as a
 * JSON Schema; test/unit/report-schema.test.ts checks that real reports validate against it.
 *
 * Everything except `run` is a pure function of the inputs (model bytes, image bytes, options,
 * seed): the same audit gives the same report. `run` holds the wall-clock facts.
 */
import type { DeviceInfo, ModelInfo, OutputKind, Preprocessing, TensorInfo } from '../types';

export const REPORT_SCHEMA_VERSION = 2;
/** Versions the readers accept: version 1 held the per-image data inline in report.json; version
 *  2 keeps it in JSON Lines files beside it (per-image.ts). */
export const READABLE_SCHEMA_VERSIONS: readonly number[] = [1, 2];

/** report.json's pointer to its per-image files (version 2), with their line counts. */
export interface PerImageIndex {
  /** One ImageEntry per line, line k = image k. */
  images: { file: string; count: number };
  /** One `{probe, record}` per line; `counts` per probe. */
  records: { file: string; counts: Record<string, number> };
  /** Every finding, one per line; report.json holds the first `inReport`. */
  findings: { file: string; count: number; inReport: number };
}

export type Severity = 'error' | 'warning' | 'info';

/** Where a finding points: a file, and for manifest rows the 1-based line; for idx data the item index. */
export interface Subject {
  /** file:// URI of the file. */
  uri: string;
  /** The same file, relative to the report's base folder (for people and SARIF). */
  path: string;
  /** 1-based line in the file (a manifest row). */
  line?: number;
  /** The item's index inside the file (idx datasets). */
  index?: number;
  /** The dataset item the finding is about, as an index into Report.images. */
  image?: number;
}

export interface Finding {
  /** Stable identifier: probe/rule plus the subject, so front ends can de-duplicate. */
  id: string;
  probe: string;
  /** The rule that fired, e.g. "shift/one-pixel-flip"; doubles as the SARIF ruleId. */
  rule: string;
  severity: Severity;
  subject: Subject;
  message: string;
  metrics?: Record<string, number | string | boolean | null>;
  /** Files written for this finding, relative to the report's folder. */
  artifacts?: string[];
}

export interface ImageEntry {
  id: string;
  uri: string;
  path: string;
  line?: number;
  index?: number;
  label?: number;
  labelName?: string;
  sha256?: string;
  /** Why the image was not evaluated (listing or decoding problem). */
  error?: string;
}

/** What a rule means: SARIF rule descriptions and editor hovers come from here. */
export interface RuleInfo {
  name: string;
  text: string;
  help: string;
}

export type ProbeStatus = 'ok' | 'failed' | 'cancelled' | 'skipped';

export interface ProbeResult {
  title: string;
  status: ProbeStatus;
  /** Why it failed or was skipped. */
  reason?: string;
  params: Record<string, unknown>;
  /** One line for people: the probe's main numbers in words. */
  headline?: string;
  /** Headline numbers; each probe documents its own. */
  metrics: Record<string, unknown>;
  /** Data for plots (curves, histograms), shaped by the probe. */
  plots?: Record<string, unknown>;
  /** Per-image results: `image` indexes Report.images. In memory (and in a version 1 file); a
   *  version 2 report.json keeps them in records.jsonl (per-image.ts's loadPerImage reads them back). */
  records: Array<{ image: number; artifacts?: string[] } & Record<string, unknown>>;
  /** Images with records, out of the evaluated ones. */
  count: number;
}

export interface Report {
  /** REPORT_SCHEMA_VERSION for a new report; 1 for an older one read back. */
  schemaVersion: typeof REPORT_SCHEMA_VERSION | 1;
  tool: { name: 'skeptic'; version: string; engineVersion: string };
  model: {
    path: string;
    uri: string;
    sha256: string;
    inputs: TensorInfo[];
    outputs: TensorInfo[];
    layout: ModelInfo['layout'];
    inputSize: { channels: number; height: number; width: number };
    numClasses: number;
    outputKind: OutputKind;
    outputKindSource: ModelInfo['outputKindSource'];
    opset: number;
    quantized: boolean;
    batch: ModelInfo['batch'];
    preprocessing: Preprocessing;
    labels?: { source: string; count: number; names: string[] };
  };
  device: DeviceInfo;
  dataset: {
    path: string;
    uri: string;
    kind: string;
    /** Items in the dataset before --limit. */
    total: number;
    /** Items selected (after --limit). */
    selected: number;
    /** Items decoded and evaluated. */
    evaluated: number;
    classes?: string[];
    /** sha256 over the ordered (id, sha256) of the selected items: same data ⇒ same hash. */
    sha256: string;
  };
  config: {
    probes: string[];
    seed: number;
    limit?: number;
    batchSize: number;
    params: Record<string, Record<string, unknown>>;
  };
  probes: Record<string, ProbeResult>;
  /** Every finding in memory; a version 2 report.json holds the first MAX_FINDINGS_IN_REPORT
   *  (perImage.findings.count says how many there are; all are in findings.jsonl). */
  findings: Finding[];
  /** What each rule means, for every rule the probes (and the data checks) can raise. */
  rules: Record<string, RuleInfo>;
  /** The image table. In memory (and in a version 1 file); a version 2 report.json keeps it in
   *  images.jsonl. */
  images: ImageEntry[];
  /** Version 2 files: where the per-image data is (absent in the engine's in-memory report). */
  perImage?: PerImageIndex;
  /** Things the user should know that are not findings (assumed preprocessing, fallbacks). */
  warnings: string[];
  /** Wall-clock facts: these differ between two runs of the same audit. */
  run: {
    startedAt: string;
    durationMs: number;
    cancelled: boolean;
    timingsMs: Record<string, number>;
    cache: { hits: number; misses: number; path?: string };
    /** A report merged from shards (skeptic merge): which shards, and how much of the data. */
    shards?: ShardsRun;
    /** An audit whose per-image work ran in lanes (worker threads, shard/lanes.ts): how many, ONNX Runtime's threads in each, and why. */
    lanes?: { count: number; threads: number; why: string };
  };
}

/** run.shards: what a merged report was built from. `partial` reports cover `covered` of `selected` images. */
export interface ShardsRun {
  count: number;
  merged: number[];
  missing: number[];
  failed: number[];
  partial: boolean;
  covered: number;
  selected: number;
  /** Per-image records the merge computed itself (see shard/merge.ts). */
  computed: number;
  /** Images whose content changed since their shard ran. */
  changed: number;
  files: string[];
}
