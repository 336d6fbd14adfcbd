/**
 * The `clean` probe: how the model does on the data as it is. Accuracy, per-class accuracy,
 * confusion matrix, confidences, and one prediction record per image. Every other probe's
 * numbers are read against these.
 */
import { argmax, numberParam, pct, round, type FindingDraft, type Probe, type ProbeImage, type ProbeContext } from './probe';
import { toBatch } from '../image/ops';

export interface CleanRecord {
  pred: number;
  conf: number;
  /** Probability of the true class (labelled images only). */
  pTrue?: number;
  correct?: boolean;
  /** The five most probable classes, best first (models with more than five classes). */
  top5?: number[];
  /** The model's scores for this image held NaN or ±Inf (the prediction means nothing). */
  nonFinite?: true;
}

/** Above this many classes the confusion matrix is stored sparsely (only non-zero cells). */
const DENSE_CONFUSION_MAX = 100;

export function cleanProbe(params: Record<string, unknown> = {}): Probe<CleanRecord> {
  const nearChanceFactor = numberParam(params, 'clean', 'nearChanceFactor', 1.5, 1);
  return {
    id: 'clean',
    title: 'Clean accuracy',
    params: { nearChanceFactor },
    cacheParams: {},
    margin: 0,
    foldsRecords: true,
    rules: {
      'clean/non-finite-output': {
        name: 'NonFiniteOutput',
        text: 'The model outputs NaN or infinite scores.',
        help: 'Usually a broken export, a division by zero in the graph, or inputs far outside the range the model was trained on (check scale, mean and std).',
      },
      'clean/near-chance': {
        name: 'NearChanceAccuracy',
        text: 'Clean accuracy is close to chance.',
        help: 'Usually wrong preprocessing (scale, mean/std, channel order) or dataset labels in another order than the model’s outputs.',
      },
    },

    async run(images: ProbeImage[], ctx: ProbeContext): Promise<CleanRecord[]> {
      const pred = await ctx.model.predict(toBatch(images.map((i) => i.pixels)));
      const k = pred.numClasses;
      return images.map((img, i) => {
        const o = i * k;
        const top = argmax(pred.probs, o, k);
        const rec: CleanRecord = { pred: top, conf: round(pred.probs[o + top]) };
        for (let j = 0; j < k; j++) {
          if (!Number.isFinite(pred.logits[o + j])) {
            rec.nonFinite = true;
            break;
          }
        }
        if (img.label !== undefined) {
          rec.pTrue = round(pred.probs[o + img.label] ?? 0);
          rec.correct = top === img.label;
        }
        if (k > 5) rec.top5 = topK(pred.probs, o, k, 5);
        return rec;
      });
    },

    summarize(records, ctx) {
      // One pass, folding into counts and sums: the records may be a lazy view of 200,000 rows
      // (report/record-list.ts), so nothing here keeps them. Sums run in record order, as before.
      const k = ctx.model.info.numClasses;
      const perClass = new Map<number, { n: number; correct: number }>();
      const confusion = new Map<string, number>();
      let count = 0;
      let labelledN = 0;
      let correct = 0;
      let top5Hits = 0;
      let nonFinite = 0;
      const conf = { all: 0, correct: 0, wrong: 0 };
      for (const r of records) {
        count++;
        conf.all += r.conf;
        if (r.nonFinite) nonFinite++;
        if (r.correct === undefined) continue;
        labelledN++;
        if (r.correct) {
          correct++;
          conf.correct += r.conf;
        } else conf.wrong += r.conf;
        const label = ctx.images[r.image].label!;
        const c = perClass.get(label) ?? { n: 0, correct: 0 };
        c.n++;
        if (r.correct) c.correct++;
        perClass.set(label, c);
        const key = `${label},${r.pred}`;
        confusion.set(key, (confusion.get(key) ?? 0) + 1);
        if (r.top5?.includes(label)) top5Hits++;
      }
      const accuracy = labelledN ? correct / labelledN : null;
      const mean = (sum: number, n: number) => (n ? round(sum / n) : null);
      const metrics: Record<string, unknown> = {
        count,
        labelled: labelledN,
        correct,
        accuracy: accuracy === null ? null : round(accuracy),
        top5Accuracy: k > 5 && labelledN ? round(top5Hits / labelledN) : undefined,
        meanConfidence: mean(conf.all, count),
        meanConfidenceCorrect: mean(conf.correct, correct),
        meanConfidenceWrong: mean(conf.wrong, labelledN - correct),
        perClass: [...perClass.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([cls, c]) => ({ class: cls, name: ctx.className(cls), n: c.n, correct: c.correct, accuracy: round(c.correct / c.n) })),
        confusion:
          k <= DENSE_CONFUSION_MAX
            ? denseConfusion(confusion, k)
            : [...confusion.entries()].map(([key, n]) => [...key.split(',').map(Number), n]),
        confusionFormat: k <= DENSE_CONFUSION_MAX ? 'dense[true][pred]' : 'sparse[[true,pred,count]]',
      };

      // A near-chance accuracy on a labelled set almost always means wrong preprocessing or a
      // label order that does not match the model's, not a bad model: say so loudly.
      const findings: FindingDraft[] = [];
      const chance = 1 / k;
      if (accuracy !== null && labelledN >= 20 && accuracy < chance * nearChanceFactor) {
        findings.push({
          rule: 'clean/near-chance',
          severity: 'warning' as const,
          message:
            `Clean accuracy ${(accuracy * 100).toFixed(1)}% is near chance (${(chance * 100).toFixed(1)}%) on ` +
            `${labelledN} labelled images: check the preprocessing and that the dataset's labels use the model's class order.`,
          metrics: { accuracy: round(accuracy), chance: round(chance) },
        });
      }
      // NaN or ±Inf scores: argmax falls back to class 0 and softmax to uniform, so the accuracy
      // above is an artefact; the model itself is broken (or fed inputs it overflows on).
      metrics.nonFinite = nonFinite;
      if (nonFinite) {
        findings.push({
          rule: 'clean/non-finite-output',
          severity: 'error' as const,
          message: `The model's scores hold NaN or ±Infinity for ${nonFinite} of ${count} images: its predictions on them mean nothing (check the model's export and the preprocessing's scale).`,
          metrics: { nonFinite, count },
        });
      }
      const headline =
        `accuracy ${pct(accuracy)}` +
        (metrics.top5Accuracy !== undefined ? `, top-5 ${pct(metrics.top5Accuracy as number)}` : '') +
        `, mean confidence ${pct(metrics.meanConfidence as number | null)}`;
      return { headline, metrics, findings };
    },
  };
}

function topK(values: Float32Array, offset: number, k: number, n: number): number[] {
  const idx = Array.from({ length: k }, (_, i) => i);
  idx.sort((a, b) => values[offset + b] - values[offset + a] || a - b);
  return idx.slice(0, n);
}

function denseConfusion(cells: Map<string, number>, k: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (const [key, n] of cells) {
    const [t, p] = key.split(',').map(Number);
    m[t][p] = n;
  }
  return m;
}
