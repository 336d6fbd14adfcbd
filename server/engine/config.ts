/**
 * skeptic.json: per-workspace settings. Comments and trailing commas are allowed (JSONC).
 *
 *   {
 *     "seed": 0, "device": "auto", "batchSize": 32,
 *     "probes": { "shift": { "k": 8 } },             // parameters per probe
 *     "models": [
 *       { "path": "models/demo/shapes-cnn.onnx",     // relative to skeptic.json
 *         "dataset": "models/demo/data/test.csv",
 *         "preprocess": "imagenet" | { "scale": 1, "mean": [...], "std": [...] },
 *         "labels": "labels.txt", "probes": ["clean", "shift"], "limit": 1000 }
 *     ]
 *   }
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { findNodeAtLocation, getNodeValue, parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';
import { SkepticInputError } from './errors';
import { MAX_TEXT_BYTES, readRegularFile } from './fs/files';

export interface ModelEntry {
  path: string;
  dataset?: string;
  preprocess?: string | Record<string, unknown>;
  labels?: string;
  probes?: string[];
  limit?: number;
  outputKind?: string;
}

export interface SkepticConfig {
  /** Absolute path of the skeptic.json file. */
  file: string;
  seed?: number;
  device?: string;
  batchSize?: number;
  /** CPU threads per ONNX Runtime session (default: the physical cores). */
  threads?: number;
  /** Lanes an audit's per-image work runs in (worker threads; shard/lanes.ts), or 'auto' (the default). */
  lanes?: number | 'auto';
  /** Follow symbolic links that leave the dataset's root (default false: such items are errors). */
  followSymlinks?: boolean;
  probes?: Record<string, Record<string, unknown>>;
  /** `skeptic compare`: tolerances per metric (or prefix) and the significance level. */
  compare?: { tolerances?: Record<string, number>; alpha?: number };
  /** Entries with their paths resolved against the file's folder. */
  models: ModelEntry[];
}

export const CONFIG_FILE = 'skeptic.json';

/** Reads skeptic.json; a syntax error or a bad value throws naming the file, the line and the key. */
export function loadConfig(file: string): SkepticConfig {
  const text = readRegularFile(file, 'config', MAX_TEXT_BYTES).toString('utf8');
  const deep = tooDeep(text);
  if (deep !== undefined) {
    const line = text.slice(0, deep).split('\n').length;
    throw new SkepticInputError(`${file}:${line}: nested more than ${MAX_DEPTH} levels deep`, file, line);
  }
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length) {
    const e = errors[0];
    const line = text.slice(0, e.offset).split('\n').length;
    throw new SkepticInputError(`${file}:${line}: ${printParseErrorCode(e.error)}`, file, line);
  }
  const raw = tree ? getNodeValue(tree) : undefined;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SkepticInputError(`${file}: expected a JSON object`, file);
  }
  validate(raw, tree!, text, file);
  const dir = dirname(file);
  const models = Array.isArray(raw.models) ? raw.models : [];
  return {
    file,
    seed: raw.seed,
    device: raw.device,
    batchSize: raw.batchSize,
    threads: raw.threads,
    lanes: raw.lanes,
    followSymlinks: raw.followSymlinks,
    probes: raw.probes,
    compare: raw.compare,
    models: models.map((m: ModelEntry) => ({
      ...m,
      path: resolve(dir, m.path),
      dataset: m.dataset ? resolve(dir, m.dataset) : undefined,
      labels: m.labels ? resolve(dir, m.labels) : undefined,
    })),
  };
}

/** Deeper than this, skeptic.json is not a settings file (and the parser would overflow its stack). */
const MAX_DEPTH = 64;
/** Largest batchSize and threads accepted (memory grows with the batch; threads past the cores only add overhead). */
export const MAX_BATCH_SIZE = 1024;
export const MAX_THREADS = 256;
/** Most lanes accepted (each loads the model: more than the cores only adds memory). */
export const MAX_LANES = 64;

/** Offset where brackets nest deeper than MAX_DEPTH (outside strings), or undefined. */
function tooDeep(text: string): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (++depth > MAX_DEPTH) return i;
    } else if (c === '}' || c === ']') depth--;
  }
  return undefined;
}

const DEVICES = ['auto', 'cpu', 'webgpu', 'cuda'];
const OUTPUT_KINDS = ['logits', 'probabilities', 'log-probabilities'];

/** Checks the type and range of every known key; the first bad one throws with its line. */
function validate(raw: Record<string, unknown>, tree: Node, text: string, file: string): void {
  const fail = (path: (string | number)[], what: string): never => {
    const node = findNodeAtLocation(tree, path);
    const line = node ? text.slice(0, node.offset).split('\n').length : undefined;
    const key = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
    const got = what.startsWith('must') ? `, not ${show(node ? getNodeValue(node) : undefined)}` : '';
    throw new SkepticInputError(`${file}${line ? `:${line}` : ''}: "${key}" ${what}${got}`, file, line);
  };
  const int = (path: (string | number)[], v: unknown, min: number, max: number) => {
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max)) {
      fail(path, `must be an integer from ${min} to ${max}`);
    }
  };
  const string = (path: (string | number)[], v: unknown, allowed?: string[]) => {
    if (v === undefined) return;
    if (typeof v !== 'string' || (!allowed && v.trim() === '')) fail(path, 'must be a non-empty string');
    if (allowed && !allowed.includes(v as string)) fail(path, `must be one of ${allowed.join(', ')}`);
  };
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  int(['seed'], raw.seed, 0, Number.MAX_SAFE_INTEGER);
  string(['device'], raw.device, DEVICES);
  int(['batchSize'], raw.batchSize, 1, MAX_BATCH_SIZE);
  int(['threads'], raw.threads, 1, MAX_THREADS);
  if (raw.lanes !== undefined && raw.lanes !== 'auto' && !(typeof raw.lanes === 'number' && Number.isInteger(raw.lanes) && raw.lanes >= 1 && raw.lanes <= MAX_LANES)) {
    fail(['lanes'], `must be "auto" or an integer from 1 to ${MAX_LANES}`);
  }
  if (raw.followSymlinks !== undefined && typeof raw.followSymlinks !== 'boolean') fail(['followSymlinks'], 'must be true or false');
  if (raw.probes !== undefined) {
    if (!isObject(raw.probes)) fail(['probes'], 'must be an object of parameters per probe, e.g. {"shift": {"k": 4}}');
    for (const [id, params] of Object.entries(raw.probes as object)) {
      if (!isObject(params)) fail(['probes', id], 'must be an object of parameters');
    }
  }
  if (raw.models !== undefined) {
    if (!Array.isArray(raw.models)) fail(['models'], 'must be an array of model entries');
    (raw.models as unknown[]).forEach((m, i) => {
      if (!isObject(m)) fail(['models', i], 'must be an object with at least "path"');
      const e = m as Record<string, unknown>;
      if (e.path === undefined) fail(['models', i], 'needs a "path" (the .onnx file)');
      string(['models', i, 'path'], e.path);
      string(['models', i, 'dataset'], e.dataset);
      string(['models', i, 'labels'], e.labels);
      string(['models', i, 'outputKind'], e.outputKind, OUTPUT_KINDS);
      int(['models', i, 'limit'], e.limit, 0, Number.MAX_SAFE_INTEGER);
      if (e.preprocess !== undefined && typeof e.preprocess !== 'string' && !isObject(e.preprocess)) {
        fail(['models', i, 'preprocess'], 'must be a preset name or an object');
      }
      if (e.probes !== undefined && !(Array.isArray(e.probes) && e.probes.every((p) => typeof p === 'string'))) {
        fail(['models', i, 'probes'], 'must be an array of probe ids');
      }
    });
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** The skeptic.json of a folder or of its nearest ancestor, if any. */
export function findConfig(startDir: string): string | undefined {
  let dir = resolve(startDir);
  for (;;) {
    const f = resolve(dir, CONFIG_FILE);
    if (existsSync(f)) return f;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}
