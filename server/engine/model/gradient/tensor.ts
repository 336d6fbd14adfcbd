/**
 * Tensors in JavaScript for the gradient builder: reading initializers and Constant values into
 * typed arrays, writing new initializers (raw_data, so large kernels encode fast), and a small
 * constant folder for the values a rule needs to know (Conv weights to flip, Pad/Slice amounts,
 * Gather indices, quantization scales), including weights computed by ConstantOfShape,
 * Reshape, Transpose, Cast or DequantizeLinear of constants.
 */
import { onnx, toNum } from '../onnx';
import { fromHalf } from '../output';

/** A constant: float types as Float32Array, integer and bool types as Float64Array. */
export interface JsTensor {
  dims: number[];
  /** ONNX TensorProto.DataType code of the source. */
  dtype: number;
  data: Float32Array | Float64Array;
}

export const FLOAT = 1;
export const INT64 = 7;
export const INT32 = 6;
const FLOAT_TYPES = new Set([1, 10, 11, 16]);
export const isFloatType = (dt: number) => FLOAT_TYPES.has(dt);

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** Reads any numeric TensorProto (float, float16, bfloat16, double, ints, bool). */
export function readTensor(t: onnx.ITensorProto): JsTensor {
  const dims = (t.dims ?? []).map(toNum);
  const dt = t.dataType ?? 0;
  const n = size(dims);
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  const float = isFloatType(dt);
  const out = float ? new Float32Array(n) : new Float64Array(n);
  if (raw) {
    const buf = new ArrayBuffer(raw.byteLength);
    new Uint8Array(buf).set(raw);
    const dv = new DataView(buf);
    switch (dt) {
      case 1: out.set(new Float32Array(buf, 0, n)); break;
      case 11: for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true); break;
      case 10: fromHalf(new Uint16Array(buf, 0, n), out as Float32Array, n); break;
      case 16: {
        const u = new Uint32Array(n);
        for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
        out.set(new Float32Array(u.buffer));
        break;
      }
      case 2: case 9: for (let i = 0; i < n; i++) out[i] = dv.getUint8(i); break;
      case 3: for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); break;
      case 4: for (let i = 0; i < n; i++) out[i] = dv.getUint16(i * 2, true); break;
      case 5: for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true); break;
      case 6: for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true); break;
      case 12: for (let i = 0; i < n; i++) out[i] = dv.getUint32(i * 4, true); break;
      case 7: for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true)); break;
      case 13: for (let i = 0; i < n; i++) out[i] = Number(dv.getBigUint64(i * 8, true)); break;
      default: throw new Error(`tensor '${t.name}': data type ${dt} is not supported`);
    }
    return { dims, dtype: dt, data: out };
  }
  let src: ArrayLike<unknown> = [];
  if (t.floatData?.length) src = t.floatData;
  else if (t.doubleData?.length) src = t.doubleData;
  else if (t.int64Data?.length) src = t.int64Data;
  else if (t.uint64Data?.length) src = t.uint64Data;
  else if (t.int32Data?.length) src = t.int32Data;
  if (dt === 10 && t.int32Data?.length) {
    fromHalf(Uint16Array.from(t.int32Data), out as Float32Array, n);
  } else if (dt === 16 && t.int32Data?.length) {
    const u = new Uint32Array(n);
    for (let i = 0; i < n; i++) u[i] = (t.int32Data[i] & 0xffff) << 16;
    out.set(new Float32Array(u.buffer));
  } else {
    if (src.length === 0 && n > 0) throw new Error(`tensor '${t.name}' holds no data (external data not loaded?)`);
    for (let i = 0; i < Math.min(n, src.length); i++) out[i] = toNum(src[i]);
  }
  return { dims, dtype: dt, data: out };
}

/** A float32 initializer stored as raw_data. */
export function f32Init(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  return { name, dataType: FLOAT, dims, rawData: new Uint8Array(f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength)) };
}

/** An int64 initializer (a long one as raw_data: protobuf's varints encode slowly). */
export function i64Init(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  if (data.length <= 64) return { name, dataType: INT64, dims, int64Data: Array.from(data, (v) => Math.trunc(v)) };
  // values that fit 32 bits (index maps: all of them) as two 32-bit words each, low first
  // (little-endian, as raw_data is and as BigInt64Array writes on the hosts Node runs on): a
  // BigInt per value cost ~20 ms for a 224² index map
  const words = new Int32Array(2 * data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Math.trunc(data[i]);
    if (!(v >= -0x80000000 && v <= 0x7fffffff)) {
      const raw = new BigInt64Array(data.length);
      for (let j = 0; j < data.length; j++) raw[j] = BigInt(Math.trunc(data[j]));
      return { name, dataType: INT64, dims, rawData: new Uint8Array(raw.buffer) };
    }
    words[2 * i] = v;
    words[2 * i + 1] = v < 0 ? -1 : 0;
  }
  return { name, dataType: INT64, dims, rawData: new Uint8Array(words.buffer) };
}

/** An int32 initializer (raw_data, little-endian as Int32Array writes on the hosts Node runs on). */
export function i32Init(name: string, dims: number[], data: ArrayLike<number>): onnx.ITensorProto {
  const words = data instanceof Int32Array ? data : Int32Array.from(data, (v) => Math.trunc(v));
  return { name, dataType: INT32, dims, rawData: new Uint8Array(words.buffer, words.byteOffset, words.byteLength) };
}

/** Attribute lookup helpers. */
export function attrOf(n: onnx.INodeProto, name: string): onnx.IAttributeProto | undefined {
  return (n.attribute ?? []).find((a) => a.name === name);
}
export function attrInt(n: onnx.INodeProto, name: string, dflt: number): number {
  const a = attrOf(n, name);
  return a ? toNum(a.i) : dflt;
}
export function attrFloat(n: onnx.INodeProto, name: string, dflt: number): number {
  const a = attrOf(n, name);
  return a && a.f !== null && a.f !== undefined ? a.f : dflt;
}
export function attrInts(n: onnx.INodeProto, name: string): number[] | undefined {
  const a = attrOf(n, name);
  return a ? (a.ints ?? []).map(toNum) : undefined;
}
export function attrString(n: onnx.INodeProto, name: string, dflt: string): string {
  const a = attrOf(n, name);
  return a?.s && a.s.length ? new TextDecoder().decode(a.s) : dflt;
}

/** Transposes a JS tensor. */
function transposeT(t: JsTensor, perm: number[]): JsTensor {
  const r = t.dims.length;
  const dims = perm.map((p) => t.dims[p]);
  const inStrides = new Array(r).fill(1);
  for (let i = r - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1] * t.dims[i + 1];
  const out = new (t.data.constructor as Float32ArrayConstructor)(t.data.length);
  const idx = new Array(r).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let i = 0; i < r; i++) src += idx[i] * inStrides[perm[i]];
    out[o] = t.data[src];
    for (let i = r - 1; i >= 0; i--) {
      if (++idx[i] < dims[i]) break;
      idx[i] = 0;
    }
  }
  return { dims, dtype: t.dtype, data: out };
}

/**
 * Folds constants of a graph on demand. Only values that do not depend on a graph input are ever
 * asked for (weights, shapes, indices); `get` returns undefined when a value cannot be folded here.
 */
export class ConstFolder {
  private readonly inits = new Map<string, onnx.ITensorProto>();
  private readonly producers = new Map<string, onnx.INodeProto>();
  private readonly memo = new Map<string, JsTensor | null>();

  constructor(g: onnx.IGraphProto) {
    for (const t of g.initializer ?? []) this.inits.set(t.name ?? '', t);
    // An initializer that is also a graph input (IR < 4) is still a weight for our purposes.
    for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) this.producers.set(o, n);
  }

  /** Whether a value is an initializer (stored constant). */
  isInitializer(name: string): boolean {
    return this.inits.has(name);
  }

  get(name: string): JsTensor | undefined {
    if (!name) return undefined;
    if (this.memo.has(name)) return this.memo.get(name) ?? undefined;
    this.memo.set(name, null); // cycle guard
    let v: JsTensor | undefined;
    try {
      v = this.compute(name);
    } catch {
      v = undefined;
    }
    this.memo.set(name, v ?? null);
    return v;
  }

  private compute(name: string): JsTensor | undefined {
    const init = this.inits.get(name);
    if (init) return readTensor(init);
    const n = this.producers.get(name);
    if (!n) return undefined;
    const ins = n.input ?? [];
    switch (n.opType) {
      case 'Constant': {
        const a = n.attribute?.[0];
        if (!a) return undefined;
        if (a.name === 'value' && a.t) return readTensor(a.t);
        if (a.name === 'value_float') return { dims: [], dtype: 1, data: Float32Array.of(a.f ?? 0) };
        if (a.name === 'value_floats') return { dims: [a.floats?.length ?? 0], dtype: 1, data: Float32Array.from(a.floats ?? []) };
        if (a.name === 'value_int') return { dims: [], dtype: 7, data: Float64Array.of(toNum(a.i)) };
        if (a.name === 'value_ints') return { dims: [a.ints?.length ?? 0], dtype: 7, data: Float64Array.from((a.ints ?? []).map(toNum)) };
        return undefined;
      }
      case 'ConstantOfShape': {
        const shape = this.get(ins[0]);
        if (!shape) return undefined;
        const dims = Array.from(shape.data);
        const a = attrOf(n, 'value');
        const vt = a?.t ? readTensor(a.t) : { dims: [1], dtype: 1, data: Float32Array.of(0) };
        const total = size(dims);
        const data = isFloatType(vt.dtype) ? new Float32Array(total) : new Float64Array(total);
        data.fill(vt.data[0] ?? 0);
        return { dims, dtype: vt.dtype, data };
      }
      case 'Identity':
        return this.get(ins[0]);
      case 'Cast': {
        const x = this.get(ins[0]);
        if (!x) return undefined;
        const to = attrInt(n, 'to', 1);
        const data = isFloatType(to) ? Float32Array.from(x.data) : Float64Array.from(x.data, (v) => (to === 9 ? (v ? 1 : 0) : Math.trunc(v)));
        return { dims: x.dims, dtype: to, data };
      }
      case 'Reshape': {
        const x = this.get(ins[0]);
        const s = ins[1] ? this.get(ins[1]) : undefined;
        const shapeAttr = attrInts(n, 'shape');
        if (!x || (!s && !shapeAttr)) return undefined;
        const want = s ? Array.from(s.data) : shapeAttr!;
        const dims = want.map((d, i) => (d === 0 ? x.dims[i] : d));
        const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        return { dims: dims.map((d) => (d === -1 ? x.data.length / known : d)), dtype: x.dtype, data: x.data };
      }
      case 'Unsqueeze':
      case 'Squeeze': {
        const x = this.get(ins[0]);
        if (!x) return undefined;
        const axesT = ins[1] ? this.get(ins[1]) : undefined;
        let axes = axesT ? Array.from(axesT.data) : attrInts(n, 'axes');
        if (n.opType === 'Unsqueeze') {
          if (!axes) return undefined;
          const r = x.dims.length + axes.length;
          axes = axes.map((a) => (a < 0 ? a + r : a));
          const dims: number[] = [];
          let j = 0;
          for (let i = 0; i < r; i++) dims.push(axes.includes(i) ? 1 : x.dims[j++]);
          return { dims, dtype: x.dtype, data: x.data };
        }
        const r = x.dims.length;
        const sq = axes ? axes.map((a) => (a < 0 ? a + r : a)) : x.dims.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
        return { dims: x.dims.filter((_, i) => !sq.includes(i)), dtype: x.dtype, data: x.data };
      }
      case 'Transpose': {
        const x = this.get(ins[0]);
        if (!x) return undefined;
        const perm = attrInts(n, 'perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i);
        return transposeT(x, perm);
      }
      case 'DequantizeLinear': {
        const x = this.get(ins[0]);
        const s = this.get(ins[1]);
        const z = ins[2] ? this.get(ins[2]) : undefined;
        if (!x || !s) return undefined;
        return dequantize(x, s, z, attrInt(n, 'axis', 1));
      }
      case 'QuantizeLinear': {
        const x = this.get(ins[0]);
        const s = this.get(ins[1]);
        const z = ins[2] ? this.get(ins[2]) : undefined;
        if (!x || !s) return undefined;
        return quantize(x, s, z, attrInt(n, 'axis', 1));
      }
      default:
        return undefined;
    }
  }
}

/** The integer range of a quantized type (uint8 when the zero point is absent). */
export function quantRange(zpType: number | undefined): [number, number] {
  switch (zpType) {
    case 3: return [-128, 127];
    case 4: return [0, 65535];
    case 5: return [-32768, 32767];
    default: return [0, 255];
  }
}

/** saturate(round_half_even(x / scale) + zp), per tensor or per `axis`. */
export function quantize(x: JsTensor, s: JsTensor, z: JsTensor | undefined, axis: number): JsTensor {
  const [lo, hi] = quantRange(z?.dtype);
  const out = new Float64Array(x.data.length);
  const r = x.dims.length;
  const ax = axis < 0 ? axis + r : axis;
  const inner = s.data.length <= 1 ? 1 : x.dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  const C = s.data.length <= 1 ? 1 : x.dims[ax];
  for (let i = 0; i < out.length; i++) {
    const c = C === 1 ? 0 : Math.floor(i / inner) % C;
    const v = x.data[i] / s.data[c];
    let q = Math.round(v);
    if (Math.abs(v - Math.trunc(v)) === 0.5) q = 2 * Math.round(v / 2); // half to even
    out[i] = Math.min(hi, Math.max(lo, q + (z ? z.data[c] : 0)));
  }
  return { dims: x.dims, dtype: z?.dtype ?? 2, data: out };
}

/** (x − zp)·scale, per tensor or per `axis`. */
export function dequantize(x: JsTensor, s: JsTensor, z: JsTensor | undefined, axis: number): JsTensor {
  const out = new Float32Array(x.data.length);
  if (s.data.length <= 1) {
    const sc = s.data[0];
    const zp = z ? z.data[0] : 0;
    for (let i = 0; i < out.length; i++) out[i] = (x.data[i] - zp) * sc;
  } else {
    const r = x.dims.length;
    const ax = axis < 0 ? axis + r : axis;
    const inner = x.dims.slice(ax + 1).reduce((a, b) => a * b, 1);
    const C = x.dims[ax];
    for (let i = 0; i < out.length; i++) {
      const c = Math.floor(i / inner) % C;
      out[i] = (x.data[i] - (z ? z.data[c] : 0)) * s.data[c];
    }
  }
  return { dims: x.dims, dtype: 1, data: out };
}
