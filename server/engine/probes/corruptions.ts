/**
 * P7, common corruptions (Hendrycks & Dietterich, ICLR 2019, "Benchmarking neural network
 * robustness to common corruptions and perturbations").
 *
 * Each image is classified under ImageNet-C's 15 corruptions (Gaussian, shot and impulse noise;
 * defocus, glass, motion and zoom blur; snow, frost, fog; brightness, contrast, elastic transform,
 * pixelation, JPEG) and, on request ('extra'), speckle noise, Gaussian blur, spatter and saturate, at
 * severities 1–5, with Hendrycks' constants (CIFAR-10-C's for inputs up to 64 px, ImageNet-C's
 * above; see image/corrupt.ts for the table and the definitions). Randomness is seeded per image,
 * corruption and severity with derivedRng(seed, 'corruptions/<name>/<severity>', sha256), so an
 * image gets the same draws whatever else is audited and whichever corruptions are chosen. The
 * views are made by the views module (views/corruptions.ts) on the model's execution provider, in
 * the model's session.
 *
 * Metrics (labelled images): clean accuracy (the probe's own unshuffled prediction), accuracy per
 * corruption and severity, the mean over severities per corruption, the mean corruption accuracy
 * mCA (mean over all chosen corruptions × severities), and the relative degradation
 * (clean − mCA) / clean: the share of the clean accuracy that corruptions take away (0 = none,
 * 1 = all). Agreement with the clean prediction is reported the same way for all images.
 * On ImageNet (1000 classes, inputs above 64 px) with all five severities, each ImageNet-C
 * corruption also gets its Corruption Error against AlexNet and their mean, mCE
 * (metrics/mce.ts); other datasets have no published baseline and keep the relative drop. Model-level finding when the relative degradation exceeds `maxRelativeDrop`
 * (default 0.15: on CIFAR-10-C a standard WideResNet-40-2 loses about 23% of its clean accuracy,
 * 94.8% → 73.1%, and an AugMix-trained one about 7%, 95.1% → 88.8% (Hendrycks et al., ICLR 2020,
 * "AugMix"): the default sits between a model trained for robustness and one that was not).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { SkepticInputError } from '../errors';
import { CORRUPTIONS, EXTRA_CORRUPTIONS, SMALL_MAX_SIDE, corrupt, isCorruption, type CorruptionName, type CorruptOptions } from '../image/corrupt';
import { corruptionError, meanCorruptionError } from '../metrics/mce';
import { derivedRng, recipeSeeds } from '../random';
import type { PixelImage, Prediction } from '../types';
import { balancedStep, runViews, sourcesPerRun, viewMaker, viewsFor, type ViewInputs, type ViewPlan } from '../views';
import { corruptionViews } from '../views/corruptions';
import { corruptionViewMaker } from '../views/workers';
import { argmax, intListParam, labelsOf, numberParam, pct, round, type FindingDraft, type Probe, type ProbeContext, type ProbeImage, type ViewShape, viewShape } from './probe';

export interface CorruptionsRecord {
  /** Top-1 on the clean image, and its confidence. */
  pred: number;
  conf: number;
  /** Per corruption, a bitmask: bit s−1 set when the prediction at severity s is the label.
   *  Labelled images only. */
  hit?: Record<string, number>;
  /** Per corruption, a bitmask: bit s−1 set when the prediction at severity s equals `pred`. */
  same: Record<string, number>;
}

/** 'all' (ImageNet-C's 15, the default), 'extra' (speckle noise, Gaussian blur, spatter, saturate), or names; groups may be listed ('all,extra'). */
function corruptionsParam(v: unknown): CorruptionName[] {
  if (v === undefined || v === 'all') return [...CORRUPTIONS];
  const raw = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  const list = Array.isArray(raw) ? raw.flatMap((c) => (c === 'all' ? [...CORRUPTIONS] : c === 'extra' ? [...EXTRA_CORRUPTIONS] : [c])) : raw;
  if (!Array.isArray(list) || list.length === 0 || !list.every((c) => typeof c === 'string' && isCorruption(c))) {
    throw new SkepticInputError(`probe parameter corruptions.corruptions must be 'all', 'extra' or a list of ${[...CORRUPTIONS, ...EXTRA_CORRUPTIONS].join(', ')}; got ${JSON.stringify(v)}`);
  }
  // Kept in the canonical order, so the same set gives the same parameters (and cache key).
  return [...CORRUPTIONS, ...EXTRA_CORRUPTIONS].filter((c) => (list as string[]).includes(c));
}

/**
 * corruptions.frostDir: a folder of frost textures (image/frost.ts), checked now so that a wrong
 * path fails before the audit; its identity for the cache is the files' names and content hashes.
 */
function frostDirParam(v: unknown): { dir?: string; identity: unknown } {
  if (v === undefined || v === '') return { identity: 'procedural-1' };
  if (typeof v !== 'string') throw new SkepticInputError(`probe parameter corruptions.frostDir must be a folder path, got ${JSON.stringify(v)}`);
  const dir = resolve(v);
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    names = readdirSync(dir);
  } catch (e) {
    throw new SkepticInputError(`corruptions.frostDir: cannot read ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const files = names.filter((n) => /^\.(png|jpe?g|webp|tiff?)$/i.test(extname(n))).sort();
  if (!files.length) throw new SkepticInputError(`corruptions.frostDir: ${dir} has no PNG, JPEG, WebP or TIFF images`);
  // names and content hashes: the same textures give the same key on every host (shards, merge)
  return { dir, identity: files.map((f) => `${f}:${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}`) };
}

/** The corrupted view the probe classifies, by image/corrupt.ts's plain loops (the gallery renders the views module's, the same to float rounding). */
export function corruptedView(img: PixelImage, name: CorruptionName, severity: number, seed: number, sha256: string, opts: CorruptOptions = {}): Promise<PixelImage> {
  return corrupt(img, name, severity, derivedRng(seed, `corruptions/${name}/${severity}`, sha256), opts);
}

const roundOrNull = (v: number | null) => (v === null ? null : round(v));

export function corruptionsProbe(params: Record<string, unknown> = {}): Probe<CorruptionsRecord> {
  const corruptions = corruptionsParam(params.corruptions);
  const severities = (intListParam(params, 'corruptions', 'severities', 1, 5) ?? [1, 2, 3, 4, 5]).sort((x, y) => x - y);
  const maxRelativeDrop = numberParam(params, 'corruptions', 'maxRelativeDrop', 0.15, 0, 1);
  const minLabelled = numberParam(params, 'corruptions', 'minLabelled', 20, 1);
  const renderImages = numberParam(params, 'corruptions', 'renderImages', 4, 0, 1000);
  const renderSeverity = severities.includes(3) ? 3 : severities[Math.floor(severities.length / 2)];
  const frost = corruptions.includes('frost') ? frostDirParam(params.frostDir) : { identity: undefined, dir: undefined };
  const opts: CorruptOptions = frost.dir ? { frostDir: frost.dir } : {};

  /** A batch's views: the plan (view 0 the clean image, then each corruption at each severity),
   *  the maker of their CPU part (worker threads: views/workers.ts) and each image's seeds. */
  function viewsOf(images: ProbeImage[], ctx: ProbeContext) {
    return viewsAt(viewShape(images[0]), ctx);
  }
  function viewsAt({ channels, height, width, margin: m }: ViewShape, ctx: ProbeContext) {
    const made = makerFor(height, width, ctx);
    const plan: ViewPlan = { channels, height, width, margin: m, ops: [{ kind: 'crop', top: m, left: m }, ...made.ops] };
    const seed = (img: ProbeImage) => viewSeeds(ctx.seed, img);
    return { made, plan, seed };
  }

  /** An image's seed per corruption and severity: its views' draws, in the audit and in the gallery. */
  const viewSeeds = (auditSeed: number, img: ProbeImage) => recipeSeeds({ seed: auditSeed, prefix: 'corruptions', tag: img.sha256 });

  /** The last batch's maker, for the next batches of its size in the same audit: the input sets it
   *  keeps for reuse carry over (a maker per batch made every small image's set anew) and so does
   *  what it learned (which seeds its workers use). */
  let maker: { height: number; width: number; model: ProbeContext['model']; signal?: AbortSignal; made: ReturnType<typeof corruptionViewMaker> } | undefined;
  function makerFor(height: number, width: number, ctx: ProbeContext) {
    if (maker?.height !== height || maker.width !== width || maker.model !== ctx.model || maker.signal !== ctx.signal) {
      const list = corruptions.flatMap((name) => severities.map((s): [CorruptionName, number] => [name, s]));
      maker = { height, width, model: ctx.model, signal: ctx.signal, made: corruptionViewMaker(list, height, width, opts, { owner: ctx.model, signal: ctx.signal }) };
    }
    return maker.made;
  }

  /** Inputs prepare() asked the workers for, by image: the next run() takes them from here. */
  let early = new Map<ProbeImage, Promise<ViewInputs>>();

  function prepare(images: ProbeImage[], ctx: ProbeContext): void {
    early = new Map();
    const { made, plan, seed } = viewsOf(images, ctx);
    // made on this thread they would only be made sooner, not beside anything
    if (!made.threads) return;
    // what runViews asks for first (its first `ahead` runs): made while the other probes run
    const first = made.ahead * balancedStep(images.length, sourcesPerRun(plan));
    for (const img of images.slice(0, first)) {
      const p = made.inputs(img.pixels, seed(img));
      p.catch(() => undefined); // a cancel rejects it: run() sees that when it waits for it
      early.set(img, p);
    }
  }

  async function runAll(images: ProbeImage[], ctx: ProbeContext): Promise<CorruptionsRecord[]> {
    const { made, plan, seed } = viewsOf(images, ctx);
    const ready = early;
    early = new Map();
    const runner = await viewsFor(ctx.model, plan);
    const records = new Map<ProbeImage, CorruptionsRecord>();
    await runViews(
      runner,
      images,
      async (img) => {
        const inputs = await (ready.get(img) ?? made.inputs(img.pixels, seed(img)));
        return { source: img.context, inputs, done: () => made.recycle(inputs) };
      },
      (img, out, base) => records.set(img, record(img, out, base)),
      ctx.signal,
      made.ahead,
    );
    return images.map((img) => records.get(img)!);
  }

  function record(img: ProbeImage, out: Prediction, base: number): CorruptionsRecord {
    const K = out.numClasses;
    const top = (v: number) => argmax(out.probs, v * K, K);
    const pred = top(base);
    const rec: CorruptionsRecord = { pred, conf: round(out.probs[base * K + pred]), same: {} };
    if (img.label !== undefined) rec.hit = {};
    corruptions.forEach((name, ci) => {
      let same = 0;
      let hit = 0;
      severities.forEach((s, si) => {
        const p = top(base + 1 + ci * severities.length + si);
        if (p === pred) same |= 1 << (s - 1);
        if (p === img.label) hit |= 1 << (s - 1);
      });
      rec.same[name] = same;
      if (rec.hit) rec.hit[name] = hit;
    });
    return rec;
  }

  return {
    id: 'corruptions',
    title: 'Common corruptions',
    params: { corruptions, severities, maxRelativeDrop, minLabelled, renderImages, ...(frost.dir ? { frostDir: frost.dir } : {}) },
    // frost's textures enter the key only when frost runs, so the other corruptions' records keep theirs
    cacheParams: frost.identity === undefined ? { corruptions, severities } : { corruptions, severities, frost: frost.identity },
    margin: 0,
    rules: {
      'corruptions/fragile-model': {
        name: 'CorruptionFragileModel',
        text: 'Accuracy falls sharply under common corruptions (noise, blur, JPEG, pixelation, brightness, contrast).',
        help:
          'Hendrycks & Dietterich (ICLR 2019): models trained on clean images lose much of their accuracy under corruptions ' +
          'people hardly notice. Augmentation (AugMix, Hendrycks et al. ICLR 2020; noise and blur augmentation) helps; look at ' +
          'the per-corruption accuracies for the weakest family.',
      },
    },

    prepare,
    viewPlans: (shape, ctx) => [{ plan: viewsAt(shape, ctx).plan }],
    run(images, ctx) {
      return runAll(images, ctx);
    },

    summarize(records, ctx) {
      const labels = labelsOf(ctx.images);
      const labelled = records.filter((r) => r.hit && labels[r.image] !== undefined);
      const nL = labelled.length;
      const n = records.length;
      const clean = nL ? round(labelled.filter((r) => r.pred === labels[r.image]).length / nL) : null;
      const bit = (s: number) => 1 << (s - 1);
      const mean = (xs: number[]) => (xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length) : null);

      const accuracy: Record<string, number[]> = {};
      const agreement: Record<string, number[]> = {};
      // Corruption Error against AlexNet (metrics/mce.ts): ImageNet only (1000 classes, inputs above 64 px)
      const imagenet = ctx.model.info.numClasses === 1000 && Math.min(ctx.model.info.height, ctx.model.info.width) > SMALL_MAX_SIDE;
      const perCorruption: Array<{ corruption: string; accuracy: number | null; agreement: number | null; relativeDrop: number | null; ce: number | null }> = [];
      const rawCe: Array<number | null> = []; // unrounded, for the mean
      for (const name of corruptions) {
        accuracy[name] = severities.map((s) => (nL ? round(labelled.filter((r) => r.hit![name] & bit(s)).length / nL) : NaN));
        agreement[name] = severities.map((s) => (n ? round(records.filter((r) => r.same[name] & bit(s)).length / n) : NaN));
        const acc = nL ? mean(accuracy[name]) : null;
        const ce = nL && imagenet ? corruptionError(name, accuracy[name], severities) : null;
        rawCe.push(ce);
        perCorruption.push({
          corruption: name,
          accuracy: acc,
          agreement: mean(agreement[name]),
          relativeDrop: acc !== null && clean ? round((clean - acc) / clean) : null,
          ce: roundOrNull(ce),
        });
      }
      const mCA = nL ? mean(corruptions.flatMap((c) => accuracy[c])) : null;
      const meanAgreement = mean(corruptions.flatMap((c) => agreement[c]));
      const relativeDrop = mCA !== null && clean ? round((clean - mCA) / clean) : null;
      const mce = meanCorruptionError(rawCe);
      const worst = nL ? [...perCorruption].sort((a, b) => a.accuracy! - b.accuracy!)[0] : [...perCorruption].sort((a, b) => a.agreement! - b.agreement!)[0];

      const metrics = {
        count: n,
        labelled: nL,
        severities,
        cleanAccuracy: clean,
        meanCorruptionAccuracy: mCA,
        relativeDegradation: relativeDrop,
        // mCE (Hendrycks & Dietterich): mean CE over mCECorruptions corruptions (15 for the benchmark's figure); null off ImageNet
        mCE: roundOrNull(mce.mCE),
        mCECorruptions: mce.count,
        meanAgreement,
        worst: worst ? worst.corruption : null,
        perCorruption,
        accuracy: nL ? accuracy : null,
        agreement,
      };

      const findings: FindingDraft[] = [];
      if (relativeDrop !== null && nL >= minLabelled && relativeDrop > maxRelativeDrop) {
        const weakest = [...perCorruption].sort((a, b) => a.accuracy! - b.accuracy!).slice(0, 3);
        findings.push({
          rule: 'corruptions/fragile-model',
          severity: 'warning',
          message:
            `Under common corruptions (severities ${severities.join(', ')}) mean accuracy is ${pct(mCA)} against ${pct(clean)} clean: ` +
            `a relative drop of ${pct(relativeDrop)} (threshold ${pct(maxRelativeDrop)}). Weakest: ` +
            weakest.map((w) => `${w.corruption} ${pct(w.accuracy)}`).join(', ') + ' (Hendrycks & Dietterich, ICLR 2019).',
          metrics: { meanCorruptionAccuracy: mCA, cleanAccuracy: clean, relativeDegradation: relativeDrop, worst: worst?.corruption ?? null },
        });
      }

      // Examples: the first images the model gets right when clean (they show what breaks).
      const right = (r: (typeof records)[number]) => labels[r.image] !== undefined && r.pred === labels[r.image];
      const render = [...records].sort((a, b) => Number(right(b)) - Number(right(a)) || a.image - b.image).slice(0, renderImages).map((r) => r.image);

      const mceNote = mce.mCE !== null ? `, mCE ${pct(mce.mCE)}${mce.count < 15 ? ` over ${mce.count} of 15` : ''}` : '';
      const headline = nL
        ? `mean corruption accuracy ${pct(mCA)} (clean ${pct(clean)}, relative drop ${pct(relativeDrop)}${mceNote}); worst: ${worst.corruption} ${pct(worst.accuracy)}`
        : `mean agreement with the clean prediction ${pct(meanAgreement)}; worst: ${worst.corruption} ${pct(worst.agreement)}`;
      return {
        headline,
        metrics,
        plots: { severities, corruptions, accuracy: nL ? accuracy : null, agreement, cleanAccuracy: clean },
        findings,
        render,
      };
    },

    async render(images, _records, ctx) {
      const files = new Map<number, string[]>();
      if (!images.length) return files;
      // The gallery's views from the views module, as the audit made them (the same draws, the same
      // graph, here on the CPU one image at a time): the plain loops of image/corrupt.ts took about
      // 1.2 s of the main thread for four 224² images (defocus blur's direct 2-D sum alone 70 ms a view)
      const { channels: C, height: H, width: W } = images[0].pixels;
      const views = corruptionViews(corruptions.map((name): [CorruptionName, number] => [name, renderSeverity]), H, W, opts);
      const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: views.ops };
      const scale = Math.max(1, Math.ceil(128 / Math.max(H, W)));
      const maker = await viewMaker(plan);
      try {
        for (const img of images) {
          const dir = `artifacts/corruptions/${img.image}`;
          const list = [await ctx.writePng(`${dir}-clean.png`, img.pixels, { scale })];
          const inputs = await views.inputs(img.pixels, viewSeeds(ctx.seed, img));
          const made = await maker.views({ source: img.pixels, inputs });
          for (const [k, name] of corruptions.entries()) list.push(await ctx.writePng(`${dir}-${name}-s${renderSeverity}.png`, made[k], { scale }));
          files.set(img.image, list);
        }
      } finally {
        await maker.release();
      }
      return files;
    },
  };
}
