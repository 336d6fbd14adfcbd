/**
 * Shapes and types of every value in the forward graph, read from ONNX Runtime rather than
 * inferred: the graph is run with all its values as outputs, at a batch of 1 and of 2 (when the
 * batch is free), so that a dimension that changes between the two runs is the batch. This
 * covers every op ORT runs, including the ones we have no shape rule for.
 */
import '../../fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import { elemTypeName, encodeModel, onnx, toNum } from '../onnx';
import { pixelDims } from '../pixels';
import { mulberry32 } from '../../random';
import type { Forward } from './prepare';

export interface Meta {
  dtype: string;
  /** Dims at the first probe batch (1, or the fixed batch). */
  d1: number[];
  /** Dims at a batch of 2 (= d1 when the batch is not free). */
  d2: number[];
}

export interface Probe {
  meta: Map<string, Meta>;
  /** Values (first run) of the graph outputs and of the inputs of Softmax/LogSoftmax nodes. */
  values: Map<string, Float32Array>;
  /** Rows in the first run. */
  rows: number;
}

export async function probeForward(fw: Forward): Promise<Probe> {
  const m = onnx.ModelProto.decode(encodeModel(fw.m)); // a copy
  const g = m.graph!;
  const dtypes = inferTypes(g);
  // Fetching every value would copy every activation to JS (≈1 s on MobileNetV2): fetch a Shape
  // node per value instead, and the data only of the outputs and the Softmax/LogSoftmax inputs.
  const keep = new Set((g.output ?? []).map((o) => o.name ?? ''));
  for (const n of g.node ?? []) if (n.opType === 'Softmax' || n.opType === 'LogSoftmax') keep.add(n.input?.[0] ?? '');
  const values: string[] = [fw.pixel];
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) values.push(o);
  const shapeOf = new Map<string, string>();
  values.forEach((v, i) => {
    const s = `skeptic_probe_shape_${i}`;
    shapeOf.set(v, s);
    g.node!.push({ opType: 'Shape', input: [v], output: [s], name: s, domain: '' });
  });
  g.output = [...[...keep].map((name) => ({ name })), ...[...shapeOf.values()].map((name) => ({ name }))];
  const session = await ort.InferenceSession.create(encodeModel(m), { graphOptimizationLevel: 'basic', logSeverityLevel: 3, executionProviders: ['cpu'] });
  try {
    const batches = fw.mode.kind === 'dynamic' ? [1, 2] : fw.mode.kind === 'fixed' ? [fw.mode.size] : [1];
    const per = fw.plan.channels * fw.plan.height * fw.plan.width;
    const rnd = mulberry32(0x9e3779b9);
    const meta = new Map<string, Meta>();
    const data = new Map<string, Float32Array>();
    for (let b = 0; b < batches.length; b++) {
      const rows = batches[b];
      const x = new Float32Array(rows * per);
      for (let i = 0; i < x.length; i++) x[i] = rnd();
      let res: ort.InferenceSession.ReturnType;
      try {
        res = await session.run({ [fw.pixel]: new ort.Tensor('float32', x, pixelDims(fw.plan, rows)) }, { logSeverityLevel: 4 });
      } catch (e) {
        throw new Error(`${fw.file}: running the prepared forward graph failed (${(e as Error).message.split('\n')[0]})`);
      }
      for (const [v, s] of shapeOf) {
        const t = res[s];
        if (!t) continue;
        const dims = Array.from(t.data as BigInt64Array, Number);
        meta.set(v, mergeMeta(meta.get(v), dtypes.get(v) ?? 'unknown', dims, b));
      }
      if (b === 0) for (const name of keep) if (res[name]?.type === 'float32') data.set(name, (res[name].data as Float32Array).slice());
    }
    for (const t of fw.m.graph?.initializer ?? []) {
      const dims = (t.dims ?? []).map(toNum);
      if (t.name && !meta.has(t.name)) meta.set(t.name, { dtype: elemTypeName(t.dataType), d1: dims, d2: dims });
    }
    return { meta, values: data, rows: batches[0] };
  } finally {
    await session.release();
  }
}

/** Element types of every value, from the graph's declarations and each op's typing rule. */
export function inferTypes(g: onnx.IGraphProto): Map<string, string> {
  const t = new Map<string, string>();
  for (const v of g.input ?? []) if (v.name) t.set(v.name, elemTypeName(v.type?.tensorType?.elemType));
  for (const v of g.initializer ?? []) if (v.name) t.set(v.name, elemTypeName(v.dataType));
  const attr = (n: onnx.INodeProto, name: string) => (n.attribute ?? []).find((a) => a.name === name);
  const INT64 = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero', 'NonMaxSuppression']);
  const BOOL = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
  for (const n of g.node ?? []) {
    const op = n.opType ?? '';
    const ins = n.input ?? [];
    const first = ins.map((i) => t.get(i)).find((x) => x !== undefined) ?? 'float32';
    (n.output ?? []).forEach((o, k) => {
      if (!o) return;
      let ty = first;
      if (INT64.has(op)) ty = 'int64';
      else if (BOOL.has(op)) ty = 'bool';
      else if (op === 'Cast') ty = elemTypeName(toNum(attr(n, 'to')?.i));
      else if (op === 'CastLike') ty = t.get(ins[1]) ?? first;
      else if (op === 'Constant') ty = elemTypeName(attr(n, 'value')?.t?.dataType ?? (attr(n, 'value_int') || attr(n, 'value_ints') ? 7 : 1));
      else if (op === 'ConstantOfShape') ty = elemTypeName(attr(n, 'value')?.t?.dataType ?? 1);
      else if (op === 'EyeLike' || op.startsWith('Random')) ty = elemTypeName(toNum(attr(n, 'dtype')?.i) || 1);
      else if (op === 'QuantizeLinear') ty = ins[2] ? (t.get(ins[2]) ?? 'uint8') : 'uint8';
      else if (op === 'DequantizeLinear') ty = 'float32';
      else if (op === 'Where') ty = t.get(ins[1]) ?? first;
      else if (op === 'OneHot') ty = t.get(ins[2]) ?? first;
      else if ((op === 'MaxPool' || op === 'TopK') && k === 1) ty = 'int64';
      else if (op === 'Dropout' && k === 1) ty = 'bool';
      else if (op.startsWith('QLinear') || op === 'QGemm') ty = 'uint8';
      t.set(o, ty);
    });
  }
  return t;
}

function mergeMeta(prev: Meta | undefined, dtype: string, dims: number[], run: number): Meta {
  if (run === 0 || !prev) return { dtype, d1: dims, d2: dims };
  return { ...prev, d2: dims };
}

// ---- helpers over Meta

/** Dims that do not change with the batch. */
export function isStatic(m: Meta, i: number): boolean {
  return m.d1[i] === m.d2[i];
}

export function allStatic(m: Meta): boolean {
  return m.d1.every((_, i) => isStatic(m, i));
}

/** A Reshape target for this value: its dims, with −1 at the one batch-dependent axis; undefined when two axes depend on the batch. */
export function reshapeTarget(m: Meta): number[] | undefined {
  const dyn = m.d1.map((_, i) => i).filter((i) => !isStatic(m, i));
  if (dyn.length > 1) return undefined;
  return m.d1.map((d, i) => (isStatic(m, i) ? d : -1));
}
