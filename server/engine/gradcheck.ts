/**
 * gradcheck: compares the gradient graph's input gradient with central finite differences.
 *
 * For each input x and seeded random unit direction v, the analytic directional derivative
 * a = ⟨∇L(x), v⟩ is compared with
 *
 *   f(h) = (L(x + h·v) − L(x − h·v)) / 2h
 *
 * in float32 model arithmetic, with the loss computed in float64 in JS from the float32 logits of
 * the gradient model's own forward (so an int8 model is checked through its float shadow).
 *
 * Directions move a few pixels (`support`, default 4 up to 64 for large images): half of them on
 * pixels drawn uniformly with random signs, half ('salient') on pixels drawn in proportion to
 * |gradient| along the gradient's signs, where the loss moves enough for float32 to resolve it.
 * Steps: a ladder eps·2^−j (the largest change of a pixel; eps = 0.05, 12 steps, down to 2.4e-5).
 *
 * ReLU, MaxPool and clipping make L piecewise smooth: a step that crosses a kink gives f ≠ a, and a
 * tiny step drowns in rounding noise. Between the two, the differences of a correct gradient sit on
 * its value. A sample is
 *   - ok: two consecutive steps give f within 1e-2 of a (wandering differences do not land twice
 *     in a row within 1% of a wrong value); its error is the larger of the two;
 *   - fail: otherwise, if three consecutive steps form a plateau (f agreeing within 2.5e-3, forward
 *     and backward differences alike, above the noise) that a misses;
 *   - below-noise: otherwise, if |a| is below what the largest step can resolve to 1e-2 given the
 *     measured float32 noise of L (zero or tiny gradients: dead units, constant weights);
 *   - non-smooth: otherwise (kinks at every scale the noise allows): left out.
 * Mutating any rule by 3% makes the fixtures and test graphs fail (test/unit/gradient-ops).
 *
 * Pass: the worst relative error over the ok and fail samples is below 1e-2, every value is finite,
 * and at least one sample was ok or below-noise. The median is reported too.
 */
import { buildGradientModel, type GradientCoverage, type GradientLoss, type GradientModel } from './model/gradient';
import { dlrTargeted } from './attacks/dlr';
import { derivedRng, gaussian } from './random';
import type { DeviceChoice, LoadedModel, PixelBatch } from './types';

export interface GradcheckOptions {
  /** Images to check at (pixel space); default: `samples` random images. */
  images?: PixelBatch;
  /** Labels for the loss (default: seeded random classes). */
  labels?: ArrayLike<number>;
  /** Target classes for the targeted DLR loss (default: seeded random classes other than the label). */
  targets?: ArrayLike<number>;
  /** Random images when `images` is absent (default 3); with images, the first `samples` (default all). */
  samples?: number;
  /** Directions per image (default 3). */
  directions?: number;
  seed?: number;
  loss?: GradientLoss;
  /** Largest finite-difference step, as the largest change of a pixel (default 0.05, 13 grey levels). */
  eps?: number;
  /** Steps in the ladder (default 12: eps, eps/2, … eps/2048). */
  steps?: number;
  /** Pixels each direction moves (default D/2000 within [4, 64]; 0 = all pixels). Few pixels
   *  cross few ReLU/MaxPool kinks; more pixels move the loss further above the float32 noise. */
  support?: number;
  device?: DeviceChoice;
  /** A gradient model already built for `model` (not disposed here). */
  gradient?: GradientModel;
}

export type SampleStatus = 'ok' | 'fail' | 'non-smooth' | 'below-noise';

export interface GradcheckSample {
  image: number;
  direction: number;
  /** 'random': pixels drawn uniformly; 'salient': drawn with probability ∝ |gradient|. */
  kind: 'random' | 'salient';
  label: number;
  /** ⟨∇L, v⟩ from the gradient graph. */
  analytic: number;
  /** The finite difference used (NaN when none was smooth). */
  fd: number;
  /** Its step, as the largest change of a pixel. */
  step: number;
  relError: number;
  /** Finite differences at every step of the ladder, largest step first. */
  ladder: number[];
  status: SampleStatus;
}

export interface GradcheckResult {
  model: string;
  loss: GradientLoss;
  images: number;
  directions: number;
  /** Pixels each direction moves, of `pixels` per image. */
  support: number;
  pixels: number;
  /** Steps of the ladder (largest change of a pixel). */
  steps: number[];
  samples: GradcheckSample[];
  /** Over the ok and fail samples (0 when there are none). */
  worst: number;
  median: number;
  /** Samples that entered the verdict (ok, fail, below-noise) and those left out (non-smooth). */
  checked: number;
  nonSmooth: number;
  belowNoise: number;
  tolerance: number;
  finite: boolean;
  /** max |loss output − loss computed in JS from the logits output|. */
  lossMismatch: number;
  /** Float32 noise of one loss evaluation, as estimated (conservatively) for the resolution. */
  noise: number;
  pass: boolean;
  coverage: GradientCoverage;
  notes: string[];
  seconds: { build: number; check: number };
}

const TOL = 1e-2;
const EPS32 = 2 ** -24;

/** Loss of one row of logits, in float64. */
export function lossOf(z: ArrayLike<number>, off: number, K: number, y: number, loss: GradientLoss, t = -1): number {
  if (loss === 'dlr-targeted') return dlrTargeted(z, off, K, y, t);
  let max = -Infinity;
  for (let k = 0; k < K; k++) max = Math.max(max, z[off + k]);
  if (loss === 'ce') {
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(z[off + k] - max);
    return max + Math.log(s) - z[off + y];
  }
  let other = -Infinity;
  for (let k = 0; k < K; k++) if (k !== y) other = Math.max(other, z[off + k]);
  return other - z[off + y];
}

export async function gradcheck(model: LoadedModel, opts: GradcheckOptions = {}): Promise<GradcheckResult> {
  const t0 = performance.now();
  const seed = opts.seed ?? 0;
  const loss = opts.loss ?? 'ce';
  const dirs = opts.directions ?? 3;
  const eps = opts.eps ?? 0.05;
  const nSteps = opts.steps ?? 12;
    if (!(dirs >= 1) || !(eps > 0) || !(nSteps >= 2)) throw new Error('gradcheck: directions ≥ 1, eps > 0 and steps ≥ 2 are required');
  const { channels: C, height: H, width: W, numClasses: K } = model.info;
  const D = C * H * W;
  const support = Math.min(D, opts.support === undefined ? Math.min(64, Math.max(4, Math.round(D / 2000))) : opts.support <= 0 ? D : Math.floor(opts.support));
  const notes: string[] = [];
  const gm = opts.gradient ?? (await buildGradientModel(model, { device: opts.device }));
  const tBuilt = performance.now();
  try {
    const n = opts.images ? Math.min(opts.samples ?? opts.images.n, opts.images.n) : (opts.samples ?? 3);
    if (!(n >= 1)) throw new Error('gradcheck: no images');
    const steps = Array.from({ length: nSteps }, (_, j) => eps / 2 ** j);
    const like = { channels: C, height: H, width: W };

    // images, kept eps inside [0,1] so that every x ± h·v is a valid image
    const lo = Math.min(0.25, eps * 1.01);
    const x = new Float32Array(n * D);
    if (opts.images) {
      let moved = 0;
      for (let p = 0; p < n * D; p++) {
        const v = opts.images.data[p];
        const c = Math.min(1 - lo, Math.max(lo, v));
        if (c !== v) moved++;
        x[p] = c;
      }
      if (moved) notes.push(`${moved} pixel values were moved inside [${lo.toExponential(1)}, 1 − ${lo.toExponential(1)}] so that every x ± h·v stays in [0,1]; the check is at the moved images`);
    } else {
      const rng = derivedRng(seed, 'gradcheck', 'images');
      for (let p = 0; p < n * D; p++) x[p] = lo + (1 - 2 * lo) * rng();
      notes.push(`${n} random image${n > 1 ? 's' : ''}, uniform in [${lo.toExponential(1)}, 1 − ${lo.toExponential(1)}]`);
    }
    const labels: number[] = [];
    const lrng = derivedRng(seed, 'gradcheck', 'labels');
    for (let i = 0; i < n; i++) {
      const y = opts.labels ? Number(opts.labels[i]) : Math.floor(lrng() * K);
      if (!Number.isInteger(y) || y < 0 || y >= K) throw new Error(`gradcheck: label ${y} is not a class index in [0, ${K})`);
      labels.push(y);
    }

    const targets: number[] = [];
    const trng = derivedRng(seed, 'gradcheck', 'targets');
    for (let i = 0; i < n; i++) targets.push(opts.targets ? Number(opts.targets[i]) : K > 1 ? (labels[i] + 1 + Math.floor(trng() * (K - 1))) % K : 0);

    // analytic gradients
    const base = await gm.lossAndGrad({ data: x, n, ...like }, labels, loss, targets);
    let finite = true;
    for (const arr of [base.grad, base.logits, base.loss]) for (let p = 0; p < arr.length; p++) if (!Number.isFinite(arr[p])) finite = false;
    let lossMismatch = 0;
    for (let i = 0; i < n; i++) lossMismatch = Math.max(lossMismatch, Math.abs(base.loss[i] - lossOf(base.logits, i * K, K, labels[i], loss, targets[i])));

    // directions: even ones on `support` pixels drawn uniformly, with random signs; odd ones
    // ('salient') on pixels drawn with probability ∝ |gradient|, with the gradient's signs, where
    // a float32 difference resolves the slope best
    const V: Float32Array[] = [];
    const VMAX: number[] = [];
    const kinds: ('random' | 'salient')[] = [];
    for (let i = 0; i < n; i++) {
      const gi = base.grad.subarray(i * D, (i + 1) * D);
      let cum: Float64Array | undefined;
      for (let j = 0; j < dirs; j++) {
        const rng = derivedRng(seed, 'gradcheck', 'direction', String(i), String(j));
        const salient = j % 2 === 1 && support < D;
        if (salient && !cum) {
          cum = new Float64Array(D);
          let acc = 0;
          for (let p = 0; p < D; p++) cum[p] = acc += Number.isFinite(gi[p]) ? Math.abs(gi[p]) : 0;
        }
        const useSalient = salient && cum![D - 1] > 0;
        const pixels = support === D ? Array.from({ length: D }, (_, p) => p) : pickSupport(D, support, rng, useSalient ? cum : undefined);
        const v = new Float32Array(D);
        let norm = 0;
        for (const p of pixels) {
          const gv = gaussian(rng);
          // salient directions follow the gradient's signs: the loss moves most, above the noise
          v[p] = useSalient ? Math.sign(gi[p] || 1) * Math.abs(gv) : gv;
          norm += v[p] * v[p];
        }
        norm = Math.sqrt(norm);
        let mx = 0;
        for (const p of pixels) {
          v[p] /= norm;
          mx = Math.max(mx, Math.abs(v[p]));
        }
        V.push(v);
        VMAX.push(mx); // the step along v is set by its largest pixel change: h·max|v| = eps·2^−j
        kinds.push(useSalient ? 'salient' : 'random');
      }
    }

    // One forward batch: the images; per image, NOISE copies moved by ±1e-6 on every pixel (to
    // measure float32 rounding); then per sample and step, x + h·v and x − h·v.
    const S = n * dirs;
    const NOISE = 4;
    const noiseRow = (i: number, k: number) => n + i * NOISE + k;
    const row = (s: number, j: number, sign: 0 | 1) => n + n * NOISE + (s * nSteps + j) * 2 + sign;
    const rows = n + n * NOISE + S * nSteps * 2;
    const pert = new Float32Array(rows * D);
    pert.set(x);
    const deltas: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < NOISE; k++) {
        const rng = derivedRng(seed, 'gradcheck', 'noise', String(i), String(k));
        const d = new Float32Array(D);
        const off = noiseRow(i, k) * D;
        for (let p = 0; p < D; p++) {
          const xp = x[i * D + p];
          const moved = Math.fround(xp + (rng() < 0.5 ? -1e-6 : 1e-6));
          pert[off + p] = moved;
          d[p] = moved - xp;
        }
        deltas.push(d);
      }
    }
    for (let s = 0; s < S; s++) {
      const i = Math.floor(s / dirs);
      const xi = x.subarray(i * D, (i + 1) * D);
      const v = V[s];
      steps.forEach((h, j) => {
        const hs = h / VMAX[s];
        const o1 = row(s, j, 0) * D;
        const o2 = row(s, j, 1) * D;
        for (let p = 0; p < D; p++) {
          pert[o1 + p] = xi[p] + hs * v[p];
          pert[o2 + p] = xi[p] - hs * v[p];
        }
      });
    }
    const z = await gm.logits({ data: pert, n: rows, ...like });
    for (let p = 0; p < z.length; p++) if (!Number.isFinite(z[p])) finite = false;
    const L = (r: number, i: number) => lossOf(z, r * K, K, labels[i], loss, targets[i]);

    // Resolution: the float32 rounding noise σ of one evaluation of L, from tiny moves of every
    // pixel, r = L(x+δ) − L(x) − ⟨∇L, δ⟩ (median |r| = 0.6745·√2·σ), times 4 because moves of a
    // few grey levels re-round every layer (measured), and at least a few ulps of L.
    const res: number[] = [];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < NOISE; k++) {
        const d = deltas[i * NOISE + k];
        let lin = 0;
        for (let p = 0; p < D; p++) lin += base.grad[i * D + p] * d[p];
        res.push(Math.abs(L(noiseRow(i, k), i) - L(i, i) - lin));
      }
    }
    res.sort((p, q) => p - q);
    let lmax = 0;
    for (let i = 0; i < n; i++) lmax = Math.max(lmax, Math.abs(L(i, i)));
    const sigma = Math.max((4 * res[Math.floor(res.length / 2)]) / (0.6745 * Math.SQRT2), 4 * EPS32 * Math.max(lmax, 1e-3));

    let constantLogits = true;
    for (let i = 0; i < n && constantLogits; i++) for (let k = 1; k < K; k++) if (base.logits[i * K + k] !== base.logits[i * K]) constantLogits = false;

    const samples: GradcheckSample[] = [];
    for (let s = 0; s < S; s++) {
      const i = Math.floor(s / dirs);
      const v = V[s];
      let a = 0;
      for (let p = 0; p < D; p++) if (v[p] !== 0) a += base.grad[i * D + p] * v[p];
      const l0 = L(i, i);
      const hs = steps.map((h) => h / VMAX[s]);
      const fwd: number[] = [];
      const bwd: number[] = [];
      const ladder = steps.map((_, j) => {
        const lp = L(row(s, j, 0), i);
        const lm = L(row(s, j, 1), i);
        fwd.push((lp - l0) / hs[j]);
        bwd.push((l0 - lm) / hs[j]);
        return (lp - lm) / (2 * hs[j]);
      });
      // the smallest slope a central difference at step j resolves to TOL (3σ_f / TOL)
      const resolves = (j: number) => (3 * sigma) / (Math.SQRT2 * hs[j]) / TOL;
      const relTo = (f: number) => (a === f ? 0 : Math.abs(a - f) / Math.max(Math.abs(a), Math.abs(f)));
      // ok: two consecutive steps agree with the gradient within TOL (between the scale of kinks and
      // the scale of rounding noise, the differences of a correct gradient sit on its value; wandering
      // differences do not land twice in a row within 1% of a wrong one)
      let best = -1;
      let bestRel = Infinity;
      for (let j = 0; j + 1 < nSteps; j++) {
        const r = Math.max(relTo(ladder[j]), relTo(ladder[j + 1]));
        if (r < TOL && r < bestRel) {
          best = j;
          bestRel = r;
        }
      }
      // fail: a plateau (three steps whose differences agree within TOL/4, forward and backward
      // alike, above the noise) that the gradient misses
      const plateau = (j: number) => {
        for (let k = j; k <= j + 2; k++) {
          const c = Math.abs(ladder[k]);
          if (c < resolves(k) || Math.abs(fwd[k] - bwd[k]) > 0.5 * TOL * c) return false;
          if (k < j + 2 && Math.abs(ladder[k] - ladder[k + 1]) > 0.25 * TOL * Math.max(c, Math.abs(ladder[k + 1]))) return false;
        }
        return true;
      };
      let status: SampleStatus;
      let fd = NaN;
      let rel = NaN;
      let step = NaN;
      if (best < 0 && constantLogits && ladder.every((f) => f === 0)) {
        // the loss does not move at all: any slope is rounding (see the note)
        status = 'below-noise';
        fd = 0;
        step = steps[0];
        rel = relTo(0);
      } else if (best >= 0) {
        status = 'ok';
        fd = ladder[best];
        step = steps[best];
        rel = bestRel;
      } else {
        let pl = -1;
        for (let j = 0; j + 2 < nSteps && pl < 0; j++) if (plateau(j)) pl = j;
        if (pl >= 0) {
          status = 'fail';
          fd = ladder[pl];
          step = steps[pl];
          rel = relTo(fd);
        } else if (Math.abs(a) < resolves(0)) {
          status = 'below-noise';
          fd = ladder[0];
          step = steps[0];
          rel = relTo(fd);
        } else status = 'non-smooth';
      }
      if (!Number.isFinite(a)) {
        status = 'fail';
        rel = Infinity;
      }
      samples.push({ image: i, direction: s % dirs, kind: kinds[s], label: labels[i], analytic: a, fd, step, relError: rel, ladder, status });
    }
    const smooth = samples.filter((q) => q.status === 'ok' || q.status === 'fail');
    const errs = smooth.map((q) => q.relError).sort((p, q) => p - q);
    const worst = errs.length ? errs[errs.length - 1] : 0;
    const median = errs.length ? (errs.length % 2 ? errs[(errs.length - 1) / 2] : (errs[errs.length / 2 - 1] + errs[errs.length / 2]) / 2) : 0;
    const belowNoise = samples.filter((q) => q.status === 'below-noise').length;
    const nonSmooth = samples.filter((q) => q.status === 'non-smooth').length;
    const checked = smooth.length + belowNoise;
    if (belowNoise) notes.push(`${belowNoise} sample${belowNoise > 1 ? 's' : ''} below float32 resolution: slope too small for a float32 finite difference to measure to ${TOL} (zero or tiny gradients: dead units, constant weights)`);
    if (constantLogits) notes.push('every class gets the same logit (constant weights?): the loss cannot depend on the input; the gradient is float32 rounding of per-class gradients that cancel');
    if (nonSmooth) notes.push(`${nonSmooth} sample${nonSmooth > 1 ? 's' : ''} left out as non-smooth: ReLU/MaxPool/clip kinks at every step the float32 noise allows`);
    if (!checked) notes.push('no sample could be checked: inconclusive (try more directions, other images, or a larger support)');
    if (!finite) notes.push('non-finite values in the gradient, the loss or the logits');
    if (lossMismatch > 1e-4 * (1 + Math.abs(base.loss[0]))) notes.push(`the loss output differs from the loss of the logits output by ${lossMismatch.toExponential(2)}`);
    const pass = finite && checked > 0 && worst < TOL;
    return {
      model: model.path,
      loss,
      images: n,
      directions: dirs,
      support,
      pixels: D,
      steps,
      samples,
      worst,
      median,
      checked,
      nonSmooth,
      belowNoise,
      tolerance: TOL,
      finite,
      lossMismatch,
      noise: sigma,
      pass,
      coverage: gm.coverage,
      notes,
      seconds: { build: (tBuilt - t0) / 1000, check: (performance.now() - tBuilt) / 1000 },
    };
  } finally {
    if (!opts.gradient) await gm.dispose();
  }
}

/** m distinct pixels, uniformly or with probability ∝ the increments of `cum` (a cumulative sum). */
function pickSupport(D: number, m: number, rng: () => number, cum?: Float64Array): number[] {
  const set = new Set<number>();
  let nonzero = D;
  if (cum) {
    nonzero = 0;
    for (let p = 0; p < D; p++) if (cum[p] > (p ? cum[p - 1] : 0)) nonzero++;
  }
  const want = Math.min(m, nonzero);
  while (set.size < want) {
    if (!cum) set.add(Math.floor(rng() * D));
    else {
      const t = rng() * cum[D - 1];
      let lo = 0;
      let hi = D - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > t) hi = mid;
        else lo = mid + 1;
      }
      set.add(lo);
    }
  }
  return [...set];
}

const e2 = (v: number) => (Number.isFinite(v) ? v.toExponential(2) : String(v));

/** The text `skeptic gradcheck MODEL` prints. */
export function formatGradcheck(r: GradcheckResult): string {
  const L: string[] = [];
  const name = r.model.split(/[\\/]/).pop();
  L.push(`gradcheck ${name}: loss ${r.loss === 'ce' ? 'cross-entropy' : 'margin (CW)'}, ${r.images} image${r.images > 1 ? 's' : ''} × ${r.directions} direction${r.directions > 1 ? 's' : ''}, ${r.support < r.pixels ? `${r.support} random pixels each` : 'all pixels'}, steps ${e2(r.steps[0])} … ${e2(r.steps[r.steps.length - 1])} (largest pixel change)`);
  const smooth = r.checked - r.belowNoise;
  const over = `${smooth} sample${smooth === 1 ? '' : 's'} compared${r.belowNoise ? `, ${r.belowNoise} below float32 resolution` : ''}${r.nonSmooth ? `, ${r.nonSmooth} non-smooth left out` : ''}`;
  L.push(`worst relative error ${e2(r.worst)}, median ${e2(r.median)} (${over})`);
  L.push(`${r.pass ? 'PASS' : 'FAIL'}: ${r.pass ? `worst < ${r.tolerance}` : !r.finite ? 'non-finite values' : r.checked === 0 ? 'inconclusive, no sample could be checked' : `worst ≥ ${r.tolerance}`}`);
  L.push('');
  L.push(`differentiated: ${r.coverage.logits}; opset ${r.coverage.opset.model}${r.coverage.opset.graph !== r.coverage.opset.model ? ` → ${r.coverage.opset.graph}` : ''}${r.coverage.shadow ? '; int8 → float shadow' : ''}`);
  L.push('per-op coverage:');
  const w = Math.max(4, ...r.coverage.ops.map((o) => o.op.length));
  L.push(`  ${'op'.padEnd(w)}  count  rule`);
  for (const o of r.coverage.ops) L.push(`  ${o.op.padEnd(w)}  ${String(o.count).padStart(5)}  ${o.rule}`);
  if (r.coverage.notes.length || r.notes.length) {
    L.push('notes:');
    for (const note of [...r.coverage.notes, ...r.notes]) L.push(`  - ${note}`);
  }
  L.push('samples:');
  L.push('  img dir pixels   label      analytic            fd      step   rel.err  status');
  for (const s of r.samples) {
    L.push(`  ${String(s.image).padStart(3)} ${String(s.direction).padStart(3)} ${s.kind.padEnd(8)} ${String(s.label).padStart(5)}  ${e2(s.analytic).padStart(12)}  ${e2(s.fd).padStart(12)}  ${e2(s.step).padStart(8)}  ${e2(s.relError).padStart(8)}  ${s.status}`);
  }
  return L.join('\n');
}
