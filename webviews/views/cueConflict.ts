/**
 * Cue conflict / texture bias (P2, Geirhos et al. ICLR 2019): the shape-bias figure, with its
 * counts and the published references (humans ≈ 0.96, ImageNet ResNet-50 ≈ 0.22), a gallery of
 * stimuli with their shape category, texture category and the model's decision (filterable to the
 * ones decided by texture), and the single-cue controls (edges, silhouette, texture).
 *
 * Reads the cue-conflict probe's report (server/engine/probes/cue-conflict.ts): metrics.shapeBias,
 * shape, texture, other, conflicts, dropped, threshold, reference { humans, resnet50 };
 * plots.byShape [{ category, shapeBias, shape, texture }] (or metrics.byShape { [category]: … });
 * metrics.gallery [{ id, shape, texture, answer, png?, image? }] (the stimuli, user sets included);
 * records { image, why: 'decided-by-texture', stimulus, shape, texture, answer, artifacts } and
 * { image, why: 'control-sample', edges, silhouette, texture (category names), artifacts:
 * [..-image.png, ..-edges.png, ..-silhouette.png, ..-texture.png] }. Also accepted: decision |
 * decided | pred for the answer, decidedBy 'shape' | 'texture' | 'other', metrics.perCategory.
 */
import type { ProbeResult } from '../../server/engine/report/schema';
import { checkbox, h } from '../lib/dom';
import { int, isNum, num, pct } from '../lib/format';
import { gallery } from '../lib/gallery';
import { axis, bars, categoryAxis, categoryScale, plot, refLine, unitScale } from '../lib/plot';
import { artifactsOf, imageTitle, labelLine, pick, probeDetails, probeSection, revealImage, stat, stats, stemOf, subhead, thumb, type Ctx, type Rec } from './common';

export const HUMAN_SHAPE_BIAS = 0.96;
export const RESNET50_SHAPE_BIAS = 0.22;

interface Cat {
  category: string;
  shapeBias: number | null;
  shape?: number;
  texture?: number;
}

/** A stimulus as the gallery shows it. */
export interface Stimulus {
  id: string;
  shape: unknown;
  texture: unknown;
  answer: unknown;
  png?: string;
  image?: number;
  by: 'shape' | 'texture' | 'other';
}

function categories(m: Record<string, unknown>, plots: Record<string, unknown>): Cat[] {
  const pc = plots.byShape ?? m.perCategory ?? m.byShape ?? m.categories;
  const rows: Array<Record<string, unknown>> = Array.isArray(pc)
    ? pc
    : pc && typeof pc === 'object'
      ? Object.entries(pc as Record<string, Record<string, unknown>>).map(([k, v]) => ({ category: k, ...v }))
      : [];
  return rows
    .map((r) => ({
      category: String(r.category ?? r.name ?? '?'),
      shapeBias: isNum(r.shapeBias) ? r.shapeBias : null,
      shape: isNum(r.shape) ? r.shape : isNum(r.shapeDecisions) ? r.shapeDecisions : undefined,
      texture: isNum(r.texture) ? r.texture : isNum(r.textureDecisions) ? r.textureDecisions : undefined,
    }))
    .filter((c) => c.shapeBias !== null || c.shape !== undefined);
}

export function decidedBy(r: Record<string, unknown>): 'shape' | 'texture' | 'other' {
  const by = pick<string>(r, 'decidedBy', 'by', 'cue');
  if (by === 'shape' || by === 'texture') return by;
  if (by !== undefined) return 'other';
  const d = pick(r, 'answer', 'decision', 'decided', 'pred');
  if (d !== undefined && d === pick(r, 'shape', 'shapeClass', 'shapeCategory')) return 'shape';
  if (d !== undefined && d === pick(r, 'texture', 'textureClass', 'textureCategory')) return 'texture';
  return 'other';
}

/** The stimuli to show: metrics.gallery (which includes user stimuli outside the image table), else the records. */
export function stimuliOf(p: ProbeResult): Stimulus[] {
  const m = p.metrics as Record<string, unknown>;
  const fromGallery = Array.isArray(m.gallery) ? (m.gallery as Array<Record<string, unknown>>) : null;
  const src = fromGallery ?? p.records.filter((r) => r.why !== 'control-sample' && pick(r, 'shape', 'shapeClass', 'shapeCategory') !== undefined);
  return src.map((g, i) => ({
    id: String(g.id ?? g.stimulus ?? `stimulus ${i + 1}`),
    shape: pick(g, 'shape', 'shapeClass', 'shapeCategory'),
    texture: pick(g, 'texture', 'textureClass', 'textureCategory'),
    answer: pick(g, 'answer', 'decision', 'decided', 'pred'),
    png: typeof g.png === 'string' ? g.png : artifactsOf(g)[0],
    image: isNum(g.image) ? g.image : undefined,
    by: decidedBy(g),
  }));
}

export function cueConflictView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = p.metrics as Record<string, unknown>;
  const plots = (p.plots ?? {}) as Record<string, unknown>;
  const ref = (m.reference ?? plots.reference ?? {}) as { humans?: number; resnet50?: number };
  const humans = isNum(ref.humans) ? ref.humans : HUMAN_SHAPE_BIAS;
  const resnet = isNum(ref.resnet50) ? ref.resnet50 : RESNET50_SHAPE_BIAS;
  const sb = pick<number>(m, 'shapeBias');
  const threshold = pick<number>(m, 'threshold') ?? pick<number>(p.params as Record<string, unknown>, 'threshold') ?? 0.5;
  const shape = pick<number>(m, 'shape', 'shapeDecisions', 'shapeCount');
  const texture = pick<number>(m, 'texture', 'textureDecisions', 'textureCount');
  const other = pick<number>(m, 'other', 'neither', 'otherDecisions');
  const conflicts = pick<number>(m, 'conflicts');
  const cats = categories(m, plots);
  const parts: Array<HTMLElement | null> = [
    stats(
      stat('shape bias', isNum(sb) ? num(sb, 3) : '–', `threshold ${num(threshold, 2)}; humans ≈ ${humans}, ResNet-50 ≈ ${resnet}`, isNum(sb) ? (sb >= threshold ? 'ok' : 'bad') : 'neutral'),
      stat('decided by shape', int(shape)),
      stat('decided by texture', int(texture)),
      isNum(other) ? stat('neither cue', int(other), isNum(conflicts) ? `of ${int(conflicts)} cue-conflict stimuli` : undefined) : null,
    ),
  ];
  // Where the stimuli came from: a user's set, or which generator made them (style transfer
  // with how far its optimisation got).
  const src = (m.stimuli ?? null) as { kind?: string; generator?: string; styleTransfer?: { meanStyleLoss?: { start?: number; end?: number } } } | null;
  if (src?.generator) {
    const sl = src.styleTransfer?.meanStyleLoss;
    const loss = sl && isNum(sl.start) && isNum(sl.end) ? ` Mean style loss ${num(sl.start, 3)} → ${num(sl.end, 3)}.` : '';
    parts.push(h('p', { class: 'note' }, `Stimuli generated from the dataset by ${src.generator}.${loss}`));
  }

  // The figure: the model's shape bias (overall and per shape category) against the references.
  if (isNum(sb) || cats.length) {
    const names = [...(isNum(sb) ? ['all'] : []), ...cats.map((c) => c.category)];
    const values = [...(isNum(sb) ? [sb] : []), ...cats.map((c) => c.shapeBias)];
    parts.push(
      plot(ctx.plots, {
        id: `${id}-shape-bias`,
        title: 'Shape bias: of the decisions that follow one cue, the share that follow the shape',
        note: `All stimuli, then per shape category. Counts: ${int(shape)} shape, ${int(texture)} texture${isNum(other) ? `, ${int(other)} neither` : ''}. References (Geirhos et al., ICLR 2019): humans ≈ ${humans}, ImageNet ResNet-50 ≈ ${resnet}.`,
        series: ['shape bias'],
        points: names.length,
        label: `Shape bias ${isNum(sb) ? num(sb, 2) : ''} against humans ${humans} and ResNet-50 ${resnet}`,
        height: 240,
        make: (t) => {
          const [c1] = t.palette(1);
          return {
            opts: {
              scales: { x: categoryScale(names.length), y: unitScale },
              axes: [categoryAxis(t, names.length > 1 ? 'shape category' : '', names), axis(t, 'shape bias')],
              series: [{}, bars('shape bias', c1, 0.6, 0.7), refLine(`humans ≈ ${humans}`, t.ok, { width: 1.5 }), refLine(`ResNet-50 ≈ ${resnet}`, t.warn, { width: 1.5 })],
            },
            data: [names.map((_, i) => i), values, names.map(() => humans), names.map(() => resnet)],
          };
        },
        table: { head: ['shape category', 'shape bias', 'shape', 'texture'], rows: [...(isNum(sb) ? [['all', num(sb, 3), int(shape), int(texture)]] : []), ...cats.map((c) => [c.category, num(c.shapeBias, 3), int(c.shape), int(c.texture)])] },
      }),
    );
  }

  const all = stimuliOf(p);
  let textureOnly = false;
  const items = () => (textureOnly ? all.filter((s) => s.by === 'texture') : all);
  const g = gallery<Stimulus>({
    id: `${id}-gallery`,
    label: 'Cue-conflict stimuli',
    items: items(),
    pageSize: 24,
    layout: 'grid',
    empty: 'No stimuli to show.',
    card: (s) => stimulusCard(ctx, s),
    activate: ctx.host.canReveal ? (s) => s.image !== undefined && revealImage(ctx, s.image) : undefined,
    controls: [checkbox('decided by texture only', textureOnly, (v) => ((textureOnly = v), g.setItems(items())))],
  });
  parts.push(subhead('Stimuli: the shape of one category, the texture of another'), g.el);

  const controls = p.records.filter((r) => r.why === 'control-sample' && artifactsOf(r).length);
  if (controls.length) {
    const cm = (m.controls ?? {}) as Record<string, { accuracy?: number | null }>;
    parts.push(
      subhead('Single-cue controls'),
      h('p', { class: 'note' }, `Accuracy on each cue alone: ${['edges', 'silhouette', 'texture'].map((c) => `${c} ${pct(cm[c]?.accuracy)}`).join(', ')}.`),
      gallery<Rec>({
        id: `${id}-controls`,
        label: 'Single-cue controls',
        items: controls,
        pageSize: 8,
        layout: 'rows',
        card: (r) => controlCard(ctx, r),
        activate: ctx.host.canReveal ? (r) => revealImage(ctx, r.image) : undefined,
      }).el,
    );
  }
  parts.push(probeDetails(p));
  return probeSection(id, p, ...parts);
}

function stimulusCard(ctx: Ctx, s: Stimulus): HTMLElement {
  return h(
    'div',
    { class: `img-card stimulus by-${s.by}`, 'data-decided-by': s.by },
    thumb(ctx, s.png, `cue-conflict stimulus ${s.id}`),
    h(
      'dl',
      { class: 'cues' },
      h('dt', null, 'shape'),
      h('dd', { class: s.by === 'shape' ? 'hit' : '' }, ctx.cls(s.shape)),
      h('dt', null, 'texture'),
      h('dd', { class: s.by === 'texture' ? 'hit' : '' }, ctx.cls(s.texture)),
      h('dt', null, 'model'),
      h('dd', null, h('b', { class: `cls ${s.by === 'shape' ? 'right' : s.by === 'texture' ? 'wrong' : ''}` }, s.answer === null || s.answer === undefined ? 'none' : ctx.cls(s.answer)), h('span', { class: 'muted' }, ` (${s.by})`)),
    ),
    h('div', { class: 'card-title small', title: s.id }, s.id),
  );
}

function controlCard(ctx: Ctx, r: Rec): HTMLElement {
  const thumbs = artifactsOf(r).map((a) => {
    const kind = stemOf(a).replace(/^.*-/, '');
    const decision = kind === 'image' ? undefined : r[kind];
    return thumb(ctx, a, kind, [h('span', null, kind), kind === 'image' ? null : h('b', { class: 'cls' }, decision === null || decision === undefined ? '–' : ctx.cls(decision))]);
  });
  return h('div', { class: 'img-card', 'data-image': r.image }, h('div', { class: 'card-head' }, imageTitle(ctx, r.image), labelLine(ctx, r.image)), h('div', { class: 'thumbs' }, ...thumbs));
}
