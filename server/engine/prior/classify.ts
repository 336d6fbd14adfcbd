/**
 * Probe classifiers for frozen features, with stratified k-fold cross-validation. Small, exact and
 * deterministic (no randomness but the seeded fold assignment), in double precision.
 *
 *  - standardisation: per feature, the training fold's mean and standard deviation (a constant
 *    feature gets std 1), applied to both folds;
 *  - nearest class mean (NCM): the class means of the standardised training features; a test
 *    sample takes the class of the nearest mean (Euclidean; ties: the lower class);
 *  - multinomial logistic regression: softmax over K classes present in the training fold,
 *    minimising  (1/n) Σ −log p(y_i | x_i) + (λ/2) ‖W‖²  (biases not penalised) by L-BFGS
 *    (memory 10, backtracking Armijo line search), from zero weights, until the gradient's
 *    largest component is below `tol` or after `maxIter` iterations;
 *  - stratifiedFolds: each class's samples are shuffled with a PRNG seeded by (seed, class) and
 *    dealt round-robin to the folds, continuing where the previous class stopped, so every fold
 *    gets ⌊n_c/k⌋ or ⌈n_c/k⌉ of each class and the folds differ in size by at most one.
 */
import { derivedRng, shuffleInPlace } from '../random';

/** Features as rows: n samples × d values, row-major. */
export interface Matrix {
  n: number;
  d: number;
  data: Float64Array;
}

export function matrix(rows: ArrayLike<number>[]): Matrix {
  const n = rows.length;
  const d = n ? rows[0].length : 0;
  const data = new Float64Array(n * d);
  rows.forEach((r, i) => {
    if (r.length !== d) throw new RangeError(`row ${i} has ${r.length} values, expected ${d}`);
    for (let j = 0; j < d; j++) data[i * d + j] = r[j];
  });
  return { n, d, data };
}

/** Fold index (0..k−1) of each sample. */
export function stratifiedFolds(labels: readonly number[], k: number, seed: number): number[] {
  const folds = new Array<number>(labels.length).fill(0);
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => {
    if (!byClass.has(y)) byClass.set(y, []);
    byClass.get(y)!.push(i);
  });
  let next = 0;
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = shuffleInPlace(byClass.get(c)!, derivedRng(seed, 'prior/folds', String(c)));
    for (const i of idx) {
      folds[i] = next;
      next = (next + 1) % k;
    }
  }
  return folds;
}

function subset(x: Matrix, rows: number[]): Matrix {
  const out = new Float64Array(rows.length * x.d);
  rows.forEach((r, i) => out.set(x.data.subarray(r * x.d, (r + 1) * x.d), i * x.d));
  return { n: rows.length, d: x.d, data: out };
}

/** Standardises train and test with the training statistics (in place on copies). */
export function standardise(train: Matrix, test: Matrix): { train: Matrix; test: Matrix } {
  const { d } = train;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let i = 0; i < train.n; i++) for (let j = 0; j < d; j++) mean[j] += train.data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= train.n || 1;
  for (let i = 0; i < train.n; i++) for (let j = 0; j < d; j++) sd[j] += (train.data[i * d + j] - mean[j]) ** 2;
  for (let j = 0; j < d; j++) {
    const s = Math.sqrt(sd[j] / (train.n || 1));
    sd[j] = s > 1e-12 ? s : 1;
  }
  const apply = (m: Matrix): Matrix => {
    const out = new Float64Array(m.data.length);
    for (let i = 0; i < m.n; i++) for (let j = 0; j < d; j++) out[i * d + j] = (m.data[i * d + j] - mean[j]) / sd[j];
    return { n: m.n, d, data: out };
  };
  return { train: apply(train), test: apply(test) };
}

/** Nearest class mean: fits on (x, y) and predicts `test`. y holds class indices 0..K−1. */
export function ncmPredict(x: Matrix, y: readonly number[], K: number, test: Matrix): number[] {
  const { d } = x;
  const means = new Float64Array(K * d);
  const counts = new Float64Array(K);
  for (let i = 0; i < x.n; i++) {
    counts[y[i]]++;
    for (let j = 0; j < d; j++) means[y[i] * d + j] += x.data[i * d + j];
  }
  for (let c = 0; c < K; c++) for (let j = 0; j < d; j++) means[c * d + j] /= counts[c] || 1;
  const out: number[] = [];
  for (let i = 0; i < test.n; i++) {
    let best = -1;
    let bestDist = Infinity;
    for (let c = 0; c < K; c++) {
      if (!counts[c]) continue;
      let s = 0;
      for (let j = 0; j < d; j++) s += (test.data[i * d + j] - means[c * d + j]) ** 2;
      if (s < bestDist) {
        bestDist = s;
        best = c;
      }
    }
    out.push(best);
  }
  return out;
}

export interface LogRegOptions {
  l2?: number;
  maxIter?: number;
  tol?: number;
}

export interface LogRegModel {
  K: number;
  d: number;
  /** K×d weights then K biases. */
  theta: Float64Array;
  iterations: number;
  converged: boolean;
  loss: number;
}

/** Loss and gradient of the L2-regularised multinomial logistic regression at theta. */
function lossGrad(theta: Float64Array, x: Matrix, y: readonly number[], K: number, l2: number, grad: Float64Array): number {
  const { n, d } = x;
  grad.fill(0);
  const bOff = K * d;
  const z = new Float64Array(K);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const row = i * d;
    let max = -Infinity;
    for (let c = 0; c < K; c++) {
      let s = theta[bOff + c];
      const w = c * d;
      for (let j = 0; j < d; j++) s += theta[w + j] * x.data[row + j];
      z[c] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let c = 0; c < K; c++) {
      z[c] = Math.exp(z[c] - max);
      sum += z[c];
    }
    loss += Math.log(sum) + max - (Math.log(z[y[i]]) + max);
    for (let c = 0; c < K; c++) {
      const g = z[c] / sum - (c === y[i] ? 1 : 0);
      if (g === 0) continue;
      const w = c * d;
      for (let j = 0; j < d; j++) grad[w + j] += g * x.data[row + j];
      grad[bOff + c] += g;
    }
  }
  const inv = 1 / (n || 1);
  let reg = 0;
  for (let k = 0; k < bOff; k++) {
    grad[k] = grad[k] * inv + l2 * theta[k];
    reg += theta[k] * theta[k];
  }
  for (let c = 0; c < K; c++) grad[bOff + c] *= inv;
  return loss * inv + 0.5 * l2 * reg;
}

const dot = (a: Float64Array, b: Float64Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

export function logRegFit(x: Matrix, y: readonly number[], K: number, opts: LogRegOptions = {}): LogRegModel {
  const l2 = opts.l2 ?? 1e-2;
  const maxIter = opts.maxIter ?? 100;
  const tol = opts.tol ?? 1e-5;
  const P = K * x.d + K;
  let theta: Float64Array = new Float64Array(P);
  let grad: Float64Array = new Float64Array(P);
  let f = lossGrad(theta, x, y, K, l2, grad);
  const m = 10;
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  let it = 0;
  let converged = false;
  const maxAbs = (g: Float64Array) => g.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  for (; it < maxIter; it++) {
    if (maxAbs(grad) < tol) {
      converged = true;
      break;
    }
    // Two-loop recursion: direction = −H·grad.
    const q = Float64Array.from(grad);
    const alpha: number[] = [];
    for (let k = S.length - 1; k >= 0; k--) {
      const a = rho[k] * dot(S[k], q);
      alpha[k] = a;
      for (let i = 0; i < P; i++) q[i] -= a * Y[k][i];
    }
    const gamma = S.length ? dot(S[S.length - 1], Y[S.length - 1]) / dot(Y[S.length - 1], Y[S.length - 1]) : 1 / Math.max(1, maxAbs(grad));
    for (let i = 0; i < P; i++) q[i] *= gamma;
    for (let k = 0; k < S.length; k++) {
      const b = rho[k] * dot(Y[k], q);
      for (let i = 0; i < P; i++) q[i] += S[k][i] * (alpha[k] - b);
    }
    for (let i = 0; i < P; i++) q[i] = -q[i];
    let slope = dot(grad, q);
    if (!(slope < 0)) {
      // Not a descent direction: restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < P; i++) q[i] = -grad[i];
      slope = dot(grad, q);
    }
    let step = 1;
    const next = new Float64Array(P);
    const nextGrad = new Float64Array(P);
    let fNext = Infinity;
    for (let ls = 0; ls < 40; ls++) {
      for (let i = 0; i < P; i++) next[i] = theta[i] + step * q[i];
      fNext = lossGrad(next, x, y, K, l2, nextGrad);
      if (fNext <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNext < f) && !(fNext <= f + 1e-4 * step * slope)) break; // no progress possible
    const s = new Float64Array(P);
    const yy = new Float64Array(P);
    for (let i = 0; i < P; i++) {
      s[i] = next[i] - theta[i];
      yy[i] = nextGrad[i] - grad[i];
    }
    const sy = dot(s, yy);
    if (sy > 1e-12) {
      S.push(s);
      Y.push(yy);
      rho.push(1 / sy);
      if (S.length > m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    const df = f - fNext;
    theta = next;
    grad = nextGrad;
    f = fNext;
    if (df >= 0 && df < 1e-12 * Math.max(1, Math.abs(f))) {
      converged = true;
      it++;
      break;
    }
  }
  return { K, d: x.d, theta, iterations: it, converged: converged || maxAbs(grad) < tol, loss: f };
}

export function logRegPredict(model: LogRegModel, test: Matrix): number[] {
  const { K, d, theta } = model;
  const out: number[] = [];
  for (let i = 0; i < test.n; i++) {
    let best = 0;
    let bestV = -Infinity;
    for (let c = 0; c < K; c++) {
      let s = theta[K * d + c];
      for (let j = 0; j < d; j++) s += theta[c * d + j] * test.data[i * d + j];
      if (s > bestV) {
        bestV = s;
        best = c;
      }
    }
    out.push(best);
  }
  return out;
}

export type ProbeClassifier = 'ncm' | 'logreg';

export interface CvResult {
  accuracy: number;
  correct: number;
  n: number;
  folds: number;
  /** Logistic regression: folds whose fit stopped at maxIter without converging. */
  notConverged?: number;
}

/**
 * k-fold cross-validated accuracy of a probe classifier on (x, labels): each fold is predicted by
 * a classifier fitted (after standardisation) on the other folds. Labels may be any integers;
 * they are renumbered per fit to the classes present in the training folds.
 */
export function crossValidate(
  x: Matrix, labels: readonly number[], folds: readonly number[], k: number, kind: ProbeClassifier, opts: LogRegOptions = {},
): CvResult {
  let correct = 0;
  let n = 0;
  let notConverged = 0;
  for (let f = 0; f < k; f++) {
    const trainIdx: number[] = [];
    const testIdx: number[] = [];
    folds.forEach((g, i) => (g === f ? testIdx : trainIdx).push(i));
    if (!testIdx.length || !trainIdx.length) continue;
    const classes = [...new Set(trainIdx.map((i) => labels[i]))].sort((a, b) => a - b);
    const index = new Map(classes.map((c, i) => [c, i]));
    const { train, test } = standardise(subset(x, trainIdx), subset(x, testIdx));
    const yTrain = trainIdx.map((i) => index.get(labels[i])!);
    let pred: number[];
    if (kind === 'ncm') pred = ncmPredict(train, yTrain, classes.length, test);
    else {
      const model = logRegFit(train, yTrain, classes.length, opts);
      if (!model.converged) notConverged++;
      pred = logRegPredict(model, test);
    }
    testIdx.forEach((i, j) => {
      n++;
      if (classes[pred[j]] === labels[i]) correct++;
    });
  }
  const out: CvResult = { accuracy: n ? correct / n : NaN, correct, n, folds: k };
  if (kind === 'logreg') out.notConverged = notConverged;
  return out;
}
