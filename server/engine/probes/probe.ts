/**
 * The one interface every probe implements. A probe is a page of code: `run` turns a batch of
 * images into one small JSON record per image, `summarize` turns all records into metrics,
 * plot data and findings. The audit does the rest (streaming, caching, cancellation, subjects,
 * report assembly), so a new probe never touches I/O.
 *
 * Records must depend only on the image, its label, the model, the params and the seed: that
 * is what lets the audit cache them by content and reuse them across runs.
 */
import { SkepticInputError } from '../errors';
import type { ImageEntry, Severity } from '../report/schema';
import type { Dataset, DatasetRecord, LoadedModel, PixelImage } from '../types';
import type { ViewFeatures, ViewPlan } from '../views';

/** The size of the images a probe's run() gets: channels × height × width, and the margin of context around them. */
export interface ViewShape {
  channels: number;
  height: number;
  width: number;
  margin: number;
}

/** The shape of a probe image: its centre's size and the margin of context around it. */
export function viewShape(img: ProbeImage): ViewShape {
  const { channels, height, width } = img.pixels;
  return { channels, height, width, margin: img.margin };
}

export interface ProbeImage {
  /** Index into the report's image table. */
  image: number;
  record: DatasetRecord;
  sha256: string;
  /** Class index, when the dataset labels this image. */
  label?: number;
  /** The image at the model's input size. */
  pixels: PixelImage;
  /** The image with `margin` pixels of real context on each side (pixels is its centre). */
  context: PixelImage;
  margin: number;
}

export interface ProbeContext {
  model: LoadedModel;
  seed: number;
  signal?: AbortSignal;
  /** Says what run() is doing, for long runs ("APGD-T L∞ (9 targets × 100 iterations): 23 images"). */
  progress?(step: string): void;
}

/** A finding as a probe states it; the audit adds the id, probe and subject location. */
export interface FindingDraft {
  rule: string;
  severity: Severity;
  /** The image it is about (index into the image table), or undefined for the model. */
  image?: number;
  message: string;
  metrics?: Record<string, number | string | boolean | null>;
  artifacts?: string[];
}

export interface SummaryContext {
  model: LoadedModel;
  /** The audited dataset (its listing: cue-conflict plans pairs of images from it). */
  dataset?: Dataset;
  seed: number;
  signal?: AbortSignal;
  images: ImageEntry[];
  /** Display name of class i ("cat", or "class 3" without labels). */
  className(i: number): string;
  /** Folder for artifacts; undefined when the audit writes none. */
  outDir?: string;
  /** Says how long work inside summarize is getting on ("style transfer 32/200 stimuli"). */
  progress?(step: string): void;
  /**
   * A results cache for work summarize does itself (stimuli made from pairs of images), when the
   * audit caches: a file of its own, scoped like the probe's records (model, preprocessing, seed,
   * engine version) and by `name` and `params`. Keys are the probe's to choose (content hashes).
   */
  cache?(name: string, params: unknown): SummaryCache;
}

export interface SummaryCache {
  get(key: string): object | undefined;
  putAll(items: Array<[string, object]>): void;
}

export interface ProbeSummary {
  /** One line for people, e.g. "accuracy 98.3%, mean confidence 97.1%". */
  headline: string;
  /** Images to draw artifacts for (indices into the image table): `render` is called with them. */
  render?: number[];
  metrics: Record<string, unknown>;
  plots?: Record<string, unknown>;
  findings: FindingDraft[];
  /** The per-image records to put in the report (default: all, as run returned them). */
  records?: Array<{ image: number } & Record<string, unknown>>;
}

export type ProbeRecord<R> = R & { image: number };

/** What a rule means, for SARIF, diagnostics and the docs. */
export interface RuleDoc {
  /** PascalCase name, e.g. OnePixelShiftFlip. */
  name: string;
  /** One sentence: what fired. */
  text: string;
  /** Why it matters and what to do, with the reference. */
  help: string;
}

export interface RenderContext extends ProbeContext {
  /** Writes an image (pixel space, [0,1]) as PNG under the report folder; returns its path
   *  relative to that folder. `scale` enlarges small images with nearest-neighbour pixels. */
  writePng(relPath: string, image: PixelImage, opts?: { scale?: number }): Promise<string>;
  /** Writes a float32 array as a NumPy .npy file; returns its relative path. */
  writeNpy(relPath: string, data: Float32Array, shape: number[]): Promise<string>;
}

/** What a probe keeps of the audit's one decode of the images its summary needs (Probe.keeper). */
export interface ImageKeeper {
  /** Whether the summary needs this record's image (the audit then decodes it even when every
   *  record of it is cached). */
  wants(record: DatasetRecord): boolean;
  /** The wanted images of a batch, as the audit decodes them (cache hits included). */
  keep(images: ProbeImage[]): void;
}

export interface Probe<R extends object = Record<string, unknown>> {
  readonly id: string;
  readonly title: string;
  /** The resolved parameters, as the report shows them. */
  readonly params: Record<string, unknown>;
  /** The parameters `run` depends on, which key the results cache (default: all of params).
   *  Leaving out summary-only settings (thresholds, how many curves to keep) lets a change of
   *  threshold reuse the cached records. */
  readonly cacheParams?: Record<string, unknown>;
  /** Pixels of real context the probe needs around each image (0 for most). */
  readonly margin: number;
  /**
   * For expensive probes: how many images (the first in dataset order) it sees per audit; 0 or
   * absent for all. The audit applies the cap, so a record still depends only on its image and
   * stays valid in the cache whatever else is audited.
   */
  imageLimit?(model: LoadedModel): number;
  /** The rules its findings use, by rule id ("shift/one-pixel-flip"). */
  readonly rules: Record<string, RuleDoc>;
  run(images: ProbeImage[], ctx: ProbeContext): Promise<R[]>;
  /**
   * Optional: the images the next run() will get, told before the probes ahead of it in the batch
   * run, so that work it makes off the main thread (the corruption views' worker threads) goes on
   * meanwhile. run() gives the same records whether or not prepare was called, and what prepare
   * started for images run() never gets (a cancel, a probe failed in between) is dropped.
   */
  prepare?(images: ProbeImage[], ctx: ProbeContext): void;
  /**
   * Optional: the view plans run() will ask the views module for (viewsFor), from the size of
   * the images it will get (their centre, and the margin of context around it) alone. The audit
   * declares them before the first run (views/session.ts declareViews), so that the views module
   * can run every probe's plans in one ONNX Runtime session. A plan left out still runs.
   */
  viewPlans?(shape: ViewShape, ctx: ProbeContext): Array<{ plan: ViewPlan; features?: ViewFeatures }>;
  /**
   * Optional, for a summary that needs pixels of a few images of the audited dataset beyond
   * their records (cue-conflict's pairs of images): called before the audit streams, it names
   * those images and keeps what it needs of each as the audit decodes it, so that no image is
   * decoded twice. What it keeps is held in memory for summarize, not cached.
   */
  keeper?(dataset: Dataset, ctx: ProbeContext): ImageKeeper | undefined;
  /**
   * True when summarize reads its records once, in order, and keeps none (it folds them into
   * counts and sums): it is then given a lazy view that parses each record as it is read, and
   * the audit's memory stays flat however many images there are. Other probes get an array of
   * every record while they summarise (their memory grows with the data then).
   */
  readonly foldsRecords?: boolean;
  /** Optional: what run() will cost on this model, in words, for the user before it starts. */
  budget?(model: LoadedModel): string;
  summarize(records: ProbeRecord<R>[], ctx: SummaryContext): ProbeSummary | Promise<ProbeSummary>;
  /**
   * Optional: writes files (before/after PNGs, heatmaps, .npy) for the few images the summary
   * picked. It runs after summarize on freshly decoded images, so results stay small records in
   * the cache and artifacts are made only for what a person will look at (the one decode of an
   * image beyond the audit's pass, bounded by the picks: see audit.ts renderArtifacts). Returns
   * the files written per image index (paths relative to the report folder).
   */
  render?(images: ProbeImage[], records: ProbeRecord<R>[], ctx: RenderContext): Promise<Map<number, string[]>>;
}

/** Index of the largest of k values starting at `offset`. */
export function argmax(values: ArrayLike<number>, offset = 0, k = values.length): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < k; i++) {
    const v = values[offset + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** Reads a number parameter, with a default and bounds, naming the parameter in errors. */
export function numberParam(
  params: Record<string, unknown> | undefined,
  probe: string,
  name: string,
  fallback: number,
  min = -Infinity,
  max = Infinity,
): number {
  const v = params?.[name];
  if (v === undefined) return fallback;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    throw new SkepticInputError(`probe parameter ${probe}.${name} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return n;
}

/**
 * Reads a list of whole numbers in [min, max]: a list (skeptic.json), "2,4" (--param), or one
 * number (--param x=4 parses as a number). Repeats are dropped, order kept; undefined when absent.
 */
export function intListParam(params: Record<string, unknown> | undefined, probe: string, name: string, min: number, max: number): number[] | undefined {
  const v = params?.[name];
  if (v === undefined) return undefined;
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean).map(Number) : typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((k) => typeof k === 'number' && Number.isInteger(k) && k >= min && k <= max)) {
    throw new SkepticInputError(`probe parameter ${probe}.${name} must be a list of integers in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return [...new Set(list as number[])];
}

/** Reads a boolean parameter (true/false, also as "true"/"1"/1 from the command line). */
export function boolParam(params: Record<string, unknown> | undefined, probe: string, name: string, fallback: boolean): boolean {
  const v = params?.[name];
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1' || v === 1) return true;
  if (v === 'false' || v === '0' || v === 0) return false;
  throw new SkepticInputError(`probe parameter ${probe}.${name} must be true or false, got ${JSON.stringify(v)}`);
}

/**
 * Each image's label (undefined where it has none), by image index, for a summary to look up
 * per record. SummaryContext.images makes an entry on every read (report/image-table.ts: its
 * hash as hex, its location), so summaries that read labels there per record, in several passes,
 * made each entry a dozen times: about 0.1 s of a 1,000-image MNIST audit, on the main thread
 * after the last run.
 */
export function labelsOf(images: readonly ImageEntry[]): Array<number | undefined> {
  return Array.from(images, (e) => e?.label);
}

/** Rounds for the report: enough digits to be useful, few enough to keep the JSON small. */
export function round(x: number, digits = 6): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Pixel values a probe may hold in views at once (256 MB of float32). */
export const VIEW_BUDGET = 64 * 1024 * 1024;

/**
 * Splits a batch into groups whose `viewsPerImage` views each fit the view budget, so a probe
 * that makes many views of each image (shifts, patches) keeps memory flat for large images.
 */
export function groupsWithin(images: ProbeImage[], viewsPerImage: number, budget = VIEW_BUDGET): ProbeImage[][] {
  if (images.length === 0) return [];
  const { channels, height, width } = images[0].pixels;
  const size = Math.max(1, Math.floor(budget / (viewsPerImage * channels * height * width)));
  const groups: ProbeImage[][] = [];
  for (let i = 0; i < images.length; i += size) groups.push(images.slice(i, i + size));
  return groups;
}

/** Formats a fraction as a percentage for messages and headlines ("–" when there is none). */
export function pct(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return `${(x * 100).toFixed(Math.abs(x) < 0.1 ? 2 : 1)}%`;
}
