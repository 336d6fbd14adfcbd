/**
 * The corruption views' CPU part made in worker threads, beside session.run.
 *
 * onnxruntime-node runs session.run synchronously on the main JavaScript thread (in a setImmediate,
 * with its other intra-op threads beside it), so whatever the main thread makes cannot overlap a
 * run. The corruption views' per-image inputs (views/corruptions.ts: shot and impulse noise,
 * motion blur, snow, spatter, JPEG, the noise uniforms, fog's plasma, frost's crop, elastic's and
 * glass blur's draws) cost about 170 ms of JavaScript per 224×224 image at five severities: made
 * on the main thread, that is time in which a core idles and, on a GPU, the provider waits.
 *
 * Here the same makers (corruptionViews(...).inputs) run in a pool of worker threads
 * (views/cpu-worker.ts) with the same seeds, so the inputs are the same bit for bit. The images go
 * to a worker packed in one buffer per message (several per message: MNIST-size images cost
 * little each, a message's fixed cost would dominate); the filled planes come back, and the sets
 * runViews gives back (recycle) go to a worker to be filled again, so the reuse pool of
 * views/corruptions.ts keeps working across threads. runViews asks for `ahead` runs of sources
 * beyond the one in session.run, so every worker has work while it runs.
 *
 * The sets and the image buffers live in SharedArrayBuffers, posted, not transferred: V8 counts
 * a transferred ArrayBuffer as new external memory in the thread it reaches and takes it off only
 * when it next collects, so 38 MB sets going to and fro (an ImageNet image's) made both threads
 * collect garbage about twice an image (an ImageNet audit: 133 external-memory scavenges and 72
 * mark-compacts in the main thread, 190 and 7 in the worker; with shared memory 9 and 33, 0
 * and 3; bench/README.md, twenty-fourth pass). A shared set is copied once into the run's input
 * (views/session.ts feedsFor: onnxruntime-node takes no tensor over shared memory), ~2 ms a set.
 *
 * Workers: SKEPTIC_VIEW_WORKERS (0: make the inputs in the main thread), else half the CPUs this
 * process may use (model/threads.ts cpuBudget: os.availableParallelism(), or fewer by --cpus),
 * at least 1 and at most 8: ONNX Runtime's intra-op threads have the rest. When a worker cannot
 * start (or dies), the inputs are made in the main thread instead and NODE_DEBUG=skeptic-views
 * says why. Idle workers never keep the process alive; they end when the last model that used
 * them is released (model.dispose(), through releaseViews), or after a minute with nothing to do.
 */
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { debuglog } from 'node:util';
import { throwIfAborted } from '../errors';
import { cpuBudget } from '../model/threads';
import { WorkerGone, WorkerPool, type WorkerErrorInfo } from '../worker-pool';
import type { CorruptionName, CorruptOptions } from '../image/corrupt';
import type { PixelImage } from '../types';
import { corruptionViews, type CorruptionViews } from './corruptions';
import { keepForReuse, type ViewInputs } from './plan';
import type { SeedRecipe, ViewSeeds } from '../random';

const debug = debuglog('skeptic-views');

/** What a worker needs to build the makers: views/corruptions.ts's arguments. */
export interface MakeSpec {
  list: Array<[CorruptionName, number]>;
  height: number;
  width: number;
  opts: CorruptOptions;
}

/** One message's images (equal size, packed image-major) and their seeds (list order per image;
 *  NaN for the entries no maker asks for: views made in the graph draw nothing on the CPU). */
export interface MakeJob {
  type: 'make';
  id: number;
  /** The spec as JSON: the worker keeps its makers by it. */
  key: string;
  spec: MakeSpec;
  channels: 1 | 3;
  height: number;
  width: number;
  count: number;
  pixels: Float32Array;
  seeds: Float64Array;
  /** Instead of seeds (then empty), each image's recipe (random.ts recipeSeeds): the worker derives
   *  the seeds its makers use, and the main thread hashes none. */
  recipes?: SeedRecipe[];
  /** Input sets given back by the main thread, to be filled again (at most one per image). */
  reuse: ViewInputs[];
}
export type ToWorker = MakeJob | { type: 'cancel'; id: number };
/** `used`: the list entries whose seeds the makers asked for (the main thread computes only those from
 *  then on); `pixels`: the job's buffer, back for the next job. */
export type FromWorker = { type: 'ready' } | { type: 'made'; id: number; inputs: ViewInputs[]; used: number[]; pixels: Float32Array } | { type: 'failed'; id: number; error: WorkerErrorInfo };
type Made = Extract<FromWorker, { type: 'made' }>;

const MAX_WORKERS = 8;
/**
 * Image pixels (rows × columns) per message at most: about 10 ms of the makers' work (ten MNIST
 * images, eight CIFAR-10 ones, one at ImageNet size), against a message's fixed cost of ~0.1 ms.
 */
const MESSAGE_PIXELS = 8192;

/** Worker threads for n CPUs: half of them (ORT's intra-op threads run on the others), 1 to 8. */
export function defaultViewWorkers(cpus = cpuBudget()): number {
  return Math.max(1, Math.min(MAX_WORKERS, Math.floor(cpus / 2)));
}

/** Images per message when `count` images of `pixels` pixels each go to `workers` workers together:
 *  at least one message per worker, none over MESSAGE_PIXELS but a single image, all of nearly equal
 *  size (32 MNIST images to one worker: four of 8, not 10, 10, 10 and 2). */
export function imagesPerMessage(count: number, pixels: number, workers: number): number {
  const cap = Math.max(1, Math.floor(MESSAGE_PIXELS / pixels));
  return Math.max(1, Math.ceil(count / Math.max(workers, Math.ceil(count / cap))));
}

let chosen: number | undefined;

/** Worker threads for the views' CPU part (0: the main thread makes them). */
export function viewWorkerCount(): number {
  return chosen ?? workersFromEnv('SKEPTIC_VIEW_WORKERS', debug);
}

/**
 * The worker threads an environment variable asks for (a whole number ≥ 0, at most 64), else
 * defaultViewWorkers(); `log` says when the value is ignored. The views' and the decode pools'.
 */
export function workersFromEnv(name: string, log: (format: string, ...args: unknown[]) => void): number {
  const v = process.env[name];
  if (v !== undefined && v !== '') {
    const n = Number(v);
    if (Number.isInteger(n) && n >= 0) return Math.min(n, 64);
    log('%s=%s is not a whole number ≥ 0: ignored', name, v);
  }
  return defaultViewWorkers();
}

/**
 * Sets the number of worker threads for views made from now on (undefined: back to
 * SKEPTIC_VIEW_WORKERS or the default); ends the current pool and forgets a failure to start
 * one. For the tests and benchmarks.
 */
export async function setViewWorkers(n: number | undefined): Promise<void> {
  if (n !== undefined && !(Number.isInteger(n) && n >= 0)) throw new RangeError(`view workers must be a whole number ≥ 0, not ${n}`);
  chosen = n;
  const p = pool;
  pool = undefined;
  await p?.close();
}

/** Ends the workers once no model uses them (releaseViews calls it for each model it releases). */
export async function releaseViewWorkers(owner: object): Promise<void> {
  if (!pool) return;
  pool.owners.delete(owner);
  if (pool.owners.size === 0) await pool.close();
}

/** Live worker threads of the pool (for the tests: none once the models are released). */
export function viewWorkerThreads(): number {
  return pool?.live() ?? 0;
}

/** Messages of images the current pool has sent to its workers (for the tests). */
export function viewWorkerJobs(): number {
  return pool?.jobs ?? 0;
}

/** The corruption views of corruptionViews, with `ahead` for runViews and the threads making them (0: this one). */
export interface CorruptionViewMaker extends CorruptionViews {
  /** Runs of sources runViews should have in the making beyond the one in session.run. */
  readonly ahead: number;
  /** Worker threads that make the inputs (0: the calling thread). */
  readonly threads: number;
}

/**
 * corruptionViews(list, height, width, opts) whose inputs() are made in worker threads (the
 * same values). `owner` (the model) keeps the pool alive until releaseViews(owner); `signal`
 * rejects the inputs still being made with CancelledError at once.
 */
export function corruptionViewMaker(
  list: Array<[CorruptionName, number]>,
  height: number,
  width: number,
  opts: CorruptOptions = {},
  use: { owner?: object; signal?: AbortSignal } = {},
): CorruptionViewMaker {
  const local = corruptionViews(list, height, width, opts);
  const workers = viewWorkerCount();
  if (workers === 0) return { ...local, ahead: 1, threads: 0 };
  // the pool of the moment: an idle one ends after a while, and the next request starts another
  const current = () => {
    if (!pool || (pool.closed && !pool.broken)) pool = new Pool(workers);
    if (use.owner) pool.owners.add(use.owner);
    return pool;
  };
  const spec: MakeSpec = { list, height, width, opts };
  const key = JSON.stringify(spec);
  const ahead = workers + 1;
  const keep = ahead + 2;
  type Request = { img: PixelImage; seed: ViewSeeds<CorruptionName>; resolve: (v: ViewInputs) => void; reject: (e: unknown) => void };
  let waiting: Request[] = [];
  // the list entries whose seeds the makers use, once a worker has said (seeds cost ~5 µs each:
  // a third of a second for MNIST's 1,000 images at 75 views, half of them drawn in the graph)
  let needed: number[] | undefined;
  const inThread = (r: Request) => local.inputs(r.img, r.seed).then(r.resolve, r.reject);

  const send = (reqs: Request[]) => {
    const { channels, height: h, width: w } = reqs[0].img;
    const plane = channels * h * w;
    const p = current();
    const spare = p.spare(key);
    const old = spare.pixels.pop();
    const pixels = old?.length === reqs.length * plane ? old : new Float32Array(new SharedArrayBuffer(4 * reqs.length * plane));
    // seeds that come with their recipe are derived in the worker, beside the runs: MNIST's 50,000
    // sha256s an audit took ~85 ms of the main thread, where nothing else runs meanwhile
    const recipes = reqs.every((r) => r.seed.recipe) ? reqs.map((r) => r.seed.recipe!) : undefined;
    const seeds = new Float64Array(recipes ? 0 : reqs.length * list.length).fill(NaN);
    const which = recipes ? [] : needed ?? list.map((_, i) => i);
    try {
      reqs.forEach((r, k) => {
        pixels.set(r.img.data.subarray(0, plane), k * plane);
        for (const i of which) seeds[k * list.length + i] = r.seed(list[i][0], list[i][1]);
      });
    } catch (e) {
      for (const r of reqs) r.reject(e);
      return;
    }
    const reuse = spare.sets.splice(0, reqs.length);
    p.make({ key, spec, channels, height: h, width: w, count: reqs.length, pixels, seeds, ...(recipes ? { recipes } : {}), reuse }, use.signal).then(
      (made) => {
        needed ??= made.used;
        if (spare.pixels.length < keep) spare.pixels.push(made.pixels);
        reqs.forEach((r, k) => r.resolve(made.inputs[k]));
      },
      (e) => {
        if (e instanceof WorkerGone) reqs.forEach(inThread);
        else for (const r of reqs) r.reject(e);
      },
    );
  };

  // requests made in one turn (runViews asks for a run's sources together) go out together,
  // split over the workers and into messages of at most MESSAGE_PIXELS pixels, so that the first
  // images come back while the worker makes the rest (runViews asks for `ahead` runs in one turn
  // at its start: in one message, MNIST's first run waited for both runs' images, 35–40 ms, and
  // the worker then idled through the runs); images of another size (none in a probe's run) go in
  // their own message
  const flush = () => {
    const batch = waiting;
    waiting = [];
    const p = current();
    if (p.broken) return void batch.forEach(inThread);
    const bySize = new Map<string, Request[]>();
    for (const r of batch) {
      const k = `${r.img.channels}x${r.img.height}x${r.img.width}`;
      const same = bySize.get(k);
      if (same) same.push(r);
      else bySize.set(k, [r]);
    }
    for (const reqs of bySize.values()) {
      const per = imagesPerMessage(reqs.length, reqs[0].img.height * reqs[0].img.width, p.size);
      for (let i = 0; i < reqs.length; i += per) send(reqs.slice(i, i + per));
    }
  };

  return {
    ops: local.ops,
    ahead,
    threads: workers,
    recycle(inputs) {
      if (pool?.broken) return local.recycle(inputs);
      // kept by the pool, not by this maker: a later maker of the same spec (the next audit's
      // probe, or this one's back at this size) fills the same sets again (fresh 25 MB sets cost
      // a page fault a page)
      const sets = pool && !pool.closed ? pool.spare(key).sets : undefined;
      if (sets) keepForReuse(sets, inputs, keep);
    },
    inputs(img, seed) {
      throwIfAborted(use.signal);
      if (pool?.broken) return local.inputs(img, seed);
      return new Promise<ViewInputs>((resolve, reject) => {
        waiting.push({ img, seed, resolve, reject });
        if (waiting.length === 1) queueMicrotask(flush);
      });
    },
  };
}

/** The whole ArrayBuffers under a list of inputs, each once (they move between threads, no copy);
 *  SharedArrayBuffers are not among them (both threads see the same memory). */
export function transferables(sets: object[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const set of sets) {
    for (const v of Object.values(set)) {
      if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) out.add(v.buffer);
    }
  }
  return [...out];
}

/** The worker script (views/cpu-worker.ts, also data/decode-workers.ts's): SKEPTIC_VIEWS_WORKER
 *  when set (a built script; a relative path is from the working directory, as a shell means it,
 *  not the './'-prefixed form that Worker alone accepts), dist/views-worker.js beside a bundle,
 *  the TypeScript source through tsx's require hook otherwise. */
export function workerScript(): { file: string; code?: string } {
  const given = process.env.SKEPTIC_VIEWS_WORKER;
  if (given) return { file: resolve(given) };
  if (!__filename.endsWith('.ts')) return { file: join(__dirname, 'views-worker.js') };
  const file = join(__dirname, 'cpu-worker.ts');
  const tsx = createRequire(__filename).resolve('tsx/cjs');
  return { file, code: `require(${JSON.stringify(tsx)});\nrequire(${JSON.stringify(file)});` };
}

let pool: Pool | undefined;

/** The views' pool: the shared one (worker-pool.ts), with the models that use it and the buffers given back. */
class Pool extends WorkerPool {
  readonly owners = new Set<object>();
  /** Per maker spec: input sets given back and image buffers returned, to be sent again. */
  private readonly spares = new Map<string, { sets: ViewInputs[]; pixels: Float32Array[] }>();

  constructor(size: number) {
    super(size, { what: 'views', script: workerScript, debug, fallback: "making the views' CPU part in the main thread" });
  }

  spare(key: string): { sets: ViewInputs[]; pixels: Float32Array[] } {
    let s = this.spares.get(key);
    if (!s) {
      if (this.spares.size >= 4) this.spares.delete(this.spares.keys().next().value!);
      this.spares.set(key, (s = { sets: [], pixels: [] }));
    }
    return s;
  }

  /** A message of images to make the inputs of, its buffers moved to the worker. */
  make(job: Omit<MakeJob, 'type' | 'id'>, signal?: AbortSignal): Promise<Made> {
    const transfer = transferables([{ pixels: job.pixels, seeds: job.seeds }, ...job.reuse]);
    return this.run((id): MakeJob => ({ type: 'make', id, ...job }), transfer, signal) as Promise<Made>;
  }

  override async close(): Promise<void> {
    if (pool === this) pool = undefined;
    await super.close();
  }

  protected override async terminate(): Promise<void> {
    this.spares.clear();
    await super.terminate();
  }
}
