/**
 * Calibration: expected calibration error (Guo et al., ICML 2017; Naeini et al., AAAI 2015)
 * with the reliability-diagram data it is computed from. Pure functions.
 */

export interface ReliabilityBin {
  /** The bin is (lo, hi], except the first, which also holds confidence 0. */
  lo: number;
  hi: number;
  count: number;
  /** Mean confidence and accuracy of the predictions in the bin; null when it is empty. */
  meanConfidence: number | null;
  accuracy: number | null;
}

export interface Calibration {
  /** Σ_b (n_b / n) · |accuracy_b − meanConfidence_b|; null when there are no predictions. */
  ece: number | null;
  /** Largest |accuracy_b − meanConfidence_b| over non-empty bins (maximum calibration error). */
  mce: number | null;
  count: number;
  bins: ReliabilityBin[];
}

/**
 * Index of the equal-width bin of [0,1] a confidence falls in: bins are (b/B, (b+1)/B], so
 * b = ⌈c·B⌉ − 1, clamped to [0, B−1] (confidence 0 goes to the first bin, anything above 1 to
 * the last).
 */
export function binIndex(confidence: number, bins: number): number {
  return Math.min(bins - 1, Math.max(0, Math.ceil(confidence * bins) - 1));
}

/**
 * ECE over `bins` equal-width confidence bins [15], and the per-bin counts, mean confidences and
 * accuracies (the reliability diagram). `confidence[i]` is the top-1 probability of prediction
 * i, `correct[i]` whether it was right. Pairs with a NaN confidence are ignored.
 */
export function calibration(confidence: ArrayLike<number>, correct: ArrayLike<boolean>, bins = 15): Calibration {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer, got ${bins}`);
  if (confidence.length !== correct.length) throw new RangeError('confidence and correct must have the same length');
  const n = new Array<number>(bins).fill(0);
  const sumConf = new Array<number>(bins).fill(0);
  const hits = new Array<number>(bins).fill(0);
  let total = 0;
  for (let i = 0; i < confidence.length; i++) {
    const c = confidence[i];
    if (Number.isNaN(c)) continue;
    const b = binIndex(c, bins);
    n[b]++;
    sumConf[b] += c;
    if (correct[i]) hits[b]++;
    total++;
  }
  let ece = 0;
  let mce = 0;
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    const bin: ReliabilityBin = { lo: b / bins, hi: (b + 1) / bins, count: n[b], meanConfidence: null, accuracy: null };
    if (n[b] > 0) {
      bin.meanConfidence = sumConf[b] / n[b];
      bin.accuracy = hits[b] / n[b];
      const gap = Math.abs(bin.accuracy - bin.meanConfidence);
      ece += (n[b] / total) * gap;
      mce = Math.max(mce, gap);
    }
    out.push(bin);
  }
  return { ece: total ? ece : null, mce: total ? mce : null, count: total, bins: out };
}
