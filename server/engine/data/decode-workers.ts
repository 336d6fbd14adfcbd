/**
 * Image files decoded with their JavaScript part off the main thread.
 *
 * decodeImage has two parts: the decoder (sharp; its work already runs in libuv's threads) and
 * the resampling to the model's size with the crop and margin (data/decode.ts finishDecode),
 * which is JavaScript: about 10 ms of CPU per ImageNet JPEG on the development machine, 1 s of
 * the main thread in the default audit of the 100 fixture images. onnxruntime-node runs
 * session.run synchronously on the main thread, so whatever else that thread does cannot overlap a
 * run: on a GPU, where a forward pass costs far less than the resampling, the main thread
 * resampling one image after another would set the pace of the whole audit.
 *
 * Here finishDecode runs in worker threads (the engine's worker script, views/cpu-worker.ts, in
 * a pool of its own): the decoded bytes go out (copied: a few hundred kB) and the float image
 * comes back by transfer. The arithmetic is the same, so the pixels are the same bit for bit.
 * Small sources (CIFAR-10's 32×32 PNGs, anything under SMALL pixels) are finished on the main
 * thread, where they cost less than a message.
 *
 * Workers: SKEPTIC_DECODE_WORKERS (0: finish on the main thread), else as many as the views'
 * pool takes by default (half the CPUs, 1 to 8). When a worker cannot start or dies, images are
 * finished on the main thread from then on and NODE_DEBUG=skeptic-decode says why. Idle workers
 * never keep the process alive and end after a minute with nothing to do.
 */
import { existsSync } from 'node:fs';
import { debuglog } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { U8Image } from '../image/resample';
import type { DecodeSpec, PixelImage } from '../types';
import { workerScript, workersFromEnv } from '../views/workers';
import { decodeRaw, DEFAULT_MAX_PIXELS } from './decode';
import { finishDecode } from './geometry';

const debug = debuglog('skeptic-decode');

/** Sources with fewer pixels than this are finished on the main thread (a message costs ~0.1 ms). */
export const SMALL = 1 << 16;
/** An idle pool ends after this long. */
const IDLE_MS = 60_000;

/** The main thread's message to a decode worker. */
export interface FinishJob {
  type: 'finish';
  id: number;
  raw: U8Image;
  spec: DecodeSpec;
}
/** A decode worker's answer. */
export type FinishReply =
  | { type: 'ready' }
  | { type: 'finished'; id: number; image: PixelImage }
  | { type: 'failed'; id: number; error: { name: string; message: string } };

let chosen: number | undefined;

/** Worker threads that finish decoded images (0: the main thread does). */
export function decodeWorkerCount(): number {
  return chosen ?? workersFromEnv('SKEPTIC_DECODE_WORKERS', debug);
}

/** Sets the decode workers from now on (undefined: back to the environment or the default) and
 *  ends the current pool. For the tests and benchmarks. */
export async function setDecodeWorkers(n: number | undefined): Promise<void> {
  if (n !== undefined && !(Number.isInteger(n) && n >= 0)) throw new RangeError(`decode workers must be a whole number ≥ 0, not ${n}`);
  chosen = n;
  const p = pool;
  pool = undefined;
  await p?.close();
}

/** Images sent to decode workers so far (for the tests). */
export function decodeWorkerJobs(): number {
  return jobsSent;
}

/** Live decode worker threads (for the tests). */
export function decodeWorkerThreads(): number {
  return pool?.live() ?? 0;
}

/**
 * decodeImage(bytes, spec, maxPixels), its resampling in a worker thread when there is one and
 * the source is large enough: the same image, and the same DecodeError for a file that is not one.
 */
export async function decodeFile(bytes: Buffer, spec: DecodeSpec, maxPixels: number = DEFAULT_MAX_PIXELS): Promise<PixelImage> {
  const raw = await decodeRaw(bytes, spec, maxPixels);
  if (raw.width * raw.height < SMALL || decodeWorkerCount() === 0) return finishDecode(raw, spec);
  if (!pool || pool.closed) pool = new Pool(decodeWorkerCount());
  if (pool.broken) return finishDecode(raw, spec);
  try {
    return await pool.finish(raw, spec);
  } catch (e) {
    if (e instanceof WorkerGone) return finishDecode(raw, spec);
    throw e;
  }
}

/** The workers are gone (did not start, died, or were ended): finish on this thread. */
class WorkerGone extends Error {}

let pool: Pool | undefined;
let jobsSent = 0;

interface Slot {
  worker: Worker;
  jobs: number;
  closing: boolean;
}

class Pool {
  broken?: string;
  closed = false;
  private slots: Slot[] = [];
  private readonly pending = new Map<number, { slot: Slot; resolve: (v: PixelImage) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private idle?: NodeJS.Timeout;

  constructor(readonly size: number) {}

  live(): number {
    return this.slots.filter((s) => !s.closing).length;
  }

  finish(raw: U8Image, spec: DecodeSpec): Promise<PixelImage> {
    const slot = this.pick();
    if (!slot) return Promise.reject(new WorkerGone(this.broken));
    clearTimeout(this.idle);
    const id = this.nextId++;
    if (slot.jobs++ === 0) slot.worker.ref(); // a job in flight keeps the process alive; an idle worker does not
    return new Promise<PixelImage>((resolve, reject) => {
      this.pending.set(id, { slot, resolve, reject });
      try {
        // the bytes are copied (sharp's Buffer may share its memory), the image comes back by transfer
        slot.worker.postMessage({ type: 'finish', id, raw, spec } satisfies FinishJob);
        jobsSent++;
      } catch (e) {
        this.settle(id);
        reject(e as Error);
      }
    });
  }

  private settle(id: number): { resolve: (v: PixelImage) => void; reject: (e: Error) => void } | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    if (--p.slot.jobs === 0 && !p.slot.closing) p.slot.worker.unref();
    if (this.pending.size === 0 && !this.closed) (this.idle = setTimeout(() => void this.close(), IDLE_MS)).unref();
    return p;
  }

  /** The worker with the fewest jobs; a new one while there are fewer than `size` and all are busy. */
  private pick(): Slot | undefined {
    const free = this.slots.filter((s) => !s.closing);
    const least = free.reduce<Slot | undefined>((a, s) => (!a || s.jobs < a.jobs ? s : a), undefined);
    if (least && (least.jobs === 0 || free.length >= this.size)) return least;
    return this.spawn() ?? least;
  }

  private spawn(): Slot | undefined {
    const { file, code } = workerScript();
    if (!existsSync(file)) {
      this.fail(`the worker script ${file} is missing`);
      return undefined;
    }
    let worker: Worker;
    const options = { name: 'skeptic-decode', workerData: { role: 'decode' } };
    try {
      worker = code ? new Worker(code, { ...options, eval: true }) : new Worker(file, options);
    } catch (e) {
      this.fail(`a decode worker could not start (${(e as Error).message})`);
      return undefined;
    }
    worker.unref();
    const slot: Slot = { worker, jobs: 0, closing: false };
    this.slots.push(slot);
    worker.on('message', (m: FinishReply) => {
      if (m.type === 'ready') return;
      const p = this.settle(m.id);
      if (!p) return;
      if (m.type === 'finished') p.resolve(m.image);
      else {
        const Ctor = ({ RangeError, TypeError } as Record<string, ErrorConstructor>)[m.error.name] ?? Error;
        p.reject(new Ctor(m.error.message));
      }
    });
    worker.on('error', (e) => !slot.closing && this.fail(`a decode worker failed (${e.message.split('\n')[0]})`));
    worker.on('exit', (c) => !slot.closing && this.fail(`a decode worker exited with code ${c}`));
    debug('starting decode worker %d of %d: %s', this.slots.length, this.size, file);
    return slot;
  }

  private fail(reason: string): void {
    this.broken ??= reason;
    debug('%s: finishing decoded images in the main thread from now on', reason);
    void this.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (pool === this) pool = undefined;
    await this.terminate();
  }

  private async terminate(): Promise<void> {
    clearTimeout(this.idle);
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) s.closing = true;
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new WorkerGone(this.broken ?? 'the decode workers were ended'));
    if (slots.length) debug('ending %d decode worker(s)', slots.length);
    await Promise.all(slots.map((s) => s.worker.terminate().catch(() => undefined)));
  }
}
