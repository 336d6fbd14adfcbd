/**
 * PGD, projected gradient descent on the loss (Madry et al., ICLR 2018), in L∞ and L2, with a
 * random start, untargeted:
 *
 *     x⁰ = x + uniform random point of the ε-ball (then clipped to [0,1])
 *     xᵗ⁺¹ = Π(xᵗ + α · s(∇ L(xᵗ, y)))       s = sign (L∞) or g/‖g‖₂ (L2)
 *
 * where Π projects onto the ε-ball around x and then clips to [0,1] (for L2, clipping after the
 * ball projection stays in the ball). Defaults [20 steps, α = 2.5·ε/steps]: from any start inside
 * the ball, 2.5 ball radii of travel reach any other point of it (Madry et al. use the same
 * rule of thumb). Each row has its own ε and random stream, so a batch holding many images at
 * many ε gives each row exactly what it would get alone.
 *
 * Early stop: a row stops at the first iterate the gradient model's logits call misclassified
 * (and keeps that iterate); the others run all steps. The model itself judges the result (see
 * base.verdict): this function only proposes candidates.
 */
import { throwIfAborted } from '../errors';
import { gaussian } from '../random';
import type { PixelBatch } from '../types';
import {
  defaultGradRows, epsOf, gradRows, projectL2, projectLinf, rowSize, top1, type GradientOracle, type LossKind, type Norm,
} from './base';

export interface PgdOptions {
  norm: Norm;
  /** ε, for all rows or per row. */
  eps: number | ArrayLike<number>;
  steps?: number;
  /** α = stepFactor · ε / steps. */
  stepFactor?: number;
  /** Default true; needs `rngs`. */
  randomStart?: boolean;
  /** One random stream per row (random start only). */
  rngs?: Array<() => number>;
  loss?: LossKind;
  /** Stop a row at its first misclassified iterate (default true). */
  earlyStop?: boolean;
  maxRows?: number;
  signal?: AbortSignal;
}

export interface PgdResult {
  /** The candidates, one row per input row. */
  adv: Float32Array;
  /** Gradient steps taken per row (0 when the random start already fooled the model). */
  steps: Int32Array;
  /** Rows the gradient model's logits saw misclassified (early-stopped). */
  stopped: Uint8Array;
}

export const PGD_DEFAULTS = { steps: 20, stepFactor: 2.5 };

/** The random start: a uniform point of the ε-ball around row r, before clipping. */
export function randomStart(x: Float32Array, r: number, D: number, eps: number, norm: Norm, rng: () => number, out: Float64Array, at: number): void {
  if (norm === 'linf') {
    for (let j = 0; j < D; j++) out[at + j] = x[r * D + j] + eps * (2 * rng() - 1);
    return;
  }
  // Uniform in the L2 ball: a Gaussian direction, radius ε·u^(1/D).
  const g = new Float64Array(D);
  let n2 = 0;
  for (let j = 0; j < D; j++) {
    g[j] = gaussian(rng);
    n2 += g[j] * g[j];
  }
  const radius = eps * rng() ** (1 / D);
  const s = n2 > 0 ? radius / Math.sqrt(n2) : 0;
  for (let j = 0; j < D; j++) out[at + j] = x[r * D + j] + g[j] * s;
}

export async function pgd(
  oracle: GradientOracle,
  batch: PixelBatch,
  labels: ArrayLike<number>,
  opts: PgdOptions,
): Promise<PgdResult> {
  const D = rowSize(batch);
  const n = batch.n;
  const eps = epsOf(opts.eps);
  const steps = opts.steps ?? PGD_DEFAULTS.steps;
  const factor = opts.stepFactor ?? PGD_DEFAULTS.stepFactor;
  const loss = opts.loss ?? 'ce';
  const earlyStop = opts.earlyStop ?? true;
  const maxRows = opts.maxRows ?? defaultGradRows(batch);
  const project = opts.norm === 'linf' ? projectLinf : projectL2;
  const x = batch.data;
  const adv = new Float32Array(x);
  const all = Array.from({ length: n }, (_, i) => i);

  if (opts.randomStart ?? true) {
    if (!opts.rngs || opts.rngs.length < n) throw new RangeError('pgd: a random start needs one random stream per row');
    const start = new Float64Array(n * D);
    for (let r = 0; r < n; r++) randomStart(x, r, D, eps(r), opts.norm, opts.rngs[r], start, r * D);
    project(adv, x, D, eps, all, undefined, start);
  }

  const taken = new Int32Array(n);
  const stopped = new Uint8Array(n);
  let active = all;
  for (let t = 0; t < steps && active.length; t++) {
    throwIfAborted(opts.signal);
    const { logits, grad, K } = await gradRows(oracle, adv, active, labels, batch, loss, maxRows, opts.signal);
    const next: number[] = [];
    const moved: number[] = [];
    const step = new Float64Array(active.length * D);
    for (let i = 0; i < active.length; i++) {
      const r = active[i];
      if (earlyStop && top1(logits, i, K) !== labels[r]) {
        stopped[r] = 1;
        continue;
      }
      const alpha = (factor * eps(r)) / steps;
      const g = grad.subarray(i * D, (i + 1) * D);
      const o = moved.length * D;
      if (opts.norm === 'linf') {
        for (let j = 0; j < D; j++) step[o + j] = adv[r * D + j] + alpha * Math.sign(g[j]);
      } else {
        let n2 = 0;
        for (let j = 0; j < D; j++) n2 += g[j] * g[j];
        const s = n2 > 0 ? alpha / Math.sqrt(n2) : 0;
        for (let j = 0; j < D; j++) step[o + j] = adv[r * D + j] + s * g[j];
      }
      moved.push(r);
      taken[r]++;
      next.push(r);
    }
    project(adv, x, D, eps, moved, undefined, step);
    active = next;
  }
  return { adv, steps: taken, stopped };
}
