/**
 * Out-of-distribution confidence: score histograms of the real data against each OOD set, ROC
 * curves, the reliability diagram, and the sample images with their OOD variants.
 */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h, select } from '../lib/dom';
import { int, isNum, num, pct } from '../lib/format';
import { gallery } from '../lib/gallery';
import { axis, bars, line, pctValues, plot, refLine, steps, unitScale, type PlotDef } from '../lib/plot';
import { artifactsOf, imageTitle, labelLine, probeDetails, probeSection, revealImage, stat, stats, stemOf, subhead, table, thumb, type Ctx, type Rec } from './common';

interface SetMetrics {
  title?: string;
  source?: string;
  count?: number;
  mean?: Record<string, number | null>;
  auroc?: Record<string, number | null>;
  fprAtTpr?: Record<string, number | null>;
  beatsData?: boolean;
  error?: string;
}
interface Hist {
  edges: number[];
  in: number[];
  sets: Record<string, number[]>;
}
interface Bin {
  lo: number;
  hi: number;
  count: number;
  meanConfidence: number | null;
  accuracy: number | null;
}

export function oodView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const plots = (p.plots ?? {}) as Record<string, unknown>;
  const sets = (m.sets ?? {}) as Record<string, SetMetrics>;
  const setNames = Object.keys(sets);
  const scores = (Array.isArray(m.scores) ? m.scores : ['msp']) as string[];
  // Feature-space detectors (schema 'metrics.detectors', additive): AUROC/FPR columns and ROC overlay.
  const det = (m.detectors ?? null) as { scores?: string[]; tensor?: string | null; fit?: number; scored?: number; skipped?: Record<string, string> } | null;
  const detScores = Array.isArray(det?.scores) ? det!.scores : [];
  const primary = typeof m.primaryScore === 'string' ? m.primaryScore : scores[0];
  const hists = (plots.histograms ?? {}) as Record<string, Hist>;
  const rocs = (plots.roc ?? {}) as Record<string, Record<string, Array<[number, number]> | null>>;
  const reliability = (Array.isArray(plots.reliability) ? plots.reliability : null) as Bin[] | null;
  const meanIn = (m.meanIn ?? {}) as Record<string, number | null>;
  const beats = (Array.isArray(m.setsMoreConfidentThanData) ? m.setsMoreConfidentThanData : []) as string[];
  const fmt = (score: string, v: unknown) => (score === 'msp' ? pct(v) : num(v));

  const parts: Array<HTMLElement | null> = [
    stats(
      stat(`mean ${primary === 'msp' ? 'confidence' : primary} on the data`, fmt(primary, meanIn[primary])),
      stat('OOD sets more confident than the data', `${beats.length} of ${setNames.length}`, beats.join(', ') || 'none', beats.length ? 'bad' : 'ok'),
      isNum(m.ece) ? stat('expected calibration error', pct(m.ece), `max ${pct(m.mce)} over ${int(m.eceBins)} bins`) : null,
      isNum(m.confidentWrongRate) ? stat('confident but wrong', pct(m.confidentWrongRate), `${int(m.confidentWrongCount)} images above ${pct(m.confidentThreshold)}`) : null,
    ),
    table(
      ['OOD set', 'images', ...scores.map((s) => `mean ${s}`), ...[...scores, ...detScores].map((s) => `AUROC ${s}`), `FPR at ${pct(m.tpr)} TPR (${primary})`, 'vs data'],
      setNames.map((n) => {
        const s = sets[n];
        return [
          h('span', { title: s.title ?? n }, n),
          int(s.count),
          ...scores.map((sc) => fmt(sc, s.mean?.[sc])),
          ...[...scores, ...detScores].map((sc) => num(s.auroc?.[sc], 3)),
          num(s.fprAtTpr?.[primary], 3),
          s.error ? h('span', { class: 'bad' }, s.error) : s.beatsData ? h('span', { class: 'bad' }, 'more confident') : h('span', { class: 'muted' }, 'less confident'),
        ];
      }),
      'data ood-sets',
    ),
  ];

  // Histograms: the real data against one OOD set at a time (chosen), per score.
  const histBox = h('div', { class: 'plot-slot' });
  let score = hists[primary] ? primary : Object.keys(hists)[0];
  let set = beats[0] ?? setNames[0];
  const drawHist = () => {
    histBox.textContent = '';
    const hist = hists[score];
    if (!hist || !set || !hist.sets?.[set]) return;
    histBox.appendChild(plot(ctx.plots, histogramDef(id, score, set, hist)));
  };
  if (score && set) {
    parts.push(subhead('Score distributions: data against OOD'));
    parts.push(
      h(
        'div',
        { class: 'controls' },
        Object.keys(hists).length > 1 ? select('Score', Object.keys(hists).map((s) => [s, s]), score, (v) => ((score = v), drawHist(), drawRoc())) : null,
        select('OOD set', setNames.filter((n) => hists[score]?.sets?.[n]).map((n) => [n, sets[n].title ? `${n} (${sets[n].title})` : n]), set, (v) => ((set = v), drawHist(), drawOverlay())),
      ),
    );
    parts.push(histBox);
    drawHist();
  }

  const rocBox = h('div', { class: 'plot-slot' });
  const drawRoc = () => {
    rocBox.textContent = '';
    const curves = rocs[score];
    if (!curves) return;
    const names = Object.keys(curves).filter((n) => Array.isArray(curves[n]) && curves[n]!.length);
    if (!names.length) return;
    rocBox.appendChild(
      plot(ctx.plots, {
        id: `${id}-roc`,
        title: `ROC curves, ${score}: the data (positive) against each OOD set`,
        note: 'Curves near the diagonal mean the score cannot tell the set from the data; below it, the set scores higher than the data.',
        series: names,
        points: names.reduce((a, n) => a + curves[n]!.length, 0),
        label: `ROC curves of ${names.length} OOD sets`,
        height: 300,
        make: (t) => rocPlot(t, names.map((n) => ({ label: n, points: curves[n]! }))),
      }),
    );
  };
  if (score) {
    parts.push(rocBox);
    drawRoc();
  }

  // Every score on the chosen OOD set: MSP/energy against the feature-space detectors.
  const overlayBox = h('div', { class: 'plot-slot', 'data-roc-overlay': '' });
  const drawOverlay = () => {
    overlayBox.textContent = '';
    const names = Object.keys(rocs).filter((sc) => Array.isArray(rocs[sc]?.[set]) && rocs[sc][set]!.length);
    if (!set || names.length < 2) return;
    const curve = (sc: string) => rocs[sc][set]!;
    overlayBox.appendChild(
      plot(ctx.plots, {
        id: `${id}-roc-overlay`,
        title: `ROC curves on '${set}': every score`,
        note:
          `The softmax scores (all images) against the feature-space detectors (fitted on ${int(det?.fit)} images, ` +
          `scored on the other ${int(det?.scored)}${det?.tensor ? `; features '${det.tensor}'` : ''}).`,
        series: names,
        points: names.reduce((a, n) => a + curve(n).length, 0),
        label: `ROC curves of ${names.length} scores on ${set}`,
        height: 300,
        make: (t) => rocPlot(t, names.map((n) => ({ label: `${n} (AUROC ${num(sets[set]?.auroc?.[n], 3)})`, points: curve(n) }))),
      }),
    );
  };
  if (detScores.length) {
    parts.push(overlayBox);
    drawOverlay();
  }
  const skipped = Object.entries(det?.skipped ?? {});
  if (skipped.length) parts.push(h('p', { class: 'muted' }, `Feature detectors left out: ${skipped.map(([n, why]) => `${n} (${why})`).join('; ')}`));

  if (reliability && reliability.length) parts.push(reliabilityPlot(ctx, id, reliability, m));

  const withArt = p.records.filter((r) => artifactsOf(r).length);
  parts.push(subhead('Sample images with their OOD variants, and the most confident wrong answers'));
  parts.push(
    gallery<Rec>({
      id: `${id}-gallery`,
      label: 'OOD samples and confident errors',
      items: withArt,
      pageSize: 10,
      layout: 'rows',
      empty: 'No images were rendered.',
      card: (r) => oodCard(ctx, r, primary),
      activate: ctx.host.canReveal ? (r) => revealImage(ctx, r.image) : undefined,
    }).el,
  );
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}

/** uPlot options and data for ROC curves (false against true positive rate) with the chance line. */
function rocPlot(t: Parameters<PlotDef['make']>[0], curves: Array<{ label: string; points: Array<[number, number]> }>): ReturnType<PlotDef['make']> {
  const colours = t.palette(curves.length);
  return {
    opts: {
      mode: 2,
      scales: { x: { time: false, auto: false, range: [0, 1] }, y: unitScale },
      axes: [axis(t, 'false positive rate (OOD accepted)', { values: pctValues }), axis(t, 'true positive rate (data accepted)', { values: pctValues })],
      series: [{}, ...curves.map((c, i) => line(c.label, colours[i], { width: 1.5 })), refLine('chance', t.ref)],
      legend: { live: false },
      cursor: { show: false },
    },
    data: [null, ...curves.map((c) => [c.points.map((q) => q[0]), c.points.map((q) => q[1])]), [[0, 1], [0, 1]]] as unknown as import('uplot').AlignedData,
  };
}

function histogramDef(id: string, score: string, set: string, hist: Hist): PlotDef {
  const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0) || 1;
  const share = (xs: number[]) => {
    const n = total(xs);
    const out = xs.map((x) => x / n);
    return [...out, out[out.length - 1] ?? 0];
  };
  const out = hist.sets[set];
  return {
    id: `${id}-hist`,
    title: `${score}: the data against '${set}'`,
    note: 'Share of each set per score bin; where the OOD set sits right of the data, the model is more confident on it than on real images.',
    series: ['data', set],
    points: hist.edges.length - 1,
    label: `Histogram of ${score} for the data (${total(hist.in)} images) and ${set} (${total(out)} images)`,
    height: 240,
    make: (t) => {
      const [c1, c2] = t.palette(2);
      return {
        opts: {
          scales: { x: { time: false, auto: false, range: [hist.edges[0], hist.edges[hist.edges.length - 1]] }, y: { range: (_u, _lo, hi) => [0, Math.max(0.05, hi ?? 1)] } },
          axes: [axis(t, score, score === 'msp' ? { values: pctValues } : {}), axis(t, 'share of images', { values: pctValues })],
          series: [{ label: score }, steps('data', c1), steps(set, c2)],
        },
        data: [hist.edges, share(hist.in), share(out)],
      };
    },
    table: {
      head: ['from', 'to', 'data', set],
      rows: hist.in.map((n, i) => [num(hist.edges[i], 3), num(hist.edges[i + 1], 3), n, out[i] ?? 0]),
    },
  };
}

function reliabilityPlot(ctx: Ctx, id: string, bins: Bin[], m: Record<string, unknown>): HTMLElement {
  const centres = bins.map((b) => (b.lo + b.hi) / 2);
  return plot(ctx.plots, {
    id: `${id}-reliability`,
    title: 'Reliability diagram',
    note: `Accuracy per confidence bin against the diagonal of perfect calibration; ECE ${pct(m.ece)}. Bars below the diagonal: overconfident.`,
    series: ['accuracy', 'mean confidence'],
    points: bins.length,
    label: `Reliability diagram with ${bins.length} bins; expected calibration error ${pct(m.ece)}`,
    height: 260,
    make: (t) => {
      const [c1, c2] = t.palette(2);
      return {
        opts: {
          scales: { x: { time: false, auto: false, range: [0, 1] }, y: unitScale },
          axes: [axis(t, 'confidence', { values: pctValues }), axis(t, 'accuracy', { values: pctValues })],
          series: [{ label: 'confidence' }, bars('accuracy', c1, 0.55, 0.92), line('mean confidence', c2, { width: 0, points: { show: true, size: 6, fill: c2 } }), refLine('perfect calibration', t.ref)],
        },
        data: [[0, ...centres, 1], [null, ...bins.map((b) => b.accuracy), null], [null, ...bins.map((b) => b.meanConfidence), null], [0, ...centres, 1]],
      };
    },
    table: { head: ['bin', 'images', 'mean confidence', 'accuracy'], rows: bins.map((b) => [`${pct(b.lo)}–${pct(b.hi)}`, b.count, pct(b.meanConfidence), pct(b.accuracy)]) },
  });
}

function oodCard(ctx: Ctx, r: Rec, primary: string): HTMLElement {
  const why = Array.isArray(r.why) ? (r.why as string[]) : [];
  const ood = (r.ood ?? {}) as Record<string, Record<string, number | null>>;
  const fmt = (v: unknown) => (primary === 'msp' ? pct(v) : num(v));
  const label = ctx.image(r.image)?.label;
  const thumbs = artifactsOf(r).map((a) => {
    const s = stemOf(a);
    if (s === 'image') {
      const ok = label === undefined ? '' : r.pred === label ? 'right' : 'wrong';
      return thumb(ctx, a, 'the image', [h('span', null, 'image'), h('b', { class: `cls ${ok}` }, ctx.cls(r.pred)), h('span', { class: 'muted' }, `${primary} ${fmt(r[primary])}`)]);
    }
    const sc = ood[s]?.[primary];
    const higher = isNum(sc) && isNum(r[primary]) && sc > (r[primary] as number);
    return thumb(ctx, a, s, [h('span', null, s), h('span', { class: higher ? 'bad' : 'muted' }, `${primary} ${fmt(sc)}`)]);
  });
  const tags = why.map((w) => h('span', { class: `tag ${w === 'most-confident-wrong' ? 'bad' : ''}` }, w === 'most-confident-wrong' ? 'most confident wrong' : w === 'ood-sample' ? 'OOD sample' : w));
  return h('div', { class: 'img-card', 'data-image': r.image }, h('div', { class: 'card-head' }, imageTitle(ctx, r.image), labelLine(ctx, r.image, tags)), h('div', { class: 'thumbs' }, ...thumbs));
}
