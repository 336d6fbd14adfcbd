/**
 * Penultimate features: which tensor, and a session that returns it for pixel-space batches.
 *
 * The tensor: walking back from the classifier output (the graph output with one row of the
 * model's classes; the first output otherwise), breadth first through the ops that produce it,
 * the first Gemm, MatMul, QGemm or QLinearMatMul met is the last linear layer; its activation input
 * (the operand that is not stored in the graph) is the penultimate feature tensor. Overridable by
 * name. Without such an op the caller must name the tensor.
 *
 * The session: a copy of the graph with that tensor added as a graph output, run through the same
 * pixel-space prefix and batch handling as the loaded model (model/runner.ts), on the provider the
 * model runs on. A quantized feature tensor (uint8/int8) is dequantized in JavaScript with the
 * scale and zero point the consuming QLinear op reads it with.
 */
import type * as ort from 'onnxruntime-node';
import { SkepticInputError } from '../errors';
import { introspect, planInput } from './introspect';
import { readFileSync } from 'node:fs';
import { decodeModel, dimsOf, encodeModel, inlineExternalData, onnx } from './onnx';
import { linearHead } from './head';
import { storedValues } from '../prior/dequantize';
import { createOn } from './providers';
import { fromHalf } from './output';
import { copyRows, Runner, runModel, type Mode } from './runner';
import type { LoadedModel } from '../types';

const LINEAR = new Set(['Gemm', 'MatMul', 'QGemm', 'QLinearMatMul', 'MatMulInteger', 'FusedMatMul']);
/** Convolutions count as the last linear layer only with a 1×1 kernel on pooled features (a "conv classifier"). */
const CONV = new Set(['Conv', 'QLinearConv']);
/** Ops whose input j is read with scale input j+1 and zero point j+2. */
const QUANT_READERS = new Set([
  'QLinearMatMul', 'QLinearConv', 'QLinearAdd', 'QLinearMul', 'QGemm', 'DequantizeLinear', 'QLinearGlobalAveragePool',
  'QLinearAveragePool', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearSoftmax',
]);

/** The graph output holding the class scores: last dim = numClasses, else the first output. */
export function classifierOutput(m: onnx.IModelProto, numClasses: number): string {
  const outs = m.graph?.output ?? [];
  const hit = outs.find((o) => {
    const d = dimsOf(o);
    return d && d.length >= 1 && (d[d.length - 1] === numClasses || d.filter((x) => typeof x === 'number' && x !== 1).pop() === numClasses);
  });
  return (hit ?? outs[0])?.name ?? '';
}

export interface FeatureTensor {
  name: string;
  /** How it was found ("input of Gemm 'fc'") or 'named by the user'. */
  how: string;
}

/** The input of the last Gemm/MatMul on the way to `output` (see the module comment). */
export function findFeatureTensor(m: onnx.IModelProto, output: string): FeatureTensor {
  const g = m.graph!;
  const producers = new Map<string, onnx.INodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producers.set(o, n);
  const storedNames = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  for (const n of g.node ?? []) if (n.opType === 'Constant') for (const o of n.output ?? []) storedNames.add(o);
  const isStored = (x: string) => {
    if (storedNames.has(x)) return true;
    // A weight reached through shape-only ops on a stored tensor (CNTK's reshaped weights).
    let p = producers.get(x);
    for (let hops = 0; p && hops < 8; hops++) {
      if (!['Reshape', 'Transpose', 'Identity', 'Cast', 'Squeeze', 'Unsqueeze'].includes(p.opType ?? '')) return false;
      const src = p.input?.[0] ?? '';
      if (storedNames.has(src)) return true;
      p = producers.get(src);
    }
    return false;
  };
  const seen = new Set<string>();
  const queue = [output];
  while (queue.length) {
    const v = queue.shift()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const n = producers.get(v);
    if (!n) continue;
    const op = n.opType ?? '';
    // A 1×1 Conv is the classifier only on pooled (1×1) features: GAP → Conv 1×1 → Flatten. On a
    // spatial map (SqueezeNet's conv10, a 1×1 conv on the input) it is a layer like any other.
    const pooled = (x: string) => ['GlobalAveragePool', 'GlobalMaxPool', 'QLinearGlobalAveragePool', 'Unsqueeze', 'Reshape'].includes(producers.get(x)?.opType ?? '');
    if (CONV.has(op) && isPointwise(g, n) && n.input?.[0] && pooled(n.input[0])) {
      return { name: n.input[0], how: `input of 1×1 ${op} '${n.name || n.output?.[0]}'` };
    }
    if (LINEAR.has(op)) {
      const ins = n.input ?? [];
      // QLinearMatMul/QGemm/MatMulInteger: operands at 0 and 3 (or 0 and 1); take the non-stored one.
      const operands = op === 'QLinearMatMul' || op === 'QGemm' ? [ins[0], ins[3]] : [ins[0], ins[1]];
      const act = operands.find((x) => x && !isStored(x));
      if (act) return { name: act, how: `input of ${op} '${n.name || n.output?.[0]}'` };
    }
    for (const x of n.input ?? []) if (x && !storedNames.has(x)) queue.push(x);
  }
  throw new SkepticInputError(
    `no Gemm or MatMul on the way to the output '${output}': name the penultimate feature tensor with the ood or prior probe's 'features' parameter`,
  );
}

/** A Conv/QLinearConv whose stored weight has a 1×1 kernel. */
function isPointwise(g: onnx.IGraphProto, n: onnx.INodeProto): boolean {
  const w = n.input?.[n.opType === 'QLinearConv' ? 3 : 1];
  const t = (g.initializer ?? []).find((x) => x.name === w);
  const dims = (t?.dims ?? []).map(Number);
  return dims.length === 4 && dims[2] === 1 && dims[3] === 1;
}

/** Scale and zero point a quantized tensor is read with, when it is one. */
export function quantParams(m: onnx.IModelProto, name: string): { scale: number; zeroPoint: number; type: number } | undefined {
  const g = m.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  for (const n of g.node ?? []) {
    if (!QUANT_READERS.has(n.opType ?? '')) continue;
    const ins = n.input ?? [];
    const j = ins.indexOf(name);
    if (j < 0 || (j !== 0 && j !== 3)) continue;
    const s = inits.get(ins[j + 1] ?? '');
    const z = inits.get(ins[j + 2] ?? '');
    if (!s) continue;
    return { scale: storedValues(s)[0], zeroPoint: z ? storedValues(z)[0] ?? 0 : 0, type: z?.dataType ?? 2 };
  }
  return undefined;
}

/**
 * `len` values of a feature tensor from a run into `dst` at `offset` as float32: float16 and
 * float64 converted, a quantized one dequantized with the scale and zero point it is read with.
 */
export function featureValues(t: ort.Tensor, len: number, dst: Float32Array, offset: number, tensor: string, quant?: { scale: number; zeroPoint: number }): void {
  const src = t.data;
  if (src instanceof Float32Array) dst.set(src.subarray(0, len), offset);
  else if (t.type === 'float16' && src instanceof Uint16Array) fromHalf(src, dst, len, offset);
  else if (src instanceof Float64Array) for (let i = 0; i < len; i++) dst[offset + i] = src[i];
  else if ((src instanceof Uint8Array || src instanceof Int8Array) && quant) {
    for (let i = 0; i < len; i++) dst[offset + i] = (src[i] - quant.zeroPoint) * quant.scale;
  } else throw new Error(`feature tensor '${tensor}' has type ${t.type}${quant ? '' : ' without a scale to dequantize it with'}`);
}

export interface FeatureRunner {
  tensor: string;
  /**
   * Runs n pixel-space images (N×C×H×W in [0,1]) and returns n rows of `dims` values; with
   * `output` (featureRunner's last argument) also that graph output's n rows of `outputCount`
   * values from the same run, raw as the graph computes them.
   */
  run(pixels: Float32Array, n: number): Promise<{ dims: number; data: Float32Array; output?: Float32Array }>;
  release(): Promise<void>;
}

/**
 * A session over `proto` (a modified copy of the model's graph: re-initialised, dequantized...)
 * returning `tensor` per image, fed like `model`.
 */
export async function featureRunner(
  model: LoadedModel, proto: onnx.ModelProto, tensor: string, batchSize = 32, output?: { name: string; count: number },
): Promise<FeatureRunner> {
  const g = proto.graph!;
  const quant = quantParams(proto, tensor);
  if (!(g.output ?? []).some((o) => o.name === tensor)) g.output = [...(g.output ?? []), { name: tensor }];
  const intro = introspect(proto);
  if (!intro.inputs.length) throw new SkepticInputError(`${model.path}: the feature graph has no input`);
  const plan = planInput(model.path, intro.inputs[0], { height: model.info.height, width: model.info.width });
  const b = model.info.batch;
  const mode: Mode = b.effective === 'dynamic' ? { kind: 'dynamic', max: batchSize } : b.effective === 1 ? { kind: 'single' } : { kind: 'fixed', size: b.effective };
  const built = runModel(encodeModel(proto), model.path, plan, model.preprocessing, intro.opset, b.patched);
  if (built.patch && !built.patch.ok) throw new SkepticInputError(`${model.path}: the feature graph could not be batched (${built.patch.reason})`);
  const session: ort.InferenceSession = await createOn(built.bytes, model.device.used, model.path);
  const runner = new Runner(session, plan, mode, built.feed);
  const per = model.info.channels * model.info.height * model.info.width;
  return {
    tensor,
    async run(pixels, n) {
      let dims = 0;
      let data = new Float32Array(0);
      const logits = output ? new Float32Array(n * output.count) : undefined;
      for (let first = 0; first < n; first += runner.step) {
        const m = Math.min(runner.step, n - first);
        const { out, rows } = await runner.run(pixels.subarray(0, n * per), first, m, output ? [tensor, output.name] : [tensor]);
        if (output) copyRows(out[output.name], m * output.count, logits!, first * output.count, output.name);
        const t = out[tensor];
        if (!t) throw new Error(`feature tensor '${tensor}' missing from the run's results`);
        const d = t.data.length / Math.max(1, plan.batchAxis < 0 ? 1 : rows);
        if (!dims) {
          dims = d;
          data = new Float32Array(n * dims);
        } else if (d !== dims) throw new Error(`feature tensor '${tensor}' changed size between runs (${dims} → ${d})`);
        featureValues(t, m * dims, data, first * dims, tensor, quant);
      }
      return logits ? { dims, data, output: logits } : { dims, data };
    },
    release: () => session.release(),
  };
}

/** Number of values per image a tensor is declared with, when static (for messages). */
export function declaredSize(m: onnx.IModelProto, tensor: string): number | undefined {
  const vi = [...(m.graph?.valueInfo ?? []), ...(m.graph?.output ?? [])].find((v) => v.name === tensor);
  const d = vi ? dimsOf(vi) : undefined;
  if (!d || d.length < 2 || d.slice(1).some((x) => typeof x !== 'number')) return undefined;
  return (d.slice(1) as number[]).reduce((a, b) => a * b, 1);
}

/** The model's graph with its external data inlined, as the taps (features, head) read it. */
export function readModelProto(model: LoadedModel): onnx.ModelProto {
  const m = decodeModel(readFileSync(model.path), model.path);
  inlineExternalData(m, model.path);
  return m;
}

/**
 * One line for `skeptic inspect`: the penultimate feature tensor chosen automatically (what the
 * ood probe's feature detectors and the prior probe tap unless their `features` parameter names
 * another), its size, and the classifier head read from the graph, or why there is none.
 */
export function describeFeatureTap(model: LoadedModel): string {
  let proto: onnx.ModelProto;
  try {
    proto = readModelProto(model);
  } catch (e) {
    return `not read (${(e as Error).message.split('\n')[0]})`;
  }
  let f: FeatureTensor;
  try {
    f = findFeatureTensor(proto, classifierOutput(proto, model.info.numClasses));
  } catch (e) {
    return `none found: ${(e as Error).message}`;
  }
  const size = declaredSize(proto, f.name);
  let head: string;
  try {
    const h = linearHead(proto, f.name);
    head = `head ${h.K}×${h.d} from ${h.how}`;
  } catch (e) {
    head = `no head weights (${(e as Error).message}): ViM and ReAct are skipped`;
  }
  return `'${f.name}'${size ? ` (${size} values)` : ''}, ${f.how}; ${head}; the probes' 'features' parameter names another`;
}
