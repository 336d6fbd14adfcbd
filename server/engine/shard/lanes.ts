/**
 * An audit in lanes: its per-image work split over worker threads in this process, each lane a
 * shard of the audit (assign.ts, result.ts runShard) with its own sessions, and the lanes' records
 * merged into the one report a single lane writes (merge.ts). Same seed, same report: a record
 * depends on its image and the seed alone, and the merge runs every summary over all records.
 *
 * Why: on many cores an audit keeps fewer of them busy than the model alone does. ONNX Runtime
 * spreads a convolution over its intra-op threads, but the view graphs' many small nodes (slices,
 * pads, gathers, elementwise ops) gain little from more threads (bench/README, nineteenth pass).
 * Lanes run several images' graphs at once instead. Measured on 16 cores (bench/README,
 * twenty-second pass): MobileNetV2-int8 on the 100 ImageNet samples took 21–22 s in one lane and
 * 10–12 s in four lanes of 4 threads, against 9.3 s for the bare model. On 2 cores both cores are
 * already busy and lanes gain nothing, so `auto` keeps one lane there.
 *
 * The price is memory: each lane loads the model and makes its own view sessions. `auto` takes
 * lanes only where the cores are many and the free memory holds them (lanePlan).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { audit, type AuditOptions, type AuditProgress } from '../audit';
import { SkepticInputError } from '../errors';
import { cpuBudget, physicalCores } from '../model/threads';
import type { Report } from '../report/schema';
import type { Dataset, LoadedModel } from '../types';
import type { ShardSpec } from './assign';
import { suppliedRecords } from './merge';
import { identityDiff, inShard, runShard, shardIdentity, type ShardOpen, type ShardResult } from './result';

/** What a lane opens and runs: plain data, sent to its worker thread. */
export interface LaneJob {
  open: ShardOpen;
  /** The data is opened as `open` says, with this audit's limit and seed, and this. */
  followSymlinks?: boolean;
  seed: number;
  batchSize: number;
  limit?: number;
  cacheDir?: string;
  /** The shard the lanes split (the whole audit is shard 0 of 1). */
  shard: ShardSpec;
  lane: number;
  lanes: number;
  /** ONNX Runtime's intra-op threads in each of the lane's sessions. */
  threads: number;
  /** The lane's views and decode worker threads. */
  workers: number;
}

/** Messages from a lane's thread. */
export type LaneMessage =
  | { type: 'progress'; done: number; cacheHits: number }
  | { type: 'result'; json: string }
  | { type: 'error'; message: string; input?: boolean; file?: string };

export interface LanePlan {
  lanes: number;
  /** Intra-op threads per lane's session. */
  threads: number;
  /** Views and decode workers per lane. */
  workers: number;
  /** Why this many, in words (the CLI prints it, the report keeps it). */
  why: string;
}

/** Fewest cores a lane gets: below this, a lane's own threads would starve (measured at 4). */
export const CORES_PER_LANE = 4;
/** Most lanes `auto` takes (the most measured). */
export const MAX_AUTO_LANES = 4;
/** Fewest images a lane gets from `auto`: a lane pays a model load and its sessions' creation
 *  (0.3–1 s for the fixture models), which 16 images' probes outweigh (an ImageNet image's default
 *  probes cost about 0.7 s of CPU on the 2-core development VM). The 100 ImageNet samples, under
 *  a batch a lane in 4 lanes, gained the most of the cases measured. */
export const MIN_AUTO_IMAGES_PER_LANE = 16;

/**
 * How many lanes: `choice` a number, or 'auto' (the default). Auto takes one lane per
 * CORES_PER_LANE cores, at most MAX_AUTO_LANES, one where the model runs on a GPU (one device, one
 * queue), no more than one per MIN_AUTO_IMAGES_PER_LANE images, and no more than the free memory
 * holds at `laneBytes` each.
 */
export function lanePlan(
  choice: number | 'auto',
  o: { device: string; images: number; laneBytes: number; threads?: number; cpus?: number; free?: number },
): LanePlan {
  const cpus = o.cpus ?? physicalCores() ?? cpuBudget();
  const split = (lanes: number, why: string): LanePlan => {
    // threads as the user set them (--threads, "threads"), else the lane's share of the cores
    const threads = Math.max(1, o.threads ?? Math.floor(cpus / lanes));
    return { lanes, threads, workers: Math.max(1, Math.floor(threads / 2)), why };
  };
  if (choice !== 'auto') {
    if (!(Number.isInteger(choice) && choice >= 1)) throw new SkepticInputError(`lanes must be a whole number ≥ 1 or auto, not ${choice}`);
    return split(choice, `${choice} as asked`);
  }
  if (o.device !== 'cpu') return split(1, `the model runs on ${o.device}`);
  // threads the user set for each session are a lane's share at least: 16 threads on 16 cores
  // leave room for one lane, not four lanes of 16
  const byCores = Math.min(MAX_AUTO_LANES, Math.floor(cpus / Math.max(CORES_PER_LANE, o.threads ?? 0)));
  if (byCores <= 1) return split(1, `${cpus} cores`);
  const byImages = Math.floor(o.images / MIN_AUTO_IMAGES_PER_LANE);
  if (byImages <= 1) return split(1, `${o.images} images`);
  const free = o.free ?? freemem();
  const byMemory = Math.floor(free / o.laneBytes);
  const lanes = Math.max(1, Math.min(byCores, byImages, byMemory));
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  return split(lanes, lanes < Math.min(byCores, byImages) ? `${cpus} cores; free memory ${gib(free)} GiB holds ${byMemory} lanes of ~${gib(o.laneBytes)} GiB` : `${cpus} cores`);
}

/** The plan in words, for the CLI's stderr and the daemon's log: "4 lanes of 4 threads (16 cores)", a `hint` after the why. */
export function describePlan(plan: LanePlan, hint?: string): string {
  return `${plan.lanes} lanes of ${plan.threads} thread${plan.threads === 1 ? '' : 's'} (${plan.why}${hint ? `; ${hint}` : ''})`;
}

/** What a lane may take in memory: its sessions' arenas grow with the model (a guess, on the safe side). */
export function laneBytes(modelBytes: number): number {
  return 2 ** 30 + 40 * modelBytes;
}

/** The lane worker's script: dist/lane-worker.js beside a bundle, lane-worker.ts through tsx in
 *  the sources; SKEPTIC_LANE_WORKER names another (the tests name a missing one). */
function laneScript(): { file: string; code?: string } {
  const given = process.env.SKEPTIC_LANE_WORKER;
  if (given) return { file: given };
  if (!__filename.endsWith('.ts')) return { file: join(__dirname, 'lane-worker.js') };
  const file = join(__dirname, 'lane-worker.ts');
  const tsx = createRequire(__filename).resolve('tsx/cjs');
  return { file, code: `require(${JSON.stringify(tsx)});\nrequire(${JSON.stringify(file)});` };
}

export interface LanesOptions extends Omit<AuditOptions, 'only' | 'evaluateOnly' | 'supplied'> {
  plan: LanePlan;
  open: ShardOpen;
  followSymlinks?: boolean;
}

/** A whole audit as a shard: the one of one, which the lanes split. */
const WHOLE: ShardSpec = { index: 0, count: 1, source: 'the whole audit' };

/**
 * Runs `shard`'s images in `opts.plan.lanes` lanes and returns each lane's result (runShard's,
 * over the shard's images in that lane). Progress counts the shard's images, `total` of them.
 * Cancelling stops every lane between batches; each then returns what it finished.
 */
async function runLanes(shard: ShardSpec, total: number, opts: LanesOptions): Promise<ShardResult[]> {
  const { plan } = opts;
  const done = new Array<number>(plan.lanes).fill(0);
  const hits = new Array<number>(plan.lanes).fill(0);
  const progress = () => opts.onProgress?.({ done: done.reduce((a, b) => a + b, 0), total, phase: 'evaluating', cacheHits: hits.reduce((a, b) => a + b, 0) });
  progress();
  const script = laneScript();
  const workers: Worker[] = [];
  const exits: Promise<unknown>[] = [];
  const onAbort = () => workers.forEach((w) => w.postMessage({ type: 'cancel' }));
  opts.signal?.addEventListener('abort', onAbort);
  try {
    return await Promise.all(
      Array.from({ length: plan.lanes }, (_, lane) => {
        const job: LaneJob = {
          open: opts.open,
          followSymlinks: opts.followSymlinks,
          seed: opts.seed ?? 0,
          batchSize: opts.batchSize ?? 32,
          limit: opts.limit,
          cacheDir: opts.cacheDir,
          shard,
          lane,
          lanes: plan.lanes,
          threads: plan.threads,
          workers: plan.workers,
        };
        const w = script.code ? new Worker(script.code, { eval: true, workerData: job }) : new Worker(script.file, { workerData: job });
        workers.push(w);
        exits.push(new Promise((r) => w.once('exit', r)));
        if (opts.signal?.aborted) w.postMessage({ type: 'cancel' });
        // A lane posts its result after releasing its sessions (lane-worker.ts), so its thread
        // can be ended then; ending it earlier, with sessions alive, would abort the process.
        return new Promise<ShardResult>((resolve, reject) => {
          w.on('message', (m: LaneMessage) => {
            if (m.type === 'progress') {
              done[lane] = m.done;
              hits[lane] = m.cacheHits;
              progress();
            } else if (m.type === 'result') {
              resolve(JSON.parse(m.json) as ShardResult);
              void w.terminate();
            } else {
              reject(m.input ? new SkepticInputError(m.message, m.file) : new Error(`lane ${lane + 1}/${plan.lanes}: ${m.message}`));
              void w.terminate();
            }
          });
          w.on('error', (e) => reject(new Error(`lane ${lane + 1}/${plan.lanes} failed: ${e.message}`)));
          w.on('exit', (code) => reject(new Error(`lane ${lane + 1}/${plan.lanes} ended (exit ${code}) before its result`)));
        });
      }),
    );
  } catch (e) {
    // one lane failed: the others stop between batches, release their sessions and post what
    // they have; wait for that, so that no thread is ended with its sessions alive
    onAbort();
    await Promise.all(exits);
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Why the work runs in one lane when this bundle lacks its lane script; undefined when it has it. */
function laneScriptMissing(plan: LanePlan): string | undefined {
  const { file } = laneScript();
  return existsSync(file) ? undefined : `lanes: ${file} is missing, so the audit ran in one lane instead of ${plan.lanes}`;
}

/**
 * One shard of a sharded audit (`skeptic audit --shard`) in lanes: the shard's images split
 * among the lanes (laneOf), their results joined into the result one process writes for the
 * shard, records in dataset order. `model` and `dataset` are this thread's, opened as `open` says.
 * A plan of one lane is runShard in this thread.
 */
export async function runShardInLanes(model: LoadedModel, dataset: Dataset, shard: ShardSpec, opts: LanesOptions): Promise<ShardResult> {
  if (opts.plan.lanes <= 1) return runShard(model, dataset, shard, opts.open, opts);
  const missing = laneScriptMissing(opts.plan);
  if (missing) {
    console.error(`skeptic: ${missing}`);
    return runShard(model, dataset, shard, opts.open, opts);
  }
  const started = Date.now();
  const members = dataset.records.filter(inShard(shard.index, shard.count)).length;
  const results = await runLanes(shard, members, opts);
  const [first] = results;
  const byImage = <T extends { image: number }>(a: T, b: T) => a.image - b.image;
  const probes: ShardResult['probes'] = {};
  for (const id of Object.keys(first.probes)) {
    const parts = results.map((r) => r.probes[id]);
    const failed = parts.find((p) => p.status === 'failed');
    const status = failed ? 'failed' : parts.find((p) => p.status !== 'ok')?.status ?? 'ok';
    probes[id] = { status, records: parts.flatMap((p) => p.records).sort(byImage) };
    if (failed?.reason) probes[id].reason = failed.reason;
  }
  return {
    ...first,
    shard,
    status: results.some((r) => r.status === 'cancelled') ? 'cancelled' : 'complete',
    images: results.flatMap((r) => r.images).sort(byImage),
    probes,
    run: {
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      host: first.run.host,
      cache: { hits: results.reduce((a, r) => a + r.run.cache.hits, 0), misses: results.reduce((a, r) => a + r.run.cache.misses, 0), path: first.run.cache.path },
    },
  };
}

/**
 * The audit of `dataset` in `plan.lanes` lanes, merged. `model` and `dataset` are this thread's,
 * opened as `open` says (the lanes open their own the same way); the merge uses them.
 * Cancelling stops every lane between batches; the report then holds what the lanes finished.
 * A plan of one lane is audit() in this thread.
 */
export async function auditInLanes(model: LoadedModel, dataset: Dataset, opts: LanesOptions): Promise<Report> {
  const { plan } = opts;
  if (plan.lanes <= 1) return audit(model, dataset, opts);
  const missing = laneScriptMissing(plan);
  if (missing) {
    // a bundle without its lane script (a partial copy of dist/): one lane, saying why
    const report = await audit(model, dataset, opts);
    report.warnings.push(missing);
    return report;
  }
  const started = Date.now();
  const seed = opts.seed ?? 0;
  const batchSize = opts.batchSize ?? 32;
  const results = await runLanes(WHOLE, dataset.records.length, opts);

  // The lanes are this audit's shards: they must agree with this thread's opening of it.
  const here = shardIdentity(model, dataset, { seed, limit: opts.limit, batchSize, probes: opts.probes, count: 1 });
  results.forEach((r, lane) => {
    const diffs = identityDiff(here, r.identity, 'this audit', `lane ${lane + 1}`);
    if (diffs.length) throw new Error(`lane ${lane + 1}/${plan.lanes} opened another audit: ${diffs.join('; ')}`);
  });
  const cancelled = results.some((r) => r.status === 'cancelled');
  // After a cancel, the merge reads only the images the lanes finished: the others stay in the
  // report unevaluated, as in a cancelled single lane's report.
  const finished = new Set(results.flatMap((r) => r.images.filter((im) => im.sha256 || im.error).map((im) => dataset.records[im.image].index)));
  const data: Dataset = cancelled ? { ...dataset, stream: (spec, so) => dataset.stream(spec, { ...so, only: (r) => finished.has(r.index) && (so.only?.(r) ?? true) }) } : dataset;

  // The merge: every summary over all records, served from the lanes' records like cache hits.
  const report = await audit(model, data, {
    ...opts,
    seed,
    batchSize,
    supplied: suppliedRecords(results, dataset, opts.probes, () => 'a lane'),
    // a cancelled audit still summarises what finished (as audit() does after a cancel)
    signal: cancelled ? undefined : opts.signal,
    onProgress: opts.onProgress && ((p: AuditProgress) => p.phase !== 'evaluating' && opts.onProgress!(p)),
  });
  if (cancelled) {
    report.run.cancelled = true;
    for (const p of Object.values(report.probes)) if (p.status === 'ok') p.status = 'cancelled';
  }
  report.run.startedAt = new Date(started).toISOString();
  report.run.durationMs = Date.now() - started;
  // The merge counted every lane's record as a hit; the lanes' own misses are the audit's, beside
  // the few records the merge computed itself (a capped probe's top-up, merge.ts)
  const laneMisses = results.reduce((a, r) => a + r.run.cache.misses, 0);
  report.run.cache = { hits: report.run.cache.hits - laneMisses, misses: laneMisses + report.run.cache.misses, path: opts.cacheDir };
  report.run.lanes = { count: plan.lanes, threads: plan.threads, why: plan.why };
  return report;
}
