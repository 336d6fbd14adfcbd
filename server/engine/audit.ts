/**
 * The audit: streams a dataset through every probe once and assembles the report.
 *
 *   dataset.stream ──► batch of samples ──► each probe's run (or its cached records)
 *                                           └──► records kept per probe, appended to the cache
 *   end (or cancel) ──► each probe's summarize ──► findings with subjects ──► Report
 *
 * Decoding happens once per image for all probes. Memory holds one batch of pixels plus the
 * small per-image records. Cancellation stops between batches and still summarises what
 * finished, so nothing computed is lost.
 */
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { imageKey, ProbeCache } from './cache/cache';
import { CancelledError } from './errors';
import { fsReason } from './fs/files';
import { centre } from './image/ops';
import { writeNpy, writePng } from './image/files';
import { viewShape, type FindingDraft, type ImageKeeper, type Probe, type ProbeImage, type ProbeRecord, type RenderContext } from './probes/probe';
import { ImageTable } from './report/image-table';
import { RecordList } from './report/record-list';
import { REPORT_SCHEMA_VERSION, type Finding, type ImageEntry, type ProbeResult, type Report, type RuleInfo, type Subject } from './report/schema';
import type { Dataset, DatasetRecord, LoadedModel, Sample } from './types';
import { ENGINE_VERSION, TOOL_VERSION } from './version';
import { declareViews } from './views';

export interface AuditProgress {
  /** Images processed so far (evaluated, cached or failed) out of those selected. */
  done: number;
  total: number;
  /** What is running now. */
  phase: 'listing' | 'evaluating' | 'summarizing' | 'rendering' | 'done';
  probe?: string;
  cacheHits: number;
  /** Work inside the phase, in words, when a probe reports it ("style transfer 32/200 stimuli"). */
  step?: string;
}

export interface AuditOptions {
  probes: Probe<object>[];
  seed?: number;
  batchSize?: number;
  /** --limit as the user gave it (the dataset is already limited; this is for the report). */
  limit?: number;
  signal?: AbortSignal;
  onProgress?: (p: AuditProgress) => void;
  /** Results cache folder (e.g. <workspace>/.skeptic/cache); undefined disables caching. */
  cacheDir?: string;
  /** Folder for artifacts the probes write (the report's folder). */
  outDir?: string;
  /** Folder that report paths are relative to (the workspace or the current directory). */
  baseDir?: string;
  /**
   * One shard of a larger audit (shard/): only the records this accepts are evaluated; the
   * others stay in the image table, unevaluated. A probe's image cap then counts by position
   * among the items without a listing problem, since a shard cannot know which of the other
   * shards' items fail to decode; the merge computes the few records that this misses.
   */
  only?: (record: DatasetRecord) => boolean;
  /** Stop after evaluating (a shard): no summaries or artifacts; each probe keeps its raw records. */
  evaluateOnly?: boolean;
  /**
   * Per-image records computed elsewhere (a merge's shards), by probe id, keyed like the cache
   * (imageKey): served like cache hits, never written to the cache. `failed` marks the probe
   * failed (it failed in a shard) so that nothing more is computed for it.
   */
  supplied?: Record<string, { entries: Iterable<[string, object]>; failed?: string }>;
}

/** The rules the audit itself raises about the data. */
const DATA_RULES: Record<string, RuleInfo> = {
  'data/unusable-item': {
    name: 'UnusableDatasetItem',
    text: 'A dataset item could not be used (missing file, path outside the dataset, missing or unknown label).',
    help: 'Fix the row or file named in the message; the rest of the audit went on without it.',
  },
  'data/unreadable-image': {
    name: 'UnreadableImage',
    text: 'An image could not be decoded.',
    help: 'The file is empty, truncated, not an image, or has more pixels than the limit.',
  },
};

interface ProbeState {
  probe: Probe<object>;
  /** Images this probe may see in this audit (0: all), and how many it has seen. */
  limit: number;
  seen: number;
  cache: ProbeCache<object>;
  /** Its records, compact (report/record-list.ts): a record costs its JSON, not an object. */
  records: RecordList<ProbeRecord<object>>;
  failed?: string;
  ms: number;
}

export async function audit(model: LoadedModel, dataset: Dataset, opts: AuditOptions): Promise<Report> {
  const started = Date.now();
  const seed = opts.seed ?? 0;
  const batchSize = opts.batchSize ?? 32;
  const baseDir = opts.baseDir ?? process.cwd();
  const margin = Math.max(0, ...opts.probes.map((p) => p.margin));
  const spec = model.decodeSpec(margin);

  const locate = locator(baseDir);
  // Compact: entries are made when read (report/image-table.ts), so a large dataset costs 32
  // bytes of hash per image here, not an object and a string.
  const table = new ImageTable(dataset.records, locate);
  const images: ImageEntry[] = table.entries;
  const imageIndex = recordPositions(dataset.records);
  const findings: Array<FindingDraft & { probe: string }> = [];
  dataset.records.forEach((r, i) => {
    if (r.problem) findings.push({ probe: 'data', rule: 'data/unusable-item', severity: 'error', image: i, message: r.problem });
  });

  const cacheScope = (probe: string, params: unknown) => ({
    modelSha256: model.sha256,
    preprocessing: model.preprocessing,
    outputKind: model.info.outputKind,
    probe,
    params,
    seed,
    engineVersion: ENGINE_VERSION,
  });
  const states: ProbeState[] = opts.probes.map((probe) => {
    const state: ProbeState = {
      probe,
      limit: probe.imageLimit?.(model) ?? 0,
      seen: 0,
      records: new RecordList(),
      ms: 0,
      cache: new ProbeCache<object>(opts.cacheDir, cacheScope(probe.id, probe.cacheParams ?? probe.params)),
    };
    const supplied = opts.supplied?.[probe.id];
    if (supplied) {
      state.cache.supply(supplied.entries);
      if (supplied.failed) state.failed = supplied.failed;
    }
    return state;
  });

  // A shard caps probes by listing position (see AuditOptions.only); a whole audit by images seen.
  const rank = new Map<number, number>();
  if (opts.only) dataset.records.filter((r) => !r.problem).forEach((r, k) => rank.set(r.index, k));
  const capped = (s: ProbeState, r: DatasetRecord) =>
    s.limit > 0 && (opts.only ? (rank.get(r.index) ?? Infinity) >= s.limit : s.seen >= s.limit);

  const mine = opts.only ? dataset.records.filter(opts.only) : dataset.records;
  const total = mine.length;
  let done = mine.filter((r) => r.problem).length;
  let cacheHits = 0;
  let cacheMisses = 0;
  let cancelled = false;
  const ctx = { model, seed, signal: opts.signal };
  const report = (phase: AuditProgress['phase'], probe?: string) =>
    opts.onProgress?.({ done, total, phase, probe, cacheHits });
  report('evaluating');

  // Probes that keep pixels of some images for their summary (cue-conflict's pairs) take them
  // from this pass: those images are decoded here even when every record of them is cached.
  const keepers: Array<{ state: ProbeState; keeper: ImageKeeper }> = [];
  if (!opts.evaluateOnly) {
    for (const state of states) {
      if (state.failed || !state.probe.keeper) continue;
      try {
        const keeper = state.probe.keeper(dataset, ctx);
        if (keeper) keepers.push({ state, keeper });
      } catch (e) {
        state.failed = `${state.probe.id} failed: ${(e as Error).message}`;
      }
    }
  }

  try {
    const wantImage = (r: DatasetRecord, sha: string) =>
      states.some((s) => !s.failed && !capped(s, r) && !s.cache.has(imageKey(sha, r.label))) ||
      keepers.some((k) => !k.state.failed && k.keeper.wants(r));
    // The dataset decodes the next batch while this one runs through the model.
    let declared = false;
    for await (const batch of dataset.stream(spec, { batchSize, signal: opts.signal, wantImage, only: opts.only })) {
      const usable: ProbeImage[] = [];
      for (const sample of batch) {
        const i = imageIndex.get(sample.record.index)!;
        table.setSha(i, sample.sha256);
        if (sample.error || !sample.sha256) {
          const error = sample.error ?? 'could not be read';
          table.setError(i, error);
          findings.push({ probe: 'data', rule: 'data/unreadable-image', severity: 'error', image: i, message: error });
          continue;
        }
        usable.push(probeImage(sample, i));
      }
      // Each probe's images to compute (cache misses) and records found; then every probe is told
      // its images before the first runs (Probe.prepare), so work it makes off this thread (the
      // corruption views' worker threads) goes on while the probes before it run.
      const work = new Map<ProbeState, { todo: ProbeImage[]; got: ProbeRecord<object>[] }>();
      for (const state of states) {
        if (state.failed) continue;
        const t0 = Date.now();
        const todo: ProbeImage[] = [];
        // the batch's records in image order (hits and computed ones interleave)
        const got: ProbeRecord<object>[] = [];
        for (const img of usable) {
          if (capped(state, img.record)) break;
          state.seen++;
          const hit = state.cache.get(imageKey(img.sha256, img.label));
          if (hit) {
            got.push({ ...hit, image: img.image });
            cacheHits++;
          } else todo.push(img);
        }
        work.set(state, { todo, got });
        state.ms += Date.now() - t0;
      }
      if (!declared && [...work.values()].some((w) => w.todo.length)) {
        // every probe's view plans, once the images' size is known: the views module may then
        // run them all in one session (views/session.ts declareViews)
        declared = true;
        for (const [state, { todo }] of work) {
          if (!todo.length || !state.probe.viewPlans) continue;
          try {
            for (const { plan, features } of state.probe.viewPlans(viewShape(todo[0]), ctx)) declareViews(model, plan, features);
          } catch {
            // the probe's run() meets the same problem and reports it
          }
        }
      }
      for (const [state, { todo }] of work) {
        if (!todo.length || !state.probe.prepare) continue;
        try {
          state.probe.prepare(todo, ctx);
        } catch (e) {
          state.failed = `${state.probe.id} failed: ${(e as Error).message}`;
        }
      }
      for (const [state, { todo, got }] of work) {
        if (state.failed) continue;
        if (opts.signal?.aborted) throw new CancelledError();
        const t0 = Date.now();
        if (todo.length) {
          report('evaluating', state.probe.id);
          try {
            const step = (text: string) => opts.onProgress?.({ done, total, phase: 'evaluating', probe: state.probe.id, cacheHits, step: text });
            const recs = await state.probe.run(todo, { ...ctx, progress: step });
            try {
              state.cache.putAll(todo.map((img, j) => [imageKey(img.sha256, img.label), recs[j]]));
            } catch (e) {
              // a full disk or an unwritable cache fails the probe, naming the file (the CLI exits 2)
              throw new Error(`cannot write the results cache ${state.cache.folder}: ${fsReason(e)}`);
            }
            todo.forEach((img, j) => got.push({ ...recs[j], image: img.image }));
            cacheMisses += todo.length;
          } catch (e) {
            if (e instanceof CancelledError || opts.signal?.aborted) throw e;
            state.failed = `${state.probe.id} failed: ${(e as Error).message}`;
          }
        }
        for (const r of got.sort((a, b) => a.image - b.image)) state.records.push(r);
        state.ms += Date.now() - t0;
      }
      for (const { state, keeper } of keepers) {
        if (state.failed) continue;
        const t0 = Date.now();
        const wanted = usable.filter((img) => img.pixels && keeper.wants(img.record));
        try {
          if (wanted.length) keeper.keep(wanted);
        } catch (e) {
          state.failed = `${state.probe.id} failed: ${(e as Error).message}`;
        }
        state.ms += Date.now() - t0;
      }
      done += batch.length;
      report('evaluating');
    }
  } catch (e) {
    if (!(e instanceof CancelledError) && !opts.signal?.aborted) throw e;
    cancelled = true;
  }

  // Summaries, also after a cancel: what finished is reported.
  const className = (i: number) => model.labels?.names[i] ?? `class ${i}`;
  const probes: Record<string, ProbeResult> = {};
  const timingsMs: Record<string, number> = {};
  const renders: RenderJob[] = [];
  for (const state of states) {
    const { probe } = state;
    if (!opts.evaluateOnly) report('summarizing', probe.id);
    state.records.trim();
    const result: ProbeResult = {
      title: probe.title,
      status: state.failed ? 'failed' : cancelled ? 'cancelled' : 'ok',
      params: probe.params,
      metrics: {},
      records: opts.evaluateOnly ? state.records.view : [],
      count: state.records.length,
    };
    if (state.failed) result.reason = state.failed;
    if (state.records.length > 0 && !opts.evaluateOnly) {
      try {
        const progress = (step: string) => opts.onProgress?.({ done, total, phase: 'summarizing', probe: probe.id, cacheHits, step });
        const cache = opts.cacheDir ? (name: string, params: unknown) => new ProbeCache<object>(opts.cacheDir, cacheScope(`${probe.id}-${name}`, params)) : undefined;
        const records = probe.foldsRecords ? state.records.view : state.records.toArray();
        const summary = await probe.summarize(records, { model, dataset, seed, signal: opts.signal, images, className, outDir: opts.outDir, progress, cache });
        result.headline = summary.headline;
        result.metrics = summary.metrics;
        if (summary.plots) result.plots = summary.plots;
        result.records = summary.records ?? state.records.view;
        for (const f of summary.findings) findings.push({ ...f, probe: probe.id });
        if (summary.render?.length && probe.render && opts.outDir) renders.push({ state, result, images: new Set(summary.render) });
      } catch (e) {
        result.status = 'failed';
        result.reason = `${probe.id} could not summarise: ${(e as Error).message}`;
      }
    }
    probes[probe.id] = result;
    timingsMs[probe.id] = state.ms;
  }

  if (renders.length && !cancelled) {
    report('rendering');
    try {
      await renderArtifacts(renders, dataset, spec, batchSize, imageIndex, findings, { model, seed, signal: opts.signal, outDir: opts.outDir! });
    } catch (e) {
      if (!(e instanceof CancelledError) && !opts.signal?.aborted) throw e;
      cancelled = true;
    }
  }

  let evaluated = 0;
  for (let i = 0; i < table.length; i++) if (table.evaluated(i)) evaluated++;
  const modelSubject = subjectFor(model.path, baseDir);
  const out: Report = {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: 'skeptic', version: TOOL_VERSION, engineVersion: ENGINE_VERSION },
    model: {
      path: modelSubject.path,
      uri: modelSubject.uri,
      sha256: model.sha256,
      inputs: model.info.inputs,
      outputs: model.info.outputs,
      layout: model.info.layout,
      inputSize: { channels: model.info.channels, height: model.info.height, width: model.info.width },
      numClasses: model.info.numClasses,
      outputKind: model.info.outputKind,
      outputKindSource: model.info.outputKindSource,
      opset: model.info.opset,
      quantized: model.info.quantized,
      batch: model.info.batch,
      preprocessing: model.preprocessing,
      labels: model.labels ? { source: model.labels.source, count: model.labels.names.length, names: model.labels.names } : undefined,
    },
    device: model.device,
    dataset: {
      ...pathAndUri(dataset.path, baseDir),
      kind: dataset.kind,
      total: dataset.total,
      selected: dataset.records.length,
      evaluated,
      classes: dataset.classes,
      sha256: datasetHash(images),
    },
    config: {
      probes: opts.probes.map((p) => p.id),
      seed,
      limit: opts.limit,
      batchSize,
      params: Object.fromEntries(opts.probes.map((p) => [p.id, p.params])),
    },
    probes,
    findings: finalizeFindings(findings, images, modelSubject),
    rules: Object.assign({}, DATA_RULES, ...opts.probes.map((p) => p.rules)),
    images,
    warnings: [...model.warnings, ...dataset.warnings, ...states.filter((s) => s.failed).map((s) => s.failed!)],
    run: {
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      cancelled,
      timingsMs,
      cache: { hits: cacheHits, misses: cacheMisses, path: opts.cacheDir },
    },
  };
  report('done');
  return out;
}

interface RenderJob {
  state: ProbeState;
  result: ProbeResult;
  images: Set<number>;
}

/**
 * Artifacts (PNGs, .npy) for the images the summaries picked: decodes just those images again
 * and lets each probe draw them. Paths go on the probe's records and on its findings.
 *
 * The one place an image is decoded a second time in an audit, on purpose (issue 11 weighed
 * keeping the first decode): which images are drawn is a function of ALL the records (the most
 * confident wrong answers, the images most hurt by corruptions or patches, the first samples
 * not in a gallery), known only after the last batch. Keeping their pixels from the audit's
 * pass would mean every probe restating its choice as a streaming rule and the audit holding the
 * pixels of every image that might still qualify (a superset, at the decode size with margin, per
 * probe), while the records it holds stay small; and with the results cache an audit of cached
 * records decodes nothing in its pass, so the drawn images would need a decode anyway. The cost
 * is bounded: the union of the summaries' picks (each probe's renderImages or samples: tens of
 * images, not the dataset), decoded in one pass, and only when the audit writes artifacts.
 */
async function renderArtifacts(
  jobs: RenderJob[],
  dataset: Dataset,
  spec: ReturnType<LoadedModel['decodeSpec']>,
  batchSize: number,
  imageIndex: RecordPositions,
  findings: Array<FindingDraft & { probe: string }>,
  ctx: { model: LoadedModel; seed: number; signal?: AbortSignal; outDir: string },
): Promise<void> {
  const wanted = new Set(jobs.flatMap((j) => [...j.images]));
  // PNGs are encoded by sharp on its own threads while the probes make the next images: a write
  // takes the pixels when it is asked for (toBytes), and the render waits for all of them at the
  // end. One at a time, the encoding (~12 ms a 224² PNG at level 9) was a third of the render.
  const writing = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;
  const renderCtx: RenderContext = {
    ...ctx,
    async writePng(rel, image, o) {
      const w: Promise<void> = writePng(join(ctx.outDir, rel), image, o?.scale ?? 1)
        .catch((error) => void (failed ??= { error }))
        .finally(() => writing.delete(w));
      writing.add(w);
      if (writing.size >= PNG_WRITES_IN_FLIGHT) await Promise.race(writing);
      return rel;
    },
    async writeNpy(rel, data, shape) {
      writeNpy(join(ctx.outDir, rel), data, shape);
      return rel;
    },
  };
  const only = (r: DatasetRecord) => wanted.has(imageIndex.get(r.index)!);
  for await (const batch of dataset.stream(spec, { batchSize, signal: ctx.signal, only })) {
    const decoded = batch.filter((s) => s.image && s.sha256).map((s) => probeImage(s, imageIndex.get(s.record.index)!));
    for (const job of jobs) {
      const mine = decoded.filter((d) => job.images.has(d.image));
      if (!mine.length) continue;
      const files = await job.state.probe.render!(mine, mine.map((d) => job.state.records.byImage(d.image)!), renderCtx);
      if (job.result.records === job.state.records.view) {
        for (const [image, f] of files) if (f.length) job.state.records.setArtifacts(image, f);
      } else {
        for (const rec of job.result.records) {
          const f = files.get(rec.image);
          if (f?.length) rec.artifacts = f;
        }
      }
      for (const d of findings) {
        const f = d.image !== undefined && d.probe === job.state.probe.id ? files.get(d.image) : undefined;
        if (f?.length) d.artifacts = f;
      }
    }
  }
  while (writing.size) await Promise.all(writing);
  if (failed) throw failed.error;
}

/** PNG writes of a render under way at once (sharp encodes them on its threads). */
const PNG_WRITES_IN_FLIGHT = 16;

function probeImage(sample: Sample, image: number): ProbeImage {
  const context = sample.image!;
  return {
    image,
    record: sample.record,
    sha256: sample.sha256!,
    label: sample.record.label,
    context,
    pixels: context && centre(context, sample.margin),
    margin: sample.margin,
  };
}

function pathAndUri(file: string, baseDir: string): { path: string; uri: string } {
  const rel = relative(baseDir, file);
  return { path: rel && !rel.startsWith('..') ? rel.split('\\').join('/') : file, uri: pathToFileURL(file).href };
}

function subjectFor(file: string, baseDir: string): Subject {
  return pathAndUri(file, baseDir);
}

/** pathAndUri, remembered per file: a manifest or idx file is shared by every item in it. */
function locator(baseDir: string): (file: string) => { path: string; uri: string } {
  const seen = new Map<string, { path: string; uri: string }>();
  return (file) => {
    let v = seen.get(file);
    if (!v) seen.set(file, (v = pathAndUri(file, baseDir)));
    return v;
  };
}

interface RecordPositions {
  /** The position in dataset.records (the image table) of the record with this listing index. */
  get(index: number): number | undefined;
}

/** Where each record sits in the selection, without a Map entry per image: the selection is in
 *  listing order, so it is the identity without --limit and a binary search with it. */
function recordPositions(records: readonly DatasetRecord[]): RecordPositions {
  const n = records.length;
  if (records.every((r, i) => r.index === i)) return { get: (index) => (index >= 0 && index < n ? index : undefined) };
  const indices = Int32Array.from(records, (r) => r.index);
  if (!indices.every((v, i) => i === 0 || indices[i - 1] < v)) return new Map(records.map((r, i) => [r.index, i])); // not in listing order
  return {
    get(index) {
      let lo = 0;
      let hi = n - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (indices[mid] === index) return mid;
        if (indices[mid] < index) lo = mid + 1;
        else hi = mid - 1;
      }
      return undefined;
    },
  };
}

function datasetHash(images: ImageEntry[]): string {
  const h = createHash('sha256');
  for (const im of images) h.update(`${im.id}\0${im.sha256 ?? ''}\0${im.label ?? ''}\n`);
  return h.digest('hex');
}

const SEVERITY_ORDER = { error: 0, warning: 1, info: 2 };

/** Gives each finding its subject and a stable id, in a deterministic order: model-level first,
 *  then by severity, image order and rule. */
function finalizeFindings(drafts: Array<FindingDraft & { probe: string }>, images: ImageEntry[], model: Subject): Finding[] {
  const findings = drafts.map((d): Finding => {
    let subject: Subject;
    if (d.image === undefined) subject = model;
    else {
      const im = images[d.image];
      subject = { uri: im.uri, path: im.path, image: d.image };
      if (im.line !== undefined) subject.line = im.line;
      if (im.index !== undefined) subject.index = im.index;
    }
    const where = d.image === undefined ? 'model' : images[d.image].id;
    const f: Finding = { id: `${d.rule}@${where}`, probe: d.probe, rule: d.rule, severity: d.severity, subject, message: d.message };
    if (d.image !== undefined) f.message = `${images[d.image].id}: ${d.message}`;
    if (d.metrics) f.metrics = d.metrics;
    if (d.artifacts) f.artifacts = d.artifacts;
    return f;
  });
  const rank = (f: Finding) => (f.subject.image === undefined ? -1 : f.subject.image);
  return findings.sort(
    (a, b) => rank(a) - rank(b) || SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || a.rule.localeCompare(b.rule),
  );
}
