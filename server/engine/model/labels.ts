/**
 * Class names: from --labels, `<model>.labels.txt` or `labels.txt` beside the model, or the
 * model's metadata_props. Each class gets the keys a dataset label may use (lower-cased).
 */
import { existsSync } from 'node:fs';
import { readRegularFile } from '../fs/files';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { LabelSet } from '../types';
import { SkepticInputError } from '../errors';

/** "n01440764 tench, Tinca tinca": an ImageNet WNID line. */
const WNID_LINE = /^(n\d{8})\s+(.+)$/;

function uniq(xs: string[]): string[] {
  return [...new Set(xs.filter((x) => x.length > 0))];
}

/** Names and keys for a list of label lines. */
export function labelsFromLines(lines: string[], source: string): LabelSet {
  const names: string[] = [];
  const keys: string[][] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const m = WNID_LINE.exec(line);
    if (m) {
      const rest = m[2].trim();
      const name = rest.split(',')[0].trim();
      names.push(name);
      keys.push(uniq([m[1].toLowerCase(), name.toLowerCase(), rest.toLowerCase(), line.toLowerCase()]));
    } else if (line.length === 0) {
      names.push(String(i));
      keys.push([String(i)]);
    } else {
      names.push(line);
      keys.push([line.toLowerCase()]);
    }
  });
  return { names, keys, source };
}

export function readLabelsFile(file: string): LabelSet {
  if (!existsSync(file)) throw new SkepticInputError(`labels file not found: ${file}`, file);
  // A folder, a FIFO, a device or an endless file is refused with the reason, naming the file.
  const text = readRegularFile(file, 'labels file').toString('utf8');
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length && lines[lines.length - 1].trim() === '') lines.pop();
  if (lines.length === 0) throw new SkepticInputError(`${file}: the labels file is empty`, file);
  return labelsFromLines(lines, file);
}

/** Metadata keys that commonly hold class names, in order of preference. */
const META_KEYS = ['skeptic.labels', 'labels', 'classes', 'class_names', 'names'];

/** Parses a metadata value: a JSON array, a JSON object {"0": "cat", ...}, a Python-ish dict, or a comma list. */
function parseLabelValue(v: string): string[] | undefined {
  const s = v.trim();
  if (!s) return undefined;
  if (s.startsWith('[') || s.startsWith('{')) {
    let j: unknown;
    try {
      j = JSON.parse(s);
    } catch {
      // ultralytics writes a Python dict: {0: 'person', 1: 'bicycle'}
      const items = [...s.matchAll(/(\d+)\s*:\s*(['"])(.*?)\2/g)];
      if (items.length === 0) return undefined;
      j = Object.fromEntries(items.map((m) => [m[1], m[3]]));
    }
    if (Array.isArray(j)) return j.every((x) => typeof x === 'string' || typeof x === 'number') ? j.map(String) : undefined;
    if (j && typeof j === 'object') {
      const entries = Object.entries(j as Record<string, unknown>);
      if (!entries.every(([k, x]) => /^\d+$/.test(k) && typeof x === 'string')) return undefined;
      const out: string[] = [];
      for (const [k, x] of entries) out[Number(k)] = x as string;
      return Array.from(out, (x, i) => x ?? String(i));
    }
    return undefined;
  }
  if (s.includes(',')) return s.split(',').map((x) => x.trim());
  return undefined;
}

export function labelsFromMetadata(meta: Record<string, string>): LabelSet | undefined {
  const lower = new Map(Object.keys(meta).map((k) => [k.toLowerCase(), k]));
  for (const k of META_KEYS) {
    const key = lower.get(k);
    if (key === undefined) continue;
    const list = parseLabelValue(meta[key]);
    if (list && list.length > 0) return labelsFromLines(list, 'metadata');
  }
  return undefined;
}

/**
 * opts.labels, else `<model-basename>.labels.txt`, else `labels.txt` beside the model, else
 * metadata; undefined when none says anything.
 */
export function resolveLabels(modelPath: string, meta: Record<string, string>, explicit?: string): LabelSet | undefined {
  if (explicit !== undefined) return readLabelsFile(resolve(explicit));
  const dir = dirname(modelPath);
  const stem = basename(modelPath, extname(modelPath));
  for (const f of [join(dir, `${stem}.labels.txt`), join(dir, 'labels.txt')]) {
    if (existsSync(f)) return readLabelsFile(f);
  }
  return labelsFromMetadata(meta);
}
