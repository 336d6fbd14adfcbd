/**
 * Per-image minimal ε by bisection over an attack (PGD L∞ in the probe). The caller brackets
 * each image: `hi`, an ε at which the attack found an adversarial (the smallest grid ε that
 * broke it), and `lo`, one below it at which nothing did (the grid ε before it, or 0). Each step
 * attacks every image still bisecting at the midpoint of its bracket, in one batched call, and
 * keeps the half that contains the boundary: success ⇒ hi = mid, failure ⇒ lo = mid.
 *
 * After s steps the bracket is (hi − lo)/2ˢ wide: with the default 7 steps, 1/128 of the grid
 * gap, e.g. 0.03/255 between 4/255 and 8/255, 0.008/255 below 1/255. The result is `hi`: an ε at
 * which an adversarial was actually found (an upper bound on the true minimal ε; a stronger
 * attack can only lower it). Attacks are not monotone in ε in general (random starts differ), so
 * the bracket is a heuristic; that is why the answer is always an ε with a witness.
 */
import { throwIfAborted } from '../errors';

export interface BisectionStep<W> {
  /** Whether the attack succeeded at eps[i] for the i-th of `rows`, with what it found. */
  (rows: number[], eps: number[]): Promise<Array<{ success: boolean; witness?: W }>>;
}

export interface BisectionResult<W> {
  lo: Float64Array;
  hi: Float64Array;
  /** What the attack returned at each row's final hi (undefined where no step succeeded: the
   *  caller's witness for the initial hi stands). */
  witness: Array<W | undefined>;
  /** Attack calls per row. */
  calls: Int32Array;
}

export const BISECTION_DEFAULT_STEPS = 7;

/**
 * Bisects every row whose bracket is given (hi > lo ≥ 0, finite); rows with hi = NaN are left
 * alone. All rows advance together, one `attackAt` call per step.
 */
export async function bisectMinimalEps<W>(
  lo: ArrayLike<number>,
  hi: ArrayLike<number>,
  steps: number,
  attackAt: BisectionStep<W>,
  signal?: AbortSignal,
): Promise<BisectionResult<W>> {
  const n = lo.length;
  const L = Float64Array.from(lo);
  const H = Float64Array.from(hi);
  const witness: Array<W | undefined> = new Array(n).fill(undefined);
  const calls = new Int32Array(n);
  const rows = Array.from({ length: n }, (_, i) => i).filter((i) => Number.isFinite(H[i]) && H[i] > L[i]);
  for (let s = 0; s < steps && rows.length; s++) {
    throwIfAborted(signal);
    const mids = rows.map((i) => (L[i] + H[i]) / 2);
    const out = await attackAt(rows, mids);
    rows.forEach((i, k) => {
      calls[i]++;
      if (out[k].success) {
        H[i] = mids[k];
        witness[i] = out[k].witness;
      } else L[i] = mids[k];
    });
  }
  return { lo: L, hi: H, witness, calls };
}
