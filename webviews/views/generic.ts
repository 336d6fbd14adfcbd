/** Any probe this page has no special view for: its headline, key numbers, images and metrics. */
import type { ProbeResult } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { gallery } from '../lib/gallery';
import { artifactsOf, imageTitle, labelLine, pctOrNum, probeDetails, probeSection, revealImage, stat, stats, stemOf, subhead, thumb, type Ctx, type Rec } from './common';

export function genericView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  const m = (p.metrics ?? {}) as Record<string, unknown>;
  const scalars = Object.entries(m).filter(([, v]) => typeof v === 'number' && Number.isFinite(v)).slice(0, 6);
  const withArt = p.records.filter((r) => artifactsOf(r).length);
  return probeSection(
    id,
    p,
    scalars.length ? stats(...scalars.map(([k, v]) => stat(k, pctOrNum(v)))) : null,
    withArt.length ? subhead('Images') : null,
    withArt.length
      ? gallery<Rec>({
          id: `${id}-gallery`,
          label: `${p.title || id} images`,
          items: withArt,
          pageSize: 12,
          layout: 'rows',
          card: (r) =>
            h(
              'div',
              { class: 'img-card', 'data-image': r.image },
              h('div', { class: 'card-head' }, imageTitle(ctx, r.image), labelLine(ctx, r.image)),
              h('div', { class: 'thumbs' }, ...artifactsOf(r).filter((a) => !/\.npy$/i.test(a)).map((a) => thumb(ctx, a, stemOf(a), stemOf(a)))),
            ),
          activate: ctx.host.canReveal ? (r) => revealImage(ctx, r.image) : undefined,
        }).el
      : null,
    probeDetails(p),
  );
}
