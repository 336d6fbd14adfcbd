/**
 * Adversarial examples (P1): robust accuracy against ε per attack, the distribution of the
 * minimal ε, and a gallery of original, adversarial and amplified perturbation side by side with
 * the true label, the clean and adversarial predictions, the adversarial confidence and the
 * minimal ε.
 *
 * Reads the attack probe's report (server/engine/probes/attack.ts):
 *   plots.eps = { linf: number[], l2: number[] }; plots.robustAccuracy = { fgsm, pgd, square, any
 *   (over the L∞ grid), pgdL2 (over the L2 grid): (number|null)[] | null }; plots.cleanAccuracy;
 *   plots.minEps: number[]; metrics.domain ('digits': ε shown as plain numbers, else k/255);
 *   records { image, pred, conf, status, minEps, minEpsBy, advLabel, advConf, artifacts:
 *   [..-original.png, ..-adversarial.png, ..-perturbation.png] }.
 * Other shapes are accepted too, first match wins: plots.robustAccuracy = { eps, attacks: {…} };
 * plots.curves = [{ attack, norm?, eps, robustAccuracy }]; metrics.robustAccuracy or
 * metrics.attacks as { [attack]: { [eps]: acc } | [{ eps, robustAccuracy }] | { eps, robustAccuracy } }.
 * L2 curves (attack or norm naming L2) are drawn apart from the L∞ ones: ε is in other units.
 */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h, select } from '../lib/dom';
import { eps as epsText, int, isNum, num, pct } from '../lib/format';
import { gallery } from '../lib/gallery';
import { axis, line, pctValues, plot, refLine, steps, unitScale } from '../lib/plot';
import { artifactsOf, imageTitle, labelLine, pick, probeDetails, probeSection, revealImage, stat, stats, stemOf, subhead, table, thumb, type Ctx, type Rec } from './common';

export interface Curve {
  attack: string;
  norm: 'linf' | 'l2';
  points: Array<[number, number]>;
}

function normOf(attack: string, norm?: unknown): 'linf' | 'l2' {
  const s = `${typeof norm === 'string' ? norm : ''} ${attack}`;
  return /l2|ℓ2|L_2/i.test(s) ? 'l2' : 'linf';
}

function pairs(eps: unknown, acc: unknown): Array<[number, number]> {
  if (!Array.isArray(eps) || !Array.isArray(acc)) return [];
  return eps.map((e, i) => [e, acc[i]] as [unknown, unknown]).filter((p): p is [number, number] => isNum(p[0]) && isNum(p[1]));
}

function fromObj(attack: string, v: unknown): Curve | undefined {
  if (!v || typeof v !== 'object') return undefined;
  if (Array.isArray(v)) {
    const pts = v.map((q: Record<string, unknown>) => [q?.eps ?? q?.epsilon, q?.robustAccuracy ?? q?.accuracy]).filter((q): q is [number, number] => isNum(q[0]) && isNum(q[1]));
    return pts.length ? { attack, norm: normOf(attack), points: pts } : undefined;
  }
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.eps) || Array.isArray(o.epsilons)) {
    const pts = pairs(o.eps ?? o.epsilons, o.robustAccuracy ?? o.accuracy);
    return pts.length ? { attack, norm: normOf(attack, o.norm), points: pts } : undefined;
  }
  const pts = Object.entries(o).map(([e, a]) => [Number(e), a]).filter((q): q is [number, number] => isNum(q[0]) && isNum(q[1]));
  return pts.length ? { attack, norm: normOf(attack), points: pts } : undefined;
}

/** The robust-accuracy curves of an attack probe, in whichever shape it reports them. */
export function robustCurves(p: ProbeResult): Curve[] {
  const plots = (p.plots ?? {}) as Record<string, unknown>;
  const m = (p.metrics ?? {}) as Record<string, unknown>;
  const sort = (cs: Curve[]) => cs.map((c) => ({ ...c, points: [...c.points].sort((a, b) => a[0] - b[0]) })).filter((c) => c.points.length);
  const ra = plots.robustAccuracy as Record<string, unknown> | undefined;
  const grid = (plots.eps ?? m.eps) as { linf?: unknown; l2?: unknown } | undefined;
  if (ra && grid && typeof grid === 'object' && !Array.isArray(grid) && (Array.isArray(grid.linf) || Array.isArray(grid.l2))) {
    // The attack probe: one list per attack over its norm's grid.
    const NAMES: Record<string, string> = {
      fgsm: 'FGSM', pgd: 'PGD L∞', square: 'Square (black-box)', any: 'any L∞ attack', pgdL2: 'PGD L2',
      apgdCe: 'APGD-CE L∞', apgdT: 'APGD-T L∞', apgdCeL2: 'APGD-CE L2', apgdTL2: 'APGD-T L2', anyL2: 'any L2 attack',
    };
    return sort(
      Object.entries(ra)
        .filter(([, acc]) => Array.isArray(acc))
        .map(([a, acc]) => {
          const norm = normOf(a);
          return { attack: NAMES[a] ?? a, norm, points: pairs(norm === 'l2' ? grid.l2 : grid.linf, acc) };
        }),
    );
  }
  if (ra && Array.isArray(ra.eps) && ra.attacks && typeof ra.attacks === 'object') {
    return sort(Object.entries(ra.attacks as Record<string, unknown>).map(([a, acc]) => ({ attack: a, norm: normOf(a), points: pairs(ra.eps, acc) })));
  }
  if (Array.isArray(plots.curves)) {
    return sort((plots.curves as Array<Record<string, unknown>>).map((c) => {
      const a = String(c.attack ?? c.name ?? 'attack');
      return { attack: a, norm: normOf(a, c.norm), points: pairs(c.eps ?? c.epsilons, c.robustAccuracy ?? c.accuracy) };
    }));
  }
  for (const src of [m.robustAccuracy, m.attacks]) {
    if (Array.isArray(src)) {
      const cs = src.map((c: Record<string, unknown>) => fromObj(String(c.attack ?? c.name ?? 'attack'), c)).filter((c): c is Curve => !!c);
      if (cs.length) return sort(cs);
    } else if (src && typeof src === 'object') {
      const cs = Object.entries(src).map(([a, v]) => fromObj(a, v)).filter((c): c is Curve => !!c);
      if (cs.length) return sort(cs);
    }
  }
  return [];
}

const minEpsOf = (r: Rec) => pick<number>(r, 'minEps', 'minimalEps', 'minEpsilon', 'minimalEpsilon', 'epsilon', 'eps');

export function attackView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const plots = (p.plots ?? {}) as Record<string, unknown>;
  const curves = robustCurves(p);
  const clean = pick<number>(m, 'cleanAccuracy', 'accuracy');
  const med = pick<number>(m, 'medianMinEps', 'medianMinimalEps', 'medianMinEpsilon', 'medianMinimalEpsilon');
  // Digits (ε 0.1, 0.2, 0.3) read better as plain numbers than as k/255.
  const eps = m.domain === 'digits' ? (v: unknown) => num(v, 4) : epsText;
  const wb = m.whiteBox as { available?: boolean; blockedBy?: string[] } | undefined;
  const parts: Array<HTMLElement | null> = [
    stats(
      isNum(clean) ? stat('clean accuracy', pct(clean)) : null,
      isNum(med) ? stat('median minimal ε', eps(med), 'smallest L∞ change that flips the label') : null,
      isNum(m.attacked) ? stat('attacked', int(m.attacked), `correctly classified of ${int(m.count)}`) : null,
      wb && wb.available === false ? stat('white-box', 'unavailable', wb.blockedBy?.length ? `no gradient for ${wb.blockedBy.join(', ')}` : 'black-box only', 'bad') : null,
      ...(curves.some((c) => c.attack === 'any L∞ attack') ? curves.filter((c) => c.attack === 'any L∞ attack' || c.attack === (curves.some((d) => d.attack === 'any L2 attack') ? 'any L2 attack' : 'PGD L2')) : curves.slice(0, 3)).map((c) => {
        const last = c.points[c.points.length - 1];
        return stat(`robust accuracy, ${c.attack}`, pct(last[1]), `at ε = ${c.norm === 'l2' ? num(last[0]) : eps(last[0])}`, last[1] > 0.1 ? 'neutral' : 'bad');
      }),
    ),
  ];
  for (const norm of ['linf', 'l2'] as const) {
    const cs = curves.filter((c) => c.norm === norm);
    if (!cs.length) continue;
    const fmtEps = norm === 'l2' ? (v: number) => num(v) : (v: number) => eps(v);
    // One ε grid for every curve (the attack probe's case): an aligned plot on a log2 ε axis,
    // ticks at the grid. Otherwise each curve keeps its own ε (uPlot's faceted mode).
    const xs = cs[0].points.map((q) => q[0]);
    const shared = cs.every((c) => c.points.length === xs.length && c.points.every((q, i) => q[0] === xs[i]));
    const log = shared && xs[0] > 0 && xs[xs.length - 1] / xs[0] >= 4;
    const dashFor = (c: Curve) => (/^any/.test(c.attack) ? { dash: [7, 4], width: 2.5 } : {});
    parts.push(
      plot(ctx.plots, {
        id: `${id}-robust-${norm}`,
        title: `Robust accuracy against ε (${norm === 'l2' ? 'L2' : 'L∞'})`,
        note: 'Robust accuracy should fall as ε grows and reach about zero at large ε; a curve that does not suggests gradient masking (Athalye et al., 2018).',
        series: cs.map((c) => c.attack),
        points: cs.reduce((a, c) => a + c.points.length, 0),
        label: `Robust accuracy of ${cs.length} attacks against ε`,
        height: 260,
        make: (t) => {
          const colours = t.palette(cs.length);
          const xAxis = axis(t, norm === 'l2' ? 'ε (L2)' : 'ε (L∞, pixel units)', { values: (_u, s) => s.map(fmtEps), ...(shared ? { splits: () => xs } : {}) });
          const yAxis = axis(t, 'robust accuracy', { values: pctValues });
          const withClean = isNum(clean);
          if (shared) {
            return {
              opts: {
                scales: { x: { time: false, auto: false, range: [xs[0], xs[xs.length - 1]], ...(log ? { distr: 3, log: 2 } : {}) }, y: unitScale },
                axes: [xAxis, yAxis],
                series: [{ label: 'ε', value: (_u, v) => (v === null ? '–' : fmtEps(v)) }, ...cs.map((c, i) => line(c.attack, colours[i], { points: { show: true, size: 6 }, ...dashFor(c) })), ...(withClean ? [refLine('clean accuracy', t.fg)] : [])],
              },
              data: [xs, ...cs.map((c) => c.points.map((q) => q[1])), ...(withClean ? [xs.map(() => clean as number)] : [])],
            };
          }
          const xmax = Math.max(...cs.flatMap((c) => c.points.map((q) => q[0])));
          return {
            opts: {
              mode: 2,
              scales: { x: { time: false, auto: false, range: [0, xmax * 1.05 || 1] }, y: unitScale },
              axes: [xAxis, yAxis],
              series: [{}, ...cs.map((c, i) => line(c.attack, colours[i], dashFor(c))), ...(withClean ? [refLine('clean accuracy', t.fg)] : [])],
              cursor: { show: false },
            },
            data: [null, ...cs.map((c) => [c.points.map((q) => q[0]), c.points.map((q) => q[1])]), ...(withClean ? [[[0, xmax], [clean, clean]]] : [])] as unknown as import('uplot').AlignedData,
          };
        },
        table: { head: ['attack', 'ε', 'robust accuracy'], rows: cs.flatMap((c) => c.points.map((q) => [c.attack, fmtEps(q[0]), pct(q[1])])) },
      }),
    );
  }

  const log = protocolLog(m, eps);
  if (log) parts.push(log);

  const minEps = (Array.isArray(plots.minEps) ? plots.minEps : []).filter(isNum) as number[];
  if (minEps.length) parts.push(minEpsHistogram(ctx, id, minEps, eps, m.domain === 'digits'));

  const withArt = p.records.filter((r) => artifactsOf(r).length).sort((a, b) => (minEpsOf(a) ?? Infinity) - (minEpsOf(b) ?? Infinity) || a.image - b.image);
  const attackOf = (r: Rec) => pick<string>(r, 'attack', 'minEpsBy');
  const attacks = [...new Set(withArt.map(attackOf).filter((a): a is string => typeof a === 'string'))];
  let which = 'all';
  const g = gallery<Rec>({
    id: `${id}-gallery`,
    label: 'Adversarial examples',
    items: withArt,
    pageSize: 12,
    layout: 'grid',
    empty: 'No adversarial examples were rendered.',
    card: (r) => attackCard(ctx, r, eps),
    activate: ctx.host.canReveal ? (r) => revealImage(ctx, r.image) : undefined,
    controls: attacks.length > 1 ? [select('Attack', [['all', 'all'], ...attacks.map((a) => [a, a] as [string, string])], which, (v) => ((which = v), g.setItems(withArt.filter((r) => v === 'all' || attackOf(r) === v))))] : [],
  });
  parts.push(subhead('Adversarial examples, smallest ε first'), g.el, probeDetails(p));
  return probeSection(id, p, ...parts);
}

const ATTACK_TITLES: Record<string, string> = { fgsm: 'FGSM', 'pgd-linf': 'PGD', 'pgd-l2': 'PGD', 'apgd-ce': 'APGD-CE', 'apgd-t': 'APGD-T', square: 'Square' };

/** The attack probe's protocol log (metrics.protocol): robust accuracy after each attack, in the
 *  order they ran, per ε (AutoAttack's log, as a table per norm). */
function protocolLog(m: Record<string, unknown>, eps: (v: unknown) => string): HTMLElement | null {
  const pr = m.protocol as { name?: unknown; linf?: unknown; l2?: unknown } | undefined;
  const grid = m.eps as { linf?: unknown; l2?: unknown } | undefined;
  if (!pr || !grid) return null;
  const tables: HTMLElement[] = [];
  for (const norm of ['linf', 'l2'] as const) {
    const steps = pr[norm];
    const xs = grid[norm];
    if (!Array.isArray(steps) || !steps.length || !Array.isArray(xs) || !xs.length) continue;
    const fmt = norm === 'l2' ? (v: unknown) => num(v) : eps;
    const rows = (steps as Array<{ attack?: unknown; robustAccuracy?: unknown }>).map((st) => [
      `after ${ATTACK_TITLES[String(st.attack)] ?? String(st.attack)}`,
      ...(Array.isArray(st.robustAccuracy) ? st.robustAccuracy : []).map((a) => pct(a)),
    ]);
    if (isNum(m.cleanAccuracy)) rows.unshift(['clean', ...xs.map(() => pct(m.cleanAccuracy))]);
    tables.push(table([norm === 'l2' ? 'L2 ε' : 'L∞ ε', ...xs.map((x) => fmt(x))], rows));
  }
  if (!tables.length) return null;
  return h('div', { class: 'attack-protocol' }, subhead(`${typeof pr.name === 'string' ? pr.name : 'Protocol'}: robust accuracy after each attack, in the order they ran`), ...tables);
}

function minEpsHistogram(ctx: Ctx, id: string, values: number[], eps: (v: unknown) => string, digits: boolean): HTMLElement {
  // Bins: 1/255 wide for natural images (up to the largest value), 20 equal bins for digits.
  const max = Math.max(...values);
  const width = digits ? Math.max(max / 20, 1e-3) : Math.max(1 / 255, Math.ceil((max * 255) / 24) / 255);
  const n = Math.max(1, Math.ceil(max / width + 1e-9));
  const counts = new Array<number>(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor(v / width))]++;
  const edges = Array.from({ length: n + 1 }, (_, i) => i * width);
  return plot(ctx.plots, {
    id: `${id}-min-eps`,
    title: 'Minimal ε per image',
    note: 'How large a change each attacked image needed before its label flipped; mass near zero means invisible changes suffice.',
    series: ['images'],
    points: n,
    label: `Histogram of the minimal ε of ${values.length} images`,
    height: 200,
    make: (t) => ({
      opts: {
        scales: { x: { time: false, auto: false, range: [0, edges[n]] }, y: { range: (_u, _lo, hi) => [0, Math.max(1, hi ?? 1)] } },
        axes: [axis(t, 'minimal ε (L∞)', { splits: () => edges.filter((_, i) => i % Math.ceil(n / 10) === 0), values: (_u, s) => s.map(eps) }), axis(t, 'images')],
        series: [{}, steps('images', t.palette(1)[0], 0.35)],
        legend: { show: false },
      },
      data: [edges, [...counts, counts[n - 1]]],
    }),
    table: { head: ['from', 'to', 'images'], rows: counts.map((c, i) => [eps(edges[i]), eps(edges[i + 1]), c]) },
  });
}

function attackCard(ctx: Ctx, r: Rec, eps: (v: unknown) => string): HTMLElement {
  const arts = artifactsOf(r).filter((a) => !/\.npy$/i.test(a));
  const find = (re: RegExp) => arts.find((a) => re.test(stemOf(a)));
  const orig = find(/orig|clean/i);
  const adv = find(/adv/i);
  const pert = find(/pert|delta|diff|noise/i);
  const pred = pick(r, 'pred', 'cleanPred', 'prediction');
  const advPred = pick(r, 'advPred', 'adversarialPred', 'adversarialLabel', 'advLabel', 'adv');
  const advConf = pick(r, 'advConf', 'adversarialConfidence', 'advConfidence');
  const me = minEpsOf(r);
  const label = ctx.image(r.image)?.label ?? pick(r, 'label');
  const ok = (c: unknown) => (label === undefined ? '' : c === label ? 'right' : 'wrong');
  return h(
    'div',
    { class: 'img-card triplet', 'data-image': r.image },
    h('div', { class: 'card-head' }, imageTitle(ctx, r.image), labelLine(ctx, r.image, [typeof pick(r, 'attack', 'minEpsBy') === 'string' ? h('span', { class: 'tag' }, String(pick(r, 'attack', 'minEpsBy'))) : null, h('span', null, 'minimal ε ', h('b', null, eps(me)))])),
    h(
      'div',
      { class: 'thumbs' },
      thumb(ctx, orig, 'original', [h('span', null, 'original'), h('b', { class: `cls ${ok(pred)}` }, ctx.cls(pred))]),
      thumb(ctx, adv, 'adversarial', [h('span', null, 'adversarial'), h('b', { class: `cls ${ok(advPred)}` }, ctx.cls(advPred)), isNum(advConf) ? h('span', { class: 'muted' }, pct(advConf)) : null]),
      thumb(ctx, pert, 'perturbation, amplified', [h('span', null, 'perturbation'), h('span', { class: 'muted' }, 'amplified')]),
    ),
  );
}
