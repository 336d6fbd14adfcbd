/**
 * Emits ONNX nodes and initializers for the backward graph, with fresh names and the opset's
 * spelling of ops whose signature changed (ReduceSum/Squeeze/Unsqueeze axes as inputs from opset
 * 13, ReduceMax/ReduceMean from 18; Clip/Pad bounds as inputs from 11, Slice from 10).
 */
import { onnx } from '../onnx';
import { f32Init, i32Init, i64Init } from './tensor';

const T = onnx.AttributeProto.AttributeType;

/** Attribute constructors. */
export const A = {
  i: (name: string, v: number): onnx.IAttributeProto => ({ name, type: T.INT, i: v }),
  ints: (name: string, v: number[]): onnx.IAttributeProto => ({ name, type: T.INTS, ints: v }),
  f: (name: string, v: number): onnx.IAttributeProto => ({ name, type: T.FLOAT, f: v }),
  s: (name: string, v: string): onnx.IAttributeProto => ({ name, type: T.STRING, s: new TextEncoder().encode(v) }),
  t: (name: string, v: onnx.ITensorProto): onnx.IAttributeProto => ({ name, type: T.TENSOR, t: v }),
};

/** FNV-1a over the values (as 32-bit integers): a key for long index lists. */
function hashValues(values: ArrayLike<number>): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < values.length; i++) h = Math.imul(h ^ (values[i] | 0), 0x01000193);
  return `${values.length}:${(h >>> 0).toString(36)}`;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Builder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly inits: onnx.ITensorProto[] = [];
  private count = 0;
  private readonly consts = new Map<string, string>();
  /** The values of the long integer initializers in consts, to check a hash match against. */
  private readonly longInts = new Map<string, ArrayLike<number>>();

  constructor(readonly opset: number, private readonly prefix = 'skeptic_g_') {}

  fresh(hint = 'v'): string {
    return `${this.prefix}${hint.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 24)}_${this.count++}`;
  }

  /** Adds a node; returns its output names. */
  node(op: string, inputs: string[], attrs: onnx.IAttributeProto[] = [], outputs: number | string[] = 1, domain = ''): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(op)) : outputs;
    this.nodes.push({ opType: op, input: inputs, output: outs, name: outs[0], domain, attribute: attrs });
    return outs;
  }

  /** Adds a one-output node; returns its output. */
  op(op: string, inputs: string[], attrs: onnx.IAttributeProto[] = []): string {
    return this.node(op, inputs, attrs)[0];
  }

  /** A float32 initializer (small ones are shared; a large uniform one is a ConstantOfShape). */
  f32(values: ArrayLike<number>, dims: number[], hint = 'c'): string {
    const small = values.length <= 16;
    if (!small && values.length > 0) {
      const v0 = values[0];
      let uniform = true;
      for (let i = 1; i < values.length && uniform; i++) uniform = values[i] === v0;
      if (uniform) return this.op('ConstantOfShape', [this.i64(dims)], [A.t('value', f32Init(this.fresh('v'), [1], [v0]))]);
    }
    const key = small ? `f:${dims.join('x')}:${Array.from(values).join(',')}` : '';
    if (small && this.consts.has(key)) return this.consts.get(key)!;
    const name = this.fresh(hint);
    this.inits.push(f32Init(name, dims, values));
    if (small) this.consts.set(key, name);
    return name;
  }

  /** A float32 scalar (0-d). */
  scalar(v: number): string {
    return this.f32([v], []);
  }

  /** An int64 initializer (shared; a long one is keyed by a hash and checked value by value). */
  i64(values: ArrayLike<number>, dims: number[] = [values.length]): string {
    return this.ints('i', values, dims, i64Init);
  }

  /**
   * An int32 initializer (shared like i64's): index arithmetic on values that fit 32 bits, which
   * every provider's kernels take (WebGPU's take no int64 data: only indices, shapes and axes).
   */
  i32(values: ArrayLike<number>, dims: number[] = [values.length]): string {
    return this.ints('i32', values, dims, i32Init);
  }

  private ints(tag: string, values: ArrayLike<number>, dims: number[], init: (name: string, dims: number[], data: ArrayLike<number>) => onnx.ITensorProto): string {
    const long = values.length > 64;
    const key = long ? `${tag}:${dims.join('x')}:#${hashValues(values)}` : `${tag}:${dims.join('x')}:${Array.from(values).join(',')}`;
    const known = this.consts.get(key);
    if (known && (!long || sameValues(this.longInts.get(known)!, values))) return known;
    const name = this.fresh(tag);
    this.inits.push(init(name, dims, values));
    if (!known) {
      this.consts.set(key, name);
      if (long) this.longInts.set(name, values);
    }
    return name;
  }

  // ---- ops whose spelling depends on the opset

  reduce(op: 'ReduceSum' | 'ReduceMax' | 'ReduceMean', x: string, axes: number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    const axesAsInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    return axesAsInput
      ? this.op(op, [x, this.i64(axes)], [A.i('keepdims', keepdims ? 1 : 0)])
      : this.op(op, [x], [A.ints('axes', axes), A.i('keepdims', keepdims ? 1 : 0)]);
  }

  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.op('Unsqueeze', [x, this.i64(axes)]) : this.op('Unsqueeze', [x], [A.ints('axes', axes)]);
  }

  slice(x: string, starts: number[], ends: number[], axes: number[], steps?: number[]): string {
    const ins = [x, this.i64(starts), this.i64(ends), this.i64(axes)];
    if (steps && steps.some((s) => s !== 1)) ins.push(this.i64(steps));
    return this.op('Slice', ins);
  }

  /** Constant-mode Pad (pads: all begins, then all ends). */
  pad(x: string, pads: number[], value?: number): string {
    if (pads.every((p) => p === 0)) return x;
    const ins = [x, this.i64(pads)];
    if (value !== undefined && value !== 0) ins.push(this.scalar(value));
    return this.op('Pad', ins);
  }

  reshape(x: string, shape: number[]): string {
    return this.op('Reshape', [x, this.i64(shape)]);
  }

  transpose(x: string, perm: number[]): string {
    return this.op('Transpose', [x], [A.ints('perm', perm)]);
  }

  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }

  /** g where mask else 0. */
  mask(mask: string, g: string): string {
    return this.op('Where', [mask, g, this.scalar(0)]);
  }
}
