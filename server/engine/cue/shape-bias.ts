/**
 * Shape bias as Geirhos et al. (ICLR 2019) compute it: stimuli whose shape and texture categories
 * coincide are dropped; of the remaining decisions, those that name the shape category count as
 * shape decisions, those that name the texture category as texture decisions, any other answer
 * counts for neither; shape bias = shape / (shape + texture).
 */

export interface CueDecision {
  shape: string;
  texture: string;
  /** The category the model chose (null: none, e.g. no category of the mapping won). */
  decision: string | null;
}

export interface BiasCounts {
  /** Cue-conflict stimuli (shape ≠ texture). */
  conflicts: number;
  shape: number;
  texture: number;
  /** Decisions naming neither cue. */
  other: number;
  /** shape / (shape + texture), null without such decisions. */
  shapeBias: number | null;
  /** Share of conflict stimuli decided by shape or by texture. */
  cueDecisionRate: number | null;
}

export interface ShapeBiasResult extends BiasCounts {
  /** Stimuli dropped because shape and texture category coincide. */
  dropped: number;
  /** Per shape category (the paper's per-category plot), and per texture category. */
  byShape: Record<string, BiasCounts>;
  byTexture: Record<string, BiasCounts>;
}

function counts(ds: CueDecision[]): BiasCounts {
  let shape = 0;
  let texture = 0;
  for (const d of ds) {
    if (d.decision === d.shape) shape++;
    else if (d.decision === d.texture) texture++;
  }
  const n = ds.length;
  return {
    conflicts: n,
    shape,
    texture,
    other: n - shape - texture,
    shapeBias: shape + texture > 0 ? shape / (shape + texture) : null,
    cueDecisionRate: n > 0 ? (shape + texture) / n : null,
  };
}

function groupBy(ds: CueDecision[], key: (d: CueDecision) => string): Record<string, BiasCounts> {
  const groups = new Map<string, CueDecision[]>();
  for (const d of ds) {
    const k = key(d);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(d);
  }
  return Object.fromEntries([...groups.keys()].sort().map((k) => [k, counts(groups.get(k)!)]));
}

export function shapeBias(decisions: CueDecision[]): ShapeBiasResult {
  const conflicts = decisions.filter((d) => d.shape !== d.texture);
  return {
    ...counts(conflicts),
    dropped: decisions.length - conflicts.length,
    byShape: groupBy(conflicts, (d) => d.shape),
    byTexture: groupBy(conflicts, (d) => d.texture),
  };
}
