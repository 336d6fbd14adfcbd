/**
 * The float shadow of a quantized (int8/uint8) graph. Every quantized activation q is represented
 * by its dequantized value r = (q − zp)·scale, under the same name:
 *
 *   QuantizeLinear(x)          → Clip(x, lo, hi)        lo/hi: the dequantized ends of the integer range
 *   DequantizeLinear(q)        → Identity(q)            (a constant q is dequantized here, in JS)
 *   QLinearConv/MatMul/Add/... → the float op on dequantized weights, then Clip(lo, hi) of the output's
 *                                quantization when lo = 0: the ReLU/ReLU6 that quantizers fold into
 *                                the output range
 *
 * Rounding is left out: it is straight-through (identity), the usual estimator for quantized
 * nets; so is the saturation of a range around 0 (lo < 0 < hi, no activation: calibrated ranges
 * rarely clip, and each such Clip would cost a mask in the backward pass). Ops that only move data (Reshape, Transpose, MaxPool, Concat...) work on the floats as
 * they did on the integers. The shadow's logits differ from the int8 model's by the rounding.
 */
import { onnx, toNum } from '../onnx';
import { A } from './builder';
import { ConstFolder, dequantize, f32Init, quantRange, type JsTensor } from './tensor';

export interface ShadowResult {
  /** Original op type per shadowed node's outputs (for coverage: QLinearConv ×52). */
  origin: Map<string, { id: number; op: string }>;
  converted: Record<string, number>;
  unsupported: { op: string; node: string }[];
  /** Output ranges kept as Clip (fused ReLU/ReLU6: starting at 0) and saturations made identity. */
  clips: { kept: number; dropped: number };
}

/** Ops that need a shadow, and the float op that stands for each. */
export const SHADOW_RULES: Record<string, string> = {
  QuantizeLinear: 'straight-through: identity, or Clip when the range starts at 0 (rounding is identity)',
  DequantizeLinear: 'straight-through: identity on the float shadow (constants dequantized)',
  QLinearConv: 'float shadow: Conv on dequantized weights (+ Clip of a fused ReLU/ReLU6 range) → Conv, Clip rules',
  QLinearMatMul: 'float shadow: MatMul on dequantized weights (+ Clip of a range starting at 0) → MatMul, Clip rules',
  QLinearAdd: 'float shadow: Add (+ Clip of a range starting at 0) → Add, Clip rules',
  QLinearMul: 'float shadow: Mul (+ Clip of a range starting at 0) → Mul, Clip rules',
  QLinearGlobalAveragePool: 'float shadow: GlobalAveragePool (+ Clip of a range starting at 0) → GlobalAveragePool rule',
  QLinearAveragePool: 'float shadow: AveragePool (+ Clip of a range starting at 0) → AveragePool rule',
  QLinearLeakyRelu: 'float shadow: LeakyRelu (+ Clip of a range starting at 0) → LeakyRelu rule',
  QLinearSigmoid: 'float shadow: Sigmoid (+ Clip of a range starting at 0) → Sigmoid rule',
  QLinearConcat: 'float shadow: Concat (+ Clip of a range starting at 0) → Concat rule',
  QLinearSoftmax: 'float shadow: Softmax (+ Clip of a range starting at 0) → Softmax rule',
  QGemm: 'float shadow: Gemm on dequantized weights (+ Clip of a range starting at 0) → Gemm rule',
};

const NO_SHADOW = new Set(['ConvInteger', 'MatMulInteger', 'DynamicQuantizeLinear', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'QAttention', 'QOrderedMatMul']);

export function isQuantOp(op: string): boolean {
  return op in SHADOW_RULES || NO_SHADOW.has(op);
}

/** Rewrites m's graph in place into its float shadow. */
export function floatShadow(m: onnx.ModelProto, file: string): ShadowResult {
  const g = m.graph!;
  const cf = new ConstFolder(g);
  const origin: ShadowResult['origin'] = new Map();
  const clips = { kept: 0, dropped: 0 };
  const converted: Record<string, number> = {};
  const unsupported: ShadowResult['unsupported'] = [];
  const graphInputs = new Set((g.input ?? []).map((i) => i.name ?? ''));
  const newInits: onnx.ITensorProto[] = [];
  const out: onnx.INodeProto[] = [];
  let k = 0;
  const fresh = (hint: string) => `skeptic_shadow_${hint}_${k++}`;
  const constOf = (name: string | undefined | null): JsTensor | undefined => (name ? cf.get(name) : undefined);
  const need = (name: string | undefined | null, what: string, node: string): JsTensor => {
    const t = constOf(name);
    if (!t) throw new Error(`${file}: ${node}: the ${what} '${name}' is not a constant`);
    return t;
  };
  /** Float version of a quantized operand: a dequantized initializer when constant, else the shadow value. */
  const floatOperand = (q: string, s: string, zp: string | undefined, node: string, axis = 1): string => {
    const c = constOf(q);
    if (!c) return q;
    const name = fresh(`${q}_f`);
    const deq = dequantize(c, need(s, 'scale', node), zp ? constOf(zp) : undefined, axis);
    newInits.push(f32Init(name, deq.dims, deq.data as Float32Array));
    return name;
  };
  const scalarInit = (v: number) => {
    const name = fresh('c');
    newInits.push(f32Init(name, [], [v]));
    return name;
  };
  /** Clip to the dequantized ends of the integer range of (scale, zp). */
  const clipRange = (x: string, s: string, zp: string | undefined, outName: string, node: string): onnx.INodeProto => {
    const sc = need(s, 'output scale', node);
    const z = zp ? constOf(zp) : undefined;
    if (sc.data.length > 1) throw new Error(`${file}: ${node}: per-channel activation quantization is not supported`);
    const [qlo, qhi] = quantRange(z?.dtype);
    const zv = z ? z.data[0] : 0;
    const lo = (qlo - zv) * sc.data[0];
    const hi = (qhi - zv) * sc.data[0];
    if (lo < 0 && hi > 0) {
      // a range around 0 is only the quantizer's saturation (no activation was fused into it):
      // identity, straight-through; a range starting at 0 is a fused ReLU/ReLU6 and stays a Clip
      clips.dropped++;
      return { opType: 'Identity', input: [x], output: [outName], name: `${outName}_skeptic_sat`, domain: '' };
    }
    clips.kept++;
    return { opType: 'Clip', input: [x, scalarInit(lo), scalarInit(hi)], output: [outName], name: `${outName}_skeptic_clip`, domain: '' };
  };

  (g.node ?? []).forEach((n, id) => {
    const op = n.opType ?? '';
    const nm = n.name || n.output?.[0] || op;
    if (NO_SHADOW.has(op)) {
      unsupported.push({ op, node: nm });
      out.push(n);
      return;
    }
    if (!(op in SHADOW_RULES)) {
      out.push(n);
      return;
    }
    const ins = n.input ?? [];
    const y = n.output![0];
    const emitted: onnx.INodeProto[] = [];
    const inner = fresh(op);
    const attrs = (drop: string[] = []) => (n.attribute ?? []).filter((a) => !drop.includes(a.name ?? ''));
    try {
      switch (op) {
        case 'QuantizeLinear': {
          if (constOf(ins[0])) {
            out.push(n); // a weight's quantization: folded where it is dequantized
            return;
          }
          emitted.push(clipRange(ins[0], ins[1], ins[2], y, nm));
          break;
        }
        case 'DequantizeLinear': {
          const c = constOf(ins[0]);
          if (c) {
            const deq = dequantize(c, need(ins[1], 'scale', nm), ins[2] ? constOf(ins[2]) : undefined, toNum((n.attribute ?? []).find((a) => a.name === 'axis')?.i ?? 1));
            newInits.push(f32Init(y, deq.dims, deq.data as Float32Array));
            break;
          }
          if (graphInputs.has(ins[0])) {
            // a raw integer input (fed as float): dequantize for real
            const sc = need(ins[1], 'scale', nm);
            const z = ins[2] ? constOf(ins[2]) : undefined;
            const t1 = fresh('deq');
            emitted.push({ opType: 'Sub', input: [ins[0], scalarInit(z ? z.data[0] : 0)], output: [t1], name: t1, domain: '' });
            emitted.push({ opType: 'Mul', input: [t1, scalarInit(sc.data[0])], output: [y], name: y, domain: '' });
            break;
          }
          emitted.push({ opType: 'Identity', input: [ins[0]], output: [y], name: nm, domain: '' });
          break;
        }
        case 'QLinearConv': {
          // x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B
          const w = floatOperand(ins[3], ins[4], ins[5], nm, 0);
          const inputs = [ins[0], w];
          if (ins[8]) {
            const B = need(ins[8], 'bias', nm);
            const xs = need(ins[1], 'input scale', nm).data[0];
            const ws = need(ins[4], 'weight scale', nm).data;
            const bf = new Float32Array(B.data.length);
            for (let i = 0; i < bf.length; i++) bf[i] = B.data[i] * xs * (ws.length > 1 ? ws[i] : ws[0]);
            const bn = fresh(`${ins[8]}_f`);
            newInits.push(f32Init(bn, [bf.length], bf));
            inputs.push(bn);
          }
          emitted.push({ opType: 'Conv', input: inputs, output: [inner], name: nm, domain: '', attribute: attrs() });
          emitted.push(clipRange(inner, ins[6], ins[7], y, nm));
          break;
        }
        case 'QLinearMatMul': {
          const a = floatOperand(ins[0], ins[1], ins[2], nm);
          const b = floatOperand(ins[3], ins[4], ins[5], nm);
          emitted.push({ opType: 'MatMul', input: [a, b], output: [inner], name: nm, domain: '' });
          emitted.push(clipRange(inner, ins[6], ins[7], y, nm));
          break;
        }
        case 'QLinearAdd':
        case 'QLinearMul': {
          const a = floatOperand(ins[0], ins[1], ins[2], nm);
          const b = floatOperand(ins[3], ins[4], ins[5], nm);
          emitted.push({ opType: op === 'QLinearAdd' ? 'Add' : 'Mul', input: [a, b], output: [inner], name: nm, domain: '' });
          emitted.push(clipRange(inner, ins[6], ins[7], y, nm));
          break;
        }
        case 'QLinearGlobalAveragePool':
        case 'QLinearAveragePool':
        case 'QLinearLeakyRelu':
        case 'QLinearSigmoid':
        case 'QLinearSoftmax': {
          // X, x_scale, x_zp, y_scale, y_zp
          const last = (n.attribute ?? []).find((a) => a.name === 'channels_last');
          const channelsLast = last ? toNum(last.i) === 1 : false;
          if (op === 'QLinearGlobalAveragePool' && channelsLast) {
            // [N, spatial..., C]: mean over the spatial axes
            emitted.push({ opType: 'ReduceMean', input: [ins[0]], output: [inner], name: nm, domain: '', attribute: [A.ints('axes', [1, 2]), A.i('keepdims', 1)] });
          } else {
            if (channelsLast) throw new Error(`${file}: ${nm}: ${op} with channels_last=1 is not supported`);
            const fop = { QLinearGlobalAveragePool: 'GlobalAveragePool', QLinearAveragePool: 'AveragePool', QLinearLeakyRelu: 'LeakyRelu', QLinearSigmoid: 'Sigmoid', QLinearSoftmax: 'Softmax' }[op]!;
            const keep = op === 'QLinearSoftmax' ? attrs(['opset']) : attrs(['channels_last']);
            emitted.push({ opType: fop, input: [ins[0]], output: [inner], name: nm, domain: '', attribute: keep });
          }
          emitted.push(clipRange(inner, ins[3], ins[4], y, nm));
          break;
        }
        case 'QLinearConcat': {
          // Y_scale, Y_zp, then (X, X_scale, X_zp) triplets
          const xs: string[] = [];
          for (let i = 2; i + 2 < ins.length; i += 3) xs.push(floatOperand(ins[i], ins[i + 1], ins[i + 2], nm));
          emitted.push({ opType: 'Concat', input: xs, output: [inner], name: nm, domain: '', attribute: attrs() });
          emitted.push(clipRange(inner, ins[0], ins[1], y, nm));
          break;
        }
        case 'QGemm': {
          // A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp
          const a = floatOperand(ins[0], ins[1], ins[2], nm);
          const b = floatOperand(ins[3], ins[4], ins[5], nm);
          const inputs = [a, b];
          if (ins[6]) {
            const C = need(ins[6], 'bias', nm);
            const as = need(ins[1], 'input scale', nm).data[0];
            const bs = need(ins[4], 'weight scale', nm).data;
            const cf32 = new Float32Array(C.data.length);
            for (let i = 0; i < cf32.length; i++) cf32[i] = C.data[i] * as * (bs.length > 1 ? bs[i] : bs[0]);
            const cn = fresh(`${ins[6]}_f`);
            newInits.push(f32Init(cn, C.dims, cf32));
            inputs.push(cn);
          }
          const hasY = !!ins[7];
          emitted.push({ opType: 'Gemm', input: inputs, output: [hasY ? inner : y], name: nm, domain: '', attribute: attrs() });
          if (hasY) emitted.push(clipRange(inner, ins[7], ins[8], y, nm));
          break;
        }
        default:
          out.push(n);
          return;
      }
    } catch (e) {
      unsupported.push({ op: `${op} (${(e as Error).message.split(': ').slice(-1)[0]})`, node: nm });
      out.push(n);
      return;
    }
    converted[op] = (converted[op] ?? 0) + 1;
    for (const e of emitted) {
      for (const o of e.output ?? []) origin.set(o, { id, op });
      out.push(e);
    }
  });
  g.node = out;
  g.initializer = [...(g.initializer ?? []), ...newInits];
  return { origin, converted, unsupported, clips };
}
