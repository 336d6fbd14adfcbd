/**
 * P5, out-of-distribution confidence: the generated sets, the probe on a hand-worked case with a
 * fake model, and mnist-8 on MNIST against notMNIST checked by an independent computation.
 *
 * The hand-worked case. 8×8 grayscale images, pixel values multiples of ¼ (so every sum is exact),
 * and a model whose logits are [10·m, 0], m the mean brightness: MSP = σ(10m), energy score
 * logsumexp = softplus(10m), both increasing in m, so both rank inputs alike.
 *
 *   image  content                         m     MSP       pred  label
 *   A (0)  all 0                           0     0.5 (tie) 0     1  wrong, not confident
 *   B (1)  left half 0.5, right half 0     ¼     σ(2.5)    0     1  wrong, 0.924 > 0.9: finding
 *   C (2)  0/1 checkerboard                ½     σ(5)      0     0  right
 *   D (3)  top half 1, bottom half ½       ¾     σ(7.5)    0     0  right
 *
 *   inverted: m → 1 − m, so MSPs {σ(10), σ(7.5), σ(5), σ(2.5)} against in {0.5, σ(2.5), σ(5), σ(7.5)}.
 *     AUROC: 0.5 beats none (0); σ2.5 ties σ2.5 (½); σ5 beats σ2.5, ties σ5 (1.5);
 *            σ7.5 beats σ5, σ2.5, ties σ7.5 (2.5) → 4.5/16 = 0.28125 (the same for energy).
 *     FPR@95: k = ⌈0.95·4⌉ = 4 → t = the smallest in-score, 0.5; all 4 out-scores ≥ 0.5 → 1.
 *     mean out (σ10+σ7.5+σ5+σ2.5)/4 = 97.9% > mean in (0.5+σ2.5+σ5+σ7.5)/4 = 85.4% → finding.
 *   rot180, patches: the mean is unchanged, so the MSPs are the same multiset: AUROC 0.5, FPR 1,
 *     equal means (not higher): no finding.
 *   uniform: 64 U[0,1) pixels, m ∈ (¼, ¾) (checked), MSP ∈ (σ2.5, σ7.5): 0.5 and σ2.5 beat none,
 *     σ7.5 beats all 4, σ5 beats the c images with m < ½ → AUROC (4 + c)/16.
 *   ECE (15 bins): 0.5 → bin 7 (acc 0), σ2.5 → bin 13 (acc 0), σ5 and σ7.5 → bin 14 (acc 1):
 *     (0.5 + σ2.5 + 2·(1 − (σ5+σ7.5)/2)) / 4 = 35.8%. Confident-but-wrong: B, 1 of 4 = 25%.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { SkepticInputError } from '../../server/engine/errors';
import { toBatch } from '../../server/engine/image/ops';
import type { ProbeImage } from '../../server/engine/probes/probe';
import {
  borderMean, channelStats, constantImage, GENERATED_SETS, generateOod, invert, oodProbe, patchShuffle, rotate180, rotate90,
  rotateAbout, tileBorders, uniformNoise, type OodRecord,
} from '../../server/engine/probes/ood';
import { derivedRng } from '../../server/engine/random';
import type { ImageEntry } from '../../server/engine/report/schema';
import type { PixelImage } from '../../server/engine/types';
import { fakeModel, gray } from './helpers/fake';

const sigma = (z: number) => 1 / (1 + Math.exp(-z));
const sum = (px: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < px.length; i++) s += px[i];
  return s;
};

function grid8(f: (y: number, x: number) => number): PixelImage {
  return gray(Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => f(y, x))));
}

const IMAGES = [
  { img: grid8(() => 0), label: 1 },
  { img: grid8((_, x) => (x < 4 ? 0.5 : 0)), label: 1 },
  { img: grid8((y, x) => (x + y) % 2), label: 0 },
  { img: grid8((y) => (y < 4 ? 1 : 0.5)), label: 0 },
];

function probeImages(): ProbeImage[] {
  return IMAGES.map(({ img, label }, i) => ({
    image: i,
    record: { index: i, id: `img${i}.png`, file: `/d/img${i}.png` },
    sha256: `sha${i}`,
    label,
    pixels: img,
    context: img,
    margin: 0,
  }));
}

const entries = (): ImageEntry[] => IMAGES.map(({ label }, i) => ({ id: `img${i}.png`, uri: `file:///d/img${i}.png`, path: `img${i}.png`, label }));
const brightness = () =>
  fakeModel({ height: 8, width: 8, numClasses: 2, logits: (px) => [(10 * sum(px)) / 64, 0], labels: ['bright', 'dark'] });
const summaryCtx = (model: ReturnType<typeof brightness>) => ({ model, seed: 0, images: entries(), className: (i: number) => ['bright', 'dark'][i] });

async function runProbe(params: Record<string, unknown>, seed = 0) {
  const model = brightness();
  const probe = oodProbe(params);
  const recs = await probe.run(probeImages(), { model, seed });
  const withImage = recs.map((r, i) => ({ ...r, image: i }));
  return { probe, model, recs: withImage };
}

// ---------------------------------------------------------------------------------------------
// Generated sets

test('inverted is exactly 1 − x', () => {
  const img: PixelImage = { data: Float32Array.from([0, 0.25, 0.3, 1, 0.7, 0.123]), channels: 3, height: 1, width: 2 };
  assert.deepEqual(invert(img).data, Float32Array.from([...img.data].map((v) => 1 - v)));
  assert.equal(invert(img).channels, 3);
});

test('rotations: 180° of a hand-made 2×3 image, 90° counter-clockwise, and tilts', () => {
  const a = gray([[1, 2, 3], [4, 5, 6]]);
  const r = rotate180(a);
  assert.deepEqual([r.height, r.width], [2, 3]);
  assert.deepEqual([...r.data], [6, 5, 4, 3, 2, 1]);
  // The general rotation about the centre (0.5, 1) maps pixel centres to pixel centres at 180°.
  assert.deepEqual([...rotateAbout(a, 180, [0]).data], [6, 5, 4, 3, 2, 1]);
  assert.deepEqual([...rotateAbout(a, 0, [0]).data], [...a.data]);

  // 90° counter-clockwise: the top row becomes the left column, read bottom to top.
  const b = gray([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
  assert.deepEqual([...rotate90(b).data], [3, 6, 9, 2, 5, 8, 1, 4, 7]);
  assert.deepEqual([...rotateAbout(b, 90, [0]).data], [3, 6, 9, 2, 5, 8, 1, 4, 7]);
  // Non-square: the size stays, rotated about the centre with the border-mean fill.
  const nr = rotate90(a);
  assert.deepEqual([nr.channels, nr.height, nr.width], [1, 2, 3]);

  // Tilt 45° of a 5×5 white square over a black fill: the centre stays 1; the top-left corner's
  // source is (x, y) = (2, 2 − 2√2) = (2, −0.828): between the fill above the frame (weight
  // 0.828) and pixel (0, 2) = 1 (weight 0.172), i.e. 3 − 2√2.
  const ones = gray(Array.from({ length: 5 }, () => [1, 1, 1, 1, 1]));
  const t = rotateAbout(ones, 45, [0]);
  assert.equal(t.data[12], 1);
  assert.ok(Math.abs(t.data[0] - (3 - 2 * Math.SQRT2)) < 1e-6, `corner ${t.data[0]}`);
  // The fill is the mean of the one-pixel frame: (1+2+3+4+6+7+8+9)/8 = 5.
  assert.deepEqual(borderMean(b), [5]);
  // A tilted MNIST-like image (black frame) is filled with black.
  const digit = grid8((y, x) => (x === 3 || x === 4 ? 1 : 0) * (y > 0 && y < 7 ? 1 : 0));
  const tilted = generateOod('tilt30', digit, 0, 'x');
  assert.equal(tilted.data[0], 0);
  assert.ok(sum(tilted.data) > 0);
});

/** The tiles of an image on given borders, each as a string, sorted: a multiset of contents. */
function tiles(img: PixelImage, rows: number[], cols: number[]): string[] {
  const out: string[] = [];
  for (let r = 0; r + 1 < rows.length; r++) {
    for (let c = 0; c + 1 < cols.length; c++) {
      const v: number[] = [];
      for (let ch = 0; ch < img.channels; ch++) {
        for (let y = rows[r]; y < rows[r + 1]; y++) {
          for (let x = cols[c]; x < cols[c + 1]; x++) v.push(img.data[ch * img.height * img.width + y * img.width + x]);
        }
      }
      out.push(`${rows[r + 1] - rows[r]}x${cols[c + 1] - cols[c]}:${v.join(',')}`);
    }
  }
  return out.sort();
}

test('patch shuffle permutes the tiles: the same multiset of tile contents, on exact borders', () => {
  // 16×16, distinct values, 8×8 grid of 2×2 tiles.
  const img: PixelImage = { data: Float32Array.from({ length: 256 }, (_, i) => i / 255), channels: 1, height: 16, width: 16 };
  const s = patchShuffle(img, 8, derivedRng(1, 'ood/patches', 'x'));
  const b = tileBorders(16, 8);
  assert.deepEqual(b, [0, 2, 4, 6, 8, 10, 12, 14, 16]);
  assert.deepEqual(tiles(s, b, b), tiles(img, b, b));
  assert.notDeepEqual([...s.data], [...img.data]);
  assert.deepEqual([...s.data].sort(), [...img.data].sort());

  // 10×13, 3 channels: the size does not divide. Borders ⌊i·10/8⌋ and ⌊j·13/8⌋.
  const odd: PixelImage = { data: Float32Array.from({ length: 3 * 130 }, (_, i) => i / 389), channels: 3, height: 10, width: 13 };
  const rows = tileBorders(10, 8);
  const cols = tileBorders(13, 8);
  assert.deepEqual(rows, [0, 1, 2, 3, 5, 6, 7, 8, 10]);
  assert.deepEqual(cols, [0, 1, 3, 4, 6, 8, 9, 11, 13]);
  const so = patchShuffle(odd, 8, derivedRng(2, 'ood/patches', 'y'));
  assert.deepEqual(tiles(so, rows, cols), tiles(odd, rows, cols));
  assert.notDeepEqual([...so.data], [...odd.data]);

  // Deterministic for a seed and image hash.
  assert.deepEqual(generateOod('patches', odd, 5, 'h'), generateOod('patches', odd, 5, 'h'));
  assert.notDeepEqual(generateOod('patches', odd, 5, 'h').data, generateOod('patches', odd, 6, 'h').data);
});

test('noise and constant sets: right shape and statistics, deterministic per seed and image', () => {
  const img: PixelImage = { data: new Float32Array(3 * 32 * 32), channels: 3, height: 32, width: 32 };
  const u = uniformNoise(img, derivedRng(0, 'ood/uniform', 'a'));
  assert.deepEqual([u.channels, u.height, u.width, u.data.length], [3, 32, 32, 3072]);
  assert.ok(u.data.every((v) => v >= 0 && v <= 1));
  const mu = sum(u.data) / u.data.length;
  assert.ok(Math.abs(mu - 0.5) < 0.03, `uniform mean ${mu}`);

  // Gaussian noise matched to the image's own statistics: half 0.4, half 0.6 → mean 0.5, std 0.1
  // (clipping at 5σ is negligible).
  const halves: PixelImage = { data: Float32Array.from({ length: 64 * 64 }, (_, i) => (i % 2 ? 0.4 : 0.6)), channels: 1, height: 64, width: 64 };
  const st = channelStats(halves);
  assert.ok(Math.abs(st.mean[0] - 0.5) < 1e-6 && Math.abs(st.std[0] - 0.1) < 1e-6);
  const g = generateOod('gaussian', halves, 3, 'b');
  const gs = channelStats(g);
  assert.ok(Math.abs(gs.mean[0] - 0.5) < 0.01, `gaussian mean ${gs.mean[0]}`);
  assert.ok(Math.abs(gs.std[0] - 0.1) < 0.01, `gaussian std ${gs.std[0]}`);
  assert.ok(g.data.every((v) => v >= 0 && v <= 1));

  // Constant: one value per channel.
  const c = constantImage(img, derivedRng(0, 'ood/constant', 'a'));
  for (let ch = 0; ch < 3; ch++) {
    const plane = c.data.subarray(ch * 1024, (ch + 1) * 1024);
    assert.ok(plane.every((v) => v === plane[0]) && plane[0] >= 0 && plane[0] < 1);
  }

  // Every set: the model's size, values in [0,1], the same output for the same seed and hash;
  // the random ones change with the seed and with the image hash.
  const photo: PixelImage = { data: Float32Array.from({ length: 3 * 12 * 12 }, (_, i) => (i * 37) % 101 / 100), channels: 3, height: 12, width: 12 };
  for (const set of GENERATED_SETS) {
    const a = generateOod(set, photo, 11, 'img');
    assert.deepEqual([a.channels, a.height, a.width], [3, 12, 12], set);
    assert.ok(a.data.every((v) => v >= 0 && v <= 1 + 1e-6), set);
    assert.deepEqual(a, generateOod(set, photo, 11, 'img'), set);
    if (set === 'uniform' || set === 'gaussian' || set === 'constant' || set === 'patches') {
      assert.notDeepEqual(a.data, generateOod(set, photo, 12, 'img').data, `${set} seed`);
      assert.notDeepEqual(a.data, generateOod(set, photo, 11, 'other').data, `${set} hash`);
    }
  }
});

test('parameters: defaults, set lists, and bad values', () => {
  const p = oodProbe();
  assert.deepEqual(p.params, {
    sets: [...GENERATED_SETS], grid: 8, likelihood: false, oodData: null, oodLimit: 0, confident: 0.9, topWrong: 20, eceBins: 15,
    histogramBins: 20, tpr: 0.95, samples: 4,
    detectors: [], features: 'auto', k: 50, ridge: 1e-6, reactPercentile: 90, minAuroc: 0.6,
  });
  assert.deepEqual(oodProbe({ detectors: 'react, knn' }).params.detectors, ['knn', 'react']);
  assert.deepEqual(oodProbe({ detectors: 'none' }).params.detectors, []);
  assert.deepEqual(oodProbe({ detectors: 'all' }).params.detectors, ['mahalanobis', 'knn', 'vim', 'react']);
  assert.deepEqual(oodProbe({ likelihood: true, detectors: 'all' }).params.detectors, [], 'no feature detectors in likelihood mode');
  assert.throws(() => oodProbe({ detectors: ['knn', 'odin'] }), /unknown detector 'odin'/);
  assert.throws(() => oodProbe({ k: 2.5 }), SkepticInputError);
  assert.deepEqual(oodProbe({ sets: 'inverted, uniform' }).params.sets, ['uniform', 'inverted']);
  assert.deepEqual(oodProbe({ sets: 'none' }).params.sets, []);
  assert.throws(() => oodProbe({ sets: ['uniform', 'plaid'] }), SkepticInputError);
  assert.throws(() => oodProbe({ likelihood: 'maybe' }), SkepticInputError);
  assert.throws(() => oodProbe({ grid: 2.5 }), SkepticInputError);
  assert.ok(Object.keys(p.rules).every((r) => r.startsWith('ood/')));
});

// ---------------------------------------------------------------------------------------------
// The probe on the hand-worked case

test('run + summarize: AUROC, FPR@95, ECE, findings and records on the hand-worked case', async () => {
  const { probe, model, recs } = await runProbe({ sets: ['uniform', 'inverted', 'rot180', 'patches'], samples: 1 });
  const s = [0.5, sigma(2.5), sigma(5), sigma(7.5)];
  assert.deepEqual(recs.map((r) => r.pred), [0, 0, 0, 0]);
  assert.deepEqual(recs.map((r) => r.correct), [false, false, true, true]);
  recs.forEach((r, i) => assert.equal(r.msp, s[i]));
  recs.forEach((r) => assert.deepEqual(Object.keys(r.ood), ['uniform', 'inverted', 'rot180', 'patches']));
  assert.equal(recs[0].ood.inverted!.msp, sigma(10));
  assert.ok(Math.abs(recs[0].energy! - Math.log(2)) < 1e-12);

  // The uniform images' brightness decides their rank against C (see the header).
  const means = probeImages().map((im) => sum(generateOod('uniform', im.pixels, 0, im.sha256).data) / 64);
  assert.ok(means.every((m) => m > 0.25 && m < 0.75), `uniform means ${means}`);
  const c = means.filter((m) => m < 0.5).length;

  const summary = await probe.summarize(recs, summaryCtx(model));
  const m = summary.metrics as Record<string, any>;
  assert.deepEqual(m.scores, ['msp', 'energy']);
  assert.equal(m.sets.inverted.auroc.msp, 0.28125);
  assert.equal(m.sets.inverted.auroc.energy, 0.28125);
  assert.equal(m.sets.inverted.fprAtTpr.msp, 1);
  assert.equal(m.sets.rot180.auroc.msp, 0.5);
  assert.equal(m.sets.patches.auroc.msp, 0.5);
  assert.equal(m.sets.patches.auroc.energy, 0.5);
  assert.equal(m.sets.uniform.auroc.msp, (4 + c) / 16);
  assert.equal(m.sets.uniform.fprAtTpr.msp, 1);
  const meanIn = (s[0] + s[1] + s[2] + s[3]) / 4;
  assert.ok(Math.abs(m.meanIn.msp - meanIn) < 1e-6);
  assert.ok(Math.abs(m.sets.inverted.mean.msp - (sigma(10) + s[3] + s[2] + s[1]) / 4) < 1e-6);
  assert.equal(m.sets.inverted.beatsData, true);
  assert.equal(m.sets.rot180.beatsData, false);
  assert.equal(m.sets.patches.beatsData, false);
  const uniformMean = means.map((x) => sigma(Math.fround(10 * x))).reduce((a, b) => a + b) / 4;
  assert.equal(m.sets.uniform.beatsData, uniformMean > meanIn);

  const ece = (0.5 + s[1] + 2 * (1 - (s[2] + s[3]) / 2)) / 4;
  assert.ok(Math.abs(m.ece - ece) < 1e-6, `ece ${m.ece} vs ${ece}`);
  assert.equal(m.confidentWrongCount, 1);
  assert.equal(m.confidentWrongRate, 0.25);
  assert.equal(m.accuracy, 0.5);

  const expected = [
    ...(m.sets.uniform.beatsData ? [['ood/more-confident-than-data', undefined]] : []),
    ['ood/more-confident-than-data', undefined],
    ['ood/confident-wrong', 1],
  ];
  assert.deepEqual(summary.findings.map((f) => [f.rule, f.image]), expected);
  const inv = summary.findings.find((f) => f.metrics?.set === 'inverted')!;
  assert.equal(inv.severity, 'warning');
  assert.match(inv.message, /OOD set 'inverted' \(inverted colours\) gets a higher mean confidence .* than the real data: 97\.9% against 85\.4%/);
  const wrong = summary.findings.find((f) => f.rule === 'ood/confident-wrong')!;
  assert.match(wrong.message, /predicted 'bright' with 92\.4% confidence, but the label is 'dark'/);
  for (const rule of new Set(summary.findings.map((f) => f.rule))) assert.ok(probe.rules[rule], `rule ${rule} documented`);

  // Records: the most confident wrong answers (B, then A) and the first `samples` (1) image.
  assert.deepEqual(summary.render, [1, 0]);
  const slim = summary.records!;
  assert.deepEqual(slim.map((r) => [r.image, r.why]), [[0, ['most-confident-wrong', 'ood-sample']], [1, ['most-confident-wrong']]]);
  assert.ok((slim[0].ood as any).inverted, 'the sample image carries its variants’ scores');
  assert.equal(slim[1].ood, undefined);

  // Plots: MSP histograms over [0,1] in 20 bins, ROC curves per set, the reliability diagram.
  const plots = summary.plots as Record<string, any>;
  assert.equal(plots.histograms.msp.edges.length, 21);
  assert.deepEqual(plots.histograms.msp.in.reduce((a: number, b: number) => a + b), 4);
  assert.equal(plots.histograms.msp.in[10], 1); // 0.5 → [0.5, 0.55)
  assert.equal(plots.histograms.msp.sets.inverted[19], 3); // σ10, σ7.5, σ5 ≥ 0.95
  assert.deepEqual(plots.roc.msp.rot180[0], [0, 0]);
  assert.deepEqual(plots.roc.msp.rot180.at(-1), [1, 1]);
  assert.equal(plots.reliability.length, 15);
  assert.deepEqual(plots.reliability.map((b: any) => b.count), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2]);

  assert.match(summary.headline, /^MSP AUROC: uniform \d\.\d\d, inverted 0\.28, rot180 0\.50, patches 0\.50; ECE 35\.8%; 25\.0% confident-but-wrong/);
});

test('the same seed gives the same records for every set; another seed changes the random sets', async () => {
  const a = await runProbe({}, 7);
  const b = await runProbe({}, 7);
  const c = await runProbe({}, 8);
  assert.deepEqual(a.recs, b.recs);
  assert.deepEqual(Object.keys(a.recs[0].ood), [...GENERATED_SETS]);
  assert.notEqual(a.recs[0].ood.uniform!.msp, c.recs[0].ood.uniform!.msp);
  assert.equal(a.recs[0].ood.inverted!.msp, c.recs[0].ood.inverted!.msp);
  // One predict call per group: the image and its 11 variants together.
  assert.equal(a.model.calls, 1);
  assert.equal(a.model.imagesSeen, 4 * 12);
  // A record survives the cache's JSON round trip unchanged.
  const r = a.recs[2] as OodRecord;
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

test('probability outputs: the energy score is skipped and the report says why', async () => {
  const model = brightness();
  (model.info as { outputKind: string }).outputKind = 'probabilities';
  const probe = oodProbe({ sets: ['inverted'] });
  const recs = (await probe.run(probeImages(), { model, seed: 0 })).map((r, i) => ({ ...r, image: i }));
  assert.equal(recs[0].energy, undefined);
  const m = (await probe.summarize(recs, summaryCtx(model))).metrics as Record<string, any>;
  assert.deepEqual(m.scores, ['msp']);
  assert.match(m.scoreNotes.energySkipped, /logsumexp\(logits\) = 0 for every input/);
  assert.equal(m.sets.inverted.auroc.energy, undefined);
});

test('likelihood mode: the output is the score, and OOD data with a higher likelihood is a finding (Nalisnick)', async () => {
  // One output, log p(x) = 10·m: in {0, 2.5, 5, 7.5} (mean 3.75), inverted {10, 7.5, 5, 2.5}
  // (mean 6.25): AUROC as in the header, 4.5/16.
  const model = fakeModel({ height: 8, width: 8, numClasses: 1, logits: (px) => [(10 * sum(px)) / 64] });
  const probe = oodProbe({ sets: ['inverted', 'rot180'], likelihood: true });
  const recs = (await probe.run(probeImages(), { model, seed: 0 })).map((r, i) => ({ ...r, image: i }));
  assert.deepEqual(recs.map((r) => r.likelihood), [0, 2.5, 5, 7.5]);
  assert.equal(recs[0].correct, undefined);
  const summary = await probe.summarize(recs, { ...summaryCtx(model as any), className: (i: number) => `class ${i}` });
  const m = summary.metrics as Record<string, any>;
  assert.deepEqual(m.scores, ['likelihood']);
  assert.equal(m.sets.inverted.auroc.likelihood, 0.28125);
  assert.equal(m.sets.rot180.auroc.likelihood, 0.5);
  assert.equal(m.ece, null);
  assert.deepEqual(summary.findings.map((f) => f.rule), ['ood/more-confident-than-data']);
  assert.match(summary.findings[0].message, /'inverted' .* higher mean log-likelihood than the real data: 6\.25000 against 3\.75000/);
  assert.match(summary.headline, /^likelihood AUROC: inverted 0\.28, rot180 0\.50/);
});

test('an unreadable OOD dataset is an error finding; the generated sets are still reported', async () => {
  const { probe, model, recs } = await runProbe({ sets: ['rot180'], oodData: '/nonexistent/ood-folder' });
  const summary = await probe.summarize(recs, summaryCtx(model));
  const m = summary.metrics as Record<string, any>;
  assert.equal(m.sets.rot180.auroc.msp, 0.5);
  assert.equal(m.sets['ood-folder'].count, 0);
  assert.match(m.sets['ood-folder'].error, /not found/);
  const f = summary.findings.find((x) => x.rule === 'ood/ood-data-unreadable')!;
  assert.equal(f.severity, 'error');
  assert.match(f.message, /\/nonexistent\/ood-folder/);

  // A cancelled audit still summarises: the user's set is left out without an error finding.
  const abort = new AbortController();
  abort.abort();
  const cancelled = await probe.summarize(recs, { ...summaryCtx(model), signal: abort.signal });
  assert.match((cancelled.metrics as any).sets['ood-folder'].error, /cancelled/);
  assert.equal(cancelled.findings.some((x) => x.rule === 'ood/ood-data-unreadable'), false);
});

// ---------------------------------------------------------------------------------------------
// Real fixtures: mnist-8 on MNIST, notMNIST as the OOD set

const FIXTURES = path.resolve(__dirname, '../../../shared/fixtures');

test('mnist-8 on MNIST vs notMNIST: AUROC and FPR@95 match an independent O(n²) computation', async (t) => {
  if (!existsSync(FIXTURES)) {
    t.skip(`fixtures not found at ${FIXTURES}`);
    return;
  }
  const { loadModel } = await import('../../server/engine/model');
  const { openDataset } = await import('../../server/engine/data');
  const { audit } = await import('../../server/engine/audit');
  const model = await loadModel(path.join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { preprocess: 'unit', device: 'cpu' });
  try {
    const mnist = await openDataset(path.join(FIXTURES, 'mnist'), { limit: 500, seed: 0 });
    const notmnist = path.join(FIXTURES, 'notmnist');
    const report = await audit(model, mnist, { probes: [oodProbe({ oodData: notmnist, detectors: 'all' })], seed: 0 });
    const ood = report.probes.ood;
    assert.equal(ood.status, 'ok', ood.reason);
    const m = ood.metrics as Record<string, any>;

    // Independently: decode the same images, run the model, and compute the scores and metrics
    // with plain loops.
    const K = model.info.numClasses;
    async function scores(ds: Awaited<ReturnType<typeof openDataset>>) {
      const msp: number[] = [];
      const energy: number[] = [];
      for await (const batch of ds.stream(model.decodeSpec(0), { batchSize: 100 })) {
        const ok = batch.filter((s) => s.image);
        assert.equal(ok.length, batch.length);
        const out = await model.predict(toBatch(ok.map((s) => s.image!)));
        for (let i = 0; i < ok.length; i++) {
          let mx = -Infinity;
          for (let k = 0; k < K; k++) mx = Math.max(mx, out.logits[i * K + k]);
          let z = 0;
          for (let k = 0; k < K; k++) z += Math.exp(out.logits[i * K + k] - mx);
          msp.push(1 / z);
          energy.push(mx + Math.log(z));
        }
      }
      return { msp, energy };
    }
    const inS = await scores(mnist);
    const outS = await scores(await openDataset(notmnist));
    assert.equal(inS.msp.length, 500);
    assert.equal(outS.msp.length, 2000);
    const aurocLoop = (a: number[], b: number[]) => {
      let w = 0;
      for (const x of a) for (const y of b) w += x > y ? 1 : x === y ? 0.5 : 0;
      return w / (a.length * b.length);
    };
    const fprLoop = (a: number[], b: number[]) => {
      let best = -Infinity;
      for (const t of a) {
        let tp = 0;
        for (const x of a) if (x >= t) tp++;
        if (tp * 100 >= 95 * a.length && t > best) best = t;
      }
      let fp = 0;
      for (const y of b) if (y >= best) fp++;
      return fp / b.length;
    };
    const set = m.sets.notmnist;
    assert.equal(set.source, 'data');
    assert.equal(set.count, 2000);
    assert.equal(set.unreadable, 0);
    const expect = {
      aurocMsp: aurocLoop(inS.msp, outS.msp),
      fprMsp: fprLoop(inS.msp, outS.msp),
      aurocEnergy: aurocLoop(inS.energy, outS.energy),
      fprEnergy: fprLoop(inS.energy, outS.energy),
    };
    assert.ok(Math.abs(set.auroc.msp - expect.aurocMsp) <= 1e-6, `MSP AUROC ${set.auroc.msp} vs ${expect.aurocMsp}`);
    assert.ok(Math.abs(set.fprAtTpr.msp - expect.fprMsp) <= 1e-6, `MSP FPR@95 ${set.fprAtTpr.msp} vs ${expect.fprMsp}`);
    assert.ok(Math.abs(set.auroc.energy - expect.aurocEnergy) <= 1e-6, `energy AUROC ${set.auroc.energy} vs ${expect.aurocEnergy}`);
    assert.ok(Math.abs(set.fprAtTpr.energy - expect.fprEnergy) <= 1e-6, `energy FPR@95 ${set.fprAtTpr.energy} vs ${expect.fprEnergy}`);
    const meanIn = inS.msp.reduce((a, b) => a + b) / 500;
    assert.ok(Math.abs(m.meanIn.msp - meanIn) <= 1e-6);

    // Uniform noise against MNIST: the report says whether it gets more confidence.
    const u = m.sets.uniform;
    assert.equal(typeof u.beatsData, 'boolean');
    assert.equal(u.beatsData, u.mean.msp > m.meanIn.msp);
    assert.equal(m.setsMoreConfidentThanData.includes('uniform'), u.beatsData);
    assert.equal(
      report.findings.some((f) => f.rule === 'ood/more-confident-than-data' && f.metrics?.set === 'uniform'),
      u.beatsData,
    );
    assert.equal(u.beatsData, false, 'mnist-8 is less confident on uniform noise than on MNIST');
    assert.match(ood.headline!, /MSP AUROC: uniform .*notmnist 0\.\d\d; ECE/);
    // Feature-space detectors (asked for): fitted on one seeded half, scored on the other;
    // on notMNIST the feature detectors beat MSP, as the papers report for such near-OOD pairs.
    const det = m.detectors;
    assert.equal(det.tensor, 'Pooling160_Output_0_reshape0');
    assert.equal(det.dims, 256);
    assert.deepEqual(det.scores, ['mahalanobis', 'knn', 'vim', 'react']);
    assert.deepEqual(det.skipped, {});
    assert.equal(det.fit + det.scored, 500);
    assert.ok(det.fit > 200 && det.scored > 200, `split ${det.fit}/${det.scored}`);
    for (const n of ['mahalanobis', 'knn', 'vim']) {
      assert.ok(set.auroc[n] > set.auroc.msp, `${n} AUROC ${set.auroc[n]} vs MSP ${set.auroc.msp}`);
      assert.ok(set.fprAtTpr[n] < set.fprAtTpr.msp, `${n} FPR@95 ${set.fprAtTpr[n]} vs MSP ${set.fprAtTpr.msp}`);
    }
    // The ROC plot has one entry per detector too (the webview overlays them per set).
    for (const n of det.scores) assert.equal((ood.plots as any).roc[n].notmnist.length > 2, true);
    t.diagnostic(`detectors on notMNIST: AUROC ${JSON.stringify(set.auroc)} FPR@95 ${JSON.stringify(set.fprAtTpr)}`);
    t.diagnostic(
      `mnist-8, 500 MNIST: mean MSP ${m.meanIn.msp}, accuracy ${m.accuracy}, ECE ${m.ece}, confident-wrong ${m.confidentWrongRate}; ` +
        `notMNIST (2000): mean MSP ${set.mean.msp}, AUROC msp ${set.auroc.msp} energy ${set.auroc.energy}, ` +
        `FPR@95 msp ${set.fprAtTpr.msp} energy ${set.fprAtTpr.energy}; uniform: mean MSP ${u.mean.msp}, AUROC ${u.auroc.msp}`,
    );
  } finally {
    await model.dispose();
  }
});

test('feature detectors leave the softmax results as they were; a missing tensor leaves them out with the reason', async (t) => {
  if (!existsSync(FIXTURES)) {
    t.skip(`fixtures not found at ${FIXTURES}`);
    return;
  }
  const { loadModel } = await import('../../server/engine/model');
  const { openDataset } = await import('../../server/engine/data');
  const { audit } = await import('../../server/engine/audit');
  const model = await loadModel(path.join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { preprocess: 'unit', device: 'cpu' });
  try {
    const mnist = await openDataset(path.join(FIXTURES, 'mnist'), { limit: 60, seed: 0 });
    const run = async (params: Record<string, unknown>) => {
      const r = await audit(model, mnist, { probes: [oodProbe({ sets: 'inverted,rot90', ...params })], seed: 0 });
      return { r, m: r.probes.ood.metrics as Record<string, any> };
    };
    const off = await run({ detectors: 'none' });
    const on = await run({ detectors: 'all' });
    const missing = await run({ detectors: 'all', features: 'no_such_tensor' });
    assert.deepEqual(await run({}).then((d) => d.m.detectors), undefined, 'off unless asked for');
    assert.equal(off.m.detectors, undefined);
    for (const set of ['inverted', 'rot90']) {
      for (const s of ['msp', 'energy']) {
        assert.equal(on.m.sets[set].auroc[s], off.m.sets[set].auroc[s], `${set} ${s} AUROC`);
        assert.equal(on.m.sets[set].fprAtTpr[s], off.m.sets[set].fprAtTpr[s]);
        assert.equal(missing.m.sets[set].auroc[s], off.m.sets[set].auroc[s]);
      }
      assert.equal(typeof on.m.sets[set].auroc.knn, 'number');
    }
    assert.equal(on.m.ece, off.m.ece);
    assert.deepEqual(on.r.probes.ood.records, off.r.probes.ood.records, 'the reported records carry no features');
    assert.deepEqual(missing.m.detectors.scores, []);
    assert.match(missing.m.detectors.skipped.knn, /no tensor named 'no_such_tensor'/);
    assert.equal(missing.m.sets.inverted.auroc.knn, undefined);
  } finally {
    await model.dispose();
  }
});

test('the sample images\' variants written by the audit are the views it classified: generateOod\'s images to 8-bit rounding', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { toBytes } = await import('../../server/engine/image/files');
  const { pngAgainst } = await import('./helpers/png');
  const { audit } = await import('../../server/engine/audit');
  const { createProbes } = await import('../../server/engine/probes');
  const { fakeDataset, fakeModel } = await import('./helpers/fake');
  const out = mkdtempSync(path.join(tmpdir(), 'skeptic-ood-'));
  try {
    const N = 56; // scaled ×2 in the PNGs
    const images = [0, 1].map((i) => {
      let r = 99 + i;
      const rand = () => ((r = (Math.imul(r, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const data = Float32Array.from({ length: 3 * N * N }, (_, p) => Math.round(255 * (0.6 * ((p % N) / N) + 0.4 * rand())) / 255);
      return { id: `i${i}.png`, label: 1, image: { data, channels: 3 as const, height: N, width: N } };
    });
    const model = fakeModel({ channels: 3, height: N, width: N, numClasses: 2, logits: (px) => [0, 4 * px[0]] });
    const report = await audit(model, fakeDataset(images), { probes: createProbes(['clean', 'ood']), outDir: out, seed: 5 });
    assert.equal(report.probes.ood.status, 'ok', report.probes.ood.reason);
    let compared = 0;
    for (const [i, item] of images.entries()) {
      for (const set of GENERATED_SETS) {
        const file = path.join(out, `ood/${i}/${set}.png`);
        if (!existsSync(file)) continue;
        const want = toBytes(generateOod(set, item.image as PixelImage, 5, `sha-${item.id}`, 8), 2);
        const { off, worst } = await pngAgainst(file, want);
        // float32 against float64 (the tilts' bilinear weights): a value on a half level may round either way
        assert.ok(worst <= 1 && off <= want.length / 20, `image ${i} ${set}: ${off} values differ, by up to ${worst} levels`);
        compared++;
      }
    }
    assert.equal(compared, 2 * GENERATED_SETS.length, 'both images are samples, with every variant');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
