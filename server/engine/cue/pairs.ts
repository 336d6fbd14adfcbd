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
 * Streaming (generatedStimuli): a first pass decodes only the texture sources and keeps what the
 * composer makes of each (the weights-free generator: one texture quilted per source, PRNG seeded
 * by (seed, source sha256); style transfer: the image itself) as bytes; a second pass decodes only
 * the shape images and composes them with their textures, a batch at a time. Memory: the
 * textures, one byte per value (≤ pairs of them), plus one batch.
 */
import { throwIfAborted } from '../errors';
import { derivedRng } from '../random';
import type { Dataset, DatasetRecord, DecodeSpec, PixelImage } from '../types';
import { compose, fromBytes01, quiltTexture, shapeCarrier, toBytes01, type GeneratorOptions } from './generate';

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
 * texture source during the first pass and what it returns is kept (as bytes) until the second;
 * `compose` makes a batch of stimuli.
 */
export interface StimulusComposer {
  texture(b: PixelImage, sha256: string): PixelImage;
  compose(items: ComposeItem[], signal?: AbortSignal): Promise<Array<{ image: PixelImage; silhouette?: boolean }>>;
}

/** A pair ready to compose: the shape image, the texture (as `texture` made it), their hashes. */
export interface ComposeItem {
  pair: PlannedPair;
  a: PixelImage;
  texture: PixelImage;
  /** sha256 of A's and of B's file. */
  shaA: string;
  shaB: string;
}

/** The weights-free generator (generate.ts): a texture quilted from B, in A's silhouette. */
export function quiltComposer(seed: number, opts: GeneratorOptions = {}): StimulusComposer {
  return {
    texture(b, sha256) {
      const carrier = shapeCarrier(b, opts);
      return quiltTexture(b, carrier.silhouetteOk ? carrier.mask : undefined, derivedRng(seed, 'cue-conflict/quilt', sha256), opts);
    },
    async compose(items) {
      return items.map(({ a, texture }) => {
        const carrier = shapeCarrier(a, opts);
        return { image: compose(carrier, texture, opts), silhouette: carrier.silhouetteOk };
      });
    },
  };
}

/** Streams the stimuli of `plan` in batches (see the module comment). */
export async function* generatedStimuli(
  dataset: Dataset, spec: DecodeSpec, pairs: readonly PlannedPair[], composer: StimulusComposer, batchSize: number,
  problems: GenerationProblems = { unreadable: [] }, signal?: AbortSignal,
): AsyncGenerator<GeneratedStimulus[]> {
  const decodeSpec: DecodeSpec = { ...spec, margin: 0 };
  const textureIds = new Set(pairs.map((p) => p.b.index));
  const textures = new Map<number, { bytes: Uint8Array; channels: 1 | 3; height: number; width: number; sha256: string }>();
  for await (const batch of dataset.stream(decodeSpec, { batchSize, signal, only: (r) => textureIds.has(r.index) })) {
    throwIfAborted(signal);
    for (const s of batch) {
      if (!s.image || !s.sha256) {
        problems.unreadable.push(s.record.id);
        continue;
      }
      const t = composer.texture(s.image, s.sha256);
      textures.set(s.record.index, { bytes: toBytes01(t), channels: t.channels, height: t.height, width: t.width, sha256: s.sha256 });
    }
  }
  const byA = new Map<number, PlannedPair[]>();
  for (const p of pairs) {
    if (!byA.has(p.a.index)) byA.set(p.a.index, []);
    byA.get(p.a.index)!.push(p);
  }
  let items: ComposeItem[] = [];
  const flush = async (): Promise<GeneratedStimulus[]> => {
    const made = await composer.compose(items, signal);
    const out = items.map((it, i) => ({ pair: it.pair, ...made[i] }));
    items = [];
    return out;
  };
  for await (const batch of dataset.stream(decodeSpec, { batchSize, signal, only: (r) => byA.has(r.index) })) {
    throwIfAborted(signal);
    for (const s of batch) {
      if (!s.image || !s.sha256) {
        problems.unreadable.push(s.record.id);
        continue;
      }
      for (const pair of byA.get(s.record.index)!) {
        const t = textures.get(pair.b.index);
        if (!t) continue;
        items.push({ pair, a: s.image, texture: fromBytes01(t.bytes, t.channels, t.height, t.width), shaA: s.sha256, shaB: t.sha256 });
        if (items.length >= batchSize) yield await flush();
      }
    }
  }
  if (items.length) yield await flush();
}
