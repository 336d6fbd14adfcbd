/**
 * The `skeptic` command line: a thin shell over the engine. Parses flags, reads skeptic.json,
 * shows progress on stderr, prints a summary on stdout, writes the report files, and maps the
 * outcome to an exit status: 0 ran, 1 findings at or above --fail-on, 2 bad input or usage (or a
 * probe that failed), 130 cancelled, 3 an internal error (one line; the stack with --debug).
 */
import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { COMPARE_USAGE, compareCommand } from './cli-compare';
import type { AuditProgress } from './engine/audit';
import { loadReport as loadBaseline } from './engine/compare/load';
import { findConfig, loadConfig, MAX_BATCH_SIZE, MAX_LANES, MAX_THREADS, type ModelEntry, type SkepticConfig } from './engine/config';
import { openDataset } from './engine/data';
import { CancelledError, SkepticInputError } from './engine/errors';
import { formatGradcheck, gradcheck } from './engine/gradcheck';
import { toBatch } from './engine/image/ops';
import { GradientUnsupportedError } from './engine/model/gradient';
import { describeModel, loadModel, setCpuThreads } from './engine/model';
import { cpuBudget, MAX_CPUS, setCpuBudget } from './engine/model/threads';
import { createProbes, DEFAULT_PROBES, PROBES } from './engine/probes';
import type { Report } from './engine/report/schema';
import { summaryText } from './engine/report/summary';
import { REPORT_FORMATS, writeReport, type ReportFormat } from './engine/report/write';
import type { DeviceChoice, OutputKind, PixelBatch, PixelImage } from './engine/types';
import { TOOL_VERSION } from './engine/version';
import { parseShard, shardFromEnv, type ShardSpec } from './engine/shard/assign';
import { auditInLanes, describePlan, laneBytes, lanePlan } from './engine/shard/lanes';
import { inShard } from './engine/shard/result';
import { mergeCommand, shardCommand } from './shard-cli';
import { checkRegularFile, MAX_MODEL_BYTES, MAX_TEXT_BYTES } from './engine/fs/files';
import { checkOutDir } from './engine/fs/outdir';

const USAGE = `Usage:
  skeptic audit MODEL --data DATASET [options]   audit an ONNX image classifier
  skeptic inspect MODEL [options]                print what Skeptic reads from a model
  skeptic merge SHARD... --out DIR [options]     merge shard results (audit --shard) into one report
  skeptic gradcheck MODEL [options]              check Skeptic's input gradient of a model against
                                                 finite differences (exit 1 when it fails)
  skeptic compare BASE NEW [options]             compare two audits (report.json files or report
                                                 folders): metrics, tests, images that changed
  skeptic probes                                 list the probes
  skeptic --version | --help

Audit options:
  --data PATH            class folders, a .csv/.jsonl manifest, or a folder of MNIST idx files
  --ood PATH             an out-of-distribution dataset for the ood probe (any dataset kind)
  --cue-conflict PATH    cue-conflict stimuli (<shape>/<shape>N-<texture>M.png, or a manifest
                         with path,shape,texture) for the cue-conflict probe
  --categories FILE      class → category mapping for cue-conflict: {"category": [classes]}
  --probes LIST          comma-separated probe ids (default: ${DEFAULT_PROBES.join(',')}; clean always runs)
  --param PROBE.KEY=V    a probe parameter, e.g. --param shift.k=4 (repeatable)
  --preprocess P         preset (imagenet, unit, signed, raw255, mnist) or JSON
                         {"resizeShortSide":256,"interpolation":"bilinear","scale":1,"mean":[..],"std":[..],"channelOrder":"rgb"}
  --labels FILE          class names, one per line, in the model's output order
  --output-kind K        logits | probabilities | log-probabilities (default: detected)
  --path-column NAME, --label-column NAME   manifest columns (default: found by name)
  --limit N              audit a deterministic, class-stratified sample of N images
  --seed N               seed for every random choice (default 0)
  --device D             auto | cpu | webgpu | cuda (default auto)
  --batch-size N         images per model run (default 32)
  --threads N            CPU threads per ONNX Runtime session (default: the physical cores)
  --cpus N               the CPUs this run may use (default: all it may run on); threads, lanes
                         and worker threads are sized from it: a scheduler's share of a node it
                         does not pin the job to (deploy/slurm passes it); also \$SKEPTIC_CPUS
  --lanes N|auto         audit in N lanes, worker threads with their own sessions (default auto:
                         one per 4 cores from 8 cores up, at most 4; see the README)
  --out DIR              report folder (default .skeptic/reports/<model>--<dataset>)
  --format LIST          json,sarif,html (default json)
  --json                 print report.json to stdout instead of the summary
  --fail-on LEVEL        exit 1 when a finding is at least this severe: warning | error
  --config FILE          skeptic.json to use (default: the nearest one above the current folder)
  --no-cache             recompute everything (default: reuse .skeptic/cache)
  --baseline REPORT      an earlier report: SARIF results get baselineState new/unchanged/absent
  --cache-dir DIR        results cache folder, may be shared by many processes (NFS);
                         default \$SKEPTIC_CACHE_DIR, else .skeptic/cache
  --shard I/N            audit shard I (0-based) of N and write its shard result to --out
                         (default .skeptic/shards/<model>--<dataset>); without it, a Slurm array
                         task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job pod
                         (JOB_COMPLETION_INDEX) takes its shard from the environment; 'off': never
  --shard-count N        the number of shards, where the environment does not say it
                         (Kubernetes; also \$SKEPTIC_SHARD_COUNT)
  --quiet                no progress output
  --follow-symlinks      follow symbolic links that lead out of the dataset's folder (default:
                         such items are errors)
  --debug                print the stack trace of an internal error

Merge options (SHARD: shard result files, or folders of them):
  --out DIR              report folder (required)
  --partial              merge the shards there are; the report says what it covers
  --format, --json, --fail-on, --device, --threads, --cpus, --cache-dir, --no-cache, --quiet as above

Gradcheck options (and --preprocess, --labels, --output-kind, --device, --seed as above):
  --data PATH            check at real images from this dataset (default: random images)
  --samples N            images to check at (default 3)
  --directions N         random directions per image (default 3)
  --loss L               ce | margin | dlr-targeted (default ce; dlr-targeted aims at
                         a seeded random class per image)

${COMPARE_USAGE}`;

/** Runs the CLI; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        ood: { type: 'string' },
        'cue-conflict': { type: 'string' },
        categories: { type: 'string' },
        probes: { type: 'string' },
        param: { type: 'string', multiple: true },
        preprocess: { type: 'string' },
        labels: { type: 'string' },
        'output-kind': { type: 'string' },
        'path-column': { type: 'string' },
        'label-column': { type: 'string' },
        limit: { type: 'string' },
        seed: { type: 'string' },
        device: { type: 'string' },
        'batch-size': { type: 'string' },
        threads: { type: 'string' },
        cpus: { type: 'string' },
        lanes: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string' },
        json: { type: 'boolean' },
        'fail-on': { type: 'string' },
        config: { type: 'string' },
        'no-cache': { type: 'boolean' },
        'cache-dir': { type: 'string' },
        shard: { type: 'string' },
        'shard-count': { type: 'string' },
        partial: { type: 'boolean' },
        quiet: { type: 'boolean' },
        'follow-symlinks': { type: 'boolean' },
        debug: { type: 'boolean' },
        samples: { type: 'string' },
        directions: { type: 'string' },
        loss: { type: 'string' },
        baseline: { type: 'string' },
        'fail-on-regression': { type: 'boolean' },
        tolerance: { type: 'string', multiple: true },
        alpha: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (e) {
    return usageError((e as Error).message);
  }
  const { values: o, positionals } = args;
  if (o.version) {
    console.log(TOOL_VERSION);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (!command && !o.help) return usageError('no command given');
  if (o.help || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  try {
    switch (command) {
      case 'audit':
        return await auditCommand(rest, o);
      case 'inspect':
        return await inspectCommand(rest, o);
      case 'merge':
        return await mergeCommand(rest, o);
      case 'gradcheck':
        return await gradcheckCommand(rest, o);
      case 'compare':
        return compareCommand(rest, o, usageError);
      case 'probes':
        for (const [id, p] of Object.entries(PROBES)) console.log(`${id.padEnd(8)} ${p.summary}`);
        return 0;
      default:
        return usageError(`unknown command '${command}'`);
    }
  } catch (e) {
    if (e instanceof SkepticInputError) {
      console.error(`skeptic: ${e.message}`);
      return 2;
    }
    return internalError(e, !!o.debug);
  }
}

/** Exit status of an internal error: a bug in Skeptic, not in the user's input. */
export const EXIT_INTERNAL = 3;

/** One line for an unexpected error (the stack only with --debug); exit status 3. */
export function internalError(e: unknown, debug: boolean): number {
  const err = e instanceof Error ? e : new Error(String(e));
  if (debug) console.error(err.stack ?? String(err));
  else console.error(`skeptic: internal error: ${err.message.split('\n')[0]} (a bug in Skeptic; run again with --debug for details)`);
  return EXIT_INTERNAL;
}

export type Flags = Record<string, string | boolean | string[] | undefined>;

async function inspectCommand(positionals: string[], o: Flags): Promise<number> {
  if (positionals.length !== 1) return usageError('inspect takes one MODEL');
  const { entry } = modelEntry(positionals[0], o);
  const model = await loadModel(entry.path, modelOptions(entry, o, undefined));
  try {
    // Wrap to the terminal; a pipe or a log gets each value on one line.
    console.log(describeModel(model, { width: process.stdout.isTTY ? process.stdout.columns : undefined }));
  } finally {
    await model.dispose();
  }
  return 0;
}

async function gradcheckCommand(positionals: string[], o: Flags): Promise<number> {
  if (positionals.length !== 1) return usageError('gradcheck takes one MODEL');
  const loss = str(o.loss) ?? 'ce';
  if (loss !== 'ce' && loss !== 'margin' && loss !== 'dlr-targeted') return usageError(`--loss must be ce, margin or dlr-targeted, not '${loss}'`);
  const { entry, config } = modelEntry(positionals[0], o);
  const model = await loadModel(entry.path, modelOptions(entry, o, config));
  try {
    const samples = int(o.samples, '--samples') ?? 3;
    let images: PixelBatch | undefined;
    let labels: number[] | undefined;
    const dataPath = str(o.data) ? resolve(str(o.data)!) : undefined;
    if (dataPath) {
      // Real images make the check meaningful where random noise sits far from the data.
      const ds = await openDataset(dataPath, { labels: model.labels, limit: samples, seed: int(o.seed, '--seed') ?? 0 });
      const picked: PixelImage[] = [];
      labels = [];
      for await (const batch of ds.stream(model.decodeSpec(0), { batchSize: samples })) {
        for (const s of batch) {
          if (!s.image || picked.length >= samples) continue;
          picked.push(s.image);
          labels.push(s.record.label ?? 0);
        }
      }
      if (!picked.length) throw new SkepticInputError(`${dataPath}: no readable images to check at`, dataPath);
      images = toBatch(picked);
    }
    const result = await gradcheck(model, {
      images,
      labels,
      samples,
      directions: int(o.directions, '--directions'),
      seed: int(o.seed, '--seed'),
      loss,
    });
    console.log(formatGradcheck(result));
    return result.pass ? 0 : 1;
  } catch (e) {
    if (e instanceof GradientUnsupportedError) {
      console.error(`skeptic: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    await model.dispose();
  }
}

async function auditCommand(positionals: string[], o: Flags): Promise<number> {
  if (positionals.length !== 1) return usageError('audit takes one MODEL (and --data DATASET)');
  const { entry, config } = modelEntry(positionals[0], o);
  const dataPath = str(o.data) ? resolve(str(o.data)!) : entry.dataset;
  if (!dataPath) return usageError(`no dataset: pass --data DATASET${config ? ` or add "dataset" for this model in ${config.file}` : ''}`);

  const failOn = str(o['fail-on']);
  if (failOn && failOn !== 'warning' && failOn !== 'error') return usageError(`--fail-on must be warning or error, not '${failOn}'`);
  const formats = (str(o.format) ?? 'json').split(',').map((f) => f.trim()) as ReportFormat[];
  const badFormat = formats.find((f) => !REPORT_FORMATS.includes(f));
  if (badFormat) return usageError(`unknown --format '${badFormat}'; known: ${REPORT_FORMATS.join(', ')}`);
  const seed = int(o.seed, '--seed') ?? config?.seed ?? 0;
  const limit = int(o.limit, '--limit') ?? entry.limit;
  const batchSize = batchSizeOf(o) ?? config?.batchSize ?? 32;
  const probeIds = str(o.probes)?.split(',').map((s) => s.trim()).filter(Boolean) ?? entry.probes ?? DEFAULT_PROBES;
  const params = probeParams(config, o.param as string[] | undefined);
  // Flags that name a probe's input also switch that probe on.
  const wanted = [...probeIds];
  const want = (id: string) => wanted.includes(id) || wanted.push(id);
  if (str(o.ood)) {
    (params.ood ??= {}).oodData = resolve(str(o.ood)!);
    want('ood');
  }
  if (str(o['cue-conflict'])) {
    (params['cue-conflict'] ??= {}).stimuli = resolve(str(o['cue-conflict'])!);
    want('cue-conflict');
  }
  if (str(o.categories)) (params['cue-conflict'] ??= {}).categories = resolve(str(o.categories)!);
  const probes = createProbes(wanted, params);
  const baseline = str(o.baseline) ? loadBaseline(str(o.baseline)!) : undefined;
  const shard = shardChoice(o);

  const baseDir = config ? dirname(config.file) : process.cwd();
  const outDir = str(o.out)
    ? resolve(str(o.out)!)
    : join(baseDir, '.skeptic', 'reports', `${stem(entry.path)}--${stem(dataPath)}`);
  // A report folder that cannot be written is found before the audit, not after it.
  checkOutDir(outDir);
  const loadOptions = modelOptions(entry, o, config);
  const followSymlinks = !!o['follow-symlinks'] || config?.followSymlinks === true;
  const model = await loadModel(entry.path, loadOptions);
  try {
    // A 200,000-row manifest takes seconds to list: say how far it got.
    const listing = o.quiet ? undefined : progressPrinter();
    const dataset = await openDataset(dataPath, {
      labels: model.labels,
      numClasses: model.info.numClasses,
      pathColumn: str(o['path-column']),
      labelColumn: str(o['label-column']),
      limit,
      seed,
      followSymlinks,
      onProgress: listing && ((p) => listing({ ...p, phase: 'listing', cacheHits: 0 })),
    });
    listing?.({ done: 0, total: 0, phase: 'done', cacheHits: 0 });
    const cacheDir = cacheFolder(o, baseDir);
    const open = { modelPath: entry.path, modelOptions: loadOptions, dataPath, datasetOptions: { pathColumn: str(o['path-column']), labelColumn: str(o['label-column']) }, probes: wanted, params, baseDir };
    // Lanes: the per-image work in worker threads, on many cores (engine/shard/lanes.ts); a
    // shard's images are split among them as a whole audit's are.
    const plan = lanePlan(lanesOf(o, config), {
      device: model.device.used,
      images: shard ? dataset.records.filter(inShard(shard.index, shard.count)).length : dataset.records.length,
      laneBytes: laneBytes(statSync(entry.path).size),
      threads: threadsOf(o, config),
    });
    if (plan.lanes > 1 && !o.quiet) process.stderr.write(`skeptic: ${describePlan(plan, '--lanes 1 for one')}\n`);
    if (shard) {
      const dir = str(o.out) ? resolve(str(o.out)!) : join(baseDir, '.skeptic', 'shards', `${stem(entry.path)}--${stem(dataPath)}`);
      return await shardCommand({ model, dataset, probes, shard, open, seed, batchSize, limit, cacheDir, dir, quiet: !!o.quiet, progress: progressPrinter, plan, followSymlinks });
    }

    // Ctrl-C stops the audit between batches; the partial report is still written.
    const controller = new AbortController();
    const onSigint = () => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\nskeptic: cancelling (Ctrl-C again to quit at once)…\n');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    const progress = o.quiet ? undefined : progressPrinter();
    // What the long probes will do, before they start (the attack probe's protocol and budgets).
    if (!o.quiet) for (const p of probes) if (p.budget) process.stderr.write(`${p.id}: ${p.budget(model)}\n`);
    let report: Report;
    try {
      report = await auditInLanes(model, dataset, { probes, seed, batchSize, limit, signal: controller.signal, onProgress: progress, cacheDir, outDir, baseDir, plan, open, followSymlinks });
    } finally {
      process.off('SIGINT', onSigint);
      progress?.({ done: 0, total: 0, phase: 'done', cacheHits: 0 });
    }

    const written = await writeReport(report, outDir, formats.includes('json') ? formats : ['json', ...formats], { baseline });
    if (o.json) process.stdout.write(JSON.stringify(report, null, 1) + '\n');
    else {
      console.log(summaryText(report));
      if (baseline) {
        const was = new Set(baseline.findings.map((f) => f.id));
        const now = new Set(report.findings.map((f) => f.id));
        console.log(`\nAgainst the baseline: ${report.findings.filter((f) => !was.has(f.id)).length} new finding(s), ${baseline.findings.filter((f) => !now.has(f.id)).length} gone.`);
      }
      console.log(`\nReport: ${written.join(', ')}`);
    }
    return exitStatus(report, failOn);
  } catch (e) {
    if (e instanceof CancelledError) return 130;
    throw e;
  } finally {
    await model.dispose();
  }
}

/**
 * The exit status of a finished audit (or merge): 130 cancelled; 2 when a probe failed (a full
 * disk under the cache, a model error: the audit is incomplete), naming each; 1 when a finding
 * reaches --fail-on; else 0.
 */
export function exitStatus(report: Report, failOn: string | undefined): number {
  if (report.run.cancelled) return 130;
  const failed = Object.entries(report.probes).filter(([, p]) => p.status === 'failed');
  for (const [id, p] of failed) console.error(`skeptic: ${p.reason ?? `${id} failed`}`);
  if (failed.length) return 2;
  const failing = report.findings.filter((f) => f.severity === 'error' || (failOn === 'warning' && f.severity === 'warning'));
  return failOn && failing.length > 0 ? 1 : 0;
}

/** The results cache: --no-cache, --cache-dir, $SKEPTIC_CACHE_DIR, or .skeptic/cache beside the config. */
export function cacheFolder(o: Flags, baseDir: string): string | undefined {
  if (o['no-cache']) return undefined;
  const dir = str(o['cache-dir']) ?? (process.env.SKEPTIC_CACHE_DIR || undefined);
  return dir ? resolve(dir) : join(baseDir, '.skeptic', 'cache');
}

/** --shard I/N, else the scheduler's environment (Slurm array, Kubernetes Indexed Job); 'off': none. */
function shardChoice(o: Flags): ShardSpec | undefined {
  const flag = str(o.shard);
  if (flag === 'off') return undefined;
  if (flag) return parseShard(flag);
  const count = int(o['shard-count'], '--shard-count');
  if (count === 0) throw new SkepticInputError('--shard-count must be at least 1');
  return shardFromEnv(process.env, count);
}

/** The model's entry in skeptic.json (if it has one), with the CLI's path. */
function modelEntry(modelArg: string, o: Flags): { entry: ModelEntry; config?: SkepticConfig } {
  const path = resolve(modelArg);
  checkRegularFile(path, 'model', MAX_MODEL_BYTES);
  const configFile = str(o.config) ? resolve(str(o.config)!) : findConfig(process.cwd());
  if (configFile) checkRegularFile(configFile, 'config', MAX_TEXT_BYTES);
  const config = configFile ? loadConfig(configFile) : undefined;
  const entry = config?.models.find((m) => m.path === path) ?? { path };
  return { entry, config };
}

export function modelOptions(entry: ModelEntry, o: Flags, config: SkepticConfig | undefined) {
  const device = (str(o.device) ?? config?.device ?? 'auto') as DeviceChoice;
  if (!['auto', 'cpu', 'webgpu', 'cuda'].includes(device)) throw new SkepticInputError(`--device must be auto, cpu, webgpu or cuda, not '${device}'`);
  const kind = (str(o['output-kind']) ?? entry.outputKind) as OutputKind | undefined;
  if (kind && !['logits', 'probabilities', 'log-probabilities'].includes(kind)) {
    throw new SkepticInputError(`--output-kind must be logits, probabilities or log-probabilities, not '${kind}'`);
  }
  const cliPre = str(o.preprocess);
  applyCpuFlags(o, config);
  return {
    device,
    preprocess: cliPre ?? entry.preprocess,
    preprocessSource: cliPre ? ('cli' as const) : ('skeptic.json' as const),
    preprocessWhere: !cliPre && config && entry.preprocess !== undefined ? `${config.file}: "preprocess" of ${entry.path}` : undefined,
    labels: str(o.labels) ? resolve(str(o.labels)!) : entry.labels,
    outputKind: kind,
    batchSize: batchSizeOf(o) ?? config?.batchSize,
  };
}

/**
 * --threads N, else skeptic.json's "threads" (undefined: the engine's default), checked and no more
 * than the CPUs: more only adds contention (1000 made a 1.5 s audit take 30 s). `say` prints that.
 */
function threadsOf(o: Flags, config: SkepticConfig | undefined, say = false): number | undefined {
  const threads = int(o.threads, '--threads') ?? config?.threads;
  if (threads === undefined) return undefined;
  if (threads < 1 || threads > MAX_THREADS) throw new SkepticInputError(`--threads must be from 1 to ${MAX_THREADS}, not ${threads}`);
  const cpus = cpuBudget();
  if (threads <= cpus) return threads;
  if (say) console.error(`skeptic: --threads ${threads} is more than the ${cpus} CPUs this process may use; using ${cpus}`);
  return cpus;
}

/**
 * --cpus, then --threads (else skeptic.json's "threads") for the sessions created from now on, in
 * that order: the threads are cut to the budget the CPUs set. An audit's and a merge's.
 */
export function applyCpuFlags(o: Flags, config: SkepticConfig | undefined): void {
  setCpuBudget(cpusOf(o, true));
  setCpuThreads(threadsOf(o, config, true));
}

/**
 * --cpus N (undefined: not given), checked and no more than the CPUs this process may run on; the
 * caller hands it to setCpuBudget, which SKEPTIC_CPUS stands in for when it is undefined.
 */
function cpusOf(o: Flags, say = false): number | undefined {
  const cpus = int(o.cpus, '--cpus');
  if (cpus === undefined) return undefined;
  if (cpus < 1 || cpus > MAX_CPUS) throw new SkepticInputError(`--cpus must be from 1 to ${MAX_CPUS}, not ${cpus}`);
  const allowed = availableParallelism();
  if (cpus <= allowed) return cpus;
  if (say) console.error(`skeptic: --cpus ${cpus} is more than the ${allowed} CPUs this process may run on; using ${allowed}`);
  return allowed;
}

/** --batch-size, within 1..MAX_BATCH_SIZE (memory grows with the batch). */
function batchSizeOf(o: Flags): number | undefined {
  const n = int(o['batch-size'], '--batch-size');
  if (n !== undefined && (n < 1 || n > MAX_BATCH_SIZE)) throw new SkepticInputError(`--batch-size must be from 1 to ${MAX_BATCH_SIZE}, not ${n}`);
  return n;
}

/** --lanes N|auto, else skeptic.json's "lanes", else auto (engine/shard/lanes.ts lanePlan). */
function lanesOf(o: Flags, config: SkepticConfig | undefined): number | 'auto' {
  const flag = str(o.lanes);
  if (flag === undefined) return config?.lanes ?? 'auto';
  if (flag === 'auto') return 'auto';
  const n = int(flag, '--lanes');
  if (n === undefined || n < 1 || n > MAX_LANES) throw new SkepticInputError(`--lanes must be auto or from 1 to ${MAX_LANES}, not ${flag}`);
  return n;
}

/** Probe parameters: skeptic.json's "probes" section, overridden by --param probe.key=value. */
function probeParams(config: SkepticConfig | undefined, flags: string[] | undefined): Record<string, Record<string, unknown>> {
  const params: Record<string, Record<string, unknown>> = structuredClone(config?.probes ?? {});
  for (const flag of flags ?? []) {
    const m = /^([a-z0-9-]+)\.([A-Za-z0-9_]+)=(.*)$/.exec(flag);
    if (!m) throw new SkepticInputError(`--param must look like probe.key=value, not '${flag}'`);
    const value = m[3] === 'true' ? true : m[3] === 'false' ? false : Number.isNaN(Number(m[3])) ? m[3] : Number(m[3]);
    (params[m[1]] ??= {})[m[2]] = value;
  }
  return params;
}

export function progressPrinter(): ((p: AuditProgress) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (p) => {
    if (p.phase === 'done') {
      process.stderr.write('\r\x1b[K');
      return;
    }
    const now = Date.now();
    if (now - last < 100 && p.done < p.total) return;
    last = now;
    const width = 30;
    const filled = p.total ? Math.round((p.done / p.total) * width) : 0;
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const what =
      p.phase === 'listing'
        ? (p.step ?? 'listing')
        : p.phase === 'summarizing'
          ? `summarizing ${p.probe}${p.step ? `: ${p.step}` : ''}`
          : `${p.probe ?? ''}${p.step ? `: ${p.step}` : ''}`;
    process.stderr.write(`\r\x1b[K${bar} ${p.total ? `${p.done}/${p.total} ` : ''}${what}${p.cacheHits ? ` (${p.cacheHits} cached)` : ''}`);
  };
}

function stem(p: string): string {
  return basename(p, extname(p)) || 'dataset';
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function int(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new SkepticInputError(`${flag} must be a non-negative integer, not '${v}'`);
  return n;
}

export function usageError(message: string): number {
  console.error(`skeptic: ${message}\n\n${USAGE}`);
  return 2;
}
