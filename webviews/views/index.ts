/** Probe id → its view. Probes without one get the generic view (headline, numbers, images). */
import type { ProbeResult } from '../../server/engine/report/schema';
import { attackView } from './attack';
import { cleanView } from './clean';
import type { Ctx } from './common';
import { corruptionsView } from './corruptions';
import { cueConflictView } from './cueConflict';
import { genericView } from './generic';
import { oodView } from './ood';
import { patchesView } from './patches';
import { priorView } from './prior';
import { shiftView } from './shift';

type View = (ctx: Ctx, id: string, p: ProbeResult) => HTMLElement;

export const VIEWS: Record<string, View> = {
  clean: cleanView,
  attack: attackView,
  adversarial: attackView,
  'cue-conflict': cueConflictView,
  shift: shiftView,
  patches: patchesView,
  ood: oodView,
  corruptions: corruptionsView,
  prior: priorView,
};

export function probeView(ctx: Ctx, id: string, p: ProbeResult): HTMLElement {
  if (p.status !== 'ok' && (!p.records?.length && !Object.keys(p.metrics ?? {}).length)) return genericView(ctx, id, p);
  try {
    return (VIEWS[id] ?? genericView)(ctx, id, p);
  } catch (e) {
    // A probe whose report this page does not understand still shows what it can.
    console.error(`skeptic: the ${id} view failed`, e);
    return genericView(ctx, id, p);
  }
}
