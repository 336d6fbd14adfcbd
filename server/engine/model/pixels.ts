/**
 * Preprocessing inside the graph. The model Skeptic runs takes pixel-space images (float32 in
 * [0,1], planar [N,C,H,W], RGB or gray) as its input and applies, with ONNX ops in front of the
 * original graph:
 *
 *   [Gather channels 2,1,0 (bgr)] → [Mul a] → [Add b] → [Transpose (NHWC) | Reshape (flat, [N,H,W])]
 *   → [Cast (float16/float64) | Round, Clip, Cast (uint8)] → the original input
 *
 * with a = scale/std and b = −mean/std per channel. Why: predict() then hands the caller's pixels
 * to session.run without a JavaScript pass over them (JS elementwise work costs ~1.3 ns/value on
 * the test machine, as much as a small CIFAR net; ORT's kernels are vectorised and threaded, and
 * its optimiser cancels our Transpose against a tf2onnx model's own NHWC→NCHW one). It is also
 * the pixel-space graph the gradient code differentiates (DESIGN.md: ε in the units a person sees).
 *
 * Needs opset ≥ 7 (numpy-broadcasting Mul/Add) and ≥ 11 for a uint8 input (Round); otherwise the
 * caller falls back to filling the input tensor in JS (preprocess.ts makeFiller).
 */
import type { Preprocessing } from '../types';
import { addInitializer, floatTensor, int64Tensor, onnx } from './onnx';
import { feedDims, type InputPlan } from './introspect';

export const PIXEL_INPUT = 'skeptic_pixels';
const P = 'skeptic_pre_';

/** Whether the prefix can be built for this model (else: fill the tensor in JS). */
export function canPrefix(plan: InputPlan, opset: number, names: Set<string>): boolean {
  if (opset < 7) return false;
  if (plan.type === 'uint8' && opset < 11) return false;
  if (!['float32', 'float16', 'float64', 'uint8'].includes(plan.type)) return false;
  // our names must not clash with the model's
  for (const n of names) if (n === PIXEL_INPUT || n.startsWith(P)) return false;
  return true;
}

/** Dims of the pixel-space input for a run of `rows` images: [rows,C,H,W], or [C,H,W] without a batch axis. */
export function pixelDims(plan: InputPlan, rows: number): number[] {
  const chw = [plan.channels, plan.height, plan.width];
  return plan.batchAxis < 0 ? chw : [rows, ...chw];
}

/**
 * Adds the prefix to m (a decoded copy) in place. Returns the name of the input to feed: the
 * original input's when nothing is needed (identity preprocessing, float32 NCHW [N,C,H,W]).
 */
export function addPixelPrefix(m: onnx.ModelProto, plan: InputPlan, pre: Preprocessing): string {
  const g = m.graph!;
  const C = plan.channels;
  const batched = plan.batchAxis >= 0;
  const chAxis = batched ? 1 : 0;
  const nodes: onnx.INodeProto[] = [];
  let cur = PIXEL_INPUT;
  let k = 0;
  const op = (opType: string, inputs: string[], attribute: onnx.IAttributeProto[] = []) => {
    const out = `${P}${k++}`;
    nodes.push({ opType, input: inputs, output: [out], name: out, domain: '', attribute });
    cur = out;
  };
  const init = (t: onnx.ITensorProto) => {
    addInitializer(m, t);
    return t.name!;
  };
  const ints = (name: string, v: number[]): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
  const int = (name: string, v: number): onnx.IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });

  if (C === 3 && pre.channelOrder === 'bgr') {
    op('Gather', [cur, init(int64Tensor(`${P}bgr`, [2, 1, 0]))], [int('axis', chAxis)]);
  }
  const a = pre.std.map((s) => pre.scale / s);
  const b = pre.mean.map((mu, c) => -mu / pre.std[c]);
  // [C,1,1] broadcasts against [N,C,H,W] and [C,H,W] alike
  if (a.some((x) => x !== 1)) op('Mul', [cur, init(floatTensor(`${P}a`, [C, 1, 1], a))]);
  if (b.some((x) => x !== 0)) op('Add', [cur, init(floatTensor(`${P}b`, [C, 1, 1], b))]);

  if (plan.layout === 'NHWC') op('Transpose', [cur], [ints('perm', batched ? [0, 2, 3, 1] : [1, 2, 0])]);
  else if (plan.layout === 'flat' || plan.dims.length !== (batched ? 4 : 3)) {
    // flat ([N,D], [N,D,1], [1,1,1,D]...) or gray [N,H,W]: same memory, other shape
    const shape = feedDims(plan, -1);
    op('Reshape', [cur, init(int64Tensor(`${P}shape`, shape))]);
  }
  if (plan.type === 'float16') op('Cast', [cur], [int('to', 10)]);
  else if (plan.type === 'float64') op('Cast', [cur], [int('to', 11)]);
  else if (plan.type === 'uint8') {
    op('Round', [cur]);
    op('Clip', [cur, init(floatTensor(`${P}lo`, [], [0])), init(floatTensor(`${P}hi`, [], [255]))]);
    op('Cast', [cur], [int('to', 2)]);
  }
  if (nodes.length === 0) return plan.name;

  // The last prefix node produces the original input, so the original graph is untouched.
  nodes[nodes.length - 1].output = [plan.name];
  const idx = g.input!.findIndex((i) => i.name === plan.name);
  const orig = g.input![idx];
  const origDims = orig.type?.tensorType?.shape?.dim ?? [];
  const dim: onnx.TensorShapeProto.IDimension[] = [];
  if (batched) dim.push({ ...origDims[plan.batchAxis] });
  dim.push({ dimValue: C }, { dimValue: plan.height }, { dimValue: plan.width });
  g.input![idx] = { name: PIXEL_INPUT, type: { tensorType: { elemType: 1, shape: { dim } } } };
  g.node = [...nodes, ...(g.node ?? [])];
  return PIXEL_INPUT;
}
