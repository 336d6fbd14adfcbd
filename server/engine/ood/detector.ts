/**
 * The interface every feature-space OOD detector implements: fitted on in-distribution features
 * (and their classes), then a score per feature vector, higher = more in-distribution, like MSP
 * and energy. One detector per module (mahalanobis.ts, knn.ts, vim.ts, react.ts); the ood probe
 * composes them (probes/ood.ts), fitting on one seeded half of the audited images and scoring
 * the other half and the OOD sets, so no image scores itself.
 */
import type { LinearHead } from '../model/head';

/** Fit data: n rows of d float features, row-major, and each row's class (label, else prediction). */
export interface FitData {
  n: number;
  d: number;
  x: Float32Array;
  cls: Int32Array;
  /** The classifier head (logits = W·f + b), when it could be read. */
  head?: LinearHead;
  /** For seeded choices (subsamples). */
  seed: number;
}

export interface Fitted {
  /** Score of the feature row at x[offset .. offset+d). */
  score(x: Float32Array, offset?: number): number;
  /** What was fitted, for the report (sizes, thresholds, ...). */
  info: Record<string, number | string>;
}

export interface Detector {
  name: string;
  /** Needs the classifier head (ViM, ReAct). */
  needsHead?: boolean;
  fit(data: FitData): Fitted;
}

/** logsumexp in float64. */
export function logsumexp(z: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i] > m) m = z[i];
  if (!Number.isFinite(m)) return m;
  let s = 0;
  for (let i = 0; i < z.length; i++) s += Math.exp(z[i] - m);
  return m + Math.log(s);
}

/** W·f + b in float64 (f = x[o .. o+d), optionally transformed per value). */
export function headLogits(head: LinearHead, x: ArrayLike<number>, o = 0, map?: (v: number) => number): Float64Array {
  const { W, b, K, d } = head;
  const out = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let s = b[k];
    const r = k * d;
    for (let j = 0; j < d; j++) s += W[r + j] * (map ? map(x[o + j]) : x[o + j]);
    out[k] = s;
  }
  return out;
}
