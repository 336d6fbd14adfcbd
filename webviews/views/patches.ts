/**
 * Bag of local features (Brendel & Bethge): accuracy as the image is cut into ever smaller
 * shuffled tiles, the shuffled images with the model's prediction on each, and the evidence
 * heatmaps (what each patch alone says about a class).
 */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { int, isNum, pct } from '../lib/format';
import { gallery } from '../lib/gallery';
import { axis, categoryAxis, categoryScale, line, pctValues, plot, refLine, unitScale } from '../lib/plot';
import { artifactsOf, imageTitle, labelLine, probeDetails, probeSection, revealImage, stat, stats, stemOf, subhead, thumb, type Ctx, type Rec } from './common';

interface GridRow {
  grid: number;
  accuracy: number | null;
  agreement: number | null;
  retained: number | null;
}

export function patchesView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const par = p.params as Record<string, unknown>;
  const grids = (Array.isArray(m.grids) ? m.grids : []) as GridRow[];
  const gridList = (Array.isArray(par.grids) ? par.grids : grids.map((g) => g.grid)) as number[];
  const ev = (m.evidence ?? null) as Record<string, unknown> | null;
  const fg = isNum(par.findingGrid) ? par.findingGrid : 4;
  const at = grids.find((g) => g.grid === fg);

  const parts: Array<HTMLElement | null> = [
    stats(
      stat('clean accuracy', pct(m.cleanAccuracy), `chance ${pct(m.chance)}`),
      ...grids.map((g) =>
        stat(
          `shuffled ${g.grid}×${g.grid}`,
          pct(isNum(g.accuracy) ? g.accuracy : g.agreement),
          `${isNum(g.accuracy) ? 'accuracy' : 'agreement'}; retained ${pct(g.retained)}`,
          g === at && isNum(g.retained) && isNum(par.minRetained) ? (g.retained < par.minRetained ? 'ok' : 'bad') : 'neutral',
        ),
      ),
      ev ? stat('a single patch finds the label', pct(ev.singlePatchRate), `${int(ev.labelled)} images with evidence maps; blank canvas ${pct(ev.blankRate)}`) : null,
    ),
  ];

  if (grids.length) {
    const names = grids.map((g) => `${g.grid}×${g.grid}`);
    parts.push(
      plot(ctx.plots, {
        id: `${id}-grids`,
        title: 'Accuracy with the image cut into shuffled tiles',
        note: 'A model that decides by global shape falls to chance once the tiles are small; a bag of local features keeps its accuracy.',
        series: ['accuracy', 'agreement with unshuffled'],
        points: grids.length,
        label: `Accuracy and agreement at grids ${names.join(', ')}`,
        height: 220,
        make: (t) => {
          const [c1, c2] = t.palette(2);
          const flat = (v: unknown) => grids.map(() => (isNum(v) ? v : null));
          return {
            opts: {
              scales: { x: categoryScale(grids.length), y: unitScale },
              axes: [categoryAxis(t, 'tiles', names), axis(t, 'share of images', { values: pctValues })],
              series: [
                {},
                line('accuracy', c1, { points: { show: true, size: 7 } }),
                line('agreement with unshuffled', c2, { dash: [6, 3], points: { show: true, size: 7 } }),
                refLine('clean accuracy', t.fg),
                refLine('chance', t.ref),
              ],
            },
            data: [grids.map((_, i) => i), grids.map((g) => g.accuracy), grids.map((g) => g.agreement), flat(m.cleanAccuracy), flat(m.chance)],
          };
        },
        table: { head: ['tiles', 'accuracy', 'agreement', 'retained'], rows: grids.map((g) => [`${g.grid}×${g.grid}`, pct(g.accuracy), pct(g.agreement), pct(g.retained)]) },
      }),
    );
  }

  const withArt = p.records.filter((r) => artifactsOf(r).length);
  parts.push(subhead('Shuffled images and evidence maps'));
  parts.push(
    gallery<Rec>({
      id: `${id}-gallery`,
      label: 'Shuffled images and evidence heatmaps',
      items: withArt,
      pageSize: 12,
      layout: 'rows',
      empty: 'No images were rendered (run with a report folder to get artifacts).',
      card: (r) => patchCard(ctx, r, gridList),
      activate: ctx.host.canReveal ? (r) => revealImage(ctx, r.image) : undefined,
    }).el,
  );
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}

function patchCard(ctx: Ctx, r: Rec, grids: number[]): HTMLElement {
  const arts = artifactsOf(r);
  const shuffled = Array.isArray(r.shuffled) ? (r.shuffled as number[]) : [];
  const label = ctx.image(r.image)?.label;
  const verdict = (pred: unknown) => (label === undefined ? '' : pred === label ? 'right' : 'wrong');
  const thumbs = arts.map((a) => {
    const s = stemOf(a);
    let m: RegExpExecArray | null;
    if (/-original$/.test(s)) return thumb(ctx, a, 'original', [h('span', null, 'original'), h('b', { class: `cls ${verdict(r.pred)}` }, ctx.cls(r.pred))]);
    if ((m = /-shuffle(\d+)$/.exec(s))) {
      const g = Number(m[1]);
      const j = grids.indexOf(g);
      const pred = j >= 0 ? shuffled[j] : undefined;
      return thumb(ctx, a, `shuffled ${g}×${g}`, [h('span', null, `${g}×${g}`), h('b', { class: `cls ${verdict(pred)}` }, pred === undefined ? '–' : ctx.cls(pred))]);
    }
    if ((m = /-evidence-class(\d+)$/.exec(s))) {
      const c = Number(m[1]);
      return thumb(ctx, a, `evidence for ${ctx.cls(c)}`, [h('span', null, 'evidence for'), h('b', { class: 'cls' }, ctx.cls(c))]);
    }
    return thumb(ctx, a, s, s);
  });
  const ev = r.evidence as { hits?: number; rows?: number; cols?: number } | undefined;
  return h(
    'div',
    { class: 'img-card', 'data-image': r.image },
    h('div', { class: 'card-head' }, imageTitle(ctx, r.image), labelLine(ctx, r.image, [ev && isNum(ev.hits) && isNum(ev.rows) && isNum(ev.cols) ? h('span', null, `${ev.hits} of ${ev.rows * ev.cols} patches alone say the label`) : null])),
    h('div', { class: 'thumbs' }, ...thumbs),
  );
}
