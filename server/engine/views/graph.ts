/**
 * A view plan as ONNX nodes. The graph takes a batch of n source images and their per-image
 * inputs and gives the n·V views, image-major ([n·V, C, H, W]: views of image i at rows
 * i·V … i·V+V−1), ready for the model's pixel input:
 *
 *   skeptic_view_src   float [n, C, H+2m, W+2m]
 *   skeptic_view_embed int32 [n, E, 2]        (top, left) per embed slot
 *   skeptic_view_noise float [n, S, C, H, W, 2] uniform (u1, u2) pairs per noise slot
 *   skeptic_view_given float [n, G, C, H, W]  views made on the CPU
 *   skeptic_view_perm  int32 [n, P]           tile permutations, all tiles slots concatenated
 *
 * Ops per view kind (all batched over n, each exact or float32 rounding away from image/ops.ts
 * and image/corrupt.ts, which the tests hold them to):
 *   crop        Slice; a run sharing its columns one Gather of whole rows
 *   embed       GatherElements from an index map computed in-graph from (top, left), Where for
 *               the black canvas, AveragePool 2×2 (the 2× area downscale); small images two
 *               MatMuls; one source a run: Slices of its four pooled parities (onePerRunEmbeds)
 *   noise       Slice of the slots, Box–Muller (Log, Sqrt, Cos), Mul σ, Add, Clip
 *   given       Slice of the slots (or the input itself)
 *   blur        reflect-101 border by Pad (reflect mode) when the pad is smaller than the image, else
 *               by Gather with index lists (exact at any size); a large kernel that splits into a
 *               few outer products as a 1-D Conv and a grouped Conv, else a depthwise Conv; Clip
 *   pixelate    Pillow's BOX resize as two MatMuls with constant weight matrices, its nearest
 *               back up by two Gathers
 *   brightness  ReduceMax over channels (HSV value), Mul/Div in float64 (black pixels by Where on
 *               the source, not the views), Cast
 *   contrast    ReduceMean over the plane, Sub/Mul/Add in float64, Cast, Clip
 *   tiles       a per-pixel source index computed in-graph from the permutation (each tile's
 *               displacement gathered per pixel), GatherElements
 *   rotate      per output pixel four bilinear taps (GatherElements on index maps made here in
 *               float64) and the frame's mean colour for what falls outside
 *   patch       Where with a constant mask over a canvas of the mean colour (ReduceMean)
 *   composite   cue-conflict's blend of a texture into a silhouette, elementwise in float64
 * For a provider without float64 kernels (WebGPU) the graph's float64 arithmetic above is float32,
 * and zoom blur adds without Sum (ViewGraphOptions.kernels); index arithmetic is int32 everywhere.
 * Consecutive noise and given views (on consecutive slots), brightness and contrast views are
 * each made together over a view axis, their shared work (Box–Muller, the float64 copy, the HSV
 * value, the channel mean) done once.
 * Written for opset ≥ 11 (Builder spells the ops whose signature moved later).
 */
import { A, Builder } from '../model/gradient/builder';
import { viewKernels, type ViewKernels } from '../model/providers';
import { reflect101 } from '../image/imagenet-c';
import { onnx } from '../model/onnx';
import { checkPlan, imagenetCSlots, permOffsets, slotCounts, type ViewOp, type ViewPlan } from './plan';
import { buildImagenetCRun, buildImagenetCView, elasticRunnable, type ImagenetCContext } from './imagenet-c';
import { pixelateSize } from '../image/corrupt';
import { nearestIndex, resampleMatrix } from '../image/resample';

export const VIEW_PREFIX = 'skeptic_view_';
export const VIEW_INPUT = { src: `${VIEW_PREFIX}src`, embed: `${VIEW_PREFIX}embed`, noise: `${VIEW_PREFIX}noise`, given: `${VIEW_PREFIX}given`, perm: `${VIEW_PREFIX}perm` } as const;
/** The per-image inputs of views/imagenet-c.ts's ops. */
export const VIEW_INPUT_C = { layer: `${VIEW_PREFIX}layer`, index: `${VIEW_PREFIX}index`, weight: `${VIEW_PREFIX}weight` } as const;
/** Up to this many pixels, embeddings are two small MatMuls; above, an index map and a gather. */
const SMALL_EMBED = 64 * 64;
/** Lowest opset the view graph is written for. */
export const VIEW_MIN_OPSET = 11;

export interface ViewGraph {
  nodes: onnx.INodeProto[];
  inits: onnx.ITensorProto[];
  inputs: onnx.IValueInfoProto[];
  /** The [n·V, C, H, W] output (rename the last node's output to feed a model). */
  output: string;
  /** Views per image. */
  views: number;
}

const F32 = 1;
const I32 = 6;
const F64 = 11;

function valueInfo(name: string, elemType: number, dims: Array<number | string>): onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/**
 * Bilinear rotation about the centre as four (index, weight) taps per output pixel and the weight
 * of the fill (taps outside the frame), the arithmetic of ood.ts rotateAbout.
 */
function rotation(H: number, W: number, degrees: number): { index: Int32Array[]; weight: Float32Array[]; fillWeight: Float32Array } {
  const th = (degrees * Math.PI) / 180;
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  const index = [0, 1, 2, 3].map(() => new Int32Array(H * W));
  const weight = [0, 1, 2, 3].map(() => new Float32Array(H * W));
  const fillWeight = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      let sx = cx + (x - cx) * cos - (y - cy) * sin;
      let sy = cy + (x - cx) * sin + (y - cy) * cos;
      if (Math.abs(sx - Math.round(sx)) < 1e-9) sx = Math.round(sx);
      if (Math.abs(sy - Math.round(sy)) < 1e-9) sy = Math.round(sy);
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const ax = sx - x0;
      const ay = sy - y0;
      // the four taps (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1), without an array per pixel
      let wf = 0;
      for (let k = 0; k < 4; k++) {
        const ty = y0 + (k >> 1);
        const tx = x0 + (k & 1);
        const w = (k & 1 ? ax : 1 - ax) * (k >> 1 ? ay : 1 - ay);
        if (w === 0) continue;
        if (ty >= 0 && ty < H && tx >= 0 && tx < W) {
          index[k][p] = ty * W + tx;
          weight[k][p] = w;
        } else wf += w;
      }
      fillWeight[p] = wf;
    }
  }
  return { index, weight, fillWeight };
}

/**
 * A kernel as a short sum of outer products, K = Σ_l cols[l] ⊗ rows[l] (cols[l][y]·rows[l][x] =
 * K[y][x] summed over l), by Gaussian elimination with full pivoting in float64; undefined when
 * that takes so many terms that the direct convolution is cheaper. diskKernel's kernels split
 * exactly: a disk is a sum of L centred rectangles (L its distinct row widths, 7 at radius 10)
 * and the Gaussian that smooths it is separable, so each term stays an outer product. The split
 * is checked against the kernel to 1e-9 of its largest weight, far below float32's resolution.
 */
export function separable(size: number, weights: ArrayLike<number>): { cols: Float64Array[]; rows: Float64Array[] } | undefined {
  const r = Float64Array.from(weights);
  let peak = 0;
  for (const w of r) peak = Math.max(peak, Math.abs(w));
  if (peak === 0) return undefined;
  const maxTerms = Math.floor((size - 1) / 2);
  const cols: Float64Array[] = [];
  const rows: Float64Array[] = [];
  for (;;) {
    let at = 0;
    for (let i = 1; i < r.length; i++) if (Math.abs(r[i]) > Math.abs(r[at])) at = i;
    if (Math.abs(r[at]) <= 1e-12 * peak) break;
    if (cols.length === maxTerms) return undefined;
    const py = Math.floor(at / size);
    const px = at % size;
    const col = new Float64Array(size);
    const row = new Float64Array(size);
    for (let y = 0; y < size; y++) col[y] = r[y * size + px] / r[at];
    for (let x = 0; x < size; x++) row[x] = r[py * size + x];
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) r[y * size + x] -= col[y] * row[x];
    cols.push(col);
    rows.push(row);
  }
  if (!cols.length) return undefined;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 0;
      for (let l = 0; l < cols.length; l++) v += cols[l][y] * rows[l][x];
      if (Math.abs(v - weights[y * size + x]) > 1e-9 * peak) return undefined;
    }
  }
  return { cols, rows };
}

/**
 * Elementwise nodes the composed session moves from the front of the model (its preprocessing's
 * per-channel Mul and Add, model/pixels.ts, and a quantized model's per-tensor QuantizeLinear)
 * into the view graph, applied to each group of views before the final Concat, while the group
 * is still in the caches, instead of as passes over the concatenated batch (46 MB at ImageNet
 * size for the corruptions' 76 views: the prefix Mul alone cost more than the Concat). After a
 * QuantizeLinear the Concat moves bytes, a quarter of the floats. The same nodes on the same
 * values: the model gets the same bits. Each node reads the flowing tensor at `input` (null) and
 * constants of the model's graph (rank ≤ 3: they broadcast against [n, R, C, H, W] as against
 * the model's [N, C, H, W]).
 */
export interface ViewPostNode {
  opType: string;
  domain?: string;
  input: Array<string | null>;
  attribute?: onnx.IAttributeProto[];
}

/**
 * Embeddings of one source (a run of its own) at E positions read from `pos` ([1, E, 2]), as
 * [1, 1, C, H, W] views. Canvas rows 2y', 2y'+1 hold image rows 2y'−top, 2y'+1−top, so with
 * top = 2·tt + pt the view's row y' is row y'−tt of Q_pt, the image with pt black rows above it
 * averaged over pairs of rows (and likewise for columns). The four Q (pt, pl ∈ {0, 1}) are made
 * once per source, rows averaged then columns (AveragePool 2×1 then 1×2: the same two roundings
 * as ½a + ½b), stacked and padded with black; each view is then one Slice of that stack at
 * offsets computed in-graph: a few passes over the image instead of gathers, weights and two
 * transposes per view.
 */
function onePerRunEmbeds(b: Builder, centre: string, pos: string, C: number, H: number, W: number, E: number): string[] {
  const Hq = Math.ceil((H + 1) / 2); // rows of Q: 2·Hq ≥ H + pt for either parity
  const Wq = Math.ceil((W + 1) / 2);
  const Zy = H >> 1; // black rows above Q in the stack (tt ≤ ⌊H/2⌋)
  const Zx = W >> 1;
  const pool = (x: string, k: number[]) => b.op('AveragePool', [x], [A.ints('kernel_shape', k), A.ints('strides', k)]);
  const framed = b.op('Pad', [centre, b.i64([0, 0, 1, 1, 0, 0, 2 * Hq - H, 2 * Wq - W])]); // [1, C, 2Hq+1, 2Wq+1]
  const quads: string[] = [];
  for (const pt of [0, 1]) {
    const rows = pool(b.slice(framed, [1 - pt], [1 - pt + 2 * Hq], [2]), [2, 1]); // [1, C, Hq, 2Wq+1]
    for (const pl of [0, 1]) quads.push(pool(b.slice(rows, [1 - pl], [1 - pl + 2 * Wq], [3]), [1, 2])); // [1, C, Hq, Wq]
  }
  // [4, C, Zy+H, Zx+W]: Q_(pt,pl) at index 2·pt + pl, its (0, 0) at (Zy, Zx)
  const stack = b.op('Pad', [b.op('Concat', quads, [A.i('axis', 0)]), b.i64([0, 0, Zy, Zx, 0, 0, H - Hq, W - Wq])]);
  const two = b.i32([2], []);
  const p = b.reshape(pos, [E, 2]);
  const half = b.op('Div', [p, two]); // (tt, tl)
  const parity = b.op('Sub', [p, b.op('Mul', [half, two])]); // (pt, pl)
  const quad = b.reduce('ReduceSum', b.op('Mul', [parity, b.i32([2, 1], [1, 2])]), [1], true); // [E, 1]
  const starts = b.op('Concat', [quad, b.i32(new Array(E).fill(0), [E, 1]), b.op('Sub', [b.i32([Zy, Zx], [1, 2]), half])], [A.i('axis', 1)]); // [E, 4]
  const ends = b.op('Add', [starts, b.i32([1, C, H, W], [1, 4])]);
  return Array.from({ length: E }, (_, e) => {
    const at = (t: string) => b.op('Gather', [t, b.i64([e], [])], [A.i('axis', 0)]);
    return b.unsqueeze(b.op('Slice', [stack, at(starts), at(ends)]), [1]);
  });
}

export interface ViewGraphOptions {
  /** One source image a run (the graph may then bake per-channel index maps into constants). */
  onePerRun?: boolean;
  /** Nodes from the front of the model applied to each group of views (ViewPostNode). */
  post?: ViewPostNode[];
  /** Whether the post nodes commute with crops (elementwise, constants not varying over rows and columns). */
  postOnSource?: boolean;
  /**
   * The provider's kernels (model/providers.ts viewKernels; default: the CPU's, all of them). With float64, the
   * arithmetic the CPU references do in float64 (brightness, contrast, saturation, glass blur's
   * first blur, the mean colours, the rotation fill, ood's normal view, cue-conflict's
   * composition) stays in float64, so the views stay bit-close to the JS ones, which int8 models
   * notice; without (WebGPU) it runs in float32 and moves those views by float32 rounding (glass
   * blur's truncation to 8 bits can then land a value on the next level). Without Sum, a chain
   * of Adds in its order.
   */
  kernels?: ViewKernels;
}

export function buildViewGraph(plan: ViewPlan, opset: number, options: ViewGraphOptions = {}): ViewGraph {
  const { onePerRun = false, post = [], postOnSource = false, kernels = viewKernels('cpu') } = options;
  const { float64 } = kernels;
  checkPlan(plan);
  const { channels: C, height: H, width: W, margin: m } = plan;
  const b = new Builder(Math.max(opset, VIEW_MIN_OPSET), VIEW_PREFIX);
  const slots = slotCounts(plan);
  const inputs = [valueInfo(VIEW_INPUT.src, F32, ['skeptic_view_n', C, H + 2 * m, W + 2 * m])];
  if (slots.embed) inputs.push(valueInfo(VIEW_INPUT.embed, I32, ['skeptic_view_n', slots.embed, 2]));
  if (slots.noise) inputs.push(valueInfo(VIEW_INPUT.noise, F32, ['skeptic_view_n', slots.noise, C, H, W, 2]));
  if (slots.given) inputs.push(valueInfo(VIEW_INPUT.given, F32, ['skeptic_view_n', slots.given, C, H, W]));
  if (slots.perm) inputs.push(valueInfo(VIEW_INPUT.perm, I32, ['skeptic_view_n', slots.perm]));
  const cSlots = imagenetCSlots(plan);
  if (cSlots.layer) inputs.push(valueInfo(VIEW_INPUT_C.layer, F32, ['skeptic_view_n', cSlots.layer, C, H, W]));
  if (cSlots.index) inputs.push(valueInfo(VIEW_INPUT_C.index, I32, ['skeptic_view_n', cSlots.index, H * W]));
  if (cSlots.weight) inputs.push(valueInfo(VIEW_INPUT_C.weight, F32, ['skeptic_view_n', cSlots.weight, H * W]));

  const src = VIEW_INPUT.src;
  const centre = m > 0 ? b.slice(src, [m, m], [m + H, m + W], [2, 3]) : src;
  const clip01 = (x: string) => b.op('Clip', [x, b.scalar(0), b.scalar(1)]);
  // The "wide" type: float64, or float32 where the provider has no float64 (kernels.float64)
  const WIDE = float64 ? F64 : F32;
  // raw_data (little-endian, as the typed arrays write it on the hosts Node runs on): protobufjs
  // writes a repeated field value by value, from a JavaScript array of boxed doubles, which for
  // glass blur's 224×224 matrices cost tens of ms and the garbage collections after them
  const wideData = (values: ArrayLike<number>) => {
    const a = float64 ? Float64Array.from(values) : Float32Array.from(values);
    return { rawData: new Uint8Array(a.buffer) };
  };
  const widen = (t: string) => (float64 ? b.op('Cast', [t], [A.i('to', F64)]) : t);
  const narrow = (t: string) => (float64 ? b.op('Cast', [t], [A.i('to', F32)]) : t);
  /** A constant tensor in the wide type. */
  const wide = (values: ArrayLike<number>, dims: number[], hint = 'd') => {
    const name = b.fresh(hint);
    b.inits.push({ name, dims, dataType: WIDE, ...wideData(values) });
    return name;
  };
  const doubles = new Map<number, string>();
  /** A wide scalar, shared. */
  const d = (v: number) => {
    let name = doubles.get(v);
    if (!name) doubles.set(v, (name = wide([v], [])));
    return name;
  };
  const clip01d = (x: string) => b.op('Min', [b.op('Max', [x, d(0)]), d(1)]); // Clip-11 has no float64 kernel
  const slot = (input: string, j: number) => b.op('Gather', [input, b.i64([j], [])], [A.i('axis', 1)]);

  // Shared pieces, made on first use.
  let flatCentre: string | undefined;
  let flatShape: string | undefined;
  let meanColour: string | undefined;
  let borderFill: string | undefined;
  /** The post nodes applied to x. */
  const applyPost = (x: string) => post.reduce((t, n) => b.node(n.opType, n.input.map((i) => i ?? t), n.attribute ?? [], 1, n.domain ?? '')[0], x);
  // A crop only selects values of the source, and the post nodes are elementwise with constants
  // that do not vary over rows and columns (postOnSource), so they commute: crops are cut from the
  // source after them, one pass over the source instead of one per crop (the shift probe's 34
  // crops of an image), and after a QuantizeLinear the crops move bytes. The same values.
  let postedSrc: string | undefined;
  const cropSource = () => (postOnSource && post.length ? (postedSrc ??= applyPost(src)) : src);
  /** Indices into outs of the groups made from the posted source (the post nodes are not applied again). */
  const posted = new Set<number>();
  /** What a gather of pixels reads, [n, C, H·W]: the posted source's centre when the post nodes may run on it, else the centre. */
  let flatPosted: string | undefined;
  const gatherSource = (): string => {
    if (cropSource() === src) return (flatCentre ??= b.reshape(centre, [0, C, H * W]));
    return (flatPosted ??= b.reshape(m > 0 ? b.slice(cropSource(), [m, m], [m + H, m + W], [2, 3]) : cropSource(), [0, C, H * W]));
  };
  /** The fill canvas per fill tensor, shared by every patch view. */
  const canvases = new Map<string, string>();
  const perms = permOffsets(plan);

  /** Standard normals by Box–Muller on (u1, u2) pairs along `axis` of `pairs`: √(−2 ln u1)·cos 2πu2, as random.ts gaussian(). */
  const normals = (pairs: string, axis: number) => {
    // One Split, not a Gather per half: ORT fuses the two Gathers into a Split at opset 13 and
    // up only, and a Gather on the last axis copies value by value (a [1, 5, 3, 224, 224, 2]
    // tensor: ~15 ms for the two Gathers at opset 12, ~1.5 for the Split); the Squeeze is free.
    const halves = b.node('Split', [pairs], [A.i('axis', axis), ...(b.opset >= 18 ? [A.i('num_outputs', 2)] : [])], 2);
    const [u1, u2] = halves.map((h) => (b.opset >= 13 ? b.op('Squeeze', [h, b.i64([axis])]) : b.op('Squeeze', [h], [A.ints('axes', [axis])])));
    const radius = b.op('Sqrt', [b.op('Mul', [b.op('Log', [u1]), b.scalar(-2)])]);
    return b.op('Mul', [radius, b.op('Cos', [b.op('Mul', [u2, b.scalar(2 * Math.PI)])])]);
  };
  /** A boolean initializer from 0/1 bytes (masks: one byte per value, no Cast at run time). */
  const bools = (values: Uint8Array, dims: number[]) => {
    const name = b.fresh('mask');
    b.inits.push({ name, dims, dataType: 9, rawData: values });
    return name;
  };
  /** The centre in the wide type, and clipped to [0, 1] first (shared by every view that needs them). */
  let cWide: string | undefined;
  let cWideClipped: string | undefined;
  const wideCentre = () => (cWide ??= widen(centre));
  const wideClipped = () => (cWideClipped ??= widen(clip01(centre)));
  /** The mean colour per channel [n, C, 1, 1], summed in the wide type (float64 as the JS canvasFill and ood.ts sum it). */
  const mean = () => (meanColour ??= narrow(b.reduce('ReduceMean', wideCentre(), [2, 3], true)));

  /** What views/imagenet-c.ts's ops read; its noise reads one slot's (u1, u2) pairs. */
  const cctx: ImagenetCContext = {
    b, centre, C, H, W, inputs: VIEW_INPUT_C, clip01, clip01d, d, widen, narrow, wide,
    normals: (j: number) => normals(slot(VIEW_INPUT.noise, j), 4),
    sum: (xs: string[]) => (kernels.sum ? b.op('Sum', xs) : xs.slice(1).reduce((acc, x) => b.op('Add', [acc, x]), xs[0])),
  };

  const outs: string[] = [];
  for (let i = 0; i < plan.ops.length; i++) {
    const op = plan.ops[i];
    if (op.kind === 'elastic') {
      // a run of elastic views (a corruption's severities) together over a view axis
      let R = 1;
      while (i + R < plan.ops.length && elasticRunnable(plan.ops.slice(i, i + R + 1))) R++;
      outs.push(buildImagenetCRun(cctx, plan.ops.slice(i, i + R)));
      i += R - 1;
      continue;
    }
    // A run of crops sharing their columns (a vertical sweep) is one Slice of those columns and
    // one Gather of whole rows; a run of patches one Where with a stack of masks: a few large
    // nodes instead of many small ones (each node costs a thread-pool round trip in ORT).
    // Crops at other columns stay Slices: a Gather of single values copies value by value.
    let run = 1;
    while (i + run < plan.ops.length && plan.ops[i + run].kind === op.kind &&
      ((op.kind === 'crop' && (plan.ops[i + run] as typeof op).left === op.left) || (op.kind === 'patch' && (plan.ops[i + run] as typeof op).fill === op.fill))) run++;
    if (op.kind === 'crop' && run > 1) {
      const rows: number[] = [];
      for (let r = 0; r < run; r++) for (let y = 0; y < H; y++) rows.push((plan.ops[i + r] as { top: number }).top + y);
      // the rows of every channel as one axis, [n, C·Hs, W]: the gather's indices [run, C, H] then
      // give the views in their final layout [n, run, C, H, W], whole rows copied, no transpose
      const Hs = H + 2 * m;
      const from = cropSource();
      const cols = b.reshape(b.slice(from, [op.left], [op.left + W], [3]), [0, C * Hs, W]);
      const rowsAt: number[] = [];
      for (let r = 0; r < run; r++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) rowsAt.push(c * Hs + rows[r * H + y]);
      outs.push(b.op('Gather', [cols, b.i64(rowsAt, [run, C, H])], [A.i('axis', 1)]));
      if (from !== src) posted.add(outs.length - 1);
      i += run - 1;
      continue;
    }
    if (op.kind === 'patch' && run > 1) {
      // each square is its rows And its columns, broadcast to [1, run, 1, H, W] and folded by ORT
      // when it creates the session: the graph carries run·(H + W) bytes, not the 2.5 million of
      // 50 patch views at 224²
      const inRows = new Uint8Array(run * H);
      const inCols = new Uint8Array(run * W);
      for (let r = 0; r < run; r++) {
        const p = plan.ops[i + r] as { top: number; left: number; size: number };
        inRows.fill(1, r * H + p.top, r * H + p.top + p.size);
        inCols.fill(1, r * W + p.left, r * W + p.left + p.size);
      }
      const fillV = op.fill === 'mean' ? mean() : b.scalar(op.fill);
      const masks = b.op('And', [bools(inRows, [1, run, 1, H, 1]), bools(inCols, [1, run, 1, 1, W])]);
      // [n, run, C, H, W]: the centre where the mask is set, the fill elsewhere, as x·m + fill·(1 − m)
      // with m ∈ {0, 1}: x·1 + fill·0 = x and x·0 + fill = fill, Where's values for finite pixels
      // (a pixel of −0 would come out +0; no decoded pixel is −0, and the model reads them alike).
      // ORT's Where broadcasting its three inputs costs ~9 ns a value (70 ms a run
      // of 50 views at 224²); the float masks are constants that ORT folds once at load, so the
      // bytes stay the graph's initializer.
      const on = b.op('Cast', [masks], [A.i('to', F32)]);
      const off = b.op('Cast', [b.op('Not', [masks])], [A.i('to', F32)]);
      // (the mean colour [n, C, 1, 1] gets the view axis; a grey level is a scalar)
      const fill5 = op.fill === 'mean' ? b.unsqueeze(fillV, [1]) : fillV;
      outs.push(b.op('Add', [b.op('Mul', [b.unsqueeze(centre, [1]), on]), b.op('Mul', [fill5, off])]));
      i += run - 1;
      continue;
    }
    if (op.kind === 'embed') {
      // a run of embeds with consecutive slots: one index map [n, E, 2H, 2W] and one gather
      let E = 1;
      while (i + E < plan.ops.length && plan.ops[i + E].kind === 'embed' && (plan.ops[i + E] as typeof op).slot === op.slot + E) E++;
      const pos = b.slice(VIEW_INPUT.embed, [op.slot], [op.slot + E], [1]); // [n, E, 2]
      if (H * W <= SMALL_EMBED) {
        // small images: out = A_y · x · A_xᵀ, A [n, E, H, H] with ½ where row y of the image lands
        // in output row ⌊(y + top)/2⌋ (paste then 2× block mean, separably); two batched MatMuls
        // are far cheaper than an index map over the 2H×2W canvas
        const half = (shift: string, N: number) => {
          const rows = b.i32(Array.from({ length: N }, (_, k) => k), [1, 1, N, 1]); // output row y'
          const cols = b.i32(Array.from({ length: N }, (_, k) => k), [1, 1, 1, N]); // image row y
          const lands = b.op('Div', [b.op('Add', [cols, b.reshape(shift, [-1, E, 1, 1])]), b.i32([2], [])]);
          return b.op('Mul', [b.op('Cast', [b.op('Equal', [lands, rows])], [A.i('to', F32)]), b.scalar(0.5)]); // [n, E, N, N]
        };
        const ay = half(b.slice(pos, [0], [1], [2]), H);
        const ax = half(b.slice(pos, [1], [2], [2]), W);
        const img = b.unsqueeze(centre, [1]); // [n, 1, C, H, W]
        const left = b.op('MatMul', [b.unsqueeze(ay, [2]), img]); // [n, E, C, H, W]
        outs.push(b.op('MatMul', [left, b.transpose(b.unsqueeze(ax, [2]), [0, 1, 2, 4, 3])]));
        i += E - 1;
        continue;
      }
      if (onePerRun) {
        outs.push(...onePerRunEmbeds(b, centre, pos, C, H, W, E));
        i += E - 1;
        continue;
      }
      flatCentre ??= b.reshape(centre, [0, C, H * W]);
      const ys = b.i32(Array.from({ length: 2 * H }, (_, k) => k), [1, 1, 2 * H, 1]);
      const xs = b.i32(Array.from({ length: 2 * W }, (_, k) => k), [1, 1, 1, 2 * W]);
      const top = b.reshape(b.slice(pos, [0], [1], [2]), [-1, E, 1, 1]);
      const left = b.reshape(b.slice(pos, [1], [2], [2]), [-1, E, 1, 1]);
      const ty = b.op('Sub', [ys, top]); // [n, E, 2H, 1]: row of the image under canvas row y
      const tx = b.op('Sub', [xs, left]); // [n, E, 1, 2W]
      const inside = (t: string, n: number) => b.op('And', [b.op('Greater', [t, b.i32([-1], [])]), b.op('Less', [t, b.i32([n], [])])]);
      const vy = inside(ty, H);
      const vx = inside(tx, W);
      const zero = b.i32([0], []);
      const idx = b.op('Add', [b.op('Mul', [b.op('Where', [vy, ty, zero]), b.i32([W], [])]), b.op('Where', [vx, tx, zero])]); // [n, E, 2H, 2W]
      const idxC = b.op('Expand', [b.reshape(idx, [-1, 1, E * 4 * H * W]), b.i64([1, C, 1])]);
      const pixels = b.op('GatherElements', [flatCentre, idxC], [A.i('axis', 2)]); // [n, C, E·4HW]
      const valid = b.reshape(b.op('And', [vy, vx]), [-1, 1, E * 4 * H * W]);
      const onCanvas = b.reshape(b.op('Where', [valid, pixels, b.scalar(0)]), [-1, C * E, 2 * H, 2 * W]);
      const pooled = b.reshape(b.op('AveragePool', [onCanvas], [A.ints('kernel_shape', [2, 2]), A.ints('strides', [2, 2])]), [-1, C, E, H, W]);
      outs.push(C === 1 ? b.reshape(pooled, [-1, E, 1, H, W]) : b.transpose(pooled, [0, 2, 1, 3, 4]));
      i += E - 1;
      continue;
    }
    if (op.kind === 'noise' || op.kind === 'given' || op.kind === 'brightness' || op.kind === 'contrast') {
      // A run of views of one kind that differ by a scalar (noise σ and given views on consecutive
      // slots, brightness δ, contrast factor) is one computation over a view axis, [n, R, C, H, W]:
      // the same arithmetic per value as one view at a time, in a few large nodes, with the work
      // the views share (Box–Muller's slots, the float64 copy, the HSV value, the channel mean) done once.
      let R = 1;
      const same = (o: ViewOp) => o.kind === op.kind && (!('slot' in op) || (o as typeof op & { slot: number }).slot === op.slot + R);
      while (i + R < plan.ops.length && same(plan.ops[i + R])) R++;
      const ops = plan.ops.slice(i, i + R) as Array<typeof op>;
      const axis = (values: number[], type: 'f32' | 'wide') => (type === 'f32' ? b.f32(values, [1, R, 1, 1, 1], 'per_view') : wide(values, [1, R, 1, 1, 1]));
      const slotRange = (input: string, first: number, total: number) =>
        first === 0 && R === total ? input : b.slice(input, [first], [first + R], [1]);
      if (op.kind === 'given') outs.push(slotRange(VIEW_INPUT.given, op.slot, slots.given));
      else if (op.kind === 'noise') {
        const z = normals(slotRange(VIEW_INPUT.noise, op.slot, slots.noise), 5); // [n, R, C, H, W]
        const sigma = axis(ops.map((o) => (o as { sigma: number }).sigma), 'f32');
        outs.push(clip01(b.op('Add', [b.unsqueeze(centre, [1]), b.op('Mul', [z, sigma])])));
      } else if (op.kind === 'brightness') {
        // in float64, as image/corrupt.ts: the views stay bit-close to the JS ones, which matters
        // for int8 models (a value one rounding away can land in the next quantisation step)
        // (x·V')/V in image/corrupt.ts's order (V the HSV value, V' = clip(V + δ)): with δ = 0.5
        // (ImageNet-C's severity 5) V' has a bit below float32's last, so V' of the brightest
        // channel is a float32 tie that only the JS's exact (V·V')/V rounds the same way. Two
        // passes over the views and the float32 Cast, no more: no clip (x ≤ V, so (x·V')/V ≤ V'
        // ≤ 1 and ≥ 0 with monotone rounding), and a black pixel (V = 0) is (V', V', V') with its
        // x and V read as 1 rather than picked by a Where over every value.
        const x = b.unsqueeze(wideClipped(), [1]); // [n, 1, C, H, W]
        const val = b.reduce('ReduceMax', x, [2], true); // [n, 1, 1, H, W]: HSV value
        const lit = b.op('Greater', [val, d(0)]);
        const val2 = clip01d(b.op('Add', [val, axis(ops.map((o) => (o as { delta: number }).delta), 'wide')])); // [n, R, 1, H, W]
        const scaled = b.op('Div', [b.op('Mul', [b.op('Where', [lit, x, d(1)]), val2]), b.op('Where', [lit, val, d(1)])]);
        outs.push(narrow(scaled));
      } else {
        // float64 for the same reason (the channel mean is a sum over the whole plane)
        const x = wideCentre();
        const mean = b.reduce('ReduceMean', x, [2, 3], true);
        const dev = b.unsqueeze(b.op('Sub', [x, mean]), [1]);
        const factor = axis(ops.map((o) => (o as { factor: number }).factor), 'wide');
        // clipped after the float32 rounding: the same values (0 and 1 are floats, rounding is
        // monotone), half the bytes of a float64 Min and Max
        outs.push(clip01(narrow(b.op('Add', [b.op('Mul', [dev, factor]), b.unsqueeze(mean, [1])]))));
      }
      i += R - 1;
      continue;
    }
    let v: string;
    switch (op.kind) {
      case 'crop': {
        const from = cropSource();
        if (from !== src) {
          v = b.slice(from, [op.top, op.left], [op.top + H, op.left + W], [2, 3]);
          posted.add(outs.length); // the index this view is pushed at, below
          break;
        }
        v = op.top === m && op.left === m ? centre : b.slice(src, [op.top, op.left], [op.top + H, op.left + W], [2, 3]);
        if (v === src) v = b.op('Identity', [src]);
        break;
      }
      case 'normal': {
        const x = wideCentre();
        const mu = b.reduce('ReduceMean', x, [2, 3], true);
        const dev = b.op('Sub', [x, mu]);
        const sd = b.op('Sqrt', [b.reduce('ReduceMean', b.op('Mul', [dev, dev]), [2, 3], true)]);
        // the only noise slot is the input itself: a Reshape, not a Gather that copies it
        const pairs = slots.noise === 1 ? b.reshape(VIEW_INPUT.noise, [-1, C, H, W, 2]) : slot(VIEW_INPUT.noise, op.slot);
        v = clip01(b.op('Add', [narrow(mu), b.op('Mul', [narrow(sd), normals(pairs, 4)])]));
        break;
      }
      case 'invert':
        v = b.op('Sub', [b.scalar(1), centre]);
        break;
      case 'rotate': {
        const t = rotation(H, W, op.degrees);
        flatCentre ??= b.reshape(centre, [0, C, H * W]);
        // the fill: mean of the one-pixel frame per channel, in float64 as ood.ts borderMean
        // (shared by every rotation, built on first need)
        if (!borderFill && t.fillWeight.some((w) => w !== 0)) {
          const frame = new Array<number>(H * W).fill(0);
          let count = 0;
          for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (y === 0 || y === H - 1 || x === 0 || x === W - 1) (frame[y * W + x] = 1), count++;
          const frameT = b.fresh('frame');
          b.inits.push({ name: frameT, dims: [1, 1, H * W], dataType: WIDE, ...wideData(frame.map((f) => f / count)) });
          borderFill = narrow(b.reduce('ReduceSum', b.op('Mul', [widen(flatCentre), frameT]), [2], true)); // [n, C, 1]
        }
        const noFill = t.fillWeight.every((w) => w === 0);
        let acc = noFill ? b.scalar(0) : b.op('Mul', [borderFill!, b.f32(t.fillWeight, [1, 1, H * W], 'wfill')]);
        const taps = [0, 1, 2, 3].filter((k) => t.weight[k].some((w) => w !== 0)); // 90°, 180°: one tap
        for (const k of taps) {
          // GatherElements with the index map expanded to the batch: about twice as fast as a
          // Gather, which copies one element at a time. One source a run: the map for every
          // channel is an Expand of constants, which ONNX Runtime folds when it creates the
          // session, so nothing expands it at run time and the graph carries one channel's map
          // (at 224×224×3, 7 MB less to encode, copy and parse for ood's eighteen taps)
          const to = onePerRun ? b.i64([1, C, H * W]) : (flatShape ??= b.op('Shape', [flatCentre]));
          const index = b.op('Expand', [b.i32(t.index[k], [1, 1, H * W]), to]);
          // a single tap of weight 1 without fill is the gathered pixel itself (0 + x·1 = x): a
          // selection (90°, 180°), so it may read the posted source like a crop
          const exact = noFill && taps.length === 1 && t.weight[k].every((w) => w === 1);
          const from: string = exact ? gatherSource() : flatCentre!;
          if (exact && from !== flatCentre) posted.add(outs.length);
          const g = b.op('GatherElements', [from, index], [A.i('axis', 2)]);
          acc = exact ? g : b.op('Add', [acc, b.op('Mul', [g, b.f32(t.weight[k], [1, 1, H * W], 'wrot')])]);
        }
        v = b.reshape(acc, [-1, C, H, W]);
        break;
      }
      case 'blur': {
        const { size, weights } = op.kernel;
        const h = (size - 1) / 2;
        let padded: string;
        if (h < Math.min(H, W)) padded = b.op('Pad', [centre, b.i64([0, 0, h, h, 0, 0, h, h])], [A.s('mode', 'reflect')]); // reflect-101, several times faster than the gathers
        else {
          const rows = b.i64(Array.from({ length: H + 2 * h }, (_, i) => reflect101(i - h, H)));
          const cols = b.i64(Array.from({ length: W + 2 * h }, (_, i) => reflect101(i - h, W)));
          padded = b.op('Gather', [b.op('Gather', [centre, rows], [A.i('axis', 2)]), cols], [A.i('axis', 3)]);
        }
        const split = size >= 7 ? separable(size, weights) : undefined;
        if (split) {
          // Σ_l col_l ⊗ row_l: the rows of every plane through a 1-D Conv with one output per
          // term, then a size×1 Conv that sums the terms: about 2·L·size multiply-adds per value
          // instead of size² (the 21×21 disk of radius 10 has L = 7), and shorter float32 sums.
          // The second Conv is grouped by channel (one group per channel, L terms in): ORT's NCHWc
          // layout pass would otherwise pad its single output channel to a block of 8 or 16. A
          // depthwise column pass is ~25% faster but sums in another order, which moved an int8
          // model's defocus accuracy by 3 points (bench/README, thirty-third pass).
          const L = split.rows.length;
          const Hp = H + 2 * h;
          const rowW = new Float32Array(L * size);
          split.rows.forEach((r, l) => rowW.set(r, l * size));
          const across = b.op('Conv', [b.reshape(padded, [-1, 1, W + 2 * h]), b.f32(rowW, [L, 1, size], 'kernel_row')], [A.ints('kernel_shape', [size])]); // [n·C·Hp, L, W]
          let down: string;
          if (C > 1) {
            const colW = new Float32Array(C * L * size);
            for (let c = 0; c < C; c++) split.cols.forEach((col, l) => colW.set(col, (c * L + l) * size));
            const terms = b.reshape(b.transpose(b.reshape(across, [-1, C, Hp, L, W]), [0, 1, 3, 2, 4]), [-1, C * L, Hp, W]);
            down = b.op('Conv', [terms, b.f32(colW, [C, L, size, 1], 'kernel_col')], [A.i('group', C), A.ints('kernel_shape', [size, 1])]); // [n, C, H, W]
          } else {
            // one channel: no groups to keep the layout pass off, so the columns become rows too
            const colW = new Float32Array(L * size);
            split.cols.forEach((col, l) => colW.set(col, l * size));
            const terms = b.reshape(b.transpose(b.reshape(across, [-1, Hp, L, W]), [0, 3, 2, 1]), [-1, L, Hp]); // [n·W, L, Hp]
            const cols = b.op('Conv', [terms, b.f32(colW, [1, L, size], 'kernel_col')], [A.ints('kernel_shape', [size])]); // [n·W, 1, H]
            down = b.transpose(b.reshape(cols, [-1, 1, W, H]), [0, 1, 3, 2]);
          }
          v = clip01(down);
          break;
        }
        const w = new Float32Array(C * size * size);
        for (let c = 0; c < C; c++) w.set(Float32Array.from(weights), c * size * size);
        const conv = b.op('Conv', [padded, b.f32(w, [C, 1, size, size], 'kernel')], [A.i('group', C), A.ints('kernel_shape', [size, size])]);
        v = clip01(conv);
        break;
      }
      case 'pixelate': {
        // Pillow's BOX weights down (image/corrupt.ts pixelate), its NEAREST indices back up
        const h = pixelateSize(H, op.factor);
        const w = pixelateSize(W, op.factor);
        const ry = Float32Array.from(resampleMatrix('box', H, h)); // [h, H]
        const rx = resampleMatrix('box', W, w); // [w, W] → transposed [W, w]
        const rxT = new Float32Array(W * w);
        for (let i = 0; i < w; i++) for (let j = 0; j < W; j++) rxT[j * w + i] = rx[i * W + j];
        const small = b.op('MatMul', [b.op('MatMul', [b.f32(ry, [h, H], 'box_y'), centre]), b.f32(rxT, [W, w], 'box_x')]);
        const sy = Array.from(nearestIndex(h, H));
        const sx = Array.from(nearestIndex(w, W));
        // columns first, on the h small rows (a Gather on the last axis copies value by value),
        // then whole rows: h·W single copies instead of H·W
        v = b.op('Gather', [b.op('Gather', [small, b.i64(sx)], [A.i('axis', 3)]), b.i64(sy)], [A.i('axis', 2)]);
        break;
      }
      case 'tiles': {
        // per pixel its tile (k; outside the tiles an extra tile T that does not move); per tile
        // its displacement, source start minus its own start (a few values a source, in-graph
        // from the permutation); the source index of a pixel is then p + disp[tile of p]: one
        // gather and one add per pixel
        const nr = op.rows.length - 1;
        const nc = op.cols.length - 1;
        const T = nr * nc;
        const slotOf = new Array<number>(H * W).fill(T);
        for (let r = 0; r < nr; r++) {
          for (let c = 0; c < nc; c++) {
            for (let y = op.rows[r]; y < op.rows[r + 1]; y++) for (let x = op.cols[c]; x < op.cols[c + 1]; x++) slotOf[y * W + x] = r * nc + c;
          }
        }
        const start = Array.from({ length: T }, (_, t) => op.rows[Math.floor(t / nc)] * W + op.cols[t % nc]);
        const at = perms.at.get(op.slot)!;
        const perm = b.slice(VIEW_INPUT.perm, [at], [at + T], [1]); // [n, T]
        const disp = b.op('Sub', [b.op('Gather', [b.i32(start), perm]), b.i32(start, [1, T])]); // [n, T]
        const still = b.op('Mul', [b.slice(disp, [0], [1], [1]), b.i32([0], [])]); // [n, 1] zeros: tile T
        const move = b.op('Gather', [b.op('Concat', [disp, still], [A.i('axis', 1)]), b.i64(slotOf)], [A.i('axis', 1)]); // [n, HW]
        const full = b.op('Add', [move, b.i32(Array.from({ length: H * W }, (_, p) => p))]);
        // a permutation of the pixels: a selection, read from the posted source like a crop
        const from = gatherSource();
        if (from !== flatCentre) posted.add(outs.length);
        const idxC = b.op('Expand', [b.reshape(full, [-1, 1, H * W]), b.i64([1, C, 1])]);
        v = b.reshape(b.op('GatherElements', [from, idxC], [A.i('axis', 2)]), [-1, C, H, W]);
        break;
      }
      case 'patch': {
        let fillV: string;
        if (op.fill === 'mean') {
          fillV = mean();
        } else fillV = b.scalar(op.fill);
        if (op.size === 0) {
          canvases.set(fillV, canvases.get(fillV) ?? b.op('Expand', [fillV, b.op('Shape', [centre])]));
          v = b.op('Identity', [canvases.get(fillV)!]);
        } else {
          const mask = new Uint8Array(H * W);
          for (let y = op.top; y < op.top + op.size; y++) mask.fill(1, y * W + op.left, y * W + op.left + op.size);
          const m4 = bools(mask, [1, 1, H, W]);
          canvases.set(fillV, canvases.get(fillV) ?? b.op('Expand', [fillV, b.op('Shape', [centre])]));
          v = b.op('Where', [m4, centre, canvases.get(fillV)!]);
        }
        break;
      }
      case 'composite': {
        // float64 throughout, the arithmetic of cue/generate.ts compose in its order: the
        // stimuli are the same bits as the JavaScript composition (a found silhouette has zero
        // shading and edges: s = 1, e = 0, and the formula reduces to m·T + (1−m)·x exactly)
        const plane = (j: number) => widen(b.reshape(slot(VIEW_INPUT_C.weight, op.weights + j), [-1, 1, H, W])); // [n, 1, H, W]
        const [mask, shading, edges, ink] = [0, 1, 2, 3].map(plane);
        const texture = widen(slot(VIEW_INPUT.given, op.texture)); // [n, C, H, W]
        const shade = b.op('Max', [b.op('Min', [b.op('Add', [d(1), b.op('Mul', [shading, d(op.shading)])]), d(1.7)]), d(0.3)]);
        const inside = clip01d(b.op('Mul', [texture, shade]));
        const blend = b.op('Add', [b.op('Mul', [mask, inside]), b.op('Mul', [b.op('Sub', [d(1), mask]), wideCentre()])]);
        const e = b.op('Mul', [edges, d(op.edgeWeight)]);
        v = narrow(b.op('Add', [b.op('Mul', [b.op('Sub', [d(1), e]), blend]), b.op('Mul', [e, ink])]));
        break;
      }
      default:
        // ImageNet-C's other corruptions (views/imagenet-c.ts)
        v = buildImagenetCView(cctx, op);
    }
    outs.push(b.unsqueeze(v, [1]));
  }
  for (let k = 0; k < outs.length; k++) if (!posted.has(k)) outs[k] = applyPost(outs[k]);
  const stacked = outs.length === 1 ? outs[0] : b.op('Concat', outs, [A.i('axis', 1)]);
  const output = b.reshape(stacked, [-1, C, H, W]);
  return { nodes: b.nodes, inits: b.inits, inputs, output, views: plan.ops.length };
}

/** The view graph alone, as a model whose output is the views (for a model it cannot be put in front of). */
export function standaloneViewModel(plan: ViewPlan, opset = 13, onePerRun = false, kernels?: ViewKernels): { bytes: Uint8Array; output: string; views: number } {
  const g = buildViewGraph(plan, opset, { onePerRun, kernels });
  const { channels: C, height: H, width: W } = plan;
  const model: onnx.IModelProto = {
    irVersion: 7,
    producerName: 'skeptic-views',
    opsetImport: [{ domain: '', version: Math.max(opset, VIEW_MIN_OPSET) }],
    graph: {
      name: 'skeptic_views',
      node: g.nodes,
      initializer: g.inits,
      input: g.inputs,
      output: [valueInfo(g.output, F32, ['skeptic_view_rows', C, H, W])],
    },
  };
  return { bytes: onnx.ModelProto.encode(model).finish(), output: g.output, views: g.views };
}
