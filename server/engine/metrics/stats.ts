/** Small descriptive statistics the probes share. Pure functions; empty input gives null. */

/** Arithmetic mean, ignoring NaN; null when nothing is left. */
export function mean(xs: ArrayLike<number>): number | null {
  let s = 0;
  let n = 0;
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i])) continue;
    s += xs[i];
    n++;
  }
  return n ? s / n : null;
}

export interface Histogram {
  /** bins + 1 edges, lo to hi. */
  edges: number[];
  counts: number[];
}

/**
 * Counts over `bins` equal-width bins of [lo, hi]: bin b is [edge_b, edge_{b+1}), the last bin
 * also holds hi. Values below lo or above hi are counted in the first or last bin; NaN is ignored.
 */
export function histogram(xs: ArrayLike<number>, bins: number, lo: number, hi: number): Histogram {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
  const width = hi > lo ? (hi - lo) / bins : 0;
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    if (Number.isNaN(x)) continue;
    const b = width > 0 ? Math.floor((x - lo) / width) : 0;
    counts[Math.min(bins - 1, Math.max(0, b))]++;
  }
  const edges = Array.from({ length: bins + 1 }, (_, b) => (b === bins ? hi : lo + b * width));
  return { edges, counts };
}
