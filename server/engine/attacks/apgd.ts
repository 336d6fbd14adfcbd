/**
 * APGD, Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an
 * ensemble of diverse parameter-free attacks"), in L∞ and L2: PGD with momentum whose step size
 * is halved by a rule instead of being fixed, so it needs no tuning. Per row, with loss f
 * (cross-entropy for APGD-CE, the targeted DLR loss of dlr.ts for APGD-T), N iterations and ε:
 *
 *   x⁰   = Π(x + ε·t/‖t‖)     t uniform in [−1,1]ᴰ (L∞, ‖·‖∞) or Gaussian (L2, ‖·‖₂)
 *   η    = 2ε
 *   z    = Π(xᵏ + η·s(∇f(xᵏ)))                       s = sign (L∞) or g/‖g‖₂ (L2)
 *   xᵏ⁺¹ = Π(xᵏ + a·(z − xᵏ) + (1 − a)·(xᵏ − xᵏ⁻¹))   a = 1 at the first step, then 0.75
 *
 * Π projects onto the ε-ball around x and the [0,1] box (base.ts). At checkpoints w₁ < w₂ < …
 * (StepSizeSchedule) the step is halved when either
 *   1. at most ρ = 0.75 of the steps since the last checkpoint raised the loss, or
 *   2. the step was not halved at the last checkpoint and the best loss has not improved since;
 * a halved row restarts from its best point so far (the highest loss, and its gradient).
 *
 * Each iteration costs one gradient call (a forward and a backward pass) per row, like a PGD step;
 * N iterations cost N + 1 calls (the start point is evaluated too). A row stops at its first
 * iterate the gradient model's logits misclassify and keeps it (the model itself judges the
 * result, base.verdict); the others run every iteration and return their best point. Restarts
 * attack again, from a new random start, only the rows not fooled yet. Every row has its own ε
 * and random stream, so a row gets what it would get alone, whatever else is in the batch.
 *
 * Differences from the reference implementation (fra31/auto-attack), all per the paper: the
 * first window's "the loss rose" count compares the first step with the start point (the
 * reference compares it with 0), and rows leave the batch once fooled (the reference keeps them;
 * it changes no outcome).
 */
import { throwIfAborted } from '../errors';
import { gaussian } from '../random';
import type { PixelBatch } from '../types';
import {
  defaultGradRows, epsOf, gradRows, projectL2, projectLinf, rowSize, top1, type GradientOracle, type Norm,
} from './base';
import { targetClasses } from './dlr';

export const APGD_DEFAULTS = { steps: 100, restarts: 1, rho: 0.75, targets: 9 };

/**
 * The checkpoint windows of the step-size rule for `nIter` iterations: the first is 22% of the
 * iterations, each next one 3% shorter, down to 6% (the paper's p_{j+1} = p_j + max(p_j − p_{j−1}
 * − 0.03, 0.06), with the reference's integer rounding). Returns the iteration counts at which
 * the rule is checked, e.g. 22, 41, 57, 70, 80, 87, 93, 99 for 100 iterations.
 */
export function apgdCheckpoints(nIter: number): number[] {
  const { first, min, decr } = windows(nIter);
  const out: number[] = [];
  let at = 0;
  for (let k = first; at + k <= nIter; k = Math.max(k - decr, min)) out.push((at += k));
  return out;
}

function windows(nIter: number): { first: number; min: number; decr: number } {
  return { first: Math.max(Math.floor(0.22 * nIter), 1), min: Math.max(Math.floor(0.06 * nIter), 1), decr: Math.max(Math.floor(0.03 * nIter), 1) };
}

/**
 * The step-size rule for one row, on plain numbers: feed it the loss after each iteration; it
 * says whether the loss improved on the best so far (the caller keeps that point) and whether the
 * step was halved at this iteration (the caller goes back to the best point).
 */
export class StepSizeSchedule {
  /** The current step size η. */
  step: number;
  /** The highest loss seen, the start point's included. */
  best: number;
  private readonly min: number;
  private readonly decr: number;
  private window: number;
  private count = 0;
  private rises = 0;
  private prev: number;
  private bestAtCheck: number;
  private halvedAtCheck = true; // as the reference: condition 2 cannot fire at the first checkpoint

  constructor(nIter: number, step0: number, startLoss: number, private readonly rho = APGD_DEFAULTS.rho) {
    const w = windows(nIter);
    this.window = w.first;
    this.min = w.min;
    this.decr = w.decr;
    this.step = step0;
    this.prev = startLoss;
    this.best = startLoss;
    this.bestAtCheck = startLoss;
  }

  record(loss: number): { improved: boolean; halved: boolean } {
    if (loss > this.prev) this.rises++;
    this.prev = loss;
    const improved = loss > this.best;
    if (improved) this.best = loss;
    let halved = false;
    if (++this.count === this.window) {
      const oscillating = this.rises <= this.window * this.rho; // condition 1
      const stalled = !this.halvedAtCheck && this.bestAtCheck >= this.best; // condition 2
      halved = oscillating || stalled;
      if (halved) this.step /= 2;
      this.halvedAtCheck = halved;
      this.bestAtCheck = this.best;
      this.window = Math.max(this.window - this.decr, this.min);
      this.count = 0;
      this.rises = 0;
    }
    return { improved, halved };
  }
}

export interface ApgdOptions {
  norm: Norm;
  /** ε, for all rows or per row. */
  eps: number | ArrayLike<number>;
  /** Iterations N per restart (default 100). */
  steps?: number;
  /** Random restarts (default 1), each on the rows not fooled yet. */
  restarts?: number;
  /** 'ce' (APGD-CE) or 'dlr-targeted' (with `targets`). */
  loss?: 'ce' | 'dlr-targeted';
  /** Target class per row, for the targeted DLR loss. */
  targets?: ArrayLike<number>;
  /** Only these rows are attacked (default all); the others come back unchanged. */
  rows?: ArrayLike<number>;
  rho?: number;
  /** One random stream per row. */
  rngs: Array<() => number>;
  maxRows?: number;
  signal?: AbortSignal;
  /** Called after each iteration of each row (tests and traces). */
  onIteration?: (e: { row: number; iteration: number; loss: number; step: number; halved: boolean }) => void;
}

export interface ApgdResult {
  /** The candidates: the first misclassified iterate, else the highest-loss point. */
  adv: Float32Array;
  /** Rows the gradient model's logits saw misclassified. */
  stopped: Uint8Array;
  /** Gradient calls per row (N + 1 per restart at most). */
  gradCalls: Int32Array;
}

export async function apgd(oracle: GradientOracle, batch: PixelBatch, labels: ArrayLike<number>, opts: ApgdOptions): Promise<ApgdResult> {
  const D = rowSize(batch);
  const n = batch.n;
  const eps = epsOf(opts.eps);
  const nIter = Math.max(1, Math.floor(opts.steps ?? APGD_DEFAULTS.steps));
  const restarts = Math.max(1, Math.floor(opts.restarts ?? APGD_DEFAULTS.restarts));
  const loss = opts.loss ?? 'ce';
  const rho = opts.rho ?? APGD_DEFAULTS.rho;
  const maxRows = opts.maxRows ?? defaultGradRows(batch);
  const project = opts.norm === 'linf' ? projectLinf : projectL2;
  if (opts.rngs.length < n) throw new RangeError('apgd: one random stream per row');
  if (loss === 'dlr-targeted' && (!opts.targets || opts.targets.length < n)) throw new RangeError('apgd: the targeted DLR loss needs a target per row');
  const targets = loss === 'dlr-targeted' ? opts.targets : undefined;
  const x = batch.data;
  const adv = new Float32Array(x);
  const cur = new Float32Array(x);
  const old = new Float32Array(n * D);
  const best = new Float32Array(n * D);
  const grad = new Float32Array(n * D);
  const gradBest = new Float32Array(n * D);
  const stopped = new Uint8Array(n);
  const gradCalls = new Int32Array(n);
  const sched: StepSizeSchedule[] = new Array(n);
  const rowsAll = opts.rows ? Array.from(opts.rows) : Array.from({ length: n }, (_, i) => i);

  /** Gradients at `cur` for `rows`: copies them into grad, marks fooled rows; returns the losses. */
  const evaluate = async (rows: number[]): Promise<Float32Array> => {
    const out = await gradRows(oracle, cur, rows, labels, batch, loss, maxRows, opts.signal, targets);
    rows.forEach((r, i) => {
      gradCalls[r]++;
      grad.set(out.grad.subarray(i * D, (i + 1) * D), r * D);
      if (top1(out.logits, i, out.K) !== labels[r]) {
        stopped[r] = 1;
        adv.set(cur.subarray(r * D, (r + 1) * D), r * D);
      }
    });
    return out.loss;
  };

  for (let restart = 0; restart < restarts; restart++) {
    let active = rowsAll.filter((r) => !stopped[r]);
    if (!active.length) break;
    throwIfAborted(opts.signal);
    // the random start: a point on the sphere of radius ε (‖·‖∞ or ‖·‖₂), then Π
    const start = new Float64Array(active.length * D);
    active.forEach((r, i) => {
      const rng = opts.rngs[r];
      const t = new Float64Array(D);
      let norm = 0;
      for (let j = 0; j < D; j++) {
        t[j] = opts.norm === 'linf' ? 2 * rng() - 1 : gaussian(rng);
        norm = opts.norm === 'linf' ? Math.max(norm, Math.abs(t[j])) : norm + t[j] * t[j];
      }
      const s = eps(r) / ((opts.norm === 'linf' ? norm : Math.sqrt(norm)) + 1e-12);
      for (let j = 0; j < D; j++) start[i * D + j] = x[r * D + j] + s * t[j];
    });
    project(cur, x, D, eps, active, undefined, start);
    const l0 = await evaluate(active);
    active.forEach((r, i) => {
      sched[r] = new StepSizeSchedule(nIter, 2 * eps(r), l0[i], rho);
      const a = r * D;
      old.set(cur.subarray(a, a + D), a);
      best.set(cur.subarray(a, a + D), a);
      gradBest.set(grad.subarray(a, a + D), a);
    });
    active = active.filter((r) => !stopped[r]);

    for (let it = 0; it < nIter && active.length; it++) {
      throwIfAborted(opts.signal);
      const a = it > 0 ? 0.75 : 1;
      const z = new Float64Array(D);
      const next = new Float64Array(active.length * D);
      for (let i = 0; i < active.length; i++) {
        const r = active[i];
        const o = r * D;
        const e = eps(r);
        const eta = sched[r].step;
        // z = Π(xᵏ + η·s(g)), in float64
        if (opts.norm === 'linf') {
          for (let j = 0; j < D; j++) {
            const lo = Math.max(0, x[o + j] - e);
            const hi = Math.min(1, x[o + j] + e);
            z[j] = Math.min(hi, Math.max(lo, cur[o + j] + eta * Math.sign(grad[o + j])));
          }
        } else {
          let g2 = 0;
          for (let j = 0; j < D; j++) g2 += grad[o + j] * grad[o + j];
          const s = eta / (Math.sqrt(g2) + 1e-12);
          for (let j = 0; j < D; j++) z[j] = cur[o + j] + s * grad[o + j];
          ballBox(z, x, o, D, e);
        }
        // xᵏ⁺¹ = Π(xᵏ + a(z − xᵏ) + (1 − a)(xᵏ − xᵏ⁻¹)); Π below, exact in float32
        for (let j = 0; j < D; j++) next[i * D + j] = cur[o + j] + a * (z[j] - cur[o + j]) + (1 - a) * (cur[o + j] - old[o + j]);
        old.set(cur.subarray(o, o + D), o);
      }
      project(cur, x, D, eps, active, undefined, next);
      const losses = await evaluate(active);
      const still: number[] = [];
      active.forEach((r, i) => {
        if (stopped[r]) return;
        const { improved, halved } = sched[r].record(losses[i]);
        const o = r * D;
        if (improved) {
          best.set(cur.subarray(o, o + D), o);
          gradBest.set(grad.subarray(o, o + D), o);
        }
        if (halved) {
          cur.set(best.subarray(o, o + D), o);
          grad.set(gradBest.subarray(o, o + D), o);
        }
        opts.onIteration?.({ row: r, iteration: it, loss: losses[i], step: sched[r].step, halved });
        still.push(r);
      });
      active = still;
    }
    for (const r of rowsAll) if (!stopped[r] && sched[r]) adv.set(best.subarray(r * D, (r + 1) * D), r * D);
  }
  return { adv, stopped, gradCalls };
}

/** In place: z − x scaled into the L2 ball of radius ε, then clipped to [0,1] (float64). */
function ballBox(z: Float64Array, x: Float32Array, o: number, D: number, e: number): void {
  let n2 = 0;
  for (let j = 0; j < D; j++) n2 += (z[j] - x[o + j]) ** 2;
  const s = n2 > e * e ? e / Math.sqrt(n2) : 1;
  for (let j = 0; j < D; j++) z[j] = Math.min(1, Math.max(0, x[o + j] + (z[j] - x[o + j]) * s));
}

export interface ApgdTargetedOptions extends Omit<ApgdOptions, 'loss' | 'targets'> {
  /** Target classes per image (default 9): the largest clean logits after the label's. */
  targetCount?: number;
  /** Clean logits per row (K each); default: one gradient call at the clean images. */
  cleanLogits?: Float32Array;
  /** Called before each target class's run with the rows it attacks. */
  onTarget?: (k: number, rows: number) => void;
}

/**
 * APGD-T: targeted APGD on the DLR loss, once per target class (the 2nd, 3rd, … largest clean
 * logits), each run on the rows no earlier run fooled.
 */
export async function apgdTargeted(oracle: GradientOracle, batch: PixelBatch, labels: ArrayLike<number>, opts: ApgdTargetedOptions): Promise<ApgdResult> {
  const D = rowSize(batch);
  const n = batch.n;
  const count = Math.max(1, Math.floor(opts.targetCount ?? APGD_DEFAULTS.targets));
  const rowsAll = opts.rows ? Array.from(opts.rows) : Array.from({ length: n }, (_, i) => i);
  let z = opts.cleanLogits;
  let K = z ? z.length / n : 0;
  if (!z) {
    const out = await gradRows(oracle, batch.data, rowsAll, labels, batch, 'ce', opts.maxRows ?? defaultGradRows(batch), opts.signal);
    K = out.K;
    z = new Float32Array(n * K);
    rowsAll.forEach((r, i) => z!.set(out.logits.subarray(i * K, (i + 1) * K), r * K));
  }
  const lists = new Map<number, number[]>();
  for (const r of rowsAll) lists.set(r, targetClasses(z, r * K, K, labels[r], count));
  const adv = new Float32Array(batch.data);
  const stopped = new Uint8Array(n);
  const gradCalls = new Int32Array(n);
  const targets = new Int32Array(n);
  for (let k = 0; k < count; k++) {
    const rows = rowsAll.filter((r) => !stopped[r] && lists.get(r)!.length > k);
    if (!rows.length) break;
    for (const r of rows) targets[r] = lists.get(r)![k];
    opts.onTarget?.(k, rows.length);
    const res = await apgd(oracle, batch, labels, { ...opts, loss: 'dlr-targeted', targets, rows });
    for (const r of rows) {
      gradCalls[r] += res.gradCalls[r];
      // a fooled row keeps its adversarial; the others keep the last run's best point
      adv.set(res.adv.subarray(r * D, (r + 1) * D), r * D);
      if (res.stopped[r]) stopped[r] = 1;
    }
  }
  return { adv, stopped, gradCalls };
}
