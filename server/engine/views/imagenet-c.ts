/**
 * View ops for ImageNet-C's corruptions beyond the first eight (image/imagenet-c.ts and
 * image/frost.ts define them; the tests hold these graphs to those loops):
 *
 *   gaussian  skimage's Gaussian blur: edge-repeating border by Gather, two depthwise Convs
 *             (k×1, 1×k) with scipy's sampled weights; clipped
 *   glass     the same blur in float64 as two MatMuls with banded matrices (the next step
 *             truncates to 8 bits, where float32 sums would land on the other side of a level),
 *             Floor(·255)/255, the per-image shuffle as GatherElements by an index plane the CPU
 *             drew (the reference's sequential "swaps", image/imagenet-c.ts glassPermutation),
 *             the float32 blur again; clipped
 *   zoom      every clipped zoom as a Slice (its centre crop) and a linear Resize (align_corners:
 *             scipy's order-1 zoom), its top-left H×W summed with the image, divided; clipped
 *   fog       (x + s·layer)·max/(max + s), the plasma layer drawn on the CPU per image; clipped
 *   frost     a·x + b·layer, the texture crop chosen on the CPU per image; clipped
 *   elastic   two rounds of four-tap bilinear resampling by GatherElements: the random affine
 *             warp's taps as the CPU computed them, then the displacement field's, made here: the
 *             drawn uniforms smoothed (the folded Gaussian as two MatMuls, or reflect-padded
 *             depthwise Convs when the kernel is short), times alpha, floored, mirrored
 *             half-sample; clipped. A run of elastic views (the severities) is made together.
 *   speckle   x + x·σ·z, z by Box–Muller from a noise slot's uniforms (as the noise view); clipped
 *   saturate  HSV saturation S·scale + shift in float64, written without the hue: each channel
 *             V − S'·V·(V − x)/(V − min), a grey pixel (V, V(1−S'), V(1−S')) as skimage's hue 0
 * Motion blur and snow stay CPU-made `given` views (views/corruptions.ts): their kernel direction
 * is drawn per image, so the graph would need a per-image 21–41-tap gather for each (GatherElements
 * costs several times the CPU's row loop, image/imagenet-c.ts motionBlurPlane), and snow's
 * layer runs through a zoom, a threshold and that blur before it is mixed in. Spatter likewise
 * (image/spatter.ts: Canny, a distance transform and histogram equalisation on a per-image layer).
 *
 * Per-image inputs (besides the noise slots): skeptic_view_layer float [n, L, C, H, W] (fog,
 * frost), skeptic_view_index int32 [n, I, H·W] (glass: one plane; elastic: the affine's four) and
 * skeptic_view_weight float [n, J, H·W] (elastic: the affine's four, then the field's uniforms,
 * dx and dy).
 */
import { A, type Builder } from '../model/gradient/builder';
import { borderIndex, fold, gaussianWeights, zoomTaps } from '../image/imagenet-c';
import type { ViewOp } from './plan';

export type ImagenetCViewOp =
  /** skimage.filters.gaussian(σ), border 'nearest'; clipped. */
  | { kind: 'gaussian'; sigma: number }
  /** Glass blur with blur σ; the shuffle is index plane `index`. */
  | { kind: 'glass'; sigma: number; index: number }
  /** Zoom blur over these zoom factors. */
  | { kind: 'zoom'; factors: number[] }
  /** Fog of this strength; the plasma is layer `slot`. */
  | { kind: 'fog'; strength: number; slot: number }
  /** Frost a·x + b·layer; the texture crop is layer `slot`. */
  | { kind: 'frost'; a: number; b: number; slot: number }
  /** Elastic transform [alpha, σ]: the affine warp's four taps in index planes index…index+3 and weight
   *  planes weight…weight+3, the displacement field's uniform draws (dx, dy) in weight planes weight+4, +5. */
  | { kind: 'elastic'; index: number; weight: number; alpha: number; sigma: number }
  /** Speckle noise x + x·σ·z, z from noise slot `slot`. */
  | { kind: 'speckle'; sigma: number; slot: number }
  /** Saturation S·scale + shift. */
  | { kind: 'saturate'; scale: number; shift: number };

export interface ImagenetCContext {
  b: Builder;
  centre: string;
  C: number;
  H: number;
  W: number;
  inputs: { layer: string; index: string; weight: string };
  clip01: (x: string) => string;
  clip01d: (x: string) => string;
  /** A scalar of the wide type (float64, or float32 where the provider has none: graph.ts ViewGraphOptions). */
  d: (v: number) => string;
  /** A constant tensor of the wide type. */
  wide: (values: ArrayLike<number>, dims: number[], hint: string) => string;
  /** A float32 tensor cast to the wide type, and back. */
  widen: (x: string) => string;
  narrow: (x: string) => string;
  /** Standard normals [n, C, H, W] of noise slot j. */
  normals: (j: number) => string;
  /** The sum of same-shaped tensors (Sum, or Adds where the provider has no Sum). */
  sum: (xs: string[]) => string;
}

const I32 = 6;

const clampIndex = (i: number, n: number) => (i < 0 ? 0 : i >= n ? n - 1 : i);

/**
 * Separable correlation with 1-D weights of C planes, edges repeated (or mirrored half-sample):
 * the rows padded by a Gather of whole rows, the depthwise k×1 Conv, then the columns padded and
 * the 1×k Conv. The columns are padded after the first Conv (on H rows, not H + 2r) and only the
 * 2r border columns are gathered, then concatenated with the plane: a Gather on the last axis
 * copies value by value, so gathering every column cost more than the Convs.
 */
function separable(ctx: ImagenetCContext, x: string, w: Float64Array, C = ctx.C, border: 'nearest' | 'reflect' = 'nearest'): string {
  const { b, H, W } = ctx;
  const r = (w.length - 1) / 2;
  const k = w.length;
  const at = (i: number, n: number) => (border === 'nearest' ? clampIndex(i, n) : borderIndex(i, n, 'reflect'));
  const rows = b.i64(Array.from({ length: H + 2 * r }, (_, i) => at(i - r, H)));
  const kern = new Float32Array(C * k);
  for (let c = 0; c < C; c++) kern.set(Float32Array.from(w), c * k);
  const v = b.op('Conv', [b.op('Gather', [x, rows], [A.i('axis', 2)]), b.f32(kern, [C, 1, k, 1], 'gauss_v')], [A.i('group', C), A.ints('kernel_shape', [k, 1])]);
  if (r === 0) return b.op('Conv', [v, b.f32(kern, [C, 1, 1, k], 'gauss_h')], [A.i('group', C), A.ints('kernel_shape', [1, k])]);
  const left = b.op('Gather', [v, b.i64(Array.from({ length: r }, (_, i) => at(i - r, W)))], [A.i('axis', 3)]);
  const right = b.op('Gather', [v, b.i64(Array.from({ length: r }, (_, i) => at(W + i, W)))], [A.i('axis', 3)]);
  const padded = b.op('Concat', [left, v, right], [A.i('axis', 3)]);
  return b.op('Conv', [padded, b.f32(kern, [C, 1, 1, k], 'gauss_h')], [A.i('group', C), A.ints('kernel_shape', [1, k])]);
}

/** [n, ·, N] of `planes` consecutive planes of a per-image input from `first`. */
function planes(ctx: ImagenetCContext, input: string, first: number, count: number): string {
  return ctx.b.slice(input, [first], [first + count], [1]);
}

/** x [n, C, H, W] gathered per pixel by index planes [n, K, HW]: [n, C, K, HW]. */
function gatherPixels(ctx: ImagenetCContext, x: string, index: string, K: number): string {
  const { b, C, H, W } = ctx;
  const flat = b.reshape(x, [0, C, H * W]);
  const idx = b.op('Expand', [b.reshape(index, [-1, 1, K * H * W]), b.i64([1, C, 1])]);
  return b.reshape(b.op('GatherElements', [flat, idx], [A.i('axis', 2)]), [-1, C, K, H * W]);
}

/** Kernels up to this many taps smooth elastic's field as Convs; longer ones as MatMuls with the folded matrix (see elasticRun). */
const ELASTIC_CONV_TAPS = 31;

/**
 * Elastic's displacement planes [n, P, H, W] from their uniform draws: scipy's Gaussian filter
 * (σ, truncate 3, border 'reflect', rows then columns), as image/imagenet-c.ts displacement()
 * (alpha is applied by the caller). A short kernel is a reflect-padding Gather and two depthwise
 * Convs; a long one (ImageNet-C's σ of 19.5 and 171 px at 224) is folded into an n×n matrix
 * per axis, applied as two MatMuls: ORT's depthwise Conv spends ~10× the time per multiply-add
 * of its MatMul, so the folded matrix is cheaper once the kernel is more than ~1/8 of the line.
 */
function elasticSmooth(ctx: ImagenetCContext, u: string, planes: number, sigma: number): string {
  const { b, H, W } = ctx;
  if (!(sigma > 0)) return u;
  const w = gaussianWeights(sigma, 3);
  if (w.length <= ELASTIC_CONV_TAPS && w.length <= H && w.length <= W) return separable(ctx, u, w, planes, 'reflect');
  const my = Float32Array.from(fold(w, H, 'reflect')); // [H, H]: out row o = Σ_j my[o, j]·row j
  const mx = fold(w, W, 'reflect');
  const mxT = new Float32Array(W * W);
  for (let o = 0; o < W; o++) for (let j = 0; j < W; j++) mxT[j * W + o] = mx[o * W + j];
  return b.op('MatMul', [b.op('MatMul', [b.f32(my, [H, H], 'elastic_my'), u]), b.f32(mxT, [W, W], 'elastic_mx')]);
}

/**
 * A run of elastic views (consecutive ops, their planes in corruptionViews' layout: four index
 * and six weight planes each, consecutive) as one computation over a view axis, [n, R, C, H, W]:
 *   1. the random affine warp: every view's four taps in one GatherElements on the source;
 *   2. the displacement fields, smoothed once per distinct σ (ImageNet-C's severities 3–5 share
 *      one), times alpha;
 *   3. the field's taps at (y + dy, x + dx), mirrored half-sample (map_coordinates' 'reflect'),
 *      all in float32 arithmetic on small integers (exact below 2^24): i mod 2N as
 *      i − 2N·⌊i/2N⌋, the mirror as min(j, 2N − 1 − j), the flat index y·W + x, one Cast;
 *   4. the second resampling, every view's taps in one GatherElements on the warped views.
 * The floor and the fraction come from the field alone (y is an integer), exactly as the CPU's
 * y + dy gives them. One run costs ~40 nodes where a view at a time cost ~50 each.
 */
function elasticRun(ctx: ImagenetCContext, ops: Array<Extract<ViewOp, { kind: 'elastic' }>>): string {
  const { b, centre, C, H, W } = ctx;
  const R = ops.length;
  const HW = H * W;
  // 1. the affine round: taps [n, 4R, HW] (index planes index0 … index0 + 4R − 1)
  const index0 = ops[0].index;
  const affIdx = planes(ctx, ctx.inputs.index, index0, 4 * R);
  const weightPlane = (k: number, t: number) => ops[k].weight + t;
  const affW = b.op('Gather', [ctx.inputs.weight, b.i64(ops.flatMap((_, k) => [0, 1, 2, 3].map((t) => weightPlane(k, t))))], [A.i('axis', 1)]); // [n, 4R, HW]
  const flat = b.reshape(centre, [0, C, HW]);
  const idxC = b.op('Expand', [b.reshape(affIdx, [-1, 1, 4 * R * HW]), b.i64([1, C, 1])]);
  const taps1 = b.reshape(b.op('GatherElements', [flat, idxC], [A.i('axis', 2)]), [-1, C, R, 4, HW]);
  const warped = b.reduce('ReduceSum', b.op('Mul', [taps1, b.reshape(affW, [-1, 1, R, 4, HW])]), [3], false); // [n, C, R, HW]
  // 2. the fields [n, R, 2 (dx, dy), H, W]
  const sigmas = [...new Set(ops.map((o) => o.sigma))];
  const parts: string[] = [];
  const order: number[] = [];
  for (const sigma of sigmas) {
    const ks = ops.map((o, k) => (o.sigma === sigma ? k : -1)).filter((k) => k >= 0);
    const u = b.reshape(b.op('Gather', [ctx.inputs.weight, b.i64(ks.flatMap((k) => [weightPlane(k, 4), weightPlane(k, 5)]))], [A.i('axis', 1)]), [-1, 2 * ks.length, H, W]);
    const alpha = b.f32(ks.flatMap((k) => [ops[k].alpha, ops[k].alpha]), [1, 2 * ks.length, 1, 1], 'alpha');
    parts.push(b.op('Mul', [elasticSmooth(ctx, u, 2 * ks.length, sigma), alpha]));
    order.push(...ks);
  }
  let fields = parts.length === 1 ? parts[0] : b.op('Concat', parts, [A.i('axis', 1)]); // [n, 2R, H, W], views in `order`
  if (order.some((k, i) => k !== i)) {
    const at = order.map((_, i) => order.indexOf(i));
    fields = b.op('Gather', [fields, b.i64(at.flatMap((j) => [2 * j, 2 * j + 1]))], [A.i('axis', 1)]);
  }
  // 3. the field's taps
  const field = b.reshape(fields, [-1, R, 2, H, W]);
  const fl = b.op('Floor', [field]);
  const frac = b.op('Sub', [field, fl]);
  const grid = new Float32Array(2 * HW);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) (grid[y * W + x] = x), (grid[HW + y * W + x] = y);
  const i0 = b.op('Add', [fl, b.f32(grid, [1, 1, 2, H, W], 'grid')]);
  const i01 = b.op('Concat', [b.unsqueeze(i0, [2]), b.unsqueeze(b.op('Add', [i0, b.scalar(1)]), [2])], [A.i('axis', 2)]); // [n, R, 2 (tap), 2 (axis), H, W]
  const period = b.f32([2 * W, 2 * H], [1, 1, 1, 2, 1, 1], 'period');
  const j = b.op('Sub', [i01, b.op('Mul', [b.op('Floor', [b.op('Div', [i01, period])]), period])]);
  const r = b.op('Min', [j, b.op('Sub', [b.f32([2 * W - 1, 2 * H - 1], [1, 1, 1, 2, 1, 1], 'period_1'), j])]);
  const axis = (t: string, a: number) => b.slice(t, [a], [a + 1], [3]); // [n, R, 2 (tap), 1, H, W]
  const rows = b.reshape(b.op('Mul', [axis(r, 1), b.scalar(W)]), [-1, R, 2, 1, HW]); // y0·W, y1·W
  const cols = b.reshape(axis(r, 0), [-1, R, 1, 2, HW]); // x0, x1
  const index = b.op('Cast', [b.reshape(b.op('Add', [rows, cols]), [-1, 1, R, 4 * HW])], [A.i('to', I32)]); // (y0,x0), (y0,x1), (y1,x0), (y1,x1)
  const f01 = b.op('Concat', [b.unsqueeze(b.op('Sub', [b.scalar(1), frac]), [2]), b.unsqueeze(frac, [2])], [A.i('axis', 2)]); // [n, R, 2 (tap), 2 (axis), H, W]
  const wy = b.reshape(axis(f01, 1), [-1, R, 2, 1, HW]);
  const wx = b.reshape(axis(f01, 0), [-1, R, 1, 2, HW]);
  const w2 = b.reshape(b.op('Mul', [wy, wx]), [-1, 1, R, 4, HW]);
  // 4. the second round on the warped views [n, C, R, HW]
  const taps2 = b.op('GatherElements', [warped, b.op('Expand', [index, b.i64([1, C, 1, 1])])], [A.i('axis', 3)]); // [n, C, R, 4HW]
  const out = b.reduce('ReduceSum', b.op('Mul', [b.reshape(taps2, [-1, C, R, 4, HW]), w2]), [3], false); // [n, C, R, HW]
  return ctx.clip01(b.reshape(b.transpose(out, [0, 2, 1, 3]), [-1, R, C, H, W]));
}

/** Whether ops (all elastic) can be one elasticRun: their planes consecutive, as corruptionViews lays them out. */
export function elasticRunnable(ops: ViewOp[]): boolean {
  return ops.every((o, k) => o.kind === 'elastic' && ops[0].kind === 'elastic' && o.index === ops[0].index + 4 * k && o.weight === ops[0].weight + 6 * k);
}

/** A run of views of one ImageNet-C kind made together, [n, R, C, H, W] (elastic only, for now). */
export function buildImagenetCRun(ctx: ImagenetCContext, ops: ViewOp[]): string {
  if (!elasticRunnable(ops)) throw new RangeError('view plan: only consecutive elastic views run together');
  return elasticRun(ctx, ops as Array<Extract<ViewOp, { kind: 'elastic' }>>);
}

export function buildImagenetCView(ctx: ImagenetCContext, op: ViewOp): string {
  const { b, centre, C, H, W, clip01, clip01d, d } = ctx;
  switch (op.kind) {
    case 'gaussian':
      return clip01(separable(ctx, centre, gaussianWeights(op.sigma)));
    case 'glass': {
      const w = gaussianWeights(op.sigma);
      const r = (w.length - 1) / 2;
      const band = (N: number, transpose: boolean) => {
        const m = new Array<number>(N * N).fill(0);
        for (let o = 0; o < N; o++) for (let k = 0; k < w.length; k++) {
          const j = clampIndex(o + k - r, N);
          m[transpose ? j * N + o : o * N + j] += w[k];
        }
        return ctx.wide(m, [N, N], 'band');
      };
      const x = ctx.widen(centre);
      const blurred = b.op('MatMul', [b.op('MatMul', [band(H, false), x]), band(W, true)]);
      // ⌊255·blur⌋ in float64, then in float32 (exact: integers): clamped to [0, 255] (the same
      // as clamping before the floor, the bounds being integers) and divided by 255, which gives
      // the float32 of the JS's float64 k/255 for every k (checked for all 256): one float64 pass
      // after the MatMuls instead of five. In float32 (a provider without float64), a sum within
      // float32's error of a level may floor to the other side of it: on fixture images 0.06%
      // (MNIST) and 0.1% (ImageNet) of glass blur's values then differ from the float64 graph's
      // by more than 1e-5 (a lift before the floor made that 0.15–1.7%)
      const bytes = ctx.narrow(b.op('Floor', [b.op('Mul', [blurred, d(255)])]));
      const q = b.op('Div', [b.op('Clip', [bytes, b.scalar(0), b.scalar(255)]), b.scalar(255)]);
      const shuffled = b.reshape(gatherPixels(ctx, q, planes(ctx, ctx.inputs.index, op.index, 1), 1), [-1, C, H, W]);
      return clip01(separable(ctx, shuffled, w));
    }
    case 'zoom': {
      // each clipped zoom: the centre crop, ONNX Resize (linear, align_corners: scipy's order-1
      // zoom with grid_mode False samples output o at o·(ch − 1)/(size − 1)), its top-left H×W
      const L = op.factors.length;
      const nc = b.slice(b.op('Shape', [centre]), [0], [2], [0]); // [n, C]
      const empty = b.f32([], [0]);
      const layers = [centre];
      for (const z of op.factors) {
        const ty = zoomTaps(H, z);
        const tx = zoomTaps(W, z);
        const chY = Math.ceil(H / z);
        const chX = Math.ceil(W / z);
        const top = Math.floor((H - chY) / 2);
        const left = Math.floor((W - chX) / 2);
        const crop = b.slice(centre, [top, left], [top + chY, left + chX], [2, 3]);
        const sizes = b.op('Concat', [nc, b.i64([ty.size, tx.size])], [A.i('axis', 0)]);
        const zoomed = b.op('Resize', [crop, empty, empty, sizes], [A.s('mode', 'linear'), A.s('coordinate_transformation_mode', 'align_corners')]);
        let layer = b.slice(zoomed, [0, 0], [Math.min(H, ty.size), Math.min(W, tx.size)], [2, 3]);
        // a zoom smaller than the image adds to its top-left corner only
        if (ty.size < H || tx.size < W) layer = b.pad(layer, [0, 0, 0, 0, 0, 0, Math.max(0, H - ty.size), Math.max(0, W - tx.size)]);
        layers.push(layer);
      }
      return clip01(b.op('Mul', [ctx.sum(layers), b.scalar(1 / (L + 1))]));
    }
    case 'fog': {
      const layer = b.reshape(planes(ctx, ctx.inputs.layer, op.slot, 1), [-1, C, H, W]);
      const max = b.reduce('ReduceMax', centre, [1, 2, 3], true);
      const lifted = b.op('Add', [centre, b.op('Mul', [layer, b.scalar(op.strength)])]);
      return clip01(b.op('Div', [b.op('Mul', [lifted, max]), b.op('Add', [max, b.scalar(op.strength)])]));
    }
    case 'frost': {
      const layer = b.reshape(planes(ctx, ctx.inputs.layer, op.slot, 1), [-1, C, H, W]);
      return clip01(b.op('Add', [b.op('Mul', [centre, b.scalar(op.a)]), b.op('Mul', [layer, b.scalar(op.b)])]));
    }
    case 'elastic':
      return b.reshape(elasticRun(ctx, [op]), [-1, C, H, W]);
    case 'speckle':
      return clip01(b.op('Add', [centre, b.op('Mul', [centre, b.op('Mul', [ctx.normals(op.slot), b.scalar(op.sigma)])])]));
    case 'saturate': {
      if (C !== 3) return clip01(centre);
      const x = ctx.widen(centre);
      const v = b.reduce('ReduceMax', x, [1], true);
      const min = b.op('Neg', [b.reduce('ReduceMax', b.op('Neg', [x]), [1], true)]);
      const delta = b.op('Sub', [v, min]);
      const colour = b.op('Greater', [delta, d(0)]);
      const s = b.op('Where', [colour, b.op('Div', [delta, v]), d(0)]);
      const s2 = clip01d(b.op('Add', [b.op('Mul', [s, d(op.scale)]), d(op.shift)]));
      const mixed = b.op('Sub', [v, b.op('Div', [b.op('Mul', [b.op('Mul', [s2, v]), b.op('Sub', [v, x])]), delta])]);
      const notRed = ctx.wide([0, 1, 1], [1, 3, 1, 1], 'not_red');
      const grey = b.op('Mul', [v, b.op('Sub', [d(1), b.op('Mul', [s2, notRed])])]);
      return ctx.narrow(clip01d(b.op('Where', [colour, mixed, grey])));
    }
    default:
      throw new RangeError(`view plan: unknown view kind ${(op as { kind: string }).kind}`);
  }
}
