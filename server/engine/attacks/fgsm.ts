/**
 * FGSM, the fast gradient sign method (Goodfellow, Shlens & Szegedy, ICLR 2015): one step of
 * size ε along the sign of the loss gradient at the clean image, clipped to [0,1]:
 *
 *     x' = clip_[0,1](x + ε · sign(∇ₓ L(x, y)))
 *
 * The gradient is taken once per image and reused for every ε asked for.
 */
import type { PixelBatch } from '../types';
import { defaultGradRows, gradRows, projectLinf, rowSize, type GradientOracle, type LossKind } from './base';

export interface FgsmOptions {
  loss?: LossKind;
  /** Rows per gradient call (default: about 2M input values). */
  maxRows?: number;
  signal?: AbortSignal;
}

/**
 * Adversarial candidates for each image of `batch` at each ε of `eps`: n·E rows, image-major
 * (row i·E + k is image i at eps[k]).
 */
export async function fgsm(
  oracle: GradientOracle,
  batch: PixelBatch,
  labels: ArrayLike<number>,
  eps: number[],
  opts: FgsmOptions = {},
): Promise<Float32Array> {
  const D = rowSize(batch);
  const E = eps.length;
  const rows = Array.from({ length: batch.n }, (_, i) => i);
  const { grad } = await gradRows(oracle, batch.data, rows, labels, batch, opts.loss ?? 'ce', opts.maxRows ?? defaultGradRows(batch), opts.signal);
  const adv = new Float32Array(batch.n * E * D);
  const step = new Float64Array(batch.n * E * D);
  for (let i = 0; i < batch.n; i++) {
    for (let k = 0; k < E; k++) {
      const o = (i * E + k) * D;
      for (let j = 0; j < D; j++) step[o + j] = batch.data[i * D + j] + eps[k] * Math.sign(grad[i * D + j]);
    }
  }
  const all = Array.from({ length: batch.n * E }, (_, r) => r);
  projectLinf(adv, batch.data, D, (r) => eps[r % E], all, (r) => Math.floor(r / E), step);
  return adv;
}
