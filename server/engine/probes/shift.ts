/**
 * P4, small translations (Azulay & Weiss, JMLR 2019, "Why do deep convolutional networks
 * generalize so poorly to small image transformations?").
 *
 * Each image is moved by −k..k pixels along each axis. The shifted views are cut from real
 * context around the crop (the decoder keeps k extra pixels on each side; where the source has
 * none, its border pixels are repeated), so a shift never slides in an artificial black band
 * unless the image itself has one. We measure:
 *   - P(top-1 changes) between adjacent 1-pixel shifts, over both sweeps (the paper's measure);
 *   - the share of images whose prediction changes under a 1-pixel shift of the original, and
 *     the share whose prediction changes anywhere in the sweep;
 *   - the mean absolute change of the true class's probability between adjacent shifts;
 *   - embedding: the image, at its own size, is placed in a black canvas twice as wide and high
 *     and the canvas is scaled back to the input size; accuracy with the image centred against
 *     at random positions (the paper saw drops of about 30% on ImageNet models).
 * Per image whose top-1 flips under a 1-pixel shift, a warning finding. The views (crops of the
 * context, embeddings) are made by the views module on the model's provider, in its session.
 */
import { derivedRng } from '../random';
import type { Prediction } from '../types';
import { runViews, viewsFor, type ViewOp, type ViewPlan } from '../views';
import { argmax, labelsOf, numberParam, pct, round, type FindingDraft, type Probe, type ProbeContext, type ProbeImage, type ProbeRecord, type ViewShape, viewShape } from './probe';

export interface ShiftRecord {
  /** Prediction on the unshifted image, and its confidence. */
  pred: number;
  conf: number;
  /** Top-1 at each horizontal shift −k..k (content moves right for positive), and vertical (down). */
  predH: number[];
  predV: number[];
  /** Probability of the true class (or, unlabelled, of `pred`) at each shift. */
  probH: number[];
  probV: number[];
  /** Adjacent 1-pixel pairs (over both sweeps) whose top-1 differs. */
  adjacentFlips: number;
  /** The first 1-pixel shift of the original that changes its top-1, e.g. {dx:1, dy:0}. */
  oneFlip?: { dx: number; dy: number; pred: number; conf: number };
  /** Embedding: correct (or, unlabelled, same as `pred`) with the image centred; and how many of
   *  the random positions were. */
  embedCentre: boolean;
  embedRandomHits: number;
}

export function shiftProbe(params: Record<string, unknown> = {}): Probe<ShiftRecord> {
  const k = numberParam(params, 'shift', 'k', 8, 1, 64);
  const positions = numberParam(params, 'shift', 'embedPositions', 8, 0, 64);
  const maxFlipRate = numberParam(params, 'shift', 'maxFlipRate', 0.05, 0, 1);
  const worst = numberParam(params, 'shift', 'worstCurves', 24, 0, 1000);
  const shifts = Array.from({ length: 2 * k + 1 }, (_, i) => i - k);

  /** Views per image: the horizontal sweep, the vertical sweep, then the embeddings (centred
   *  first). The unshifted view appears in both sweeps: simpler indexing is worth one pass. */
  function plan({ channels, height, width, margin: m }: ViewShape): ViewPlan {
    const ops: ViewOp[] = [
      ...shifts.map((dx): ViewOp => ({ kind: 'crop', top: m, left: m - dx })),
      ...shifts.map((dy): ViewOp => ({ kind: 'crop', top: m - dy, left: m })),
      ...Array.from({ length: 1 + positions }, (_, slot): ViewOp => ({ kind: 'embed', slot })),
    ];
    return { channels, height, width, margin: m, ops };
  }

  async function runAll(images: ProbeImage[], ctx: ProbeContext): Promise<ShiftRecord[]> {
    const { height: H, width: W } = images[0].pixels;
    const runner = await viewsFor(ctx.model, plan(viewShape(images[0])));
    const records = new Map<ProbeImage, ShiftRecord>();
    await runViews(
      runner,
      images,
      (img) => {
        const embed = [H >> 1, W >> 1];
        const rng = derivedRng(ctx.seed, 'shift/embed', img.sha256);
        for (let p = 0; p < positions; p++) embed.push(Math.floor(rng() * (H + 1)), Math.floor(rng() * (W + 1)));
        return { source: img.context, inputs: { embed } };
      },
      (img, out, base) => records.set(img, record(img, out, base)),
      ctx.signal,
    );
    return images.map((img) => records.get(img)!);
  }

  function record(img: ProbeImage, out: Prediction, base: number): ShiftRecord {
    const K = out.numClasses;
    const top = (v: number) => argmax(out.probs, v * K, K);
    const prob = (v: number, c: number) => out.probs[v * K + c];
    {
      const h = (s: number) => base + s + k; // view index of horizontal shift s
      const v = (s: number) => base + shifts.length + s + k;
      const pred = top(h(0));
      const target = img.label ?? pred;
      const predH = shifts.map((s) => top(h(s)));
      const predV = shifts.map((s) => top(v(s)));
      let adjacentFlips = 0;
      for (let j = 1; j < shifts.length; j++) {
        if (predH[j] !== predH[j - 1]) adjacentFlips++;
        if (predV[j] !== predV[j - 1]) adjacentFlips++;
      }
      const rec: ShiftRecord = {
        pred,
        conf: round(prob(h(0), pred)),
        predH,
        predV,
        probH: shifts.map((s) => round(prob(h(s), target), 5)),
        probV: shifts.map((s) => round(prob(v(s), target), 5)),
        adjacentFlips,
        embedCentre: top(base + 2 * shifts.length) === target,
        embedRandomHits: 0,
      };
      for (const [dx, dy, view] of [[1, 0, h(1)], [-1, 0, h(-1)], [0, 1, v(1)], [0, -1, v(-1)]]) {
        const p = top(view);
        if (p !== pred) {
          rec.oneFlip = { dx, dy, pred: p, conf: round(prob(view, p)) };
          break;
        }
      }
      for (let p = 0; p < positions; p++) {
        if (top(base + 2 * shifts.length + 1 + p) === target) rec.embedRandomHits++;
      }
      return rec;
    }
  }

  return {
    id: 'shift',
    title: 'Small translations',
    params: { k, embedPositions: positions, maxFlipRate, worstCurves: worst },
    cacheParams: { k, embedPositions: positions },
    margin: k,
    rules: {
      'shift/one-pixel-flip': {
        name: 'OnePixelShiftFlip',
        text: 'The prediction changes when the image moves by one pixel.',
        help: 'Azulay & Weiss (JMLR 2019): strided convolutions and pooling ignore the sampling theorem, so CNNs are not shift-invariant. Anti-aliased downsampling (Zhang, ICML 2019) or shift augmentation helps.',
      },
      'shift/fragile-model': {
        name: 'ShiftFragileModel',
        text: 'Many predictions change under 1-pixel shifts.',
        help: 'Azulay & Weiss (JMLR 2019). Compare with the flip rate of an anti-aliased model; consider shift augmentation.',
      },
    },

    run(images: ProbeImage[], ctx) {
      return runAll(images, ctx);
    },
    viewPlans: (shape) => [{ plan: plan(shape) }],

    summarize(records, ctx) {
      const n = records.length;
      const labels = labelsOf(ctx.images);
      const labelled = records.filter((r) => labels[r.image] !== undefined);
      const pairs = n * 2 * (shifts.length - 1);
      const adjacent = records.reduce((a, r) => a + r.adjacentFlips, 0);
      const oneFlips = records.filter((r) => r.oneFlip);
      const changedAnywhere = records.filter((r) => r.predH.some((p) => p !== r.pred) || r.predV.some((p) => p !== r.pred));

      // Mean |Δ p(true class)| between adjacent shifts, over labelled images and both sweeps.
      let absChange = 0;
      let changes = 0;
      for (const r of labelled) {
        for (const curve of [r.probH, r.probV]) {
          for (let j = 1; j < curve.length; j++) {
            absChange += Math.abs(curve[j] - curve[j - 1]);
            changes++;
          }
        }
      }
      const accuracyAt = (preds: (r: ShiftRecord) => number[]) =>
        shifts.map((_, j) =>
          labelled.length ? round(labelled.filter((r) => preds(r)[j] === labels[r.image]).length / labelled.length) : null,
        );
      const embedCentre = n ? records.filter((r) => r.embedCentre).length / n : 0;
      const embedRandom = n && positions ? records.reduce((a, r) => a + r.embedRandomHits, 0) / (n * positions) : 0;

      const metrics = {
        count: n,
        labelled: labelled.length,
        maxShift: k,
        adjacentFlipRate: pairs ? round(adjacent / pairs) : null,
        oneFlipRate: n ? round(oneFlips.length / n) : null,
        oneFlipCount: oneFlips.length,
        changedAnywhereRate: n ? round(changedAnywhere.length / n) : null,
        meanAbsChangeTrueProb: changes ? round(absChange / changes) : null,
        embed: positions
          ? {
              // Against the label where there is one, else agreement with the unshifted prediction.
              accuracyCentred: round(embedCentre),
              accuracyRandom: round(embedRandom),
              drop: round(embedCentre - embedRandom),
              positions,
            }
          : null,
      };

      const findings: FindingDraft[] = oneFlips.map((r) => {
        const f = r.oneFlip!;
        const dir = f.dx === 1 ? 'right' : f.dx === -1 ? 'left' : f.dy === 1 ? 'down' : 'up';
        return {
          rule: 'shift/one-pixel-flip',
          severity: 'warning',
          image: r.image,
          message:
            `Moving the image 1 pixel ${dir} changes the prediction from '${ctx.className(r.pred)}' (${pct(r.conf)}) ` +
            `to '${ctx.className(f.pred)}' (${pct(f.conf)}).`,
          metrics: { dx: f.dx, dy: f.dy, from: r.pred, to: f.pred, confidence: f.conf, adjacentFlips: r.adjacentFlips },
        };
      });
      if (n > 0 && oneFlips.length / n > maxFlipRate) {
        findings.unshift({
          rule: 'shift/fragile-model',
          severity: 'warning',
          message:
            `${pct(oneFlips.length / n)} of images (${oneFlips.length} of ${n}) change their prediction under a 1-pixel shift ` +
            `(threshold ${pct(maxFlipRate)}); P(top-1 changes) between adjacent 1-pixel shifts is ${pct(metrics.adjacentFlipRate)}.`,
          metrics: { oneFlipRate: metrics.oneFlipRate, adjacentFlipRate: metrics.adjacentFlipRate },
        });
      }

      // The probability curves are the bulk of a record: keep them for the worst images only
      // (the ones a person will look at in the "polar bear" plot).
      const ranked = [...records].sort((a, b) => b.adjacentFlips - a.adjacentFlips || spread(b) - spread(a) || a.image - b.image);
      const keep = new Set(ranked.slice(0, worst).map((r) => r.image));
      const slim = records.map((r) => {
        const { probH, probV, predH, predV, ...rest } = r;
        return keep.has(r.image) ? (r as ProbeRecord<ShiftRecord>) : rest;
      }) as Array<{ image: number } & Record<string, unknown>>;

      const headline =
        `1-px shift changes ${pct(metrics.oneFlipRate)} of predictions; P(flip) between adjacent shifts ${pct(metrics.adjacentFlipRate)}; ` +
        `changed within ±${k}px: ${pct(metrics.changedAnywhereRate)}` +
        (metrics.embed ? `; embedding drop ${pct(metrics.embed.drop)}` : '');
      return {
        headline,
        metrics,
        plots: {
          shifts,
          accuracyByShift: { horizontal: accuracyAt((r) => r.predH), vertical: accuracyAt((r) => r.predV) },
          worst: ranked.slice(0, worst).map((r) => ({ image: r.image, probH: r.probH, probV: r.probV })),
        },
        findings,
        records: slim,
      };
    },
  };
}

/** The image, at its own size, in a black canvas of twice its size at (top, left) ∈ [0,H]×[0,W],
 *  scaled back down to the input size by 2×2 averaging. */
function spread(r: ShiftRecord): number {
  const all = [...r.probH, ...r.probV];
  return Math.max(...all) - Math.min(...all);
}
