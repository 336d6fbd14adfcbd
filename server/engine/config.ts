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
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { SkepticInputError } from './errors';

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
  probes?: Record<string, Record<string, unknown>>;
  /** `skeptic compare`: tolerances per metric (or prefix) and the significance level. */
  compare?: { tolerances?: Record<string, number>; alpha?: number };
  /** Entries with their paths resolved against the file's folder. */
  models: ModelEntry[];
}

export const CONFIG_FILE = 'skeptic.json';

/** Reads skeptic.json; a syntax error throws with the line and column. */
export function loadConfig(file: string): SkepticConfig {
  const text = readFileSync(file, 'utf8');
  const errors: ParseError[] = [];
  const raw = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length) {
    const e = errors[0];
    const line = text.slice(0, e.offset).split('\n').length;
    throw new SkepticInputError(`${file}:${line}: ${printParseErrorCode(e.error)}`, file, line);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SkepticInputError(`${file}: expected a JSON object`, file);
  }
  const dir = dirname(file);
  const models = Array.isArray(raw.models) ? raw.models : [];
  return {
    file,
    seed: raw.seed,
    device: raw.device,
    batchSize: raw.batchSize,
    threads: raw.threads,
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
