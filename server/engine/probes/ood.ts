/**
 * P5, out-of-distribution confidence (Hendrycks & Gimpel, ICLR 2017, "A baseline for detecting
 * misclassified and out-of-distribution examples"; Louizos & Welling, ICML 2017; Nalisnick et al.,
 * ICLR 2019, "Do deep generative models know what they don't know?").
 *
 * OOD sets. Each in-distribution image gets one variant per generated set, made in run() from the
 * image alone, so a record depends only on its image, the model, the params and the seed (and is
 * cached like any other):
 *   uniform   i.i.d. U[0,1) per pixel and channel;
 *   gaussian  N(μ_c, σ_c) per pixel, μ_c/σ_c the IMAGE'S OWN per-channel mean and standard
 *             deviation (not the dataset's, which would make a record depend on other images),
 *             clipped to [0,1];
 *   constant  one U[0,1) value per channel over the whole image;
 *   inverted  1 − x;
 *   rot90     rotated 90° counter-clockwise (exact for square inputs; a non-square input is
 *             rotated about its centre like a tilt, with the same fill);
 *   rot180    rotated 180° (exact);
 *   tilt15/30/45/60  rotated counter-clockwise about the centre by that many degrees, bilinear;
 *             what comes from outside the frame is filled with the per-channel mean of the image's
 *             one-pixel border (black for MNIST-like digits, the background colour for photos),
 *             so the corners add as little new structure as possible;
 *   patches   the image cut into a grid×grid [8×8] grid of tiles and the tiles permuted. Tile
 *             borders are at ⌊i·H/grid⌋ and ⌊j·W/grid⌋, exact pixel boundaries; when the size does
 *             not divide, tiles come in at most two heights and two widths, and each tile moves
 *             only among the slots of its own size, so the output is an exact permutation of
 *             the input's tiles.
 * Random choices (noise, constant values, the tile permutation) come from
 * derivedRng(seed, 'ood/<set>', image sha256).
 *
 * A user OOD set (params.oodData: any dataset the engine reads) is streamed in summarize();
 * unreadable items are counted and skipped.
 *
 * Scores, higher = more in-distribution:
 *   msp         maximum softmax probability;
 *   energy      −E(x) = +logsumexp(logits) (the negated energy of Liu et al., NeurIPS 2020); only for
 *               models that output logits: for probability outputs the logits are log p, so
 *               logsumexp = 0 for every input and the score is skipped;
 *   likelihood  with params.likelihood = true the model's output is a log-likelihood and is the
 *               score itself: the single output when there is one, else logsumexp over the outputs
 *               (log Σ_y p(x|y), up to a constant). This is the Nalisnick test: a generative model
 *               may give OOD data a HIGHER likelihood than its training data.
 *
 * Feature-space detectors (params.detectors: mahalanobis, knn, vim, react; off unless asked; ood/):
 * the penultimate features come from the same run as the logits (the view session with the
 * feature tensor added to its outputs; the user's set and standalone view graphs through a tap
 * session, model/features.ts) and are stored in the records (float16); summarize() fits each
 * detector on the records of a seeded half of the images and scores the other half, its OOD
 * variants and the user's set (ood/compose.ts). Their AUROC/FPR@95 join each set's metrics under
 * the detector's name; the finding ood/undetectable says when even the best score stays below
 * params.minAuroc [0.6]. With detectors off, or when no tap can be opened, only the logits.
 *
 * Metrics: AUROC (Mann–Whitney, ties half) and FPR at 95% TPR per set and score, mean scores in and
 * out, ECE over 15 bins with the reliability diagram, the share of confident-but-wrong
 * predictions (MSP > 0.9, wrong), and the most confident wrong answers. Findings: an OOD set whose
 * mean confidence (or likelihood) is above the real data's (model-level warning), and each
 * confident-but-wrong prediction (warning on the image).
 */
import { basename, resolve } from 'node:path';
import { openDataset } from '../data';
import { SkepticInputError, throwIfAborted } from '../errors';
import { toBatch } from '../image/ops';
import { auroc, calibration, fprAtTpr, histogram, mean, rocCurve } from '../metrics';
import { derivedRng, derivedSeed, gaussian, gaussianUniforms, mulberry32, shuffleInPlace, uniforms } from '../random';
import type { LoadedModel, PixelImage, PixelBatch, Prediction } from '../types';
import { toLogitsAndProbs } from '../model/output';
import {
  DETECTORS, detectorsParam, fitDetectors, inFitHalf, openTap, pack, scoreAll, type DetectorName, type FitRow, type FittedSet, type Tap,
} from '../ood/compose';
import type { Packed } from '../prior/project';
import { makeViews, runViews, viewMaker, viewsFor, type ViewInputs, type ViewOp, type ViewPlan, type ViewSource } from '../views';
import { keepForReuse } from '../views/plan';
import {
  argmax, boolParam, groupsWithin, numberParam, pct, round, type FindingDraft, type Probe, type ProbeContext, type ProbeImage, type RuleDoc,
  type SummaryContext, type ViewShape, viewShape,
} from './probe';

export const GENERATED_SETS = [
  'uniform', 'gaussian', 'constant', 'inverted', 'rot90', 'rot180', 'tilt15', 'tilt30', 'tilt45', 'tilt60', 'patches',
] as const;
export type GeneratedSet = (typeof GENERATED_SETS)[number];

export type ScoreName = 'msp' | 'energy' | 'likelihood';

/** Scores of one input (full precision: rounding would create ties near MSP = 1). */
export interface OodScores {
  msp: number;
  /** +logsumexp(logits), i.e. −energy; logits outputs only (and not in likelihood mode). */
  energy?: number;
  /** Likelihood mode only. */
  likelihood?: number;
}

export interface OodRecord extends OodScores {
  pred: number;
  /** Whether pred is the label (labelled images, classifiers only). */
  correct?: boolean;
  /** The scores of each generated variant of this image, by set name. */
  ood: Partial<Record<GeneratedSet, OodScores>>;
  /** Feature detectors on: whether the image is in the detectors' fit half (ood/compose.ts). */
  fit?: boolean;
  /** Feature detectors on: the image's penultimate features (float16, prior/project.ts's pack). */
  feat?: Packed;
  /** Score half only: the features of each generated variant. */
  oodFeat?: Partial<Record<GeneratedSet, Packed>>;
}

const RULES: Record<string, RuleDoc> = {
  'ood/more-confident-than-data': {
    name: 'OodMoreConfidentThanData',
    text: 'An out-of-distribution set gets a higher mean confidence (or likelihood) than the real data.',
    help:
      'Hendrycks & Gimpel (ICLR 2017): softmax confidence is a weak OOD detector; Nalisnick et al. (ICLR 2019): generative ' +
      'models can give OOD data higher likelihood. Do not read high confidence as "in distribution": add an OOD detector ' +
      '(energy score, outlier exposure, a rejection class) or train with OOD examples.',
  },
  'ood/confident-wrong': {
    name: 'ConfidentButWrong',
    text: 'The model is more than 90% confident and wrong.',
    help:
      'Overconfident errors (Guo et al., ICML 2017; Hendrycks & Gimpel, ICLR 2017) defeat confidence thresholds. Check the label; ' +
      'if it is right, consider temperature scaling or other calibration.',
  },
  'ood/undetectable': {
    name: 'OodSetUndetectable',
    text: 'Even the best OOD score (softmax or feature-space detector) cannot tell an OOD set from the real data.',
    help:
      'The best AUROC over MSP, energy and the feature detectors (Mahalanobis, KNN, ViM, ReAct) is below ood.minAuroc. ' +
      'Inputs like this set will be accepted as in-distribution: filter them upstream, train with outlier exposure, or check ' +
      'whether the set is really out of distribution for the task.',
  },
  'ood/ood-data-unreadable': {
    name: 'OodDataUnreadable',
    text: 'The out-of-distribution dataset could not be opened.',
    help: 'Give a dataset the engine reads (class folders, CSV/JSONL manifest, MNIST IDX); the generated OOD sets were still evaluated.',
  },
};

const SET_TITLES: Record<string, string> = {
  uniform: 'uniform noise',
  gaussian: 'Gaussian noise',
  constant: 'constant images',
  inverted: 'inverted colours',
  rot90: 'rotated 90°',
  rot180: 'rotated 180°',
  tilt15: 'tilted 15°',
  tilt30: 'tilted 30°',
  tilt45: 'tilted 45°',
  tilt60: 'tilted 60°',
  patches: 'patch-shuffled',
};

// ---------------------------------------------------------------------------------------------
// Generated OOD sets (pure functions of the image and a PRNG)

const like = (img: PixelImage, data: Float32Array): PixelImage => ({ data, channels: img.channels, height: img.height, width: img.width });

/** Per-channel mean and (population) standard deviation. */
export function channelStats(img: PixelImage): { mean: number[]; std: number[] } {
  const hw = img.height * img.width;
  const m: number[] = [];
  const s: number[] = [];
  for (let c = 0; c < img.channels; c++) {
    let sum = 0;
    for (let i = 0; i < hw; i++) sum += img.data[c * hw + i];
    const mu = sum / hw;
    let sq = 0;
    for (let i = 0; i < hw; i++) sq += (img.data[c * hw + i] - mu) ** 2;
    m.push(mu);
    s.push(Math.sqrt(sq / hw));
  }
  return { mean: m, std: s };
}

/** Per-channel mean of the one-pixel frame of the image (the tilt fill). */
export function borderMean(img: PixelImage): number[] {
  const { height: H, width: W } = img;
  const out: number[] = [];
  for (let c = 0; c < img.channels; c++) {
    const o = c * H * W;
    let sum = 0;
    let n = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (y === 0 || y === H - 1 || x === 0 || x === W - 1) {
          sum += img.data[o + y * W + x];
          n++;
        }
      }
    }
    out.push(n ? sum / n : 0);
  }
  return out;
}

export function uniformNoise(img: PixelImage, rng: () => number): PixelImage {
  const d = new Float32Array(img.data.length);
  for (let i = 0; i < d.length; i++) d[i] = rng();
  return like(img, d);
}

/** N(μ_c, σ_c) per pixel with the image's own channel statistics, clipped to [0,1]. */
export function gaussianNoise(img: PixelImage, rng: () => number): PixelImage {
  const { mean: mu, std: sd } = channelStats(img);
  const hw = img.height * img.width;
  const d = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    for (let i = 0; i < hw; i++) d[c * hw + i] = Math.min(1, Math.max(0, mu[c] + sd[c] * gaussian(rng)));
  }
  return like(img, d);
}

/** One U[0,1) value per channel. */
export function constantImage(img: PixelImage, rng: () => number): PixelImage {
  const hw = img.height * img.width;
  const d = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) d.fill(rng(), c * hw, (c + 1) * hw);
  return like(img, d);
}

export function invert(img: PixelImage): PixelImage {
  const d = new Float32Array(img.data.length);
  for (let i = 0; i < d.length; i++) d[i] = 1 - img.data[i];
  return like(img, d);
}

export function rotate180(img: PixelImage): PixelImage {
  const hw = img.height * img.width;
  const d = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    for (let i = 0; i < hw; i++) d[c * hw + i] = img.data[c * hw + hw - 1 - i];
  }
  return like(img, d);
}

/** 90° counter-clockwise: out[y][x] = in[x][W−1−y]. Square images exactly; others about the
 *  centre with the border-mean fill (the model's input size cannot change). */
export function rotate90(img: PixelImage): PixelImage {
  const { height: H, width: W } = img;
  if (H !== W) return rotateAbout(img, 90, borderMean(img));
  const d = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    const o = c * H * W;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) d[o + y * W + x] = img.data[o + x * W + (W - 1 - y)];
  }
  return like(img, d);
}

/**
 * Rotation by `degrees` counter-clockwise (as displayed, y down) about the centre
 * ((W−1)/2, (H−1)/2), bilinear; source positions outside the frame take `fill[c]`.
 */
export function rotateAbout(img: PixelImage, degrees: number, fill: number[]): PixelImage {
  const { height: H, width: W } = img;
  const th = (degrees * Math.PI) / 180;
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  const d = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    const o = c * H * W;
    const f = fill[c] ?? fill[0] ?? 0;
    const at = (y: number, x: number) => (y >= 0 && y < H && x >= 0 && x < W ? img.data[o + y * W + x] : f);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const dx = x - cx;
        const dy = y - cy;
        // Inverse map: the source of output (dx, dy) under a counter-clockwise rotation.
        let sx = cx + dx * cos - dy * sin;
        let sy = cy + dx * sin + dy * cos;
        // Snap away floating-point dust (cos 90° = 6e-17) so exact grid positions stay exact.
        if (Math.abs(sx - Math.round(sx)) < 1e-9) sx = Math.round(sx);
        if (Math.abs(sy - Math.round(sy)) < 1e-9) sy = Math.round(sy);
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const ax = sx - x0;
        const ay = sy - y0;
        let v = (1 - ax) * (1 - ay) * at(y0, x0);
        if (ax > 0) v += ax * (1 - ay) * at(y0, x0 + 1);
        if (ay > 0) v += (1 - ax) * ay * at(y0 + 1, x0);
        if (ax > 0 && ay > 0) v += ax * ay * at(y0 + 1, x0 + 1);
        d[o + y * W + x] = v;
      }
    }
  }
  return like(img, d);
}

/** Tile borders along an axis of n pixels cut into g parts: ⌊i·n/g⌋, i = 0..g. */
export function tileBorders(n: number, g: number): number[] {
  return Array.from({ length: g + 1 }, (_, i) => Math.floor((i * n) / g));
}

/**
 * The image cut into a grid×grid grid of tiles (fewer along an axis shorter than grid pixels),
 * the tiles permuted with `rng`. Each tile moves only among slots of its own height and width
 * (see the module comment), so the result holds exactly the input's tiles.
 */
export function patchShuffle(img: PixelImage, grid: number, rng: () => number): PixelImage {
  const { height: H, width: W } = img;
  const rows = tileBorders(H, Math.max(1, Math.min(grid, H)));
  const cols = tileBorders(W, Math.max(1, Math.min(grid, W)));
  const slots: Array<{ r: number; c: number; h: number; w: number }> = [];
  for (let r = 0; r < rows.length - 1; r++) {
    for (let c = 0; c < cols.length - 1; c++) slots.push({ r, c, h: rows[r + 1] - rows[r], w: cols[c + 1] - cols[c] });
  }
  // Group slot indices by size; the groups are visited in a fixed order (first appearance).
  const groups = new Map<string, number[]>();
  slots.forEach((s, i) => {
    const key = `${s.h}x${s.w}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(i);
  });
  const source = new Array<number>(slots.length); // source[destination slot] = source slot
  for (const members of groups.values()) {
    const perm = shuffleInPlace([...members], rng);
    members.forEach((dst, k) => (source[dst] = perm[k]));
  }
  const d = new Float32Array(img.data.length);
  for (let ch = 0; ch < img.channels; ch++) {
    const o = ch * H * W;
    slots.forEach((dst, i) => {
      const src = slots[source[i]];
      for (let y = 0; y < dst.h; y++) {
        const from = o + (rows[src.r] + y) * W + cols[src.c];
        d.set(img.data.subarray(from, from + dst.w), o + (rows[dst.r] + y) * W + cols[dst.c]);
      }
    });
  }
  return like(img, d);
}

/** The variant of `img` (at the model's input size) for one generated set. */
export function generateOod(set: GeneratedSet, img: PixelImage, seed: number, sha256: string, grid = 8): PixelImage {
  const rng = () => derivedRng(seed, `ood/${set}`, sha256);
  switch (set) {
    case 'uniform': return uniformNoise(img, rng());
    case 'gaussian': return gaussianNoise(img, rng());
    case 'constant': return constantImage(img, rng());
    case 'inverted': return invert(img);
    case 'rot90': return rotate90(img);
    case 'rot180': return rotate180(img);
    case 'tilt15': return rotateAbout(img, 15, borderMean(img));
    case 'tilt30': return rotateAbout(img, 30, borderMean(img));
    case 'tilt45': return rotateAbout(img, 45, borderMean(img));
    case 'tilt60': return rotateAbout(img, 60, borderMean(img));
    case 'patches': return patchShuffle(img, grid, rng());
  }
}

/**
 * The generated sets as views (views/): the transforms in the graph, the draws on the CPU from the
 * same seeds as generateOod (uniform and constant values as given views; the uniforms of the
 * Gaussian set; the tile permutation), so a view is generateOod's image to float32 rounding.
 */
export function oodViews(sets: GeneratedSet[], C: number, H: number, W: number, grid: number): {
  ops: ViewOp[];
  inputs(img: PixelImage, seed: (set: GeneratedSet) => number): ViewInputs;
  /** Gives an inputs() result back once its run is over, to be filled again for a later image. */
  recycle(inputs: ViewInputs): void;
} {
  const ops: ViewOp[] = [];
  const rows = tileBorders(H, Math.max(1, Math.min(grid, H)));
  const cols = tileBorders(W, Math.max(1, Math.min(grid, W)));
  let given = 0;
  for (const set of sets) {
    switch (set) {
      case 'uniform': case 'constant': ops.push({ kind: 'given', slot: given++ }); break;
      case 'gaussian': ops.push({ kind: 'normal', slot: 0 }); break;
      case 'inverted': ops.push({ kind: 'invert' }); break;
      case 'rot90': ops.push({ kind: 'rotate', degrees: 90 }); break;
      case 'rot180': ops.push({ kind: 'rotate', degrees: 180 }); break;
      case 'tilt15': case 'tilt30': case 'tilt45': case 'tilt60': ops.push({ kind: 'rotate', degrees: Number(set.slice(4)) }); break;
      case 'patches': ops.push({ kind: 'tiles', rows, cols, slot: 0 }); break;
    }
  }
  // sets given back (2.4 MB an ImageNet image, every value written again below: fresh ones cost
  // 240 MB of zeroed, faulted-in memory and a few full collections per 100 images)
  const kept: ViewInputs[] = [];
  return {
    ops,
    recycle(inputs) {
      keepForReuse(kept, inputs);
    },
    inputs(img, seed) {
      const plane = C * H * W;
      const out: ViewInputs = kept.pop() ?? {};
      if (given && !out.given) out.given = new Float32Array(given * plane);
      let k = 0;
      for (const set of sets) {
        if (set === 'uniform') uniforms(seed(set), plane, out.given!.subarray(k++ * plane, k * plane));
        else if (set === 'constant') {
          const v = out.given!.subarray(k++ * plane, k * plane);
          const rng = mulberry32(seed(set));
          for (let c = 0; c < C; c++) v.fill(rng(), c * H * W, (c + 1) * H * W);
        } else if (set === 'gaussian') out.noise = gaussianUniforms(seed(set), plane, out.noise as Float32Array<ArrayBuffer> | undefined);
        else if (set === 'patches') out.perm = tilePermutation(rows, cols, mulberry32(seed(set)));
      }
      return out;
    },
  };
}

/** patchShuffle's permutation: source[destination tile], shuffled within tiles of one size. */
function tilePermutation(rows: number[], cols: number[], rng: () => number): number[] {
  const nc = cols.length - 1;
  const groups = new Map<string, number[]>();
  for (let r = 0; r < rows.length - 1; r++) {
    for (let c = 0; c < nc; c++) {
      const key = `${rows[r + 1] - rows[r]}x${cols[c + 1] - cols[c]}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(r * nc + c);
    }
  }
  const source = new Array<number>((rows.length - 1) * nc);
  for (const members of groups.values()) {
    const perm = shuffleInPlace([...members], rng);
    members.forEach((dst, k) => (source[dst] = perm[k]));
  }
  return source;
}

// ---------------------------------------------------------------------------------------------
// Scores

interface ScoreMode {
  /** Store energy (logits outputs, not likelihood mode). */
  energy: boolean;
  likelihood: boolean;
}

/** Scores of row `row` of a prediction's logits, in double precision. */
export function scoresOf(logits: Float32Array, row: number, K: number, mode: ScoreMode): OodScores & { pred: number } {
  const o = row * K;
  const pred = argmax(logits, o, K);
  const max = logits[o + pred];
  let sum = 0;
  for (let c = 0; c < K; c++) sum += Math.exp(logits[o + c] - max);
  const lse = max + Math.log(sum);
  const s: OodScores & { pred: number } = { pred, msp: 1 / sum };
  if (mode.likelihood) s.likelihood = K === 1 ? max : lse;
  else if (mode.energy) s.energy = lse;
  return s;
}

/** A score read back from a record: JSON turns NaN into null, this turns it back. */
const num = (x: number | null | undefined): number => (typeof x === 'number' ? x : NaN);

// ---------------------------------------------------------------------------------------------
// The probe

function setsParam(v: unknown): GeneratedSet[] {
  if (v === undefined || v === 'all') return [...GENERATED_SETS];
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw new SkepticInputError(`probe parameter ood.sets must be a list of set names or "all", got ${JSON.stringify(v)}`);
  }
  if (list.length === 1 && list[0] === 'none') return [];
  for (const s of list) {
    if (!(GENERATED_SETS as readonly string[]).includes(s)) {
      throw new SkepticInputError(`probe parameter ood.sets: unknown set '${s}'; known: ${GENERATED_SETS.join(', ')} (or "all", "none")`);
    }
  }
  return GENERATED_SETS.filter((s) => list.includes(s));
}

export interface OodSetMetrics {
  source: 'generated' | 'data';
  title: string;
  path?: string;
  count: number;
  /** Items of a user set that could not be read (skipped). */
  unreadable?: number;
  error?: string;
  /** Mean of each score over the set (MSP/energy/likelihood, then the feature detectors). */
  mean: Partial<Record<ScoreName | DetectorName, number | null>>;
  auroc: Partial<Record<ScoreName | DetectorName, number | null>>;
  fprAtTpr: Partial<Record<ScoreName | DetectorName, number | null>>;
  /** Mean confidence (or likelihood) above the real data's. */
  beatsData: boolean;
}

export function oodProbe(params: Record<string, unknown> = {}): Probe<OodRecord> {
  const sets = setsParam(params.sets);
  const grid = numberParam(params, 'ood', 'grid', 8, 1, 256);
  const likelihood = boolParam(params, 'ood', 'likelihood', false);
  const oodData = params.oodData === undefined || params.oodData === null || params.oodData === '' ? undefined : String(params.oodData);
  const oodLimit = numberParam(params, 'ood', 'oodLimit', 0, 0);
  const confident = numberParam(params, 'ood', 'confident', 0.9, 0, 1);
  const topWrong = numberParam(params, 'ood', 'topWrong', 20, 0, 10000);
  const eceBins = numberParam(params, 'ood', 'eceBins', 15, 1, 1000);
  const histBins = numberParam(params, 'ood', 'histogramBins', 20, 1, 1000);
  const tpr = numberParam(params, 'ood', 'tpr', 0.95, 0.01, 1);
  const samples = numberParam(params, 'ood', 'samples', 4, 0, 100);
  if (![grid, oodLimit, topWrong, eceBins, histBins, samples].every(Number.isInteger)) {
    throw new SkepticInputError('probe parameters ood.grid, oodLimit, topWrong, eceBins, histogramBins and samples must be integers');
  }
  // Feature-space detectors (ood/): off in likelihood mode (no classifier features to speak of).
  const detectors = likelihood ? [] : detectorsParam(params.detectors);
  const featuresParam = params.features === undefined || params.features === null || params.features === '' || params.features === 'auto'
    ? undefined
    : String(params.features);
  const k = numberParam(params, 'ood', 'k', 50, 1, 100000);
  const ridge = numberParam(params, 'ood', 'ridge', 1e-6, 0, 1);
  const reactPercentile = numberParam(params, 'ood', 'reactPercentile', 90, 0, 100);
  const minAuroc = numberParam(params, 'ood', 'minAuroc', 0.6, 0, 1);
  if (!Number.isInteger(k)) throw new SkepticInputError('probe parameter ood.k must be an integer');
  const detOptions = { k, ridge, percentile: reactPercentile };

  /** The feature tap (one per model and audit), opened on first use. */
  let tapState: { model: LoadedModel; tap: Promise<Tap> } | undefined;
  const getTap = (model: LoadedModel): Promise<Tap> => {
    if (!tapState || tapState.model !== model) tapState = { model, tap: openTap(model, featuresParam) };
    return tapState.tap;
  };
  /**
   * Logits (and features when the tap is open) of a batch: with detectors on, one run of the tap
   * session gives both; otherwise the model's own predict().
   */
  async function forward(model: LoadedModel, batch: PixelBatch): Promise<{ logits: Float32Array; numClasses: number; feats?: { dims: number; data: Float32Array } }> {
    const tap = detectors.length ? await getTap(model) : undefined;
    if (!tap?.runner) {
      const out = await model.predict(batch);
      return { logits: out.logits, numClasses: out.numClasses };
    }
    const K = model.info.numClasses;
    const r = await tap.runner.run(batch.data, batch.n);
    const logits = r.output!;
    toLogitsAndProbs(model.info.outputKind, logits, batch.n, K, new Float32Array(batch.n * K));
    return { logits, numClasses: K, feats: { dims: r.dims, data: r.data } };
  }

  /** The images whose variants render() draws: set by summarize, which runs first. */
  let sampled = new Set<number>();

  const modeOf = (model: LoadedModel): ScoreMode => ({ likelihood, energy: !likelihood && model.info.outputKind === 'logits' });
  /** The scores reported, primary first. */
  const scoreNames = (model: LoadedModel): ScoreName[] => {
    if (likelihood) return model.info.numClasses > 1 ? ['likelihood', 'msp'] : ['likelihood'];
    return model.info.outputKind === 'logits' ? ['msp', 'energy'] : ['msp'];
  };

  /**
   * The views of each image (the image, then one per set) made by the views module and run through
   * the model in one session; with feature detectors on, the same session returns the penultimate
   * features of every view (the tap's tensor added to the composed graph's outputs). Where the
   * plan cannot be composed with the model (a standalone view graph), the views it makes go
   * through the feature tap. Either way the views are the view graph's: one path.
   */
  /** An image's seed per generated set: its views' draws, in the audit and in the samples' images. */
  const oodSeeds = (auditSeed: number, img: ProbeImage) => (set: GeneratedSet) => derivedSeed(auditSeed, `ood/${set}`, img.sha256);

  /** The views of the last size audited: kept from batch to batch, with the input sets they give back. */
  let lastViews: { key: string; views: ReturnType<typeof oodViews> } | undefined;
  function viewsAt(C: number, H: number, W: number) {
    const key = `${C}×${H}×${W}`;
    if (lastViews?.key !== key) lastViews = { key, views: oodViews(sets, C, H, W, grid) };
    return lastViews.views;
  }

  /** The image itself, then its views of every generated set. */
  const planAt = ({ channels: C, height: H, width: W, margin: m }: ViewShape): ViewPlan => ({ channels: C, height: H, width: W, margin: m, ops: [{ kind: 'crop', top: m, left: m }, ...viewsAt(C, H, W).ops] });

  async function runAll(images: ProbeImage[], ctx: ProbeContext): Promise<OodRecord[]> {
    const { model, seed } = ctx;
    const { channels: C, height: H, width: W } = images[0].pixels;
    const views = viewsAt(C, H, W);
    const plan = planAt(viewShape(images[0]));
    const tap = detectors.length ? await getTap(model) : undefined;
    const features = tap?.runner ? { tensor: tap.tensor, quant: tap.quant } : undefined;
    const runner = await viewsFor(model, plan, features);
    const source = (img: ProbeImage): ViewSource => {
      const inputs = views.inputs(img.pixels, oodSeeds(seed, img));
      return { source: img.context, inputs, done: () => views.recycle(inputs) };
    };
    const records = new Map<ProbeImage, OodRecord>();
    if (features && !runner.features) {
      // standalone views (no composed session to carry the features): the view graph's views
      // through the tap, whose one run gives logits and features
      for (const group of groupsWithin(images, plan.ops.length)) {
        throwIfAborted(ctx.signal);
        const sources = group.map(source);
        const pixels = await makeViews(plan, sources);
        for (const s of sources) s.done?.();
        const out = await forward(model, { data: pixels, n: group.length * plan.ops.length, channels: C as 1 | 3, height: H, width: W });
        group.forEach((img, i) => records.set(img, withFeatures(img, out, i * plan.ops.length, model, seed)));
      }
    } else {
      await runViews(runner, images, source, (img, out, base) => records.set(img, withFeatures(img, out, base, model, seed)), ctx.signal);
    }
    return images.map((img) => records.get(img)!);
  }

  /** The record at row `base`, with the features of the image and (score half) of its OOD views when the run gave them. */
  function withFeatures(img: ProbeImage, out: Pick<Prediction, 'logits' | 'numClasses'> & { feats?: { dims: number; data: Float32Array } }, base: number, model: LoadedModel, seed: number): OodRecord {
    const rec = record(img, out, base, model);
    const f = out.feats;
    if (f) {
      const row = (v: number) => f.data.subarray(v * f.dims, (v + 1) * f.dims);
      rec.fit = inFitHalf(seed, img.sha256);
      rec.feat = pack(row(base));
      if (!rec.fit) rec.oodFeat = Object.fromEntries(sets.map((set, j) => [set, pack(row(base + 1 + j))]));
    }
    return rec;
  }

  /** The record of the image whose views start at row `base` (the image, then each set's view). */
  function record(img: ProbeImage, out: Pick<Prediction, 'logits' | 'numClasses'>, base: number, model: LoadedModel): OodRecord {
    const K = out.numClasses;
    const mode = modeOf(model);
    const { pred, ...scores } = scoresOf(out.logits, base, K, mode);
    const rec: OodRecord = { pred, ...scores, ood: {} };
    if (img.label !== undefined && !(likelihood && K === 1)) rec.correct = pred === img.label;
    sets.forEach((set, j) => {
      const { pred: _p, ...s } = scoresOf(out.logits, base + 1 + j, K, mode);
      rec.ood[set] = s;
    });
    return rec;
  }

  /**
   * Streams the user's OOD dataset through the model: its scores, or why it could not be read.
   * A cancelled audit still gets its summary: the set is then left out (`cancelled`), not
   * reported half-read.
   */
  async function userSet(
    ctx: SummaryContext, fitted?: FittedSet,
  ): Promise<{ name: string; path: string; scores: OodScores[]; det: Partial<Record<DetectorName, number>>[]; unreadable: number; error?: string; cancelled?: boolean }> {
    const path = resolve(oodData!);
    const name = basename(path).replace(/\.(csv|jsonl|ndjson)$/i, '') || path;
    const scores: OodScores[] = [];
    const det: Partial<Record<DetectorName, number>>[] = [];
    let unreadable = 0;
    const cancelled = () => ({ name, path, scores: [], det: [], unreadable: 0, error: 'not read: the audit was cancelled', cancelled: true });
    if (ctx.signal?.aborted) return cancelled();
    let ds;
    try {
      ds = await openDataset(path, { limit: oodLimit || undefined, seed: ctx.seed });
    } catch (e) {
      if (!(e instanceof SkepticInputError)) throw e;
      return { name, path, scores, det, unreadable, error: e.message };
    }
    unreadable += ds.records.filter((r) => r.problem).length;
    const mode = modeOf(ctx.model);
    try {
      for await (const batch of ds.stream(ctx.model.decodeSpec(0), { batchSize: 32, signal: ctx.signal })) {
        throwIfAborted(ctx.signal);
        const ok = batch.filter((s) => s.image && !s.error);
        unreadable += batch.length - ok.length;
        if (!ok.length) continue;
        const out = await forward(ctx.model, toBatch(ok.map((s) => s.image!)));
        for (let i = 0; i < ok.length; i++) {
          const { pred: _p, ...s } = scoresOf(out.logits, i, out.numClasses, mode);
          scores.push(s);
          if (fitted && out.feats) det.push(scoreAll(fitted, out.feats.data.slice(i * out.feats.dims, (i + 1) * out.feats.dims)));
        }
      }
    } catch (e) {
      if (ctx.signal?.aborted) return cancelled();
      throw e;
    }
    return { name, path, scores, det, unreadable };
  }

  return {
    id: 'ood',
    title: 'Out-of-distribution confidence',
    params: {
      sets, grid, likelihood, oodData: oodData ?? null, oodLimit, confident, topWrong, eceBins, histogramBins: histBins, tpr, samples,
      detectors, features: featuresParam ?? 'auto', k, ridge, reactPercentile, minAuroc,
    },
    // Records hold features only with detectors on; the tensor decides which.
    cacheParams: detectors.length ? { sets, grid, likelihood, features: featuresParam ?? 'auto' } : { sets, grid, likelihood },
    margin: 0,
    rules: RULES,

    run: runAll,
    // with feature detectors on, the plan also returns the feature tap's tensor, which is found
    // when the first run opens the tap: that plan then runs in a session of its own
    viewPlans: (shape) => (detectors.length ? [] : [{ plan: planAt(shape) }]),

    async summarize(records, ctx) {
      const names = scoreNames(ctx.model);
      const primary = names[0];
      const K = ctx.model.info.numClasses;
      const classifier = !(likelihood && K === 1);
      const inScores = Object.fromEntries(names.map((s) => [s, records.map((r) => num(r[s]))])) as Record<ScoreName, number[]>;
      const inMean = Object.fromEntries(names.map((s) => [s, mean(inScores[s])])) as Record<ScoreName, number | null>;

      // The OOD sets: the generated ones (from the records), then the user's.
      const outSets: Array<{ name: string; meta: Pick<OodSetMetrics, 'source' | 'title' | 'path' | 'unreadable' | 'error'>; scores: Record<ScoreName, number[]> }> = [];
      for (const set of GENERATED_SETS) {
        const have = records.filter((r) => r.ood?.[set]);
        if (!have.length) continue;
        outSets.push({
          name: set,
          meta: { source: 'generated', title: SET_TITLES[set] },
          scores: Object.fromEntries(names.map((s) => [s, have.map((r) => num(r.ood[set]![s]))])) as Record<ScoreName, number[]>,
        });
      }
      const findings: FindingDraft[] = [];

      // Feature-space detectors: fitted on the fit half's features, scoring the other half and its
      // OOD variants (ood/compose.ts); their scores join the sets' metrics under their own names.
      let fitted: FittedSet | undefined;
      let tap: Tap | undefined;
      const detIn: Partial<Record<DetectorName, number[]>> = {};
      const detOut = new Map<string, Partial<Record<DetectorName, number[]>>>();
      const detNames: DetectorName[] = [];
      if (detectors.length) {
        tap = await getTap(ctx.model).catch((e: unknown) => ({ tensor: '', how: '', error: (e as Error).message }));
        const withFeat = records.filter((r) => r.feat);
        if (withFeat.length) {
          ctx.progress?.('fitting the feature detectors');
          const fitRows: FitRow[] = withFeat.filter((r) => r.fit).map((r) => ({ feat: r.feat!, cls: ctx.images[r.image]?.label ?? r.pred }));
          fitted = fitDetectors(detectors, fitRows, tap.head, tap.headError, ctx.seed, detOptions);
          detNames.push(...DETECTORS.filter((n) => fitted!.fitted[n]));
          const scoreHalf = withFeat.filter((r) => !r.fit);
          const collect = (feats: Packed[]) => {
            const per = feats.map((f) => scoreAll(fitted!, f));
            return Object.fromEntries(detNames.map((n) => [n, per.map((p) => num(p[n]))])) as Partial<Record<DetectorName, number[]>>;
          };
          Object.assign(detIn, collect(scoreHalf.map((r) => r.feat!)));
          for (const set of GENERATED_SETS) {
            const have = scoreHalf.filter((r) => r.oodFeat?.[set]);
            if (have.length) detOut.set(set, collect(have.map((r) => r.oodFeat![set]!)));
          }
        }
      }

      if (oodData) {
        const u = await userSet(ctx, fitted);
        if (fitted) detOut.set('__user', Object.fromEntries(detNames.map((n) => [n, u.det.map((p) => num(p[n]))])));
        let name = u.name;
        while (outSets.some((s) => s.name === name)) name = `${name} (data)`;
        outSets.push({
          name,
          meta: { source: 'data', title: name, path: u.path, unreadable: u.unreadable, ...(u.error ? { error: u.error } : {}) },
          scores: Object.fromEntries(names.map((s) => [s, u.scores.map((x) => num(x[s]))])) as Record<ScoreName, number[]>,
        });
        if (u.error && !u.cancelled) {
          findings.push({ rule: 'ood/ood-data-unreadable', severity: 'error', message: `OOD dataset ${u.path}: ${u.error}`, metrics: { path: u.path } });
        }
      }

      const r6 = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? null : round(x));
      const setMetrics: Record<string, OodSetMetrics> = {};
      for (const s of outSets) {
        const m: OodSetMetrics = {
          ...s.meta,
          count: s.scores[primary].length,
          mean: {},
          auroc: {},
          fprAtTpr: {},
          beatsData: false,
        };
        for (const score of names) {
          m.mean[score] = r6(mean(s.scores[score]));
          m.auroc[score] = r6(auroc(inScores[score], s.scores[score]));
          m.fprAtTpr[score] = r6(fprAtTpr(inScores[score], s.scores[score], tpr)?.fpr);
        }
        const dOut = detOut.get(s.meta.source === 'data' ? '__user' : s.name) ?? {};
        for (const n of detNames) {
          const xs = dOut[n] ?? [];
          (s.scores as Record<string, number[]>)[n] = xs;
          m.mean[n] = r6(mean(xs));
          m.auroc[n] = r6(auroc(detIn[n]!, xs));
          m.fprAtTpr[n] = r6(fprAtTpr(detIn[n]!, xs, tpr)?.fpr);
        }
        // The best score, feature detectors included, still cannot tell the set from the data
        // (only when detectors ran: the softmax scores alone are covered by the findings above).
        const all = [...names, ...detNames].map((sc) => [sc, m.auroc[sc]] as const).filter((x): x is readonly [ScoreName | DetectorName, number] => typeof x[1] === 'number');
        const best = all.reduce<readonly [string, number] | undefined>((a, x) => (!a || x[1] > a[1] ? x : a), undefined);
        if (detNames.length && best && best[1] < minAuroc && s.scores[primary].length) {
          findings.push({
            rule: 'ood/undetectable',
            severity: 'warning',
            message: `no score tells OOD set '${s.name}' (${s.meta.title}) from the real data: the best, ${best[0]}, has AUROC ${best[1].toFixed(3)} (below ${minAuroc}).`,
            metrics: { set: s.name, score: best[0], auroc: best[1], minAuroc },
          });
        }
        const outMean = mean(s.scores[primary]);
        m.beatsData = outMean !== null && inMean[primary] !== null && outMean > inMean[primary]!;
        setMetrics[s.name] = m;
        if (m.beatsData) {
          const fmt = (x: number) => (primary === 'likelihood' ? x.toPrecision(6) : pct(x));
          const what = primary === 'likelihood' ? 'mean log-likelihood' : 'mean confidence (max softmax probability)';
          findings.push({
            rule: 'ood/more-confident-than-data',
            severity: 'warning',
            message:
              `OOD set '${s.name}' (${s.meta.title}) gets a higher ${what} than the real data: ${fmt(outMean!)} against ${fmt(inMean[primary]!)}` +
              (m.auroc[primary] !== null ? `; AUROC ${m.auroc[primary]!.toFixed(3)}.` : '.'),
            metrics: { set: s.name, score: primary, meanOut: r6(outMean), meanIn: r6(inMean[primary]), auroc: m.auroc[primary] ?? null },
          });
        }
      }

      // Calibration and confident errors (labelled images, classifiers only).
      const labelled = classifier ? records.filter((r) => r.correct !== undefined) : [];
      const cal = calibration(labelled.map((r) => num(r.msp)), labelled.map((r) => r.correct!), eceBins);
      const confidentWrong = labelled.filter((r) => !r.correct && num(r.msp) > confident);
      const wrongRanked = labelled.filter((r) => !r.correct).sort((a, b) => num(b.msp) - num(a.msp) || a.image - b.image);
      const top = wrongRanked.slice(0, topWrong);
      for (const r of confidentWrong) {
        const label = ctx.images[r.image].label!;
        findings.push({
          rule: 'ood/confident-wrong',
          severity: 'warning',
          image: r.image,
          message: `predicted '${ctx.className(r.pred)}' with ${pct(r.msp)} confidence, but the label is '${ctx.className(label)}'.`,
          metrics: { pred: r.pred, label, confidence: r6(r.msp) },
        });
      }

      const metrics = {
        count: records.length,
        labelled: labelled.length,
        scores: names,
        primaryScore: primary,
        scoreNotes: {
          msp: 'maximum softmax probability',
          ...(names.includes('energy') ? { energy: '−E(x) = logsumexp(logits): higher = more in-distribution' } : {}),
          ...(names.includes('likelihood') ? { likelihood: 'the model output as a log-likelihood (logsumexp over outputs when there are several)' } : {}),
          ...(!likelihood && !names.includes('energy')
            ? { energySkipped: `the model outputs ${ctx.model.info.outputKind}: its logits are log p, so logsumexp(logits) = 0 for every input and the energy score is not meaningful` }
            : {}),
        },
        meanIn: Object.fromEntries(names.map((s) => [s, r6(inMean[s])])),
        tpr,
        sets: setMetrics,
        ece: classifier ? r6(cal.ece) : null,
        mce: classifier ? r6(cal.mce) : null,
        eceBins,
        accuracy: labelled.length ? round(labelled.filter((r) => r.correct).length / labelled.length) : null,
        confidentThreshold: confident,
        confidentWrongCount: confidentWrong.length,
        confidentWrongRate: labelled.length ? round(confidentWrong.length / labelled.length) : null,
        setsMoreConfidentThanData: outSets.filter((s) => setMetrics[s.name].beatsData).map((s) => s.name),
        ...(detectors.length
          ? {
              detectors: {
                requested: detectors,
                scores: detNames,
                tensor: tap?.tensor || null,
                how: tap?.how || null,
                dims: fitted?.d ?? null,
                head: tap?.head ? `${tap.head.how}, ${tap.head.K}×${tap.head.d}` : null,
                fit: fitted?.fitCount ?? 0,
                scored: detIn[detNames[0]]?.length ?? 0,
                info: Object.fromEntries(detNames.map((n) => [n, fitted!.fitted[n]!.info])),
                skipped: { ...(tap?.error ? Object.fromEntries(detectors.map((n) => [n, tap!.error!])) : {}), ...(fitted?.skipped ?? {}) },
                note: 'fitted on a seeded half of the images (by content hash), scored on the other half and its OOD variants; higher = more in-distribution',
              },
              minAuroc,
            }
          : {}),
      };

      // Plots: per score, histograms in vs each set over a shared range, and ROC curves.
      const histograms: Record<string, unknown> = {};
      const roc: Record<string, Record<string, Array<[number, number]> | null>> = {};
      for (const score of [...names, ...detNames] as ScoreName[]) {
        const inS = (detNames as string[]).includes(score) ? detIn[score as unknown as DetectorName]! : inScores[score];
        let lo = 0;
        let hi = 1;
        if (score !== 'msp') {
          // A shared range over the real data and every set (a loop: spreading 10⁵ values into
          // Math.min would overflow the call stack).
          lo = Infinity;
          hi = -Infinity;
          for (const xs of [inS, ...outSets.map((s) => s.scores[score] ?? [])]) {
            for (const x of xs) {
              if (!Number.isFinite(x)) continue;
              if (x < lo) lo = x;
              if (x > hi) hi = x;
            }
          }
          if (lo > hi) [lo, hi] = [0, 1];
        }
        const hIn = histogram(inS, histBins, lo, hi);
        histograms[score] = {
          edges: hIn.edges.map((e) => round(e, 6)),
          in: hIn.counts,
          sets: Object.fromEntries(outSets.map((s) => [s.name, histogram(s.scores[score] ?? [], histBins, lo, hi).counts])),
        };
        roc[score] = Object.fromEntries(
          outSets.map((s) => [s.name, rocCurve(inS, s.scores[score] ?? [], 101)?.map(([f, t]) => [round(f, 5), round(t, 5)] as [number, number]) ?? null]),
        );
      }
      const plots = {
        histograms,
        roc,
        reliability: classifier
          ? cal.bins.map((b) => ({ lo: round(b.lo), hi: round(b.hi), count: b.count, meanConfidence: r6(b.meanConfidence), accuracy: r6(b.accuracy) }))
          : null,
      };

      // Records: the most confident wrong answers, and the images whose variants are drawn.
      const sampleImages = records.slice(0, samples).map((r) => r.image);
      sampled = new Set(sampleImages);
      const why = new Map<number, string[]>();
      top.forEach((r) => why.set(r.image, ['most-confident-wrong']));
      for (const i of sampleImages) why.set(i, [...(why.get(i) ?? []), 'ood-sample']);
      const slim = records
        .filter((r) => why.has(r.image))
        .map((r) => {
          const out: { image: number } & Record<string, unknown> = { image: r.image, why: why.get(r.image), pred: r.pred };
          if (r.correct !== undefined) out.correct = r.correct;
          if (ctx.images[r.image]?.label !== undefined) out.label = ctx.images[r.image].label;
          for (const s of names) out[s] = r6(r[s]);
          if (why.get(r.image)!.includes('ood-sample')) {
            out.ood = Object.fromEntries(
              Object.entries(r.ood ?? {}).map(([set, sc]) => [set, Object.fromEntries(names.map((s) => [s, r6(sc![s])]))]),
            );
          }
          return out;
        });

      // The tap's session is not needed any more.
      if (tapState?.model === ctx.model) {
        await (await tapState.tap.catch(() => undefined))?.runner?.release().catch(() => undefined);
        tapState = undefined;
      }

      const label = primary === 'likelihood' ? 'likelihood' : 'MSP';
      const aurocs = outSets.map((s) => `${s.name} ${setMetrics[s.name].auroc[primary] === null ? '–' : setMetrics[s.name].auroc[primary]!.toFixed(2)}`);
      const headline =
        (aurocs.length ? `${label} AUROC: ${aurocs.join(', ')}` : 'no OOD sets') +
        (classifier && cal.ece !== null ? `; ECE ${pct(cal.ece)}; ${pct(metrics.confidentWrongRate)} confident-but-wrong` : '') +
        (metrics.setsMoreConfidentThanData.length ? `; more confident than the data: ${metrics.setsMoreConfidentThanData.join(', ')}` : '') +
        (detNames.length
          ? `; feature detectors, mean AUROC over the sets: ${detNames.map((n) => {
              const xs = outSets.map((s) => setMetrics[s.name].auroc[n]).filter((x): x is number => typeof x === 'number');
              return `${n} ${xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2) : '–'}`;
            }).join(', ')}`
          : '');

      return {
        headline,
        metrics,
        plots,
        findings,
        records: slim,
        render: [...new Set([...top.map((r) => r.image), ...sampleImages])],
      };
    },

    async render(images, _records, ctx) {
      const files = new Map<number, string[]>();
      if (!images.length) return files;
      // The variants from the views module, as the audit made them (its draws and graph, here on
      // the CPU): generateOod's plain loops (rotations above all) took ~0.8 s of the main thread
      // for the samples of 100 ImageNet images
      const { channels: C, height: H, width: W } = images[0].pixels;
      const views = viewsAt(C, H, W);
      const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: views.ops };
      const scale = Math.max(1, Math.floor(112 / Math.max(H, W)));
      const maker = sets.length && images.some((img) => sampled.has(img.image)) ? await viewMaker(plan) : undefined;
      try {
        for (const img of images) {
          const dir = `ood/${img.image}`;
          const out = [await ctx.writePng(`${dir}/image.png`, img.pixels, { scale })];
          // The sample images (the first `samples` of the summary) also get each generated variant;
          // the confident-wrong ones get the image alone.
          if (maker && sampled.has(img.image)) {
            const inputs = views.inputs(img.pixels, oodSeeds(ctx.seed, img));
            const made = await maker.views({ source: img.pixels, inputs });
            views.recycle(inputs);
            for (const [k, set] of sets.entries()) out.push(await ctx.writePng(`${dir}/${set}.png`, made[k], { scale }));
          }
          files.set(img.image, out);
        }
      } finally {
        await maker?.release();
      }
      return files;
    },
  };
}
