/**
 * The daemon's worker process: runs the engine (ONNX Runtime, sharp) for the daemon, which
 * starts it with child_process.fork and talks to it over the Node IPC channel (messages typed
 * in protocol.ts: DaemonToWorker / WorkerToDaemon).
 *
 * A separate process, not a worker thread: a native crash inside ONNX Runtime or libvips (an
 * abort, a segfault, running out of memory) takes down only this process, and the daemon turns
 * it into a clear error; a cancelled audit that does not stop in time can be killed outright,
 * which frees its (GPU) memory at once. The price, a process start (~0.1 s), is small next to
 * loading a model.
 *
 * Jobs: `audit` (load the model, or take the one kept from the last audit of it (kept-model.ts),
 * open the dataset, run the probes, write report.json; one at a time), `describe` (the probe
 * catalog) and `inspect` (a model's input, read statically from the graph without creating a
 * session). Several jobs can be in flight: an inspect answers while an audit awaits ONNX Runtime.
 */
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkRegularFile, MAX_MODEL_BYTES } from './engine/fs/files';
import type { AuditProgress } from './engine/audit';
import { openDataset } from './engine/data';
import { SkepticInputError } from './engine/errors';
import { loadModel, setCpuThreads, type LoadModelOptions } from './engine/model';
import { cpuBudget } from './engine/model/threads';
import { planInput, introspect } from './engine/model/introspect';
import { decodeModel } from './engine/model/onnx';
import { hfInputSize, readHfConfig } from './engine/model/preprocess';
import { createProbes, DEFAULT_PROBES } from './engine/probes';
import { writeReport } from './engine/report/write';
import { auditInLanes, describePlan, laneBytes, lanePlan } from './engine/shard/lanes';
import type { OutputKind } from './engine/types';
import { describeProbes } from './daemon/catalog';
import { modelKey, ModelKeeper } from './kept-model';
import type { AuditJob, AuditJobResult, DaemonToWorker, JobProgress, ModelInput, WorkerError, WorkerToDaemon } from './protocol';

/** Progress messages are sent at most this often (ms), and on every phase change. */
const PROGRESS_INTERVAL = 100;

const controllers = new Map<number, AbortController>();

/**
 * How long the last audited model stays loaded for the next audit of it (kept-model.ts):
 * SKEPTIC_KEEP_MODEL_S seconds, 0 to load it for every audit; two minutes by default.
 */
function keepMs(env: string | undefined): number {
  const s = env === undefined || env.trim() === '' ? 120 : Number(env);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : 120_000;
}
const keeper = new ModelKeeper<Awaited<ReturnType<typeof loadModel>>>(keepMs(process.env.SKEPTIC_KEEP_MODEL_S));

function send(msg: WorkerToDaemon): void {
  process.send?.(msg);
}

function toWorkerError(e: unknown): WorkerError {
  const err = e instanceof Error ? e : new Error(String(e));
  const out: WorkerError = { name: err.name, message: err.message };
  if (e instanceof SkepticInputError) {
    if (e.file) out.file = e.file;
    if (e.line !== undefined) out.line = e.line;
  }
  return out;
}

async function runAudit(id: number, job: AuditJob): Promise<AuditJobResult> {
  const controller = new AbortController();
  controllers.set(id, controller);
  try {
    // Probes first: a bad probe name or parameter fails before the model loads.
    const probes = createProbes(job.probes ?? DEFAULT_PROBES, job.params);
    // More threads than CPUs only adds contention (1000 made a 1.5 s audit take 30 s).
    const threads = job.threads === undefined ? undefined : Math.max(1, Math.min(job.threads, cpuBudget()));
    setCpuThreads(threads);
    const options: LoadModelOptions = {
      device: job.device,
      preprocess: job.preprocess,
      preprocessSource: 'skeptic.json',
      labels: job.labels,
      outputKind: job.outputKind as OutputKind | undefined,
      batchSize: job.batchSize,
    };
    // the previous audit's model when nothing it was loaded from has changed (kept-model.ts)
    const key = modelKey(job.model, { ...options, threads }, job.labels);
    const kept = await keeper.take(key);
    // timed after take(): disposing another kept model is not this model's loading
    const t0 = Date.now();
    const model = kept ?? (await loadModel(job.model, options));
    // a line of the daemon's log (Skeptic: Show Log)
    console.log(kept ? `model ${job.model}: kept from the last audit` : `model ${job.model}: loaded in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
    let keep = false;
    try {
      let last = 0;
      let lastKey = '';
      const onProgress = (p: AuditProgress) => {
        const now = Date.now();
        const key = `${p.phase}/${p.probe ?? ''}`;
        // Steps inside a phase (p.step) are throttled like image counts.
        if (key === lastKey && now - last < PROGRESS_INTERVAL && (p.done < p.total || p.step !== undefined)) return;
        last = now;
        lastKey = key;
        const progress: JobProgress = { done: p.done, total: p.total, phase: p.phase, cacheHits: p.cacheHits };
        if (p.probe) progress.probe = p.probe;
        if (p.step) progress.step = p.step;
        send({ type: 'progress', id, progress });
      };
      // a large manifest takes seconds to list: its progress shows in the editor too
      const dataset = await openDataset(job.dataset, {
        labels: model.labels,
        numClasses: model.info.numClasses,
        limit: job.limit,
        seed: job.seed,
        followSymlinks: job.followSymlinks,
        onProgress: (p) => onProgress({ ...p, phase: 'listing', cacheHits: 0 }),
      });
      // on many cores, the per-image work in lanes (engine/shard/lanes.ts); they load the model
      // themselves, and this process's (kept or not) serves the merge
      const plan = lanePlan(job.lanes ?? 'auto', { device: model.device.used, images: dataset.records.length, laneBytes: laneBytes(statSync(job.model).size), threads });
      if (plan.lanes > 1) console.log(`audit in ${describePlan(plan)}`);
      const report = await auditInLanes(model, dataset, {
        probes,
        seed: job.seed,
        batchSize: job.batchSize,
        limit: job.limit,
        signal: controller.signal,
        onProgress,
        cacheDir: job.cacheDir,
        outDir: job.outDir,
        baseDir: job.baseDir,
        plan,
        open: { modelPath: job.model, modelOptions: { ...options }, dataPath: job.dataset, datasetOptions: {}, probes: job.probes ?? DEFAULT_PROBES, params: job.params, baseDir: job.baseDir },
        followSymlinks: job.followSymlinks,
      });
      await writeReport(report, job.outDir, ['json']);
      keep = !report.run.cancelled;
      return { reportFile: join(job.outDir, 'report.json'), cancelled: report.run.cancelled };
    } finally {
      // a failed or cancelled audit may have left work behind in the model's sessions and workers
      if (keep) await keeper.keep(key, model);
      else await model.dispose();
    }
  } finally {
    controllers.delete(id);
  }
}

async function inspect(file: string): Promise<ModelInput> {
  checkRegularFile(file, 'model', MAX_MODEL_BYTES);
  const proto = decodeModel(await readFile(file), file);
  const intro = introspect(proto);
  if (intro.inputs.length !== 1) {
    throw new SkepticInputError(`${file}: the model has ${intro.inputs.length} inputs; Skeptic audits single-input image classifiers`, file);
  }
  const hf = readHfConfig(file);
  const plan = planInput(file, intro.inputs[0], hf ? hfInputSize(hf) : undefined);
  return { layout: plan.layout, channels: plan.channels, height: plan.height, width: plan.width, input: intro.inputs[0], outputs: intro.outputs };
}

async function handle(msg: DaemonToWorker): Promise<void> {
  if (msg.type === 'cancel') {
    controllers.get(msg.id)?.abort();
    return;
  }
  try {
    const value = msg.type === 'audit' ? await runAudit(msg.id, msg.job) : msg.type === 'describe' ? describeProbes() : await inspect(msg.model);
    send({ type: 'result', id: msg.id, value });
  } catch (e) {
    send({ type: 'error', id: msg.id, error: toWorkerError(e) });
  }
}

if (!process.send) {
  console.error('skeptic worker: start me with child_process.fork (I need an IPC channel)');
  process.exit(2);
}
process.on('message', (msg: DaemonToWorker) => void handle(msg));
// The daemon went away (or closed the channel to stop us): nothing left to work for.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
