/**
 * Deep nearest neighbours (Sun et al., ICML 2022, "Out-of-distribution detection with deep
 * nearest neighbors"): features L2-normalised, score = −(distance to the k-th nearest normalised
 * fit feature). k = min(k [50], bank size − 1)... at least 1. The bank holds the fit features
 * (float32, normalised), capped at `maxBank` [20000] rows by a seeded subsample so memory and the
 * brute-force search stay bounded on large audits.
 */
import { derivedRng, shuffleInPlace } from '../random';
import type { Detector, FitData, Fitted } from './detector';

function normalise(src: Float32Array, o: number, d: number, dst: Float32Array, p: number): void {
  let s = 0;
  for (let j = 0; j < d; j++) s += src[o + j] * src[o + j];
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let j = 0; j < d; j++) dst[p + j] = src[o + j] * inv;
}

export function knn(k = 50, maxBank = 20000): Detector {
  return {
    name: 'knn',
    fit({ n, d, x, seed }: FitData): Fitted {
      let rows = Array.from({ length: n }, (_, i) => i);
      if (n > maxBank) rows = shuffleInPlace(rows, derivedRng(seed, 'ood/knn-bank')).slice(0, maxBank).sort((a, b) => a - b);
      const m = rows.length;
      const bank = new Float32Array(m * d);
      rows.forEach((r, i) => normalise(x, r * d, d, bank, i * d));
      const kk = Math.max(1, Math.min(k, m - 1));
      const q = new Float32Array(d);
      const dist = new Float64Array(m);
      return {
        info: { k: kk, bank: m },
        score(f, o = 0) {
          normalise(f, o, d, q, 0);
          for (let i = 0; i < m; i++) {
            // ||a − b||² = 2 − 2 a·b for unit vectors; computed directly to stay exact for zero rows.
            let s = 0;
            const p = i * d;
            for (let j = 0; j < d; j++) {
              const t = q[j] - bank[p + j];
              s += t * t;
            }
            dist[i] = s;
          }
          // The kk-th smallest: a partial sort is enough, but m·log m is fine at these sizes.
          const sorted = Float64Array.from(dist).sort();
          return -Math.sqrt(sorted[kk - 1]);
        },
      };
    },
  };
}
