/**
 * P3, bag of local features (Brendel & Bethge, ICLR 2019, "Approximating CNNs with bag-of-local-
 * features models works surprisingly well on ImageNet").
 *
 * Patch shuffle. The image is cut into g×g equal tiles (g in `grids`, default 2, 4, 8), the tiles
 * are permuted and the image is classified again. Tiles are ⌊H/g⌋×⌊W/g⌋ pixels, exactly, over the
 * centred region they tile; when g does not divide the side, the H mod g leftover rows (⌊r/2⌋ above,
 * the rest below) and W mod g columns stay where they are (28 px at g = 8: 3-px tiles over the
 * central 24×24, a 2-px frame kept). Equal tiles let every tile go anywhere: with unequal tiles
 * (boundaries ⌊i·H/g⌋) a tile could only trade places with one of its own size, and at 299 px and
 * g = 2 no tile would move at all. The permutation is a uniformly drawn derangement (no tile stays
 * in place, so even at 2×2 every part of the image moves), seeded per image and grid with
 * derivedRng(seed, 'patches/shuffle/<g>', sha256). We report, per grid, accuracy on labelled
 * images and agreement with the unshuffled prediction on all images, and the share of the
 * above-chance accuracy that survives: retained = (acc_g − 1/K) / (acc_clean − 1/K).
 * A model that decides by global shape falls to chance once the tiles are small (retained ≈ 0);
 * a bag of local features keeps most of it. Model-level finding when retained at g = 4
 * (`findingGrid`) reaches `minRetained` (default 0.5: "keeps most of its accuracy", measured
 * above chance, because with few classes half the clean accuracy is barely above chance: at 4
 * classes and 96% clean, 0.5·clean = 48% against a chance level of 25%).
 *
 * Local evidence. Each q×q patch (q = `patchSize`, default ¼ of the short side; stride default
 * q/2, the last position flush with the far edge) is classified alone: pasted at its own place
 * on a canvas filled with the image's per-channel mean colour (`fill`: 'mean', or a grey level),
 * so that the canvas adds no brightness or colour the image did not have. Per image we keep the
 * p(class) map of the label and of the prediction (3 decimals), the number of patches whose own
 * top-1 is the label, and the prediction on the empty canvas as a control. Reported: the share of
 * labelled images where at least one patch alone yields the label, and the mean share of such
 * patches. BagNet-style heatmaps are rendered for the images the summary picks. Evidence costs
 * one inference per patch (49 at the defaults), so it runs on a deterministic sample: an image
 * is in it when derivedRng(seed, 'patches/evidence', sha256)() < `evidenceRate` (default 0.25).
 * The choice depends only on the image and the seed, so records stay cacheable. The views (tile
 * shuffles, patches on canvases) are made by the views module on the model's provider; the
 * functions below are their plain definitions (the tests hold the views to them) and draw the
 * artifacts.
 */
import { SkepticInputError } from '../errors';
import { overlay, spreadPatches } from '../image/heatmap';
import { derivedRng } from '../random';
import type { PixelImage } from '../types';
import { runViews, viewsFor, type ViewOp, type ViewPlan } from '../views';
import {
  argmax, intListParam, labelsOf, numberParam, pct, round,
  type FindingDraft, type Probe, type ProbeContext, type ProbeImage, type ProbeRecord,
} from './probe';

export interface EvidenceRecord {
  /** Patch positions per axis: the maps are rows×cols, row-major. */
  rows: number;
  cols: number;
  /** Patches whose own top-1 is the label (unlabelled: the full image's prediction). */
  hits: number;
  /** Top-1 on the empty canvas (no patch): a control for what the canvas alone says. */
  blank: number;
  /** Classes whose maps are kept: the label (when labelled), then the prediction if different. */
  classes: number[];
  /** p(class) of each patch alone, per class in `classes`. */
  maps: number[][];
}

export interface PatchesRecord {
  /** Top-1 on the unshuffled image, and its confidence. */
  pred: number;
  conf: number;
  /** Top-1 on the shuffled image, per grid (in the order of params.grids). */
  shuffled: number[];
  /** Local evidence, for the images in the evidence sample. */
  evidence?: EvidenceRecord;
}

// ---------------------------------------------------------------------------------------------
// Transforms (pure, exported for tests)

/** One axis of length n cut into g equal tiles: tile size ⌊n/g⌋, first tile at ⌊(n mod g)/2⌋. */
export function tiling(n: number, g: number): { offset: number; size: number } {
  const size = Math.floor(n / g);
  if (size < 1) throw new RangeError(`cannot cut ${n} pixels into ${g} tiles`);
  return { offset: Math.floor((n - size * g) / 2), size };
}

/**
 * A uniformly drawn derangement of 0..n−1 (no element in its place) for n ≥ 2, by rejection of
 * Fisher–Yates shuffles (about e draws on average); the identity for n < 2.
 */
export function derangement(n: number, rng: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  if (n < 2) return p;
  for (;;) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    if (p.every((v, i) => v !== i)) return p;
  }
}

/**
 * Reassembles the image with tile perm[k] (row-major over the g×g grid) at slot k. Pixels
 * outside the tiled region (the leftover rows and columns) stay in place.
 */
export function shuffleTiles(img: PixelImage, g: number, perm: number[]): PixelImage {
  const { channels: C, height: H, width: W } = img;
  if (perm.length !== g * g) throw new RangeError(`a ${g}×${g} grid needs a permutation of ${g * g}, got ${perm.length}`);
  const ty = tiling(H, g);
  const tx = tiling(W, g);
  const out = new Float32Array(img.data);
  for (let slot = 0; slot < g * g; slot++) {
    const src = perm[slot];
    const dTop = ty.offset + Math.floor(slot / g) * ty.size;
    const dLeft = tx.offset + (slot % g) * tx.size;
    const sTop = ty.offset + Math.floor(src / g) * ty.size;
    const sLeft = tx.offset + (src % g) * tx.size;
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < ty.size; y++) {
        const s = c * H * W + (sTop + y) * W + sLeft;
        out.set(img.data.subarray(s, s + tx.size), c * H * W + (dTop + y) * W + dLeft);
      }
    }
  }
  return { data: out, channels: C, height: H, width: W };
}

/** The seeded permutation the probe uses for an image at grid g. */
export function shufflePermutation(g: number, seed: number, sha256: string): number[] {
  return derangement(g * g, derivedRng(seed, `patches/shuffle/${g}`, sha256));
}

/** The image shuffled at grid g, as the probe classifies it. */
export function patchShuffle(img: PixelImage, g: number, seed: number, sha256: string): PixelImage {
  return shuffleTiles(img, g, shufflePermutation(g, seed, sha256));
}

/** Patch positions along an axis: 0, stride, 2·stride, … ≤ n − q, plus n − q when missed. */
export function patchPositions(n: number, q: number, stride: number): number[] {
  if (q > n) throw new RangeError(`patch size ${q} exceeds the image side ${n}`);
  const out: number[] = [];
  for (let p = 0; p <= n - q; p += stride) out.push(p);
  if (out[out.length - 1] !== n - q) out.push(n - q);
  return out;
}

/** Per-channel fill of the neutral canvas: the image's mean colour, or a fixed grey. */
export function canvasFill(img: PixelImage, fill: 'mean' | number): number[] {
  const n = img.height * img.width;
  return Array.from({ length: img.channels }, (_, c) => {
    if (fill !== 'mean') return fill;
    let s = 0;
    for (let p = 0; p < n; p++) s += img.data[c * n + p];
    return s / n;
  });
}

/** A canvas of the image's size, filled per channel, with the q×q patch at (top, left) in place
 *  (q = 0: the empty canvas). */
export function patchOnCanvas(img: PixelImage, top: number, left: number, q: number, fill: number[]): PixelImage {
  const { channels: C, height: H, width: W } = img;
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) {
    out.fill(fill[c], c * H * W, (c + 1) * H * W);
    for (let y = top; y < top + q; y++) {
      const s = c * H * W + y * W + left;
      out.set(img.data.subarray(s, s + q), s);
    }
  }
  return { data: out, channels: C, height: H, width: W };
}

// ---------------------------------------------------------------------------------------------
// The probe

function fillParam(v: unknown): 'mean' | number {
  if (v === undefined || v === 'mean') return 'mean';
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new SkepticInputError(`probe parameter patches.fill must be 'mean' or a grey level in [0, 1], got ${JSON.stringify(v)}`);
  }
  return n;
}

interface Geometry {
  q: number;
  stride: number;
  tops: number[];
  lefts: number[];
}

export function patchesProbe(params: Record<string, unknown> = {}): Probe<PatchesRecord> {
  const grids = intListParam(params, 'patches', 'grids', 2, 64) ?? [2, 4, 8];
  const findingGrid = numberParam(params, 'patches', 'findingGrid', 4, 2, 64);
  const minRetained = numberParam(params, 'patches', 'minRetained', 0.5, 0, 1);
  const minLabelled = numberParam(params, 'patches', 'minLabelled', 20, 1);
  const evidenceRate = numberParam(params, 'patches', 'evidenceRate', 0.25, 0, 1);
  const patchSize = numberParam(params, 'patches', 'patchSize', 0, 0, 4096);
  const strideParam = numberParam(params, 'patches', 'stride', 0, 0, 4096);
  const fill = fillParam(params.fill);
  const renderImages = numberParam(params, 'patches', 'renderImages', 8, 0, 1000);
  const keepMaps = numberParam(params, 'patches', 'keepMaps', 64, 0, 1e9);

  function geometry(H: number, W: number): Geometry {
    const q = patchSize > 0 ? Math.round(patchSize) : Math.max(1, Math.round(Math.min(H, W) / 4));
    if (q > Math.min(H, W)) throw new SkepticInputError(`probe parameter patches.patchSize ${q} exceeds the input size ${H}×${W}`);
    const stride = strideParam > 0 ? Math.round(strideParam) : Math.max(1, Math.round(q / 2));
    return { q, stride, tops: patchPositions(H, q, stride), lefts: patchPositions(W, q, stride) };
  }

  function checkGrids(H: number, W: number): void {
    for (const g of grids) {
      if (g > Math.min(H, W)) throw new SkepticInputError(`probe parameter patches.grids: ${g}×${g} tiles do not fit the input size ${H}×${W}`);
    }
  }

  const inSample = (seed: number, sha256: string) =>
    evidenceRate >= 1 || (evidenceRate > 0 && derivedRng(seed, 'patches/evidence', sha256)() < evidenceRate);

  /** The probe's views: the image and its shuffles for every image; the blank canvas and each
   *  patch alone for the images in the evidence sample. */
  function plans(C: number, H: number, W: number, m: number, geo: Geometry): { shuffle: ViewPlan; evidence: ViewPlan } {
    const shuffle: ViewOp[] = [{ kind: 'crop', top: m, left: m }];
    grids.forEach((g, slot) => {
      const ty = tiling(H, g);
      const tx = tiling(W, g);
      const at = (t: { offset: number; size: number }) => Array.from({ length: g + 1 }, (_, i) => t.offset + i * t.size);
      shuffle.push({ kind: 'tiles', rows: at(ty), cols: at(tx), slot });
    });
    const evidence: ViewOp[] = [{ kind: 'patch', top: 0, left: 0, size: 0, fill }];
    for (const top of geo.tops) for (const left of geo.lefts) evidence.push({ kind: 'patch', top, left, size: geo.q, fill });
    return { shuffle: { channels: C, height: H, width: W, margin: m, ops: shuffle }, evidence: { channels: C, height: H, width: W, margin: m, ops: evidence } };
  }

  async function runAll(images: ProbeImage[], ctx: ProbeContext, geo: Geometry): Promise<PatchesRecord[]> {
    const { channels: C, height: H, width: W } = images[0].pixels;
    const { shuffle, evidence } = plans(C, H, W, images[0].margin, geo);
    const records = new Map<ProbeImage, PatchesRecord>();
    const shuffler = await viewsFor(ctx.model, shuffle);
    await runViews(
      shuffler,
      images,
      (img) => ({ source: img.context, inputs: { perm: grids.flatMap((g) => shufflePermutation(g, ctx.seed, img.sha256)) } }),
      (img, out, base) => {
        const K = out.numClasses;
        const pred = argmax(out.probs, base * K, K);
        records.set(img, { pred, conf: round(out.probs[base * K + pred]), shuffled: grids.map((_, j) => argmax(out.probs, (base + 1 + j) * K, K)) });
      },
      ctx.signal,
    );
    const sampled = images.filter((img) => inSample(ctx.seed, img.sha256));
    if (sampled.length) {
      await runViews(
        await viewsFor(ctx.model, evidence),
        sampled,
        (img) => ({ source: img.context }),
        (img, out, blankView) => {
          const rec = records.get(img)!;
          const K = out.numClasses;
          const top = (v: number) => argmax(out.probs, v * K, K);
          const first = blankView + 1;
          const n = geo.tops.length * geo.lefts.length;
          const target = img.label ?? rec.pred;
          let hits = 0;
          for (let p = 0; p < n; p++) if (top(first + p) === target) hits++;
          const classes = img.label !== undefined && img.label !== rec.pred ? [img.label, rec.pred] : [target];
          rec.evidence = {
            rows: geo.tops.length,
            cols: geo.lefts.length,
            hits,
            blank: top(blankView),
            classes,
            maps: classes.map((c) => Array.from({ length: n }, (_, p) => round(out.probs[(first + p) * K + c], 3))),
          };
        },
        ctx.signal,
      );
    }
    return images.map((img) => records.get(img)!);
  }

  return {
    id: 'patches',
    title: 'Bag of local features',
    params: {
      grids, findingGrid, minRetained, minLabelled, evidenceRate,
      patchSize: patchSize || 'auto', stride: strideParam || 'auto', fill, renderImages, keepMaps,
    },
    cacheParams: { grids, evidenceRate, patchSize: patchSize || 'auto', stride: strideParam || 'auto', fill },
    margin: 0,
    rules: {
      'patches/local-texture': {
        name: 'DecidesFromLocalTexture',
        text: 'The model keeps much of its accuracy when the image is cut into tiles and shuffled.',
        help:
          'Brendel & Bethge (ICLR 2019): ImageNet CNNs behave like bags of local features and hardly use global shape; ' +
          'a shuffled image with its shape destroyed is still recognised. Check the evidence heatmaps for what the ' +
          'patches see; shape-preserving augmentation or stylised training data (Geirhos et al., ICLR 2019) push towards shape.',
      },
    },

    async run(images, ctx) {
      if (images.length === 0) return [];
      const { height: H, width: W } = images[0].pixels;
      checkGrids(H, W);
      return runAll(images, ctx, geometry(H, W));
    },
    viewPlans({ channels: C, height: H, width: W, margin: m }) {
      checkGrids(H, W);
      const { shuffle, evidence } = plans(C, H, W, m, geometry(H, W));
      return evidenceRate > 0 ? [{ plan: shuffle }, { plan: evidence }] : [{ plan: shuffle }];
    },

    summarize(records, ctx) {
      const K = ctx.model.info.numClasses;
      const chance = 1 / K;
      const labels = labelsOf(ctx.images);
      const labelOf = (r: ProbeRecord<PatchesRecord>) => labels[r.image];
      const labelled = records.filter((r) => labelOf(r) !== undefined);
      const share = (xs: unknown[], n: number) => (n ? round(xs.length / n) : null);
      const clean = share(labelled.filter((r) => r.pred === labelOf(r)), labelled.length);
      const retainedOf = (acc: number | null) =>
        acc === null || clean === null || clean <= chance ? null : round((acc - chance) / (clean - chance));

      const perGrid = grids.map((g, j) => {
        const accuracy = share(labelled.filter((r) => r.shuffled[j] === labelOf(r)), labelled.length);
        return {
          grid: g,
          accuracy,
          agreement: share(records.filter((r) => r.shuffled[j] === r.pred), records.length),
          retained: retainedOf(accuracy),
        };
      });

      const withEvidence = records.filter((r) => r.evidence);
      const evLabelled = withEvidence.filter((r) => labelOf(r) !== undefined);
      const patchesPer = withEvidence.length ? withEvidence[0].evidence!.rows * withEvidence[0].evidence!.cols : 0;
      const singlePatchRate = share(evLabelled.filter((r) => r.evidence!.hits > 0), evLabelled.length);
      const meanPatchShare = evLabelled.length
        ? round(evLabelled.reduce((a, r) => a + r.evidence!.hits / (r.evidence!.rows * r.evidence!.cols), 0) / evLabelled.length)
        : null;
      const { height: H, width: W } = ctx.model.info;
      const geo = evidenceRate > 0 && Math.min(H, W) > 0 ? safeGeometry(() => geometry(H, W)) : undefined;

      const metrics = {
        count: records.length,
        labelled: labelled.length,
        chance: round(chance),
        cleanAccuracy: clean,
        grids: perGrid,
        evidence:
          evidenceRate > 0
            ? {
                images: withEvidence.length,
                labelled: evLabelled.length,
                rate: evidenceRate,
                patchSize: geo?.q ?? null,
                stride: geo?.stride ?? null,
                patchesPerImage: patchesPer || (geo ? geo.tops.length * geo.lefts.length : null),
                fill,
                singlePatchRate,
                meanPatchShare,
                // The control: how often the empty canvas alone is classified as the label.
                blankRate: share(evLabelled.filter((r) => r.evidence!.blank === labelOf(r)), evLabelled.length),
              }
            : null,
      };

      const findings: FindingDraft[] = [];
      const at = perGrid.find((p) => p.grid === findingGrid);
      if (at && at.retained !== null && at.accuracy !== null && clean !== null && labelled.length >= minLabelled && at.retained >= minRetained) {
        findings.push({
          rule: 'patches/local-texture',
          severity: 'warning',
          message:
            `With the image cut into ${findingGrid}×${findingGrid} tiles and shuffled, accuracy is still ${pct(at.accuracy)} ` +
            `(clean ${pct(clean)}, chance ${pct(chance)}): ${pct(at.retained)} of the above-chance accuracy survives ` +
            `(threshold ${pct(minRetained)}). The model decides from local texture, not global shape (Brendel & Bethge, ICLR 2019).`,
          metrics: { grid: findingGrid, accuracy: at.accuracy, cleanAccuracy: clean, retained: at.retained, chance: round(chance) },
        });
      }

      // Artifacts: images whose maps exist and whose shuffle at the finding grid kept the label
      // first (they show the finding), then other mapped images, then the rest; in image order.
      const jf = Math.max(0, grids.indexOf(findingGrid));
      const kept = (r: ProbeRecord<PatchesRecord>) => labelOf(r) !== undefined && r.shuffled[jf] === labelOf(r);
      const rank = (r: ProbeRecord<PatchesRecord>) => (r.evidence ? 0 : 2) + (kept(r) ? 0 : 1);
      const render = [...records].sort((a, b) => rank(a) - rank(b) || a.image - b.image).slice(0, renderImages).map((r) => r.image);

      // Maps are the bulk of a record: the report keeps them for the rendered images and the first
      // `keepMaps` others with evidence (the cache keeps them all).
      const keep = new Set([...render, ...withEvidence.slice(0, keepMaps).map((r) => r.image)]);
      const slim = records.map((r) => {
        if (!r.evidence || keep.has(r.image)) return r;
        const { classes, maps, ...ev } = r.evidence;
        return { ...r, evidence: ev };
      }) as Array<{ image: number } & Record<string, unknown>>;

      const gridText = perGrid.map((p) => `${p.grid}×${p.grid} ${pct(labelled.length ? p.accuracy : p.agreement)}`).join(', ');
      const headline =
        (labelled.length ? `accuracy shuffled ${gridText} (clean ${pct(clean)})` : `agreement with the unshuffled prediction ${gridText}`) +
        (singlePatchRate !== null ? `; a single patch finds the label in ${pct(singlePatchRate)} of images` : '');
      return {
        headline,
        metrics,
        plots: {
          grids,
          accuracy: perGrid.map((p) => p.accuracy),
          agreement: perGrid.map((p) => p.agreement),
          cleanAccuracy: clean,
          chance: round(chance),
          evidenceGrid: geo ? { patchSize: geo.q, tops: geo.tops, lefts: geo.lefts } : null,
        },
        findings,
        records: slim,
        render,
      };
    },

    async render(images, records, ctx) {
      const files = new Map<number, string[]>();
      for (let i = 0; i < images.length; i++) {
        const img = images[i];
        const rec = records[i];
        const { height: H, width: W } = img.pixels;
        const scale = Math.max(1, Math.ceil(128 / Math.max(H, W)));
        const dir = `artifacts/patches/${img.image}`;
        const list: string[] = [await ctx.writePng(`${dir}-original.png`, img.pixels, { scale })];
        for (const g of grids) list.push(await ctx.writePng(`${dir}-shuffle${g}.png`, patchShuffle(img.pixels, g, ctx.seed, img.sha256), { scale }));
        const ev = rec?.evidence;
        if (ev?.maps) {
          const geo = geometry(H, W);
          for (let k = 0; k < ev.classes.length; k++) {
            const heat = spreadPatches(ev.maps[k], geo.tops, geo.lefts, geo.q, H, W);
            list.push(await ctx.writePng(`${dir}-evidence-class${ev.classes[k]}.png`, overlay(img.pixels, heat), { scale }));
          }
        }
        files.set(img.image, list);
      }
      return files;
    },
  };
}

function safeGeometry(f: () => Geometry): Geometry | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
