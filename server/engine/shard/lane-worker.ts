/**
 * One lane of an audit (lanes.ts), in its own worker thread: opens the model, the data and the
 * probes as the audit's thread did, audits its lane of the shard's images (runShard; the whole
 * audit is shard 0 of 1) and posts the records back. Its sessions, views workers and decode
 * workers are its own; their thread counts come with the job, so that the lanes together fill
 * the cores and no more.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDataset } from '../data';
import { SkepticInputError } from '../errors';
import { loadModel, setCpuThreads, type LoadModelOptions } from '../model';
import { createProbes } from '../probes';
import type { LaneJob, LaneMessage } from './lanes';
import { runShard, type ShardResult } from './result';

async function lane(job: LaneJob): Promise<void> {
  const port = parentPort!;
  const post = (m: LaneMessage) => port.postMessage(m);
  const controller = new AbortController();
  port.on('message', (m: { type: string }) => m.type === 'cancel' && controller.abort());
  // read when the pools first start (views/workers.ts, data/decode-workers.ts): this thread's copy of the environment
  process.env.SKEPTIC_VIEW_WORKERS = String(job.workers);
  process.env.SKEPTIC_DECODE_WORKERS = String(job.workers);
  setCpuThreads(job.threads);
  const model = await loadModel(job.open.modelPath, job.open.modelOptions as LoadModelOptions);
  let result: ShardResult;
  try {
    const dataset = await openDataset(job.open.dataPath, {
      ...job.open.datasetOptions,
      labels: model.labels,
      numClasses: model.info.numClasses,
      limit: job.limit,
      seed: job.seed,
      followSymlinks: job.followSymlinks,
    });
    result = await runShard(model, dataset, job.shard, job.open, {
      probes: createProbes(job.open.probes, job.open.params),
      seed: job.seed,
      batchSize: job.batchSize,
      limit: job.limit,
      signal: controller.signal,
      cacheDir: job.cacheDir,
      baseDir: job.open.baseDir,
      onProgress: (p) => p.phase === 'evaluating' && post({ type: 'progress', done: p.done, cacheHits: p.cacheHits }),
    }, { index: job.lane, count: job.lanes });
  } finally {
    // the sessions go before the thread does: ONNX Runtime aborts the process when a thread ends
    // (Worker.terminate) with sessions still alive in it
    await model.dispose();
  }
  // the sessions are gone: lanes.ts may end this thread as soon as it has the result
  // as JSON, the form a shard result is written in: its record lists are views that structured
  // cloning refuses, and one string crosses threads in one copy
  post({ type: 'result', json: JSON.stringify(result) });
}

// (an error leaves no session alive either: lane() released them on its way out)
lane(workerData as LaneJob).catch((e: Error) => {
  parentPort!.postMessage({ type: 'error', message: e.message, input: e instanceof SkepticInputError, file: (e as SkepticInputError).file } satisfies LaneMessage);
});
