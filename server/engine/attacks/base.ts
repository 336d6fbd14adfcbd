/**
 * The small base the attacks share (one attack per file, as Foolbox does): the gradient oracle
 * they call, batched and chunked; projection onto the ε-ball and the [0,1] pixel box; and the
 * check of a candidate against the model itself.
 *
 * Conventions, for every attack here:
 *   - Images are rows of a PixelBatch (pixel space, [0,1], N×C×H×W); each row has its own label
 *     and its own ε, so one call can attack many images at many ε at once.
 *   - Untargeted: a row is fooled when the model's top-1 is not its label.
 *   - The loss is ascended: cross-entropy −log p_y, the margin max_{j≠y} z_j − z_y, or (APGD-T)
 *     the targeted DLR loss (dlr.ts), which also takes a target class per row.
 *   - A returned adversarial x' satisfies, in exact arithmetic on the stored float32 values,
 *     0 ≤ x' ≤ 1 and ‖x' − x‖ ≤ ε (‖·‖∞ or ‖·‖₂): float32 rounding is corrected by one ulp where
 *     it would overshoot, so "inside the ball" holds exactly, not up to rounding.
 */
import { throwIfAborted } from '../errors';
import { argmax } from '../probes/probe';
import type { LoadedModel, PixelBatch } from '../types';

export type LossKind = 'ce' | 'margin' | 'dlr-targeted';
export type Norm = 'linf' | 'l2';

/** What the attacks need from the gradient model (model/gradient's GradientModel has it). */
export interface GradientOracle {
  lossAndGrad(
    batch: PixelBatch,
    labels: ArrayLike<number>,
    loss: LossKind,
    targets?: ArrayLike<number>,
  ): Promise<{ logits: Float32Array; loss: Float32Array; grad: Float32Array }>;
}

/** The scores-only view of a model the black-box attack uses. */
export type PredictFn = LoadedModel['predict'];

/** Pixels per row. */
export function rowSize(b: { channels: number; height: number; width: number }): number {
  return b.channels * b.height * b.width;
}

/** A batch made of some rows of `data` (row indices into it), with the shape of `like`. */
export function gatherRows(data: Float32Array, rows: ArrayLike<number>, like: Omit<PixelBatch, 'data' | 'n'>): PixelBatch {
  const D = rowSize(like);
  const out = new Float32Array(rows.length * D);
  for (let i = 0; i < rows.length; i++) out.set(data.subarray(rows[i] * D, (rows[i] + 1) * D), i * D);
  return { data: out, n: rows.length, channels: like.channels, height: like.height, width: like.width };
}

/** Default rows per gradient call: about 2M input values (256 rows of 28×28, 13 of 224×224×3). */
export function defaultGradRows(b: { channels: number; height: number; width: number }): number {
  return Math.max(1, Math.min(256, Math.floor((1 << 21) / rowSize(b))));
}

// ---------------------------------------------------------------------------------------------
// float32 exactness

const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);

/** The float32 nearest to v that lies in [lo, hi] (v itself within it; lo ≤ hi, lo ≥ 0, and a
 *  float32 lies in the interval: the unperturbed pixel always does). */
export function fitF32(v: number, lo: number, hi: number): number {
  let f = Math.fround(v);
  if (f > hi) {
    F[0] = f;
    U[0]--; // f > hi ≥ 0: one ulp down
    f = F[0];
  } else if (f < lo) {
    F[0] = f;
    U[0]++; // 0 ≤ f < lo: one ulp up
    f = F[0];
  }
  return f;
}

/**
 * Projects rows of `adv` in place onto {x' : ‖x' − x‖∞ ≤ ε_row, 0 ≤ x' ≤ 1}, where x is the
 * matching row of `orig` (`origRow(r)` maps an adv row to its orig row; default the same).
 * Values are read as doubles when `src` is given (the unrounded step), else from adv.
 */
export function projectLinf(
  adv: Float32Array,
  orig: Float32Array,
  D: number,
  eps: (row: number) => number,
  rows: ArrayLike<number>,
  origRow: (row: number) => number = (r) => r,
  src?: Float64Array,
): void {
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const e = eps(r);
    const a = r * D;
    const o = origRow(r) * D;
    const s = src ? i * D : a;
    const from = src ?? adv;
    for (let j = 0; j < D; j++) {
      const x = orig[o + j];
      const lo = Math.max(0, x - e);
      const hi = Math.min(1, x + e);
      const v = from[s + j];
      adv[a + j] = fitF32(v < lo ? lo : v > hi ? hi : v, lo, hi);
    }
  }
}

/**
 * Projects rows of `adv` in place onto {x' : ‖x' − x‖₂ ≤ ε_row, 0 ≤ x' ≤ 1}: δ is scaled back to
 * the ball, then x + δ is clipped to the box (clipping only shortens δ). If float32 rounding leaves
 * the stored δ a hair outside the ball, δ is shrunk until it is inside.
 */
export function projectL2(
  adv: Float32Array,
  orig: Float32Array,
  D: number,
  eps: (row: number) => number,
  rows: ArrayLike<number>,
  origRow: (row: number) => number = (r) => r,
  src?: Float64Array,
): void {
  const delta = new Float64Array(D);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const e = eps(r);
    const a = r * D;
    const o = origRow(r) * D;
    const s = src ? i * D : a;
    const from = src ?? adv;
    let n2 = 0;
    for (let j = 0; j < D; j++) {
      const d = from[s + j] - orig[o + j];
      delta[j] = d;
      n2 += d * d;
    }
    let scale = n2 > e * e ? e / Math.sqrt(n2) : 1;
    for (let attempt = 0; ; attempt++) {
      let got = 0;
      for (let j = 0; j < D; j++) {
        const x = orig[o + j];
        const v = Math.min(1, Math.max(0, x + delta[j] * scale));
        const f = fitF32(v, 0, 1);
        adv[a + j] = f;
        got += (f - x) * (f - x);
      }
      if (got <= e * e || attempt > 50) {
        if (got > e * e) adv.set(orig.subarray(o, o + D), a); // cannot happen in practice; stay safe
        break;
      }
      scale *= 1 - 1e-6 * 2 ** attempt;
    }
  }
}

/** ‖a_row − b_row‖∞ and ‖·‖₂, computed in doubles (what "inside the ball" means in tests). */
export function linfDistance(a: ArrayLike<number>, b: ArrayLike<number>, offA = 0, offB = 0, D = a.length): number {
  let m = 0;
  for (let j = 0; j < D; j++) m = Math.max(m, Math.abs(a[offA + j] - b[offB + j]));
  return m;
}

export function l2Distance(a: ArrayLike<number>, b: ArrayLike<number>, offA = 0, offB = 0, D = a.length): number {
  let s = 0;
  for (let j = 0; j < D; j++) s += (a[offA + j] - b[offB + j]) ** 2;
  return Math.sqrt(s);
}

// ---------------------------------------------------------------------------------------------
// gradients

/**
 * Loss gradients for some rows of `data` (which all share `like`'s shape), in chunks of at most
 * `maxRows` rows per call (`targets`, indexed like `labels`, for the targeted DLR loss). Returns
 * logits (rows × K), losses and gradients (rows × D) in the order of `rows`, with the gradient's sign fixed so that it always points up the attack's loss (for the
 * margin loss, the oracle's own sign convention is read off its logits).
 */
export async function gradRows(
  oracle: GradientOracle,
  data: Float32Array,
  rows: ArrayLike<number>,
  labels: ArrayLike<number>,
  like: Omit<PixelBatch, 'data' | 'n'>,
  loss: LossKind,
  maxRows: number,
  signal?: AbortSignal,
  targets?: ArrayLike<number>,
): Promise<{ logits: Float32Array; grad: Float32Array; K: number; loss: Float32Array }> {
  const D = rowSize(like);
  const grad = new Float32Array(rows.length * D);
  const lossOut = new Float32Array(rows.length);
  let logits = new Float32Array(0);
  let K = 0;
  for (let start = 0; start < rows.length; start += maxRows) {
    throwIfAborted(signal);
    const chunk = Array.from({ length: Math.min(maxRows, rows.length - start) }, (_, i) => rows[start + i]);
    const batch = gatherRows(data, chunk, like);
    const y = chunk.map((r) => labels[r]);
    const out = targets ? await oracle.lossAndGrad(batch, y, loss, chunk.map((r) => targets[r])) : await oracle.lossAndGrad(batch, y, loss);
    if (K === 0) {
      K = out.logits.length / chunk.length;
      logits = new Float32Array(rows.length * K);
    }
    logits.set(out.logits, start * K);
    for (let i = 0; i < chunk.length; i++) {
      const g = out.grad.subarray(i * D, (i + 1) * D);
      const flip = loss === 'margin' && marginIsNegated(out.logits, i * K, K, y[i], out.loss[i]);
      lossOut[start + i] = flip ? -out.loss[i] : out.loss[i];
      if (flip) for (let j = 0; j < D; j++) grad[(start + i) * D + j] = -g[j];
      else grad.set(g, (start + i) * D);
    }
  }
  return { logits, grad, K, loss: lossOut };
}

/** max_{j≠y} z_j − z_y: positive when the row is misclassified. */
export function margin(logits: ArrayLike<number>, offset: number, K: number, y: number): number {
  let other = -Infinity;
  for (let c = 0; c < K; c++) if (c !== y && logits[offset + c] > other) other = logits[offset + c];
  return other - logits[offset + y];
}

/** Whether the oracle reports the margin as z_y − max_{j≠y} z_j (CW's f) rather than its negation. */
function marginIsNegated(logits: Float32Array, offset: number, K: number, y: number, reported: number): boolean {
  const m = margin(logits, offset, K, y);
  return Math.abs(reported + m) < Math.abs(reported - m);
}

/** Top-1 of row i of a logits/probability array with K columns. */
export function top1(values: ArrayLike<number>, i: number, K: number): number {
  return argmax(values, i * K, K);
}

// ---------------------------------------------------------------------------------------------
// checking candidates against the model

export interface Verdict {
  /** Top-1 and its probability, per row. */
  pred: Int32Array;
  conf: Float32Array;
  /** 1 where the top-1 is not the row's label. */
  fooled: Uint8Array;
}

/** Runs candidate rows through the model (the judge of success for every attack). */
export async function verdict(predict: PredictFn, batch: PixelBatch, labels: ArrayLike<number>): Promise<Verdict> {
  const out = await predict(batch);
  const K = out.numClasses;
  const pred = new Int32Array(batch.n);
  const conf = new Float32Array(batch.n);
  const fooled = new Uint8Array(batch.n);
  for (let i = 0; i < batch.n; i++) {
    const p = argmax(out.probs, i * K, K);
    pred[i] = p;
    conf[i] = out.probs[i * K + p];
    fooled[i] = p !== labels[i] ? 1 : 0;
  }
  return { pred, conf, fooled };
}

/** ε per row from a scalar or a list. */
export function epsOf(eps: number | ArrayLike<number>): (row: number) => number {
  return typeof eps === 'number' ? () => eps : (r) => eps[r];
}
