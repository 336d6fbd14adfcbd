/**
 * P6, the architecture prior (Ulyanov et al., CVPR 2018, "Deep Image Prior"): how much of the task
 * the UNTRAINED architecture already solves, and whether trivial cues do.
 *
 * Three feature sets per image, each cut to at most params.dims [256] values by a seeded random
 * projection (prior/project.ts) and stored float16 in the image's record, so records stay small
 * (about 2 KB per image at the default) and cacheable:
 *   trained  the penultimate features of the trained model: the input of the last Gemm/MatMul on
 *            the way to the output, found automatically (model/features.ts, shared with the ood probe), or the tensor
 *            named by params.features;
 *   random   the same tensor in the same graph with re-initialised weights (prior/reinit.ts:
 *            seeded He/Kaiming normal by fan-in, biases 0, BatchNorm statistics and affine
 *            parameters reset to the identity). A quantized graph is first turned into a float
 *            copy (prior/dequantize.ts, keeping the ReLUs its quantization ranges imply); when
 *            that is impossible the random column is left out and the report says why;
 *   pixels   the model-input image itself, area-averaged to ≤ 4096 values.
 * The trained model's own prediction is in the record too.
 *
 * summarize(): on the labelled images of the classes with at least k of them, stratified k-fold cross-validation (params.folds [5],
 * seeded) of two probe classifiers on each feature set (prior/classify.ts): nearest class mean and
 * L2-regularised multinomial logistic regression (params.l2 [0.01], L-BFGS, params.maxIter [100]),
 * features standardised on the training folds. Reported per classifier: the trained model's own
 * accuracy, and the cross-validated accuracy on trained, random-init and pixel features; the share
 * of the trained model's accuracy that the random-init architecture reaches (random / trained),
 * and the same above chance ((random − chance) / (trained − chance), chance = the majority class's
 * share). Finding (model-level warning) when pixels or random-init features, with either
 * classifier, come within params.margin [0.05] of the trained model's accuracy: the dataset may be
 * solvable by trivial cues (or the trained model learned little beyond its architecture).
 */
import { SkepticInputError, throwIfAborted } from '../errors';
import { toBatch } from '../image/ops';
import { crossValidate, matrix, stratifiedFolds, type CvResult } from '../prior/classify';
import { dequantize, DequantizeError } from '../prior/dequantize';
import { classifierOutput, featureRunner, findFeatureTensor, readModelProto, type FeatureRunner } from '../model/features';
import { pack, pixelVector, projection, unpack, type Packed, type Projection } from '../prior/project';
import { reinitialize, type ReinitReport } from '../prior/reinit';
import type { LoadedModel } from '../types';
import { argmax, labelsOf, numberParam, pct, round, type FindingDraft, type Probe, type ProbeImage } from './probe';

export const FEATURE_SETS = ['trained', 'random', 'pixels'] as const;
export type FeatureSet = (typeof FEATURE_SETS)[number];
export const CLASSIFIERS = ['ncm', 'logreg'] as const;

export interface PriorRecord {
  /** The trained model's top-1. */
  pred: number;
  /** Projected features per set (null: unavailable for this model, see the metrics). */
  trained: Packed | null;
  random: Packed | null;
  pixels: Packed;
  /** Each set's length before projection. Kept on the record (not learnt while running) so a
   *  summary over cached or merged records reports the same dimensions. */
  sourceDims: Partial<Record<FeatureSet, number>>;
}

interface Prepared {
  tensor: string;
  how: string;
  reinit?: ReinitReport;
  dequantized?: Record<string, number>;
  randomError?: string;
  trainedError?: string;
}

interface Sessions extends Prepared {
  trained?: FeatureRunner;
  random?: FeatureRunner;
}

export function priorProbe(params: Record<string, unknown> = {}): Probe<PriorRecord> {
  const featuresParam = params.features === undefined || params.features === null || params.features === '' || params.features === 'auto'
    ? undefined
    : String(params.features);
  const dims = numberParam(params, 'prior', 'dims', 256, 2, 4096);
  const folds = numberParam(params, 'prior', 'folds', 5, 2, 100);
  const l2 = numberParam(params, 'prior', 'l2', 0.01, 0, 1e6);
  const maxIter = numberParam(params, 'prior', 'maxIter', 100, 1, 100000);
  const margin = numberParam(params, 'prior', 'margin', 0.05, 0, 1);
  const minImages = numberParam(params, 'prior', 'minImages', 20, 2);
  if (![dims, folds, maxIter, minImages].every(Number.isInteger)) {
    throw new SkepticInputError('probe parameters prior.dims, folds, maxIter and minImages must be integers');
  }

  let sessions: { model: LoadedModel; seed: number; s: Promise<Sessions> } | undefined;
  const projections = new Map<string, Projection>();

  /** Builds (once per model and seed) the trained and re-initialised feature sessions. */
  async function open(model: LoadedModel, seed: number): Promise<Sessions> {
    const proto = readModelProto(model);
    const out: Sessions = { tensor: '', how: '' };
    const output = classifierOutput(proto, model.info.numClasses);
    try {
      if (featuresParam) {
        out.tensor = featuresParam;
        out.how = 'named by the user';
      } else {
        const f = findFeatureTensor(proto, output);
        out.tensor = f.name;
        out.how = f.how;
      }
      const names = new Set<string>();
      for (const n of proto.graph?.node ?? []) for (const o of n.output ?? []) names.add(o);
      for (const i of proto.graph?.input ?? []) names.add(i.name ?? '');
      if (!names.has(out.tensor)) throw new SkepticInputError(`prior.features: the graph has no tensor named '${out.tensor}'`);
    } catch (e) {
      // No feature tensor: the pixel baseline and the trained model's accuracy are still reported.
      if (!(e instanceof SkepticInputError)) throw e;
      out.trainedError = out.randomError = e.message;
      return out;
    }

    try {
      out.trained = await featureRunner(model, readModelProto(model), out.tensor);
    } catch (e) {
      out.trainedError = (e as Error).message.split('\n')[0];
    }
    try {
      const copy = proto;
      if (model.info.quantized) out.dequantized = dequantize(copy, 'relu').ops;
      out.reinit = reinitialize(copy, seed);
      out.random = await featureRunner(model, copy, out.tensor);
    } catch (e) {
      const why = (e as Error).message.split('\n')[0];
      out.randomError = e instanceof DequantizeError ? `the quantized graph has no float copy: ${why}` : why;
    }
    return out;
  }

  const sessionsFor = (model: LoadedModel, seed: number): Promise<Sessions> => {
    if (!sessions || sessions.model !== model || sessions.seed !== seed) sessions = { model, seed, s: open(model, seed) };
    return sessions.s;
  };

  const project = (set: FeatureSet, D: number, seed: number, x: Float32Array, offset: number): Packed => {
    const key = `${set}/${D}/${seed}`;
    let p = projections.get(key);
    if (!p) projections.set(key, (p = projection(D, dims, seed, set)));
    return pack(p.apply(x, offset));
  };

  async function runGroup(images: ProbeImage[], seed: number, model: LoadedModel): Promise<PriorRecord[]> {
    const s = await sessionsFor(model, seed);
    const batch = toBatch(images.map((i) => i.pixels));
    const pred = await model.predict(batch);
    const trained = s.trained ? await s.trained.run(batch.data, batch.n) : undefined;
    const random = s.random ? await s.random.run(batch.data, batch.n) : undefined;
    return images.map((img, i) => {
      const px = pixelVector(img.pixels);
      const sourceDims: Partial<Record<FeatureSet, number>> = {};
      if (trained) sourceDims.trained = trained.dims;
      if (random) sourceDims.random = random.dims;
      sourceDims.pixels = px.length;
      return {
        sourceDims,
        pred: argmax(pred.probs, i * pred.numClasses, pred.numClasses),
        trained: trained ? project('trained', trained.dims, seed, trained.data, i * trained.dims) : null,
        random: random ? project('random', random.dims, seed, random.data, i * random.dims) : null,
        pixels: project('pixels', px.length, seed, px, 0),
      };
    });
  }

  return {
    id: 'prior',
    title: 'Architecture prior',
    params: { features: featuresParam ?? 'auto', dims, folds, l2, maxIter, margin, minImages },
    cacheParams: { features: featuresParam ?? 'auto', dims, init: 'he-normal-fan-in/v1', record: 2 },
    margin: 0,
    rules: {
      'prior/trivial-cues': {
        name: 'SolvableByTrivialCues',
        text: 'A probe on raw pixels or on an untrained copy of the architecture comes close to the trained model.',
        help:
          'Ulyanov et al. (CVPR 2018) showed how much structure a CNN architecture captures before any training. When raw pixels or ' +
          'random-init features already reach the trained accuracy, the dataset may be solvable by trivial cues (colour, position, ' +
          'background, a texture tied to the class), and the accuracy says little about what the model learned. Check the data for ' +
          'shortcuts and evaluate on data where they do not hold.',
      },
    },

    async run(images, ctx) {
      const records: PriorRecord[] = [];
      for (let i = 0; i < images.length; i += 32) {
        throwIfAborted(ctx.signal);
        records.push(...(await runGroup(images.slice(i, i + 32), ctx.seed, ctx.model)));
      }
      return records;
    },

    async summarize(records, ctx) {
      // Sessions are not needed any more; the preparation's notes (tensor, re-init counts) are.
      let prep: Prepared | undefined;
      if (sessions && sessions.model === ctx.model) {
        const s = await sessions.s.catch(() => undefined);
        await s?.trained?.release().catch(() => undefined);
        await s?.random?.release().catch(() => undefined);
        if (s) prep = { tensor: s.tensor, how: s.how, reinit: s.reinit, dequantized: s.dequantized, randomError: s.randomError, trainedError: s.trainedError };
        sessions = undefined;
      }
      if (!prep) prep = notesOnly(ctx.model, ctx.seed, featuresParam);

      // Cross-validation needs every class in the training folds: it runs on the images of the
      // classes with at least `folds` labelled images (the trained accuracy on the same images).
      const labelOf = labelsOf(ctx.images);
      const allLabelled = records.filter((r) => labelOf[r.image] !== undefined);
      const perClass = new Map<number, number>();
      for (const r of allLabelled) perClass.set(labelOf[r.image]!, (perClass.get(labelOf[r.image]!) ?? 0) + 1);
      const labelled = allLabelled.filter((r) => perClass.get(labelOf[r.image]!)! >= folds);
      const labels = labelled.map((r) => labelOf[r.image]!);
      const classCounts = new Map<number, number>();
      for (const y of labels) classCounts.set(y, (classCounts.get(y) ?? 0) + 1);
      const chance = labels.length ? Math.max(...classCounts.values()) / labels.length : null;
      const trainedAcc = labels.length ? labelled.filter((r, i) => r.pred === labels[i]).length / labels.length : null;
      const k = folds;
      const foldOf = stratifiedFolds(labels, k, ctx.seed);
      const enough = labels.length >= minImages && classCounts.size >= 2;

      const results: Record<string, Partial<Record<FeatureSet, CvResult | null>>> = { ncm: {}, logreg: {} };
      const available: Record<FeatureSet, boolean> = { trained: false, random: false, pixels: false };
      const featureDims: Partial<Record<FeatureSet, number>> = {};
      if (enough) {
        for (const set of FEATURE_SETS) {
          if (!labelled.every((r) => r[set])) {
            for (const c of CLASSIFIERS) results[c][set] = null;
            continue;
          }
          const rows = labelled.map((r) => unpack(r[set]!));
          if (rows.some((r) => r.length !== rows[0].length)) {
            for (const c of CLASSIFIERS) results[c][set] = null;
            continue;
          }
          available[set] = true;
          featureDims[set] = rows[0].length;
          const x = matrix(rows);
          for (const c of CLASSIFIERS) {
            throwIfAborted(ctx.signal);
            results[c][set] = crossValidate(x, labels, foldOf, k, c, { l2, maxIter });
          }
        }
      }

      const acc = (c: string, s: FeatureSet) => {
        const r = results[c][s];
        return r && Number.isFinite(r.accuracy) ? r.accuracy : null;
      };
      const share = (x: number | null) => (x === null || trainedAcc === null || trainedAcc <= 0 ? null : round(x / trainedAcc));
      const shareAboveChance = (x: number | null) =>
        x === null || trainedAcc === null || chance === null || trainedAcc <= chance ? null : round((x - chance) / (trainedAcc - chance));
      const probes = Object.fromEntries(
        CLASSIFIERS.map((c) => [
          c,
          {
            trainedModel: trainedAcc === null ? null : round(trainedAcc),
            trainedFeatures: acc(c, 'trained') === null ? null : round(acc(c, 'trained')!),
            randomFeatures: acc(c, 'random') === null ? null : round(acc(c, 'random')!),
            pixels: acc(c, 'pixels') === null ? null : round(acc(c, 'pixels')!),
            randomShare: share(acc(c, 'random')),
            randomShareAboveChance: shareAboveChance(acc(c, 'random')),
            pixelsShare: share(acc(c, 'pixels')),
            ...(c === 'logreg'
              ? { notConverged: Object.fromEntries(FEATURE_SETS.map((s) => [s, results[c][s]?.notConverged ?? null])) }
              : {}),
          },
        ]),
      ) as Record<string, Record<string, number | null | Record<string, number | null>>>;

      const findings: FindingDraft[] = [];
      if (enough && trainedAcc !== null) {
        for (const set of ['pixels', 'random'] as const) {
          const best = CLASSIFIERS.map((c) => ({ c, a: acc(c, set) })).filter((x) => x.a !== null).sort((a, b) => b.a! - a.a!)[0];
          if (!best || best.a! < trainedAcc - margin) continue;
          const what = set === 'pixels' ? 'raw pixels' : 'the untrained architecture (random-init features)';
          findings.push({
            rule: 'prior/trivial-cues',
            severity: 'warning',
            message:
              `A ${best.c === 'ncm' ? 'nearest-class-mean' : 'logistic-regression'} probe on ${what} reaches ${pct(best.a)} ` +
              `(${folds}-fold cross-validated) against the trained model's ${pct(trainedAcc)}: within ${pct(margin)} points. ` +
              'The dataset may be solvable by trivial cues (Ulyanov et al., CVPR 2018).',
            metrics: { features: set, classifier: best.c, accuracy: round(best.a!), trainedAccuracy: round(trainedAcc), margin },
          });
        }
      }

      const metrics = {
        count: records.length,
        labelled: labels.length,
        classes: classCounts.size,
        chance: chance === null ? null : round(chance),
        folds: k,
        enough,
        excluded: allLabelled.length - labelled.length,
        ...(enough ? {} : { note: `cross-validation needs at least ${minImages} labelled images of two or more classes with ${folds} or more images each` }),
        featureTensor: prep.tensor || null,
        featureTensorFound: prep.how || null,
        featureDims: { ...(records.find((r) => r.sourceDims)?.sourceDims ?? {}), ...Object.fromEntries(Object.entries(featureDims).map(([s, d]) => [`${s}Stored`, d])) },
        projection: `seeded Gaussian random projection to ≤ ${dims} dimensions (identity when smaller)`,
        reinit: prep.reinit ?? null,
        dequantized: prep.dequantized ?? null,
        randomUnavailable: prep.randomError ?? (available.random || !enough ? null : 'random-init features missing from the records'),
        trainedUnavailable: prep.trainedError ?? null,
        probes,
        l2,
        maxIter,
        margin,
      };
      const lr = probes.logreg;
      const fmt = (x: unknown) => pct(typeof x === 'number' ? x : null);
      const headline = enough
        ? `trained model ${pct(trainedAcc)}; logistic probe: trained features ${fmt(lr.trainedFeatures)}, random-init ${fmt(lr.randomFeatures)}, pixels ${fmt(lr.pixels)}` +
          `; nearest mean: random-init ${fmt(probes.ncm.randomFeatures)}, pixels ${fmt(probes.ncm.pixels)}`
        : `not enough labelled images (${labels.length} in classes with ${folds} or more) for ${folds}-fold cross-validation`;
      return { headline, metrics, findings, records: [] };
    },
  };
}

/** The notes of the preparation without sessions (every record came from the cache). */
function notesOnly(model: LoadedModel, seed: number, named: string | undefined): Prepared {
  try {
    const proto = readModelProto(model);
    const f = named ? { name: named, how: 'named by the user' } : findFeatureTensor(proto, classifierOutput(proto, model.info.numClasses));
    const out: Prepared = { tensor: f.name, how: f.how };
    try {
      if (model.info.quantized) out.dequantized = dequantize(proto, 'relu').ops;
      out.reinit = reinitialize(proto, seed);
    } catch (e) {
      out.randomError = (e as Error).message.split('\n')[0];
    }
    return out;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    return { tensor: '', how: '', randomError: why, trainedError: why };
  }
}
