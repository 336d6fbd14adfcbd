/** Common corruptions (Hendrycks & Dietterich): accuracy per corruption and severity, and examples. */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { isNum, pct } from '../lib/format';
import { gallery } from '../lib/gallery';
import { axis, line, pctValues, plot, refLine, unitScale } from '../lib/plot';
import { artifactsOf, imageTitle, labelLine, probeDetails, probeSection, revealImage, stat, stats, stemOf, subhead, thumb, type Ctx, type Rec } from './common';

export function corruptionsView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const par = p.params as Record<string, unknown>;
  const plots = (p.plots ?? {}) as Record<string, unknown>;
  const severities = (Array.isArray(plots.severities) ? plots.severities : Array.isArray(m.severities) ? m.severities : []) as number[];
  const names = (Array.isArray(plots.corruptions) ? plots.corruptions : []) as string[];
  const labelled = plots.accuracy && typeof plots.accuracy === 'object';
  const table = (labelled ? plots.accuracy : plots.agreement) as Record<string, Array<number | null>> | undefined;
  const what = labelled ? 'accuracy' : 'agreement with the clean prediction';
  const clean = labelled ? m.cleanAccuracy : 1;

  const parts: Array<HTMLElement | null> = [
    stats(
      stat('clean accuracy', pct(m.cleanAccuracy)),
      stat('mean corruption accuracy', pct(m.meanCorruptionAccuracy)),
      stat(
        'relative drop',
        pct(m.relativeDegradation),
        `threshold ${pct(par.maxRelativeDrop)}`,
        isNum(m.relativeDegradation) && isNum(par.maxRelativeDrop) ? (m.relativeDegradation <= par.maxRelativeDrop ? 'ok' : 'bad') : 'neutral',
      ),
      stat('weakest', typeof m.worst === 'string' ? m.worst.replace(/_/g, ' ') : '–'),
      // mCE against AlexNet (ImageNet only; lower is better, 100% = AlexNet)
      isNum(m.mCE) ? stat('mCE', pct(m.mCE), `vs AlexNet${isNum(m.mCECorruptions) && m.mCECorruptions < 15 ? `, ${m.mCECorruptions} of 15 corruptions` : ''}`) : null,
    ),
  ];
  const ce = Object.fromEntries(
    (Array.isArray(m.perCorruption) ? (m.perCorruption as Array<{ corruption?: unknown; ce?: unknown }>) : [])
      .filter((c) => typeof c.corruption === 'string' && isNum(c.ce))
      .map((c) => [c.corruption as string, c.ce as number]),
  );

  if (table && names.length && severities.length) {
    parts.push(subhead(`${labelled ? 'Accuracy' : 'Agreement'} per corruption and severity`));
    parts.push(heatTable(names, severities, table, clean, ce));
    parts.push(
      plot(ctx.plots, {
        id: `${id}-severity`,
        title: `${labelled ? 'Accuracy' : 'Agreement'} against severity`,
        series: names,
        points: severities.length,
        label: `${what} at severities ${severities.join(', ')} for ${names.length} corruptions`,
        height: 260,
        make: (t) => {
          const colours = t.palette(names.length);
          return {
            opts: {
              scales: { x: { time: false, range: [Math.min(...severities) - 0.2, Math.max(...severities) + 0.2] }, y: unitScale },
              axes: [axis(t, 'severity', { splits: () => severities }), axis(t, what, { values: pctValues })],
              series: [{ label: 'severity' }, ...names.map((n, i) => line(n.replace(/_/g, ' '), colours[i], { points: { show: true, size: 5 } })), refLine('clean', t.fg)],
            },
            data: [severities, ...names.map((n) => table[n] ?? severities.map(() => null)), severities.map(() => (isNum(clean) ? clean : null))],
          };
        },
      }),
    );
  }

  const withArt = p.records.filter((r) => artifactsOf(r).length);
  parts.push(subhead('Examples'));
  parts.push(
    gallery<Rec>({
      id: `${id}-gallery`,
      label: 'Corrupted examples',
      items: withArt,
      pageSize: 8,
      layout: 'rows',
      empty: 'No examples were rendered.',
      card: (r) => corruptionCard(ctx, r),
      activate: ctx.host.canReveal ? (r) => revealImage(ctx, r.image) : undefined,
    }).el,
  );
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}

function heatTable(names: string[], severities: number[], t: Record<string, Array<number | null>>, clean: unknown, ce: Record<string, number> = {}): HTMLElement {
  const withCe = Object.keys(ce).length > 0;
  const head = h('tr', null, h('th', { scope: 'col' }, 'corruption'), ...severities.map((s) => h('th', { scope: 'col' }, `s${s}`)), h('th', { scope: 'col' }, 'mean'),
    withCe ? h('th', { scope: 'col', title: 'Corruption Error: mean error over severities 1–5 relative to AlexNet’s (Hendrycks & Dietterich 2019)' }, 'CE') : null);
  const cell = (v: number | null | undefined) => {
    const td = h('td', { class: 'heat acc' }, pct(v));
    // Shade by the loss against clean: white at clean accuracy, full colour at zero.
    const loss = isNum(v) && isNum(clean) && clean > 0 ? Math.min(1, Math.max(0, (clean - v) / clean)) : 0;
    td.style.setProperty('--heat', String(loss));
    return td;
  };
  const rows = names.map((n) => {
    const vals = t[n] ?? [];
    const ok = vals.filter(isNum);
    const mean = ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : null;
    return h('tr', { 'data-corruption': n }, h('th', { scope: 'row' }, n.replace(/_/g, ' ')), ...severities.map((_, i) => cell(vals[i])), cell(mean),
      withCe ? h('td', { class: 'ce' }, isNum(ce[n]) ? pct(ce[n]) : '–') : null);
  });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data heatmap loss' }, h('thead', null, head), h('tbody', null, ...rows)));
}

function corruptionCard(ctx: Ctx, r: Rec): HTMLElement {
  const thumbs = artifactsOf(r).map((a) => {
    const s = stemOf(a);
    const m = /-([a-z_]+)-s(\d)$/.exec(s);
    if (/-clean$/.test(s)) return thumb(ctx, a, 'clean', [h('span', null, 'clean'), h('b', { class: 'cls' }, ctx.cls(r.pred))]);
    if (m) {
      // Whether the model still gets it right at that severity (the record's bitmask, bit s−1).
      const bits = (r.hit ?? r.same) as Record<string, number> | undefined;
      const b = bits?.[m[1]];
      const ok = isNum(b) ? (b & (1 << (Number(m[2]) - 1))) !== 0 : undefined;
      const word = r.hit ? (ok ? 'right' : 'wrong') : ok ? 'same' : 'changed';
      return thumb(ctx, a, `${m[1]} severity ${m[2]}`, [
        h('span', null, m[1].replace(/_/g, ' '), h('span', { class: 'muted' }, ` s${m[2]}`)),
        ok === undefined ? null : h('b', { class: `cls ${ok ? 'right' : 'wrong'}` }, word),
      ]);
    }
    return thumb(ctx, a, s, s);
  });
  return h('div', { class: 'img-card', 'data-image': r.image }, h('div', { class: 'card-head' }, imageTitle(ctx, r.image), labelLine(ctx, r.image)), h('div', { class: 'thumbs' }, ...thumbs));
}
