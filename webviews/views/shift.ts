/**
 * Small translations (Azulay & Weiss): the probability of the true class as the image moves, for
 * the images that suffer most (the "polar bear" plot), accuracy against the shift, and the
 * flip-rate figures.
 */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { int, isNum, pct } from '../lib/format';
import { axis, line, pctValues, plot, unitScale, type Theme } from '../lib/plot';
import { probeDetails, probeSection, stat, stats, subhead, table, imageWhere, type Ctx, type Rec } from './common';

interface Worst {
  image: number;
  probH: number[];
  probV: number[];
}

export function shiftView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const par = p.params as Record<string, unknown>;
  const plots = (p.plots ?? {}) as Record<string, unknown>;
  const shifts = (Array.isArray(plots.shifts) ? plots.shifts : []) as number[];
  const worst = (Array.isArray(plots.worst) ? plots.worst : []).filter((w: Worst) => Array.isArray(w?.probH) && Array.isArray(w?.probV)) as Worst[];
  const acc = (plots.accuracyByShift ?? {}) as { horizontal?: Array<number | null>; vertical?: Array<number | null> };
  const embed = (m.embed ?? null) as Record<string, unknown> | null;
  const byImage = new Map<number, Rec>(p.records.map((r) => [r.image, r]));

  const parts: Array<HTMLElement | null> = [
    stats(
      stat('1-px shift flips', pct(m.oneFlipRate), `${int(m.oneFlipCount)} of ${int(m.count)} images · threshold ${pct(par.maxFlipRate)}`, isNum(m.oneFlipRate) && isNum(par.maxFlipRate) ? (m.oneFlipRate <= par.maxFlipRate ? 'ok' : 'bad') : 'neutral'),
      stat('P(flip) between adjacent shifts', pct(m.adjacentFlipRate), 'over both sweeps'),
      stat(`changed within ±${int(m.maxShift)} px`, pct(m.changedAnywhereRate)),
      stat('mean |Δ p(true class)|', pct(m.meanAbsChangeTrueProb), 'between adjacent shifts'),
      embed ? stat('embedding accuracy drop', pct(embed.drop), `centred ${pct(embed.accuracyCentred)} → random ${pct(embed.accuracyRandom)}`) : null,
    ),
  ];

  if (shifts.length && worst.length) {
    const labels = worst.map((w) => ctx.image(w.image)?.id ?? `image ${w.image}`);
    const curve = (dir: 'probH' | 'probV', title: string) =>
      plot(ctx.plots, {
        id: `${id}-worst-${dir === 'probH' ? 'h' : 'v'}`,
        title,
        note: 'Each line is one image: the probability of its true class as the image moves. A shift-invariant model draws flat lines.',
        series: labels,
        points: shifts.length,
        label: `${title}: ${worst.length} lines over shifts ${shifts[0]} to ${shifts[shifts.length - 1]} pixels`,
        height: 260,
        make: (t: Theme) => {
          const colours = t.palette(worst.length);
          return {
            opts: {
              scales: { x: { time: false }, y: unitScale },
              axes: [axis(t, 'shift (pixels)'), axis(t, 'p(true class)', { values: pctValues })],
              series: [{ label: 'shift' }, ...worst.map((w, i) => line(labels[i], colours[i], { width: 1.25 }))],
              legend: { show: false },
              focus: { alpha: 0.25 },
              cursor: { focus: { prox: 16 } },
            },
            data: [shifts, ...worst.map((w) => w[dir])],
          };
        },
      });
    parts.push(subhead(`Probability of the true class against the shift — the ${worst.length} worst images`));
    parts.push(h('div', { class: 'plot-pair' }, curve('probH', 'Horizontal shift'), curve('probV', 'Vertical shift')));
    parts.push(worstTable(ctx, worst, byImage));
  }

  if (shifts.length && (acc.horizontal || acc.vertical)) {
    parts.push(
      plot(ctx.plots, {
        id: `${id}-accuracy`,
        title: 'Accuracy against the shift',
        series: ['horizontal', 'vertical'],
        points: shifts.length,
        label: `Accuracy at each shift from ${shifts[0]} to ${shifts[shifts.length - 1]} pixels, horizontal and vertical`,
        height: 220,
        make: (t) => {
          const [c1, c2] = t.palette(2);
          return {
            opts: {
              scales: { x: { time: false }, y: { range: (_u, lo) => [Math.max(0, Math.min(lo ?? 0, 1) - 0.05), 1] } },
              axes: [axis(t, 'shift (pixels)'), axis(t, 'accuracy', { values: pctValues })],
              series: [{ label: 'shift' }, line('horizontal', c1), line('vertical', c2, { dash: [6, 3] })],
            },
            data: [shifts, acc.horizontal ?? shifts.map(() => null), acc.vertical ?? shifts.map(() => null)],
          };
        },
        table: { head: ['shift', 'horizontal', 'vertical'], rows: shifts.map((s, i) => [s, pct(acc.horizontal?.[i]), pct(acc.vertical?.[i])]) },
      }),
    );
  }
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}

function worstTable(ctx: Ctx, worst: Worst[], byImage: Map<number, Rec>): HTMLElement {
  const rows = worst.map((w, i) => {
    const r = byImage.get(w.image) ?? ({} as Rec);
    const img = ctx.image(w.image);
    const swatch = h('span', { class: 'swatch', 'data-series-index': i + 1, 'aria-hidden': 'true' });
    const flip = r.oneFlip as { dx: number; dy: number; pred: number } | undefined;
    return [
      h('span', null, swatch, img?.id ?? `image ${w.image}`),
      img?.labelName ?? (img?.label !== undefined ? ctx.cls(img.label) : '–'),
      ctx.cls(r.pred),
      isNum(r.adjacentFlips) ? String(r.adjacentFlips) : '–',
      flip ? `${flip.dx ? `dx ${flip.dx > 0 ? '+' : ''}${flip.dx}` : `dy ${flip.dy > 0 ? '+' : ''}${flip.dy}`} → ${ctx.cls(flip.pred)}` : '–',
      imageWhere(img),
    ];
  });
  const t = table(['image', 'label', 'prediction', 'adjacent flips', '1-px flip', 'where'], rows, 'data worst');
  // The swatches take the plot's colours (resolved from the theme, like the plot's).
  ctx.plots.onTheme(t, (theme) => {
    const colours = theme.palette(worst.length);
    t.querySelectorAll<HTMLElement>('.swatch').forEach((s) => (s.style.background = colours[Number(s.dataset.seriesIndex) - 1] ?? ''));
  });
  return h('details', { class: 'more' }, h('summary', null, `The ${worst.length} images in the plots`), t);
}
