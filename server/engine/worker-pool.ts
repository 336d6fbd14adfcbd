/**
 * A pool of the engine's worker threads (views/cpu-worker.ts, in the role given by workerData):
 * the corruption views' CPU part (views/workers.ts) and the finishing of decoded images
 * (data/decode-workers.ts) each keep one. What the two share is here: a job goes to the worker
 * with the fewest jobs (another starts while there are fewer than `size` and all are busy), a
 * reply settles it (a 'failed' one as the worker's error, rebuilt), a cancelled job is rejected
 * at once and its late reply dropped. A worker that cannot start or dies breaks the pool: every
 * job in flight and every later one rejects with WorkerGone, which the callers answer by doing
 * the work on their own thread. Workers keep the process alive only while they have jobs, and
 * an idle pool ends after IDLE_MS.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { CancelledError, SkepticInputError } from './errors';

/** An idle pool ends after this long (a process that keeps its model keeps no threads for nothing). */
const IDLE_MS = 60_000;

/** The workers are gone (did not start, died, or were ended): do the work on this thread. */
export class WorkerGone extends Error {}

/** An error thrown in a worker, as it crosses to the main thread. */
export interface WorkerErrorInfo {
  name: string;
  message: string;
  file?: string;
  line?: number;
  code?: string;
}

/** What a worker posts: 'ready' once it has loaded, then one reply per job ('failed' with its error). */
export type WorkerReply = { type: 'ready' } | { type: 'failed'; id: number; error: WorkerErrorInfo } | { type: string; id: number };

/** What crosses from the worker for an error it threw (rebuildError makes it again on the main thread). */
export function workerErrorInfo(e: unknown): WorkerErrorInfo {
  const err = (e instanceof Error ? e : new Error(String(e))) as Error & { file?: string; line?: number; code?: string };
  return { name: err.name, message: err.message, file: err.file, line: err.line, code: err.code };
}

/** The same error class, message and fields as the worker's (as if it had been thrown here). */
export function rebuildError(e: WorkerErrorInfo): Error {
  let err: Error;
  if (e.name === 'SkepticInputError') err = new SkepticInputError(e.message, e.file, e.line);
  else if (e.name === 'CancelledError') err = new CancelledError();
  else {
    const Ctor = ({ RangeError, TypeError, SyntaxError } as Record<string, ErrorConstructor>)[e.name] ?? Error;
    err = new Ctor(e.message);
    if (err.name !== e.name) err.name = e.name;
  }
  if (e.code) (err as NodeJS.ErrnoException).code = e.code;
  return err;
}

export interface PoolRole {
  /** The role's word in the thread name (skeptic-<what>) and the debug log ('views', 'decode'). */
  what: string;
  workerData?: unknown;
  /** The worker script: a file, or code to evaluate (the TypeScript source through tsx). */
  script: () => { file: string; code?: string };
  debug: (format: string, ...args: unknown[]) => void;
  /** What the callers do once the pool is broken, for the log ("making … in the main thread"). */
  fallback: string;
  /** Called after each message a worker is sent. */
  onPost?: () => void;
}

interface Slot {
  worker: Worker;
  jobs: number;
  closing: boolean;
  started: number;
}

interface Pending {
  slot: Slot;
  resolve: (m: WorkerReply) => void;
  reject: (e: Error) => void;
  settle: () => void;
}

export class WorkerPool {
  /** Why the workers cannot be used in this process (they failed to start or died). */
  broken?: string;
  closed = false;
  private slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idle?: NodeJS.Timeout;

  constructor(
    readonly size: number,
    private readonly role: PoolRole,
  ) {}

  live(): number {
    return this.slots.filter((s) => !s.closing).length;
  }

  /** Jobs this pool has given out. */
  get jobs(): number {
    return this.nextId - 1;
  }

  /**
   * Sends message(id) (with `transfer`) to a worker and resolves with its reply. A cancel through
   * `signal` rejects with CancelledError at once and tells the worker ({ type: 'cancel', id }).
   */
  run(message: (id: number) => object, transfer: ArrayBuffer[] = [], signal?: AbortSignal): Promise<WorkerReply> {
    if (this.broken || this.closed) return Promise.reject(new WorkerGone(this.broken ?? 'closed'));
    if (signal?.aborted) return Promise.reject(new CancelledError());
    const slot = this.pick();
    if (!slot) return Promise.reject(new WorkerGone(this.broken!));
    clearTimeout(this.idle);
    const id = this.nextId++;
    if (slot.jobs++ === 0) slot.worker.ref(); // a job in flight keeps the process alive; an idle worker does not
    return new Promise<WorkerReply>((resolve, reject) => {
      const onAbort = () => {
        settle();
        slot.worker.postMessage({ type: 'cancel', id });
        reject(new CancelledError());
      };
      const settle = () => {
        if (!this.pending.delete(id)) return;
        signal?.removeEventListener('abort', onAbort);
        if (--slot.jobs === 0 && !slot.closing) slot.worker.unref();
        if (this.pending.size === 0 && !this.closed) (this.idle = setTimeout(() => void this.close(), IDLE_MS)).unref();
      };
      this.pending.set(id, { slot, resolve, reject, settle });
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        slot.worker.postMessage(message(id), transfer);
        this.role.onPost?.();
      } catch (e) {
        settle();
        reject(e as Error);
      }
    });
  }

  /** The worker with the fewest jobs; a new one while there are fewer than `size` and all are busy. */
  private pick(): Slot | undefined {
    const free = this.slots.filter((s) => !s.closing);
    const least = free.reduce<Slot | undefined>((a, s) => (!a || s.jobs < a.jobs ? s : a), undefined);
    if (least && (least.jobs === 0 || free.length >= this.size)) return least;
    return this.spawn() ?? least;
  }

  private spawn(): Slot | undefined {
    const { what, debug } = this.role;
    const { file, code } = this.role.script();
    if (!existsSync(file)) {
      this.fail(`the ${what} worker script ${file} is missing`);
      return undefined;
    }
    let worker: Worker;
    const options = { name: `skeptic-${what}`, workerData: this.role.workerData };
    try {
      worker = code ? new Worker(code, { ...options, eval: true }) : new Worker(file, options);
    } catch (e) {
      this.fail(`a ${what} worker could not start (${(e as Error).message})`);
      return undefined;
    }
    worker.unref();
    const slot: Slot = { worker, jobs: 0, closing: false, started: performance.now() };
    this.slots.push(slot);
    worker.on('message', (m: WorkerReply) => this.onMessage(slot, m));
    worker.on('error', (e) => !slot.closing && this.fail(`a ${what} worker failed (${e.message.split('\n')[0]})`));
    worker.on('exit', (c) => !slot.closing && this.fail(`a ${what} worker exited with code ${c}`));
    debug('starting %s worker %d of %d: %s', what, this.slots.length, this.size, file);
    return slot;
  }

  private onMessage(slot: Slot, m: WorkerReply): void {
    if (!('id' in m)) return void this.role.debug('%s worker ready in %d ms', this.role.what, Math.round(performance.now() - slot.started));
    const p = this.pending.get(m.id);
    if (!p) return; // cancelled: its buffers are dropped
    p.settle();
    if (m.type === 'failed') p.reject(rebuildError((m as Extract<WorkerReply, { type: 'failed' }>).error));
    else p.resolve(m);
  }

  /** The workers cannot be used: end them; the callers do the work on their own thread. */
  private fail(reason: string): void {
    this.broken ??= reason;
    this.role.debug('%s: %s from now on', reason, this.role.fallback);
    void this.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.terminate();
  }

  protected async terminate(): Promise<void> {
    clearTimeout(this.idle);
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) s.closing = true;
    for (const [, p] of [...this.pending]) {
      p.settle();
      p.reject(new WorkerGone(this.broken ?? `the ${this.role.what} workers were ended`));
    }
    if (slots.length) this.role.debug('ending %d %s worker(s)', slots.length, this.role.what);
    await Promise.all(slots.map((s) => s.worker.terminate().catch(() => undefined)));
  }
}
