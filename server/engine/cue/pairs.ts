/**
 * Generated cue-conflict sets: which images give the shape (A) and which the texture (B), and the
 * stimuli themselves, streamed from any labelled dataset.
 *
 * Pairing (planPairs), deterministic for a seed and independent of the dataset's order:
 *  - the labelled records whose class has a category are grouped by category; within a group
 *    they are ordered by a hash of (seed, record id);
 *  - shape images: taken round-robin over the groups (first of each group, then second, ...)
 *    until `pairs` are chosen or the records run out, so the shape categories are balanced;
 *  - texture sources: the first `texturesPerClass` records of each group (they may also be
 *    shape images of other pairs);
 *  - the j-th shape image of group g takes its texture from group others[(j + h_g) mod (G−1)],
 *    `others` the other groups in order and h_g a seeded offset per group, so each shape category
 *    meets every other texture category equally often; the texture image within that group is
 *    drawn with a PRNG seeded by (seed, A's id).
 *
 * Material (PairMaterial): each image of a plan is decoded once, by the audit's own pass when the
 * pairs come from the audited dataset (the probe keeps what it needs as the images go by) or by
 * one pass of pairMaterial over the dataset for the rest, and gives what the composer keeps of it:
 * a texture source its texture as bytes (the weights-free generator: one texture quilted per
 * source, PRNG seeded by (seed, source sha256); style transfer: the image itself), a shape image
 * its shape material (the weights-free generator: cue/generate.ts ShapeMaterial; style transfer:
 * the image). The stimuli are then composed in dataset order of the shape images, a batch at a
 * time. Memory: ≤ pairs textures (a byte a value) and ≤ pairs shape materials, plus one batch.
 */
import { throwIfAborted } from '../errors';
import { derivedRng } from '../random';
import type { Dataset, DatasetRecord, DecodeSpec, PixelImage } from '../types';
import { compose, composeCarrier, fromBytes01, quiltTexture, shapeCarrier, shapeMaterial, toBytes01, type GeneratorOptions, type ShapeMaterial } from './generate';

export interface PlannedPair {
  a: DatasetRecord;
  b: DatasetRecord;
  /** Category indices of A's class (shape) and B's class (texture). */
  shape: number;
  texture: number;
}

export interface PairPlan {
  pairs: PlannedPair[];
  /** Categories with at least one labelled record. */
  groups: number;
  /** Why no pairs could be planned, when none were. */
  reason?: string;
}

const key = (seed: number, id: string) => derivedRng(seed, 'cue-conflict/order', id)();

export function planPairs(
  records: readonly DatasetRecord[], categoryOf: (label: number) => number, seed: number, pairs: number, texturesPerClass: number,
): PairPlan {
  const byGroup = new Map<number, DatasetRecord[]>();
  for (const r of records) {
    if (r.problem || r.label === undefined) continue;
    const g = categoryOf(r.label);
    if (g < 0) continue;
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g)!.push(r);
  }
  const groups = [...byGroup.keys()].sort((x, y) => x - y);
  if (groups.length < 2) {
    return { pairs: [], groups: groups.length, reason: `the dataset has labelled images of ${groups.length} categor${groups.length === 1 ? 'y' : 'ies'}; cue conflicts need two or more` };
  }
  for (const g of groups) {
    const keyed = byGroup.get(g)!.map((r) => ({ r, k: key(seed, r.id) }));
    keyed.sort((x, y) => x.k - y.k || (x.r.id < y.r.id ? -1 : 1));
    byGroup.set(g, keyed.map((x) => x.r));
  }
  const pool = new Map(groups.map((g) => [g, byGroup.get(g)!.slice(0, Math.max(1, texturesPerClass))]));
  const offset = new Map(groups.map((g) => [g, Math.floor(derivedRng(seed, 'cue-conflict/offset', String(g))() * (groups.length - 1))]));
  const out: PlannedPair[] = [];
  const taken = new Map(groups.map((g) => [g, 0]));
  for (let round = 0; out.length < pairs; round++) {
    let any = false;
    for (const g of groups) {
      if (out.length >= pairs) break;
      const list = byGroup.get(g)!;
      if (round >= list.length) continue;
      any = true;
      const a = list[round];
      const j = taken.get(g)!;
      taken.set(g, j + 1);
      const others = groups.filter((x) => x !== g);
      const t = others[(j + offset.get(g)!) % others.length];
      const candidates = pool.get(t)!;
      const b = candidates[Math.floor(derivedRng(seed, 'cue-conflict/texture', a.id)() * candidates.length)];
      out.push({ a, b, shape: g, texture: t });
    }
    if (!any) break;
  }
  return { pairs: out, groups: groups.length };
}

export interface GeneratedStimulus {
  pair: PlannedPair;
  image: PixelImage;
  /** Whether A's silhouette was found (else the texture fills the frame); undefined for a
   *  generator that uses no silhouette. */
  silhouette?: boolean;
}

export interface GenerationProblems {
  /** Records that could not be decoded (as shape or texture source). */
  unreadable: string[];
}

/**
 * How a stimulus is made from a shape image and a texture source. `texture` runs once per
 * texture source and `shape` once per shape image, when the image is decoded, and what they
 * return is kept until the stimuli are made (the texture as bytes); `compose` makes a batch of
 * stimuli.
 */
export interface StimulusComposer<S = PixelImage> {
  texture(b: PixelImage, sha256: string): PixelImage;
  shape(a: PixelImage): S;
  compose(items: ComposeItem<S>[], signal?: AbortSignal): Promise<Array<{ image: PixelImage; silhouette?: boolean }>>;
}

/** A pair ready to compose: the shape image's material, the texture (as `texture` made it), their hashes. */
export interface ComposeItem<S = PixelImage> {
  pair: PlannedPair;
  a: S;
  texture: PixelImage;
  /** sha256 of A's and of B's file. */
  shaA: string;
  shaB: string;
}

/** The weights-free generator (generate.ts): a texture quilted from B, in A's silhouette. */
export function quiltComposer(seed: number, opts: GeneratorOptions = {}): StimulusComposer<ShapeMaterial> {
  return {
    texture(b, sha256) {
      const carrier = shapeCarrier(b, opts);
      return quiltTexture(b, carrier.silhouetteOk ? carrier.mask : undefined, derivedRng(seed, 'cue-conflict/quilt', sha256), opts);
    },
    shape: (a) => shapeMaterial(a, opts),
    async compose(items) {
      return items.map(({ a, texture }) => ({ image: compose(composeCarrier(a), texture, opts), silhouette: a.silhouetteOk }));
    },
  };
}

/**
 * What the stimuli of a pair plan are made from, by record index: each texture source's texture
 * (bytes) and each shape image's material. Filled as the images are decoded: by the audit's own
 * pass (keepPairImage, so nothing is decoded twice) or, for what that pass did not see, by
 * pairMaterial's pass over the dataset. Memory: one texture (a byte a value) per texture source
 * and one material per shape image, at most `pairs` of each whatever the dataset's size.
 */
export interface PairMaterial<S> {
  textures: Map<number, { bytes: Uint8Array; channels: 1 | 3; height: number; width: number; sha256: string }>;
  shapes: Map<number, { shape: S; sha256: string }>;
}

/** The record indices a plan needs as texture sources and as shape images. */
export function pairRoles(pairs: readonly PlannedPair[]): { textures: Set<number>; shapes: Set<number> } {
  return { textures: new Set(pairs.map((p) => p.b.index)), shapes: new Set(pairs.map((p) => p.a.index)) };
}

/** Keeps what a decoded image gives the plan (its texture, its shape material, or both). */
export function keepPairImage<S>(
  material: PairMaterial<S>, roles: ReturnType<typeof pairRoles>, composer: StimulusComposer<S>, record: { index: number }, image: PixelImage, sha256: string,
): void {
  if (roles.textures.has(record.index) && !material.textures.has(record.index)) {
    const t = composer.texture(image, sha256);
    material.textures.set(record.index, { bytes: toBytes01(t), channels: t.channels, height: t.height, width: t.width, sha256 });
  }
  if (roles.shapes.has(record.index) && !material.shapes.has(record.index)) material.shapes.set(record.index, { shape: composer.shape(image), sha256 });
}

/**
 * Decodes (once, in one pass) the images of a plan that `material` lacks, and keeps what they
 * give; unreadable ones go to problems.
 */
export async function pairMaterial<S>(
  dataset: Dataset, spec: DecodeSpec, pairs: readonly PlannedPair[], composer: StimulusComposer<S>, batchSize: number,
  problems: GenerationProblems = { unreadable: [] }, signal?: AbortSignal, material: PairMaterial<S> = { textures: new Map(), shapes: new Map() },
): Promise<PairMaterial<S>> {
  const roles = pairRoles(pairs);
  const missing = (r: DatasetRecord) =>
    (roles.textures.has(r.index) && !material.textures.has(r.index)) || (roles.shapes.has(r.index) && !material.shapes.has(r.index));
  if (!dataset.records.some(missing)) return material;
  for await (const batch of dataset.stream({ ...spec, margin: 0 }, { batchSize, signal, only: missing })) {
    throwIfAborted(signal);
    for (const s of batch) {
      if (!s.image || !s.sha256) problems.unreadable.push(s.record.id);
      else keepPairImage(material, roles, composer, s.record, s.image, s.sha256);
    }
  }
  return material;
}

/** The plan's pairs with their material, in dataset order of the shape images (then plan order). */
export function* pairedItems<S>(records: readonly DatasetRecord[], pairs: readonly PlannedPair[], material: PairMaterial<S>): Generator<ComposeItem<S>> {
  const byA = new Map<number, PlannedPair[]>();
  for (const p of pairs) {
    if (!byA.has(p.a.index)) byA.set(p.a.index, []);
    byA.get(p.a.index)!.push(p);
  }
  for (const r of records) {
    const a = byA.has(r.index) ? material.shapes.get(r.index) : undefined;
    if (!a) continue;
    for (const pair of byA.get(r.index)!) {
      const t = material.textures.get(pair.b.index);
      if (!t) continue;
      yield { pair, a: a.shape, texture: fromBytes01(t.bytes, t.channels, t.height, t.width), shaA: a.sha256, shaB: t.sha256 };
    }
  }
}

/** Streams the stimuli of `plan` in batches (see the module comment). */
export async function* generatedStimuli<S>(
  dataset: Dataset, spec: DecodeSpec, pairs: readonly PlannedPair[], composer: StimulusComposer<S>, batchSize: number,
  problems: GenerationProblems = { unreadable: [] }, signal?: AbortSignal, material?: PairMaterial<S>,
): AsyncGenerator<GeneratedStimulus[]> {
  const kept = await pairMaterial(dataset, spec, pairs, composer, batchSize, problems, signal, material);
  let items: ComposeItem<S>[] = [];
  const flush = async (): Promise<GeneratedStimulus[]> => {
    const made = await composer.compose(items, signal);
    const out = items.map((it, i) => ({ pair: it.pair, ...made[i] }));
    items = [];
    return out;
  };
  for (const item of pairedItems(dataset.records, pairs, kept)) {
    items.push(item);
    if (items.length >= batchSize) {
      throwIfAborted(signal);
      yield await flush();
    }
  }
  if (items.length) yield await flush();
}
