/**
 * The ood probe's feature-space detectors, composed: which detectors, the seeded fit/score split,
 * the feature tap session (features and logits from one run), and fitting over the per-image
 * records (so a sharded audit's merged records are enough).
 *
 * The split: an image is in the fit half when derivedRng(seed, 'ood/split', sha256) draws < ½,
 * a choice that depends on the image alone. Detectors are fitted on the fit half's features
 * (class = the label when the image has one, else the model's prediction) and score the other
 * half and the OOD variants of the other half's images, so no image scores itself and no OOD
 * variant is derived from a fit image; a user OOD set is scored whole.
 */
import { SkepticInputError } from '../errors';
import { classifierOutput, featureRunner, findFeatureTensor, quantParams, readModelProto, type FeatureRunner } from '../model/features';
import { linearHead, type LinearHead } from '../model/head';
import { pack, unpack, type Packed } from '../prior/project';
import { derivedRng } from '../random';
import type { LoadedModel } from '../types';
import type { Detector, Fitted } from './detector';
import { knn } from './knn';
import { mahalanobis } from './mahalanobis';
import { react } from './react';
import { vim } from './vim';

export const DETECTORS = ['mahalanobis', 'knn', 'vim', 'react'] as const;
export type DetectorName = (typeof DETECTORS)[number];

export function detectorsParam(v: unknown): DetectorName[] {
  // Off unless asked for: fitting and scoring them costs several times the softmax scores, and the
  // editor's default audit should stay quick; `all` (or a list) turns them on.
  if (v === undefined || v === null || v === '' || v === 'none') return [];
  if (v === 'all') return [...DETECTORS];
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw new SkepticInputError(`probe parameter ood.detectors must be a list of detector names, "all" or "none", got ${JSON.stringify(v)}`);
  }
  if (list.length === 1 && list[0] === 'none') return [];
  for (const s of list) {
    if (!(DETECTORS as readonly string[]).includes(s)) {
      throw new SkepticInputError(`probe parameter ood.detectors: unknown detector '${s}'; known: ${DETECTORS.join(', ')} (or "all", "none")`);
    }
  }
  return DETECTORS.filter((s) => list.includes(s));
}

export interface DetectorOptions {
  k: number;
  ridge: number;
  percentile: number;
}

export function makeDetector(name: DetectorName, o: DetectorOptions): Detector {
  switch (name) {
    case 'mahalanobis': return mahalanobis(o.ridge);
    case 'knn': return knn(o.k);
    case 'vim': return vim();
    case 'react': return react(o.percentile);
  }
}

/** Whether an image is in the fit half (see the module comment). */
export function inFitHalf(seed: number, sha256: string): boolean {
  return derivedRng(seed, 'ood/split', sha256)() < 0.5;
}

/** The tap: the feature tensor, how it was chosen, the session, and the head (or why not). */
export interface Tap {
  tensor: string;
  how: string;
  runner?: FeatureRunner;
  /** Scale and zero point of a quantized feature tensor (the view sessions dequantize with them). */
  quant?: { scale: number; zeroPoint: number };
  head?: LinearHead;
  headError?: string;
  error?: string;
}

/** Opens the feature tap on `model`: features of `named` (or the penultimate ones) with the logits. */
export async function openTap(model: LoadedModel, named?: string): Promise<Tap> {
  // Anything that stops the tap leaves the detectors out with the reason; MSP and energy then
  // come from the model's own predict() as without detectors.
  try {
    return await tryOpenTap(model, named);
  } catch (e) {
    return { tensor: '', how: '', error: `the feature tap could not be opened: ${(e as Error).message.split('\n')[0]}` };
  }
}

async function tryOpenTap(model: LoadedModel, named?: string): Promise<Tap> {
  const proto = readModelProto(model);
  const output = classifierOutput(proto, model.info.numClasses);
  const tap: Tap = { tensor: '', how: '' };
  try {
    if (named) {
      const names = new Set<string>();
      for (const n of proto.graph?.node ?? []) for (const o of n.output ?? []) names.add(o);
      if (!names.has(named)) throw new SkepticInputError(`ood.features: the graph has no tensor named '${named}'`);
      tap.tensor = named;
      tap.how = 'named by the user';
    } else {
      const f = findFeatureTensor(proto, output);
      tap.tensor = f.name;
      tap.how = f.how;
    }
  } catch (e) {
    if (!(e instanceof SkepticInputError)) throw e;
    tap.error = e.message;
    return tap;
  }
  try {
    tap.head = linearHead(proto, tap.tensor);
  } catch (e) {
    tap.headError = (e as Error).message;
  }
  tap.quant = quantParams(proto, tap.tensor);
  const runner = await featureRunner(model, proto, tap.tensor, 32, { name: output, count: model.info.numClasses });
  // One grey image through it first: a tensor of a type the tap cannot read, or an output that is
  // not the class scores, leaves the detectors out here rather than failing the probe later.
  try {
    const { channels: C, height: H, width: W } = model.info;
    const r = await runner.run(new Float32Array(C * H * W).fill(0.5), 1);
    if (!r.dims || !r.output || r.output.length !== model.info.numClasses) throw new Error('the tap gives no features or no class scores');
  } catch (e) {
    await runner.release().catch(() => undefined);
    throw e;
  }
  tap.runner = runner;
  return tap;
}

export interface FitRow {
  feat: Packed;
  cls: number;
}

export interface FittedSet {
  fitted: Partial<Record<DetectorName, Fitted>>;
  skipped: Partial<Record<DetectorName, string>>;
  d: number;
  fitCount: number;
}

/** Fits each detector on the rows (features unpacked to float32, arithmetic in float64). */
export function fitDetectors(names: DetectorName[], rows: FitRow[], head: LinearHead | undefined, headError: string | undefined, seed: number, o: DetectorOptions): FittedSet {
  const out: FittedSet = { fitted: {}, skipped: {}, d: 0, fitCount: rows.length };
  if (rows.length < 2) {
    for (const n of names) out.skipped[n] = `${rows.length} image${rows.length === 1 ? '' : 's'} in the fit half; at least 2 are needed`;
    return out;
  }
  const first = unpack(rows[0].feat);
  const d = first.length;
  out.d = d;
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => x.set(i ? unpack(r.feat) : first, i * d));
  const cls = Int32Array.from(rows.map((r) => r.cls));
  for (const name of names) {
    const det = makeDetector(name, o);
    if (det.needsHead && !head) {
      out.skipped[name] = `needs the classifier head's weights: ${headError ?? 'not read'}`;
      continue;
    }
    try {
      out.fitted[name] = det.fit({ n: rows.length, d, x, cls, head, seed });
    } catch (e) {
      out.skipped[name] = (e as Error).message;
    }
  }
  return out;
}

/** Scores of one packed feature vector under every fitted detector. */
export function scoreAll(f: FittedSet, feat: Packed | Float32Array): Partial<Record<DetectorName, number>> {
  const x = feat instanceof Float32Array ? feat : unpack(feat);
  const s: Partial<Record<DetectorName, number>> = {};
  for (const [name, fit] of Object.entries(f.fitted) as Array<[DetectorName, Fitted]>) s[name] = x.length === f.d ? fit.score(x, 0) : NaN;
  return s;
}

export { pack };
