/**
 * The model's scores: choosing the output, telling logits from probabilities numerically, and
 * turning raw rows into logits + softmax probabilities.
 */
import type { OutputKind } from '../types';

/**
 * Decides the kind from raw rows (n×K). Every row must agree: rows in [0,1] summing to 1 →
 * probabilities; rows ≤ 0 with logsumexp ≈ 0 → log-probabilities; otherwise logits. The sum
 * tolerance (1e-2) allows for the rounding of a quantized softmax (K steps of ≤ scale/2).
 */
export function detectKind(raw: Float32Array, n: number, K: number): OutputKind {
  let probs = true;
  let logProbs = true;
  for (let r = 0; r < n && (probs || logProbs); r++) {
    const o = r * K;
    let sum = 0;
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      const v = raw[o + k];
      if (!Number.isFinite(v)) return 'logits';
      if (v < -1e-4 || v > 1 + 1e-4) probs = false;
      if (v > 1e-4) logProbs = false;
      sum += v;
      if (v > max) max = v;
    }
    if (Math.abs(sum - 1) > 1e-2) probs = false;
    if (logProbs) {
      let s = 0;
      for (let k = 0; k < K; k++) s += Math.exp(raw[o + k] - max);
      if (Math.abs(max + Math.log(s)) > 1e-2) logProbs = false;
    }
  }
  if (probs) return 'probabilities';
  if (logProbs) return 'log-probabilities';
  return 'logits';
}

/** Whether rows are consistent with a kind the graph claims (a Softmax over the wrong axis is not). */
export function consistentWith(kind: OutputKind, raw: Float32Array, n: number, K: number): boolean {
  if (kind === 'logits') return true;
  return detectKind(raw, n, K) === kind;
}

/**
 * In place: converts raw rows to logits (probabilities → log(max(p,1e-30)), so that softmax
 * gives p back; log-probabilities and logits unchanged) and writes softmax probabilities.
 */
export function toLogitsAndProbs(kind: OutputKind, raw: Float32Array, n: number, K: number, probsOut: Float32Array): void {
  if (kind === 'probabilities') {
    for (let i = 0; i < n * K; i++) raw[i] = Math.log(Math.max(raw[i], 1e-30));
  }
  softmaxRows(raw, n, K, probsOut);
}

export function softmaxRows(logits: Float32Array, n: number, K: number, out: Float32Array): void {
  for (let r = 0; r < n; r++) {
    const o = r * K;
    let max = -Infinity;
    for (let k = 0; k < K; k++) if (logits[o + k] > max) max = logits[o + k];
    if (!Number.isFinite(max)) {
      // NaN or ±Infinity in the row: uniform when nothing sensible can be said.
      for (let k = 0; k < K; k++) out[o + k] = max === Infinity ? (logits[o + k] === Infinity ? 1 : 0) : 1 / K;
      continue;
    }
    let s = 0;
    for (let k = 0; k < K; k++) {
      const e = Math.exp(logits[o + k] - max);
      out[o + k] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let k = 0; k < K; k++) out[o + k] *= inv;
  }
}

/**
 * The number of classes of an output of the given actual shape for a run of n images, or
 * undefined when it does not look like one score row per image: [n,K], [n,K,1,1], [n,1,K]...;
 * [K] too for a run of one image (an output without a batch axis when the batch is fixed 1).
 */
export function classesOf(shape: readonly number[], n: number): number | undefined {
  let dims = shape.slice();
  if (dims.length >= 2 && dims[0] === n) dims = dims.slice(1);
  else if (n !== 1) return undefined;
  const big = dims.filter((d) => d !== 1);
  if (big.length === 0) return dims.length > 0 ? 1 : undefined;
  return big.length === 1 ? big[0] : undefined;
}

// ---------------------------------------------------------------------------------------------
// float16 <-> float32 (onnxruntime-node carries float16 tensors as Uint16Array bit patterns)

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round-to-nearest-even conversion of float32 values to float16 bits. */
export function toHalf(src: Float32Array, dst: Uint16Array, len: number): void {
  for (let i = 0; i < len; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      dst[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      dst[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        dst[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
      dst[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    dst[i] = sign | h;
  }
}

/** float16 bits → float32. */
export function fromHalf(src: Uint16Array, dst: Float32Array, len: number, dstOffset = 0): void {
  for (let i = 0; i < len; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    let v: number;
    if (e === 0) v = m * 2 ** -24;
    else if (e === 0x1f) v = m ? NaN : Infinity;
    else v = (1 + m / 1024) * 2 ** (e - 15);
    dst[dstOffset + i] = sign * v;
  }
}
