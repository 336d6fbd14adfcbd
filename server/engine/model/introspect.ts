/**
 * Static introspection of a decoded ModelProto: inputs/outputs, opset, producer, op histogram,
 * quantization, metadata; the input layout Skeptic will feed; the output kind as the graph
 * states it (a trailing Softmax/LogSoftmax).
 */
import type { OutputKind, TensorInfo } from '../types';
import { SkepticInputError } from '../errors';
import { dimsOf, elemTypeName, onnx, toNum } from './onnx';

export interface Introspection {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  opset: number;
  irVersion: number;
  producer: string;
  opHistogram: Record<string, number>;
  quantized: boolean;
  metadata: Record<string, string>;
}

function tensorInfo(vi: onnx.IValueInfoProto): TensorInfo {
  const tt = vi.type?.tensorType;
  return {
    name: vi.name ?? '',
    type: tt ? elemTypeName(tt.elemType) : 'non-tensor',
    shape: dimsOf(vi) ?? [],
  };
}

/** Op types that only exist in quantized graphs. */
function isQuantOp(op: string): boolean {
  return (
    op === 'QuantizeLinear' || op === 'DequantizeLinear' || op === 'DynamicQuantizeLinear' ||
    op.startsWith('QLinear') || op === 'ConvInteger' || op === 'MatMulInteger' ||
    op === 'MatMulIntegerToFloat' || op === 'QGemm' || op === 'DynamicQuantizeMatMul'
  );
}

export function introspect(m: onnx.ModelProto): Introspection {
  const g = m.graph!;
  // Before IR 4, initializers had to be listed as graph inputs too; they are weights, not inputs.
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (g.input ?? []).filter((i) => !inits.has(i.name ?? '')).map(tensorInfo);
  const outputs = (g.output ?? []).map(tensorInfo);
  let opset = 0;
  for (const o of m.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') opset = toNum(o.version);
  }
  const opHistogram: Record<string, number> = {};
  let quantized = false;
  for (const n of g.node ?? []) {
    const op = n.opType ?? '?';
    opHistogram[op] = (opHistogram[op] ?? 0) + 1;
    if (isQuantOp(op)) quantized = true;
  }
  const metadata: Record<string, string> = {};
  for (const p of m.metadataProps ?? []) if (p.key) metadata[p.key] = p.value ?? '';
  const producer = [m.producerName, m.producerVersion].filter(Boolean).join(' ');
  return { inputs, outputs, opset, irVersion: toNum(m.irVersion), producer, opHistogram, quantized, metadata };
}

// ---------------------------------------------------------------------------------------------
// Input layout

/** How Skeptic feeds the model's input. */
export interface InputPlan {
  name: string;
  type: string;
  dims: (number | string)[];
  layout: 'NCHW' | 'NHWC' | 'flat';
  channels: 1 | 3;
  height: number;
  width: number;
  /** Index of the batch axis in dims, or -1 when the input has none (one image per run). */
  batchAxis: number;
  /** dims[batchAxis] as declared ('none' without a batch axis). */
  declaredBatch: number | string;
  /** True when H and W were symbolic and came from a size hint or the 224 default. */
  sizeAssumed: boolean;
}

const isNum = (d: number | string | undefined): d is number => typeof d === 'number';
const fmt = (dims: (number | string)[]) => `[${dims.join(',')}]`;

/**
 * Decides the layout of the model's single image input. sizeHint gives H×W when the graph leaves
 * them symbolic (from preprocessor_config.json); otherwise 224×224 is assumed (caller warns).
 */
export function planInput(
  file: string,
  input: TensorInfo,
  sizeHint?: { height: number; width: number },
): InputPlan {
  const dims = input.shape;
  const refuse = (why: string): never => {
    throw new SkepticInputError(
      `${file}: unsupported input '${input.name}' of shape ${fmt(dims)}: ${why}. Skeptic feeds ` +
        'NCHW [N,C,H,W] or NHWC [N,H,W,C] with C = 1 or 3, grayscale [N,H,W], or a flattened ' +
        '[N,D] (also [N,D,1], [N,1,1,D]) with D = H·W or 3·H·W of a square image',
      file,
    );
  };
  const base = { name: input.name, type: input.type, dims };
  const spatial = (h: number | string, w: number | string) => {
    if (isNum(h) && isNum(w)) return { height: h, width: w, sizeAssumed: false };
    if (isNum(h) !== isNum(w)) refuse('one spatial dimension is fixed and the other symbolic');
    return { height: sizeHint?.height ?? 224, width: sizeHint?.width ?? 224, sizeAssumed: true };
  };
  const flat = (d: number | string | undefined, batchAxis: number): InputPlan => {
    if (!isNum(d)) return refuse('the flattened feature dimension is symbolic');
    let side = Math.round(Math.sqrt(d));
    if (side * side === d && side > 1) {
      return { ...base, layout: 'flat', channels: 1, height: side, width: side, batchAxis, declaredBatch: batchAxis < 0 ? 'none' : dims[batchAxis], sizeAssumed: false };
    }
    side = Math.round(Math.sqrt(d / 3));
    if (d % 3 === 0 && side * side * 3 === d && side > 1) {
      return { ...base, layout: 'flat', channels: 3, height: side, width: side, batchAxis, declaredBatch: batchAxis < 0 ? 'none' : dims[batchAxis], sizeAssumed: false };
    }
    return refuse(`the flattened size ${d} is neither H·W nor 3·H·W of a square image`);
  };
  const chan = (c: number | string | undefined): c is 1 | 3 => c === 1 || c === 3;

  if (input.type === 'non-tensor') refuse('it is not a tensor');
  switch (dims.length) {
    case 4: {
      const [b, d1, d2, d3] = dims;
      // [N,1,1,D] / [N,D,1,1] / [N,1,D,1]: two unit dims and one long one is a flattened vector.
      const ones = [d1, d2, d3].filter((d) => d === 1).length;
      const big = [d1, d2, d3].find((d) => d !== 1);
      if (ones === 2 && isNum(big) && big > 3) return flat(big, 0);
      if (chan(d1) && !(chan(d3) && !isNum(d2))) {
        return { ...base, layout: 'NCHW', channels: d1, ...spatial(d2, d3), batchAxis: 0, declaredBatch: b };
      }
      if (chan(d3)) {
        return { ...base, layout: 'NHWC', channels: d3, ...spatial(d1, d2), batchAxis: 0, declaredBatch: b };
      }
      if (!isNum(d1) && !isNum(d3)) refuse('the channel dimension is symbolic; Skeptic needs it fixed to 1 or 3');
      return refuse(`no channel dimension of 1 or 3 (dim 1 is ${d1}, dim 3 is ${d3})`);
    }
    case 3: {
      const [a, b, c] = dims;
      if (a === 3 && isNum(b) && isNum(c) && b > 3 && c > 3) {
        // [3,H,W]: one CHW image without a batch axis
        return { ...base, layout: 'NCHW', channels: 3, height: b, width: c, batchAxis: -1, declaredBatch: 'none', sizeAssumed: false };
      }
      if (c === 3 && isNum(a) && isNum(b) && a > 3 && b > 3) {
        // [H,W,3]: one HWC image without a batch axis
        return { ...base, layout: 'NHWC', channels: 3, height: a, width: b, batchAxis: -1, declaredBatch: 'none', sizeAssumed: false };
      }
      if (c === 1 && b !== 1) return flat(b, 0);
      if (b === 1 && c !== 1) return flat(c, 0);
      // [N,H,W]: grayscale; the same memory as NCHW with C = 1
      return { ...base, layout: 'NCHW', channels: 1, ...spatial(b, c), batchAxis: 0, declaredBatch: a };
    }
    case 2:
      return flat(dims[1], 0);
    case 1:
      return flat(dims[0], -1);
    default:
      return refuse(`rank ${dims.length} is not supported`);
  }
}

/** The input tensor's dims for a run of n images (n ignored without a batch axis). */
export function feedDims(plan: InputPlan, n: number): number[] {
  const out: number[] = [];
  // Symbolic non-batch dims can only be H and W (planInput refuses the rest).
  let spatialIdx = 0;
  const hw = [plan.height, plan.width];
  plan.dims.forEach((d, i) => {
    if (i === plan.batchAxis) out.push(n);
    else if (typeof d === 'number') out.push(d);
    else out.push(hw[Math.min(spatialIdx++, 1)]);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output kind as the graph states it

/** Ops that do not change what the values mean (shape-only or identity at inference). */
const PASS_THROUGH = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Dropout', 'DequantizeLinear']);

/**
 * Follows the output back through shape-only ops to the op that computes it. Softmax →
 * probabilities, LogSoftmax → log-probabilities; anything else says nothing (undefined).
 */
export function graphOutputKind(m: onnx.ModelProto, outputName: string): { kind?: OutputKind; op: string } {
  const producers = new Map<string, onnx.INodeProto>();
  for (const n of m.graph?.node ?? []) for (const o of n.output ?? []) producers.set(o, n);
  let name = outputName;
  for (let hops = 0; hops < 16; hops++) {
    const n = producers.get(name);
    if (!n) return { op: 'graph input or initializer' };
    const op = n.opType ?? '';
    if (op === 'Softmax' || op === 'QLinearSoftmax') return { kind: 'probabilities', op };
    if (op === 'LogSoftmax') return { kind: 'log-probabilities', op };
    if (!PASS_THROUGH.has(op) || !n.input?.[0]) return { op };
    name = n.input[0];
  }
  return { op: 'deep chain of reshapes' };
}
