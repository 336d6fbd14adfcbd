/**
 * ReAct (Sun et al., NeurIPS 2021, "ReAct: out-of-distribution detection with rectified
 * activations"): the penultimate activations clipped at c, the `percentile` [90]th percentile of
 * all fit activation values (linear interpolation between order statistics, numpy's default),
 * the logits recomputed with the classifier head (logits = W·min(f, c) + b), and the energy score
 * logsumexp of those logits. Needs the head (model/head.ts).
 */
import type { Detector, FitData, Fitted } from './detector';
import { headLogits, logsumexp } from './detector';

/** The p-th percentile (0–100) of xs, numpy's linear method. */
export function percentile(xs: Float32Array | Float64Array, p: number): number {
  const s = Float64Array.from(xs).sort();
  if (!s.length) return NaN;
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (pos - lo) * (s[hi] - s[lo]);
}

export function react(p = 90): Detector {
  return {
    name: 'react',
    needsHead: true,
    fit({ n, d, x, head }: FitData): Fitted {
      if (!head) throw new Error('ReAct needs the classifier head');
      if (head.d !== d) throw new Error(`the head reads ${head.d} features, the feature tensor has ${d}`);
      const c = percentile(x.subarray(0, n * d), p);
      const clip = (v: number) => (v < c ? v : c);
      return {
        info: { percentile: p, clip: c },
        score: (f, o = 0) => logsumexp(headLogits(head, f, o, clip)),
      };
    },
  };
}
