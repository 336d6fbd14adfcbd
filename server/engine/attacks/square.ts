/**
 * Square Attack, L∞, untargeted (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, "Square
 * Attack: a query-efficient black-box adversarial attack via random search"). Scores only: it
 * calls the model's predict and reads the logits (log-probabilities for a probability output,
 * which rank the same). Per row:
 *
 *   init   x̂ = clip(x + δ), δ vertical stripes: ±ε drawn per channel and column (1 query).
 *   loop   s = round(√(p·H·W)) clamped to [1, min(H,W) − 1], p from the paper's schedule;
 *          a random s×s window of δ is set to ±ε, one sign per channel (redrawn if it would change
 *          nothing); the candidate clip(x + δ') is kept when it lowers the margin loss
 *          z_y − max_{j≠y} z_j; 1 query each.
 *   stop   when the model's top-1 is not the label (success), or the budget is spent.
 *
 * The schedule for p is the reference code's piecewise-constant one, rescaled to the budget
 * (iteration i counts as i·10000/budget): p_init, halved after 10, 50, 200, 500, 1000, 2000, 4000,
 * 6000 and 8000 (rescaled) iterations. p_init defaults to 0.8, AutoAttack's setting for its Square
 * component (Croce & Hein, ICML 2020); the paper's ImageNet runs used 0.05.
 * Queries count model evaluations of the row: the initial stripes and one per iteration (the
 * clean prediction, which the caller already has, is not counted).
 */
import { throwIfAborted } from '../errors';
import type { PixelBatch } from '../types';
import { epsOf, fitF32, margin, rowSize, top1, type PredictFn } from './base';

export interface SquareOptions {
  eps: number | ArrayLike<number>;
  /** Query budget per row, the initialisation included (default 1000). */
  queries?: number;
  /** Initial fraction of pixels in the square (default 0.8). */
  pInit?: number;
  /** One random stream per row. */
  rngs: Array<() => number>;
  signal?: AbortSignal;
}

export interface SquareResult {
  /** Best candidate per row (the adversarial where it succeeded). */
  adv: Float32Array;
  success: Uint8Array;
  /** Model evaluations per row. */
  queries: Int32Array;
  /** Top-1 and its probability at `adv`. */
  pred: Int32Array;
  conf: Float32Array;
}

export const SQUARE_DEFAULTS = { queries: 1000, pInit: 0.8 };

/** The paper's piecewise-constant schedule for p, rescaled to `budget` iterations. */
export function pSelection(pInit: number, it: number, budget: number): number {
  const i = Math.floor((it / budget) * 10000);
  const steps = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, 10000];
  if (i <= 10 || i > 10000) return pInit;
  for (let k = 1; k < steps.length; k++) if (i <= steps[k]) return pInit / 2 ** k;
  return pInit;
}

export async function squareLinf(predict: PredictFn, batch: PixelBatch, labels: ArrayLike<number>, opts: SquareOptions): Promise<SquareResult> {
  const { n, channels: C, height: H, width: W } = batch;
  const D = rowSize(batch);
  const HW = H * W;
  const eps = epsOf(opts.eps);
  const budget = Math.max(1, Math.floor(opts.queries ?? SQUARE_DEFAULTS.queries));
  const pInit = opts.pInit ?? SQUARE_DEFAULTS.pInit;
  const x = batch.data;
  if (opts.rngs.length < n) throw new RangeError('square: one random stream per row');

  // Initialisation: vertical stripes of ±ε per channel and column.
  const adv = new Float32Array(n * D);
  for (let r = 0; r < n; r++) {
    const e = eps(r);
    const rng = opts.rngs[r];
    for (let c = 0; c < C; c++) {
      for (let w = 0; w < W; w++) {
        const d = rng() < 0.5 ? -e : e;
        for (let h = 0; h < H; h++) {
          const j = c * HW + h * W + w;
          const v = x[r * D + j];
          const lo = Math.max(0, v - e);
          const hi = Math.min(1, v + e);
          adv[r * D + j] = fitF32(Math.min(hi, Math.max(lo, v + d)), lo, hi);
        }
      }
    }
  }
  const first = await predict({ ...batch, data: adv });
  const K = first.numClasses;
  const best = new Float64Array(n);
  const success = new Uint8Array(n);
  const queries = new Int32Array(n).fill(1);
  const pred = new Int32Array(n);
  const conf = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    best[r] = -margin(first.logits, r * K, K, labels[r]);
    pred[r] = top1(first.probs, r, K);
    conf[r] = first.probs[r * K + pred[r]];
    success[r] = pred[r] !== labels[r] ? 1 : 0;
  }

  const maxSide = Math.max(1, Math.min(H, W) - 1);
  for (let it = 0; it < budget - 1; it++) {
    const active: number[] = [];
    for (let r = 0; r < n; r++) if (!success[r] && queries[r] < budget) active.push(r);
    if (!active.length) break;
    throwIfAborted(opts.signal);
    const p = pSelection(pInit, it, budget);
    const s = Math.min(maxSide, Math.max(1, Math.round(Math.sqrt(p * HW))));
    const cand = new Float32Array(active.length * D);
    active.forEach((r, i) => {
      const e = eps(r);
      const rng = opts.rngs[r];
      const row = cand.subarray(i * D, (i + 1) * D);
      row.set(adv.subarray(r * D, (r + 1) * D));
      const top = Math.floor(rng() * (H - s + 1));
      const left = Math.floor(rng() * (W - s + 1));
      // Draw signs until the window changes (the reference code redraws the same way); one
      // sign per channel, and with C channels at most 2^C draws can repeat the current window.
      for (let attempt = 0; attempt < 16; attempt++) {
        let changed = false;
        for (let c = 0; c < C; c++) {
          const d = rng() < 0.5 ? -e : e;
          for (let h = top; h < top + s; h++) {
            for (let w = left; w < left + s; w++) {
              const j = c * HW + h * W + w;
              const v = x[r * D + j];
              const lo = Math.max(0, v - e);
              const hi = Math.min(1, v + e);
              const f = fitF32(Math.min(hi, Math.max(lo, v + d)), lo, hi);
              if (f !== adv[r * D + j]) changed = true;
              row[j] = f;
            }
          }
        }
        if (changed) break;
      }
    });
    const out = await predict({ data: cand, n: active.length, channels: C, height: H, width: W });
    active.forEach((r, i) => {
      queries[r]++;
      const loss = -margin(out.logits, i * K, K, labels[r]);
      if (loss < best[r]) {
        best[r] = loss;
        adv.set(cand.subarray(i * D, (i + 1) * D), r * D);
        pred[r] = top1(out.probs, i, K);
        conf[r] = out.probs[i * K + pred[r]];
        if (pred[r] !== labels[r]) success[r] = 1;
      }
    });
  }
  return { adv, success, queries, pred, conf };
}
