/** Clean accuracy: the numbers every other probe is read against; per-class accuracy and confusion. */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { int, isNum, pct } from '../lib/format';
import { axis, bars, categoryAxis, categoryScale, pctValues, plot, unitScale } from '../lib/plot';
import { probeDetails, probeSection, stat, stats, subhead, table, type Ctx } from './common';

interface PerClass {
  class: number;
  name: string;
  n: number;
  correct: number;
  accuracy: number;
}

export function cleanView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const per = (Array.isArray(m.perClass) ? m.perClass : []) as PerClass[];
  const k = ctx.report.model?.numClasses ?? 0;
  const parts: Array<HTMLElement | null> = [
    stats(
      stat('accuracy', pct(m.accuracy), `${int(m.correct)} of ${int(m.labelled)} labelled`),
      isNum(m.top5Accuracy) ? stat('top-5 accuracy', pct(m.top5Accuracy)) : null,
      stat('mean confidence', pct(m.meanConfidence), `right ${pct(m.meanConfidenceCorrect)} · wrong ${pct(m.meanConfidenceWrong)}`),
      k ? stat('chance', pct(1 / k), `${k} classes`) : null,
    ),
  ];
  if (per.length) {
    const names = per.map((c) => c.name);
    parts.push(
      per.length <= 40
        ? plot(ctx.plots, {
            id: `${id}-per-class`,
            title: 'Accuracy per class',
            series: ['accuracy'],
            points: per.length,
            label: `Bar chart of accuracy for ${per.length} classes`,
            height: 220,
            make: (t) => ({
              opts: {
                scales: { x: categoryScale(per.length), y: unitScale },
                axes: [categoryAxis(t, 'class', names), axis(t, 'accuracy', { values: pctValues })],
                series: [{}, bars('accuracy', t.palette(1)[0])],
                legend: { show: false },
              },
              data: [per.map((_, i) => i), per.map((c) => c.accuracy)],
            }),
            table: { head: ['class', 'images', 'correct', 'accuracy'], rows: per.map((c) => [c.name, c.n, c.correct, pct(c.accuracy)]) },
          })
        : table(['class', 'images', 'correct', 'accuracy'], per.map((c) => [c.name, String(c.n), String(c.correct), pct(c.accuracy)])),
    );
  }
  if (Array.isArray(m.confusion) && m.confusionFormat === 'dense[true][pred]' && k > 0 && k <= 30) parts.push(confusion(ctx, m.confusion as number[][]));
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}

function confusion(ctx: Ctx, cm: number[][]): HTMLElement {
  const k = cm.length;
  const head = h('tr', null, h('th', { scope: 'col', class: 'corner' }, 'true ↓ / predicted →'), ...cm.map((_, j) => h('th', { scope: 'col' }, ctx.cls(j))));
  const rows = cm.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    return h(
      'tr',
      null,
      h('th', { scope: 'row' }, ctx.cls(i)),
      ...row.map((n, j) => {
        const td = h('td', { class: `heat ${i === j ? 'diag' : ''}`, title: `${ctx.cls(i)} → ${ctx.cls(j)}: ${n}` }, n ? String(n) : '');
        const share = total ? n / total : 0;
        td.style.setProperty('--heat', String(share));
        return td;
      }),
    );
  });
  return h('div', null, subhead(`Confusion matrix (${k}×${k})`), h('div', { class: 'table-wrap' }, h('table', { class: 'data confusion' }, h('thead', null, head), h('tbody', null, ...rows))));
}
