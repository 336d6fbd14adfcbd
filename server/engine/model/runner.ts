/**
 * Runner: drives one ONNX Runtime session for predict() and the load-time probes (feeding runs
 * of images, padding to a fixed batch, gathering one output's rows), and runModel: the bytes
 * Skeptic runs (pixel-space prefix, symbolic batch).
 */
import '../fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import type { Preprocessing } from '../types';
import { decodeModel, encodeModel, type onnx } from './onnx';
import { feedDims, type InputPlan } from './introspect';
import { makeBatchSymbolic, type PatchResult } from './batch';
import { addPixelPrefix, canPrefix, pixelDims } from './pixels';
import { makeFiller, type Filler } from './preprocess';
import { fromHalf, toHalf } from './output';

/** A failing run rejects with ORT's message, which we report; keep ORT from also printing it. */
const QUIET: ort.InferenceSession.RunOptions = { logSeverityLevel: 4 };

/** How the session is driven: runs of ≤ batchSize, a fixed batch padded with zeros, or one image at a time. */
export type Mode = { kind: 'dynamic'; max: number } | { kind: 'fixed'; size: number } | { kind: 'single' };

/**
 * How images reach the session: 'pixels' feeds the caller's pixel-space data (the preprocessing
 * is in the graph, pixels.ts) under `name`; 'js' fills the model's own input tensor in JS
 * (preprocess.ts makeFiller) for graphs the prefix cannot be added to.
 */
export type Feed = { kind: 'pixels'; name: string } | { kind: 'js'; fill: Filler };

/**
 * Drives one session: feeding runs of images, padding to a fixed batch, gathering one output's
 * rows. Not re-entrant (the buffers are shared): LoadedModel serialises its calls.
 */
export class Runner {
  private readonly per: number;
  private readonly runSize: number;
  /** Padding (pixels) or the preprocessed tensor (js); allocated on first need. */
  private buf?: Float32Array;
  private typed?: Uint16Array | Float64Array | Uint8Array;

  constructor(
    readonly session: ort.InferenceSession,
    readonly plan: InputPlan,
    readonly mode: Mode,
    private readonly feed: Feed,
  ) {
    this.per = plan.channels * plan.height * plan.width;
    this.runSize = mode.kind === 'dynamic' ? mode.max : mode.kind === 'fixed' ? mode.size : 1;
  }

  /** Images per session.run. */
  get step(): number {
    return this.runSize;
  }

  /** Runs images [first, first+m) of src (m ≤ step) and returns the outputs (fetch: all when absent). */
  async run(src: Float32Array, first: number, m: number, fetch?: string[]): Promise<{ out: ort.InferenceSession.ReturnType; rows: number }> {
    const rows = this.mode.kind === 'fixed' ? this.mode.size : m;
    const per = this.per;
    const len = rows * per;
    let tensor: ort.Tensor;
    let name: string;
    if (this.feed.kind === 'pixels') {
      name = this.feed.name;
      let data: Float32Array;
      if (rows === m) {
        data = src.subarray(first * per, (first + m) * per); // no copy
      } else {
        data = this.buf ??= new Float32Array(len);
        data.set(src.subarray(first * per, (first + m) * per));
        data.fill(0, m * per, len); // zero padding up to the fixed batch
      }
      tensor = new ort.Tensor('float32', data, pixelDims(this.plan, rows));
    } else {
      name = this.plan.name;
      const f32 = (this.buf ??= new Float32Array(this.runSize * per));
      this.feed.fill(src, first, m, f32);
      if (rows > m) f32.fill(0, m * per, len);
      const type = this.plan.type;
      let data: Float32Array | Uint16Array | Float64Array | Uint8Array = f32.subarray(0, len);
      if (type === 'float16') {
        const t = (this.typed ??= new Uint16Array(f32.length)) as Uint16Array;
        toHalf(f32, t, len);
        data = t.subarray(0, len);
      } else if (type === 'float64') {
        const t = (this.typed ??= new Float64Array(f32.length)) as Float64Array;
        for (let i = 0; i < len; i++) t[i] = f32[i];
        data = t.subarray(0, len);
      } else if (type === 'uint8') {
        const t = (this.typed ??= new Uint8Array(f32.length)) as Uint8Array;
        for (let i = 0; i < len; i++) t[i] = Math.min(255, Math.max(0, Math.round(f32[i])));
        data = t.subarray(0, len);
      }
      tensor = new ort.Tensor(type as 'float32', data as Float32Array, feedDims(this.plan, rows));
    }
    const feeds = { [name]: tensor };
    const out = fetch ? await this.session.run(feeds, fetch, QUIET) : await this.session.run(feeds, QUIET);
    return { out, rows };
  }

  /** Runs all n images of src, gathering `count` float values per image of output `name`. */
  async gather(src: Float32Array, n: number, name: string, count: number, dst: Float32Array): Promise<void> {
    const step = this.step;
    for (let first = 0; first < n; first += step) {
      const m = Math.min(step, n - first);
      const { out } = await this.run(src, first, m, [name]);
      copyRows(out[name], m * count, dst, first * count, name);
    }
  }
}

/**
 * The bytes Skeptic runs: the model with the pixel-space prefix when it can take one, and with a
 * symbolic batch when asked. The original bytes when nothing changes.
 */
export function runModel(
  bytes: Uint8Array, file: string, plan: InputPlan, pre: Preprocessing, opset: number, symbolicBatch: boolean,
): { bytes: Uint8Array; feed: Feed; patch?: PatchResult } {
  const m = decodeModel(bytes, file);
  const run = runGraph(m, plan, pre, opset, symbolicBatch);
  return { bytes: run.changed ? encodeModel(m) : bytes, feed: run.feed, patch: run.patch };
}

/**
 * runModel on a decoded model `m`, changed in place and not encoded (`changed`: it was), for a
 * caller that changes it further before encoding it (views/session.ts): a large model is not
 * encoded for nothing.
 */
export function runGraph(
  m: onnx.ModelProto, plan: InputPlan, pre: Preprocessing, opset: number, symbolicBatch: boolean,
): { changed: boolean; feed: Feed; patch?: PatchResult } {
  const names = new Set<string>();
  const g = m.graph!;
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? []), ...(g.initializer ?? [])]) names.add(v.name ?? '');
  for (const n of g.node ?? []) for (const o of n.output ?? []) names.add(o);
  const feed: Feed = canPrefix(plan, opset, names)
    ? { kind: 'pixels', name: addPixelPrefix(m, plan, pre) }
    : { kind: 'js', fill: makeFiller(pre, plan) };
  let patch: PatchResult | undefined;
  if (symbolicBatch) {
    patch = makeBatchSymbolic(m, feed.kind === 'pixels' ? feed.name : plan.name);
    if (!patch.ok) return { changed: false, feed, patch };
  } else if (feed.kind === 'js' || feed.name === plan.name) {
    return { changed: false, feed };
  }
  return { changed: true, feed, patch };
}

/** Copies the first len values of an output tensor into dst (converting float16/float64). */
export function copyRows(t: ort.Tensor | undefined, len: number, dst: Float32Array, offset: number, name: string): void {
  if (!t) throw new Error(`output '${name}' missing from the run's results`);
  const d = t.data;
  if (d.length < len) throw new Error(`output '${name}' has ${d.length} values, expected at least ${len} (shape [${t.dims}])`);
  if (d instanceof Float32Array) dst.set(d.subarray(0, len), offset);
  else if (t.type === 'float16' && d instanceof Uint16Array) fromHalf(d, dst, len, offset);
  else if (d instanceof Float64Array) for (let i = 0; i < len; i++) dst[offset + i] = d[i];
  else throw new Error(`output '${name}' has type ${t.type}, not floating point`);
}
