/**
 * A shard result: what one shard of a larger audit computed, and everything `merge` needs to
 * turn the shards back into the report a single process would have written.
 *
 * It holds the shard's per-image records (the expensive part: every forward and backward pass
 * over its images), the content hash of each of its images, and the audit's identity (model,
 * dataset listing, seed, probes, parameters, engine version) so that shards of different
 * audits are never merged. What needs more than one image (cue-conflict pairs images across
 * the dataset, prior fits a probe on all features, every summary reads all records) is done by
 * the merge, over the union of records in dataset order: see merge.ts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { audit, type AuditOptions } from '../audit';
import { SkepticInputError } from '../errors';
import { writeFileAtomic } from '../fs/atomic';
import type { ProbeStatus, Report } from '../report/schema';
import type { Dataset, DatasetRecord, LoadedModel } from '../types';
import { ENGINE_VERSION, TOOL_VERSION } from '../version';
import { laneOf, shardOf, type ShardSpec } from './assign';

export const SHARD_FORMAT = 'skeptic-shard';
export const SHARD_FORMAT_VERSION = 1;

/** What must be equal across the shards of one audit (compared field by field by the merge). */
export interface ShardIdentity {
  engineVersion: string;
  toolVersion: string;
  model: { sha256: string; preprocessing: unknown; outputKind: string; labels: string[] | null };
  /** `listing` hashes the selected items (after --limit): their ids, labels and problems. */
  dataset: { listing: string; selected: number; total: number };
  seed: number;
  limit: number | null;
  batchSize: number;
  probes: string[];
  /** The probes' resolved parameters, as the report shows them. */
  params: Record<string, Record<string, unknown>>;
  shardCount: number;
}

/** How to open the model and the data again (the merge runs where the shards ran). */
export interface ShardOpen {
  modelPath: string;
  /** Model loading options as the front end resolved them (preprocess, labels, output kind). */
  modelOptions: Record<string, unknown>;
  dataPath: string;
  datasetOptions: { pathColumn?: string; labelColumn?: string };
  /** The probes and parameters as given (the factory's input; identity.params is its output). */
  probes: string[];
  params: Record<string, Record<string, unknown>>;
  /** Folder report paths are relative to. */
  baseDir: string;
}

export interface ShardImage {
  image: number;
  id: string;
  sha256?: string;
  error?: string;
}

export interface ShardResult {
  format: typeof SHARD_FORMAT;
  formatVersion: number;
  shard: ShardSpec;
  identity: ShardIdentity;
  open: ShardOpen;
  /** complete: every image of the shard went through every probe; cancelled: it stopped early. */
  status: 'complete' | 'cancelled';
  /** The shard's images, in dataset order (indices into the selected items). */
  images: ShardImage[];
  probes: Record<string, { status: ProbeStatus; reason?: string; records: Array<{ image: number } & Record<string, unknown>> }>;
  run: { startedAt: string; durationMs: number; host: string; cache: { hits: number; misses: number; path?: string } };
}

/** sha256 of the selected items' identities: equal listings, equal hash. */
export function listingHash(records: readonly DatasetRecord[]): string {
  const h = createHash('sha256');
  for (const r of records) h.update(`${r.index}\0${r.id}\0${r.label ?? ''}\0${r.problem ?? ''}\n`);
  return h.digest('hex');
}

export function shardIdentity(model: LoadedModel, dataset: Dataset, o: { seed: number; limit?: number; batchSize: number; probes: AuditOptions['probes']; count: number }): ShardIdentity {
  return {
    engineVersion: ENGINE_VERSION,
    toolVersion: TOOL_VERSION,
    model: { sha256: model.sha256, preprocessing: model.preprocessing, outputKind: model.info.outputKind, labels: model.labels?.names ?? null },
    dataset: { listing: listingHash(dataset.records), selected: dataset.records.length, total: dataset.total },
    seed: o.seed,
    limit: o.limit ?? null,
    batchSize: o.batchSize,
    probes: o.probes.map((p) => p.id),
    params: Object.fromEntries(o.probes.map((p) => [p.id, p.params])),
    shardCount: o.count,
  };
}

/** The items shard `index` of `count` audits. */
export function inShard(index: number, count: number): (r: DatasetRecord) => boolean {
  return (r) => shardOf(r.id, count) === index;
}

/**
 * Audits one shard: its items through every probe's per-image work (with the cache, as an
 * audit does), no summaries. Progress is reported as the audit reports it. With `lane`, only the
 * shard's items in that lane (laneOf; lanes.ts runs the lanes and joins their results).
 */
export async function runShard(
  model: LoadedModel,
  dataset: Dataset,
  shard: ShardSpec,
  open: ShardOpen,
  opts: AuditOptions,
  lane?: { index: number; count: number },
): Promise<ShardResult> {
  const seed = opts.seed ?? 0;
  const batchSize = opts.batchSize ?? 32;
  const inThis = inShard(shard.index, shard.count);
  const only = lane ? (r: DatasetRecord) => inThis(r) && laneOf(r.id, lane.count) === lane.index : inThis;
  const report: Report = await audit(model, dataset, { ...opts, seed, batchSize, only, evaluateOnly: true, outDir: undefined });
  const images: ShardImage[] = [];
  dataset.records.forEach((r, i) => {
    if (!only(r)) return;
    const im = report.images[i];
    const e: ShardImage = { image: i, id: im.id };
    if (im.sha256) e.sha256 = im.sha256;
    if (im.error) e.error = im.error;
    images.push(e);
  });
  const probes: ShardResult['probes'] = {};
  for (const [id, p] of Object.entries(report.probes)) {
    probes[id] = { status: p.status, records: p.records };
    if (p.reason) probes[id].reason = p.reason;
  }
  return {
    format: SHARD_FORMAT,
    formatVersion: SHARD_FORMAT_VERSION,
    shard,
    identity: shardIdentity(model, dataset, { seed, limit: opts.limit, batchSize, probes: opts.probes, count: shard.count }),
    open,
    status: report.run.cancelled ? 'cancelled' : 'complete',
    images,
    probes,
    run: {
      startedAt: report.run.startedAt,
      durationMs: report.run.durationMs,
      host: (await import('node:os')).hostname(),
      cache: report.run.cache,
    },
  };
}

/** The file name of a shard's result: sorts in shard order. */
export function shardFileName(shard: { index: number; count: number }): string {
  const w = Math.max(4, String(shard.count).length);
  return `shard-${String(shard.index).padStart(w, '0')}-of-${String(shard.count).padStart(w, '0')}.json`;
}

/** Writes the result under dir, atomically (a merge never sees half a shard). Returns the path. */
export function writeShard(result: ShardResult, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, shardFileName(result.shard));
  writeFileAtomic(file, JSON.stringify(result) + '\n');
  return file;
}

/** Reads a shard result, or says in one line why the file is not one. */
export function readShard(file: string): ShardResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SkepticInputError(code === 'ENOENT' ? `shard result not found: ${file}` : `cannot read shard result ${file} (${code})`, file);
  }
  let v: ShardResult;
  try {
    v = JSON.parse(text) as ShardResult;
  } catch (e) {
    throw new SkepticInputError(`${file}: not a shard result (invalid JSON: ${(e as Error).message})`, file);
  }
  if (!v || v.format !== SHARD_FORMAT) throw new SkepticInputError(`${file}: not a Skeptic shard result (write one with skeptic audit --shard I/N)`, file);
  if (v.formatVersion !== SHARD_FORMAT_VERSION) {
    throw new SkepticInputError(`${file}: shard format ${v.formatVersion}, this Skeptic reads format ${SHARD_FORMAT_VERSION}: rerun the shard with this version`, file);
  }
  for (const key of ['shard', 'identity', 'open', 'images', 'probes'] as const) {
    if (!v[key] || typeof v[key] !== 'object') throw new SkepticInputError(`${file}: shard result without '${key}'`, file);
  }
  return v;
}

/** The fields of two identities that differ, as "name (a: x, b: y)" with short values. */
export function identityDiff(a: ShardIdentity, b: ShardIdentity, nameA: string, nameB: string): string[] {
  const fields: Array<[string, (i: ShardIdentity) => unknown]> = [
    ['engine version', (i) => i.engineVersion],
    ['tool version', (i) => i.toolVersion],
    ['model (sha256)', (i) => i.model.sha256],
    ['preprocessing', (i) => i.model.preprocessing],
    ['output kind', (i) => i.model.outputKind],
    ['class names', (i) => i.model.labels],
    ['dataset (selected items)', (i) => `${i.dataset.selected} of ${i.dataset.total}, listing ${i.dataset.listing.slice(0, 12)}`],
    ['seed', (i) => i.seed],
    ['--limit', (i) => i.limit],
    ['batch size', (i) => i.batchSize],
    ['probes', (i) => i.probes],
    ['probe parameters', (i) => i.params],
    ['shard count', (i) => i.shardCount],
  ];
  const out: string[] = [];
  for (const [name, get] of fields) {
    const x = JSON.stringify(get(a));
    const y = JSON.stringify(get(b));
    if (x === y) continue;
    if (name === 'probe parameters') {
      // Name the parameters that differ rather than printing both blocks.
      const keys = new Set<string>();
      for (const id of new Set([...Object.keys(a.params), ...Object.keys(b.params)])) {
        const pa = a.params[id] ?? {};
        const pb = b.params[id] ?? {};
        for (const k of new Set([...Object.keys(pa), ...Object.keys(pb)])) {
          if (JSON.stringify(pa[k]) !== JSON.stringify(pb[k])) keys.add(`${id}.${k} (${nameA}: ${short(pa[k])}, ${nameB}: ${short(pb[k])})`);
        }
      }
      out.push(`probe parameters ${[...keys].join(', ')}`);
    } else out.push(`${name} (${nameA}: ${short(get(a))}, ${nameB}: ${short(get(b))})`);
  }
  return out;
}

function short(v: unknown): string {
  const s = v === undefined ? 'unset' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
