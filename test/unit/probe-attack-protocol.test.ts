/**
 * The attack probe's AutoAttack protocol (APGD-CE, then APGD-T on the survivors, then Square on
 * theirs), on a fake four-class linear model where each image is made to fall to one attack:
 *
 *   z_k = w_k·(x − ½) for k = 1, 2, 3 (w_k = 1 on the first three rows of channel k−1, 12 pixels),
 *   z_0 = 0; label 0. The image x = ½ − s·(w_1 + w_2 + w_3) has z_k − z_0 = −12s for every k, so
 *   an L∞ move of ε > s (12ε > 12s) reaches any class; ε < s reaches none.
 *
 * The last pixel of channel 0 (outside every w_k) marks what the fake gradient hides:
 *   0.2  nothing: APGD-CE breaks the image;
 *   0.5  the cross-entropy gradient is zero (CE masked): APGD-CE fails, APGD-T (DLR) breaks it;
 *   0.8  every gradient is zero: only the black-box Square breaks it.
 * With s = 4/255 and the grid 2/255, 8/255, each image is robust at 2/255 and broken at 8/255
 * by exactly its attack; one image with s = 20/255 is robust at both; one is misclassified.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LossKind } from '../../server/engine/attacks/base';
import { attackProbe, type AttackRecord, type GradientModelLike } from '../../server/engine/probes/attack';
import type { ProbeImage, ProbeRecord } from '../../server/engine/probes/probe';
import type { ImageEntry } from '../../server/engine/report/schema';
import type { PixelBatch, PixelImage } from '../../server/engine/types';
import { fakeModel } from './helpers/fake';
import { logitLoss } from './helpers/logit-loss';

const C = 3;
const H = 4;
const W = 4;
const D = C * H * W;
const K = 4;
const inW = (k: number, j: number) => Math.floor(j / (H * W)) === k - 1 && j % (H * W) < 12;
const MARK = H * W - 1; // last pixel of channel 0
const logitsOf = (x: ArrayLike<number>, off = 0) => [0, 1, 2, 3].map((k) => {
  if (k === 0) return 0;
  let s = 0;
  for (let j = 0; j < D; j++) if (inW(k, j)) s += x[off + j] - 0.5;
  return s;
});
const markOf = (x: ArrayLike<number>, off: number) => {
  const m = x[off + MARK];
  return m < 0.35 ? 'none' : m < 0.65 ? 'ce' : 'all';
};

const model = () => fakeModel({ channels: C, height: H, width: W, numClasses: K, logits: (px) => logitsOf(px) });

/** The exact gradients, masked as each image's marker says; counts rows per loss and marker. */
function oracle(): GradientModelLike & { seen: Map<string, number> } {
  const seen = new Map<string, number>();
  return {
    seen,
    coverage: { notes: [] },
    async lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: LossKind, targets?: ArrayLike<number>) {
      const logits = new Float32Array(batch.n * K);
      const lossOut = new Float32Array(batch.n);
      const grad = new Float32Array(batch.n * D);
      for (let i = 0; i < batch.n; i++) {
        const z = logitsOf(batch.data, i * D);
        logits.set(z, i * K);
        const mark = markOf(batch.data, i * D);
        seen.set(`${loss}/${mark}`, (seen.get(`${loss}/${mark}`) ?? 0) + 1);
        const { loss: l, grad: gz } = logitLoss(z, labels[i], loss, targets?.[i]);
        lossOut[i] = l;
        if (mark === 'all' || (mark === 'ce' && loss !== 'dlr-targeted')) continue;
        for (let j = 0; j < D; j++) for (let k = 1; k < K; k++) if (inW(k, j)) grad[i * D + j] += gz[k];
      }
      return { logits, loss: lossOut, grad };
    },
    async dispose() {},
  };
}

function image(index: number, s: number, mark: number, label = 0): ProbeImage {
  const data = new Float32Array(D).fill(0.5);
  for (let j = 0; j < D; j++) if (inW(1, j) || inW(2, j) || inW(3, j)) data[j] = 0.5 - s;
  data[MARK] = mark;
  const px: PixelImage = { data, channels: C, height: H, width: W };
  return { image: index, record: { index, id: `img${index}`, file: `/d/img${index}.png` }, sha256: `h${index}`, label, pixels: px, context: px, margin: 0 };
}

// A: APGD-CE's, B: APGD-T's, C: Square's, R: robust, X: misclassified (s < 0 puts class 1.. above 0).
const IMAGES = [image(0, 4 / 255, 0.2), image(1, 4 / 255, 0.5), image(2, 4 / 255, 0.8), image(3, 20 / 255, 0.2), image(4, -0.1, 0.2)];
const GRID = { eps: ['2/255', '8/255'], epsL2: 'none', largeEps: 0, bisectionSteps: 0 };
const BUDGET = { apgdSteps: 10, targets: 3, queries: 300 };
const entries = (images: ProbeImage[]): ImageEntry[] => images.map((im) => ({ id: im.record.id, uri: `file:///d/${im.record.id}`, path: im.record.id, label: im.label }));
const withImage = <R>(recs: R[]) => recs.map((r, i) => ({ ...r, image: i })) as ProbeRecord<R>[];

async function runProbe(params: Record<string, unknown>, images = IMAGES) {
  const g = oracle();
  const m = model();
  const probe = attackProbe({ ...GRID, ...BUDGET, ...params }, { buildGradientModel: async () => g });
  const steps: string[] = [];
  const recs = await probe.run(images, { model: m, seed: 0, progress: (s) => steps.push(s) });
  const summary = await probe.summarize(withImage(recs), { model: m, seed: 0, images: entries(images), className: (i) => `c${i}` });
  return { recs, summary, metrics: summary.metrics as any, seen: g.seen, steps };
}

test('the protocol is the default: APGD-CE, then APGD-T on its survivors, then Square on theirs; each image names the attack that broke it', async () => {
  const { recs, metrics, seen, steps, summary } = await runProbe({});
  assert.deepEqual(recs.map((r) => r.status), ['attacked', 'attacked', 'attacked', 'attacked', 'wrong']);
  assert.deepEqual(recs.slice(0, 4).map((r) => r.brokenBy), [[null, 'apgd-ce'], [null, 'apgd-t'], [null, 'square'], [null, null]]);
  // Masks: each attack's bits only where it ran and won.
  assert.deepEqual(recs.slice(0, 4).map((r) => [r.apgdCe, r.apgdT, r.square]), [[0b10, 0, 0], [0, 0b10, 0], [0, 0, 0b10], [0, 0, 0]]);
  // Survivors only (the progress counts below: APGD-T takes 7 image×ε pairs, not 8, as A fell
  // to APGD-CE at 8/255; Square 6): Square spent no query on A or B at 8/255, and its whole
  // budget where it failed.
  assert.ok(seen.get('dlr-targeted/ce')! > 0 && seen.get('ce/all')! > 0);
  assert.deepEqual(recs.slice(0, 4).map((r) => r.queries![1] === 0), [true, true, false, false]);
  assert.equal(recs[3].queries![1], 300);
  // AutoAttack's log: robust accuracy after each attack, of the 5 labelled images.
  assert.equal(metrics.protocol.name, 'AutoAttack standard');
  assert.deepEqual(metrics.protocol.linf, [
    { attack: 'apgd-ce', robustAccuracy: [0.8, 0.6] },
    { attack: 'apgd-t', robustAccuracy: [0.8, 0.4] },
    { attack: 'square', robustAccuracy: [0.8, 0.2] },
  ]);
  assert.deepEqual(metrics.protocol.budgets, { apgdSteps: 10, restarts: 1, targets: 3, queries: 300, pgdSteps: 20 });
  assert.deepEqual(metrics.robustAccuracy.any, [0.8, 0.2]);
  assert.deepEqual(metrics.robustAccuracy.apgdCe, [0.8, 0.6], 'the first attack saw every image: its own curve stands');
  assert.equal(metrics.robustAccuracy.apgdT, null, 'a survivors-only curve would overstate robustness');
  assert.equal(metrics.robustAccuracy.square, null);
  assert.equal(metrics.whiteBox.available, true);
  assert.match(summary.headline, /robust \(AutoAttack standard L∞\) 80\.0% at 2\/255, 20\.0% at 8\/255/);
  // Square broke one image of four that APGD left: gradient masking, in the protocol's words.
  const f = summary.findings.find((x) => x.rule === 'attack/gradient-masking')!;
  assert.match(f.message, /at ε = 8\/255 the black-box Square Attack breaks 1 of the images the white-box attacks \(APGD-CE, APGD-T\) left robust/);
  // Progress names each attack, its budget and how many images it takes on.
  assert.deepEqual(steps, [
    'APGD-CE L∞ (10 iterations): 4 images, 8 image×ε runs',
    'APGD-T L∞ (3 targets × 10 iterations): 4 images, 7 image×ε runs',
    'Square L∞ (up to 300 queries): 4 images, 6 image×ε runs',
  ]);
});

test('survivors: false runs every attack on every image; the first to break an image is still the one named', async () => {
  const { recs, metrics, seen } = await runProbe({ preset: 'custom', attacks: ['apgd-ce', 'apgd-t', 'square'] });
  assert.equal(metrics.protocol.survivors, false);
  assert.equal(metrics.protocol.name, 'APGD-CE + APGD-T + Square');
  assert.deepEqual(recs.slice(0, 4).map((r) => r.brokenBy), [[null, 'apgd-ce'], [null, 'apgd-t'], [null, 'square'], [null, null]]);
  // APGD-T and Square break A too when they see it: the per-attack curves are their own.
  assert.deepEqual(recs.slice(0, 4).map((r) => [r.apgdCe, r.apgdT]), [[0b10, 0b10], [0, 0b10], [0, 0], [0, 0]]);
  assert.ok(recs[0].square! & 0b10, 'Square breaks A as well');
  assert.ok(seen.get('dlr-targeted/none')! > 0);
  assert.deepEqual(metrics.robustAccuracy.apgdT, [0.8, 0.4]);
  // The log is the same running total as in the protocol.
  assert.deepEqual(metrics.protocol.linf.map((s: any) => s.robustAccuracy[1]), [0.6, 0.4, 0.2]);
});

test('presets: standard and fast budgets; attacks ask for custom; records do not depend on the batch', async () => {
  const std = attackProbe();
  assert.equal(std.params.preset, 'standard');
  assert.deepEqual([std.params.attacks, std.params.apgdSteps, std.params.targets, std.params.queries, std.params.restarts, std.params.survivors], [['apgd-ce', 'apgd-t', 'square'], 100, 9, 5000, 1, true]);
  const fast = attackProbe({ preset: 'fast' });
  assert.deepEqual([fast.params.apgdSteps, fast.params.targets, fast.params.queries], [20, 3, 1000]);
  const custom = attackProbe({ attacks: ['pgd-linf'] });
  assert.equal(custom.params.preset, 'custom');
  assert.equal(custom.params.survivors, false);
  assert.equal(attackProbe({ preset: 'custom' }).params.queries, 1000);
  assert.deepEqual(attackProbe({ preset: 'custom' }).params.attacks, ['fgsm', 'pgd-linf', 'pgd-l2', 'square']);
  assert.throws(() => attackProbe({ preset: 'standard', attacks: ['fgsm'] }), /attack\.attacks chooses a custom mix/);
  assert.throws(() => attackProbe({ preset: 'strong' }), /attack\.preset must be one of standard, fast, custom/);
  // One image alone gets what it gets in the batch (each row has its own random streams).
  const all = await runProbe({});
  for (const i of [1, 2]) {
    const alone = await runProbe({}, [IMAGES[i]]);
    assert.deepEqual(alone.recs[0], all.recs[i]);
  }
});

test('two classes: APGD-T is skipped (the targeted DLR loss is constant there); APGD-CE and Square run', async () => {
  const m2 = fakeModel({ channels: C, height: H, width: W, numClasses: 2, logits: (px) => logitsOf(px).slice(0, 2) });
  const g = oracle();
  const probe = attackProbe({ ...GRID, ...BUDGET }, { buildGradientModel: async () => g });
  const recs: AttackRecord[] = await probe.run([IMAGES[0]], { model: m2, seed: 0 });
  assert.equal(recs[0].apgdT, undefined);
  assert.deepEqual(recs[0].brokenBy, [null, 'apgd-ce']);
  assert.equal([...g.seen.keys()].some((k) => k.startsWith('dlr')), false);
});

test('without a gradient the protocol is Square alone on every image; the budget says what will run', async () => {
  const m = model();
  const probe = attackProbe({ ...GRID, ...BUDGET }, {
    buildGradientModel: async () => {
      throw Object.assign(new Error('no rule for Loop'), { name: 'GradientUnsupportedError', unsupported: ['Loop'] });
    },
  });
  const recs = await probe.run(IMAGES.slice(0, 4), { model: m, seed: 0 });
  // Square now sees A and B too (no APGD before it) and breaks all three breakable images.
  assert.deepEqual(recs.map((r) => r.brokenBy), [[null, 'square'], [null, 'square'], [null, 'square'], [null, null]]);
  assert.deepEqual(recs.map((r) => r.apgdCe), [undefined, undefined, undefined, undefined]);
  const s = await probe.summarize(withImage(recs), { model: m, seed: 0, images: entries(IMAGES.slice(0, 4)), className: (i) => `c${i}` });
  assert.match(s.findings.find((f) => f.rule === 'attack/white-box-unavailable')!.message, /the white-box attacks \(APGD-CE, APGD-T\) did not run/);
  assert.deepEqual((s.metrics as any).protocol.linf.map((x: any) => x.attack), ['square']);
  assert.equal(
    probe.budget!(m),
    'AutoAttack standard on up to 100 images (the correctly classified ones) at L∞ ε 2/255, 8/255: L∞ APGD-CE (10 iterations), then APGD-T (3 targets × 10 iterations) on the survivors, then Square (up to 300 queries) on the survivors. Square replaces the white-box attacks where the input gradient cannot be built.',
  );
});

test('when most images survive the whole grid, the headline bounds the median minimal ε by the largest ε, in k/255', async () => {
  // At 2/255 alone, A, B, C and R all survive (bisection and the large-ε run off).
  const { summary } = await runProbe({ eps: ['2/255'] });
  assert.match(summary.headline, /robust \(AutoAttack standard L∞\) 80\.0% at 2\/255; median minimal ε > 2\/255$/);
});
