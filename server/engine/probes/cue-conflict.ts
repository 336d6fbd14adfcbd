/**
 * P2, texture bias with cue-conflict stimuli (Geirhos et al., ICLR 2019, "ImageNet-trained CNNs
 * are biased towards texture; increasing shape bias improves accuracy and robustness").
 *
 * Stimuli. A cue-conflict image shows the shape of one category and the texture of another:
 *  - a user's set (params.stimuli: a folder in the Geirhos layout <shape>/<shape>N-<texture>M.png,
 *    or a CSV/JSONL manifest with path, shape and texture columns; cue/stimuli.ts), streamed in
 *    summarize() like ood.ts's user set. Stimuli are resized straight to the model's input size
 *    (the paper shows them whole; `crop: true` uses the model's resize and centre crop instead);
 *  - otherwise generated from a labelled dataset (cue/pairs.ts pairs a shape image A with a
 *    texture image B of another category), by one of two generators (params.generator):
 *    'quilt' (default, no weights; cue/generate.ts): A's silhouette filled with a texture quilted
 *    from B's patches; 'style-transfer' (cue/style-transfer.ts): Gatys et al.'s optimisation of
 *    the pixels to match A's features and B's Gram statistics on the audited model's own
 *    convolutional layers, through the gradient graph (model/gradient/features.ts). A stimulus
 *    needs two images, so it cannot be a record of one image: the pairs are planned from the
 *    dataset's listing before the audit streams, and what a stimulus needs of each image (the
 *    quilt: B's texture as bytes and A's compact shape material; style transfer: the images) is
 *    kept as the audit decodes it (keeper), so no image is decoded twice; the stimuli are made in
 *    summarize(), the quilt's composition as a view op in front of the model (cue/composite.ts).
 *    From params.source (any dataset path) the pairs' images are decoded there, once each.
 * The per-image records hold the single-cue CONTROLS, which depend on one image only and are
 * cached like any record: the image's edge map and its silhouette (shape only) and a texture
 * quilted from its own patches (texture only), each with the model's category decision.
 *
 * Decisions (cue/categories.ts): softmax probabilities averaged over each category's classes, the
 * largest mean wins (the authors' code). Mappings: params.categories (a JSON file), else the 16
 * ImageNet categories for ImageNet-1k models, else every class its own category.
 *
 * Shape bias (cue/shape-bias.ts): stimuli whose shape and texture category coincide are dropped;
 * shape bias = shape decisions / (shape + texture decisions); reported with the counts, per shape
 * category and per texture category. Finding (model-level warning) when it is below
 * params.threshold [0.5] with at least params.minDecisions [10] cue decisions. Gallery: the first
 * params.gallery [24] stimuli decided by texture, written as PNGs beside the report, each with
 * its shape category, texture category and the model's answer.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { categoryIndex, categoryMapFor, categoryOfClass, decide, identity, readCategoriesFile, type CategoryMap, type RawMapping } from '../cue/categories';
import { edgeControl, fromBytes01, quiltTexture, shapeCarrier, silhouetteControl, toBytes01, type ShapeMaterial } from '../cue/generate';
import { compositePlan, compositeSource } from '../cue/composite';
import {
  generatedStimuli, keepPairImage, pairedItems, pairMaterial, pairRoles, planPairs, quiltComposer, type ComposeItem, type PairMaterial, type PairPlan, type PlannedPair,
  type StimulusComposer,
} from '../cue/pairs';
import { STYLE_DEFAULTS, styleTransfer, type StyleTransferOptions } from '../cue/style-transfer';
import { buildStyleLoss, GradientUnsupportedError, type StyleLossModel } from '../model/gradient';
import { shapeBias, type BiasCounts, type CueDecision } from '../cue/shape-bias';
import { decodeStimuli, listStimuli, stimulusSpec, type Stimulus } from '../cue/stimuli';
import { openDataset } from '../data';
import { SkepticInputError, throwIfAborted } from '../errors';
import { writePng } from '../image/files';
import { toBatch } from '../image/ops';
import { derivedRng } from '../random';
import type { Dataset, LoadedModel, PixelImage } from '../types';
import { makeViews, runViews, viewsFor } from '../views';
import { boolParam, groupsWithin, numberParam, pct, round, type FindingDraft, type Probe, type ProbeImage, type RuleDoc, type SummaryContext } from './probe';

/** Published references quoted in the finding (Geirhos et al. 2019, Fig. 4 / Table). */
export const HUMAN_SHAPE_BIAS = 0.96;
export const RESNET50_SHAPE_BIAS = 0.22;

export const CONTROLS = ['edges', 'silhouette', 'texture'] as const;
export type ControlName = (typeof CONTROLS)[number];

/** Per image: the category decided on each control view (null: no silhouette was found). */
export interface CueControlRecord {
  edges: number;
  silhouette: number | null;
  texture: number;
}

export interface GalleryEntry {
  /** The stimulus: its file (user set) or "A id + B id" (generated). */
  id: string;
  shape: string;
  texture: string;
  answer: string;
  /** PNG relative to the report folder, when one was written. */
  png?: string;
  /** Generated stimuli: the image-table index of the shape image, when it is in the audit. */
  image?: number;
  textureSource?: string;
}

const RULES: Record<string, RuleDoc> = {
  'cue-conflict/texture-bias': {
    name: 'DecidesByTexture',
    text: 'On cue-conflict stimuli the model follows the texture more often than the shape (shape bias below the threshold).',
    help:
      'Geirhos et al. (ICLR 2019): ImageNet CNNs classify by texture (ResNet-50 shape bias ≈ 0.22) where people classify by ' +
      'shape (≈ 0.96). Texture-biased models fail under texture changes and can ride texture shortcuts in the data. Train ' +
      'with shape-preserving, texture-randomising augmentation (e.g. Stylized-ImageNet) and check the per-category counts.',
  },
  'cue-conflict/generator-unsupported': {
    name: 'StyleTransferUnsupported',
    text: 'Cue-conflict stimuli could not be made by style transfer on this model.',
    help:
      'The style-transfer generator differentiates the model\'s own convolutional layers. When an op has no gradient rule, or ' +
      'the model has no convolution with at least 2×2 positions, use the weights-free generator (generator: "quilt") or name ' +
      'the layers (styleLayers, contentLayer).',
  },
  'cue-conflict/stimuli-unreadable': {
    name: 'CueConflictStimuliUnreadable',
    text: 'The cue-conflict stimuli could not be read.',
    help: 'Give a folder in the Geirhos layout (<shape>/<shape>N-<texture>M.png) or a CSV/JSONL manifest with path, shape and texture columns.',
  },
};

/** A style-transfer stimulus as the cache keeps it: 8-bit pixels and its optimisation record. */
interface CachedStimulus {
  /** base64 of the planar 8-bit pixels (toBytes01). */
  bytes: string;
  style: [number, number];
  content: [number, number];
  dead: boolean;
}

interface StyleRecord {
  count: number;
  /** Stimuli read back from the cache rather than optimised. */
  cached: number;
  /** Stimuli restarted from the shape image because noise left every feature dead. */
  deadStarts: number;
  styleStart: number;
  styleEnd: number;
  contentStart: number;
  contentEnd: number;
  layers: { style: string[]; content: string };
}

const strParam = (v: unknown): string | undefined => (v === undefined || v === null || v === '' ? undefined : String(v));

export function cueConflictProbe(params: Record<string, unknown> = {}): Probe<CueControlRecord> {
  const stimuliPath = strParam(params.stimuli);
  const categoriesPath = strParam(params.categories);
  const sourcePath = strParam(params.source);
  const generator = strParam(params.generator) ?? 'quilt';
  if (generator !== 'quilt' && generator !== 'style-transfer') {
    throw new SkepticInputError(`probe parameter cue-conflict.generator must be "quilt" or "style-transfer", not "${generator}"`);
  }
  const threshold = numberParam(params, 'cue-conflict', 'threshold', 0.5, 0, 1);
  // Style transfer optimises every stimulus (300 steps of a forward and backward pass): fewer by default.
  const pairs = numberParam(params, 'cue-conflict', 'pairs', generator === 'style-transfer' ? 64 : 200, 0, 100000);
  const minDecisions = numberParam(params, 'cue-conflict', 'minDecisions', 10, 1);
  const texturesPerClass = numberParam(params, 'cue-conflict', 'texturesPerClass', 4, 1, 1000);
  const gallery = numberParam(params, 'cue-conflict', 'gallery', 24, 0, 10000);
  const samples = numberParam(params, 'cue-conflict', 'samples', 4, 0, 1000);
  const controls = boolParam(params, 'cue-conflict', 'controls', true);
  const crop = boolParam(params, 'cue-conflict', 'crop', false);

  const init = strParam(params.init) ?? STYLE_DEFAULTS.init;
  if (init !== 'noise' && init !== 'content') throw new SkepticInputError(`probe parameter cue-conflict.init must be "noise" or "content", not "${init}"`);
  const style: Required<StyleTransferOptions> = {
    steps: numberParam(params, 'cue-conflict', 'steps', STYLE_DEFAULTS.steps, 0, 100000),
    lr: numberParam(params, 'cue-conflict', 'lr', STYLE_DEFAULTS.lr, 1e-6, 1),
    styleWeight: numberParam(params, 'cue-conflict', 'styleWeight', STYLE_DEFAULTS.styleWeight, 0),
    contentWeight: numberParam(params, 'cue-conflict', 'contentWeight', STYLE_DEFAULTS.contentWeight, 0),
    tvWeight: numberParam(params, 'cue-conflict', 'tvWeight', STYLE_DEFAULTS.tvWeight, 0),
    init,
  };
  if (!Number.isInteger(style.steps)) throw new SkepticInputError('probe parameter cue-conflict.steps must be an integer');
  // Layer names: a list, or one string with commas (as --param gives it).
  const styleLayers = Array.isArray(params.styleLayers)
    ? params.styleLayers.map(String)
    : strParam(params.styleLayers)?.split(',').map((x) => x.trim()).filter(Boolean);
  const contentLayer = strParam(params.contentLayer);
  if (![pairs, texturesPerClass, gallery, samples, minDecisions].every(Number.isInteger)) {
    throw new SkepticInputError('probe parameters cue-conflict.pairs, texturesPerClass, gallery, samples and minDecisions must be integers');
  }
  // The user's mapping is read now: a bad file fails the probe's creation with a clear message,
  // and its content (not its path) keys the cache.
  const rawMapping: RawMapping | undefined = categoriesPath ? readCategoriesFile(categoriesPath) : undefined;
  const mappingKey = rawMapping ? createHash('sha256').update(JSON.stringify(rawMapping)).digest('hex').slice(0, 16) : 'auto';

  let mapCache: { model: LoadedModel; map: CategoryMap } | undefined;
  const mapFor = (model: LoadedModel): CategoryMap => {
    if (mapCache?.model !== model) mapCache = { model, map: categoryMapFor(model, rawMapping, categoriesPath && resolve(categoriesPath)) };
    return mapCache.map;
  };

  async function runControls(images: ProbeImage[], seed: number, model: LoadedModel): Promise<CueControlRecord[]> {
    const map = mapFor(model);
    const views: PixelImage[] = [];
    const hasSil: boolean[] = [];
    for (const img of images) {
      const carrier = shapeCarrier(img.pixels);
      const sil = silhouetteControl(carrier);
      views.push(edgeControl(carrier));
      if (sil) views.push(sil);
      hasSil.push(!!sil);
      const texture = quiltTexture(img.pixels, carrier.silhouetteOk ? carrier.mask : undefined, derivedRng(seed, 'cue-conflict/quilt', img.sha256));
      views.push(texture);
      // the quilt generator's texture of a texture source is this very texture: keep() takes it
      if (quilted?.sources.has(img.record.index) && seed === kept?.seed && model === kept.model) quilted.textures.set(img.sha256, texture);
    }
    const out = await model.predict(toBatch(views));
    const K = out.numClasses;
    let v = 0;
    return images.map((_, i) => {
      const edges = decide(out.probs, v++ * K, map);
      const silhouette = hasSil[i] ? decide(out.probs, v++ * K, map) : null;
      const texture = decide(out.probs, v++ * K, map);
      return { edges, silhouette, texture };
    });
  }

  /** Classifies stimuli in batches and returns the decisions (category names). */
  async function decideAll(model: LoadedModel, map: CategoryMap, images: PixelImage[]): Promise<string[]> {
    if (!images.length) return [];
    const out = await model.predict(toBatch(images));
    const K = out.numClasses;
    return images.map((_, i) => map.names[decide(out.probs, i * K, map)] ?? null);
  }

  interface ConflictResult {
    kind: 'stimuli' | 'generated';
    path?: string;
    map: CategoryMap;
    decisions: CueDecision[];
    count: number;
    unreadable: number;
    unmapped: number;
    warnings: string[];
    gallery: GalleryEntry[];
    /** Generated: stimuli where A's silhouette was not found. */
    noSilhouette?: number;
    /** Style transfer: the layers and the summed losses at the start and the end. */
    style?: StyleRecord;
    /** Style transfer could not be set up on this model. */
    generatorFailed?: boolean;
    error?: string;
    cancelled?: boolean;
  }

  /** Writes a gallery PNG (when the audit writes artifacts) and returns its relative path. */
  async function galleryPng(ctx: SummaryContext, n: number, img: PixelImage, shape: string, texture: string): Promise<string | undefined> {
    if (!ctx.outDir) return undefined;
    const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 40);
    const rel = `artifacts/cue-conflict/${String(n).padStart(3, '0')}-${safe(shape)}-texture-${safe(texture)}.png`;
    const scale = Math.max(1, Math.floor(128 / Math.max(img.height, img.width)));
    await writePng(join(ctx.outDir, rel), img, scale);
    return rel;
  }

  async function userStimuli(ctx: SummaryContext): Promise<ConflictResult> {
    const path = resolve(stimuliPath!);
    const model = ctx.model;
    let map = mapFor(model);
    const base: ConflictResult = { kind: 'stimuli', path, map, decisions: [], count: 0, unreadable: 0, unmapped: 0, warnings: [], gallery: [] };
    let set;
    try {
      set = await listStimuli(path);
    } catch (e) {
      if (!(e instanceof SkepticInputError)) throw e;
      return { ...base, error: e.message };
    }
    base.path = set.path;
    base.warnings.push(...set.warnings);
    // Without a user mapping, an ImageNet model's stimuli may name ImageNet classes rather than the
    // 16 categories: use whichever mapping names more of the stimulus categories.
    const names = [...new Set(set.stimuli.flatMap((s) => [s.shape, s.texture]))];
    const known = (m: CategoryMap) => names.filter((n) => categoryIndex(m, n, model.labels) >= 0).length;
    if (!rawMapping && map.source !== 'identity') {
      const id = identity(model.info.numClasses, model.labels);
      if (known(id) > known(map)) map = id;
    }
    base.map = map;
    const usable: Array<{ s: Stimulus; shape: number; texture: number }> = [];
    const byStimulus = new Map<Stimulus, { shape: number; texture: number }>();
    const missing = new Set<string>();
    for (const s of set.stimuli) {
      const shape = categoryIndex(map, s.shape, model.labels);
      const texture = categoryIndex(map, s.texture, model.labels);
      if (shape < 0) missing.add(s.shape);
      if (texture < 0) missing.add(s.texture);
      if (shape < 0 || texture < 0) base.unmapped++;
      else {
        usable.push({ s, shape, texture });
        byStimulus.set(s, { shape, texture });
      }
    }
    if (missing.size) {
      base.warnings.push(
        `${base.unmapped} stimuli name categories the mapping (${map.source}) does not have: ${[...missing].slice(0, 8).join(', ')}` +
          `${missing.size > 8 ? ', …' : ''}; give a mapping with categories (--categories FILE)`,
      );
    }
    base.count = set.stimuli.length;
    const spec = stimulusSpec(model.decodeSpec(0), crop);
    try {
      for await (const batch of decodeStimuli(usable.map((u) => u.s), spec, 32, 4, ctx.signal)) {
        throwIfAborted(ctx.signal);
        const ok = batch.filter((b) => b.image);
        base.unreadable += batch.length - ok.length;
        const answers = await decideAll(model, map, ok.map((b) => b.image!));
        for (let i = 0; i < ok.length; i++) {
          const u = { s: ok[i].stimulus, ...byStimulus.get(ok[i].stimulus)! };
          const shape = map.names[u.shape];
          const texture = map.names[u.texture];
          const d: CueDecision = { shape, texture, decision: answers[i] };
          base.decisions.push(d);
          if (shape !== texture && answers[i] === texture && base.gallery.length < gallery) {
            const png = await galleryPng(ctx, base.gallery.length, ok[i].image!, shape, texture);
            base.gallery.push({ id: u.s.id, shape, texture, answer: answers[i], ...(png ? { png } : {}) });
          }
        }
      }
    } catch (e) {
      if (ctx.signal?.aborted) return { ...base, decisions: [], gallery: [], cancelled: true, error: 'not read: the audit was cancelled' };
      throw e;
    }
    return base;
  }

  /**
   * The style-transfer generator's composer over a loss model, with its running record. Each
   * stimulus is rounded to 8 bits (it is an image, as the PNG of a user's set is) and cached by
   * the content of its two source images (ctx.cache, when the audit caches): optimising is the
   * costly part, and a re-run with the same model, seed and parameters reads the stimuli back
   * bit for bit. The starting noise is seeded by the same content hashes.
   */
  function styleComposer(loss: StyleLossModel, ctx: SummaryContext, total: number, rec: StyleRecord): StimulusComposer {
    const cache = ctx.cache?.('style-transfer', { ...style, styleLayers: styleLayers ?? null, contentLayer: contentLayer ?? null });
    return {
      texture: (b) => b,
      shape: (a) => a,
      async compose(items, signal) {
        const keys = items.map((it) => `${it.shaA}:${it.shaB}`);
        const hits = keys.map((k) => cache?.get(k) as CachedStimulus | undefined);
        const todo = items.filter((_, i) => !hits[i]);
        const done = rec.count;
        const r = await styleTransfer(
          loss, todo.map((it) => it.a), todo.map((it) => it.texture), todo.map((it) => derivedRng(ctx.seed, 'cue-conflict/style-transfer', it.shaA, it.shaB)),
          style, signal,
          (t, steps) => {
            if (t % 10 === 0 || t === steps) ctx.progress?.(`style transfer ${done}/${total} stimuli, step ${t}/${steps}`);
          },
        );
        const made: CachedStimulus[] = r.images.map((image, j) => ({
          bytes: Buffer.from(toBytes01(image)).toString('base64'),
          style: [r.styleStart[j], r.styleEnd[j]],
          content: [r.contentStart[j], r.contentEnd[j]],
          dead: r.dead[j],
        }));
        cache?.putAll(made.map((m, j) => [`${todo[j].shaA}:${todo[j].shaB}`, m]));
        let j = 0;
        return items.map((it, i) => {
          const c = hits[i] ?? made[j++];
          if (hits[i]) rec.cached++;
          rec.count++;
          rec.styleStart += c.style[0];
          rec.styleEnd += c.style[1];
          rec.contentStart += c.content[0];
          rec.contentEnd += c.content[1];
          if (c.dead) rec.deadStarts++;
          const { channels, height, width } = it.a;
          return { image: fromBytes01(new Uint8Array(Buffer.from(c.bytes, 'base64')), channels, height, width) };
        });
      },
    };
  }

  /**
   * What the audit's own pass kept of the images a generated set needs (keeper below): with the
   * pairs planned from the audited dataset, each image is decoded once, by the audit.
   */
  let kept: { dataset: Dataset; model: LoadedModel; seed: number; plan: PairPlan; material: PairMaterial<ShapeMaterial> | PairMaterial<PixelImage> } | undefined;

  /** Textures run() quilted for the texture control in the current batch, by sha256, for keep()
   *  (the audit calls run before keep for a batch; quilting is the costly part of a texture). */
  let quilted: { sources: Set<number>; textures: Map<string, PixelImage> } | undefined;

  /** The material the generator keeps of an image: the quilt's (generate.ts), or style transfer's (the images themselves). */
  const keptComposer = (seed: number): StimulusComposer<ShapeMaterial> | StimulusComposer<PixelImage> => {
    if (generator !== 'quilt') return { texture: (b) => b, shape: (a) => a, compose: async () => [] };
    const quilt = quiltComposer(seed);
    return { ...quilt, texture: (b, sha256) => quilted?.textures.get(sha256) ?? quilt.texture(b, sha256) };
  };

  async function generated(ctx: SummaryContext, dataset: Dataset, path: string): Promise<ConflictResult> {
    const model = ctx.model;
    const map = mapFor(model);
    const base: ConflictResult = { kind: 'generated', path, map, decisions: [], count: 0, unreadable: 0, unmapped: 0, warnings: [], gallery: [], noSilhouette: 0 };
    const mine = kept && kept.dataset === dataset && kept.model === model && kept.seed === ctx.seed ? kept : undefined;
    kept = undefined;
    const plan = mine?.plan ?? planPairs(dataset.records, (label) => categoryOfClass(map, label), ctx.seed, pairs, texturesPerClass);
    const material = mine?.material;
    if (!plan.pairs.length) return { ...base, error: plan.reason ?? 'no pairs' };
    const imageOf = new Map(ctx.images.map((im, i) => [im.id, i]));
    const problems = { unreadable: [] as string[] };
    const spec = model.decodeSpec(0);
    /** One stimulus decided: counted, and drawn into the gallery when decided by texture. */
    const decided = async (pair: PlannedPair, answer: string, silhouette: boolean | undefined, image: () => Promise<PixelImage>) => {
      if (silhouette === false) base.noSilhouette!++;
      const shape = map.names[pair.shape];
      const texture = map.names[pair.texture];
      base.decisions.push({ shape, texture, decision: answer });
      if (answer === texture && base.gallery.length < gallery) {
        const png = ctx.outDir ? await galleryPng(ctx, base.gallery.length, await image(), shape, texture) : undefined;
        const idx = imageOf.get(pair.a.id);
        base.gallery.push({
          id: `${pair.a.id} + ${pair.b.id}`, shape, texture, answer, textureSource: pair.b.id,
          ...(idx !== undefined ? { image: idx } : {}), ...(png ? { png } : {}),
        });
      }
    };
    let loss: StyleLossModel | undefined;
    try {
      if (generator === 'quilt') {
        // The composition is a view (cue/composite.ts): made by ONNX Runtime in front of the model.
        const composer = quiltComposer(ctx.seed);
        const made = await pairMaterial(dataset, spec, plan.pairs, composer, 32, problems, ctx.signal, material as PairMaterial<ShapeMaterial> | undefined);
        const { channels: C, height: H, width: W } = model.info;
        const cplan = compositePlan(C, H, W);
        const runner = await viewsFor(model, cplan);
        const K = model.info.numClasses;
        const items = pairedItems(dataset.records, plan.pairs, made);
        for (;;) {
          throwIfAborted(ctx.signal);
          const chunk: Array<ComposeItem<ShapeMaterial>> = [];
          for (let r = items.next(); !r.done; r = chunk.length < 64 ? items.next() : { done: true, value: undefined }) chunk.push(r.value);
          if (!chunk.length) break;
          const answers = new Map<ComposeItem<ShapeMaterial>, string>();
          await runViews(runner, chunk, (it) => compositeSource(it.a, it.texture), (it, out, first) => answers.set(it, map.names[decide(out.probs, first * K, map)] ?? null), ctx.signal);
          for (const it of chunk) {
            await decided(it.pair, answers.get(it)!, it.a.silhouetteOk, async () => {
              const data = await makeViews(cplan, [compositeSource(it.a, it.texture)]);
              return { data, channels: it.texture.channels, height: H, width: W };
            });
          }
        }
      } else {
        try {
          loss = await buildStyleLoss(model, { styleLayers, contentLayer });
        } catch (e) {
          if (!(e instanceof GradientUnsupportedError)) throw e;
          return { ...base, error: `style transfer is not possible on this model: ${e.message}`, generatorFailed: true };
        }
        base.style = {
          count: 0, cached: 0, deadStarts: 0, styleStart: 0, styleEnd: 0, contentStart: 0, contentEnd: 0,
          layers: { style: loss.layers.style.map((l) => `${l.name} (${l.op}, ${l.channels}×${l.height}×${l.width})`), content: `${loss.layers.content.name} (${loss.layers.content.op}, ${loss.layers.content.channels}×${loss.layers.content.height}×${loss.layers.content.width})` },
        };
        const composer = styleComposer(loss, ctx, plan.pairs.length, base.style);
        for await (const batch of generatedStimuli(dataset, spec, plan.pairs, composer, 16, problems, ctx.signal, material as PairMaterial<PixelImage> | undefined)) {
          throwIfAborted(ctx.signal);
          const answers = await decideAll(model, map, batch.map((b) => b.image));
          for (let i = 0; i < batch.length; i++) await decided(batch[i].pair, answers[i], batch[i].silhouette, async () => batch[i].image);
        }
      }
    } catch (e) {
      if (ctx.signal?.aborted) return { ...base, decisions: [], gallery: [], cancelled: true, error: 'not generated: the audit was cancelled' };
      throw e;
    } finally {
      await loss?.dispose();
    }
    base.count = base.decisions.length;
    base.unreadable = problems.unreadable.length;
    if (plan.pairs.length < pairs) base.warnings.push(`only ${plan.pairs.length} pairs could be formed (asked for ${pairs})`);
    return base;
  }

  /** The dataset to generate from: the audit's own (when it hands it over), else params.source. */
  async function sourceDataset(ctx: SummaryContext): Promise<{ dataset?: Dataset; path?: string; error?: string }> {
    // A source the user named wins over the audited dataset.
    if (!sourcePath) return ctx.dataset ? { dataset: ctx.dataset, path: ctx.dataset.path } : {};
    const path = resolve(sourcePath);
    try {
      return { dataset: await openDataset(path, { labels: ctx.model.labels, seed: ctx.seed }), path };
    } catch (e) {
      if (!(e instanceof SkepticInputError)) throw e;
      return { path, error: e.message };
    }
  }

  function styleMetrics(r: StyleRecord | undefined) {
    if (!r) return null;
    const mean = (x: number) => (r.count ? round(x / r.count) : null);
    return {
      layers: r.layers,
      steps: style.steps, lr: style.lr, init: style.init,
      weights: { style: style.styleWeight, content: style.contentWeight, tv: style.tvWeight },
      // How far the optimisation got: E_style falls as B's statistics are matched, E_content
      // rises from 0 (noise start: falls) as A's features give way.
      meanStyleLoss: { start: mean(r.styleStart), end: mean(r.styleEnd) },
      meanContentLoss: { start: mean(r.contentStart), end: mean(r.contentEnd) },
      // Noise starts with a zero gradient (dead features), restarted from the shape image.
      startedFromContent: style.init === 'content' ? r.count : r.deadStarts,
      cached: r.cached,
    };
  }

  return {
    id: 'cue-conflict',
    title: 'Texture bias (cue conflict)',
    params: {
      stimuli: stimuliPath ? resolve(stimuliPath) : null,
      categories: categoriesPath ? resolve(categoriesPath) : null,
      source: sourcePath ? resolve(sourcePath) : null,
      generator,
      ...(generator === 'style-transfer' ? { ...style, styleLayers: styleLayers ?? null, contentLayer: contentLayer ?? null } : {}),
      threshold, minDecisions, pairs, texturesPerClass, gallery, samples, controls, crop,
    },
    cacheParams: { controls, mapping: mappingKey, generator: 'quilt/v1' },
    margin: 0,
    rules: RULES,

    keeper(dataset, ctx) {
      kept = undefined;
      quilted = undefined;
      // Generated from the audited dataset: keep each image of the pairs as the audit decodes it.
      if (stimuliPath || sourcePath || pairs === 0) return undefined;
      const map = mapFor(ctx.model);
      const plan = planPairs(dataset.records, (label) => categoryOfClass(map, label), ctx.seed, pairs, texturesPerClass);
      if (!plan.pairs.length) return undefined;
      const roles = pairRoles(plan.pairs);
      const composer = keptComposer(ctx.seed) as StimulusComposer<unknown>;
      const material: PairMaterial<unknown> = { textures: new Map(), shapes: new Map() };
      kept = { dataset, model: ctx.model, seed: ctx.seed, plan, material: material as PairMaterial<ShapeMaterial> };
      quilted = generator === 'quilt' && controls ? { sources: roles.textures, textures: new Map() } : undefined;
      return {
        wants: (r) => roles.textures.has(r.index) || roles.shapes.has(r.index),
        keep(images) {
          images.forEach((img) => keepPairImage(material, roles, composer, img.record, img.pixels, img.sha256));
          quilted?.textures.clear();
        },
      };
    },

    async run(images, ctx) {
      if (!controls) return images.map(() => ({ edges: -1, silhouette: null, texture: -1 }));
      const records: CueControlRecord[] = [];
      for (const group of groupsWithin(images, 3)) {
        throwIfAborted(ctx.signal);
        records.push(...(await runControls(group, ctx.seed, ctx.model)));
      }
      return records;
    },

    async summarize(records, ctx) {
      const map = mapFor(ctx.model);
      const findings: FindingDraft[] = [];

      // Controls: accuracy at the category level, over labelled images whose class has a category.
      const controlMetrics: Record<string, { count: number; correct: number; accuracy: number | null }> = {};
      if (controls) {
        for (const c of CONTROLS) {
          let n = 0;
          let correct = 0;
          for (const r of records) {
            const label = ctx.images[r.image]?.label;
            const v = r[c];
            if (label === undefined || v === null || v === undefined || v < 0) continue;
            const cat = categoryOfClass(map, label);
            if (cat < 0) continue;
            n++;
            if (v === cat) correct++;
          }
          controlMetrics[c] = { count: n, correct, accuracy: n ? round(correct / n) : null };
        }
      }

      // Conflicts: the user's stimuli, or generated ones.
      let result: ConflictResult | undefined;
      let note: string | undefined;
      if (stimuliPath) result = await userStimuli(ctx);
      else {
        const src = await sourceDataset(ctx);
        if (src.error) result = { kind: 'generated', path: src.path, map, decisions: [], count: 0, unreadable: 0, unmapped: 0, warnings: [], gallery: [], error: src.error };
        else if (src.dataset && pairs > 0) result = await generated(ctx, src.dataset, src.path!);
        else note = 'no cue-conflict stimuli: give a stimulus set (stimuli, --cue-conflict DIR) or a labelled dataset to generate them from (source)';
      }
      // Unusable stimuli the user named are an error; the audited dataset simply not lending itself
      // to generation (unlabelled, one class) is said in the headline, not raised as a finding.
      if (result?.generatorFailed) {
        findings.push({
          rule: 'cue-conflict/generator-unsupported',
          severity: 'error',
          message: `cue-conflict stimuli: ${result.error}`,
        });
      } else if (result?.error && !result.cancelled && (stimuliPath || sourcePath)) {
        findings.push({
          rule: 'cue-conflict/stimuli-unreadable',
          severity: 'error',
          message: `cue-conflict stimuli ${result.path ?? ''}: ${result.error}`,
          metrics: { path: result.path ?? null },
        });
      }
      const bias = shapeBias(result?.decisions ?? []);
      const r6 = (x: number | null) => (x === null ? null : round(x));
      const countsOut = (c: BiasCounts) => ({
        conflicts: c.conflicts, shape: c.shape, texture: c.texture, other: c.other,
        shapeBias: r6(c.shapeBias), cueDecisionRate: r6(c.cueDecisionRate),
      });
      const cueDecisions = bias.shape + bias.texture;
      if (bias.shapeBias !== null && cueDecisions >= minDecisions && bias.shapeBias < threshold) {
        findings.push({
          rule: 'cue-conflict/texture-bias',
          severity: 'warning',
          message:
            `The model decides by texture: shape bias ${bias.shapeBias.toFixed(3)} (${bias.shape} shape vs ${bias.texture} texture ` +
            `decisions on ${bias.conflicts} ${result?.kind === 'generated' ? 'generated ' : ''}cue-conflict stimuli), below ${threshold}. ` +
            `Humans: ≈ ${HUMAN_SHAPE_BIAS}; ImageNet ResNet-50: ≈ ${RESNET50_SHAPE_BIAS} (Geirhos et al., ICLR 2019).`,
          metrics: { shapeBias: round(bias.shapeBias), shape: bias.shape, texture: bias.texture, conflicts: bias.conflicts, threshold },
          artifacts: result?.gallery.map((g) => g.png).filter((p): p is string => !!p).slice(0, 8),
        });
      }

      const metrics = {
        stimuli: result
          ? {
              kind: result.kind,
              path: result.path ?? null,
              count: result.kind === 'generated' ? result.decisions.length : result.count,
              evaluated: result.decisions.length,
              unreadable: result.unreadable,
              unmapped: result.unmapped,
              ...(result.kind === 'generated' && generator === 'quilt' ? { withoutSilhouette: result.noSilhouette ?? 0, generator: "weights-free texture quilting (B's patches in A's silhouette)" } : {}),
              ...(result.kind === 'generated' && generator === 'style-transfer'
                ? { generator: "style transfer in the manner of Gatys et al. (2016) on the model's own layers", styleTransfer: styleMetrics(result.style) }
                : {}),
              ...(result.error ? { error: result.error } : {}),
              warnings: result.warnings,
            }
          : null,
        note: note ?? null,
        mapping: {
          source: (result?.map ?? map).source,
          categories: (result?.map ?? map).names.length,
          names: (result?.map ?? map).names.length <= 64 ? (result?.map ?? map).names : undefined,
          warnings: (result?.map ?? map).warnings,
        },
        ...countsOut(bias),
        dropped: bias.dropped,
        byShape: Object.fromEntries(Object.entries(bias.byShape).map(([k, v]) => [k, countsOut(v)])),
        byTexture: Object.fromEntries(Object.entries(bias.byTexture).map(([k, v]) => [k, countsOut(v)])),
        threshold,
        reference: { humans: HUMAN_SHAPE_BIAS, resnet50: RESNET50_SHAPE_BIAS, source: 'Geirhos et al., ICLR 2019' },
        controls: controls ? controlMetrics : null,
        gallery: result?.gallery ?? [],
      };

      const ctrl = controls
        ? '; controls: ' + CONTROLS.map((c) => `${c} ${pct(controlMetrics[c].accuracy)}`).join(', ')
        : '';
      const headline =
        (bias.shapeBias !== null
          ? `shape bias ${bias.shapeBias.toFixed(3)} (${bias.shape} shape vs ${bias.texture} texture of ${bias.conflicts} ${result?.kind === 'generated' ? 'generated ' : ''}cue-conflict stimuli)`
          : result?.error
            ? `no shape bias: ${result.error}`
            : note ?? 'no cue decisions') + ctrl;

      const galleryRecords = (result?.gallery ?? [])
        .filter((g) => g.image !== undefined)
        .map((g) => ({ image: g.image!, why: 'decided-by-texture', stimulus: g.id, shape: g.shape, texture: g.texture, answer: g.answer, textureSource: g.textureSource, ...(g.png ? { artifacts: [g.png] } : {}) }));
      // A few images get their control views drawn (render), with their decisions as records.
      const inGallery = new Set(galleryRecords.map((g) => g.image));
      const sampled = controls ? records.filter((r) => !inGallery.has(r.image)).slice(0, samples) : [];
      const sampleImages = sampled.map((r) => r.image);
      const name = (c: number | null) => (c === null || c < 0 ? null : map.names[c] ?? null);
      const sampleRecords = sampled.map((r) => ({
        image: r.image, why: 'control-sample', edges: name(r.edges), silhouette: name(r.silhouette), texture: name(r.texture),
      }));
      return {
        headline,
        metrics,
        plots: {
          byShape: Object.entries(bias.byShape).map(([k, v]) => ({ category: k, shapeBias: r6(v.shapeBias), shape: v.shape, texture: v.texture })),
          reference: { humans: HUMAN_SHAPE_BIAS, resnet50: RESNET50_SHAPE_BIAS },
        },
        findings,
        records: [...galleryRecords, ...sampleRecords].sort((a, b) => a.image - b.image),
        render: sampleImages,
      };
    },

    async render(images, _records, ctx) {
      const files = new Map<number, string[]>();
      for (const img of images) {
        const { height: H, width: W } = img.pixels;
        const scale = Math.max(1, Math.floor(128 / Math.max(H, W)));
        const dir = `artifacts/cue-conflict/controls/${img.image}`;
        const carrier = shapeCarrier(img.pixels);
        const out = [
          await ctx.writePng(`${dir}-image.png`, img.pixels, { scale }),
          await ctx.writePng(`${dir}-edges.png`, edgeControl(carrier), { scale }),
        ];
        const sil = silhouetteControl(carrier);
        if (sil) out.push(await ctx.writePng(`${dir}-silhouette.png`, sil, { scale }));
        const tex = quiltTexture(img.pixels, carrier.silhouetteOk ? carrier.mask : undefined, derivedRng(ctx.seed, 'cue-conflict/quilt', img.sha256));
        out.push(await ctx.writePng(`${dir}-texture.png`, tex, { scale }));
        files.set(img.image, out);
      }
      return files;
    },
  };
}
