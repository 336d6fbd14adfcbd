/**
 * Mahalanobis distance to the closest class mean under a shared (tied) covariance (Lee et al.,
 * NeurIPS 2018, "A simple unified framework for detecting out-of-distribution samples and
 * adversarial attacks"), on the penultimate features only, without their input preprocessing
 * (the FGSM-style perturbation) and without the per-layer ensemble.
 *
 *   μ_c = mean of the fit features of class c;  Σ = (1/n) Σ_i (f_i − μ_{c_i})(f_i − μ_{c_i})ᵀ
 *   score(f) = −min_c (f − μ_c)ᵀ (Σ + λI)⁻¹ (f − μ_c)
 *
 * Accumulated in float64 in one pass over the rows per statistic (sums per class, then the
 * within-class scatter), so memory is d² + K·d whatever the number of images. The ridge
 * λ = ridge · trace(Σ)/d (ridge default 1e-6) keeps Σ + λI invertible when the fit set has fewer
 * images than feature dimensions or dead (always-zero) features; at the default it changes no
 * distance measurably on a well-conditioned Σ.
 */
import { cholesky, cholSolve } from './linalg';
import type { Detector, FitData, Fitted } from './detector';

export function mahalanobis(ridge = 1e-6): Detector {
  return {
    name: 'mahalanobis',
    fit({ n, d, x, cls }: FitData): Fitted {
      const classes = [...new Set(cls)].sort((a, b) => a - b);
      const idx = new Map(classes.map((c, i) => [c, i]));
      const C = classes.length;
      const mu = new Float64Array(C * d);
      const count = new Float64Array(C);
      for (let i = 0; i < n; i++) {
        const c = idx.get(cls[i])!;
        count[c]++;
        for (let j = 0; j < d; j++) mu[c * d + j] += x[i * d + j];
      }
      for (let c = 0; c < C; c++) for (let j = 0; j < d; j++) mu[c * d + j] /= count[c];
      const S = new Float64Array(d * d);
      const r = new Float64Array(d);
      for (let i = 0; i < n; i++) {
        const c = idx.get(cls[i])!;
        for (let j = 0; j < d; j++) r[j] = x[i * d + j] - mu[c * d + j];
        for (let a = 0; a < d; a++) {
          const ra = r[a];
          if (ra === 0) continue;
          for (let b = 0; b <= a; b++) S[a * d + b] += ra * r[b];
        }
      }
      let trace = 0;
      for (let a = 0; a < d; a++) {
        for (let b = 0; b <= a; b++) {
          S[a * d + b] /= n;
          S[b * d + a] = S[a * d + b];
        }
        trace += S[a * d + a];
      }
      const lambda = ridge * (trace / d) || 1e-12;
      for (let a = 0; a < d; a++) S[a * d + a] += lambda;
      const L = cholesky(S, d);
      // P·μ_c and μ_cᵀ·P·μ_c, so a score needs one solve: dist_c = fᵀPf − 2 μ_cᵀPf + μ_cᵀPμ_c.
      const muP: Float64Array[] = [];
      const muPmu = new Float64Array(C);
      for (let c = 0; c < C; c++) {
        const m = mu.subarray(c * d, (c + 1) * d);
        const pm = cholSolve(L, d, m);
        muP.push(pm);
        let s = 0;
        for (let j = 0; j < d; j++) s += m[j] * pm[j];
        muPmu[c] = s;
      }
      return {
        info: { classes: C, ridge, lambda },
        score(f, o = 0) {
          const v = f.subarray(o, o + d);
          const pf = cholSolve(L, d, v);
          let fpf = 0;
          for (let j = 0; j < d; j++) fpf += v[j] * pf[j];
          let best = Infinity;
          for (let c = 0; c < C; c++) {
            let s = 0;
            const pm = muP[c];
            for (let j = 0; j < d; j++) s += pm[j] * v[j];
            const dist = fpf - 2 * s + muPmu[c];
            if (dist < best) best = dist;
          }
          return -best;
        },
      };
    },
  };
}
