/**
 * loadModel: reads an ONNX image classifier, works out how to feed it (layout, size, batch,
 * preprocessing), which output holds the class scores and what kind they are, and returns a
 * LoadedModel whose predict() runs pixel-space batches. describeModel (describe.ts) prints what
 * was found.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type {
  DecodeSpec, DeviceChoice, DeviceInfo, LoadedModel, ModelInfo, OutputKind, PixelBatch, Prediction,
  Preprocessing,
} from '../types';
import { SkepticInputError } from '../errors';
import { checkRegularFile, MAX_MODEL_BYTES } from '../fs/files';
import { decodeModel, encodeModel, inlineExternalData } from './onnx';
import { feedDims, graphOutputKind, introspect, planInput, type InputPlan } from './introspect';
import { createOn, createSession, webgpuMisfit, type Provider } from './providers';
import { cpuThreads } from './threads';
import { maxAbsDiff } from './batch';
import { hfInputSize, readHfConfig, resolvePreprocessing, type PreprocessOverride } from './preprocess';
import { readTimmConfig, timmInputSize } from './timm';
import { resolveLabels } from './labels';
import { classesOf, consistentWith, detectKind, toLogitsAndProbs } from './output';
import { copyRows, Runner, runModel, type Mode } from './runner';
import { releaseViews } from '../views/session';
import { uniforms } from '../random';

export { PRESETS, type PreprocessOverride } from './preprocess';
export { describeModel } from './describe';
export { cpuThreads, setCpuThreads } from './threads';

export interface LoadModelOptions {
  /** Default 'auto'. */
  device?: DeviceChoice;
  /** Preset name, JSON string, or object; from CLI flags or skeptic.json. */
  preprocess?: string | PreprocessOverride;
  /** Default 'cli'. */
  preprocessSource?: 'cli' | 'skeptic.json';
  /** How messages name where the preprocessing was written (the skeptic.json file and key). */
  preprocessWhere?: string;
  /** Labels file path. */
  labels?: string;
  /** Overrides output-kind detection. */
  outputKind?: OutputKind;
  /** Largest batch passed to session.run (default 32). */
  batchSize?: number;
}

const DEVICES: DeviceChoice[] = ['auto', 'cpu', 'webgpu', 'cuda'];
const KINDS: OutputKind[] = ['logits', 'probabilities', 'log-probabilities'];
/** Input element types we convert to from the float32 tensor; others are refused. */
const INPUT_TYPES = ['float32', 'float16', 'float64', 'uint8'];
/** Images in the probe batch (output choice, numeric kind detection, batch-patch verification). */
const PROBE = 3;
/** Batch-patch tolerance: max |diff| ≤ 1e-4 · max(1, max |output|). */
const PATCH_TOL = 1e-4;
/** Largest input fed: a side, and values per image (3×4096×4096 fits). */
const MAX_INPUT_SIDE = 8192;
const MAX_INPUT_ELEMENTS = 3 * 4096 * 4096;

/** Deterministic probe inputs (mulberry32): the same model gives the same decisions. */
function seededPixels(len: number, seed: number): Float32Array {
  return uniforms(seed, len) as Float32Array;
}

/** A friendly reading of the file: SkepticInputError naming it when it cannot be read. */
async function readModelFile(file: string): Promise<Buffer> {
  // Only a regular file within protobuf's 2 GB: a FIFO would block forever, /dev/zero fill memory.
  checkRegularFile(file, 'model', MAX_MODEL_BYTES);
  try {
    const bytes = await readFile(file);
    if (bytes.length === 0) throw new SkepticInputError(`${file}: the file is empty, not an ONNX model`, file);
    return bytes;
  } catch (e) {
    if (e instanceof SkepticInputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not an .onnx file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new SkepticInputError(`${file}: cannot read the model (${why})`, file);
  }
}

function validateOptions(o: LoadModelOptions): void {
  if (o.device !== undefined && !DEVICES.includes(o.device)) {
    throw new SkepticInputError(`--device: unknown device '${String(o.device)}' (${DEVICES.join(', ')})`);
  }
  if (o.outputKind !== undefined && !KINDS.includes(o.outputKind)) {
    throw new SkepticInputError(`--output-kind: unknown kind '${String(o.outputKind)}' (${KINDS.join(', ')})`);
  }
  if (o.batchSize !== undefined && !(Number.isInteger(o.batchSize) && o.batchSize >= 1)) {
    throw new SkepticInputError(`--batch-size: expected a positive integer, got ${String(o.batchSize)}`);
  }
}

export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  validateOptions(opts);
  const file = resolve(path);
  const fileBytes = await readModelFile(file);
  const sha256 = createHash('sha256').update(fileBytes).digest('hex');
  const proto = decodeModel(fileBytes, file);
  const intro = introspect(proto);
  const warnings: string[] = [];
  // Weights in external files are inlined: ORT cannot resolve them for a model given as bytes.
  const inlined = inlineExternalData(proto, file);
  const bytes = inlined ? encodeModel(proto) : fileBytes;
  if (inlined) warnings.push(`${inlined} tensors are stored in external data files; they were read into memory (sha256 covers the .onnx file only)`);

  // ---- input
  if (intro.inputs.length !== 1) {
    const names = intro.inputs.map((i) => `'${i.name}' [${i.shape.join(',')}]`).join(', ');
    throw new SkepticInputError(
      `${file}: the model has ${intro.inputs.length} inputs${names ? ` (${names})` : ''}; Skeptic audits single-input image classifiers`,
      file,
    );
  }
  const hf = readHfConfig(file);
  const timm = hf ? undefined : readTimmConfig(file);
  const plan = planInput(file, intro.inputs[0], hf ? hfInputSize(hf) : timm ? timmInputSize(timm) : undefined);
  // A declared (or preprocessor_config.json) size like 100000×100000 would ask for a 90-billion
  // element buffer; refuse it with the numbers instead of failing inside a typed array.
  if (plan.height > MAX_INPUT_SIDE || plan.width > MAX_INPUT_SIDE || plan.channels * plan.height * plan.width > MAX_INPUT_ELEMENTS) {
    throw new SkepticInputError(
      `${file}: input '${plan.name}' is ${plan.channels}×${plan.height}×${plan.width}${plan.sizeAssumed && (hf ?? timm) ? ` (size from ${(hf ?? timm)!.file})` : ''}; ` +
        `Skeptic feeds images up to ${MAX_INPUT_SIDE} pixels a side and ${MAX_INPUT_ELEMENTS / 2 ** 20}M values`,
      file,
    );
  }
  if (!INPUT_TYPES.includes(plan.type)) {
    throw new SkepticInputError(
      `${file}: input '${plan.name}' has element type ${plan.type}; Skeptic feeds ${INPUT_TYPES.join(', ')} (converted from float32)`,
      file,
    );
  }
  if (plan.sizeAssumed) {
    warnings.push(`input '${plan.name}' has a symbolic height and width; feeding ${plan.width}×${plan.height}${hf ? ` (from ${hf.file})` : timm && timmInputSize(timm) ? ` (from ${timm.file})` : ' (assumed; add a preprocessor_config.json with crop_size to change it)'}`);
  }
  if (plan.layout === 'flat' && plan.channels === 3) {
    warnings.push(`input '${plan.name}' is a flattened RGB vector; assuming channel-planar (CHW) order, as PyTorch's flatten of an NCHW image`);
  }

  // ---- preprocessing
  const preprocessing = resolvePreprocessing(
    {
      file, channels: plan.channels, height: plan.height, width: plan.width, metadata: intro.metadata,
      preprocess: opts.preprocess, preprocessSource: opts.preprocessSource, preprocessWhere: opts.preprocessWhere, hf, timm, inputType: plan.type,
    },
    warnings,
  );

  // ---- session and execution provider
  const requested = opts.device ?? 'auto';
  const batchSize = opts.batchSize ?? 32;
  const declared = plan.declaredBatch;
  // A fixed batch of 1 is first run unoptimised: that session only serves the probe and the
  // patch check, and is replaced by the optimised patched copy (optimising twice cost ~4 s on
  // ResNet-50).
  const wantPatch = plan.batchAxis === 0 && declared === 1;
  const base = runModel(bytes, file, plan, preprocessing, intro.opset, false);
  const againstWebgpu = webgpuMisfit(intro.opHistogram);
  const created = await createSession(base.bytes, requested, file, wantPatch ? 'disabled' : 'all', true, againstWebgpu ? { webgpu: againstWebgpu } : {});
  const threads = cpuThreads();
  const device: DeviceInfo = { requested, used: created.used, fallbacks: created.fallbacks, ...(threads ? { threads } : {}) };
  if (requested !== 'auto' && created.used !== requested) {
    warnings.push(`${requested} was requested but could not start; running on ${created.used} (${created.fallbacks.join('; ')})`);
  }
  if (created.used === 'webgpu' && againstWebgpu) warnings.push(`running on webgpu as asked, but ${againstWebgpu}; --device cpu may be faster`);
  let mode: Mode;
  if (plan.batchAxis < 0 || declared === 1) mode = { kind: 'single' };
  else if (typeof declared === 'number' && declared > 1) mode = { kind: 'fixed', size: declared };
  else mode = { kind: 'dynamic', max: batchSize };
  let runner = new Runner(created.session, plan, mode, base.feed);

  try {
    // ---- probe: choose the output, learn K, detect the kind numerically
    const per = plan.channels * plan.height * plan.width;
    const probe = seededPixels(PROBE * per, 0x5eed);
    const outNames = created.session.outputNames;
    let probed: Probed;
    let batchedFailure: string | undefined;
    try {
      probed = await probeOutputs(runner, probe, outNames);
    } catch (e) {
      if (mode.kind !== 'dynamic') {
        throw new SkepticInputError(`${file}: running the model on a ${feedDims(plan, mode.kind === 'fixed' ? mode.size : 1).join('×')} input failed (${(e as Error).message.split('\n')[0]})`, file);
      }
      // Declared dynamic but batch 1 baked in somewhere (a traced view(1,-1)...): run singly, then
      // try the same Reshape rewrite as for a declared batch of 1.
      batchedFailure = (e as Error).message.split('\n')[0];
      mode = { kind: 'single' };
      runner = new Runner(created.session, plan, mode, base.feed);
      probed = await probeOutputs(runner, probe, outNames).catch((e2: unknown) => {
        throw new SkepticInputError(`${file}: running the model on a ${feedDims(plan, 1).join('×')} input failed (${(e2 as Error).message.split('\n')[0]})`, file);
      });
    }
    const { rows, outName } = probed;
    if (outName === undefined) {
      const list = intro.outputs.map((o) => `'${o.name}' ${o.type} [${o.shape.join(',')}]`).join(', ');
      throw new SkepticInputError(`${file}: no output looks like class scores ([N,K] with K ≥ 2): ${list}`, file);
    }
    const { K: numClasses, data: probeOut, dims: probeDims } = rows.get(outName)!;
    const nonFinite = probeOut.reduce((n, v) => n + (Number.isFinite(v) ? 0 : 1), 0);
    if (nonFinite) warnings.push(`the model output ${nonFinite} non-finite values (NaN or ±Inf) of ${probeOut.length} on ${PROBE} test inputs: its scores cannot be trusted`);
    if (outNames.length > 1) {
      warnings.push(`the model has ${outNames.length} outputs (${outNames.join(', ')}); using '${outName}' [${probeDims.join(',')}] as the class scores`);
    }

    // ---- output kind: override > graph (checked against the numbers) > numeric
    let outputKind: OutputKind;
    let outputKindSource: ModelInfo['outputKindSource'];
    const g = graphOutputKind(proto, outName);
    if (opts.outputKind) {
      outputKind = opts.outputKind;
      outputKindSource = 'override';
    } else if (g.kind && consistentWith(g.kind, probeOut, PROBE, numClasses)) {
      outputKind = g.kind;
      outputKindSource = 'graph';
    } else {
      outputKind = detectKind(probeOut, PROBE, numClasses);
      outputKindSource = 'numeric';
      if (g.kind) warnings.push(`the output comes from ${g.op}, but its rows are not ${g.kind}; treating it as ${outputKind}`);
    }

    // ---- fixed batch of 1: try a verified symbolic-batch copy
    let patched = false;
    if (wantPatch || batchedFailure) {
      const outInfo = intro.outputs.find((o) => o.name === outName);
      const outHasBatch = (outInfo?.shape.length ?? 0) >= 2 && probeDims.length >= 2;
      const r: PatchOutcome = outHasBatch
        ? await tryPatch(bytes, file, plan, preprocessing, intro.opset, created.used, batchSize, probe, outName, numClasses, probeOut)
        : { ok: false, reason: `output '${outName}' has no batch axis` };
      if (wantPatch || r.ok) await runner.session.release();
      const said = batchedFailure
        ? `the model declares a batch of ${declared} but fails on a batch of ${PROBE} (${batchedFailure})`
        : 'the model declares a fixed batch of 1';
      if (r.ok) {
        runner = r.runner;
        mode = runner.mode;
        patched = true;
        warnings.push(`${said}; running a copy with a symbolic batch (${r.changes.join('; ') || 'input/output dims only'}), verified equal to one-at-a-time runs (max |diff| ${r.diff.toExponential(1)})`);
      } else {
        // the probe session was unoptimised when a patch was planned; the batched-failure one is not
        runner = new Runner(wantPatch ? await createOn(base.bytes, created.used, file) : created.session, plan, mode, base.feed);
        warnings.push(`${said} and could not be run batched (${r.reason}); running one image per session.run (slower)`);
      }
    } else if (mode.kind === 'single') {
      warnings.push(`input '${plan.name}' has no batch axis; running one image per session.run`);
    }

    const labels = resolveLabels(file, intro.metadata, opts.labels);
    if (labels && labels.names.length !== numClasses) {
      warnings.push(`${labels.names.length} labels (from ${labels.source}) but the model has ${numClasses} classes`);
    }

    const info: ModelInfo = {
      inputs: intro.inputs,
      outputs: intro.outputs,
      layout: plan.layout,
      channels: plan.channels,
      height: plan.height,
      width: plan.width,
      numClasses,
      outputKind,
      outputKindSource,
      opset: intro.opset,
      producer: intro.producer,
      opHistogram: intro.opHistogram,
      quantized: intro.quantized,
      batch: {
        declared,
        effective: mode.kind === 'dynamic' ? 'dynamic' : mode.kind === 'fixed' ? mode.size : 1,
        patched,
      },
      metadata: intro.metadata,
    };
    return new Model(file, sha256, info, preprocessing, labels, device, warnings, runner, outName);
  } catch (e) {
    await runner.session.release().catch(() => undefined);
    throw e;
  }
}

interface Probed {
  rows: Map<string, { K: number; data: Float32Array; dims: readonly number[] }>;
  /** The first output with one row of K ≥ 2 scores per image. */
  outName?: string;
}

/**
 * Runs the PROBE images and keeps, per output that looks like [N,K], its rows. Throws when a run
 * fails, or when the batched runs give no such output (a [1,K] answer to a batch of 3).
 */
async function probeOutputs(runner: Runner, probe: Float32Array, outNames: readonly string[]): Promise<Probed> {
  const rows: Probed['rows'] = new Map();
  const bad = new Set<string>();
  const seen = new Map<string, readonly number[]>();
  for (let first = 0; first < PROBE; first += runner.step) {
    const m = Math.min(runner.step, PROBE - first);
    const { out, rows: runRows } = await runner.run(probe, first, m);
    for (const name of outNames) {
      const t = out[name];
      if (t) seen.set(name, t.dims);
      const K = t && t.type.startsWith('float') ? classesOf(t.dims, runRows) : undefined;
      if (bad.has(name) || K === undefined || (rows.has(name) && rows.get(name)!.K !== K)) {
        bad.add(name);
        continue;
      }
      if (!rows.has(name)) rows.set(name, { K, data: new Float32Array(PROBE * K), dims: t.dims });
      copyRows(t, m * K, rows.get(name)!.data, first * K, name);
    }
  }
  const outName = outNames.find((n) => !bad.has(n) && rows.get(n)!.K >= 2);
  if (outName === undefined && runner.mode.kind === 'dynamic') {
    const shapes = outNames.map((n) => `${n} [${[...(seen.get(n) ?? [])].join(',')}]`).join(', ');
    throw new Error(`no output has one row per image (${shapes})`);
  }
  return { rows, outName };
}

type PatchOutcome = { ok: true; runner: Runner; changes: string[]; diff: number } | { ok: false; reason: string };

/** Rewrites the batch to symbolic, then checks a batch of PROBE against the one-at-a-time outputs. */
async function tryPatch(
  bytes: Uint8Array, file: string, plan: InputPlan, pre: Preprocessing, opset: number, ep: Provider, batchSize: number,
  probe: Float32Array, outName: string, K: number, expected: Float32Array,
): Promise<PatchOutcome> {
  let rewritten;
  try {
    rewritten = runModel(bytes, file, plan, pre, opset, true);
  } catch (e) {
    return { ok: false, reason: `rewrite failed: ${(e as Error).message}` };
  }
  if (!rewritten.patch?.ok) return { ok: false, reason: rewritten.patch?.reason ?? 'rewrite failed' };
  const changes = rewritten.patch.changes;
  let session: ort.InferenceSession;
  try {
    session = await createOn(rewritten.bytes, ep, file);
  } catch (e) {
    return { ok: false, reason: `the rewritten model does not load: ${(e as Error).message}` };
  }
  const runner = new Runner(session, plan, { kind: 'dynamic', max: batchSize }, rewritten.feed);
  try {
    const got = new Float32Array(PROBE * K);
    await runner.gather(probe, PROBE, outName, K, got);
    const { diff, scale } = maxAbsDiff(got, expected);
    if (!(diff <= PATCH_TOL * Math.max(1, scale))) {
      throw new Error(`batched outputs differ from one-at-a-time runs by up to ${diff.toExponential(2)}`);
    }
    return { ok: true, runner, changes, diff };
  } catch (e) {
    await session.release().catch(() => undefined);
    return { ok: false, reason: (e as Error).message.split('\n')[0] };
  }
}

class Model implements LoadedModel {
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(
    readonly path: string,
    readonly sha256: string,
    readonly info: ModelInfo,
    readonly preprocessing: Preprocessing,
    readonly labels: LoadedModel['labels'],
    readonly device: DeviceInfo,
    readonly warnings: string[],
    private readonly runner: Runner,
    private readonly outName: string,
  ) {}

  get outputName(): string {
    return this.outName;
  }

  decodeSpec(margin = 0): DecodeSpec {
    const spec: DecodeSpec = { channels: this.info.channels, height: this.info.height, width: this.info.width, margin };
    if (this.preprocessing.resizeShortSide !== undefined) spec.resizeShortSide = this.preprocessing.resizeShortSide;
    if (this.preprocessing.interpolation !== undefined) spec.interpolation = this.preprocessing.interpolation;
    if (this.preprocessing.resampler !== undefined && this.preprocessing.resampler !== 'pil') spec.resampler = this.preprocessing.resampler;
    if (this.preprocessing.cropRounding === 'floor') spec.cropRounding = 'floor';
    return spec;
  }

  predict(batch: PixelBatch): Promise<Prediction> {
    const { channels, height, width, numClasses } = this.info;
    if (this.disposed) return Promise.reject(new Error('predict() after dispose()'));
    if (batch.channels !== channels || batch.height !== height || batch.width !== width) {
      return Promise.reject(new Error(
        `predict: got ${batch.channels}×${batch.height}×${batch.width} images; the model takes ${channels}×${height}×${width} (decode with decodeSpec())`,
      ));
    }
    const per = channels * height * width;
    if (batch.data.length < batch.n * per) {
      return Promise.reject(new Error(`predict: data holds ${batch.data.length} values, expected ${batch.n}×${per}`));
    }
    // One batch at a time: the runner's buffers are shared.
    const p = this.queue.then(async () => {
      const n = batch.n;
      const logits = new Float32Array(n * numClasses);
      const probs = new Float32Array(n * numClasses);
      await this.runner.gather(batch.data, n, this.outName, numClasses, logits);
      toLogitsAndProbs(this.info.outputKind, logits, n, numClasses, probs);
      return { n, numClasses, logits, probs };
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue;
    await releaseViews(this);
    await this.runner.session.release();
  }
}
