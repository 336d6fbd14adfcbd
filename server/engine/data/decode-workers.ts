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
import { debuglog } from 'node:util';
import type { U8Image } from '../image/resample';
import type { DecodeSpec, PixelImage } from '../types';
import { workerScript, workersFromEnv } from '../views/workers';
import { WorkerGone, WorkerPool, type WorkerErrorInfo } from '../worker-pool';
import { decodeRaw, DEFAULT_MAX_PIXELS } from './decode';
import { finishDecode } from './geometry';

const debug = debuglog('skeptic-decode');

/** Sources with fewer pixels than this are finished on the main thread (a message costs ~0.1 ms). */
export const SMALL = 1 << 16;

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
  | { type: 'failed'; id: number; error: WorkerErrorInfo };

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
  if (!pool || pool.closed) pool = newPool(decodeWorkerCount());
  if (pool.broken) return finishDecode(raw, spec);
  try {
    return await finishThere(pool, raw, spec);
  } catch (e) {
    if (e instanceof WorkerGone) return finishDecode(raw, spec);
    throw e;
  }
}

let pool: WorkerPool | undefined;
let jobsSent = 0;

function newPool(size: number): WorkerPool {
  return new WorkerPool(size, {
    what: 'decode',
    workerData: { role: 'decode' },
    script: workerScript,
    debug,
    fallback: 'finishing decoded images in the main thread',
    onPost: () => jobsSent++,
  });
}

/** finishDecode(raw, spec) in a worker: the bytes go out copied (sharp's Buffer may share its memory), the image comes back by transfer. */
async function finishThere(p: WorkerPool, raw: U8Image, spec: DecodeSpec): Promise<PixelImage> {
  const reply = await p.run((id): FinishJob => ({ type: 'finish', id, raw, spec }));
  return (reply as Extract<FinishReply, { type: 'finished' }>).image;
}
