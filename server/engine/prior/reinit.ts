/**
 * Re-initialising a model's weights in its own ONNX graph (the untrained architecture of
 * Ulyanov et al., CVPR 2018, "Deep Image Prior"), in place on a decoded copy.
 *
 * Every floating-point tensor stored in the graph (initializers and Constant nodes) gets a role
 * from the op that consumes it, looking through shape-only ops (Reshape, Transpose, Flatten,
 * Squeeze, Unsqueeze, Identity, Cast) between the tensor and that op:
 *   weight      Conv/ConvTranspose input 1; Gemm input B (or A when it is the stored one);
 *               MatMul either input when it is stored. He/Kaiming normal by fan-in:
 *               N(0, 2/fan_in), seeded per tensor (seed, tensor name).
 *               fan_in: Conv/ConvTranspose W[d0,d1,k…] → d1·∏k (PyTorch's convention);
 *               Gemm B[K,N] → K (transB: B[N,K] → K); MatMul B → (element count)/(last dim) of
 *               the stored tensor ([K,N] → K; CNTK's [16,4,4,10] reshaped to [256,10] → 256);
 *               a stored left operand A[M,K] → K.
 *   bias        Conv/ConvTranspose input 2, Gemm input C, and an Add whose other input comes
 *               straight from a Conv, ConvTranspose, Gemm or MatMul, Identity ops aside (CNTK
 *               adds biases that way, and so does a dequantized QLinearAdd) → 0.
 *   batchnorm   BatchNormalization scale → 1, B → 0, mean → 0, var → 1 (the identity, up to ε);
 *               InstanceNormalization / LayerNormalization scale → 1, bias → 0.
 *   other       everything else (clip bounds, pads, scales of Resize, constants of the
 *               preprocessing, PReLU slopes) is left as it is: it is part of the architecture's
 *               definition, or not a learned weight in the usual sense; the count is reported.
 * A tensor that feeds several ops takes the first role found in node order. Stored values keep
 * their element type (float32, float16, float64).
 */
import { derivedRng, gaussian } from '../random';
import { toHalf } from '../model/output';
import { onnx, toNum } from '../model/onnx';

export interface ReinitReport {
  weights: number;
  biases: number;
  normalisations: number;
  /** Floating-point tensors left as they are, by name (at most 20 listed). */
  kept: number;
  keptNames: string[];
  /** Values re-initialised, in all. */
  parameters: number;
}

const FLOAT_TYPES = new Set([1, 10, 11]);
const SHAPE_OPS = new Set(['Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast']);
const LINEAR_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

type Role = { kind: 'weight'; fanIn: number } | { kind: 'fill'; value: number; what: 'bias' | 'norm' };

interface Stored {
  name: string;
  tensor: onnx.ITensorProto;
}

function numel(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The float tensors stored in the graph: initializers and Constant nodes' `value`. */
function storedTensors(g: onnx.IGraphProto): Stored[] {
  const out: Stored[] = [];
  for (const t of g.initializer ?? []) if (FLOAT_TYPES.has(t.dataType ?? 0)) out.push({ name: t.name ?? '', tensor: t });
  for (const n of g.node ?? []) {
    if (n.opType !== 'Constant') continue;
    const t = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
    if (t && FLOAT_TYPES.has(t.dataType ?? 0) && n.output?.[0]) out.push({ name: n.output[0], tensor: t });
  }
  return out;
}

function roleOf(name: string, dims: number[], g: onnx.IGraphProto, consumers: Map<string, Array<{ node: onnx.INodeProto; index: number }>>, producers: Map<string, onnx.INodeProto>): Role | undefined {
  const seen = new Set<string>();
  const queue = [name];
  while (queue.length) {
    const v = queue.shift()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const { node, index } of consumers.get(v) ?? []) {
      const op = node.opType ?? '';
      if (SHAPE_OPS.has(op) && index === 0) {
        for (const o of node.output ?? []) queue.push(o);
        continue;
      }
      const attrInt = (a: string) => toNum((node.attribute ?? []).find((x) => x.name === a)?.i ?? 0);
      const total = numel(dims);
      switch (op) {
        case 'Conv':
        case 'ConvTranspose':
          if (index === 1) return { kind: 'weight', fanIn: dims.length >= 2 ? numel(dims.slice(1)) : total };
          if (index === 2) return { kind: 'fill', value: 0, what: 'bias' };
          break;
        case 'Gemm':
          if (index === 1) return { kind: 'weight', fanIn: dims.length === 2 ? dims[attrInt('transB') ? 1 : 0] : total };
          if (index === 0) return { kind: 'weight', fanIn: dims.length === 2 ? dims[attrInt('transA') ? 0 : 1] : total };
          if (index === 2) return { kind: 'fill', value: 0, what: 'bias' };
          break;
        case 'MatMul':
          if (index === 1) return { kind: 'weight', fanIn: dims.length >= 2 ? total / dims[dims.length - 1] : total };
          if (index === 0) return { kind: 'weight', fanIn: dims.length >= 1 ? dims[dims.length - 1] : total };
          break;
        case 'BatchNormalization':
          if (index === 1 || index === 4) return { kind: 'fill', value: 1, what: 'norm' };
          if (index === 2 || index === 3) return { kind: 'fill', value: 0, what: 'norm' };
          break;
        case 'InstanceNormalization':
        case 'LayerNormalization':
          if (index === 1) return { kind: 'fill', value: 1, what: 'norm' };
          if (index === 2) return { kind: 'fill', value: 0, what: 'norm' };
          break;
        case 'Add': {
          const other = node.input?.[1 - index];
          let p = other ? producers.get(other) : undefined;
          // through Identity (a dequantized graph puts one after a linear op whose output range
          // is not clipped)
          for (let hops = 0; p && p.opType === 'Identity' && hops < 4; hops++) p = producers.get(p.input?.[0] ?? '');
          if (p && LINEAR_OPS.has(p.opType ?? '')) return { kind: 'fill', value: 0, what: 'bias' };
          break;
        }
        default:
          break;
      }
    }
  }
  return undefined;
}

/** Writes new values into a stored tensor, keeping its element type; clears other fields. */
function overwrite(t: onnx.ITensorProto, values: Float32Array): void {
  const dt = t.dataType ?? 1;
  let raw: Uint8Array;
  if (dt === 10) {
    const h = new Uint16Array(values.length);
    toHalf(values, h, values.length);
    raw = new Uint8Array(h.buffer);
  } else if (dt === 11) raw = new Uint8Array(Float64Array.from(values).buffer);
  else raw = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  t.floatData = [];
  t.doubleData = [];
  t.int32Data = [];
  t.rawData = raw;
  t.dataLocation = 0;
  t.externalData = [];
}

/** He-normal weights, zero biases, identity normalisations; see the module comment. */
export function reinitialize(m: onnx.IModelProto, seed: number): ReinitReport {
  const g = m.graph!;
  const consumers = new Map<string, Array<{ node: onnx.INodeProto; index: number }>>();
  const producers = new Map<string, onnx.INodeProto>();
  for (const n of g.node ?? []) {
    (n.input ?? []).forEach((x, index) => {
      if (!x) return;
      if (!consumers.has(x)) consumers.set(x, []);
      consumers.get(x)!.push({ node: n, index });
    });
    for (const o of n.output ?? []) producers.set(o, n);
  }
  const report: ReinitReport = { weights: 0, biases: 0, normalisations: 0, kept: 0, keptNames: [], parameters: 0 };
  for (const { name, tensor } of storedTensors(g)) {
    const dims = (tensor.dims ?? []).map(toNum);
    const count = numel(dims);
    const role = roleOf(name, dims, g, consumers, producers);
    if (!role) {
      report.kept++;
      if (report.keptNames.length < 20) report.keptNames.push(name);
      continue;
    }
    const values = new Float32Array(count);
    if (role.kind === 'weight') {
      const std = Math.sqrt(2 / Math.max(1, role.fanIn));
      const rng = derivedRng(seed, 'prior/he-normal', name);
      for (let i = 0; i < count; i++) values[i] = gaussian(rng) * std;
      report.weights++;
    } else {
      values.fill(role.value);
      if (role.what === 'bias') report.biases++;
      else report.normalisations++;
    }
    overwrite(tensor, values);
    report.parameters += count;
  }
  return report;
}
