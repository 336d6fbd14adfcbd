/**
 * The metrics `skeptic compare` puts side by side, per probe, and how each one is measured per
 * image, so that two audits of the same images can be compared image by image (a paired test).
 *
 * Each metric's per-image measure averages back to the number the probe reports (the tests check
 * that on real reports): a boolean for a proportion (correct, robust at ε, flipped under a 1-pixel
 * shift), a number for a mean. A metric also names the probe parameters it depends on: when they
 * differ between the two reports the metric is not comparable and the comparison says why.
 *
 * Probes not described here (and any future probe) still get their top-level numbers shown side by
 * side, without a test.
 */
import type { ProbeResult, Report } from '../report/schema';
import type { Better } from './types';

export type { Better };

export interface MetricDef {
  /** Stable key, e.g. "clean.accuracy", "attack.robustAccuracy.pgd@8/255". */
  key: string;
  probe: string;
  label: string;
  /** Which direction is an improvement; null: neither (informational, never a regression). */
  better: Better;
  /** proportion: per-image booleans; mean: per-image numbers; auroc: an AUROC with its sample
   *  sizes; value: a number with no per-image measure (shown, not tested). */
  kind: 'proportion' | 'mean' | 'auroc' | 'value';
  /** fraction: shown as a percentage, differences in points (default for proportions and means). */
  unit?: 'fraction' | 'number';
  /** Parameters of the probe this metric depends on. */
  params: string[];
  /** The number as the report states it (null: not in this report). */
  value(r: Report): number | null;
  /** Per image (by Report.images index): the measure, or undefined where the image does not count. */
  perImage?(r: Report): Map<number, boolean | number> | null;
  /** For proportions without per-image records: successes and trials, for an unpaired test. */
  counts?(r: Report): { x: number; n: number } | null;
  /** For kind auroc: the AUROC and its positive (in-distribution) and negative (OOD) counts. */
  auroc?(r: Report): { auc: number; nPos: number; nNeg: number } | null;
  /** Why the metric cannot be compared even when the parameters agree (ε not in one grid). */
  missing?(r: Report): string | undefined;
}

type Rec = ProbeResult['records'][number];

const probeOf = (r: Report, id: string): ProbeResult | undefined => (r.probes[id]?.status === 'ok' ? r.probes[id] : undefined);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const labelOf = (r: Report, rec: Rec) => r.images[rec.image]?.label;

/** Per-image measure over a probe's records. */
function perRecord(probe: string, f: (rec: Rec, r: Report) => boolean | number | undefined) {
  return (r: Report) => {
    const p = probeOf(r, probe);
    if (!p) return null;
    const out = new Map<number, boolean | number>();
    for (const rec of p.records) {
      const v = f(rec, r);
      if (v !== undefined) out.set(rec.image, v);
    }
    return out;
  };
}

const metric = (probe: string, path: (m: Record<string, unknown>) => unknown) => (r: Report) => {
  const p = probeOf(r, probe);
  return p ? num(path(p.metrics)) : null;
};

/** "8/255" for ε on the 1/255 grid, else the number. */
export function epsLabel(e: number): string {
  const k = e * 255;
  return Math.abs(k - Math.round(k)) < 1e-6 ? `${Math.round(k)}/255` : String(+e.toPrecision(6));
}

const bit = (m: unknown, k: number) => typeof m === 'number' && (m & (1 << k)) !== 0;

function attackDefs(reports: Report[]): MetricDef[] {
  const defs: MetricDef[] = [];
  const runParams = ['attacks', 'domain', 'steps', 'stepFactor', 'loss', 'queries', 'pInit'];
  const grid = (r: Report, norm: 'linf' | 'l2'): number[] => {
    const e = (probeOf(r, 'attack')?.metrics.eps as { linf?: number[]; l2?: number[] } | undefined)?.[norm];
    return Array.isArray(e) ? e : [];
  };
  const attacks: Array<[string, string, 'linf' | 'l2']> = [
    ['pgd', 'PGD L∞', 'linf'],
    ['square', 'Square L∞', 'linf'],
    ['fgsm', 'FGSM', 'linf'],
    ['any', 'any L∞ attack', 'linf'],
    ['pgdL2', 'PGD L2', 'l2'],
  ];
  const ran = (r: Report, attack: string) => Array.isArray((probeOf(r, 'attack')?.metrics.robustAccuracy as Record<string, unknown> | undefined)?.[attack]);
  for (const [attack, name, norm] of attacks) {
    // Attacks that ran in neither report are left out, not listed as incomparable.
    if (!reports.some((r) => ran(r, attack))) continue;
    // "any" is the single L∞ attack itself when only one ran: not a metric of its own then.
    if (attack === 'any' && !reports.some((r) => ['fgsm', 'pgd', 'square'].filter((a) => ran(r, a)).length > 1)) continue;
    const eps: number[] = [];
    for (const r of reports) for (const e of grid(r, norm)) if (!eps.some((x) => Math.abs(x - e) < 1e-9)) eps.push(e);
    eps.sort((a, b) => a - b);
    for (const e of eps) {
      const label = norm === 'l2' ? String(e) : epsLabel(e);
      const index = (r: Report) => grid(r, norm).findIndex((x) => Math.abs(x - e) < 1e-9);
      defs.push({
        key: `attack.robustAccuracy.${attack}@${label}`,
        probe: 'attack',
        label: `robust accuracy, ${name}, ε = ${label}`,
        better: 'higher',
        kind: 'proportion',
        params: runParams,
        value: (r) => {
          const k = index(r);
          const curve = (probeOf(r, 'attack')?.metrics.robustAccuracy as Record<string, number[] | null> | undefined)?.[attack];
          return k >= 0 && Array.isArray(curve) ? num(curve[k]) : null;
        },
        missing: (r) => {
          if (!probeOf(r, 'attack')) return undefined;
          const curve = (probeOf(r, 'attack')?.metrics.robustAccuracy as Record<string, unknown> | undefined)?.[attack];
          if (!Array.isArray(curve)) return `${name} did not run`;
          return index(r) < 0 ? `ε = ${label} is not in its grid` : undefined;
        },
        perImage: (r) => {
          const k = index(r);
          if (k < 0) return null;
          const key = attack === 'pgdL2' ? 'pgdL2' : attack;
          return perRecord('attack', (rec, rr) => {
            if (labelOf(rr, rec) === undefined) return undefined;
            if (rec.status !== 'attacked') return false;
            if (key === 'any') return !(bit(rec.fgsm, k) || bit(rec.pgd, k) || bit(rec.square, k));
            if (rec[key] === undefined) return undefined;
            return !bit(rec[key], k);
          })(r);
        },
      });
    }
  }
  defs.push({
    key: 'attack.medianMinEps',
    probe: 'attack',
    label: 'median minimal L∞ ε',
    unit: 'number',
    better: 'higher',
    kind: 'value',
    params: [...runParams, 'eps', 'bisectionSteps', 'largeEps'],
    value: metric('attack', (m) => m.medianMinEps),
  });
  return defs;
}

function corruptionDefs(reports: Report[]): MetricDef[] {
  const names = new Set<string>();
  for (const r of reports) for (const c of (probeOf(r, 'corruptions')?.metrics.perCorruption as Array<{ corruption: string }> | undefined) ?? []) names.add(c.corruption);
  const severities = (r: Report) => (probeOf(r, 'corruptions')?.metrics.severities as number[] | undefined) ?? [];
  /** Mean over the given corruptions × severities of "right under this corruption". */
  const hitShare = (only?: string) =>
    perRecord('corruptions', (rec, r) => {
      const hit = rec.hit as Record<string, number> | undefined;
      if (!hit || labelOf(r, rec) === undefined) return undefined;
      const sev = severities(r);
      const cs = only ? [only] : Object.keys(hit);
      let s = 0;
      for (const c of cs) for (const v of sev) if (bit(hit[c], v - 1)) s++;
      return s / (cs.length * sev.length);
    });
  const defs: MetricDef[] = [
    {
      key: 'corruptions.meanCorruptionAccuracy',
      probe: 'corruptions',
      label: 'mean corruption accuracy',
      better: 'higher',
      kind: 'mean',
      params: ['corruptions', 'severities'],
      value: metric('corruptions', (m) => m.meanCorruptionAccuracy),
      perImage: hitShare(),
    },
  ];
  // Hendrycks & Dietterich's mCE (against AlexNet's errors) exists only for ImageNet-shaped models:
  // a row only where a report has it. One number with no per-image measure: shown, not tested.
  if (reports.some((r) => num(probeOf(r, 'corruptions')?.metrics.mCE) !== null)) {
    defs.push({
      key: 'corruptions.mCE',
      probe: 'corruptions',
      label: 'mCE (against AlexNet)',
      unit: 'fraction',
      better: 'lower',
      kind: 'value',
      params: ['corruptions', 'severities'],
      value: metric('corruptions', (m) => m.mCE),
    });
  }
  for (const c of [...names].sort()) {
    defs.push({
      key: `corruptions.accuracy.${c}`,
      probe: 'corruptions',
      label: `accuracy under ${c.replace(/_/g, ' ')}`,
      better: 'higher',
      kind: 'mean',
      params: ['severities'],
      value: metric('corruptions', (m) => (m.perCorruption as Array<{ corruption: string; accuracy: number }>).find((x) => x.corruption === c)?.accuracy),
      missing: (r) => (probeOf(r, 'corruptions') && !(probeOf(r, 'corruptions')!.metrics.perCorruption as Array<{ corruption: string }>).some((x) => x.corruption === c) ? `${c} did not run` : undefined),
      perImage: hitShare(c),
    });
  }
  return defs;
}

function shiftDefs(): MetricDef[] {
  return [
    {
      key: 'shift.oneFlipRate',
      probe: 'shift',
      label: 'images flipped by a 1-pixel shift',
      better: 'lower',
      kind: 'proportion',
      params: [],
      value: metric('shift', (m) => m.oneFlipRate),
      perImage: perRecord('shift', (rec) => !!rec.oneFlip),
    },
    {
      key: 'shift.adjacentFlipRate',
      probe: 'shift',
      label: 'P(top-1 changes) between adjacent shifts',
      better: 'lower',
      kind: 'mean',
      params: ['k'],
      value: metric('shift', (m) => m.adjacentFlipRate),
      // 2k adjacent pairs in each of the two sweeps (the summary keeps predH/predV for the worst images only).
      perImage: (r) => {
        const k = num(probeOf(r, 'shift')?.metrics.maxShift);
        return k ? perRecord('shift', (rec) => (typeof rec.adjacentFlips === 'number' ? rec.adjacentFlips / (4 * k) : undefined))(r) : null;
      },
    },
    {
      key: 'shift.changedAnywhereRate',
      probe: 'shift',
      label: 'images changed by some shift',
      better: 'lower',
      kind: 'proportion',
      params: ['k'],
      value: metric('shift', (m) => m.changedAnywhereRate),
      // The records keep the per-shift predictions of the worst images only: unpaired counts.
      counts: (r) => {
        const p = probeOf(r, 'shift');
        const n = num(p?.metrics.count);
        const rate = num(p?.metrics.changedAnywhereRate);
        return n && rate !== null ? { x: Math.round(rate * n), n } : null;
      },
    },
  ];
}

function patchDefs(reports: Report[]): MetricDef[] {
  const grids = new Set<number>();
  const gridsOf = (r: Report) => ((probeOf(r, 'patches')?.params.grids as number[] | undefined) ?? []);
  for (const r of reports) for (const g of gridsOf(r)) grids.add(g);
  return [...grids].sort((a, b) => a - b).map((g) => ({
    key: `patches.accuracy@${g}x${g}`,
    probe: 'patches',
    label: `accuracy on ${g}×${g} shuffled tiles`,
    // High accuracy on shuffled tiles means reliance on texture, low means shape; neither is a regression as such.
    better: null,
    kind: 'proportion' as const,
    params: [],
    value: metric('patches', (m) => (m.grids as Array<{ grid: number; accuracy: number }>).find((x) => x.grid === g)?.accuracy),
    missing: (r: Report) => (probeOf(r, 'patches') && !gridsOf(r).includes(g) ? `grid ${g}×${g} did not run` : undefined),
    perImage: (r: Report) => {
      const j = gridsOf(r).indexOf(g);
      return j < 0 ? null : perRecord('patches', (rec, rr) => (labelOf(rr, rec) === undefined ? undefined : (rec.shuffled as number[])[j] === labelOf(rr, rec)))(r);
    },
  }));
}

function oodDefs(reports: Report[]): MetricDef[] {
  type Sets = Record<string, { count: number; auroc: Record<string, number>; source?: string }>;
  const setsOf = (r: Report) => (probeOf(r, 'ood')?.metrics.sets as Sets | undefined) ?? {};
  const names = new Set<string>();
  for (const r of reports) for (const s of Object.keys(setsOf(r))) names.add(s);
  const defs: MetricDef[] = [...names].map((s) => ({
    key: `ood.auroc.${s}`,
    probe: 'ood',
    label: `OOD AUROC (MSP), ${s}`,
    better: 'higher' as const,
    kind: 'auroc' as const,
    // Generated sets depend on these; a real OOD set on its path.
    params: s === 'data' || setsOf(reports[0])[s]?.source === 'data' ? ['oodData', 'oodLimit'] : ['grid'],
    value: (r: Report) => num(setsOf(r)[s]?.auroc?.msp),
    missing: (r: Report) => (probeOf(r, 'ood') && !setsOf(r)[s] ? `set '${s}' did not run` : undefined),
    auroc: (r: Report) => {
      const set = setsOf(r)[s];
      const nPos = num(probeOf(r, 'ood')?.metrics.count);
      const auc = num(set?.auroc?.msp);
      return set && nPos && auc !== null ? { auc, nPos, nNeg: set.count } : null;
    },
  }));
  defs.push({
    key: 'ood.ece',
    probe: 'ood',
    label: 'expected calibration error',
    unit: 'fraction',
    better: 'lower',
    kind: 'value',
    params: ['eceBins'],
    value: metric('ood', (m) => (m.calibration as { ece?: number } | undefined)?.ece ?? m.ece),
  });
  return defs;
}

/** Top-level numbers of a probe this file does not describe: shown, never tested. */
function genericDefs(probe: string, reports: Report[]): MetricDef[] {
  const keys = new Set<string>();
  for (const r of reports) {
    for (const [k, v] of Object.entries(probeOf(r, probe)?.metrics ?? {})) {
      if (typeof v === 'number' && !['count', 'labelled'].includes(k)) keys.add(k);
    }
  }
  return [...keys].map((k) => ({ key: `${probe}.${k}`, probe, label: k, better: null, kind: 'value' as const, params: [], value: metric(probe, (m) => m[k]) }));
}

/** Every metric to compare between the reports, probe by probe in the order the reports ran them. */
export function metricDefs(base: Report, next: Report): MetricDef[] {
  return allDefs(base, next).map((d) => ({ ...d, unit: d.unit ?? (d.kind === 'proportion' || d.kind === 'mean' ? 'fraction' : 'number') }));
}

function allDefs(base: Report, next: Report): MetricDef[] {
  const reports = [base, next];
  const probes = [...new Set([...Object.keys(base.probes), ...Object.keys(next.probes)])];
  const defs: MetricDef[] = [];
  for (const probe of probes) {
    switch (probe) {
      case 'clean':
        defs.push(
          {
            key: 'clean.accuracy',
            probe,
            label: 'clean accuracy',
            better: 'higher',
            kind: 'proportion',
            params: [],
            value: metric('clean', (m) => m.accuracy),
            perImage: perRecord('clean', (rec) => (typeof rec.correct === 'boolean' ? rec.correct : undefined)),
          },
          {
            key: 'clean.meanConfidence',
            probe,
            label: 'mean confidence',
            better: null,
            kind: 'mean',
            params: [],
            value: metric('clean', (m) => m.meanConfidence),
            perImage: perRecord('clean', (rec) => rec.conf as number),
          },
        );
        break;
      case 'attack':
        defs.push(...attackDefs(reports));
        break;
      case 'corruptions':
        defs.push(...corruptionDefs(reports));
        break;
      case 'shift':
        defs.push(...shiftDefs());
        break;
      case 'patches':
        defs.push(...patchDefs(reports));
        break;
      case 'ood':
        defs.push(...oodDefs(reports));
        break;
      default:
        defs.push(...genericDefs(probe, reports));
    }
  }
  return defs;
}
