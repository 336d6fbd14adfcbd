/**
 * The CLI's side of sharded audits: `skeptic audit --shard I/N` (or a scheduler's environment)
 * writes a shard result, `skeptic merge SHARD... --out DIR` builds the report. The work is in
 * engine/shard/; this file parses, prints and maps outcomes to exit statuses.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { applyCpuFlags, cacheFolder, exitStatus, progressPrinter, str, usageError, type Flags } from './cli';
import type { AuditProgress } from './engine/audit';
import { openDataset } from './engine/data';
import { CancelledError, SkepticInputError } from './engine/errors';
import { loadModel, type LoadModelOptions } from './engine/model';
import { createProbes } from './engine/probes';
import type { Probe } from './engine/probes/probe';
import { summaryText } from './engine/report/summary';
import { REPORT_FORMATS, writeReport, type ReportFormat } from './engine/report/write';
import type { ShardSpec } from './engine/shard/assign';
import { mergeShards, planMerge, type MergeInput } from './engine/shard/merge';
import { runShardInLanes, type LanePlan } from './engine/shard/lanes';
import { inShard, readShard, writeShard, type ShardOpen } from './engine/shard/result';
import type { Dataset, LoadedModel } from './engine/types';

export interface ShardRun {
  model: LoadedModel;
  dataset: Dataset;
  probes: Probe<object>[];
  shard: ShardSpec;
  open: ShardOpen;
  seed: number;
  batchSize: number;
  limit?: number;
  cacheDir?: string;
  /** Folder the shard result goes to (all shards of an audit write into one). */
  dir: string;
  quiet: boolean;
  progress: typeof progressPrinter;
  /** Lanes for the shard's images (engine/shard/lanes.ts); they open the data as `open` says. */
  plan: LanePlan;
  followSymlinks?: boolean;
}

export async function shardCommand(c: ShardRun): Promise<number> {
  const { shard, dataset } = c;
  const members = dataset.records.filter(inShard(shard.index, shard.count)).length;
  console.error(`skeptic: shard ${shard.index}/${shard.count} (${shard.source}): ${members} of ${dataset.records.length} selected images`);
  const { signal, release } = cancelOnSignals();
  const progress = c.quiet ? undefined : (c.progress() ?? lineProgress('shard'));
  try {
    const result = await runShardInLanes(c.model, dataset, shard, {
      probes: c.probes,
      seed: c.seed,
      batchSize: c.batchSize,
      limit: c.limit,
      signal,
      onProgress: progress,
      cacheDir: c.cacheDir,
      baseDir: c.open.baseDir,
      plan: c.plan,
      open: c.open,
      followSymlinks: c.followSymlinks,
    });
    progress?.({ done: 0, total: 0, phase: 'done', cacheHits: 0 });
    const file = writeShard(result, c.dir);
    const failed = Object.entries(result.probes).filter(([, p]) => p.status === 'failed');
    for (const [, p] of failed) console.error(`skeptic: ${p.reason}`);
    console.log(`Shard ${shard.index}/${shard.count}: ${members} images${result.status === 'cancelled' ? ', cancelled before it finished' : ''} ` +
      `(${result.run.cache.hits} records from the cache, ${result.run.cache.misses} computed)`);
    console.log(`Shard result: ${file}`);
    return result.status === 'cancelled' ? 130 : 0;
  } finally {
    release();
    await c.model.dispose();
  }
}

export async function mergeCommand(positionals: string[], o: Flags): Promise<number> {
  if (positionals.length === 0) return usageError('merge takes shard result files (or folders of them) and --out DIR');
  if (!str(o.out)) return usageError('merge needs --out DIR for the report');
  const failOn = str(o['fail-on']);
  if (failOn && failOn !== 'warning' && failOn !== 'error') return usageError(`--fail-on must be warning or error, not '${failOn}'`);
  const formats = (str(o.format) ?? 'json').split(',').map((f) => f.trim()) as ReportFormat[];
  const badFormat = formats.find((f) => !REPORT_FORMATS.includes(f));
  if (badFormat) return usageError(`unknown --format '${badFormat}'; known: ${REPORT_FORMATS.join(', ')}`);
  const say = (line: string) => o.quiet || console.error(`skeptic merge: ${line}`);

  const files = shardFiles(positionals);
  const inputs: MergeInput[] = [];
  for (const [k, file] of files.entries()) {
    inputs.push({ file, result: readShard(file) });
    if (!o.quiet && (k + 1 === files.length || (k + 1) % Math.max(1, Math.ceil(files.length / 10)) === 0)) say(`read ${k + 1}/${files.length} shard results`);
  }
  const plan = planMerge(inputs, !!o.partial);
  const id = plan.reference.result.identity;
  if (plan.missing.length || plan.failed.length) {
    const absent = [...plan.missing.map((i) => `${i}/${plan.count} missing`), ...plan.failed.map((f) => `${f.index}/${plan.count} (${f.file}) ${f.why}`)];
    say(`partial merge without shard ${absent.join(', ')}`);
  }
  const open = plan.reference.result.open;
  // as an audit takes them: --threads checked and cut to the --cpus budget
  applyCpuFlags(o, undefined);
  const device = str(o.device) ?? (open.modelOptions.device as string | undefined);
  if (device && !['auto', 'cpu', 'webgpu', 'cuda'].includes(device)) throw new SkepticInputError(`--device must be auto, cpu, webgpu or cuda, not '${device}'`);
  say(`${plan.merged.length} of ${plan.count} shards; opening ${open.modelPath} and ${open.dataPath}`);
  const model = await loadModel(open.modelPath, { ...(open.modelOptions as LoadModelOptions), device: device as LoadModelOptions['device'] });
  const { signal, release } = cancelOnSignals();
  const progress = o.quiet ? undefined : (progressPrinter() ?? lineProgress('merge'));
  try {
    const dataset = await openDataset(open.dataPath, { labels: model.labels, ...open.datasetOptions, limit: id.limit ?? undefined, seed: id.seed });
    const outDir = resolve(str(o.out)!);
    const report = await mergeShards(model, dataset, plan, {
      probes: createProbes(open.probes, open.params),
      signal,
      onProgress: progress,
      cacheDir: cacheFolder(o, open.baseDir),
      outDir,
      baseDir: open.baseDir,
    });
    progress?.({ done: 0, total: 0, phase: 'done', cacheHits: 0 });
    const written = await writeReport(report, outDir, formats.includes('json') ? formats : ['json', ...formats]);
    if (o.json) process.stdout.write(JSON.stringify(report, null, 1) + '\n');
    else {
      console.log(summaryText(report));
      const s = report.run.shards!;
      console.log(`\nMerged ${s.merged.length} of ${s.count} shards${s.partial ? ` (partial: ${s.covered} of ${s.selected} images)` : ''}; ${s.computed} records computed by the merge.`);
      console.log(`Report: ${written.join(', ')}`);
    }
    return exitStatus(report, failOn);
  } catch (e) {
    if (e instanceof CancelledError) return 130;
    throw e;
  } finally {
    release();
    await model.dispose();
  }
}

/** Files as given; a folder stands for the shard results in it (shard-*.json). */
function shardFiles(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    const p = resolve(a);
    let dir = false;
    try {
      dir = statSync(p).isDirectory();
    } catch {
      // readShard names the missing file
    }
    if (!dir) {
      out.push(p);
      continue;
    }
    const found = readdirSync(p).filter((f) => /^shard-\d+-of-\d+\.json$/.test(f)).sort().map((f) => join(p, f));
    if (found.length === 0) throw new SkepticInputError(`${p}: no shard results (shard-*-of-*.json) in this folder`, p);
    out.push(...found);
  }
  return out;
}

/**
 * Ctrl-C, and SIGTERM (Slurm at a job's time limit, Kubernetes stopping a pod), stop between
 * batches; what finished is kept (the cache, a shard result marked cancelled).
 */
function cancelOnSignals(): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const on = (name: string) => () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\nskeptic: ${name}, cancelling (again to quit at once)…\n`);
    controller.abort();
  };
  const onInt = on('interrupted');
  const onTerm = on('terminated');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/** Progress as lines (every tenth of the work and each phase), for batch logs without a terminal. */
function lineProgress(what: string): (p: AuditProgress) => void {
  let lastTenth = -1;
  let lastPhase = '';
  return (p) => {
    if (p.phase === 'done') return;
    const tenth = p.total ? Math.floor((p.done / p.total) * 10) : 0;
    const phase = `${p.phase} ${p.phase === 'evaluating' ? '' : (p.probe ?? '')}`;
    if (tenth === lastTenth && phase === lastPhase) return;
    lastTenth = tenth;
    lastPhase = phase;
    const where = p.phase === 'evaluating' ? `${p.done}/${p.total} images${p.cacheHits ? ` (${p.cacheHits} records from shards or cache)` : ''}` : `${p.phase} ${p.probe ?? ''}`;
    process.stderr.write(`skeptic ${what}: ${where}\n`);
  };
}
