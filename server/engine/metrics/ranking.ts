/**
 * Ranking metrics for a score that should be higher on in-distribution ("positive") inputs than
 * on out-of-distribution ("negative") ones: AUROC, FPR at a given TPR, and the ROC curve.
 * Pure functions over plain number arrays; the OOD probe and any other probe can reuse them.
 *
 * Conventions shared by every function here:
 * - in-distribution is the positive class; a higher score means "more in-distribution";
 * - NaN scores are ignored (they have no rank); ±Infinity ranks normally;
 * - an empty side (after dropping NaN) gives null, never NaN.
 */

function clean(xs: ArrayLike<number>): Float64Array {
  let n = 0;
  for (let i = 0; i < xs.length; i++) if (!Number.isNaN(xs[i])) n++;
  const out = new Float64Array(n);
  for (let i = 0, k = 0; i < xs.length; i++) if (!Number.isNaN(xs[i])) out[k++] = xs[i];
  return out;
}

/** The scores without NaN, ascending: a Float64Array's numeric sort, several times faster than an
 *  array sorted through a comparator (the OOD probe ranks about 12,000 outlier scores per score
 *  and set of a 1,000-image audit). Equal values are equal whatever their order (−0 and 0 too). */
const ascending = (xs: ArrayLike<number>): Float64Array => clean(xs).sort();
const descending = (xs: ArrayLike<number>): Float64Array => ascending(xs).reverse();

/**
 * Area under the ROC curve in the Mann–Whitney formulation:
 *   AUROC = ( #{(i,o): in_i > out_o} + ½ · #{(i,o): in_i = out_o} ) / (n_in · n_out),
 * i.e. the probability that a random in-distribution input scores higher than a random OOD input,
 * ties counted half. All-equal scores give 0.5. O((n+m) log(n+m)).
 */
export function auroc(inScores: ArrayLike<number>, outScores: ArrayLike<number>): number | null {
  const pos = ascending(inScores);
  const neg = ascending(outScores);
  if (pos.length === 0 || neg.length === 0) return null;
  let below = 0; // negatives strictly below the current positive
  let upTo = 0; // negatives ≤ the current positive
  let wins = 0; // doubled: 2 per win, 1 per tie (kept integral while summing)
  for (const x of pos) {
    while (below < neg.length && neg[below] < x) below++;
    if (upTo < below) upTo = below;
    while (upTo < neg.length && neg[upTo] <= x) upTo++;
    wins += 2 * below + (upTo - below);
  }
  return wins / (2 * pos.length * neg.length);
}

export interface FprAtTpr {
  /** Share of OOD scores ≥ threshold. */
  fpr: number;
  /** The threshold t: the largest t with TPR(t) = #{in ≥ t}/n ≥ the target. */
  threshold: number;
  /** The TPR reached at t (≥ the target; more when in-scores tie at t). */
  tpr: number;
}

/**
 * False-positive rate at a true-positive rate (default 95%). The threshold t is the LARGEST value
 * such that at least the target share of in-distribution scores is ≥ t; it is always one of the
 * in-scores: the k-th largest, k = ⌈target · n⌉ (computed with a 1e-9 slack, so that a product
 * such as 0.07 · 100 = 7.000000000000001 gives k = 7, not 8). Inputs are accepted as
 * in-distribution when score ≥ t, so FPR = #{out ≥ t} / m: OOD scores tied with t count as false
 * positives, and in-scores tied with t all count as accepted (the TPR reported can then exceed
 * the target).
 * Null when either side is empty.
 */
export function fprAtTpr(inScores: ArrayLike<number>, outScores: ArrayLike<number>, target = 0.95): FprAtTpr | null {
  if (!(target > 0 && target <= 1)) throw new RangeError(`target TPR must be in (0, 1], got ${target}`);
  const pos = descending(inScores);
  const neg = clean(outScores);
  if (pos.length === 0 || neg.length === 0) return null;
  const k = Math.min(pos.length, Math.max(1, Math.ceil(target * pos.length - 1e-9)));
  const t = pos[k - 1];
  let fp = 0;
  for (const o of neg) if (o >= t) fp++;
  let tp = 0;
  for (const p of pos) if (p >= t) tp++;
  return { fpr: fp / neg.length, threshold: t, tpr: tp / pos.length };
}

/**
 * The ROC curve as [fpr, tpr] points, from [0,0] to [1,1], one point per distinct score
 * (thresholds swept from the highest score down; tied scores move both rates at once, which is
 * the diagonal segment that makes the trapezoid area equal the Mann–Whitney AUROC).
 * Downsampled to at most maxPoints points (evenly spaced along the curve, ends kept).
 * Null when either side is empty.
 */
export function rocCurve(inScores: ArrayLike<number>, outScores: ArrayLike<number>, maxPoints = 101): Array<[number, number]> | null {
  const pos = descending(inScores);
  const neg = descending(outScores);
  if (pos.length === 0 || neg.length === 0) return null;
  const points: Array<[number, number]> = [[0, 0]];
  let i = 0;
  let j = 0;
  while (i < pos.length || j < neg.length) {
    const t = Math.max(i < pos.length ? pos[i] : -Infinity, j < neg.length ? neg[j] : -Infinity);
    while (i < pos.length && pos[i] >= t) i++;
    while (j < neg.length && neg[j] >= t) j++;
    points.push([j / neg.length, i / pos.length]);
  }
  return downsample(points, maxPoints);
}

/** At most `max` (≥ 2) items, evenly spaced by index, first and last kept. */
export function downsample<T>(items: T[], max: number): T[] {
  if (items.length <= max) return items;
  const m = Math.max(2, Math.floor(max));
  const out: T[] = [];
  let last = -1;
  for (let s = 0; s < m; s++) {
    const idx = Math.round((s * (items.length - 1)) / (m - 1));
    if (idx !== last) out.push(items[idx]);
    last = idx;
  }
  return out;
}

/** Trapezoid area under a curve of [x, y] points sorted by x (checks rocCurve against auroc). */
export function trapezoidArea(points: Array<[number, number]>): number {
  let a = 0;
  for (let i = 1; i < points.length; i++) a += ((points[i][0] - points[i - 1][0]) * (points[i][1] + points[i - 1][1])) / 2;
  return a;
}
