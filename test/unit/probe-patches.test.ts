/**
 * P3, the patches probe, on cases worked out by hand with fake models, then on the demo model.
 *
 * Patch shuffle on a 4×4 image holding the values 0..15 at g = 2: four 2×2 quadrants
 *   TL = [0 1 / 4 5]   TR = [2 3 / 6 7]   BL = [8 9 / 12 13]   BR = [10 11 / 14 15]
 * and perm [3, 2, 1, 0] (slot k gets tile perm[k]) puts BR top-left, BL top-right, TR bottom-left,
 * TL bottom-right: rows [10 11 8 9], [14 15 12 13], [2 3 0 1], [6 7 4 5].
 *
 * Shuffle accuracy. A "shape" model looks at one pixel: class 0 when pixel (0,0) is lit (logits
 * [10·p, 5]). Image A has its top-left quadrant lit (label 0), image B is dark (label 1).
 * Clean: A → 0, B → 1, accuracy 1. At g = 2 every tile moves (a derangement), so A's lit quadrant
 * leaves the corner: A → 1 (wrong), B → 1 (right): accuracy 0.5, agreement 0.5, and with chance
 * 1/2 the retained share is (0.5 − 0.5)/(1 − 0.5) = 0. A "texture" model (mean brightness) keeps
 * every prediction: accuracy 1 at every grid, retained 1, and the finding fires.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { createProbes } from '../../server/engine/probes';
import {
  canvasFill, derangement, patchesProbe, patchOnCanvas, patchPositions, patchShuffle, shufflePermutation, shuffleTiles, tiling,
} from '../../server/engine/probes/patches';
import type { Probe, ProbeImage } from '../../server/engine/probes/probe';
import { colormap, overlay, spreadPatches } from '../../server/engine/image/heatmap';
import { mulberry32 } from '../../server/engine/random';
import type { ImageEntry } from '../../server/engine/report/schema';
import type { PixelImage } from '../../server/engine/types';
import { fakeDataset, fakeModel, gray } from './helpers/fake';
import { DEMO, DEMO_TEST, ensureDemoData } from './helpers/demo';

const ramp = (h: number, w: number): PixelImage => gray(Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => y * w + x)));

function probeImage(image: number, pixels: PixelImage, label?: number): ProbeImage {
  return { image, record: { index: image, id: `img${image}`, file: `/d/img${image}.png` }, sha256: `h${image}`, label, pixels, context: pixels, margin: 0 };
}
function entries(images: ProbeImage[]): ImageEntry[] {
  return images.map((im) => ({ id: im.record.id, uri: `file:///d/${im.record.id}`, path: im.record.id, label: im.label }));
}

test('tiling: equal tiles over the centred region; the leftover rows and columns stay outside', () => {
  assert.deepEqual(tiling(4, 2), { offset: 0, size: 2 });
  assert.deepEqual(tiling(28, 8), { offset: 2, size: 3 }); // 24 px of tiles, 2 px frame each side
  assert.deepEqual(tiling(5, 2), { offset: 0, size: 2 }); // r = 1: the last row stays
  assert.deepEqual(tiling(299, 2), { offset: 0, size: 149 });
  assert.deepEqual(tiling(299, 4), { offset: 1, size: 74 });
  assert.throws(() => tiling(3, 4));
});

test('a 2×2 shuffle of a 4×4 image moves whole quadrants, pixel for pixel', () => {
  const out = shuffleTiles(ramp(4, 4), 2, [3, 2, 1, 0]);
  assert.deepEqual([...out.data], [10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5]);
  // perm [1, 0, 3, 2] swaps left and right halves.
  assert.deepEqual([...shuffleTiles(ramp(4, 4), 2, [1, 0, 3, 2]).data], [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13]);
  // Channels move together.
  const rgb: PixelImage = { data: Float32Array.from({ length: 3 * 16 }, (_, i) => i), channels: 3, height: 4, width: 4 };
  const s = shuffleTiles(rgb, 2, [3, 2, 1, 0]);
  for (let c = 0; c < 3; c++) assert.deepEqual([...s.data.subarray(c * 16, c * 16 + 4)], [10, 11, 8, 9].map((v) => v + 16 * c));
});

test('the permutation is a derangement, deterministic per seed and image, and varies with the seed', () => {
  const p = shufflePermutation(2, 7, 'abc');
  assert.deepEqual(shufflePermutation(2, 7, 'abc'), p);
  assert.deepEqual([...p].sort(), [0, 1, 2, 3]);
  assert.ok(p.every((v, i) => v !== i), `no tile stays: ${p}`);
  const seen = new Set(Array.from({ length: 20 }, (_, seed) => shufflePermutation(2, seed, 'abc').join()));
  assert.ok(seen.size > 3, `20 seeds gave ${seen.size} permutations`);
  assert.notDeepEqual(shufflePermutation(8, 1, 'abc'), shufflePermutation(8, 2, 'abc'));
  assert.notDeepEqual(shufflePermutation(8, 1, 'abc'), shufflePermutation(8, 1, 'abd'));
  // The image follows its permutation.
  assert.deepEqual(patchShuffle(ramp(4, 4), 2, 7, 'abc').data, shuffleTiles(ramp(4, 4), 2, p).data);
  // Uniform over the 9 derangements of 4: 1800 draws, each about 200 (SE 13).
  const rng = mulberry32(5);
  const counts = new Map<string, number>();
  for (let i = 0; i < 1800; i++) {
    const d = derangement(4, rng);
    assert.ok(d.every((v, j) => v !== j));
    counts.set(d.join(), (counts.get(d.join()) ?? 0) + 1);
  }
  assert.equal(counts.size, 9);
  for (const n of counts.values()) assert.ok(n > 140 && n < 260, `count ${n}`);
});

test('unequal sizes: 6×6 at g = 4 shuffles 1-px tiles inside a kept 1-px frame; 28×28 at g = 8 keeps a 2-px frame', () => {
  const img = ramp(6, 6);
  const perm = shufflePermutation(4, 3, 'x');
  const out = shuffleTiles(img, 4, perm);
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < 6; x++) {
      const inFrame = y === 0 || y === 5 || x === 0 || x === 5;
      if (inFrame) assert.equal(out.data[y * 6 + x], img.data[y * 6 + x], `frame pixel (${y},${x}) stays`);
      else {
        // Slot (y−1, x−1) of the 4×4 grid takes tile perm[slot], a single pixel.
        const src = perm[(y - 1) * 4 + (x - 1)];
        assert.equal(out.data[y * 6 + x], img.data[(1 + Math.floor(src / 4)) * 6 + 1 + (src % 4)]);
      }
    }
  }
  // 28/8: 3-px tiles from (2,2) to (25,25); rows/cols 0, 1, 26, 27 stay; every 3×3 tile arrives whole.
  const big = ramp(28, 28);
  const p8 = shufflePermutation(8, 0, 'y');
  const s8 = shuffleTiles(big, 8, p8);
  for (let i = 0; i < 28; i++) {
    for (const j of [0, 1, 26, 27]) {
      assert.equal(s8.data[j * 28 + i], big.data[j * 28 + i]);
      assert.equal(s8.data[i * 28 + j], big.data[i * 28 + j]);
    }
  }
  for (let slot = 0; slot < 64; slot++) {
    const [dy, dx] = [2 + 3 * Math.floor(slot / 8), 2 + 3 * (slot % 8)];
    const [sy, sx] = [2 + 3 * Math.floor(p8[slot] / 8), 2 + 3 * (p8[slot] % 8)];
    for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) assert.equal(s8.data[(dy + y) * 28 + dx + x], big.data[(sy + y) * 28 + sx + x]);
  }
  assert.deepEqual([...s8.data].sort((a, b) => a - b), [...big.data].sort((a, b) => a - b), 'a permutation of the pixels');
});

test('evidence geometry: positions cover the image, the canvas holds the patch on the mean colour', () => {
  assert.deepEqual(patchPositions(32, 8, 4), [0, 4, 8, 12, 16, 20, 24]);
  assert.deepEqual(patchPositions(28, 7, 4), [0, 4, 8, 12, 16, 20, 21]);
  assert.deepEqual(patchPositions(8, 8, 4), [0]);
  const img = gray([[1, 0, 0], [0, 0, 0], [0, 0, 0.8]]); // mean 0.2
  assert.ok(Math.abs(canvasFill(img, 'mean')[0] - 0.2) < 1e-7);
  assert.deepEqual(canvasFill(img, 0.5), [0.5]);
  const c = patchOnCanvas(img, 1, 1, 2, [0.2]);
  assert.deepEqual([...c.data].map((v) => Math.round(v * 10) / 10), [0.2, 0.2, 0.2, 0.2, 0, 0, 0.2, 0, 0.8]);
});

test('heatmaps: patch values spread over the pixels they cover, averaged where patches overlap', () => {
  // 4×4, 2×2 patches at [0, 2]: no overlap, each value fills its block.
  assert.deepEqual([...spreadPatches([0, 0.5, 1, 0.25], [0, 2], [0, 2], 2, 4, 4)], [0, 0, 0.5, 0.5, 0, 0, 0.5, 0.5, 1, 1, 0.25, 0.25, 1, 1, 0.25, 0.25]);
  // 3×1, 2×1 patches at rows [0, 1] with values 0 and 1: row 1 is covered by both ⇒ 0.5.
  assert.deepEqual([...spreadPatches([0, 1], [0, 1], [0], 2, 3, 1)], [0, 0.5, 1]);
  assert.deepEqual(colormap(0), [0, 0, 0.016]);
  assert.deepEqual(colormap(1), [0.988, 1, 0.643]);
  const lum = (v: number) => colormap(v).reduce((a, b) => a + b, 0);
  for (let v = 0.05; v <= 1; v += 0.05) assert.ok(lum(v) > lum(v - 0.05), 'brighter as the value grows');
  // Overlay: (1 − α)·grey + α·colour, always RGB.
  const o = overlay(gray([[1]]), [0], 0.5);
  assert.deepEqual([o.channels, o.height, o.width], [3, 1, 1]);
  assert.ok(Math.abs(o.data[0] - 0.5) < 1e-7 && Math.abs(o.data[2] - (0.5 + 0.008)) < 1e-7);
});

test('shuffle accuracy and agreement on a shape model and a texture model', async () => {
  const A = gray([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
  const B = gray([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
  const images = [probeImage(0, A, 0), probeImage(1, B, 1)];
  const shape = fakeModel({ height: 4, width: 4, numClasses: 2, logits: (px) => [10 * px[0], 5] });
  const probe = patchesProbe({ grids: [2, 4], evidenceRate: 0, minLabelled: 1 });
  const recs = await probe.run(images, { model: shape, seed: 3 });
  // g = 4 on 4×4: 1-px tiles; pixel (0,0) receives pixel perm[0], lit when it is 1, 4 or 5.
  const lit4 = [1, 4, 5].includes(shufflePermutation(4, 3, 'h0')[0]);
  assert.deepEqual(recs[0], { pred: 0, conf: recs[0].conf, shuffled: [1, lit4 ? 0 : 1] });
  assert.deepEqual(recs[1].shuffled, [1, 1]);
  assert.equal(recs[0].evidence, undefined);

  const summary = await probe.summarize(recs.map((r, i) => ({ ...r, image: i })), { model: shape, seed: 3, images: entries(images), className: String });
  const m = summary.metrics as Record<string, any>;
  assert.equal(m.cleanAccuracy, 1);
  assert.equal(m.chance, 0.5);
  assert.deepEqual(m.grids[0], { grid: 2, accuracy: 0.5, agreement: 0.5, retained: 0 });
  assert.deepEqual(m.grids[1], lit4 ? { grid: 4, accuracy: 1, agreement: 1, retained: 1 } : { grid: 4, accuracy: 0.5, agreement: 0.5, retained: 0 });
  assert.equal(summary.findings.length, lit4 ? 1 : 0);
  assert.match(summary.headline, /^accuracy shuffled 2×2 50\.0%, 4×4 (50\.0|100\.0)% \(clean 100\.0%\)$/);

  const texture = fakeModel({ height: 4, width: 4, numClasses: 2, logits: (px) => [px.reduce((a, b) => a + b, 0), 2] });
  const tRecs = await probe.run(images, { model: texture, seed: 3 });
  const tSum = await probe.summarize(tRecs.map((r, i) => ({ ...r, image: i })), { model: texture, seed: 3, images: entries(images), className: String });
  assert.deepEqual((tSum.metrics as any).grids.map((g: any) => [g.accuracy, g.agreement, g.retained]), [[1, 1, 1], [1, 1, 1]]);
  assert.equal(tSum.findings.length, 1);
  assert.equal(tSum.findings[0].rule, 'patches/local-texture');
  assert.equal(tSum.findings[0].image, undefined);
  assert.match(tSum.findings[0].message, /4×4 tiles.*accuracy is still 100\.0%.*local texture, not global shape \(Brendel & Bethge, ICLR 2019\)/);
  // Too few labelled images: no finding.
  const strict = patchesProbe({ grids: [2, 4], evidenceRate: 0 });
  const sSum = await strict.summarize(tRecs.map((r, i) => ({ ...r, image: i })), { model: texture, seed: 3, images: entries(images), className: String });
  assert.equal(sSum.findings.length, 0);
});

test('evidence maps on a model whose logit depends on one known pixel', async () => {
  // 8×8, patches 4×4 at stride 2: positions [0, 2, 4] per axis, 9 patches. The model's class-0
  // logit is 20·(p(5,6) − ½). Image A: only (5,6) lit, label 0; mean colour 1/64. Patches holding
  // (5,6): tops 2 and 4 (rows 2..5, 4..7), left 4 (cols 4..7): indices 1·3+2 = 5 and 2·3+2 = 8,
  // p0 = σ(10) → 1.000; elsewhere the pixel is the canvas's 1/64: p0 = σ(20/64 − 10) → 0.000.
  // Image B: all dark, label 1: every patch and the canvas say class 1.
  const model = fakeModel({ height: 8, width: 8, numClasses: 2, logits: (px) => [20 * (px[5 * 8 + 6] - 0.5), 0] });
  const A = gray(Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => (y === 5 && x === 6 ? 1 : 0))));
  const B = gray(Array.from({ length: 8 }, () => new Array(8).fill(0)));
  const images = [probeImage(0, A, 0), probeImage(1, B, 1)];
  const probe = patchesProbe({ grids: [2], evidenceRate: 1, patchSize: 4, stride: 2 });
  const recs = await probe.run(images, { model, seed: 0 });
  assert.deepEqual(recs[0].evidence, { rows: 3, cols: 3, hits: 2, blank: 1, classes: [0], maps: [[0, 0, 0, 0, 0, 1, 0, 0, 1]] });
  assert.deepEqual(recs[1].evidence, { rows: 3, cols: 3, hits: 9, blank: 1, classes: [1], maps: [[1, 1, 1, 1, 1, 1, 1, 1, 1]] });

  const summary = await probe.summarize(recs.map((r, i) => ({ ...r, image: i })), { model, seed: 0, images: entries(images), className: String });
  const ev = (summary.metrics as any).evidence;
  assert.equal(ev.patchSize, 4);
  assert.equal(ev.stride, 2);
  assert.equal(ev.patchesPerImage, 9);
  assert.equal(ev.singlePatchRate, 1);
  assert.ok(Math.abs(ev.meanPatchShare - (2 / 9 + 1) / 2) < 1e-6);
  assert.equal(ev.blankRate, 0.5);
  assert.match(summary.headline, /a single patch finds the label in 100\.0% of images$/);

  // A wrong prediction keeps two maps: the label's, then the prediction's.
  const wrong = await probe.run([probeImage(2, A, 1)], { model, seed: 0 });
  assert.deepEqual(wrong[0].evidence!.classes, [1, 0]);
  assert.deepEqual(wrong[0].evidence!.maps, [[1, 1, 1, 1, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1, 0, 0, 1]]);
  assert.equal(wrong[0].evidence!.hits, 7);
});

test('evidence maps on a grey canvas (fill: a level instead of the mean colour)', async () => {
  // The model of the test above; image B all dark, label 1, on a canvas of 0.75: the canvas alone
  // says class 0 (20·(0.75 − ½) > 0), a patch holding the dark pixel (5,6) says class 1.
  const model = fakeModel({ height: 8, width: 8, numClasses: 2, logits: (px) => [20 * (px[5 * 8 + 6] - 0.5), 0] });
  const B = gray(Array.from({ length: 8 }, () => new Array(8).fill(0)));
  const probe = patchesProbe({ grids: [2], evidenceRate: 1, patchSize: 4, stride: 2, fill: 0.75 });
  const recs = await probe.run([probeImage(1, B, 1)], { model, seed: 0 });
  // p(1) on the canvas: 1/(1 + e⁵) = 0.007; with the dark pixel: 1/(1 + e⁻¹⁰) = 1.000
  const c = 0.007;
  assert.deepEqual(recs[0].evidence, { rows: 3, cols: 3, hits: 2, blank: 0, classes: [1], maps: [[c, c, c, c, c, 1, c, c, 1]] });
});

test('the evidence sample is a deterministic function of the image and the seed', async () => {
  const model = fakeModel({ height: 4, width: 4, numClasses: 2, logits: (px) => [px[0], 0.5] });
  const images = Array.from({ length: 200 }, (_, i) => probeImage(i, gray([[i % 2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), i % 2));
  const probe = patchesProbe({ grids: [2], evidenceRate: 0.3 });
  const a = (await probe.run(images, { model, seed: 1 })).map((r) => !!r.evidence);
  const b = (await probe.run(images.slice(50), { model, seed: 1 })).map((r) => !!r.evidence);
  assert.deepEqual(b, a.slice(50), 'an image is sampled whatever else is audited');
  const share = a.filter(Boolean).length / a.length;
  assert.ok(share > 0.2 && share < 0.4, `sampled ${share}`);
  const c = (await probe.run(images, { model, seed: 2 })).map((r) => !!r.evidence);
  assert.notDeepEqual(c, a);
  const none = await patchesProbe({ grids: [2], evidenceRate: 0 }).run(images.slice(0, 5), { model, seed: 1 });
  assert.ok(none.every((r) => r.evidence === undefined));
});

test('parameters are checked and resolved', () => {
  assert.deepEqual(patchesProbe().params.grids, [2, 4, 8]);
  assert.deepEqual(patchesProbe({ grids: '2, 3' }).params.grids, [2, 3]);
  assert.deepEqual(patchesProbe({ grids: 7 }).params.grids, [7], 'one number (--param patches.grids=7)');
  assert.throws(() => patchesProbe({ grids: 1 }), /patches\.grids/);
  assert.throws(() => patchesProbe({ grids: [1] }), /patches\.grids/);
  assert.throws(() => patchesProbe({ fill: 2 }), /patches\.fill/);
  assert.throws(() => patchesProbe({ evidenceRate: 1.5 }), /patches\.evidenceRate/);
  assert.equal(patchesProbe().params.patchSize, 'auto');
});

test('through the audit: artifacts for the picked images (original, shuffles, evidence heatmaps)', async () => {
  const out = mkdtempSync(join(tmpdir(), 'skeptic-patches-'));
  try {
    const model = fakeModel({ height: 8, width: 8, numClasses: 2, logits: (px) => [20 * (px[5 * 8 + 6] - 0.5), 0] });
    const lit = gray(Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => (y === 5 && x === 6 ? 1 : 0))));
    const items = Array.from({ length: 5 }, (_, i) => ({ id: `i${i}.png`, label: 0, image: lit }));
    const probes = [...createProbes(['clean']), patchesProbe({ grids: [2, 4], evidenceRate: 1, patchSize: 4, stride: 2, renderImages: 2 }) as Probe<object>];
    const report = await audit(model, fakeDataset(items), { probes, outDir: out });
    const recs = report.probes.patches.records;
    assert.equal(report.probes.patches.status, 'ok');
    assert.deepEqual(recs[0].artifacts, [
      'artifacts/patches/0-original.png', 'artifacts/patches/0-shuffle2.png', 'artifacts/patches/0-shuffle4.png', 'artifacts/patches/0-evidence-class0.png',
    ]);
    assert.equal(recs[2].artifacts, undefined);
    for (const f of recs[0].artifacts!) assert.ok(existsSync(join(out, f)), f);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// The demo model (models/demo): a small CNN that learned texture. Its README measured about 42%
// accuracy with 4×4 tiles shuffled (chance 25%, clean 96%).

async function demoSetup(limit: number) {
  ensureDemoData();
  const csv = DEMO_TEST;
  const { loadModel } = await import('../../server/engine/model');
  const { openDataset } = await import('../../server/engine/data');
  const model = await loadModel(join(DEMO, 'shapes-cnn.onnx'), { device: 'cpu' });
  const dataset = await openDataset(csv, { labels: model.labels, limit, seed: 1 });
  return { model, dataset };
}

test('demo model: accuracy falls with the grid, evidence finds the label in some patches', async () => {
  const { model, dataset } = await demoSetup(120);
  try {
    const probes = [...createProbes(['clean']), patchesProbe() as Probe<object>];
    const report = await audit(model, dataset, { probes, seed: 0 });
    const p = report.probes.patches;
    assert.equal(p.status, 'ok', p.reason);
    const m = p.metrics as any;
    const [g2, g4, g8] = m.grids.map((g: any) => g.accuracy);
    assert.ok(m.cleanAccuracy >= 0.85, `clean ${m.cleanAccuracy}`);
    assert.ok(g2 > g4 && g4 > g8, `accuracy should fall with the grid: ${g2}, ${g4}, ${g8}`);
    assert.ok(g2 >= 0.6, `2×2 keeps most: ${g2}`);
    assert.ok(g4 > 0.3 && g4 < 0.65, `4×4 stays above chance (README: ~42%): ${g4}`);
    assert.ok(g8 < 0.45, `8×8 near chance: ${g8}`);
    assert.ok(m.evidence.images > 10 && m.evidence.patchesPerImage === 49);
    assert.ok(m.evidence.singlePatchRate > 0.2, `single patch ${m.evidence.singlePatchRate}`);
    assert.match(p.headline!, /^accuracy shuffled 2×2 .*, 4×4 .*, 8×8 .* \(clean .*\); a single patch finds the label in/);
  } finally {
    await model.dispose();
  }
});
