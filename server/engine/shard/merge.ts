/**
 * `skeptic merge`: the shards of an audit back into the one report a single process writes.
 *
 * The merge is the audit itself (audit.ts), run over the whole selection with every shard's
 * per-image records handed in as if they were cache hits (AuditOptions.supplied). So the
 * summaries run exactly as in a single process, over the union of records in dataset order, and
 * whatever needs more than one image happens here, once:
 *  - every probe's summarize (metrics, findings, plots, which images get artifacts);
 *  - cue-conflict's stimuli made from pairs of images across the dataset (a second pass over
 *    the data; cached in the results cache like any summary-level work);
 *  - prior's feature probe and cross-validation over all records;
 *  - ood's user OOD set, which is streamed in summarize;
 *  - artifacts (PNGs, .npy) for the images the summaries picked, decoded again;
 *  - records a shard could not know it owed: a probe capped at its first K images (attack)
 *    counts images that decode, and a shard caps by listing position without seeing the other
 *    shards' decode failures, so when an earlier image fails to decode, the merge computes the
 *    next one itself (run.shards.computed counts such records).
 * The merge reads (hashes) every image again to key the records by content, but decodes only the
 * few it must: that also notices an image that changed since its shard ran (it is audited anew).
 */
import { audit, type AuditOptions } from '../audit';
import { imageKey } from '../cache/cache';
import { SkepticInputError } from '../errors';
import type { Report } from '../report/schema';
import type { Dataset, LoadedModel } from '../types';
import { shardOf } from './assign';
import { identityDiff, listingHash, shardIdentity, type ShardResult } from './result';

export interface MergeInput {
  file: string;
  result: ShardResult;
}

export interface MergePlan {
  /** The shard whose identity the others were checked against (the first given). */
  reference: MergeInput;
  count: number;
  /** Complete shards, by index. */
  merged: MergeInput[];
  missing: number[];
  /** Shards that did not finish, with why. */
  failed: Array<{ index: number; file: string; why: string }>;
}

const label = (i: number, n: number) => `${i}/${n}`;

/**
 * Checks that the shards belong to one audit and says what is missing. Without `partial`, a
 * missing or unfinished shard is an error that names it.
 */
export function planMerge(inputs: MergeInput[], partial: boolean): MergePlan {
  if (inputs.length === 0) throw new SkepticInputError('merge needs at least one shard result');
  const reference = inputs[0];
  const name = (m: MergeInput) => m.file;
  for (const other of inputs.slice(1)) {
    const diffs = identityDiff(reference.result.identity, other.result.identity, name(reference), name(other));
    if (diffs.length) {
      throw new SkepticInputError(`${other.file}: not a shard of the same audit as ${reference.file}; they differ in ${diffs.join('; ')}`, other.file);
    }
  }
  const count = reference.result.identity.shardCount;
  const byIndex = new Map<number, MergeInput>();
  for (const m of inputs) {
    const { index } = m.result.shard;
    const seen = byIndex.get(index);
    if (seen) throw new SkepticInputError(`shard ${label(index, count)} given twice: ${seen.file} and ${m.file}`, m.file);
    byIndex.set(index, m);
  }
  const merged: MergeInput[] = [];
  const missing: number[] = [];
  const failed: MergePlan['failed'] = [];
  for (let i = 0; i < count; i++) {
    const m = byIndex.get(i);
    if (!m) missing.push(i);
    else if (m.result.status !== 'complete') failed.push({ index: i, file: m.file, why: 'was cancelled before it finished' });
    else merged.push(m);
  }
  if ((missing.length || failed.length) && !partial) {
    const parts: string[] = [];
    if (missing.length) parts.push(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => label(i, count)).join(', ')} missing`);
    for (const f of failed) parts.push(`shard ${label(f.index, count)} (${f.file}) ${f.why}`);
    throw new SkepticInputError(`cannot merge: ${parts.join('; ')}. Rerun ${missing.length + failed.length > 1 ? 'them' : 'it'}, or merge what is there with --partial`);
  }
  if (merged.length === 0) throw new SkepticInputError('cannot merge: no shard finished');
  return { reference, count, merged, missing, failed };
}

export interface MergeOptions extends Pick<AuditOptions, 'probes' | 'signal' | 'onProgress' | 'cacheDir' | 'outDir' | 'baseDir'> {}

/**
 * Shards' records as AuditOptions.supplied: keyed by content like the cache, so the merging
 * audit serves them as hits. A probe that failed in a shard fails in the merged report too,
 * saying where (`where` names a shard by its index).
 */
export function suppliedRecords(
  results: readonly ShardResult[],
  dataset: Dataset,
  probes: AuditOptions['probes'],
  where: (index: number) => string,
): NonNullable<AuditOptions['supplied']> {
  const supplied: NonNullable<AuditOptions['supplied']> = {};
  for (const probe of probes) {
    const entries: Array<[string, object]> = [];
    let failed: string | undefined;
    for (const result of results) {
      const p = result.probes[probe.id];
      if (!p) continue;
      if (p.status === 'failed' && !failed) failed = `${p.reason ?? `${probe.id} failed`} (in ${where(result.shard.index)})`;
      const sha = new Map(result.images.map((im) => [im.image, im.sha256]));
      for (const rec of p.records) {
        const s = sha.get(rec.image);
        if (!s) continue;
        const { image, ...r } = rec;
        entries.push([imageKey(s, dataset.records[image]?.label), r]);
      }
    }
    supplied[probe.id] = { entries, failed };
  }
  return supplied;
}

/**
 * Builds the report from the planned shards, with the model and dataset opened again as the
 * shards opened them (ShardResult.open).
 */
export async function mergeShards(model: LoadedModel, dataset: Dataset, plan: MergePlan, opts: MergeOptions): Promise<Report> {
  const id = plan.reference.result.identity;
  const ref = plan.reference.file;
  if (model.sha256 !== id.model.sha256) {
    throw new SkepticInputError(`${model.path}: the model changed since the shards ran (sha256 ${model.sha256.slice(0, 12)}…, shards: ${id.model.sha256.slice(0, 12)}…)`, model.path);
  }
  const now = shardIdentity(model, dataset, { seed: id.seed, limit: id.limit ?? undefined, batchSize: id.batchSize, probes: opts.probes, count: id.shardCount });
  if (listingHash(dataset.records) !== id.dataset.listing) {
    throw new SkepticInputError(
      `${dataset.path}: the dataset changed since the shards ran (${dataset.records.length} of ${dataset.total} items selected now, ` +
        `${id.dataset.selected} of ${id.dataset.total} then, or other ids or labels)`,
      dataset.path,
    );
  }
  const diffs = identityDiff(id, now, ref, 'this merge');
  if (diffs.length) throw new SkepticInputError(`cannot merge: the shards and this merge differ in ${diffs.join('; ')}`);

  const partial = plan.missing.length + plan.failed.length > 0;
  const covered = new Set(plan.merged.map((m) => m.result.shard.index));
  const inCovered = (r: Dataset['records'][number]) => covered.has(shardOf(r.id, plan.count));
  const data: Dataset = partial
    ? { ...dataset, records: dataset.records.filter(inCovered), stream: (spec, so) => dataset.stream(spec, { ...so, only: (r) => inCovered(r) && (so.only?.(r) ?? true) }) }
    : dataset;

  const supplied = suppliedRecords(
    plan.merged.map((m) => m.result),
    dataset,
    opts.probes,
    (i) => `shard ${label(i, plan.count)}`,
  );
  const shaById = new Map<string, string>();
  for (const { result } of plan.merged) for (const im of result.images) if (im.sha256) shaById.set(im.id, im.sha256);

  const report = await audit(model, data, {
    ...opts,
    seed: id.seed,
    batchSize: id.batchSize,
    limit: id.limit ?? undefined,
    supplied,
  });

  const changed = report.images.filter((im) => im.sha256 && shaById.has(im.id) && shaById.get(im.id) !== im.sha256).length;
  if (changed) report.warnings.push(`${changed} images changed since their shard ran; the merge audited their current contents`);
  if (partial) {
    const absent = [...plan.missing, ...plan.failed.map((f) => f.index)].sort((a, b) => a - b);
    report.warnings.push(
      `partial report: built from ${plan.merged.length} of ${plan.count} shards (without ${absent.map((i) => label(i, plan.count)).join(', ')}); ` +
        `it covers ${data.records.length} of the ${dataset.records.length} selected images`,
    );
  }
  report.run.shards = {
    count: plan.count,
    merged: plan.merged.map((m) => m.result.shard.index),
    missing: plan.missing,
    failed: plan.failed.map((f) => f.index),
    partial,
    covered: data.records.length,
    selected: dataset.records.length,
    computed: report.run.cache.misses,
    changed,
    files: plan.merged.map((m) => m.file),
  };
  return report;
}
