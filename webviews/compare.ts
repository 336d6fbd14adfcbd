/**
 * The side-by-side view of two audits (engine/compare): BASE and NEW summaries, the metric
 * differences with their tests, plots with both reports overlaid (robust accuracy against ε,
 * accuracy per corruption, accuracy and P(true class) against shift), and galleries of the images
 * that became fragile or recovered, with each report's pictures of them.
 *
 * <main data-view="compare">; metric rows carry data-key and data-change; plots are figures with
 * data-plot / data-series (lib/plot); galleries data-gallery="fragile" / "recovered".
 */
import type { Comparison, ImageChange, MetricComparison } from '../server/engine/compare/types';
import type { ProbeResult, Report } from '../server/engine/report/schema';
import { clear, h } from './lib/dom';
import { eps as epsText, int, isNum, pct, plural } from './lib/format';
import { gallery } from './lib/gallery';
import type { Host } from './lib/host';
import { revealableUris, type ArtifactResolver } from './lib/paths';
import { axis, categoryAxis, categoryScale, line, pctValues, plot, unitScale, type Plots } from './lib/plot';
import { robustCurves } from './views/attack';
import { stat, stats, table } from './views/common';

export interface ComparisonData {
  comparison: Comparison;
  base: Report;
  next: Report;
}

export function isComparison(x: unknown): x is Comparison {
  return !!x && typeof x === 'object' && (x as Comparison).comparisonSchemaVersion === 1 && Array.isArray((x as Comparison).metrics);
}

const fmt = (m: MetricComparison, v: number | null) => (v === null || !isNum(v) ? '–' : m.unit === 'fraction' ? pct(v) : String(+v.toPrecision(4)));
function fmtDiff(m: MetricComparison, d: number | null): string {
  if (d === null || !isNum(d)) return '–';
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  return m.unit === 'fraction' ? `${sign}${Math.abs(d * 100).toFixed(1)} pts` : `${sign}${+Math.abs(d).toPrecision(3)}`;
}
const fmtP = (p: number | null) => (p === null ? '–' : p < 0.001 ? '<0.001' : p.toFixed(3));
const TEST: Record<MetricComparison['test'], string> = {
  'mcnemar-exact': 'McNemar (paired)',
  'paired-bootstrap': 'bootstrap (paired)',
  'two-proportion-z': 'z (unpaired)',
  'hanley-mcneil-z': 'AUROC z (unpaired)',
  none: '–',
};
const VERDICT: Record<MetricComparison['change'], string> = { better: '▲ better', worse: '▼ worse', same: 'no significant change', 'n/a': 'not tested' };

function side(r: Report, which: 'BASE' | 'NEW'): HTMLElement {
  const counts = { error: 0, warning: 0, info: 0 };
  for (const f of r.findings ?? []) counts[f.severity]++;
  return h(
    'div',
    { class: 'compare-side', 'data-side': which.toLowerCase() },
    h('h2', null, which),
    h(
      'dl',
      { class: 'meta' },
      h('dt', null, 'Model'),
      h('dd', null, h('span', { class: 'meta-main' }, r.model?.path ?? '–'), h('span', { class: 'meta-sub' }, `sha256 ${r.model?.sha256?.slice(0, 12) ?? '–'}`)),
      h('dt', null, 'Dataset'),
      h('dd', null, h('span', { class: 'meta-main' }, r.dataset?.path ?? '–'), h('span', { class: 'meta-sub' }, `${int(r.dataset?.evaluated)} images evaluated`)),
      h('dt', null, 'Run'),
      h('dd', null, h('span', { class: 'meta-main' }, (r.run?.startedAt ?? '').replace('T', ' ').slice(0, 16)), h('span', { class: 'meta-sub' }, `seed ${r.config?.seed ?? '–'}, ${r.device?.used ?? ''}`)),
      h('dt', null, 'Findings'),
      h('dd', { 'data-findings': r.findings.length }, `${counts.error} errors, ${counts.warning} warnings, ${counts.info} notes`),
    ),
    h('ul', { class: 'compare-headlines' }, ...Object.entries(r.probes ?? {}).map(([id, p]) => h('li', { 'data-probe': id }, h('b', null, p.title || id), ': ', p.headline ?? p.status))),
  );
}

function metricsTable(c: Comparison): HTMLElement {
  const rows = c.metrics.filter((m) => m.comparable);
  const wrap = table(
    ['metric', 'BASE', 'NEW', 'Δ (NEW − BASE)', '95% CI', 'test', 'p (Holm)', ''],
    rows.map((m) => [
      h('span', { title: m.key }, m.label),
      fmt(m, m.base),
      fmt(m, m.new),
      fmtDiff(m, m.diff),
      m.ci ? `[${fmtDiff(m, m.ci[0])}, ${fmtDiff(m, m.ci[1])}]` : '–',
      TEST[m.test] + (m.note ? ' *' : ''),
      fmtP(m.pAdjusted),
      h('span', { class: `change change-${m.change}` }, VERDICT[m.change]),
    ]),
  );
  // Mark rows for styling and for tests.
  wrap.querySelectorAll('tbody tr').forEach((tr, i) => {
    (tr as HTMLElement).dataset.key = rows[i].key;
    (tr as HTMLElement).dataset.change = rows[i].change;
    if (rows[i].note) tr.setAttribute('title', rows[i].note!);
  });
  return wrap;
}

/** Union of two sorted x grids, and each series' values on it (null where a report has none). */
function align(xsA: number[], ysA: number[], xsB: number[], ysB: number[]): { x: number[]; a: Array<number | null>; b: Array<number | null> } {
  const x = [...new Set([...xsA, ...xsB])].sort((p, q) => p - q);
  const at = (xs: number[], ys: number[]) => x.map((v) => {
    const i = xs.findIndex((u) => Math.abs(u - v) < 1e-12);
    return i >= 0 && isNum(ys[i]) ? ys[i] : null;
  });
  return { x, a: at(xsA, ysA), b: at(xsB, ysB) };
}

function attackPlot(plots: Plots, a: ProbeResult, b: ProbeResult): HTMLElement | null {
  const ca = robustCurves(a).filter((c) => c.norm === 'linf');
  const cb = robustCurves(b).filter((c) => c.norm === 'linf');
  const names = ca.map((c) => c.attack).filter((n) => cb.some((c) => c.attack === n));
  // The strongest common curve ("any L∞ attack") first, else the others (at most three).
  const pick = names.includes('any L∞ attack') ? ['any L∞ attack'] : names.slice(0, 3);
  if (!pick.length) return null;
  const digits = (a.metrics as Record<string, unknown>).domain === 'digits';
  const x = [...new Set([...ca, ...cb].filter((c) => pick.includes(c.attack)).flatMap((c) => c.points.map((p) => p[0])))].sort((p, q) => p - q);
  const values = (cs: typeof ca, name: string) => {
    const pts = cs.find((c) => c.attack === name)!.points;
    return x.map((v) => pts.find((p) => Math.abs(p[0] - v) < 1e-12)?.[1] ?? null);
  };
  const series: Array<{ label: string; ys: Array<number | null>; base: boolean }> = [];
  for (const n of pick) {
    series.push({ label: `BASE: ${n}`, ys: values(ca, n), base: true });
    series.push({ label: `NEW: ${n}`, ys: values(cb, n), base: false });
  }
  const fmtEps = (v: number) => (digits ? String(+v.toPrecision(3)) : epsText(v));
  return plot(plots, {
    id: 'compare-attack',
    title: 'Robust accuracy against ε (L∞), BASE and NEW',
    note: 'Dashed: BASE; solid: NEW. A NEW curve below the BASE one means the new model is easier to attack.',
    series: series.map((s) => s.label),
    points: series.reduce((n, s) => n + s.ys.filter((y) => y !== null).length, 0),
    label: `Robust accuracy against ε for BASE and NEW: ${series.map((s) => s.label).join(', ')}`,
    make: (t) => {
      const colours = t.palette(pick.length);
      return {
        opts: {
          scales: { x: { time: false, distr: x[0] > 0 ? 3 : 1, log: 2 }, y: unitScale },
          axes: [axis(t, 'ε (L∞, pixel units)', { splits: () => x, values: (_u, s) => s.map(fmtEps) }), axis(t, 'robust accuracy', { values: pctValues })],
          series: [{}, ...series.map((s, i) => line(s.label, colours[Math.floor(i / 2)], s.base ? { dash: [6, 4] } : { width: 2.25 }))],
        },
        data: [x, ...series.map((s) => s.ys)] as never,
      };
    },
    table: { head: ['ε', ...series.map((s) => s.label)], rows: x.map((v, i) => [fmtEps(v), ...series.map((s) => (s.ys[i] === null ? '–' : pct(s.ys[i])))]) },
  });
}

function corruptionPlot(plots: Plots, a: ProbeResult, b: ProbeResult): HTMLElement | null {
  type Per = Array<{ corruption: string; accuracy: number }>;
  const pa = ((a.metrics as Record<string, unknown>).perCorruption as Per | undefined) ?? [];
  const pb = ((b.metrics as Record<string, unknown>).perCorruption as Per | undefined) ?? [];
  const names = [...new Set([...pa, ...pb].map((p) => p.corruption))];
  if (!names.length) return null;
  const ya = names.map((n) => pa.find((p) => p.corruption === n)?.accuracy ?? null);
  const yb = names.map((n) => pb.find((p) => p.corruption === n)?.accuracy ?? null);
  const x = names.map((_, i) => i);
  const label = (n: string) => n.replace(/_/g, ' ');
  return plot(plots, {
    id: 'compare-corruptions',
    title: 'Accuracy per corruption (mean over severities), BASE and NEW',
    series: ['BASE', 'NEW'],
    points: ya.filter((v) => v !== null).length + yb.filter((v) => v !== null).length,
    label: `Accuracy per corruption for BASE and NEW over ${names.length} corruptions`,
    make: (t) => {
      const [c0, c1] = t.palette(2);
      return {
        opts: {
          scales: { x: categoryScale(names.length), y: unitScale },
          axes: [categoryAxis(t, 'corruption', names.map(label)), axis(t, 'accuracy', { values: pctValues })],
          series: [{}, line('BASE', c0, { dash: [6, 4], points: { show: true, size: 7 } }), line('NEW', c1, { width: 2.25, points: { show: true, size: 7 } })],
        },
        data: [x, ya, yb] as never,
      };
    },
    table: { head: ['corruption', 'BASE', 'NEW'], rows: names.map((n, i) => [label(n), ya[i] === null ? '–' : pct(ya[i]), yb[i] === null ? '–' : pct(yb[i])]) },
  });
}

function shiftPlots(plots: Plots, c: ComparisonData, a: ProbeResult, b: ProbeResult): HTMLElement[] {
  const out: HTMLElement[] = [];
  const pa = (a.plots ?? {}) as { shifts?: number[]; accuracyByShift?: { horizontal?: number[]; vertical?: number[] }; worst?: Array<{ image: number; probH: number[] }> };
  const pb = (b.plots ?? {}) as typeof pa;
  if (pa.shifts && pb.shifts && pa.accuracyByShift && pb.accuracyByShift) {
    const hz = align(pa.shifts, pa.accuracyByShift.horizontal ?? [], pb.shifts, pb.accuracyByShift.horizontal ?? []);
    const vt = align(pa.shifts, pa.accuracyByShift.vertical ?? [], pb.shifts, pb.accuracyByShift.vertical ?? []);
    const series = [
      ['BASE: horizontal', hz.a],
      ['NEW: horizontal', hz.b],
      ['BASE: vertical', vt.a],
      ['NEW: vertical', vt.b],
    ] as const;
    out.push(
      plot(plots, {
        id: 'compare-shift',
        title: 'Accuracy against shift (pixels), BASE and NEW',
        series: series.map((s) => s[0]),
        points: series.reduce((n, s) => n + s[1].filter((v) => v !== null).length, 0),
        label: 'Accuracy against a horizontal and a vertical shift for BASE and NEW',
        make: (t) => {
          const [c0, c1] = t.palette(2);
          return {
            opts: {
              scales: { x: { time: false }, y: { auto: true } },
              axes: [axis(t, 'shift (pixels)'), axis(t, 'accuracy', { values: pctValues })],
              series: [{}, ...series.map(([l], i) => line(l, i % 2 ? c1 : c0, { ...(i % 2 ? { width: 2.25 } : { dash: [6, 4] }), ...(i >= 2 ? { alpha: 0.6 } : {}) }))],
            },
            data: [hz.x, ...series.map((s) => s[1])] as never,
          };
        },
      }),
    );
  }
  // P(true class) against the horizontal shift for an image both reports drew the curve of:
  // a changed image first.
  const baseOf = new Map<string, number>();
  c.base.images.forEach((img, i) => baseOf.set(`${img.id}\u0000${img.sha256}`, i));
  const changed = new Set([...c.comparison.images.fragile, ...c.comparison.images.recovered].map((i) => i.newImage));
  const candidates = (pb.worst ?? [])
    .map((w) => ({ w, bi: baseOf.get(`${c.next.images[w.image]?.id}\u0000${c.next.images[w.image]?.sha256}`) }))
    .map(({ w, bi }) => ({ w, bw: bi === undefined ? undefined : (pa.worst ?? []).find((x) => x.image === bi) }))
    .filter((x) => x.bw && pa.shifts && pb.shifts);
  candidates.sort((x, y) => Number(changed.has(y.w.image)) - Number(changed.has(x.w.image)));
  const first = candidates[0];
  if (first) {
    const img = c.next.images[first.w.image];
    const al = align(pa.shifts!, first.bw!.probH, pb.shifts!, first.w.probH);
    out.push(
      plot(plots, {
        id: 'compare-shift-prob',
        title: `P(true class) against horizontal shift: ${img?.id ?? ''}`,
        note: 'One image both reports kept the shift curve of (an image that changed, when there is one). Dashed: BASE; solid: NEW.',
        series: ['BASE', 'NEW'],
        points: al.a.filter((v) => v !== null).length + al.b.filter((v) => v !== null).length,
        label: `P(true class) against shift for ${img?.id ?? 'an image'}, BASE and NEW`,
        make: (t) => {
          const [c0, c1] = t.palette(2);
          return {
            opts: {
              scales: { x: { time: false }, y: unitScale },
              axes: [axis(t, 'shift (pixels)'), axis(t, 'P(true class)', { values: pctValues })],
              series: [{}, line('BASE', c0, { dash: [6, 4] }), line('NEW', c1, { width: 2.25 })],
            },
            data: [al.x, al.a, al.b] as never,
          };
        },
      }),
    );
  }
  return out;
}

/** The pictures a report drew of an image (its probes' artifacts), the first few PNGs. */
function picturesOf(r: Report, image: number, rules: string[]): string[] {
  const probes = new Set(rules.map((x) => x.split('/')[0]));
  const out: string[] = [];
  for (const [id, p] of Object.entries(r.probes ?? {})) {
    if (!probes.has(id)) continue;
    for (const rec of p.records ?? []) if (rec.image === image) for (const a of rec.artifacts ?? []) if (/\.png$/i.test(a)) out.push(a);
  }
  for (const f of r.findings ?? []) if (f.subject.image === image) for (const a of f.artifacts ?? []) if (/\.png$/i.test(a)) out.push(a);
  return [...new Set(out)].slice(0, 2);
}

function changeGallery(id: 'fragile' | 'recovered', title: string, items: ImageChange[], d: ComparisonData, host: Host, artBase: ArtifactResolver, artNew: ArtifactResolver): HTMLElement {
  const g = gallery<ImageChange>({
    id,
    label: title,
    items,
    pageSize: 12,
    empty: id === 'fragile' ? 'No image became fragile.' : 'No image recovered.',
    card: (i) => {
      // Captioned with the report and what the picture is ("NEW: adversarial" from "3-adversarial.png").
      const kind = (p: string) => (p.split('/').pop() ?? p).replace(/\.[a-z]+$/i, '').replace(/^\d+-/, '');
      const pics = [
        ...picturesOf(d.base, i.baseImage, i.rules).map((p) => [`BASE: ${kind(p)}`, artBase.url(p)] as const),
        ...picturesOf(d.next, i.newImage, i.rules).map((p) => [`NEW: ${kind(p)}`, artNew.url(p)] as const),
      ].filter((p) => p[1]);
      return h(
        'div',
        { class: 'change-card', 'data-image': i.id },
        h('div', { class: 'card-title', title: i.id }, i.id),
        h('div', { class: 'card-meta' }, i.line !== undefined ? `${i.path.split(/[\\/]/).pop()}:${i.line}` : i.path.split(/[\\/]/).pop() ?? '', i.label ? ` · label ${i.label}` : ''),
        h('div', { class: 'card-meta' }, i.rules.join(', ')),
        pics.length ? h('div', { class: 'thumbs' }, ...pics.map(([who, url]) => h('figure', { class: 'thumb' }, h('img', { src: url!, alt: `${who}: ${i.id}`, loading: 'lazy' }), h('figcaption', null, who)))) : null,
      );
    },
    activate: host.canReveal ? (i) => host.reveal(i.uri, i.line) : undefined,
  });
  return h('section', { class: 'compare-changes', 'data-changes': id, 'aria-label': title }, h('h2', null, `${title} (${items.length})`), g.el);
}

export function renderComparison(root: HTMLElement, d: ComparisonData, host: Host, artBase: ArtifactResolver, artNew: ArtifactResolver, plots: Plots): void {
  plots.destroyAll();
  clear(root);
  const c = d.comparison;
  host.allowed = new Set([...revealableUris(d.base), ...revealableUris(d.next)]);
  const worse = c.metrics.filter((m) => m.change === 'worse');
  const better = c.metrics.filter((m) => m.change === 'better');
  const nc = c.metrics.filter((m) => !m.comparable);
  const plotsOut: HTMLElement[] = [];
  const both = (id: string) => (d.base.probes?.[id]?.status === 'ok' && d.next.probes?.[id]?.status === 'ok' ? [d.base.probes[id], d.next.probes[id]] : undefined);
  const at = both('attack');
  if (at) plotsOut.push(...[attackPlot(plots, at[0], at[1])].filter((x): x is HTMLElement => !!x));
  const co = both('corruptions');
  if (co) plotsOut.push(...[corruptionPlot(plots, co[0], co[1])].filter((x): x is HTMLElement => !!x));
  const sh = both('shift');
  if (sh) plotsOut.push(...shiftPlots(plots, d, sh[0], sh[1]));

  root.append(
    h(
      'header',
      { class: 'report-header' },
      h('h1', null, 'Skeptic: two audits compared'),
      c.notes.length ? h('div', { class: 'warnings', role: 'note' }, h('ul', null, ...c.notes.map((n) => h('li', null, n)))) : null,
    ),
    h(
      'main',
      { id: 'main', 'data-view': 'compare' },
      h('section', { class: 'compare-sides', 'aria-label': 'The two reports' }, side(d.base, 'BASE'), side(d.next, 'NEW')),
      h(
        'section',
        { id: 'compare-metrics', 'aria-labelledby': 'compare-metrics-title' },
        h('h2', { id: 'compare-metrics-title' }, 'Metrics'),
        stats(
          stat('significantly worse', String(worse.length), worse.slice(0, 3).map((m) => m.label).join('; ') || undefined, worse.length ? 'bad' : 'ok'),
          stat('significantly better', String(better.length), better.slice(0, 3).map((m) => m.label).join('; ') || undefined),
          stat('images in both', int(c.commonImages), c.sameDataset ? 'same dataset' : 'different datasets'),
          stat('fragile / recovered', `${c.images.fragile.length} / ${c.images.recovered.length}`, 'images with findings only in NEW / only in BASE'),
        ),
        metricsTable(c),
        h('p', { class: 'note' }, `Significance: Holm-adjusted p < ${c.alpha}. ${Object.values(c.tests).join('; ')}. * paired on part of the images or unpaired (hover for why).`),
        nc.length
          ? h('details', { class: 'more', 'data-not-comparable': nc.length }, h('summary', null, `Not comparable (${plural(nc.length, 'metric')})`), h('ul', null, ...nc.map((m) => h('li', { 'data-key': m.key }, h('code', null, m.key), `: ${m.note ?? ''}`))))
          : null,
      ),
      plotsOut.length ? h('section', { class: 'compare-plots', 'aria-label': 'Plots' }, h('h2', null, 'Plots'), ...plotsOut) : null,
      changeGallery('fragile', 'Images that became fragile', c.images.fragile, d, host, artBase, artNew),
      changeGallery('recovered', 'Images that recovered', c.images.recovered, d, host, artBase, artNew),
    ),
    h('footer', null, `${c.findings.new.length} new finding(s), ${c.findings.absent.length} gone, ${c.findings.unchanged} unchanged · comparison schema ${c.comparisonSchemaVersion}`),
  );
  root.dataset.rendered = 'true';
  root.dataset.view = 'compare';
}
