/**
 * Compares two audits (BASE, then NEW): per probe, the key metrics side by side with their
 * difference and whether it is larger than chance for the number of images; the findings that
 * are new in NEW and those that are gone; the images that became fragile and those that recovered.
 *
 * Pairing. Images are matched by their id and content hash (report.images). Where both reports
 * hold per-image records of a metric for common images, the test is paired on those images (exact
 * McNemar for proportions, a seeded paired bootstrap for means) and both values are computed on
 * those images, so the difference and the test speak of the same images. Otherwise the test is
 * unpaired (two-proportion z, Hanley–McNeil for AUROC) on each report's own numbers, and the
 * output says so. A metric whose probe parameters differ, or whose probe did not run in one of the
 * reports, is listed as not comparable, with the reason.
 */
import type { Finding, Report } from '../report/schema';
import { metricDefs, type MetricDef } from './metrics';
import { aurocZ, holm, pairedBootstrap, pairedProportions, twoProportionZ, type TestResult } from './stats';
import type { Comparison, FindingChange, ImageChange, MetricComparison, ReportRef, TestName } from './types';

export type { Comparison, FindingChange, ImageChange, MetricComparison, ReportRef, TestName } from './types';

export const COMPARISON_SCHEMA_VERSION = 1;

export const TEST_NAMES: Record<TestName, string> = {
  'mcnemar-exact': 'exact McNemar test on per-image outcomes (paired)',
  'paired-bootstrap': 'paired bootstrap of the per-image difference (2000 resamples, seed 0; p from the bootstrap standard error)',
  'two-proportion-z': 'two-proportion z-test (unpaired: no common per-image records)',
  'hanley-mcneil-z': 'Hanley–McNeil z-test of two AUROCs (unpaired)',
  none: 'no test: no per-image measure or sample size for this number',
};

export interface CompareOptions {
  /** Significance level (default 0.05), applied to Holm-adjusted p-values. */
  alpha?: number;
  /** Bootstrap seed (default 0) and resamples (default 2000). */
  seed?: number;
  resamples?: number;
  /** Labels for the two reports (default: their model paths). */
  baseSource?: string;
  newSource?: string;
}

const imageKey = (r: Report, i: number) => `${r.images[i]?.id}\u0000${r.images[i]?.sha256 ?? ''}`;

function ref(r: Report, source: string): ReportRef {
  return {
    source,
    model: r.model.path,
    modelSha256: r.model.sha256,
    dataset: r.dataset.path,
    datasetSha256: r.dataset.sha256,
    images: r.dataset.evaluated,
    seed: r.config.seed,
    startedAt: r.run?.startedAt ?? '',
    toolVersion: r.tool.version,
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function compareReports(base: Report, next: Report, opts: CompareOptions = {}): Comparison {
  const alpha = opts.alpha ?? 0.05;
  // Images of NEW by key, for pairing BASE's image indices to NEW's.
  const newIndex = new Map<string, number>();
  next.images.forEach((img, i) => {
    if (!img.error) newIndex.set(imageKey(next, i), i);
  });
  const pairs = new Map<number, number>();
  base.images.forEach((img, i) => {
    const j = newIndex.get(imageKey(base, i));
    if (j !== undefined && !img.error) pairs.set(i, j);
  });
  const sameDataset = base.dataset.sha256 === next.dataset.sha256;

  const notes: string[] = [];
  if (base.model.sha256 === next.model.sha256) notes.push('Both reports audit the same model file (same sha256).');
  if (!sameDataset) {
    notes.push(
      pairs.size
        ? `The datasets differ: ${pairs.size} image(s) are in both (same id and content); paired tests use only those.`
        : 'The datasets have no image in common: tests are unpaired, and a difference may come from the data as much as from the model.',
    );
  }
  if (base.config.seed !== next.config.seed) {
    notes.push(`The seeds differ (${base.config.seed} vs ${next.config.seed}): random starts, Square's search, noise and generated OOD sets differ, and the tests count that as noise.`);
  }
  if (base.run?.cancelled || next.run?.cancelled) notes.push(`${base.run?.cancelled ? 'BASE' : 'NEW'} was cancelled: its numbers cover the images that finished.`);

  const rows: MetricComparison[] = metricDefs(base, next).map((d) => compareMetric(d, base, next, pairs, opts));
  // Holm over the tested metrics: many metrics at once must not raise many false alarms.
  const tested = rows.filter((r) => r.p !== null);
  const adjusted = holm(tested.map((r) => r.p!));
  tested.forEach((r, i) => {
    r.pAdjusted = adjusted[i];
    r.significant = adjusted[i] < alpha && r.diff !== 0;
    r.change = !r.significant ? 'same' : r.better === null ? 'same' : (r.diff! > 0) === (r.better === 'higher') ? 'better' : 'worse';
  });

  const { findings, images } = findingChanges(base, next, pairs);
  const tests: Partial<Record<TestName, string>> = {};
  for (const r of rows) if (r.comparable) tests[r.test] = TEST_NAMES[r.test];
  return {
    comparisonSchemaVersion: COMPARISON_SCHEMA_VERSION,
    base: ref(base, opts.baseSource ?? base.model.path),
    new: ref(next, opts.newSource ?? next.model.path),
    commonImages: pairs.size,
    sameDataset,
    alpha,
    notes,
    metrics: rows,
    findings,
    images,
    tests,
  };
}

function compareMetric(d: MetricDef, base: Report, next: Report, pairs: Map<number, number>, opts: CompareOptions): MetricComparison {
  const row: MetricComparison = {
    key: d.key,
    probe: d.probe,
    label: d.label,
    better: d.better,
    unit: d.unit ?? 'number',
    base: d.value(base),
    new: d.value(next),
    diff: null,
    ci: null,
    test: 'none',
    p: null,
    pAdjusted: null,
    significant: false,
    change: 'n/a',
    comparable: true,
  };
  const notComparable = (why: string) => Object.assign(row, { comparable: false, note: why });

  // The probe must have run in both, with the parameters the metric depends on.
  for (const [r, name] of [[base, 'BASE'], [next, 'NEW']] as const) {
    const p = r.probes[d.probe];
    if (!p) return notComparable(`${d.probe} did not run in ${name}`);
    if (p.status !== 'ok') return notComparable(`${d.probe} ${p.status} in ${name}${p.reason ? ` (${p.reason})` : ''}`);
    const why = d.missing?.(r);
    if (why) return notComparable(`${why} in ${name}`);
  }
  const differing = d.params.filter((k) => !sameJson(base.probes[d.probe].params[k], next.probes[d.probe].params[k]));
  if (differing.length) {
    return notComparable(
      `${differing.map((k) => `${d.probe}.${k} differs (${JSON.stringify(base.probes[d.probe].params[k])} vs ${JSON.stringify(next.probes[d.probe].params[k])})`).join('; ')}`,
    );
  }
  if (row.base !== null && row.new !== null) row.diff = row.new - row.base;

  // Paired: both reports hold per-image measures of common images.
  const a = d.perImage?.(base);
  const b = d.perImage?.(next);
  if (a && b && pairs.size) {
    const xs: Array<boolean | number> = [];
    const ys: Array<boolean | number> = [];
    for (const [i, j] of pairs) {
      const x = a.get(i);
      const y = b.get(j);
      if (x !== undefined && y !== undefined) {
        xs.push(x);
        ys.push(y);
      }
    }
    const partial = xs.length < a.size || xs.length < b.size;
    // The values of the images the test used: with full pairing they are the reports' own numbers
    // (the per-image measures average back to them; test/unit/compare.test.ts checks it).
    if (xs.length) {
      let t: TestResult;
      if (d.kind === 'proportion') {
        const res = pairedProportions(xs as boolean[], ys as boolean[]);
        row.test = 'mcnemar-exact';
        row.discordant = { b: res.b, c: res.c };
        t = res;
      } else {
        t = pairedBootstrap(xs.map(Number), ys.map(Number), { seed: opts.seed ?? 0, resamples: opts.resamples });
        row.test = 'paired-bootstrap';
      }
      row.n = xs.length;
      row.p = t.p;
      row.ci = t.ci;
      row.base = xs.reduce((s: number, x) => s + Number(x), 0) / xs.length;
      row.new = ys.reduce((s: number, y) => s + Number(y), 0) / ys.length;
      if (partial) {
        row.note = `paired on the ${xs.length} image(s) both reports measured (BASE ${a.size}, NEW ${b.size}); values on those images`;
      }
      row.diff = row.new! - row.base!;
      return row;
    }
  }
  if (row.base === null || row.new === null) {
    if (row.base === null && row.new === null) return notComparable('no value in either report');
    return notComparable(`no value in ${row.base === null ? 'BASE' : 'NEW'}`);
  }
  // Unpaired.
  const ca = a && a.size ? { x: [...a.values()].filter(Boolean).length, n: a.size } : d.counts?.(base);
  const cb = b && b.size ? { x: [...b.values()].filter(Boolean).length, n: b.size } : d.counts?.(next);
  if (d.kind === 'proportion' && ca && cb) {
    const t = twoProportionZ(ca.x, ca.n, cb.x, cb.n);
    const why = a && b ? 'the reports have no images in common' : 'the reports keep no per-image outcome for it';
    Object.assign(row, { test: 'two-proportion-z', n: [ca.n, cb.n], p: t.p, ci: t.ci, note: `unpaired (${why}); conservative for the same images` });
  } else if (d.kind === 'auroc') {
    const x = d.auroc?.(base);
    const y = d.auroc?.(next);
    if (x && y) {
      const t = aurocZ(x.auc, x.nPos, x.nNeg, y.auc, y.nPos, y.nNeg);
      Object.assign(row, { test: 'hanley-mcneil-z', n: [x.nPos + x.nNeg, y.nPos + y.nNeg], p: t.p, ci: t.ci });
    }
  }
  return row;
}

/** Per-image findings of images audited in both, and model-level findings, matched by id. */
function findingChanges(base: Report, next: Report, pairs: Map<number, number>): Pick<Comparison, 'findings' | 'images'> {
  const okInBoth = (probe: string) => base.probes[probe]?.status === 'ok' && next.probes[probe]?.status === 'ok';
  const baseToNew = pairs;
  const newToBase = new Map([...pairs].map(([i, j]) => [j, i]));
  // Only findings the other report could have raised: the probe ran there, on that image.
  const comparable = (f: Finding, other: Map<number, number>) =>
    okInBoth(f.probe) && (f.subject.image === undefined || other.has(f.subject.image)) && !f.rule.startsWith('data/');
  const baseF = base.findings.filter((f) => comparable(f, baseToNew));
  const newF = next.findings.filter((f) => comparable(f, newToBase));
  const baseIds = new Set(baseF.map((f) => f.id));
  const newIds = new Set(newF.map((f) => f.id));
  const change = (r: Report) => (f: Finding): FindingChange => {
    const img = f.subject.image !== undefined ? r.images[f.subject.image] : undefined;
    return {
      id: f.id,
      rule: f.rule,
      probe: f.probe,
      severity: f.severity,
      message: f.message,
      ...(img ? { image: img.id } : {}),
      path: f.subject.path,
      uri: f.subject.uri,
      ...(f.subject.line !== undefined ? { line: f.subject.line } : {}),
      ...(f.subject.index !== undefined ? { index: f.subject.index } : {}),
      ...(f.subject.image !== undefined ? { imageIndex: f.subject.image } : {}),
      ...(f.artifacts?.length ? { artifacts: f.artifacts } : {}),
    };
  };
  const added = newF.filter((f) => !baseIds.has(f.id)).map(change(next));
  const absent = baseF.filter((f) => !newIds.has(f.id)).map(change(base));

  // Images: fragile in NEW with no finding in BASE (became fragile), and the reverse (recovered).
  const rulesByImage = (fs: Finding[]) => {
    const m = new Map<number, string[]>();
    for (const f of fs) if (f.subject.image !== undefined) m.set(f.subject.image, [...(m.get(f.subject.image) ?? []), f.rule]);
    return m;
  };
  const baseRules = rulesByImage(baseF);
  const newRules = rulesByImage(newF);
  const imageChange = (bi: number, ni: number, rules: string[]): ImageChange => {
    const img = next.images[ni];
    return {
      id: img.id,
      path: img.path,
      uri: img.uri,
      ...(img.line !== undefined ? { line: img.line } : {}),
      ...(img.index !== undefined ? { index: img.index } : {}),
      ...(img.labelName !== undefined ? { label: img.labelName } : img.label !== undefined ? { label: String(img.label) } : {}),
      baseImage: bi,
      newImage: ni,
      rules: [...new Set(rules)].sort(),
    };
  };
  const fragile: ImageChange[] = [];
  const recovered: ImageChange[] = [];
  for (const [ni, rules] of newRules) if (!baseRules.has(newToBase.get(ni)!)) fragile.push(imageChange(newToBase.get(ni)!, ni, rules));
  for (const [bi, rules] of baseRules) if (!newRules.has(baseToNew.get(bi)!)) recovered.push(imageChange(bi, baseToNew.get(bi)!, rules));
  const order = (x: ImageChange, y: ImageChange) => x.newImage - y.newImage;
  return {
    findings: { new: added, absent, unchanged: newF.length - added.length },
    images: { fragile: fragile.sort(order), recovered: recovered.sort(order) },
  };
}
