/**
 * The classifier head: the weights W (K×d) and bias b (K) of the last linear layer, the one whose
 * input is the penultimate feature tensor (model/features.ts), so that logits = W·f + b can be
 * recomputed from (modified) features. ReAct clips f before this product; ViM needs the origin
 * u = −pinv(W)·b of the logit space.
 *
 * Read from the graph's initializers: Gemm (alpha, beta, transB; transA must be 0), MatMul with a
 * following Add of a stored vector, and a 1×1 Conv (weights [K,d,1,1], bias input 2). Weights
 * reached through shape-only ops (Reshape, Identity, Squeeze...) are read in storage order, which
 * is what those ops preserve. A quantized graph (QOperator or QDQ) is first turned into its float
 * copy (prior/dequantize.ts with the model's own ranges), so W and b are the dequantized values;
 * the int8 output's saturation (a Clip) between the product and the bias is not part of W·f + b.
 * Anything else (a Transpose on the weights, a computed weight) is refused with a reason.
 */
import { dequantize, storedValues } from '../prior/dequantize';
import { onnx, toNum } from './onnx';

export interface LinearHead {
  /** Row-major K×d. */
  W: Float64Array;
  b: Float64Array;
  K: number;
  d: number;
  /** The op the weights were read from, for the report. */
  how: string;
}

const SHAPE_ONLY = ['Reshape', 'Identity', 'Cast', 'Squeeze', 'Unsqueeze', 'Flatten'];
/** Ops between the product and its bias Add that keep the values (the int8 saturation Clip too). */
const PASS = [...SHAPE_ONLY, 'Clip'];

/** Why the head could not be read. */
export class HeadError extends Error {}

function isQuantized(m: onnx.IModelProto): boolean {
  return (m.graph?.node ?? []).some((n) => /^(QLinear|QGemm|DequantizeLinear|QuantizeLinear)/.test(n.opType ?? ''));
}

/** The linear head fed by `feature` in `proto` (not modified: a quantized graph is copied). */
export function linearHead(proto: onnx.IModelProto, feature: string): LinearHead {
  let m = proto;
  if (isQuantized(proto)) {
    m = onnx.ModelProto.decode(onnx.ModelProto.encode(proto as onnx.ModelProto).finish());
    dequantize(m, 'range');
  }
  const g = m.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  for (const n of g.node ?? []) {
    if (n.opType === 'Constant') {
      const t = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      if (t && n.output?.[0]) inits.set(n.output[0], t);
    }
  }
  const producers = new Map<string, onnx.INodeProto>();
  const consumers = new Map<string, onnx.INodeProto[]>();
  for (const n of g.node ?? []) {
    for (const o of n.output ?? []) producers.set(o, n);
    for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  /** Values of a stored tensor, through shape-only ops. */
  const stored = (x: string | undefined): number[] | undefined => {
    for (let hops = 0; x && hops < 8; hops++) {
      const t = inits.get(x);
      if (t) return storedValues(t);
      const p = producers.get(x);
      if (!p || !SHAPE_ONLY.includes(p.opType ?? '')) return undefined;
      x = p.input?.[0];
    }
    return undefined;
  };
  /** A bias Add after `out` (through value-keeping ops): its stored operand. */
  const biasAfter = (out: string, K: number): number[] | undefined => {
    let x = out;
    for (let hops = 0; hops < 6; hops++) {
      const next = consumers.get(x) ?? [];
      if (next.length !== 1) return undefined;
      const n = next[0];
      if (n.opType === 'Add') {
        const other = (n.input ?? []).find((i) => i !== x);
        const v = stored(other);
        return v && (v.length === K || v.length === 1 || (!K && v.length > 1)) ? v : undefined;
      }
      if (!PASS.includes(n.opType ?? '')) return undefined;
      x = n.output?.[0] ?? '';
    }
    return undefined;
  };
  const attr = (n: onnx.INodeProto, a: string, d: number) => {
    const x = (n.attribute ?? []).find((y) => y.name === a);
    return x ? (x.type === onnx.AttributeProto.AttributeType.FLOAT ? x.f ?? d : toNum(x.i)) : d;
  };

  const node = (consumers.get(feature) ?? []).find((n) => ['Gemm', 'MatMul', 'Conv'].includes(n.opType ?? ''));
  if (!node) throw new HeadError(`no Gemm, MatMul or 1×1 Conv reads '${feature}'`);
  const op = node.opType!;
  const ins = node.input ?? [];
  const label = `${op} '${node.name || node.output?.[0]}'`;
  if (ins[0] !== feature) throw new HeadError(`${label} reads '${feature}' as its weight operand, not its input`);
  const w = stored(ins[1]);
  if (!w) throw new HeadError(`${label}: the weights are not stored in the graph (or reached through a Transpose)`);
  const winit = inits.get(ins[1]);
  let K: number;
  let d: number;
  let W: Float64Array;
  let b: number[] | undefined;
  if (op === 'Gemm') {
    if (attr(node, 'transA', 0)) throw new HeadError(`${label} has transA = 1`);
    const alpha = attr(node, 'alpha', 1);
    const beta = attr(node, 'beta', 1);
    const transB = attr(node, 'transB', 0);
    const dims = (winit?.dims ?? []).map(toNum);
    if (dims.length !== 2) throw new HeadError(`${label}: the weight is not a stored 2-D tensor`);
    [K, d] = transB ? [dims[0], dims[1]] : [dims[1], dims[0]];
    W = new Float64Array(K * d);
    for (let k = 0; k < K; k++) for (let j = 0; j < d; j++) W[k * d + j] = alpha * (transB ? w[k * d + j] : w[j * K + k]);
    const c = ins[2] ? stored(ins[2]) : undefined;
    b = c ? c.map((x) => beta * x) : biasAfter(node.output![0], K);
  } else if (op === 'MatMul') {
    // B is [d, K] after its shape-only ops; K from the bias or the final dims when declared.
    const out = node.output![0];
    const vi = [...(g.valueInfo ?? []), ...(g.output ?? [])].find((v) => v.name === out);
    const dimsOut = vi?.type?.tensorType?.shape?.dim?.map((x) => (x.dimValue !== undefined && x.dimValue !== null ? toNum(x.dimValue) : 0)) ?? [];
    const wdims = (winit?.dims ?? []).map(toNum);
    let Kguess = dimsOut[dimsOut.length - 1] || (wdims.length === 2 ? wdims[1] : 0);
    // Undeclared and reshaped: the bias's length says K (a weight [d,K] with a bias of K).
    b = biasAfter(out, Kguess);
    if (!Kguess && b && b.length > 1) Kguess = b.length;
    if (!Kguess || w.length % Kguess) throw new HeadError(`${label}: cannot tell the number of classes`);
    K = Kguess;
    d = w.length / K;
    W = new Float64Array(K * d);
    for (let k = 0; k < K; k++) for (let j = 0; j < d; j++) W[k * d + j] = w[j * K + k];
  } else {
    const dims = (winit?.dims ?? []).map(toNum);
    if (dims.length !== 4 || dims[2] !== 1 || dims[3] !== 1 || attr(node, 'group', 1) !== 1) throw new HeadError(`${label} is not a plain 1×1 convolution`);
    [K, d] = [dims[0], dims[1]];
    W = Float64Array.from(w);
    b = ins[2] ? stored(ins[2]) : biasAfter(node.output![0], K);
  }
  const bias = new Float64Array(K);
  if (b) for (let k = 0; k < K; k++) bias[k] = b.length === 1 ? b[0] : b[k];
  return { W, b: bias, K, d, how: `${label}${m !== proto ? ' of the dequantized graph' : ''}${b ? '' : ' (no bias found: b = 0)'}` };
}
