/**
 * Architecture prior (P6, Ulyanov et al. CVPR 2018): how much of the task the untrained
 * architecture and raw pixels already solve, against the trained model. Reads the prior probe's
 * metrics.probes = { logreg | ncm: { trainedModel, trainedFeatures, randomFeatures, pixels,
 * randomShare, pixelsShare } }, metrics.chance, metrics.folds (server/engine/probes/prior.ts); falls
 * back to flat metrics.trainedAccuracy / randomAccuracy / pixelAccuracy.
 */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { int, isNum, pct } from '../lib/format';
import { axis, bars, categoryAxis, categoryScale, line, pctValues, plot, refLine, unitScale } from '../lib/plot';
import { pick, probeDetails, probeSection, stat, stats, table, type Ctx } from './common';

type Row = Record<string, unknown>;
const SETS: Array<[key: string, label: string]> = [
  ['trainedModel', 'trained model'],
  ['trainedFeatures', 'probe on trained features'],
  ['randomFeatures', 'untrained architecture'],
  ['pixels', 'raw pixels'],
];
const CLASSIFIERS: Record<string, string> = { logreg: 'logistic regression', ncm: 'nearest class mean' };

function acc(v: unknown): number | null {
  if (isNum(v)) return v;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of ['accuracy', 'logreg', 'logistic', 'ncm']) {
      const x = acc(o[k]);
      if (x !== null) return x;
    }
  }
  return null;
}

export function priorView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  let probes = (m.probes && typeof m.probes === 'object' ? m.probes : null) as Record<string, Row> | null;
  if (!probes) {
    // Flat metrics: one "classifier".
    const flat: Row = {
      trainedModel: acc(pick(m, 'trainedAccuracy', 'trained')),
      randomFeatures: acc(pick(m, 'randomAccuracy', 'untrainedAccuracy', 'randomFeatures', 'random', 'untrained')),
      pixels: acc(pick(m, 'pixelAccuracy', 'pixels', 'pixelBaseline', 'pixel')),
    };
    probes = Object.values(flat).some(isNum) ? { probe: flat } : {};
  }
  const cls = Object.keys(probes).sort((a, b) => (a === 'logreg' ? -1 : b === 'logreg' ? 1 : 0));
  const main = probes.logreg ?? probes[cls[0]];
  const chance = isNum(m.chance) ? m.chance : null;
  const parts: Array<HTMLElement | null> = [
    stats(
      main ? stat('trained model', pct(main.trainedModel)) : null,
      main ? stat('untrained architecture', pct(main.randomFeatures), isNum(main.randomShare) ? `${pct(main.randomShare)} of the trained accuracy` : undefined) : null,
      main ? stat('raw pixels', pct(main.pixels), isNum(main.pixelsShare) ? `${pct(main.pixelsShare)} of the trained accuracy` : undefined) : null,
      chance !== null ? stat('chance (largest class)', pct(chance), isNum(m.folds) ? `${int(m.folds)}-fold cross-validation` : undefined) : null,
    ),
  ];
  const sets = SETS.filter(([k]) => cls.some((c) => isNum(probes![c][k])));
  if (sets.length) {
    const names = sets.map(([, l]) => l);
    parts.push(
      plot(ctx.plots, {
        id: `${id}-accuracies`,
        title: 'How much of the accuracy is learning, and how much is architecture',
        note: 'Cross-validated linear probes on the penultimate features of the trained model and of the same graph with re-initialised weights, and on raw pixels.',
        series: cls.map((c) => CLASSIFIERS[c] ?? c),
        points: sets.length,
        label: sets.map(([k, l]) => `${l} ${pct(main?.[k])}`).join(', '),
        height: 220,
        make: (t) => {
          const colours = t.palette(cls.length);
          return {
            opts: {
              scales: { x: categoryScale(sets.length), y: unitScale },
              axes: [categoryAxis(t, '', names), axis(t, 'accuracy', { values: pctValues })],
              series: [
                {},
                ...cls.map((c, i) =>
                  i === 0 ? bars(CLASSIFIERS[c] ?? c, colours[0], 0.6, 0.55) : line(CLASSIFIERS[c] ?? c, colours[i], { width: 0, points: { show: true, size: 10, fill: colours[i] } }),
                ),
                ...(chance !== null ? [refLine('chance', t.ref)] : []),
              ],
            },
            data: [sets.map((_, i) => i), ...cls.map((c) => sets.map(([k]) => (isNum(probes![c][k]) ? (probes![c][k] as number) : null))), ...(chance !== null ? [sets.map(() => chance)] : [])],
          };
        },
      }),
    );
    parts.push(table(['classifier', ...names], cls.map((c) => [CLASSIFIERS[c] ?? c, ...sets.map(([k]) => pct(probes![c][k]))])));
  } else if (typeof m.note === 'string') parts.push(h('p', { class: 'note' }, m.note));
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}
