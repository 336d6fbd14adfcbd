/**
 * Runs a view plan where the model runs. The plan's graph goes in front of the model's own
 * pixel-space graph (model/pixels.ts: preprocessing, then the original graph) in ONE session on
 * the model's execution provider: a source image goes in, the class scores of all its views come
 * out, and no view is ever copied through JavaScript (so on a GPU the views never leave it).
 * The elementwise nodes at the model's front (the preprocessing's Mul and Add, a quantized
 * model's QuantizeLinear) move into the view graph, applied per group of views before its final
 * Concat (prefixNodes, buildViewGraph's post).
 *
 * When that cannot be done (a model fed by a JS filler, a fixed batch, an opset below 11 with ops
 * whose meaning changed since, a stand-in model in the tests), the plan runs as a graph of its
 * own on the same provider and its output goes to model.predict: the same views, one extra copy.
 * `mode` and `reason` say which path a plan took.
 */
import { readFile } from 'node:fs/promises';
import { debuglog } from 'node:util';
import * as ort from 'onnxruntime-node';
import { throwIfAborted } from '../errors';
import type { LoadedModel, PixelImage, Prediction } from '../types';
import { decodeModel, encodeInitializers, encodeModel, encodeModelWith, inlineExternalData, toNum, type onnx } from '../model/onnx';
import { introspect, planInput } from '../model/introspect';
import { hfInputSize, readHfConfig } from '../model/preprocess';
import { copyRows, runGraph } from '../model/runner';
import { toLogitsAndProbs } from '../model/output';
import { createOn, createSession, viewKernels, type Provider, type ViewKernels } from '../model/providers';
import { featureValues } from '../model/features';
import { buildViewGraph, standaloneViewModel, VIEW_INPUT, VIEW_INPUT_C, VIEW_MIN_OPSET, VIEW_PREFIX, type ViewPostNode } from './graph';
import { imagenetCSlots, planKey, slotCounts, type ViewPlan, type ViewSource } from './plan';
import { chunkModel } from './model-chunks';
import { releaseViewWorkers } from './workers';

const QUIET: ort.InferenceSession.RunOptions = { logSeverityLevel: 4 };
/** NODE_DEBUG=skeptic-views: which plans share a session, or why they do not. */
const debug = debuglog('skeptic-views');
/**
 * Pixel values of the views one session.run feeds the model: runs are sized by forward passes
 * (sources × views), at most RUN_VALUES / (C·H·W): 1,337 for mnist-8's 28×28 inputs, 341 at
 * 32×32×3, and one source's views for an ImageNet-size input; the sources a probe hands over
 * are split into runs of nearly equal size. Measured on mnist-8 (2 cores, loaded):
 * - a session's first two runs cost far more than the others: ORT's arena grows to the run's
 *   activations and the fresh pages are faulted in (0.3–0.6 s each at 1,376 passes against
 *   40 ms warm): 7.7 of the default audit's 29 s inside session.run at up to 2,432 passes per run
 *   (the previous size, 4M values and up to 64 sources). That cost follows the largest run;
 * - every run has a fixed cost that grows with the view graph's nodes: the corruptions graph
 *   (about 600 nodes) spends 7 ms per run in ORT's executor and 6 ms in tiny kernels, so runs of
 *   300 passes made the default audit slower (CPU inside session.run 10.6 → 14.5 s, one thread);
 * - the model costs about the same per pass from 128 to 2,432 passes per run and twice as much
 *   at 4,096 (its activations fall out of the caches).
 */
const RUN_VALUES = 1 << 20;
const MAX_SOURCES_PER_RUN = 64;
/**
 * ORT's memory patterns off for the view sessions: with them, the second run at each new input
 * size plans and allocates one more block the size of the run's activations, faulted in anew.
 * Measured (CPU ms of the first runs of a fresh session, one thread, warm runs unchanged):
 * MobileNetV2-int8 at 76 rows 640–680 → 230–250 for the second run; mnist-8 at 1,376 rows
 * 260–330 → 130–210, at 256 rows 80–100 → 7.
 */
const MEM_PATTERN = false;
/** Forward passes per run when a test or benchmark sets it (setViewRunPasses), else undefined. */
let runPassesOverride: number | undefined;
/**
 * Rows the model's nodes take at a time inside a composed run (model-chunks.ts): a run of more
 * rows repeats the model over slices of about this many. Measured on mnist-8 (2 cores): its
 * kernels cost about a quarter less per pass in slices of ~300 rows than in runs of ~1,200
 * (whose activations fall out of the caches), while the view graph keeps its fewer, larger runs;
 * the default audit (bench/audit.ts --case mnist, six alternating pairs) 4.75 s against 5.15 s,
 * 1.70× the bare loop against 1.90 (medians), with half the page faults (60,000 against 120,000).
 * MobileNetV2 at 224×224 (runs of one image's 76 views) gained nothing from slices of 19, so
 * runs below twice this size are left whole.
 */
const MODEL_CHUNK_ROWS = 300;
/**
 * The same on WebGPU, where ONNX Runtime's kernels cost more a pass as the batch grows (bench/README.md,
 * nineteenth pass, an H200; bare loops per pass): MobileNetV2 461 µs at 16 rows, 447 at 32, 662 at
 * 43, 720 at 76; ResNet-50 942 at 32, 983 at 43, 1,409 at 76. An ImageNet audit runs the model on
 * an image's 76 corruption views at once; in slices of about 25 rows the default audit took 12.9
 * s against 16.6 (MobileNetV2) and 23.8 against 31.2 (ResNet-50), its corruptions 5.7 against 8.1
 * and 10.7 against 18.7 s. MNIST's runs of 768–1,333 rows get the cap's four slices: its shift
 * and corruption runs as measured, its patches and ood runs one or two more than on the CPU
 * (not measured on a GPU; slices of 190–330 rows).
 */
const MODEL_CHUNK_ROWS_WEBGPU = 25;

/** Rows per model slice on this provider (MODEL_CHUNK_ROWS, or the WebGPU value). */
export function modelChunkRows(p: Provider): number {
  return p === 'webgpu' ? MODEL_CHUNK_ROWS_WEBGPU : MODEL_CHUNK_ROWS;
}
/**
 * At most this many copies: each copy's kernels pack their own copy of the weights (ORT prepacks
 * per node) and the session takes longer to create, so a tiny input (runs of thousands of rows)
 * does not get dozens.
 */
const MAX_MODEL_CHUNKS = 4;
let chunkRowsOverride: number | undefined;

/**
 * Sets the forward passes per session.run of the view runners built from now on (undefined:
 * sized from the input as above). For the tests (the same report at any run size) and benchmarks.
 */
export function setViewRunPasses(passes: number | undefined): void {
  if (passes !== undefined && !(Number.isInteger(passes) && passes >= 1)) throw new RangeError(`view run passes must be a positive integer, not ${passes}`);
  runPassesOverride = passes;
}

/**
 * When set, the view runners built from now on use these kernels whatever the provider
 * (undefined: the provider's, viewKernels). For the tests and benchmarks: the graphs a WebGPU
 * audit runs, measured on the CPU.
 */
export function setViewKernels(kernels: ViewKernels | undefined): void {
  kernelsOverride = kernels;
}
let kernelsOverride: ViewKernels | undefined;
/** The kernels the view graphs for a model on this provider may use. */
function kernelsFor(p: Provider): ViewKernels {
  return kernelsOverride ?? viewKernels(p);
}

/** Sets the rows per model slice of the view runners built from now on (undefined: the provider's, modelChunkRows). For the tests and benchmarks. */
export function setModelChunkRows(rows: number | undefined): void {
  if (rows !== undefined && !(Number.isInteger(rows) && rows >= 1)) throw new RangeError(`model chunk rows must be a positive integer, not ${rows}`);
  chunkRowsOverride = rows;
}

/**
 * Copies of the model a composed run of `perRun` sources splits its rows among: one per `rows`
 * rows of a full run (the provider's, modelChunkRows), at most MAX_MODEL_CHUNKS (not capped when a test sets the
 * rows), and never more than the views of one source (the fewest rows a run has), so no copy
 * runs on an empty slice.
 */
export function modelChunks(plan: ViewPlan, perRun: number, rows = MODEL_CHUNK_ROWS): number {
  const views = plan.ops.length;
  const wanted = Math.floor((perRun * views) / (chunkRowsOverride ?? rows));
  return Math.max(1, Math.min(views, chunkRowsOverride ? wanted : Math.min(MAX_MODEL_CHUNKS, wanted)));
}

/** modelChunks for a run on the model's own provider. */
function chunksOn(model: LoadedModel, plan: ViewPlan, perRun: number): number {
  return modelChunks(plan, perRun, modelChunkRows(model.device.used));
}

/**
 * Ops whose meaning is the same at opset 11 as in every earlier opset that has them (for the
 * attributes they take), so a model below opset 11 can be raised to carry the view graph.
 */
const SAME_AT_11 = new Set([
  'Abs', 'Add', 'AveragePool', 'Cast', 'Concat', 'Constant', 'Conv', 'Div', 'Elu', 'Exp', 'Flatten', 'Gather', 'Gemm',
  'GlobalAveragePool', 'GlobalMaxPool', 'HardSigmoid', 'Identity', 'LeakyRelu', 'Log', 'LogSoftmax', 'LRN', 'MatMul', 'Max',
  'MaxPool', 'Min', 'Mul', 'Neg', 'Pow', 'PRelu', 'Relu', 'Reshape', 'Selu', 'Shape', 'Sigmoid', 'Softmax', 'Softplus', 'Sqrt',
  'Squeeze', 'Sub', 'Sum', 'Tanh', 'Transpose', 'Unsqueeze',
]);

/** A tensor of the model's graph to return beside the class scores (the ood probe's penultimate
 *  features), with the scale and zero point of a quantized one. */
export interface ViewFeatures {
  tensor: string;
  quant?: { scale: number; zeroPoint: number };
}

/** Class scores of the views, and the feature rows when the runner was asked for them. */
export type ViewPrediction = Prediction & { feats?: { dims: number; data: Float32Array } };

export interface ViewRunner {
  readonly views: number;
  readonly mode: 'composed' | 'standalone';
  /** Whether predict() gives feature rows too (composed only: the standalone path runs model.predict). */
  readonly features: boolean;
  /** Why the plan does not run in the model's session (standalone only). */
  readonly reason?: string;
  /** Sources per session.run. */
  readonly sourcesPerRun: number;
  /** Copies of the model a composed run's rows are split among (modelChunks; 1: whole; standalone: 1). */
  readonly modelSlices: number;
  /** Whether its session serves other plans too (declareViews). */
  readonly shared: boolean;
  /** The class scores of every view of every source, image-major: row i·views + j is view j of source i. */
  predict(sources: ViewSource[]): Promise<ViewPrediction>;
}

/**
 * Runs items through a runner a session.run at a time, making the next runs' sources (noise
 * draws, views the CPU makes) while the current one runs, so the provider does not wait for
 * the CPU between runs. `use` gets each item with its scores (rows first … first+views−1).
 * `ahead`: runs of sources in the making beyond the one running (1 when this thread makes them;
 * more when worker threads do, views/workers.ts), so memory stays a few runs' worth.
 */
export async function runViews<T>(
  runner: ViewRunner,
  items: T[],
  source: (item: T) => ViewSource | Promise<ViewSource>,
  use: (item: T, scores: ViewPrediction, first: number) => void,
  signal?: AbortSignal,
  ahead = 1,
): Promise<void> {
  const step = balancedStep(items.length, runner.sourcesPerRun);
  const make = async (from: number) => Promise.all(items.slice(from, from + step).map(source));
  const making: Array<Promise<ViewSource[]>> = [];
  let made = 0; // items whose sources are asked for
  const more = () => {
    for (; made < items.length && making.length < Math.max(1, ahead); made += step) {
      const p = make(made);
      p.catch(() => undefined);
      making.push(p);
    }
  };
  more();
  for (let from = 0; from < items.length; from += step) {
    throwIfAborted(signal);
    const sources = await making.shift()!;
    const running = runner.predict(sources);
    // let the run start (its work goes to ORT's threads) before this thread makes the next sources
    await new Promise((r) => setImmediate(r));
    more();
    const scores = await running;
    for (const s of sources) s.done?.();
    items.slice(from, from + step).forEach((item, i) => use(item, scores, i * runner.views));
  }
}

const cache = new WeakMap<LoadedModel, Map<string, Promise<ViewRunner>>>();

/**
 * The runner for a plan on a model: built once, then shared by every call with an equal plan.
 * With `features`, the composed session also returns that tensor of the model's graph per view.
 */
export function viewsFor(model: LoadedModel, plan: ViewPlan, features?: ViewFeatures): Promise<ViewRunner> {
  let byPlan = cache.get(model);
  if (!byPlan) cache.set(model, (byPlan = new Map()));
  const { key, perRun, chunks } = runKey(model, plan, features);
  let r = byPlan.get(key);
  if (!r) {
    const declared = pending.get(model);
    if (declared?.has(key)) {
      // the first run of a declared plan: the plans declared so far go into one session
      const members = sharers([...declared.values()]);
      declared.clear();
      if (members.length) shareSession(model, members, byPlan);
      const shared = byPlan.get(key);
      if (shared) return shared;
    }
    r = build(model, plan, perRun, chunks, features);
    byPlan.set(key, r);
    r.catch(() => byPlan!.delete(key));
  }
  return r;
}

/** What names a plan's runner (two equal requests share one), and how its runs are sized. */
function runKey(model: LoadedModel, plan: ViewPlan, features?: ViewFeatures): { key: string; perRun: number; chunks: number } {
  const perRun = sourcesPerRun(plan);
  const chunks = chunksOn(model, plan, perRun);
  const k = kernelsFor(model.device.used);
  return { key: `${planKey(plan)}|${features?.tensor ?? ''}|${perRun}|${chunks}|${k.float64}|${k.sum}`, perRun, chunks };
}

/** A plan declared for a model before its first run (declareViews). */
interface Declared {
  key: string;
  plan: ViewPlan;
  features?: ViewFeatures;
  perRun: number;
  chunks: number;
}
const pending = new WeakMap<LoadedModel, Map<string, Declared>>();
/** The shared sessions built for a model (released with its views). */
const sharedSessions = new WeakMap<LoadedModel, Array<Promise<SharedSession | { reason: string }>>>();

/**
 * Declares a plan that runs on this model soon (an audit declares every probe's plans before its
 * first batch runs, Probe.viewPlans): the first viewsFor of any declared plan then builds ONE
 * session for all the plans declared and not yet built, each plan's view graph a branch of an If
 * that a run's plan index picks, in front of one copy of the model. One session has one memory
 * arena and one copy of the weights, where a session per plan made each grow its own arena to its
 * runs' size in a first audit (tens of megabytes each, every page faulted in) and hold its own
 * copy of the model's weights (its prepacked kernels). On the CPU provider only: the If's
 * branches run where ONNX Runtime places them, which on a GPU provider was not measured.
 * A plan asked for without being declared, or declared alone, gets a session of its own.
 */
export function declareViews(model: LoadedModel, plan: ViewPlan, features?: ViewFeatures): void {
  if (model.device.used !== 'cpu' || !sharingOn) return;
  const { key, perRun, chunks } = runKey(model, plan, features);
  if (cache.get(model)?.has(key)) return;
  let declared = pending.get(model);
  if (!declared) pending.set(model, (declared = new Map()));
  if (!declared.has(key)) declared.set(key, { key, plan, features, perRun, chunks });
}

let sharingOn = process.env.SKEPTIC_SHARED_VIEWS !== '0';
/** Whether declared plans share one session (default: yes; SKEPTIC_SHARED_VIEWS=0 turns it off). For the tests and benchmarks. */
export function setSharedViews(on: boolean): void {
  sharingOn = on;
}

/**
 * The declared plans that share a session: the model's slices are those of the plan that wants
 * most, and a run must have at least one row per slice, so a plan with fewer views than that (a
 * run of one source would leave a slice empty) keeps a session of its own; none when fewer than
 * two are left. (The default audit's five plans all share, on MNIST with the model in four slices.)
 */
function sharers(declared: Declared[]): Declared[] {
  const chunks = Math.max(...declared.map((m) => m.chunks));
  const members = declared.filter((m) => m.plan.ops.length >= chunks);
  return members.length >= 2 ? members : [];
}

/** The declared plans' runners, over one shared session; a plan whose share fails gets a session of its own. */
function shareSession(model: LoadedModel, members: Declared[], byPlan: Map<string, Promise<ViewRunner>>): void {
  const shared = buildShared(model, members).then((s) => {
    const views = members.map((m) => m.plan.ops.length).join(', ');
    if ('reason' in s) debug('%d declared plans (views %s) run in sessions of their own: %s', members.length, views, s.reason);
    else debug('%d declared plans (views %s) share one session', members.length, views);
    return s;
  });
  let list = sharedSessions.get(model);
  if (!list) sharedSessions.set(model, (list = []));
  list.push(shared);
  members.forEach((m, index) => {
    const r = shared.then((s) => ('reason' in s
      ? build(model, m.plan, m.perRun, m.chunks, m.features)
      : new Runner(m.plan, m.perRun, s.session, s.output, model, 'composed', undefined, m.features, s.chunks, s.branch(index))));
    byPlan.set(m.key, r);
    r.catch(() => byPlan.delete(m.key));
  });
}

interface SharedSession {
  session: ort.InferenceSession;
  output: string;
  chunks: number;
  /** What a run of member `index` feeds besides its own inputs, and its inputs' names in the shared graph. */
  branch(index: number): SharedBranch;
}

/** A plan's place in a shared session: its inputs' names there, and the feeds that pick its branch. */
interface SharedBranch {
  names: Map<string, string>;
  /** The plan index, and an empty tensor for every other plan's inputs (every input must be fed). */
  extra: Record<string, ort.Tensor>;
}

async function buildShared(model: LoadedModel, members: Declared[]): Promise<SharedSession | { reason: string }> {
  const chunks = Math.max(...members.map((m) => m.chunks)); // sharers() left no plan with fewer views
  const composed = await composedGroup(model, members.map((m) => ({ plan: m.plan, perRun: m.perRun, feature: m.features?.tensor })), chunks).catch((e: Error) => ({ reason: e.message.split('\n')[0] }));
  if ('reason' in composed) return composed;
  let session: ort.InferenceSession;
  try {
    session = (await createSession(composed.bytes, model.device.used, model.path, 'all', MEM_PATTERN)).session;
  } catch (e) {
    return { reason: `the shared graph did not load (${(e as Error).message.split('\n')[0]})` };
  }
  const empty = composed.branches.map((b) => Object.fromEntries(b.inputs.map((i) => [i.name!, emptyFeed(i)])));
  return {
    session,
    output: composed.output,
    chunks: composed.chunks,
    branch: (index) => ({
      names: composed.branches[index].names,
      extra: Object.assign({}, ...empty.filter((_, j) => j !== index), { [SHARED_PLAN]: new ort.Tensor('int64', BigInt64Array.of(BigInt(index)), [1]) }),
    }),
  };
}

/** A tensor with no rows for a graph input (a plan's input when another plan runs). */
function emptyFeed(input: onnx.IValueInfoProto): ort.Tensor {
  const t = input.type!.tensorType!;
  const dims = (t.shape?.dim ?? []).map((d, i) => (i === 0 || d.dimValue === undefined || d.dimValue === null ? 0 : toNum(d.dimValue)));
  switch (t.elemType) {
    case 1:
      return new ort.Tensor('float32', new Float32Array(0), dims);
    case 6:
      return new ort.Tensor('int32', new Int32Array(0), dims);
    case 7:
      return new ort.Tensor('int64', new BigInt64Array(0), dims);
    default:
      throw new RangeError(`view input ${input.name} has element type ${t.elemType}`);
  }
}

/** The shared graph's input that picks the plan a run makes views for. */
const SHARED_PLAN = `${VIEW_PREFIX}plan`;

/** Sources per run for `count` sources at most `perRun` a run, in as few runs as that takes and
 *  of nearly equal size (32 sources at 31 a run: two runs of 16, not 31 and 1). */
export function balancedStep(count: number, perRun: number): number {
  return count <= perRun ? Math.max(1, count) : Math.ceil(count / Math.ceil(count / perRun));
}

/** Forward passes a session.run aims at for views of this size (at least 1). */
export function runPasses(plan: Pick<ViewPlan, 'channels' | 'height' | 'width'>): number {
  return runPassesOverride ?? Math.max(1, Math.floor(RUN_VALUES / (plan.channels * plan.height * plan.width)));
}

/** Sources per session.run: as many as fit the run's passes (all of an image's views go in one
 *  run, so an image with more views than that runs alone). */
export function sourcesPerRun(plan: ViewPlan): number {
  return Math.max(1, Math.min(MAX_SOURCES_PER_RUN, Math.floor(runPasses(plan) / plan.ops.length)));
}

/** Releases the sessions of every plan built for a model (the model's dispose() calls it). */
export async function releaseViews(model: LoadedModel): Promise<void> {
  await releaseViewWorkers(model);
  pixelGraphs.delete(model);
  pending.delete(model);
  const byPlan = cache.get(model);
  if (!byPlan) return;
  cache.delete(model);
  const runners = await Promise.allSettled([...byPlan.values()]);
  for (const r of runners) if (r.status === 'fulfilled') await (r.value as Runner).release();
  // the shared sessions last: their runners' releases wait for their runs
  const shared = await Promise.allSettled(sharedSessions.get(model) ?? []);
  sharedSessions.delete(model);
  for (const s of shared) if (s.status === 'fulfilled' && 'session' in s.value) await s.value.session.release().catch(() => undefined);
}

async function build(model: LoadedModel, plan: ViewPlan, perRun: number, chunks: number, features?: ViewFeatures): Promise<ViewRunner> {
  if (plan.channels !== model.info.channels || plan.height !== model.info.height || plan.width !== model.info.width) {
    throw new RangeError(`view plan makes ${plan.channels}×${plan.height}×${plan.width} views; the model takes ${model.info.channels}×${model.info.height}×${model.info.width}`);
  }
  let reason = '';
  // the model in slices first; should a provider refuse that graph, the model whole, then standalone
  for (const tried of [chunks, 1]) {
    const composed = await composedModel(model, plan, perRun, features?.tensor, tried).catch((e: Error) => ({ reason: e.message.split('\n')[0] }));
    if ('bytes' in composed) {
      try {
        const created = await createSession(composed.bytes, model.device.used, model.path, 'all', MEM_PATTERN);
        return new Runner(plan, perRun, created.session, composed.output, model, 'composed', undefined, features, composed.chunks);
      } catch (e) {
        reason = `the composed graph did not load (${(e as Error).message.split('\n')[0]})`;
      }
    } else reason = composed.reason;
    if (!('bytes' in composed) || composed.chunks === 1) break;
  }
  const device = model.device.used;
  const alone = standaloneViewModel(plan, 13, perRun === 1, kernelsFor(device));
  const session = await createOn(alone.bytes, device, 'view graph', 'all', MEM_PATTERN).catch(() => createOn(alone.bytes, 'cpu', 'view graph', 'all', MEM_PATTERN));
  return new Runner(plan, perRun, session, alone.output, model, 'standalone', reason);
}

/**
 * What every composed graph over a model starts from, made once per model: its pixel-space graph
 * (model/runner.ts's runGraph, opset raised for the view graph where that is safe) with the
 * initializers' data left out, those encoded once (encodeInitializers), and the pixel input's
 * name; or why no composed graph can be made. Each plan's graph is a shallow copy of it, encoded
 * without the weights and joined to their bytes (encodeModelWith), where each plan used to read,
 * decode three times and encode twice the whole model (bench/compose.ts; bench/README.md,
 * twenty-sixth pass).
 */
interface PixelGraph {
  /** the graph; its initializers keep their names and shapes (prefixNodes reads them), not their data */
  model: onnx.ModelProto;
  initializers: Uint8Array;
  pixel: string;
  opset: number;
}
const pixelGraphs = new WeakMap<LoadedModel, Promise<PixelGraph | { reason: string }>>();

function pixelGraph(model: LoadedModel): Promise<PixelGraph | { reason: string }> {
  let p = pixelGraphs.get(model);
  if (!p) {
    p = makePixelGraph(model);
    pixelGraphs.set(model, p);
    p.catch(() => pixelGraphs.delete(model));
  }
  return p;
}

async function makePixelGraph(model: LoadedModel): Promise<PixelGraph | { reason: string }> {
  if (!model.outputName) return { reason: 'the model is not an ONNX graph Skeptic loaded' };
  if (model.info.batch.effective !== 'dynamic') return { reason: `the model runs a fixed batch of ${model.info.batch.effective}` };
  const file = model.path;
  const m = decodeModel(await readFile(file), file);
  inlineExternalData(m, file);
  const intro = introspect(m);
  const hf = readHfConfig(file);
  const base = planInput(file, intro.inputs[0], hf ? hfInputSize(hf) : undefined);
  const iplan = { ...base, channels: model.info.channels, height: model.info.height, width: model.info.width };
  // the pixel-space graph, made in place
  const run = runGraph(m, iplan, model.preprocessing, intro.opset, model.info.batch.patched);
  if (run.feed.kind !== 'pixels') return { reason: 'the preprocessing cannot be put in the graph (it is filled in JavaScript)' };
  if (run.patch && !run.patch.ok) return { reason: `the symbolic-batch rewrite failed (${run.patch.reason})` };
  const g = m.graph!;
  for (const v of [...(g.input ?? []), ...(g.initializer ?? [])]) if (v.name?.startsWith(VIEW_PREFIX)) return { reason: `the graph uses the reserved name ${v.name}` };
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o.startsWith(VIEW_PREFIX)) return { reason: `the graph uses the reserved name ${o}` };

  const opsetEntry = (m.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = toNum(opsetEntry?.version);
  if (opset < VIEW_MIN_OPSET) {
    const odd = [...new Set((g.node ?? []).filter((n) => (!n.domain || n.domain === 'ai.onnx') && !SAME_AT_11.has(n.opType ?? '')).map((n) => n.opType))];
    if (odd.length) return { reason: `opset ${opset} with ops whose meaning changed by opset ${VIEW_MIN_OPSET} (${odd.join(', ')})` };
    opsetEntry!.version = VIEW_MIN_OPSET;
    raiseIr(m, VIEW_MIN_OPSET);
  }
  const initializers = encodeInitializers(g.initializer ?? []);
  g.initializer = (g.initializer ?? []).map((t) => ({ name: t.name, dims: t.dims, dataType: t.dataType }));
  // decoded again from its own small encoding: the decoded bytes fields (a node's string
  // attributes too) are views into the buffer they came from, which would keep the whole
  // model's bytes alive beside the initializers' own
  const light = decodeModel(encodeModel(m), file);
  return { model: light, initializers, pixel: run.feed.name, opset: Math.max(opset, VIEW_MIN_OPSET) };
}

/** A copy of a protobufjs message whose fields can be set without touching the original's. */
function shallow<T extends object>(x: T): T {
  return Object.assign(Object.create(Object.getPrototypeOf(x)) as T, x);
}

/** The model's pixel-space graph with the view graph in front and the model in `chunks` slices of a run (1: whole; fewer when it cannot be sliced), or why it cannot be (exported for the tests). */
export async function composedModel(model: LoadedModel, plan: ViewPlan, perRun: number, feature?: string, chunks = chunksOn(model, plan, perRun)): Promise<{ bytes: Uint8Array; output: string; chunks: number } | { reason: string }> {
  return composeInFront(model, feature ? [feature] : [], chunks, ({ pre, target, opset, kernels }) => {
    const vg = buildViewGraph(plan, opset, { onePerRun: perRun === 1, post: pre?.post, postOnSource: pre?.onSource, kernels });
    vg.nodes.find((n) => n.output?.[0] === vg.output)!.output = [target];
    return { nodes: vg.nodes, inputs: vg.inputs, inits: vg.inits };
  });
}

/** What goes in front of the model (composeInFront): nodes that write the tensor it reads, their inputs and initializers. */
interface Front {
  nodes: onnx.INodeProto[];
  inputs: onnx.IValueInfoProto[];
  inits: onnx.ITensorProto[];
}

/**
 * A copy of the model's pixel-space graph (pixelGraph) with `front(...)` feeding the model in
 * place of its pixel input, `features` added to its outputs, and the model in `chunks` slices of
 * a run; encoded with the model's weights joined. `front` is told the model's front nodes the
 * view graph takes over (prefixNodes, dropped from the model here) and the tensor it must write
 * (`target`: what those nodes fed, else the pixel input). One view graph (composedModel) or an
 * If chain of several (composedGroup).
 */
async function composeInFront(
  model: LoadedModel, features: string[], chunks: number,
  front: (at: { pre: ReturnType<typeof prefixNodes>; target: string; opset: number; kernels: ViewKernels }) => Front,
): Promise<{ bytes: Uint8Array; output: string; chunks: number } | { reason: string }> {
  const base = await pixelGraph(model);
  if ('reason' in base) return base;
  const { pixel, opset } = base;
  const m = shallow(base.model);
  const g = (m.graph = shallow(base.model.graph!));
  const pre = prefixNodes(g, pixel, features);
  const target = pre ? pre.output : pixel;
  const made = front({ pre, target, opset, kernels: kernelsFor(model.device.used) });
  // the view graph applies those nodes itself, per group of views, and feeds what they fed
  if (pre) g.node = (g.node ?? []).filter((n) => !pre.nodes.includes(n));
  g.input = [...(g.input ?? []).filter((i) => i.name !== pixel), ...made.inputs];
  for (const feature of features) {
    if (!(g.node ?? []).some((n) => n.output?.includes(feature))) return { reason: `the graph has no tensor named '${feature}'` };
    if (!(g.output ?? []).some((o) => o.name === feature)) g.output = [...(g.output ?? []), { name: feature }];
  }
  // the model's own weights are joined as encoded bytes below; this graph's are the views' and the slices'
  g.initializer = [];
  // the model in slices of a run's rows (undefined: left whole)
  const chunked = chunkModel(g, g.node ?? [], target, [model.outputName!, ...features], chunks);
  if (chunked) g.node = chunked;
  g.node = [...made.nodes, ...(g.node ?? [])];
  g.initializer = [...(g.initializer ?? []), ...made.inits];
  g.valueInfo = (g.valueInfo ?? []).filter((v) => v.name !== pixel);
  return { bytes: encodeModelWith(m, base.initializers), output: model.outputName!, chunks: chunked ? chunks : 1 };
}

/**
 * composedModel for several plans in one graph (declareViews): each plan's view graph, its names
 * given a prefix of its own (p0_, p1_, …), becomes a branch of a chain of Ifs on the input
 * SHARED_PLAN (If k: plan k, or the chain after it), whose output feeds one copy of the model (in
 * `chunks` slices). Every plan's inputs are inputs of the graph (a run feeds the other plans' with
 * no rows); ONNX Runtime runs only the branch the run picks. Exported for the tests.
 */
export async function composedGroup(
  model: LoadedModel, members: Array<{ plan: ViewPlan; perRun: number; feature?: string }>, chunks: number,
): Promise<{ bytes: Uint8Array; output: string; chunks: number; branches: Array<{ names: Map<string, string>; inputs: onnx.IValueInfoProto[] }> } | { reason: string }> {
  if (members.length < 2) return { reason: 'a shared graph needs two plans or more' };
  const features = [...new Set(members.map((x) => x.feature).filter((f): f is string => !!f))];
  let branches: Array<ReturnType<typeof branchOf>> = [];
  const composed = await composeInFront(model, features, chunks, ({ pre, target, opset, kernels }) => {
    branches = members.map((x, k) => branchOf(buildViewGraph(x.plan, opset, { onePerRun: x.perRun === 1, post: pre?.post, postOnSource: pre?.onSource, kernels }), k));
    // the chain, built from its end: the last plan's branch is the innermost else; If 0 writes the target
    let rest: onnx.IGraphProto = branches[branches.length - 1].graph;
    const level = (k: number, out: string) => ({
      nodes: [
        { opType: 'Equal', input: [SHARED_PLAN, `${VIEW_PREFIX}plan${k}_index`], output: [`${VIEW_PREFIX}plan${k}_chosen`], name: `${VIEW_PREFIX}plan${k}_chosen` },
        {
          opType: 'If', input: [`${VIEW_PREFIX}plan${k}_chosen`], output: [out], name: `${VIEW_PREFIX}choose${k}`,
          attribute: [{ name: 'then_branch', type: GRAPH, g: branches[k].graph }, { name: 'else_branch', type: GRAPH, g: rest }],
        },
      ] as onnx.INodeProto[],
      inits: [{ name: `${VIEW_PREFIX}plan${k}_index`, dims: [1], dataType: 7, int64Data: [k] }] as onnx.ITensorProto[],
    });
    for (let k = branches.length - 2; k > 0; k--) {
      const out = `${VIEW_PREFIX}chosen${k}`;
      const { nodes, inits } = level(k, out);
      rest = { name: `${VIEW_PREFIX}after${k - 1}`, node: nodes, initializer: inits, output: [{ name: out }] };
    }
    const top = level(0, target);
    const planInput: onnx.IValueInfoProto = { name: SHARED_PLAN, type: { tensorType: { elemType: 7, shape: { dim: [{ dimValue: 1 }] } } } };
    return { nodes: top.nodes, inputs: [planInput, ...branches.flatMap((b) => b.inputs)], inits: [...top.inits, ...branches.flatMap((b) => b.inits)] };
  });
  if ('reason' in composed) return composed;
  return { ...composed, branches: branches.map((b) => ({ names: b.names, inputs: b.inputs })) };
}

/**
 * Ops whose weights (every input after the first: a Conv's kernel and bias, a MatMul's or Gemm's
 * second operand, which ONNX Runtime prepacks when constant) stay in a shared graph's branch
 * (branchOf). A MatMul's constant first operand (glass blur's band matrices) goes outside with
 * the rest: the same scores (bench/compare-reports.ts), and fewer pages touched than inside.
 */
const WEIGHTED = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);
/** ONNX's AttributeProto type GRAPH. */
const GRAPH = 5;

/**
 * A view graph as If branch k: every name it defines (inputs, initializers, node outputs, node
 * names) and its batch dimension get the prefix p<k>_ after VIEW_PREFIX, so that no two
 * branches' names meet; names it reads from the model (the post nodes' constants) stay.
 */
function branchOf(vg: ReturnType<typeof buildViewGraph>, k: number): { graph: onnx.IGraphProto; inits: onnx.ITensorProto[]; inputs: onnx.IValueInfoProto[]; names: Map<string, string> } {
  const defined = new Set<string>([...vg.inputs.map((i) => i.name!), ...vg.inits.map((t) => t.name!), ...vg.nodes.flatMap((n) => n.output ?? [])]);
  const prefixed = (name: string) => `${VIEW_PREFIX}p${k}_${name.startsWith(VIEW_PREFIX) ? name.slice(VIEW_PREFIX.length) : name}`;
  const r = (name: string) => (name && defined.has(name) ? prefixed(name) : name);
  const node = vg.nodes.map((n) => ({ ...n, ...(n.name ? { name: prefixed(n.name) } : {}), input: (n.input ?? []).map(r), output: (n.output ?? []).map(r) }));
  const initializer = vg.inits.map((t) => ({ ...t, name: r(t.name!) }));
  // weights stay in the branch, where ONNX Runtime's optimizers see them as its constants (the
  // same kernels as in a graph of its own); the rest (index maps, masks) go to the outer graph
  const weights = new Set(node.filter((n) => WEIGHTED.has(n.opType ?? '')).flatMap((n) => n.input.slice(1)));
  const inputs = vg.inputs.map((i): onnx.IValueInfoProto => {
    const t = i.type!.tensorType!;
    const dim = (t.shape?.dim ?? []).map((d) => (d.dimParam ? { dimParam: prefixed(d.dimParam) } : d));
    return { name: r(i.name!), type: { tensorType: { elemType: t.elemType, shape: { dim } } } };
  });
  return {
    graph: { name: `${VIEW_PREFIX}p${k}`, node, initializer: initializer.filter((t) => weights.has(t.name)), output: [{ name: r(vg.output) }] },
    inits: initializer.filter((t) => !weights.has(t.name)),
    inputs,
    names: new Map(vg.inputs.map((i) => [i.name!, r(i.name!)])),
  };
}

/** Elementwise ops prefixNodes may move into the view graph, and where the flowing tensor may be. */
const MOVABLE: Record<string, number[]> = { Mul: [0, 1], Add: [0, 1], Sub: [0], Div: [0], QuantizeLinear: [0], Cast: [0] };

/**
 * The elementwise nodes at the front of the model that the view graph can apply per group of
 * views (buildViewGraph's post): from the pixel input, each the only reader of the tensor before
 * it, one of MOVABLE with every other input a constant of rank ≤ 3 (a QuantizeLinear's scale
 * and zero point scalars: one per tensor, so the view axis cannot be mistaken for its axis), and
 * none of their outputs one the caller asked for. In practice model/pixels.ts's Mul and Add,
 * then a quantized model's QuantizeLinear. Undefined when there are none (exported for the tests).
 * `onSource`: no constant varies over rows or columns (its last two dimensions are 1), so the
 * nodes may also run on the view graph's source, larger than a view by the margin.
 */
export function prefixNodes(g: onnx.IGraphProto, pixel: string, features: string[] = []): { post: ViewPostNode[]; nodes: onnx.INodeProto[]; output: string; onSource: boolean } | undefined {
  const nodes = g.node ?? [];
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const outputs = new Set([...(g.output ?? []).map((o) => o.name ?? ''), ...features]);
  const post: ViewPostNode[] = [];
  const taken: onnx.INodeProto[] = [];
  let onSource = true;
  let cur = pixel;
  for (;;) {
    const readers = nodes.filter((n) => n.input?.includes(cur));
    if (readers.length !== 1) break;
    const n = readers[0];
    const at = n.input!.indexOf(cur);
    if ((n.domain ?? '') !== '' || !MOVABLE[n.opType ?? '']?.includes(at) || n.output?.length !== 1 || outputs.has(n.output[0])) break;
    if (n.input!.filter((i) => i === cur).length !== 1) break;
    const constsOk = n.input!.every((name, k) => {
      if (k === at) return true;
      const t = inits.get(name);
      if (!t) return false;
      const rank = (t.dims ?? []).length;
      return n.opType === 'QuantizeLinear' ? (t.dims ?? []).every((d) => toNum(d) === 1) : rank <= 3;
    });
    if (!constsOk) break;
    for (const [k, name] of n.input!.entries()) {
      const dims = k === at ? [] : (inits.get(name)!.dims ?? []).map(toNum);
      if (dims.slice(-2).some((d) => d !== 1)) onSource = false;
    }
    post.push({ opType: n.opType!, input: n.input!.map((name, k) => (k === at ? null : name)), attribute: n.attribute ?? [] });
    taken.push(n);
    cur = n.output[0];
  }
  return taken.length ? { post, nodes: taken, output: cur, onSource } : undefined;
}

/** IR version for the opset; initializers no longer listed as graph inputs (IR ≥ 4). */
function raiseIr(m: onnx.ModelProto, opset: number): void {
  const want = opset <= 11 ? 6 : 7;
  if (toNum(m.irVersion) < want) m.irVersion = want;
  const g = m.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  g.input = (g.input ?? []).filter((i) => !inits.has(i.name ?? ''));
}

class Runner implements ViewRunner {
  readonly views: number;
  readonly features: boolean;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly slots: ReturnType<typeof slotCounts>;
  /** The arrays a run's inputs are packed into when it has several sources, kept for the next run
   *  (runs go one after the other, and ORT is done with its inputs when run() returns): packed
   *  afresh, MNIST's corruption runs made 250 MB of new buffers an audit, each one zeroed, and
   *  collections that external memory drives. */
  private readonly packed = new Map<string, Packed>();
  private readonly pack: Pack = (key, len, make) => {
    let a = this.packed.get(key);
    if (a?.length !== len) this.packed.set(key, (a = make(len)));
    return a as ReturnType<typeof make>;
  };

  constructor(
    private readonly plan: ViewPlan,
    readonly sourcesPerRun: number,
    private readonly session: ort.InferenceSession,
    private readonly output: string,
    private readonly model: LoadedModel,
    readonly mode: 'composed' | 'standalone',
    readonly reason?: string,
    private readonly feature?: ViewFeatures,
    readonly modelSlices = 1,
    /** Set when the session is shared with other plans (declareViews): it is released with them. */
    private readonly branch?: SharedBranch,
  ) {
    this.features = mode === 'composed' && !!feature;
    this.views = plan.ops.length;
    this.slots = slotCounts(plan);
  }

  get shared(): boolean {
    return !!this.branch;
  }

  async release(): Promise<void> {
    await this.queue;
    if (!this.branch) await this.session.release().catch(() => undefined);
  }

  predict(sources: ViewSource[]): Promise<ViewPrediction> {
    const p = this.queue.then(() => this.runAll(sources));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async runAll(sources: ViewSource[]): Promise<ViewPrediction> {
    const K = this.model.info.numClasses;
    const rows = sources.length * this.views;
    const logits = new Float32Array(rows * K);
    const probs = new Float32Array(rows * K);
    let feats: { dims: number; data: Float32Array } | undefined;
    const step = balancedStep(sources.length, this.sourcesPerRun);
    for (let first = 0; first < sources.length; first += step) {
      const chunk = sources.slice(first, first + step);
      let feeds = feedsFor(this.plan, this.slots, chunk, this.pack);
      if (this.branch) {
        const { names, extra } = this.branch;
        feeds = Object.fromEntries(Object.entries(feeds).map(([name, t]) => [names.get(name) ?? name, t]));
        Object.assign(feeds, extra);
      }
      const r = chunk.length * this.views;
      if (this.mode === 'composed') {
        const tensor = this.features ? this.feature!.tensor : undefined;
        const out = await this.session.run(feeds, tensor ? [this.output, tensor] : [this.output], QUIET);
        copyRows(out[this.output], r * K, logits, first * this.views * K, this.output);
        if (tensor) {
          const t = out[tensor];
          const dims = t ? t.data.length / r : 0;
          if (!feats) feats = { dims, data: new Float32Array(rows * dims) };
          if (!t || dims !== feats.dims || !Number.isInteger(dims)) throw new Error(`feature tensor '${tensor}' has ${t?.data.length ?? 0} values for ${r} views`);
          featureValues(t, r * dims, feats.data, first * this.views * dims, tensor, this.feature!.quant);
        }
      } else {
        const out = await this.session.run(feeds, [this.output], QUIET);
        const { channels, height, width } = this.plan;
        const pred = await this.model.predict({ data: out[this.output].data as Float32Array, n: r, channels: channels as 1 | 3, height, width });
        logits.set(pred.logits, first * this.views * K);
        probs.set(pred.probs, first * this.views * K);
      }
    }
    if (this.mode === 'composed') toLogitsAndProbs(this.model.info.outputKind, logits, rows, K, probs);
    return { n: rows, numClasses: K, logits, probs, ...(feats ? { feats } : {}) };
  }
}

type Packed = Float32Array | Int32Array;
/** An array of `len` values for input `key`: a new one, or one an earlier run left (every value is written again). */
type Pack = <T extends Packed>(key: string, len: number, make: (len: number) => T) => T;
const fresh: Pack = (_key, len, make) => make(len);

/**
 * Whether an array lives in a SharedArrayBuffer (the views workers' inputs, views/workers.ts).
 * onnxruntime-node takes no tensor over shared memory ("Invalid argument"), so such an input is
 * copied into a packed array even when it is a run's only source (~2 ms for an ImageNet image's
 * 38 MB; a run of several sources copies anyway).
 */
const shared = (a: ArrayBufferView): boolean => a.buffer instanceof SharedArrayBuffer;

/** The session inputs for a run of sources, packed into arrays from `pack` (exported for the tests). */
export function feedsFor(plan: ViewPlan, slots: ReturnType<typeof slotCounts>, chunk: ViewSource[], pack: Pack = fresh): Record<string, ort.Tensor> {
  const { channels: C, height: H, width: W, margin: m } = plan;
  const n = chunk.length;
  const per = C * (H + 2 * m) * (W + 2 * m);
  const plane = C * H * W;
  const src = n === 1 ? chunk[0].source.data : pack('src', n * per, (k) => new Float32Array(k));
  chunk.forEach((s, i) => {
    if (s.source.channels !== C || s.source.height !== H + 2 * m || s.source.width !== W + 2 * m) {
      throw new RangeError(`views: source ${i} is ${s.source.channels}×${s.source.height}×${s.source.width}, the plan reads ${C}×${H + 2 * m}×${W + 2 * m}`);
    }
    if (n > 1) src.set(s.source.data, i * per);
  });
  const feeds: Record<string, ort.Tensor> = { [VIEW_INPUT.src]: new ort.Tensor('float32', src.subarray(0, n * per), [n, C, H + 2 * m, W + 2 * m]) };
  const { embed, noise, given } = slots;
  if (embed) {
    const e = pack('embed', n * embed * 2, (k) => new Int32Array(k));
    chunk.forEach((s, i) => {
      const v = s.inputs?.embed;
      if (!v || v.length < embed * 2) throw new RangeError(`views: source ${i} needs ${embed} embed positions`);
      for (let j = 0; j < embed * 2; j++) e[i * embed * 2 + j] = v[j];
    });
    feeds[VIEW_INPUT.embed] = new ort.Tensor('int32', e, [n, embed, 2]);
  }
  const floats = (name: 'noise' | 'given', count: number) => {
    if (!count) return;
    const pairs = name === 'noise' ? 2 : 1;
    const len = count * plane * pairs;
    const one = n === 1 ? chunk[0].inputs?.[name] : undefined;
    const data = one && one.length === len && !shared(one) ? one : pack(name, n * len, (k) => new Float32Array(k));
    if (data !== one) {
      chunk.forEach((s, i) => {
        const v = s.inputs?.[name];
        if (!v || v.length !== len) throw new RangeError(`views: source ${i} needs ${count} ${name} planes of ${plane * pairs} values`);
        data.set(v, i * len);
      });
    }
    feeds[VIEW_INPUT[name]] = new ort.Tensor('float32', data, name === 'noise' ? [n, count, C, H, W, 2] : [n, count, C, H, W]);
  };
  if (slots.perm) {
    const e = pack('perm', n * slots.perm, (k) => new Int32Array(k));
    chunk.forEach((s, i) => {
      const v = s.inputs?.perm;
      if (!v || v.length !== slots.perm) throw new RangeError(`views: source ${i} needs ${slots.perm} permutation entries`);
      for (let j = 0; j < slots.perm; j++) e[i * slots.perm + j] = v[j];
    });
    feeds[VIEW_INPUT.perm] = new ort.Tensor('int32', e, [n, slots.perm]);
  }
  floats('noise', noise);
  floats('given', given);
  // views/imagenet-c.ts's inputs: fog's and frost's layers, glass blur's and elastic's planes
  const c = imagenetCSlots(plan);
  const planes = <T extends Float32Array | Int32Array>(key: 'layer' | 'index' | 'weight', count: number, per: number, make: (n: number) => T) => {
    if (!count) return;
    const len = count * per;
    const one = n === 1 ? (chunk[0].inputs?.[key] as T | undefined) : undefined;
    const data = one && one.length === len && !shared(one) ? one : pack(key, n * len, make);
    if (data !== one) {
      chunk.forEach((s, i) => {
        const v = s.inputs?.[key];
        if (!v || v.length !== len) throw new RangeError(`views: source ${i} needs ${count} ${key} planes of ${per} values`);
        data.set(v, i * len);
      });
    }
    const dims = key === 'layer' ? [n, count, C, H, W] : [n, count, H * W];
    feeds[VIEW_INPUT_C[key]] = new ort.Tensor(key === 'index' ? 'int32' : 'float32', data, dims);
  };
  planes('layer', c.layer, plane, (k) => new Float32Array(k));
  planes('index', c.index, H * W, (k) => new Int32Array(k));
  planes('weight', c.weight, H * W, (k) => new Float32Array(k));
  return feeds;
}

const alone = new Map<string, Promise<{ session: ort.InferenceSession; output: string }>>();

/**
 * The views themselves ([sources·views, C, H, W], image-major), from the plan's graph alone on the
 * CPU: for artifacts a person looks at and for the tests, not for the model. With `kernels`, the
 * graph a provider with those kernels runs (ViewGraphOptions; the tests: WebGPU's).
 */
export async function makeViews(plan: ViewPlan, sources: ViewSource[], kernels?: ViewKernels): Promise<Float32Array> {
  const one = sources.length === 1;
  const key = `${planKey(plan)}|${one}|${kernels ? `${kernels.float64}|${kernels.sum}` : ''}`;
  let s = alone.get(key);
  if (!s) {
    s = standaloneSession(plan, one, kernels);
    alone.set(key, s);
    s.catch(() => alone.delete(key));
  }
  return viewsOfRun(await s, plan, sources);
}

/**
 * makeViews for one source at a time, as images, with a session of its own that the caller
 * releases: for a probe's gallery, which makes the views of a few images once per audit (a daemon
 * that kept one per plan and size would keep them for good).
 */
export async function viewMaker(plan: ViewPlan): Promise<{ views(source: ViewSource): Promise<PixelImage[]>; release(): Promise<void> }> {
  const s = await standaloneSession(plan, true);
  const { channels, height, width } = plan;
  const size = channels * height * width;
  return {
    async views(source) {
      const data = await viewsOfRun(s, plan, [source]);
      return plan.ops.map((_, k) => ({ data: data.subarray(k * size, (k + 1) * size), channels: channels as 1 | 3, height, width }));
    },
    release: () => s.session.release(),
  };
}

function standaloneSession(plan: ViewPlan, one: boolean, kernels?: ViewKernels): Promise<{ session: ort.InferenceSession; output: string }> {
  const built = standaloneViewModel(plan, 13, one, kernels);
  return createOn(built.bytes, 'cpu', 'view graph').then((session) => ({ session, output: built.output }));
}

async function viewsOfRun({ session, output }: { session: ort.InferenceSession; output: string }, plan: ViewPlan, sources: ViewSource[]): Promise<Float32Array> {
  const feeds = feedsFor(plan, slotCounts(plan), sources);
  const out = await session.run(feeds, [output], QUIET);
  return out[output].data as Float32Array;
}
