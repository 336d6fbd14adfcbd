/**
 * Builds small ONNX models at test time (no binary fixtures in the repo).
 *
 *   const bytes = buildModel({
 *     inputs: [{ name: 'x', shape: ['N', 1, 4, 4] }],
 *     outputs: [{ name: 'y', shape: ['N', 3] }],
 *     initializers: [tensor('W', [16, 3], weights)],
 *     nodes: [node('Flatten', ['x'], ['f'], { axis: 1 }), node('MatMul', ['f', 'W'], ['y'])],
 *   });
 *   const file = writeModel(bytes, 'tiny.onnx');        // a fresh dir under os.tmpdir()
 *
 * Attributes: an integer number → INT, other numbers → FLOAT, number[] → INTS (all integers) or
 * FLOATS, string → STRING, a TensorSpec → TENSOR. Force a type with attr.f/i/ints/floats/s/t.
 * Types default to float32; shapes are numbers or symbolic names; omit shape for "unknown".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { toHalf } from '../../../server/engine/model/output';

export type DType = 'float32' | 'float16' | 'float64' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool';
export type Dim = number | string;

export interface ValueSpec {
  name: string;
  type?: DType;
  /** Omitted: the value's shape is unknown. */
  shape?: Dim[];
}

export interface TensorSpec {
  kind: 'tensor';
  name: string;
  type: DType;
  dims: number[];
  data: ArrayLike<number>;
}

type Forced = { kind: 'attr'; type: 'f' | 'i' | 'ints' | 'floats' | 's' | 't'; value: unknown };
export type AttrValue = number | number[] | string | TensorSpec | Forced;

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
  name?: string;
  domain?: string;
}

export interface ModelSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers?: TensorSpec[];
  /** Intermediate value shapes (value_info). */
  valueInfo?: ValueSpec[];
  /** Default-domain opset (default 13). */
  opset?: number;
  /** Default 8. Below 4, initializers are also listed as graph inputs (as old exporters did). */
  irVersion?: number;
  producer?: string;
  metadata?: Record<string, string>;
  /** Build without a graph (for "not a model" tests). */
  noGraph?: boolean;
}

const TYPE_CODE: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11,
};

export const attr = {
  f: (value: number): Forced => ({ kind: 'attr', type: 'f', value }),
  i: (value: number): Forced => ({ kind: 'attr', type: 'i', value }),
  ints: (value: number[]): Forced => ({ kind: 'attr', type: 'ints', value }),
  floats: (value: number[]): Forced => ({ kind: 'attr', type: 'floats', value }),
  s: (value: string): Forced => ({ kind: 'attr', type: 's', value }),
  t: (value: TensorSpec): Forced => ({ kind: 'attr', type: 't', value }),
};

export function node(op: string, inputs: string[], outputs: string[], attrs?: Record<string, AttrValue>, name?: string): NodeSpec {
  return { op, inputs, outputs, attrs, name };
}

export function tensor(name: string, dims: number[], data: ArrayLike<number>, type: DType = 'float32'): TensorSpec {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`tensor ${name}: ${data.length} values for dims [${dims}]`);
  return { kind: 'tensor', name, type, dims, data };
}

/** Deterministic pseudo-random values in [lo, hi) (for weights). */
export function seeded(n: number, seed = 1, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo));
  }
  return out;
}

function encodeTensor(t: TensorSpec): onnx.ITensorProto {
  const n = t.data.length;
  let raw: Uint8Array;
  switch (t.type) {
    case 'float32': raw = new Uint8Array(Float32Array.from(t.data).buffer); break;
    case 'float64': raw = new Uint8Array(Float64Array.from(t.data).buffer); break;
    case 'float16': {
      const h = new Uint16Array(n);
      toHalf(Float32Array.from(t.data), h, n);
      raw = new Uint8Array(h.buffer);
      break;
    }
    case 'int64': raw = new Uint8Array(BigInt64Array.from(Array.from(t.data, (x) => BigInt(Math.trunc(x)))).buffer); break;
    case 'int32': raw = new Uint8Array(Int32Array.from(t.data).buffer); break;
    case 'int8': raw = new Uint8Array(Int8Array.from(t.data).buffer); break;
    case 'uint8':
    case 'bool': raw = Uint8Array.from(t.data); break;
  }
  return { name: t.name, dataType: TYPE_CODE[t.type], dims: t.dims, rawData: raw };
}

function valueInfo(v: ValueSpec): onnx.IValueInfoProto {
  const tensorType: onnx.TypeProto.ITensor = { elemType: TYPE_CODE[v.type ?? 'float32'] };
  if (v.shape) {
    tensorType.shape = { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  }
  return { name: v.name, type: { tensorType } };
}

function encodeAttr(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'object' && !Array.isArray(v) && v.kind === 'attr') {
    switch (v.type) {
      case 'f': return { name, type: T.FLOAT, f: v.value as number };
      case 'i': return { name, type: T.INT, i: v.value as number };
      case 'ints': return { name, type: T.INTS, ints: v.value as number[] };
      case 'floats': return { name, type: T.FLOATS, floats: v.value as number[] };
      case 's': return { name, type: T.STRING, s: new TextEncoder().encode(v.value as string) };
      case 't': return { name, type: T.TENSOR, t: encodeTensor(v.value as TensorSpec) };
    }
  }
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return v.every(Number.isInteger) ? { name, type: T.INTS, ints: v } : { name, type: T.FLOATS, floats: v };
  return { name, type: T.TENSOR, t: encodeTensor(v as TensorSpec) };
}

/** Encodes a model; returns its bytes. */
export function buildModel(spec: ModelSpec): Uint8Array {
  const irVersion = spec.irVersion ?? 8;
  const inits = spec.initializers ?? [];
  const graph: onnx.IGraphProto = {
    name: 'skeptic_test',
    node: spec.nodes.map((n, i) => ({
      opType: n.op,
      input: n.inputs,
      output: n.outputs,
      name: n.name ?? `${n.op}_${i}`,
      domain: n.domain ?? '',
      attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => encodeAttr(k, v)),
    })),
    initializer: inits.map(encodeTensor),
    input: [
      ...spec.inputs.map(valueInfo),
      ...(irVersion < 4 ? inits.map((t) => valueInfo({ name: t.name, type: t.type, shape: t.dims })) : []),
    ],
    output: spec.outputs.map(valueInfo),
    valueInfo: (spec.valueInfo ?? []).map(valueInfo),
  };
  return onnx.ModelProto.encode({
    irVersion,
    producerName: spec.producer ?? 'skeptic-test',
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }],
    graph: spec.noGraph ? undefined : graph,
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
  }).finish();
}

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under os.tmpdir(), removed when the test process exits. */
export function tmpDir(prefix = 'skeptic-onnx-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Writes a model (spec or bytes) to `dir` (default: a fresh temp dir) and returns its path. */
export function writeModel(model: ModelSpec | Uint8Array, fileName = 'model.onnx', dir = tmpDir()): string {
  const bytes = model instanceof Uint8Array ? model : buildModel(model);
  const file = join(dir, fileName);
  writeFileSync(file, bytes);
  return file;
}

/**
 * Conv → Relu → GlobalAveragePool → Flatten ('feat', the features) → Gemm ('y'), on N×1×8×8: a
 * model the view graphs compose with. `conv` names the Conv's output (a reserved skeptic_view_
 * name makes a model no composed graph can be built for).
 */
export function convNet(conv = 'c'): ModelSpec {
  return {
    inputs: [{ name: 'x', shape: ['N', 1, 8, 8] }],
    outputs: [{ name: 'y', shape: ['N', 3] }],
    initializers: [tensor('cw', [4, 1, 3, 3], seeded(36, 1)), tensor('cb', [4], seeded(4, 2)), tensor('W', [4, 3], seeded(12, 3)), tensor('b', [3], seeded(3, 4))],
    nodes: [
      node('Conv', ['x', 'cw', 'cb'], [conv], { pads: [1, 1, 1, 1] }),
      node('Relu', [conv], ['r']),
      node('GlobalAveragePool', ['r'], ['p']),
      node('Flatten', ['p'], ['feat'], { axis: 1 }),
      node('Gemm', ['feat', 'W', 'b'], ['y']),
    ],
    valueInfo: [{ name: conv, shape: ['N', 4, 8, 8] }],
  };
}

export interface TinyClassifierOptions {
  /** Input shape; default ['N', 1, 4, 4]. Anything Flatten(axis=1) turns into [N, D]. */
  inputShape?: Dim[];
  inputType?: DType;
  /** Classes (default 3). */
  classes?: number;
  /** What follows the Gemm: nothing (logits), Softmax or LogSoftmax. */
  head?: 'logits' | 'softmax' | 'logsoftmax';
  /** Output shape (default [N, K] with the input's batch dim). */
  outputShape?: Dim[];
  seed?: number;
  opset?: number;
  metadata?: Record<string, string>;
}

/**
 * A linear classifier: x → [Cast] → Flatten → Gemm(W, b) → [Softmax|LogSoftmax]. W is D×K and
 * b is K, seeded; both are returned so a test can compute the expected output.
 */
export function tinyClassifier(o: TinyClassifierOptions = {}): { spec: ModelSpec; W: Float32Array; b: Float32Array; D: number; K: number } {
  const inputShape = o.inputShape ?? ['N', 1, 4, 4];
  const D = inputShape.slice(1).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
  const K = o.classes ?? 3;
  const W = seeded(D * K, o.seed ?? 7);
  const b = seeded(K, (o.seed ?? 7) + 1);
  const nodes: NodeSpec[] = [];
  let x = 'x';
  if (o.inputType && o.inputType !== 'float32') {
    nodes.push(node('Cast', ['x'], ['xf'], { to: 1 }));
    x = 'xf';
  }
  nodes.push(node('Flatten', [x], ['flat'], { axis: 1 }));
  const head = o.head ?? 'logits';
  nodes.push(node('Gemm', ['flat', 'W', 'b'], [head === 'logits' ? 'y' : 'z']));
  if (head === 'softmax') nodes.push(node('Softmax', ['z'], ['y'], { axis: 1 }));
  if (head === 'logsoftmax') nodes.push(node('LogSoftmax', ['z'], ['y'], { axis: 1 }));
  const spec: ModelSpec = {
    inputs: [{ name: 'x', type: o.inputType ?? 'float32', shape: inputShape }],
    outputs: [{ name: 'y', shape: o.outputShape ?? [inputShape[0], K] }],
    initializers: [tensor('W', [D, K], W), tensor('b', [K], b)],
    nodes,
    opset: o.opset,
    metadata: o.metadata,
  };
  return { spec, W, b, D, K };
}

/** y = x·W + b for rows of x (n×D): the expected output of tinyClassifier's Gemm. */
export function linear(x: ArrayLike<number>, n: number, W: Float32Array, b: Float32Array, D: number, K: number): Float32Array {
  const y = new Float32Array(n * K);
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < K; k++) {
      let s = b[k];
      for (let d = 0; d < D; d++) s += x[r * D + d] * W[d * K + k];
      y[r * K + k] = s;
    }
  }
  return y;
}
