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
 * Jobs: `audit` (load the model, open the dataset, run the probes, write report.json; one at a
 * time), `describe` (the probe catalog) and `inspect` (a model's input, read statically from the
 * graph without creating a session). Several jobs can be in flight: an inspect answers while an
 * audit awaits ONNX Runtime.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { checkRegularFile, MAX_MODEL_BYTES } from './engine/fs/files';
import { audit, type AuditProgress } from './engine/audit';
import { openDataset } from './engine/data';
import { SkepticInputError } from './engine/errors';
import { loadModel, setCpuThreads } from './engine/model';
import { planInput, introspect } from './engine/model/introspect';
import { decodeModel } from './engine/model/onnx';
import { hfInputSize, readHfConfig } from './engine/model/preprocess';
import { createProbes, DEFAULT_PROBES } from './engine/probes';
import { writeReport } from './engine/report/write';
import type { OutputKind } from './engine/types';
import { describeProbes } from './daemon/catalog';
import type { AuditJob, AuditJobResult, DaemonToWorker, JobProgress, ModelInput, WorkerError, WorkerToDaemon } from './protocol';

/** Progress messages are sent at most this often (ms), and on every phase change. */
const PROGRESS_INTERVAL = 100;

const controllers = new Map<number, AbortController>();

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
    setCpuThreads(job.threads === undefined ? undefined : Math.max(1, Math.min(job.threads, availableParallelism())));
    const model = await loadModel(job.model, {
      device: job.device,
      preprocess: job.preprocess,
      preprocessSource: 'skeptic.json',
      labels: job.labels,
      outputKind: job.outputKind as OutputKind | undefined,
      batchSize: job.batchSize,
    });
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
      const report = await audit(model, dataset, {
        probes,
        seed: job.seed,
        batchSize: job.batchSize,
        limit: job.limit,
        signal: controller.signal,
        onProgress,
        cacheDir: job.cacheDir,
        outDir: job.outDir,
        baseDir: job.baseDir,
      });
      await writeReport(report, job.outDir, ['json']);
      return { reportFile: join(job.outDir, 'report.json'), cancelled: report.run.cancelled };
    } finally {
      await model.dispose();
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
