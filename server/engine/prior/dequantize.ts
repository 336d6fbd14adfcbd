/**
 * A float copy of a quantized ONNX graph (QOperator format as onnxruntime's quantizer writes it,
 * and QDQ format), so that its weights can be re-initialised: every quantized tensor becomes a
 * float tensor of the same name, every QLinear op its float op, stored integer weights their
 * dequantized values ((q − zero_point)·scale, per tensor or per output channel), int32 biases
 * bias·x_scale·w_scale.
 *
 * Quantization also clips: an op whose output is quantized saturates at the ends of the integer
 * range, and that is how a fused ReLU or ReLU6 lives on in an int8 graph (zero point at the range's
 * low end). `saturate` says what the float copy keeps of that:
 *   'range'  Clip((q_min − zp)·s, (q_max − zp)·s): the trained model's own clipping (for a float
 *            copy that should compute what the int8 model computes, up to rounding);
 *   'relu'   Relu where the low end is 0 (zp = q_min), nothing otherwise: the architecture's
 *            nonlinearities without the trained model's calibrated ranges (for re-initialised
 *            weights, whose activations have other scales).
 *
 * Supported: QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, QLinearAdd, QLinearMul,
 * QLinearGlobalAveragePool and QLinearAveragePool (channels first), QLinearConcat,
 * QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax, QGemm. Anything else that works on quantized
 * values (ConvInteger, MatMulInteger, DynamicQuantizeLinear, ...) makes dequantize() throw an
 * error naming the op: the caller reports why the re-initialised copy could not be made.
 */
import { onnx, tensorValues, toNum } from '../model/onnx';

export type Saturation = 'range' | 'relu';

export class DequantizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DequantizeError';
  }
}

const Q_RANGE: Record<number, [number, number]> = { 2: [0, 255], 3: [-128, 127], 4: [0, 65535], 5: [-32768, 32767], 6: [-(2 ** 31), 2 ** 31 - 1] };

/** Values of a stored integer/float tensor as numbers (int8/uint8 from raw bytes too). */
export function storedValues(t: onnx.ITensorProto): number[] {
  const dt = t.dataType ?? 0;
  const raw = t.rawData;
  if ((dt === 2 || dt === 3) && raw && raw.length) {
    return dt === 2 ? Array.from(raw) : Array.from(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength));
  }
  if ((dt === 2 || dt === 3 || dt === 4 || dt === 5) && t.int32Data?.length) return t.int32Data.slice();
  return tensorValues(t);
}

export function dequantize(m: onnx.IModelProto, saturate: Saturation): { ops: Record<string, number> } {
  const g = m.graph!;
  let opset = 0;
  for (const o of m.opsetImport ?? []) if (!o.domain || o.domain === 'ai.onnx') opset = toNum(o.version);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const constants = new Map<string, onnx.ITensorProto>();
  for (const n of g.node ?? []) {
    if (n.opType === 'Constant') {
      const t = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      if (t && n.output?.[0]) constants.set(n.output[0], t);
    }
  }
  const stored = (name: string | undefined) => (name ? inits.get(name) ?? constants.get(name) : undefined);
  const scalar = (name: string | undefined, what: string): number[] => {
    const t = stored(name);
    if (!t) throw new DequantizeError(`${what} '${name}' is computed at run time, not stored`);
    return storedValues(t);
  };
  const zpType = (name: string | undefined, fallback = 2) => stored(name)?.dataType ?? fallback;

  const newInits: onnx.ITensorProto[] = [];
  const floatCopies = new Map<string, string>();
  let k = 0;
  /** A float initializer holding the dequantized values of stored tensor `q`. */
  const dequantStored = (q: string, s: string | undefined, zp: string | undefined, axis = 0): string => {
    const key = `${q}|${s}|${zp}|${axis}`;
    const have = floatCopies.get(key);
    if (have) return have;
    const t = stored(q)!;
    const dims = (t.dims ?? []).map(toNum);
    const v = storedValues(t);
    const sc = scalar(s, 'scale');
    const z = zp ? scalar(zp, 'zero point') : [0];
    const ax = axis < 0 ? dims.length + axis : axis;
    const inner = dims.slice(ax + 1).reduce((a, b) => a * b, 1);
    const len = dims[ax] ?? 1;
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = sc.length > 1 ? Math.floor(i / inner) % len : 0;
      out[i] = (v[i] - (z.length > 1 ? z[c] : z[0] ?? 0)) * sc[sc.length > 1 ? c : 0];
    }
    const name = `${q}__skeptic_float_${k++}`;
    newInits.push({ name, dataType: 1, dims, rawData: new Uint8Array(out.buffer) });
    floatCopies.set(key, name);
    return name;
  };
  /** The float operand for a quantized input: a dequantized copy when stored, else the tensor. */
  const operand = (x: string, s: string | undefined, zp: string | undefined, axis = 0) => (stored(x) ? dequantStored(x, s, zp, axis) : x);

  const out: onnx.INodeProto[] = [];
  const ops: Record<string, number> = {};
  const attrs = (n: onnx.INodeProto, drop: string[] = []) => (n.attribute ?? []).filter((a) => !drop.includes(a.name ?? ''));
  const floatConst = (v: number) => {
    const name = `skeptic_dq_const_${k++}`;
    newInits.push({ name, dataType: 1, dims: [], rawData: new Uint8Array(Float32Array.of(v).buffer) });
    return name;
  };
  /** Emits `op` computing `result` in float, then the saturation of the quantized output. */
  const emit = (n: onnx.INodeProto, op: string, inputs: string[], result: string, yScale?: string, yZp?: string, attribute = attrs(n)) => {
    ops[n.opType ?? '?'] = (ops[n.opType ?? '?'] ?? 0) + 1;
    if (yScale === undefined) {
      out.push({ opType: op, input: inputs, output: [result], name: n.name ?? result, domain: '', attribute });
      return;
    }
    const mid = `${result}__skeptic_pre_${k++}`;
    out.push({ opType: op, input: inputs, output: [mid], name: n.name ?? mid, domain: '', attribute });
    saturation(mid, result, yScale, yZp, n.name ?? result);
  };
  const saturation = (input: string, result: string, yScale: string, yZp: string | undefined, name: string) => {
    const s = scalar(yScale, 'scale')[0];
    const z = yZp ? scalar(yZp, 'zero point')[0] ?? 0 : 0;
    const [qmin, qmax] = Q_RANGE[zpType(yZp)] ?? [0, 255];
    const lo = (qmin - z) * s;
    const hi = (qmax - z) * s;
    if (saturate === 'range') {
      out.push(
        opset >= 11
          ? { opType: 'Clip', input: [input, floatConst(lo), floatConst(hi)], output: [result], name: `${name}__skeptic_clip`, domain: '' }
          : {
              opType: 'Clip', input: [input], output: [result], name: `${name}__skeptic_clip`, domain: '',
              attribute: [
                { name: 'min', type: onnx.AttributeProto.AttributeType.FLOAT, f: lo },
                { name: 'max', type: onnx.AttributeProto.AttributeType.FLOAT, f: hi },
              ],
            },
      );
    } else if (Math.abs(lo) <= 1e-12) {
      out.push({ opType: 'Relu', input: [input], output: [result], name: `${name}__skeptic_relu`, domain: '' });
    } else {
      out.push({ opType: 'Identity', input: [input], output: [result], name: `${name}__skeptic_id`, domain: '' });
    }
  };

  for (const n of g.node ?? []) {
    const i = n.input ?? [];
    const o = n.output?.[0] ?? '';
    const op = n.opType ?? '';
    const attrI = (a: string, d = 0) => {
      const x = (n.attribute ?? []).find((y) => y.name === a);
      return x ? toNum(x.i) : d;
    };
    switch (op) {
      case 'QuantizeLinear':
        ops[op] = (ops[op] ?? 0) + 1;
        if (stored(i[0])) out.push({ opType: 'Identity', input: [i[0]], output: [o], name: n.name ?? o, domain: '' });
        else saturation(i[0], o, i[1], i[2], n.name ?? o);
        break;
      case 'DequantizeLinear':
        ops[op] = (ops[op] ?? 0) + 1;
        out.push({ opType: 'Identity', input: [operand(i[0], i[1], i[2], attrI('axis', 1))], output: [o], name: n.name ?? o, domain: '' });
        break;
      case 'QLinearConv': {
        const w = operand(i[3], i[4], i[5], 0);
        const inputs = [operand(i[0], i[1], i[2]), w];
        if (i[8]) {
          const b = storedValues(stored(i[8]) ?? (() => { throw new DequantizeError(`bias '${i[8]}' is not stored`); })());
          const xs = scalar(i[1], 'scale')[0];
          const ws = scalar(i[4], 'scale');
          const bf = Float32Array.from(b, (v, c) => v * xs * (ws.length > 1 ? ws[c] : ws[0]));
          const name = `${i[8]}__skeptic_float_${k++}`;
          newInits.push({ name, dataType: 1, dims: [bf.length], rawData: new Uint8Array(bf.buffer) });
          inputs.push(name);
        }
        emit(n, 'Conv', inputs, o, i[6], i[7]);
        break;
      }
      case 'QLinearMatMul':
        emit(n, 'MatMul', [operand(i[0], i[1], i[2]), operand(i[3], i[4], i[5], -1)], o, i[6], i[7]);
        break;
      case 'QGemm': {
        // QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?): B per output channel.
        const transB = attrI('transB');
        const inputs = [operand(i[0], i[1], i[2]), operand(i[3], i[4], i[5], transB ? 0 : -1)];
        if (i[6]) {
          const b = storedValues(stored(i[6])!);
          const as = scalar(i[1], 'scale')[0];
          const bs = scalar(i[4], 'scale');
          const bf = Float32Array.from(b, (v, c) => v * as * (bs.length > 1 ? bs[c] : bs[0]));
          const name = `${i[6]}__skeptic_float_${k++}`;
          newInits.push({ name, dataType: 1, dims: [bf.length], rawData: new Uint8Array(bf.buffer) });
          inputs.push(name);
        }
        emit(n, 'Gemm', inputs, o, i[7] || undefined, i[8] || undefined, attrs(n, ['domain']));
        break;
      }
      case 'QLinearAdd':
      case 'QLinearMul':
        emit(n, op === 'QLinearAdd' ? 'Add' : 'Mul', [operand(i[0], i[1], i[2]), operand(i[3], i[4], i[5])], o, i[6], i[7], []);
        break;
      case 'QLinearGlobalAveragePool':
      case 'QLinearAveragePool':
        if (attrI('channels_last')) throw new DequantizeError(`${op} '${n.name}' with channels_last=1 is not supported`);
        emit(n, op === 'QLinearGlobalAveragePool' ? 'GlobalAveragePool' : 'AveragePool', [operand(i[0], i[1], i[2])], o, i[3], i[4], attrs(n, ['channels_last']));
        break;
      case 'QLinearConcat': {
        const xs: string[] = [];
        for (let j = 2; j + 2 < i.length; j += 3) xs.push(operand(i[j], i[j + 1], i[j + 2]));
        emit(n, 'Concat', xs, o, i[0], i[1]);
        break;
      }
      case 'QLinearSigmoid':
        emit(n, 'Sigmoid', [operand(i[0], i[1], i[2])], o, i[3], i[4], []);
        break;
      case 'QLinearLeakyRelu':
        emit(n, 'LeakyRelu', [operand(i[0], i[1], i[2])], o, i[3], i[4]);
        break;
      case 'QLinearSoftmax':
        emit(n, 'Softmax', [operand(i[0], i[1], i[2])], o, i[3], i[4], attrs(n, ['opset']));
        break;
      default:
        if (op.startsWith('QLinear') || ['ConvInteger', 'MatMulInteger', 'DynamicQuantizeLinear', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'QAttention'].includes(op)) {
          throw new DequantizeError(`the quantized op ${op} ('${n.name ?? o}') has no float counterpart here`);
        }
        out.push(n);
    }
  }
  g.node = out;
  g.initializer = [...(g.initializer ?? []), ...newInits];
  // Quantized value types no longer hold; ONNX Runtime infers the float ones.
  g.valueInfo = [];
  for (const v of [...(g.output ?? [])]) {
    const tt = v.type?.tensorType;
    if (tt && tt.elemType !== 1 && tt.elemType !== 10 && tt.elemType !== 11) tt.elemType = 1;
  }
  // Drop initializers nothing reads any more (the integer weights, scales, zero points).
  const used = new Set<string>();
  for (const n of g.node) for (const x of n.input ?? []) used.add(x);
  for (const v of g.output ?? []) used.add(v.name ?? '');
  g.initializer = g.initializer.filter((t) => used.has(t.name ?? ''));
  if (toNum(m.irVersion) < 4) {
    const names = new Set(g.initializer.map((t) => t.name ?? ''));
    g.input = (g.input ?? []).filter((x) => !inits.has(x.name ?? '') || names.has(x.name ?? ''));
  }
  return { ops };
}
