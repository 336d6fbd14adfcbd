/**
 * The engine's worker thread, in one of two roles (workerData.role):
 * - views (views/workers.ts): makes the corruption views' CPU part from the images and seeds it
 *   is sent, with the same makers as the main thread (corruptionViews(...).inputs), so the same
 *   planes bit for bit;
 * - decode (data/decode-workers.ts): finishes decoded images (data/decode.ts finishDecode: the
 *   resampling, crop and margin), the same pixels as on the main thread.
 * Bundled on its own as dist/views-worker.js (scripts/build.mjs); under tsx the main thread loads
 * this file through tsx's require hook.
 */
import { writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { finishDecode } from '../data/geometry';
import type { FinishJob, FinishReply } from '../data/decode-workers';
import { workerErrorInfo } from '../worker-pool';
import { recipeSeeds } from '../random';
import { corruptionViews, type CorruptionViews } from './corruptions';
import { transferables, type FromWorker, type MakeJob, type ToWorker } from './workers';

const port = parentPort;
if (!port) throw new Error('views/cpu-worker.ts runs as a worker thread (views/workers.ts starts it)');
const decoder = (workerData as { role?: string } | undefined)?.role === 'decode';

// The thread's name as `top -H`, `ps -L` and bench/audit.ts show it (Linux; elsewhere it keeps its own).
try {
  writeFileSync('/proc/thread-self/comm', decoder ? 'skeptic-decode' : 'skeptic-views');
} catch {
  // no /proc: not Linux
}

/** The makers per corruption list and size, kept while the worker lives (their input reuse pool with
 *  them); a handful at most: one per probe configuration in a process. */
const made = new Map<string, { views: CorruptionViews; index: Map<string, number> }>();
const MAX_SPECS = 8;
/** Jobs received and not yet started, and those of them the main thread no longer wants. */
const queued = new Set<number>();
const cancelled = new Set<number>();

/** The makers for a job's spec, and where each (corruption, severity) sits in its list (its seed's place). */
function viewsFor(job: MakeJob): { views: CorruptionViews; index: Map<string, number> } {
  let v = made.get(job.key);
  if (!v) {
    if (made.size >= MAX_SPECS) made.delete(made.keys().next().value!);
    const { list, height, width, opts } = job.spec;
    v = { views: corruptionViews(list, height, width, opts, true), index: new Map(list.map(([n, s], i) => [`${n}/${s}`, i])) };
    made.set(job.key, v);
  }
  return v;
}

async function make(job: MakeJob): Promise<void> {
  const { views, index } = viewsFor(job);
  const { channels, height, width, count, pixels, seeds } = job;
  const plane = channels * height * width;
  const L = job.spec.list.length;
  const used = new Uint8Array(L);
  // the sets the main thread gave back: each image's inputs() takes one (before its first await)
  for (const set of job.reuse) views.recycle(set);
  const inputs = await Promise.all(
    Array.from({ length: count }, (_, k) => {
      // the image's recipe when the job has one (the seeds derived here), else the seeds sent
      const derive = job.recipes ? recipeSeeds(job.recipes[k]) : undefined;
      return views.inputs({ channels, height, width, data: pixels.subarray(k * plane, (k + 1) * plane) }, (name, severity) => {
        const i = index.get(`${name}/${severity}`);
        const seed = i === undefined ? NaN : derive ? derive(name, severity) : seeds[k * L + i];
        if (Number.isNaN(seed)) throw new Error(`views worker: no seed for ${name} severity ${severity}`);
        used[i!] = 1;
        return seed;
      });
    }),
  );
  const reply: FromWorker = { type: 'made', id: job.id, inputs, used: [...used.keys()].filter((i) => used[i]), pixels };
  port!.postMessage(reply, transferables([...inputs, { pixels }]));
}

/**
 * Jobs run one after the other, in the order they came: the main thread needs them in that order,
 * and a later job started while an earlier one waits for sharp (JPEG) would hold the earlier one's
 * end back by its own whole CPU part (measured on MNIST: the first run of each batch waited for
 * both).
 */
let chain: Promise<void> = Promise.resolve();

/** A decoded image finished at once (pure computation, a few ms: nothing to queue or cancel). */
function finish(m: FinishJob): void {
  let reply: FinishReply;
  try {
    const image = finishDecode(m.raw, m.spec);
    reply = { type: 'finished', id: m.id, image };
    port!.postMessage(reply, [image.data.buffer as ArrayBuffer]);
  } catch (e) {
    reply = { type: 'failed', id: m.id, error: workerErrorInfo(e) };
    port!.postMessage(reply);
  }
}

port.on('message', (m: ToWorker | FinishJob) => {
  if (m.type === 'finish') return finish(m);
  if (m.type === 'cancel') {
    if (queued.has(m.id)) cancelled.add(m.id);
    return;
  }
  queued.add(m.id);
  chain = chain.then(async () => {
    // a turn of the event loop first: a cancel already on its way is read before the work starts
    await new Promise((r) => setImmediate(r));
    queued.delete(m.id);
    if (cancelled.delete(m.id)) return;
    await make(m).catch((e: unknown) => {
      const reply: FromWorker = { type: 'failed', id: m.id, error: workerErrorInfo(e) };
      port.postMessage(reply);
    });
  });
});

port.postMessage({ type: 'ready' } satisfies FromWorker);
