/**
 * Mapping a dataset's label values (class indices or class names) to the model's class indices.
 */
import type { LabelSet } from '../types';

/** A class index written as a (non-negative or negative) integer: "3", " 12 ", "-1". */
export function isIntegerString(s: string): boolean {
  return /^\s*[+-]?\d+\s*$/.test(s);
}

/** A label value as text: numbers and strings as written, anything else undefined. */
export function labelText(v: unknown): string | undefined {
  if (typeof v === 'string') return v.trim() === '' ? undefined : v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'bigint') return String(v);
  return undefined;
}

const loose = (s: string) => s.trim().toLowerCase().replace(/[\s_-]+/g, ' ');

/**
 * Finds the model class a label names. Exact (trimmed, case-insensitive) matches against every
 * accepted spelling come first; then a looser match that treats runs of spaces, underscores and
 * hyphens alike ("pencil_sharpener" = "pencil sharpener"), because folder names cannot hold some
 * characters that class names do. When a key is shared by several classes the first one wins.
 */
export class LabelMatcher {
  private readonly exact = new Map<string, number>();
  private readonly fuzzy = new Map<string, number>();

  constructor(readonly labels: LabelSet) {
    const add = (key: string, i: number) => {
      const k = key.trim().toLowerCase();
      if (k && !this.exact.has(k)) this.exact.set(k, i);
      const l = loose(key);
      if (l && !this.fuzzy.has(l)) this.fuzzy.set(l, i);
    };
    labels.names.forEach((n, i) => add(n, i));
    labels.keys.forEach((ks, i) => ks.forEach((k) => add(k, i)));
  }

  get numClasses(): number {
    return this.labels.names.length;
  }

  match(value: string): number | undefined {
    return this.exact.get(value.trim().toLowerCase()) ?? this.fuzzy.get(loose(value));
  }
}

export type LabelResult = { label: number } | { error: string };

/** An integer label as a class index, checked against the model's class count when known. */
export function indexLabel(value: string, numClasses?: number): LabelResult {
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n) || n < 0) return { error: `label ${JSON.stringify(value)} is not a valid class index` };
  if (numClasses !== undefined && n >= numClasses) {
    return { error: `label ${n} is out of range: the model has ${numClasses} classes (0–${numClasses - 1})` };
  }
  return { label: n };
}
