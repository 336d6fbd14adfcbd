/**
 * The targeted DLR loss, "difference of logits ratio" (Croce & Hein, ICML 2020, §4), in float64
 * on one row of logits z. With π the classes sorted by logit, largest first, label y and
 * target t:
 *
 *     DLR_t(z) = −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4) + 1e-12)
 *
 * Ascending it pushes z_t above z_y; the denominator makes it invariant to a shift and a
 * positive rescaling of the logits, so saturated softmax outputs do not flatten it the way they
 * flatten cross-entropy. With fewer than 4 classes, π3 and π4 are the last class there is.
 *
 * The gradient graph computes the same loss in-graph (model/gradient/backward.ts); this is the
 * independent reference its gradient is checked against, and what gradcheck differentiates.
 */

/** Classes of row `off` sorted by logit, largest first (ties: lower index first, as ArgMax). */
function topOrder(z: ArrayLike<number>, off: number, K: number, m: number): number[] {
  const picked: number[] = [];
  for (let j = 0; j < Math.min(m, K); j++) {
    let best = -1;
    for (let c = 0; c < K; c++) if (!picked.includes(c) && (best < 0 || z[off + c] > z[off + best])) best = c;
    picked.push(best);
  }
  while (picked.length < m) picked.push(picked[picked.length - 1]);
  return picked;
}

export function dlrTargeted(z: ArrayLike<number>, off: number, K: number, y: number, t: number): number {
  const [p1, , p3, p4] = topOrder(z, off, K, 4);
  const den = z[off + p1] - 0.5 * (z[off + p3] + z[off + p4]) + 1e-12;
  return -(z[off + y] - z[off + t]) / den;
}

/** d DLR_t / d z for one row (K values), away from ties in the order. */
export function dlrTargetedGrad(z: ArrayLike<number>, off: number, K: number, y: number, t: number): Float64Array {
  const [p1, , p3, p4] = topOrder(z, off, K, 4);
  const num = z[off + y] - z[off + t];
  const den = z[off + p1] - 0.5 * (z[off + p3] + z[off + p4]) + 1e-12;
  const g = new Float64Array(K);
  g[y] -= 1 / den;
  g[t] += 1 / den;
  const q = num / (den * den);
  g[p1] += q;
  g[p3] -= 0.5 * q;
  g[p4] -= 0.5 * q;
  return g;
}

/** The classes to target, AutoAttack's way: the `count` largest clean logits after the label's
 *  (for a correctly classified image, the 2nd, 3rd, … (count+1)-th largest). */
export function targetClasses(z: ArrayLike<number>, off: number, K: number, y: number, count: number): number[] {
  return topOrder(z, off, K, Math.min(K, count + 1)).filter((c) => c !== y).slice(0, Math.min(count, K - 1));
}
