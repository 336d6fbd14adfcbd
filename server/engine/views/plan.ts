/**
 * What a probe asks of the views module: a plan, the same for every image it audits, listing the
 * views to make of each image, in pixel space. The plan is static (it becomes an ONNX graph, built
 * once per probe and model); what changes from image to image (random positions, noise drawn with
 * the image's seed, views made on the CPU) travels as per-image inputs.
 *
 * Every view has the model's input size C×H×W. Views read the source image, which is the image
 * with `margin` pixels of real context on each side (ProbeImage.context); all views but `crop`
 * start from its centre (ProbeImage.pixels).
 */
import type { PixelImage } from '../types';
import type { ImagenetCViewOp } from './imagenet-c';

export type ViewOp =
  /** The H×W window of the source whose top-left corner is (top, left) (the centre: margin, margin). */
  | { kind: 'crop'; top: number; left: number }
  /** The centre on a black 2H×2W canvas with its top-left corner at inputs.embed[slot] = (top, left),
   *  0 ≤ top ≤ H, 0 ≤ left ≤ W, scaled back to H×W by averaging 2×2 blocks. */
  | { kind: 'embed'; slot: number }
  /** centre + sigma · z, clipped to [0,1], z standard normal by Box–Muller from the uniform pairs
   *  inputs.noise[slot] (random.ts gaussianUniforms: the draws gaussian() makes, with the image's seed). */
  | { kind: 'noise'; sigma: number; slot: number }
  /** inputs.given[slot] as it is: a view the CPU made (JPEG through sharp, Poisson noise). */
  | { kind: 'given'; slot: number }
  /** Correlation with a (2h+1)² kernel (row-major weights, e.g. diskKernel), borders reflected
   *  without repeating the edge (OpenCV's BORDER_REFLECT_101); clipped to [0,1]. */
  | { kind: 'blur'; kernel: { size: number; weights: ArrayLike<number> } }
  /** Area-average down to ⌊H·factor⌋×⌊W·factor⌋ (at least 1), nearest neighbours back up. */
  | { kind: 'pixelate'; factor: number }
  /** HSV value + delta, clipped; hue and saturation kept (a black pixel becomes grey delta). */
  | { kind: 'brightness'; delta: number }
  /** (x − m)·factor + m per channel, m the channel's mean over the image; clipped. */
  | { kind: 'contrast'; factor: number }
  /** The centre cut into the tiles between row boundaries `rows` and column boundaries `cols`
   *  (tile t = r·(cols.length−1) + c), with tile perm[k] moved to the place of tile k; perm is
   *  inputs.perm's entry for `slot` (per image) and may only swap tiles of equal size. Pixels
   *  outside the tiles stay in place. */
  | { kind: 'tiles'; rows: number[]; cols: number[]; slot: number }
  /** A canvas filled per channel (with the centre's mean colour, or a grey level) with the
   *  size×size patch of the centre at (top, left) in place (size 0: the empty canvas). */
  | { kind: 'patch'; top: number; left: number; size: number; fill: 'mean' | number }
  /** 1 − x. */
  | { kind: 'invert' }
  /** N(μ_c, σ_c) per value, μ_c and σ_c the centre's own channel mean and (population) standard
   *  deviation, clipped; z by Box–Muller from the uniform pairs inputs.noise[slot]. */
  | { kind: 'normal'; slot: number }
  /** Rotated `degrees` counter-clockwise (as displayed, y down) about the centre, bilinear; what
   *  comes from outside the frame is the per-channel mean of the one-pixel border. */
  | { kind: 'rotate'; degrees: number }
  /** Cue-conflict's composition of A's shape with B's texture (cue/generate.ts compose), in float64:
   *  (1−e)·(m·clip(T·s) + (1−m)·x) + e·ink, x the centre (A's background plane), T given slot
   *  `texture` (B's quilted texture), and weight planes `weights` … `weights`+3: m (A's soft
   *  silhouette), its shading (s = clamp(1 + shading·sh, 0.3, 1.7), sh the op's `shading`), its
   *  edges (e = edgeWeight·edges) and the ink (0 or 1 over the plane). */
  | { kind: 'composite'; texture: number; weights: number; edgeWeight: number; shading: number }
  /** ImageNet-C's blurs, weather and digital corruptions beyond the first eight (views/imagenet-c.ts). */
  | ImagenetCViewOp;

export interface ViewPlan {
  /** The model's input size: every view is channels × height × width. */
  channels: number;
  height: number;
  width: number;
  /** Context pixels around the centre in the source (0: the source is the centre). */
  margin: number;
  ops: ViewOp[];
}

/** Per-image inputs of a plan, each with `slots` entries in slot order. */
export interface ViewInputs {
  /** (top, left) per embed slot. */
  embed?: ArrayLike<number>;
  /** 2·C·H·W uniforms per noise slot: (u1, u2) per value, u1 > 0. */
  noise?: Float32Array;
  /** C·H·W pixel values per given slot. */
  given?: Float32Array;
  /** The tile permutations, one per tiles slot, concatenated in slot order. */
  perm?: ArrayLike<number>;
  /** C·H·W values per layer slot (fog's plasma, frost's texture crop). */
  layer?: Float32Array;
  /** H·W pixel indices per index plane (glass blur's shuffle, elastic's taps). */
  index?: Int32Array;
  /** H·W weights per weight plane (elastic's taps). */
  weight?: Float32Array;
}

/** One image to make views of: the source (with its margin) and its inputs. */
export interface ViewSource {
  source: PixelImage;
  inputs?: ViewInputs;
  /** Called by runViews once the run that read this source is over (its buffers may be reused). */
  done?: () => void;
}

/** How many slots of each per-image input a plan reads (perm: values, all tiles slots together). */
export function slotCounts(plan: ViewPlan): { embed: number; noise: number; given: number; perm: number } {
  const n = { embed: 0, noise: 0, given: 0, perm: 0 };
  for (const op of plan.ops) {
    if (op.kind === 'embed' || op.kind === 'noise' || op.kind === 'given') n[op.kind] = Math.max(n[op.kind], op.slot + 1);
    if (op.kind === 'normal') n.noise = Math.max(n.noise, op.slot + 1);
    if (op.kind === 'composite') n.given = Math.max(n.given, op.texture + 1);
  }
  n.noise = Math.max(n.noise, imagenetCSlots(plan).noise);
  const perms = permOffsets(plan);
  n.perm = perms.total;
  return n;
}

/**
 * Layers, index planes and weight planes per image that a plan's ImageNet-C ops read; noise slots
 * of speckle. Here, not beside the ImageNet-C graphs (views/imagenet-c.ts): the views worker counts
 * slots but builds no graph, and importing that file loaded the graph builder and the ONNX
 * protobuf code into every worker.
 */
export function imagenetCSlots(plan: ViewPlan): { layer: number; index: number; weight: number; noise: number } {
  const n = { layer: 0, index: 0, weight: 0, noise: 0 };
  for (const op of plan.ops) {
    if (op.kind === 'fog' || op.kind === 'frost') n.layer = Math.max(n.layer, op.slot + 1);
    if (op.kind === 'glass') n.index = Math.max(n.index, op.index + 1);
    if (op.kind === 'elastic') {
      n.index = Math.max(n.index, op.index + 4);
      n.weight = Math.max(n.weight, op.weight + 6);
    }
    if (op.kind === 'speckle') n.noise = Math.max(n.noise, op.slot + 1);
    if (op.kind === 'composite') n.weight = Math.max(n.weight, op.weights + 4); // cue-conflict's planes (views/graph.ts)
  }
  return n;
}

/** Where each tiles slot's permutation starts in inputs.perm. */
export function permOffsets(plan: ViewPlan): { at: Map<number, number>; total: number } {
  const sizes = new Map<number, number>();
  for (const op of plan.ops) if (op.kind === 'tiles') sizes.set(op.slot, (op.rows.length - 1) * (op.cols.length - 1));
  const at = new Map<number, number>();
  let total = 0;
  for (const slot of [...sizes.keys()].sort((a, b) => a - b)) {
    at.set(slot, total);
    total += sizes.get(slot)!;
  }
  return { at, total };
}

/** A key that names the plan's graph (two equal plans share one session). */
export function planKey(plan: ViewPlan): string {
  return JSON.stringify([plan.channels, plan.height, plan.width, plan.margin, plan.ops.map((op) =>
    op.kind === 'blur' ? { kind: op.kind, size: op.kernel.size, weights: Array.from(op.kernel.weights) } : op)]);
}

/** Checks a plan against itself (sizes, slots), so that a mistake fails before a graph is built. */
export function checkPlan(plan: ViewPlan): void {
  const { channels: C, height: H, width: W, margin: m } = plan;
  if (!(C >= 1 && H >= 1 && W >= 1 && m >= 0)) throw new RangeError(`view plan: bad size ${C}×${H}×${W} margin ${m}`);
  if (plan.ops.length === 0) throw new RangeError('view plan: no views');
  for (const op of plan.ops) {
    if (op.kind === 'crop' && (op.top < 0 || op.left < 0 || op.top + H > H + 2 * m || op.left + W > W + 2 * m)) {
      throw new RangeError(`view plan: crop at (${op.top}, ${op.left}) outside the ${H + 2 * m}×${W + 2 * m} source`);
    }
    if (op.kind === 'blur' && (op.kernel.size % 2 !== 1 || op.kernel.weights.length !== op.kernel.size ** 2)) {
      throw new RangeError('view plan: a blur kernel must be (2h+1)² weights');
    }
    if ('slot' in op && !(Number.isInteger(op.slot) && op.slot >= 0)) throw new RangeError(`view plan: bad slot ${op.slot}`);
    if (op.kind === 'tiles') {
      const ok = (b: number[], n: number) => b.length >= 2 && b[0] >= 0 && b[b.length - 1] <= n && b.every((v, i) => i === 0 || v > b[i - 1]);
      if (!ok(op.rows, H) || !ok(op.cols, W)) throw new RangeError('view plan: tile boundaries must rise inside the image');
    }
    if (op.kind === 'patch' && (op.size < 0 || op.top < 0 || op.left < 0 || op.top + op.size > H || op.left + op.size > W)) {
      throw new RangeError(`view plan: patch ${op.size} at (${op.top}, ${op.left}) outside ${H}×${W}`);
    }
  }
}

/** Per-image inputs kept for reuse: at ImageNet size they are ~25 MB an image, and fresh buffers
 *  that size cost a page fault per 4 KiB page every time (about a third of a million faults in a
 *  100-image audit). Two sets suffice there (one in a run, one being made); a few more are harmless. */
const KEEP_INPUTS = 4;
/** Beyond KEEP_INPUTS, sets are kept while all of them hold at most this much: a run of small
 *  images holds dozens of sets (MNIST: 16 images a run, ~0.3 MB each), given back together when it
 *  ends, and keeping only four made the next run allocate the rest anew (300 MB an audit). */
const KEEP_BYTES = 128 * 2 ** 20;

/** Keeps `set` in `kept` for reuse: at least `atLeast` sets, and more up to KEEP_BYTES in all. */
export function keepForReuse(kept: ViewInputs[], set: ViewInputs, atLeast = KEEP_INPUTS): void {
  if (kept.includes(set)) return;
  if (kept.length < atLeast || (kept.length + 1) * inputBytes(set) <= KEEP_BYTES) kept.push(set);
}

function inputBytes(set: ViewInputs): number {
  let bytes = 0;
  for (const v of Object.values(set)) if (ArrayBuffer.isView(v)) bytes += v.byteLength;
  return bytes;
}
