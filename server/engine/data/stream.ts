/**
 * Streaming decoded samples in order, in batches, with bounded concurrency and memory.
 *
 * Items are decoded `concurrency` at a time and yielded in record order. While the consumer
 * works on one batch, the next one is filled in the background, so at most about two batches
 * of pixels (plus the items in flight) are alive at once, whatever the dataset's size.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CancelledError, throwIfAborted } from '../errors';
import type { DatasetRecord, DecodeSpec, Sample, StreamOptions } from '../types';
import { fsReason } from '../fs/files';
import { describe } from './common';
import { decodeFile } from './decode-workers';

export interface DecodeConfig {
  concurrency: number;
  maxPixels: number;
}

/** Resolves like `p`, or rejects with CancelledError as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new CancelledError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Maps `work` over `source` with at most `concurrency` calls in flight and yields the results
 * in source order. The source is pulled only when a slot frees up, so a sequential source (an
 * idx file being read) never runs ahead of the decoders.
 */
async function* orderedMap<T, R>(
  source: Iterable<T> | AsyncIterable<T>,
  concurrency: number,
  work: (item: T) => Promise<R>,
  signal?: AbortSignal,
): AsyncGenerator<R> {
  const it: Iterator<T> | AsyncIterator<T> =
    Symbol.asyncIterator in source ? (source as AsyncIterable<T>)[Symbol.asyncIterator]() : (source as Iterable<T>)[Symbol.iterator]();
  const pending: Promise<R>[] = [];
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && pending.length < concurrency) {
        throwIfAborted(signal);
        const next = await abortable(Promise.resolve(it.next()), signal);
        if (next.done) {
          exhausted = true;
          break;
        }
        const p = work(next.value);
        p.catch(() => {}); // awaited below in order; this only stops an early exit from leaving it unhandled
        pending.push(p);
      }
      const head = pending.shift();
      if (!head) return;
      yield await abortable(head, signal);
    }
  } finally {
    await it.return?.();
  }
}

/**
 * Groups `work` results into batches of `batchSize`, filling the next batch while the consumer
 * holds the current one.
 */
export async function* batched<T>(
  source: Iterable<T> | AsyncIterable<T>,
  work: (item: T) => Promise<Sample>,
  opts: StreamOptions,
  concurrency: number,
): AsyncGenerator<Sample[]> {
  const { batchSize, signal } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, not ${batchSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, not ${concurrency}`);
  throwIfAborted(signal);
  const samples = orderedMap(source, concurrency, work, signal);
  let closed = false;
  const fill = async (): Promise<Sample[]> => {
    const batch: Sample[] = [];
    while (batch.length < batchSize && !closed) {
      const n = await samples.next();
      if (n.done) break;
      batch.push(n.value);
    }
    return batch;
  };
  let next: Promise<Sample[]> | undefined = fill();
  next.catch(() => {});
  try {
    for (;;) {
      const batch: Sample[] = await abortable(next, signal);
      next = undefined;
      if (batch.length === 0) return;
      next = fill();
      next.catch(() => {});
      yield batch;
    }
  } finally {
    closed = true;
    // On an early exit, let the prefetch settle before closing the source (an async generator
    // queues return() behind a running next() anyway), so files and streams get closed.
    if (next) await next.catch(() => {});
    await samples.return(undefined);
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads, hashes and (when wanted) decodes one image file; problems come back as Sample.error. */
export async function fileSample(record: DatasetRecord, spec: DecodeSpec, opts: StreamOptions, cfg: DecodeConfig): Promise<Sample> {
  const margin = spec.margin ?? 0;
  let bytes: Buffer;
  try {
    bytes = await readFile(record.file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // "permission denied", "a symbolic link loop"...: the reason in words, not an errno code
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a folder, not an image file' : `cannot read the file (${code ? fsReason(e) : (e as Error).message})`;
    return { record, margin, error: `${describe(record)}: ${why}` };
  }
  if (bytes.length === 0) return { record, margin, error: `${describe(record)}: file is empty (0 bytes)` };
  const hash = sha256(bytes);
  if (opts.wantImage && !opts.wantImage(record, hash)) return { record, sha256: hash, margin };
  try {
    const image = await decodeFile(bytes, spec, cfg.maxPixels);
    return { record, sha256: hash, image, margin };
  } catch (e) {
    if (e instanceof RangeError) throw e; // a bad DecodeSpec is a bug, not bad data
    return { record, sha256: hash, margin, error: `${describe(record)}: ${(e as Error).message}` };
  }
}

/** stream() for datasets of image files (folders and manifests). */
export function streamFiles(records: readonly DatasetRecord[], spec: DecodeSpec, opts: StreamOptions, cfg: DecodeConfig): AsyncIterable<Sample[]> {
  return batched(usable(records), (r) => fileSample(r, spec, opts, cfg), opts, cfg.concurrency);
}

/** The records without a problem, one at a time: a listing whose records are made when read
 *  (a manifest's) is not turned into an array of every record for the length of the audit. */
export function* usable(records: readonly DatasetRecord[]): Generator<DatasetRecord> {
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (!r.problem) yield r;
  }
}
