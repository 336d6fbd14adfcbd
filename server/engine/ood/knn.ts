/**
 * Deep nearest neighbours (Sun et al., ICML 2022, "Out-of-distribution detection with deep
 * nearest neighbors"): features L2-normalised, score = −(distance to the k-th nearest normalised
 * fit feature). k = min(k [50], bank size − 1), at least 1. The bank holds the fit features
 * (float32, normalised), capped at `maxBank` [10000] rows by a seeded subsample so memory and the
 * brute-force search (bank size × d multiply-adds per scored vector) stay bounded on large audits.
 */
import { derivedRng, shuffleInPlace } from '../random';
import type { Detector, FitData, Fitted } from './detector';

function normalise(src: Float32Array, o: number, d: number, dst: Float32Array, p: number): void {
  let s = 0;
  for (let j = 0; j < d; j++) s += src[o + j] * src[o + j];
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let j = 0; j < d; j++) dst[p + j] = src[o + j] * inv;
}

/** The k-th smallest (1-based) of a[0..n), by quickselect on a scratch copy (Hoare partition). */
export function kthSmallest(a: Float64Array, n: number, k: number): number {
  const w = a.slice(0, n);
  let lo = 0;
  let hi = n - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = w[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (w[i] < pivot) i++;
      while (w[j] > pivot) j--;
      if (i <= j) {
        const t = w[i];
        w[i] = w[j];
        w[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return w[target];
  }
  return w[target];
}

export function knn(k = 50, maxBank = 10000): Detector {
  return {
    name: 'knn',
    fit({ n, d, x, seed }: FitData): Fitted {
      let rows = Array.from({ length: n }, (_, i) => i);
      if (n > maxBank) rows = shuffleInPlace(rows, derivedRng(seed, 'ood/knn-bank')).slice(0, maxBank).sort((a, b) => a - b);
      const m = rows.length;
      const bank = new Float32Array(m * d);
      rows.forEach((r, i) => normalise(x, r * d, d, bank, i * d));
      // Squared norms of the bank rows: 1, or 0 for an all-zero feature vector.
      const bankNorm = new Float64Array(m);
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += bank[i * d + j] * bank[i * d + j];
        bankNorm[i] = s;
      }
      const kk = Math.max(1, Math.min(k, m - 1));
      const q = new Float32Array(d);
      const dist = new Float64Array(m);
      return {
        info: { k: kk, bank: m },
        score(f, o = 0) {
          normalise(f, o, d, q, 0);
          let qn = 0;
          for (let j = 0; j < d; j++) qn += q[j] * q[j];
          const qZero = qn === 0;
          for (let i = 0; i < m; i++) {
            // ‖a − b‖² = 2 − 2 a·b for unit vectors (a zero row, normalised to zero, is at
            // distance 1 from every unit vector: 2 − 2·0 would say √2, so it is computed apart).
            let dot = 0;
            const p = i * d;
            for (let j = 0; j < d; j++) dot += q[j] * bank[p + j];
            dist[i] = (qZero ? 0 : 1) + bankNorm[i] - 2 * dot;
          }
          return -Math.sqrt(Math.max(0, kthSmallest(dist, m, kk)));
        },
      };
    },
  };
}
