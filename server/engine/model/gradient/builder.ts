/**
 * Emits ONNX nodes and initializers for the backward graph, with fresh names and the opset's
 * spelling of ops whose signature changed (ReduceSum/Squeeze/Unsqueeze axes as inputs from opset
 * 13, ReduceMax/ReduceMean from 18; Clip/Pad bounds as inputs from 11, Slice from 10).
 */
import { onnx } from '../onnx';
import { f32Init, i64Init } from './tensor';

const T = onnx.AttributeProto.AttributeType;

/** Attribute constructors. */
export const A = {
  i: (name: string, v: number): onnx.IAttributeProto => ({ name, type: T.INT, i: v }),
  ints: (name: string, v: number[]): onnx.IAttributeProto => ({ name, type: T.INTS, ints: v }),
  f: (name: string, v: number): onnx.IAttributeProto => ({ name, type: T.FLOAT, f: v }),
  s: (name: string, v: string): onnx.IAttributeProto => ({ name, type: T.STRING, s: new TextEncoder().encode(v) }),
  t: (name: string, v: onnx.ITensorProto): onnx.IAttributeProto => ({ name, type: T.TENSOR, t: v }),
};

export class Builder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly inits: onnx.ITensorProto[] = [];
  private count = 0;
  private readonly consts = new Map<string, string>();

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

  /** An int64 initializer (shared). */
  i64(values: number[], dims: number[] = [values.length]): string {
    const key = `i:${dims.join('x')}:${values.join(',')}`;
    if (this.consts.has(key)) return this.consts.get(key)!;
    const name = this.fresh('i');
    this.inits.push(i64Init(name, dims, values));
    this.consts.set(key, name);
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
