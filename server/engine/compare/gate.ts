/**
 * The CI gate of `skeptic compare --fail-on-regression`: a metric regressed when it got worse
 * (in its own direction), significantly (Holm-adjusted p < α), and by more than its tolerance.
 * Tolerances are absolute, in the metric's units (0.02 = two points of accuracy), looked up by the
 * most specific key that matches: "attack.robustAccuracy.pgd@8/255", then "attack.robustAccuracy.pgd",
 * "attack.robustAccuracy", "attack", then "*" (default 0). Metrics that are not comparable, not
 * tested, or have no direction never fail the gate.
 */
import { SkepticInputError } from '../errors';
import type { Comparison, MetricComparison } from './compare';

export type Tolerances = Record<string, number>;

export function toleranceFor(key: string, tolerances: Tolerances): number {
  const parts = key.replace(/@.*$/, '').split('.');
  const candidates = [key];
  for (let i = parts.length; i >= 1; i--) candidates.push(parts.slice(0, i).join('.'));
  candidates.push('*');
  for (const c of candidates) if (tolerances[c] !== undefined) return tolerances[c];
  return 0;
}

export interface Regression {
  metric: MetricComparison;
  tolerance: number;
  /** How much worse, in the metric's units (positive). */
  worseBy: number;
}

export function regressions(c: Comparison, tolerances: Tolerances = {}): Regression[] {
  const out: Regression[] = [];
  for (const m of c.metrics) {
    if (!m.comparable || m.change !== 'worse' || m.diff === null) continue;
    const worseBy = m.better === 'higher' ? -m.diff : m.diff;
    const tolerance = toleranceFor(m.key, tolerances);
    if (worseBy > tolerance) out.push({ metric: m, tolerance, worseBy });
  }
  return out;
}

/** Parses "KEY=VALUE" tolerance flags (VALUE a number, or a percentage "2%"). */
export function parseTolerances(flags: string[], source = '--tolerance'): Tolerances {
  const out: Tolerances = {};
  for (const f of flags) {
    const m = /^([A-Za-z0-9_.*@/-]+)=([0-9.]+)(%?)$/.exec(f.trim());
    const v = m ? Number(m[2]) / (m[3] ? 100 : 1) : NaN;
    if (!m || !Number.isFinite(v)) throw new SkepticInputError(`${source} must look like METRIC=0.02 (or METRIC=2%), not '${f}'`);
    out[m[1]] = v;
  }
  return out;
}

/** Checks skeptic.json's "compare.tolerances": { "clean.accuracy": 0.01, ... }. */
export function tolerancesFromConfig(raw: unknown, file: string): Tolerances {
  if (raw === undefined) return {};
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new SkepticInputError(`${file}: "compare.tolerances" must be an object of metric → number`, file);
  const out: Tolerances = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new SkepticInputError(`${file}: compare.tolerances."${k}" must be a non-negative number`, file);
    out[k] = v;
  }
  return out;
}
