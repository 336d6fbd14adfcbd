/**
 * ViM, virtual-logit matching (Wang et al., CVPR 2022, "ViM: out-of-distribution with
 * virtual-logit matching"), as in the authors' code:
 *   u = −pinv(W)·b, the origin of the feature space that the head maps to zero logits;
 *   the principal subspace P: the top-D eigenvectors of the second moment of (f − u) over the fit
 *   features (centred at u, not at their mean);
 *   the residual r(f) = ‖(I − PPᵀ)(f − u)‖, scaled by α = mean max-logit / mean residual over the
 *   fit features;
 *   score(f) = logsumexp(W·f + b) − α·r(f)  (energy minus the virtual logit).
 * D: 1000 for d ≥ 2048, 512 for d ≥ 768, else d/2 (the authors' choices by feature size), and
 * at most half the images the subspace is estimated from, so the fit data keep a residual.
 * The subspace is estimated on at most `maxRows` [512] seeded fit rows when d > maxRows (through
 * the Gram matrix, whose eigenvectors map to the covariance's), else on the d×d matrix of all fit
 * rows: the symmetric eigensolver (linalg.ts, Jacobi) then stays a few seconds at most.
 */
import { derivedRng, shuffleInPlace } from '../random';
import type { LinearHead } from '../model/head';
import { cholesky, cholSolve, symmetricEigen } from './linalg';
import type { Detector, FitData, Fitted } from './detector';
import { headLogits, logsumexp } from './detector';

/** −pinv(W)·b, for W of full rank (K ≤ d: Wᵀ(WWᵀ)⁻¹b; else (WᵀW)⁻¹Wᵀb), with a 1e-10 relative ridge. */
export function vimOrigin(head: LinearHead): Float64Array {
  const { W, b, K, d } = head;
  const u = new Float64Array(d);
  if (K <= d) {
    const G = new Float64Array(K * K);
    let tr = 0;
    for (let a = 0; a < K; a++) for (let c = 0; c < K; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += W[a * d + j] * W[c * d + j];
      G[a * K + c] = s;
      if (a === c) tr += s;
    }
    for (let a = 0; a < K; a++) G[a * K + a] += 1e-10 * (tr / K);
    const y = cholSolve(cholesky(G, K), K, b);
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let a = 0; a < K; a++) s += W[a * d + j] * y[a];
      u[j] = -s;
    }
  } else {
    const G = new Float64Array(d * d);
    let tr = 0;
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
      let s = 0;
      for (let a = 0; a < K; a++) s += W[a * d + i] * W[a * d + j];
      G[i * d + j] = s;
      if (i === j) tr += s;
    }
    for (let i = 0; i < d; i++) G[i * d + i] += 1e-10 * (tr / d);
    const wb = new Float64Array(d);
    for (let i = 0; i < d; i++) for (let a = 0; a < K; a++) wb[i] += W[a * d + i] * b[a];
    const y = cholSolve(cholesky(G, d), d, wb);
    for (let i = 0; i < d; i++) u[i] = -y[i];
  }
  return u;
}

export function vimDim(d: number): number {
  return d >= 2048 ? 1000 : d >= 768 ? 512 : Math.floor(d / 2);
}

export function vim(maxRows = 512): Detector {
  return {
    name: 'vim',
    needsHead: true,
    fit({ n, d, x, head, seed }: FitData): Fitted {
      if (!head) throw new Error('ViM needs the classifier head');
      if (head.d !== d) throw new Error(`the head reads ${head.d} features, the feature tensor has ${d}`);
      const u = vimOrigin(head);
      let basis: Float64Array; // row-major D×d, orthonormal rows
      let D: number;
      if (d <= maxRows) {
        const M = new Float64Array(d * d);
        const z = new Float64Array(d);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < d; j++) z[j] = x[i * d + j] - u[j];
          for (let a = 0; a < d; a++) for (let c = 0; c <= a; c++) M[a * d + c] += z[a] * z[c];
        }
        for (let a = 0; a < d; a++) for (let c = 0; c <= a; c++) M[c * d + a] = M[a * d + c] /= n;
        const { vectors } = symmetricEigen(M, d);
        D = Math.max(1, Math.min(vimDim(d), Math.floor(n / 2)));
        basis = new Float64Array(D * d);
        for (let r = 0; r < D; r++) for (let j = 0; j < d; j++) basis[r * d + j] = vectors[j * d + r];
      } else {
        let rows = Array.from({ length: n }, (_, i) => i);
        if (n > maxRows) rows = shuffleInPlace(rows, derivedRng(seed, 'ood/vim-rows')).slice(0, maxRows).sort((a, b) => a - b);
        const m = rows.length;
        const Z = new Float64Array(m * d);
        rows.forEach((r, i) => { for (let j = 0; j < d; j++) Z[i * d + j] = x[r * d + j] - u[j]; });
        const G = new Float64Array(m * m);
        for (let a = 0; a < m; a++) for (let c = 0; c <= a; c++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += Z[a * d + j] * Z[c * d + j];
          G[a * m + c] = G[c * m + a] = s / m;
        }
        const { values, vectors } = symmetricEigen(G, m);
        D = Math.max(1, Math.min(vimDim(d), Math.floor(m / 2)));
        basis = new Float64Array(D * d);
        for (let r = 0; r < D; r++) {
          // v = Zᵀg / sqrt(m·λ): the covariance's unit eigenvector for the Gram's eigenvector g.
          const scale = values[r] > 0 ? 1 / Math.sqrt(m * values[r]) : 0;
          for (let i = 0; i < m; i++) {
            const g = vectors[i * m + r] * scale;
            if (g === 0) continue;
            for (let j = 0; j < d; j++) basis[r * d + j] += g * Z[i * d + j];
          }
        }
      }
      const z = new Float64Array(d);
      const residual = (f: Float32Array, o: number) => {
        let all = 0;
        for (let j = 0; j < d; j++) {
          z[j] = f[o + j] - u[j];
          all += z[j] * z[j];
        }
        let inP = 0;
        for (let r = 0; r < D; r++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += basis[r * d + j] * z[j];
          inP += s * s;
        }
        return Math.sqrt(Math.max(0, all - inP));
      };
      let sumMax = 0;
      let sumRes = 0;
      for (let i = 0; i < n; i++) {
        const l = headLogits(head, x, i * d);
        let mx = -Infinity;
        for (const v of l) if (v > mx) mx = v;
        sumMax += mx;
        sumRes += residual(x, i * d);
      }
      const alpha = sumRes > 0 ? sumMax / sumRes : 0;
      return {
        info: { dim: D, alpha },
        score: (f, o = 0) => logsumexp(headLogits(head, f, o)) - alpha * residual(f, o),
      };
    },
  };
}
