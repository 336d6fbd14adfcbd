/** What every view gets, and the small building blocks they share. */
import type { Finding, ImageEntry, ProbeResult, Report } from '../../server/engine/report/schema';
import { h, type Child } from '../lib/dom';
import { isNum, num, pct } from '../lib/format';
import type { Host } from '../lib/host';
import type { ArtifactResolver } from '../lib/paths';
import type { Plots } from '../lib/plot';

export interface Ctx {
  report: Report;
  host: Host;
  art: ArtifactResolver;
  plots: Plots;
  /** Display name of class i. */
  cls(i: unknown): string;
  image(i: unknown): ImageEntry | undefined;
  findingsOf(probe: string): Finding[];
}

export type Rec = ProbeResult['records'][number];

export function makeCtx(report: Report, host: Host, art: ArtifactResolver, plots: Plots): Ctx {
  const names: string[] = [...(report.model?.labels?.names ?? report.dataset?.classes ?? [])];
  // Without class names from the model or the dataset, the images' own label names (idx digits).
  for (const img of report.images ?? []) {
    if (typeof img.label === 'number' && img.labelName && names[img.label] === undefined) names[img.label] = img.labelName;
  }
  const byProbe = new Map<string, Finding[]>();
  for (const f of report.findings ?? []) {
    const list = byProbe.get(f.probe) ?? [];
    list.push(f);
    byProbe.set(f.probe, list);
  }
  return {
    report,
    host,
    art,
    plots,
    cls: (i) => (typeof i === 'number' && Number.isInteger(i) ? (names[i] ?? `class ${i}`) : typeof i === 'string' ? i : '–'),
    image: (i) => (typeof i === 'number' ? report.images?.[i] : undefined),
    findingsOf: (p) => byProbe.get(p) ?? [],
  };
}

/** A probe's section with its heading, status line and headline. */
export function probeSection(id: string, p: ProbeResult, ...children: Array<Child | Child[]>): HTMLElement {
  const hid = `probe-${id}-title`;
  return h(
    'section',
    { id: `probe-${id}`, class: 'probe', 'data-probe': id, 'aria-labelledby': hid },
    h('h2', { id: hid, tabindex: -1 }, p.title || id, ' ', h('span', { class: `status status-${p.status}` }, p.status)),
    p.reason ? h('p', { class: 'reason' }, p.reason) : null,
    p.headline ? h('p', { class: 'headline' }, p.headline) : null,
    ...children,
  );
}

export type Tone = 'ok' | 'bad' | 'neutral';

/** A number with a label (and an optional detail line), in a row of such cards. */
export function stat(label: string, value: string, detail?: string, tone: Tone = 'neutral'): HTMLElement {
  return h('div', { class: `stat tone-${tone}` }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label' }, label), detail ? h('div', { class: 'stat-detail' }, detail) : null);
}

export function stats(...cards: Array<HTMLElement | null>): HTMLElement {
  return h('div', { class: 'stats' }, ...cards);
}

export function subhead(text: string): HTMLElement {
  return h('h3', null, text);
}

/** An image from the report folder, or a placeholder that says why there is none. */
export function thumb(ctx: Ctx, path: unknown, alt: string, caption?: Child | Child[]): HTMLElement {
  const url = ctx.art.url(path);
  const img = url
    ? h('img', { src: url, alt, loading: 'lazy', decoding: 'async', draggable: 'false' })
    : h('div', { class: 'noimg', role: 'img', 'aria-label': `${alt} (not available)` }, typeof path === 'string' ? 'not embedded' : 'no image');
  return h('figure', { class: 'thumb' }, img, caption ? h('figcaption', null, ...(Array.isArray(caption) ? caption : [caption])) : null);
}

/** The artifact paths of a record, as strings. */
export function artifactsOf(r: { artifacts?: unknown }): string[] {
  return Array.isArray(r.artifacts) ? r.artifacts.filter((a): a is string => typeof a === 'string') : [];
}

/** The base name of an artifact path without extension: "artifacts/patches/3-shuffle4.png" → "3-shuffle4". */
export function stemOf(path: string): string {
  return (path.split('/').pop() ?? path).replace(/\.[a-z0-9]+$/i, '');
}

/** The card title for a dataset image: its id, with the full id as a tooltip. */
export function imageTitle(ctx: Ctx, i: unknown): HTMLElement {
  const img = ctx.image(i);
  const id = img?.id ?? (typeof i === 'number' ? `image ${i}` : 'image');
  return h('div', { class: 'card-title', title: id }, id);
}

export function labelLine(ctx: Ctx, i: unknown, extra: Array<Child> = []): HTMLElement {
  const img = ctx.image(i);
  return h(
    'div',
    { class: 'card-meta' },
    img?.label !== undefined ? h('span', null, 'label ', h('b', { class: 'cls' }, img.labelName ?? ctx.cls(img.label))) : null,
    ...extra,
  );
}

/** A card's action in the editor: reveal the image's file or manifest row. */
export function revealImage(ctx: Ctx, i: unknown): void {
  const img = ctx.image(i);
  if (img) ctx.host.reveal(img.uri, img.line);
}

/** "where" text for an image: "test.csv:12" or "images/cat/1.png". */
export function imageWhere(img: ImageEntry | undefined): string {
  if (!img) return '';
  return img.line !== undefined ? `${img.path}:${img.line}` : img.index !== undefined ? `${img.path}#${img.index}` : img.path;
}

/** A <table> with a header row. */
export function table(head: string[], rows: Array<Array<Child>>, cls = 'data'): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: cls },
      h('thead', null, h('tr', null, ...head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, ...rows.map((r) => h('tr', null, ...r.map((c, k) => (k === 0 ? h('th', { scope: 'row' }, c) : h('td', null, c)))))),
    ),
  );
}

/** Flattens nested metrics into "a.b" → scalar rows (arrays of scalars shown inline, short). */
export function flatten(obj: unknown, prefix = '', depth = 0, out: Array<[string, string]> = []): Array<[string, string]> {
  if (obj === null || obj === undefined) {
    if (prefix) out.push([prefix, '–']);
    return out;
  }
  if (typeof obj !== 'object') {
    out.push([prefix, typeof obj === 'number' ? num(obj, 4) : String(obj)]);
    return out;
  }
  if (Array.isArray(obj)) {
    if (obj.every((x) => x === null || typeof x !== 'object')) {
      const s = obj.map((x) => (typeof x === 'number' ? num(x, 3) : String(x))).join(', ');
      out.push([prefix, s.length > 160 ? `${s.slice(0, 157)}…` : s]);
    } else if (depth < 2 && obj.length <= 20) obj.forEach((x, i) => flatten(x, `${prefix}[${i}]`, depth + 1, out));
    else out.push([prefix, `${obj.length} items`]);
    return out;
  }
  if (depth >= 3) {
    out.push([prefix, '{…}']);
    return out;
  }
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, depth + 1, out);
  return out;
}

export function metricsDetails(title: string, metrics: unknown, open = false): HTMLElement {
  const rows = flatten(metrics);
  return h('details', { class: 'more', open }, h('summary', null, `${title} (${rows.length})`), table(['name', 'value'], rows.map(([k, v]) => [k, v]), 'data kv'));
}

/** Parameters and all metrics, collapsed, at the end of every probe section. */
export function probeDetails(p: ProbeResult): HTMLElement {
  return h('div', { class: 'details-row' }, metricsDetails('Parameters', p.params), metricsDetails('All metrics', p.metrics));
}

export const pctOrNum = (x: unknown) => (isNum(x) && x >= 0 && x <= 1 ? pct(x) : num(x));

/** A record field under any of several names (for probes whose record shape varies). */
export function pick<T = unknown>(o: Record<string, unknown> | undefined, ...keys: string[]): T | undefined {
  if (!o) return undefined;
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) return o[k] as T;
  return undefined;
}
