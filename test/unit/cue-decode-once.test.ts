/**
 * Cue-conflict without a second decode (issue 11): generated from the audited dataset, the pairs'
 * images are kept from the audit's own pass (Probe.keeper) and the stimuli are composed by the
 * composite view op in front of the model.
 *
 *  - the composite view makes the bits of cue/generate.ts compose (the JavaScript reference), for
 *    found and failed silhouettes, grey and colour, through the compact shape material;
 *  - an audit decodes every image once (a counting wrapper around the dataset's stream sees
 *    every decode of the audit, its summaries and its artifacts), also with a probe whose margin
 *    makes the audit decode larger than the model's input, with every default probe beside it,
 *    and with every record cached; artifacts
 *    re-decode only the images they draw (the chosen trade-off, audit.ts renderArtifacts);
 *  - the results equal the old pipeline's, computed here independently: the dataset decoded again
 *    at margin 0, the stimuli composed in JavaScript (generatedStimuli with quiltComposer), the
 *    model's predict, the decisions by category counted with plain loops.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { categoryMapFor, categoryOfClass, decide } from '../../server/engine/cue/categories';
import { compositePlan, compositeSource } from '../../server/engine/cue/composite';
import { compose, fromBytes01, quiltTexture, shapeCarrier, shapeMaterial, toBytes01 } from '../../server/engine/cue/generate';
import { generatedStimuli, planPairs, quiltComposer } from '../../server/engine/cue/pairs';
import { openDataset } from '../../server/engine/data';
import { toBatch } from '../../server/engine/image/ops';
import { loadModel } from '../../server/engine/model';
import { cueConflictProbe } from '../../server/engine/probes/cue-conflict';
import { createProbes, DEFAULT_PROBES } from '../../server/engine/probes';
import type { Probe } from '../../server/engine/probes/probe';
import { shiftProbe } from '../../server/engine/probes/shift';
import { mulberry32 } from '../../server/engine/random';
import type { Dataset, PixelImage } from '../../server/engine/types';
import { makeViews } from '../../server/engine/views';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';

/** The dataset with every decode counted, by record index. */
function counting(ds: Dataset): { ds: Dataset; counts: Map<number, number>; reset(): void } {
  const counts = new Map<number, number>();
  const wrapped: Dataset = {
    ...ds,
    async *stream(spec, o) {
      for await (const batch of ds.stream(spec, o)) {
        for (const s of batch) if (s.image) counts.set(s.record.index, (counts.get(s.record.index) ?? 0) + 1);
        yield batch;
      }
    },
  };
  return { ds: wrapped, counts, reset: () => counts.clear() };
}

function image(C: 1 | 3, H: number, W: number, f: (c: number, y: number, x: number) => number): PixelImage {
  const data = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[(c * H + y) * W + x] = f(c, y, x);
  return { data, channels: C, height: H, width: W };
}

test('the composite view makes the bits of the JavaScript composition, through the compact shape material', async () => {
  const rng = mulberry32(5);
  const cases: Array<[string, PixelImage]> = [
    ['grey disc on a gradient', image(1, 28, 28, (_, y, x) => ((y - 13) ** 2 + (x - 15) ** 2 < 60 ? 0.5 + 0.5 * rng() : 0.1 + 0.01 * x))],
    ['colour square, 24×20', image(3, 24, 20, (c, y, x) => (y > 5 && y < 18 && x > 4 && x < 15 ? 0.3 * c + 0.6 * rng() : 0.9 - 0.02 * y))],
    ['grey stripes (no silhouette)', image(1, 28, 28, (_, y, x) => 0.3 + 0.02 * x + 0.01 * y + (x % 3 === 0 ? 0.2 : 0))],
    ['colour noise', image(3, 16, 16, () => rng())],
    // a 2×2 dot covers under 3% of a 32×32 gradient: the silhouette fails, the edges are the dot's
    ['colour dot (no silhouette)', image(3, 32, 32, (c, y, x) => (y >= 15 && y < 17 && x >= 20 && x < 22 ? 1 - 0.3 * c : 0.2 + 0.1 * c + 0.01 * x))],
  ];
  const fails = { found: 0, failed: 0 };
  for (const [name, a] of cases) {
    const { channels: C, height: H, width: W } = a;
    const b = image(C, H, W, () => rng());
    // the texture as the generator keeps it: quilted, rounded to bytes
    const texture = fromBytes01(toBytes01(quiltTexture(b, undefined, mulberry32(9))), C, H, W);
    const carrier = shapeCarrier(a);
    fails[carrier.silhouetteOk ? 'found' : 'failed']++;
    const want = compose(carrier, texture).data;
    const view = await makeViews(compositePlan(C, H, W), [compositeSource(shapeMaterial(a), texture)]);
    assert.equal(view.length, want.length);
    for (let i = 0; i < want.length; i++) assert.equal(view[i], want[i], `${name}: value ${i}`);
  }
  assert.ok(fails.found >= 2 && fails.failed >= 2, JSON.stringify(fails));
});

test('cue-conflict generated from the audited dataset: each image decoded once, the old pipeline\'s results', async () => {
  ensureDemoData();
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const out = mkdtempSync(join(tmpdir(), 'skeptic-cue-once-'));
  try {
    const base = await openDataset(DEMO_TEST, { labels: model.labels, limit: 80, seed: 2 });
    const { ds, counts, reset } = counting(base);
    const probes = () => [cueConflictProbe({ pairs: 40, texturesPerClass: 3 }) as Probe<object>, shiftProbe({}) as Probe<object>];
    assert.ok(probes()[1].margin > 0, 'the shift probe makes the audit decode a margin');
    const seed = 4;

    // No artifacts: every image decoded exactly once.
    const report = await audit(model, ds, { probes: probes(), seed });
    const p = report.probes['cue-conflict'];
    assert.equal(p.status, 'ok', p.reason);
    const m = p.metrics as any;
    assert.equal(m.conflicts, 40);
    assert.equal(counts.size, 80);
    for (const [i, n] of counts) assert.equal(n, 1, `record ${i} decoded ${n} times`);

    // The old pipeline, independently: decode again at margin 0, compose in JavaScript, predict.
    const map = categoryMapFor(model, undefined, undefined);
    const plan = planPairs(base.records, (l) => categoryOfClass(map, l), seed, 40, 3);
    const decisions: Array<{ shape: string; texture: string; answer: string }> = [];
    let noSilhouette = 0;
    for await (const batch of generatedStimuli(base, model.decodeSpec(0), plan.pairs, quiltComposer(seed), 32)) {
      const pred = await model.predict(toBatch(batch.map((s) => s.image)));
      batch.forEach((s, i) => {
        if (s.silhouette === false) noSilhouette++;
        decisions.push({ shape: map.names[s.pair.shape], texture: map.names[s.pair.texture], answer: map.names[decide(pred.probs, i * pred.numClasses, map)] });
      });
    }
    const shape = decisions.filter((d) => d.answer === d.shape).length;
    const texture = decisions.filter((d) => d.answer === d.texture).length;
    assert.deepEqual([m.conflicts, m.shape, m.texture, m.other], [decisions.length, shape, texture, decisions.length - shape - texture]);
    assert.equal(m.stimuli.withoutSilhouette, noSilhouette);
    const galleryWant = decisions.filter((d) => d.answer === d.texture).slice(0, 24);
    assert.deepEqual(m.gallery.map((g: any) => [g.shape, g.texture, g.answer]), galleryWant.map((d) => [d.shape, d.texture, d.answer]));
    assert.ok(shape + texture > 10, `${shape} shape, ${texture} texture decisions`);

    // Artifacts: the gallery is drawn from the view; only the images render() draws are decoded again.
    reset();
    const drawn = await audit(model, ds, { probes: probes(), seed, outDir: out });
    const dm = drawn.probes['cue-conflict'].metrics as any;
    assert.deepEqual([dm.shape, dm.texture, dm.other], [m.shape, m.texture, m.other]);
    assert.ok(dm.gallery.length > 0 && dm.gallery.every((g: any) => g.png));
    const rendered = new Set<number>();
    for (const r of Object.values(drawn.probes)) for (const rec of r.records as any[]) if (rec.artifacts?.length && rec.why !== 'decided-by-texture') rendered.add(rec.image);
    for (const f of drawn.findings) if (f.artifacts?.length && f.subject.image !== undefined) rendered.add(f.subject.image);
    for (const [i, n] of counts) {
      const pos = base.records.findIndex((r) => r.index === i);
      assert.equal(n, rendered.has(pos) ? 2 : 1, `record ${i} decoded ${n} times (${rendered.has(pos) ? '' : 'not '}rendered)`);
    }

    // Every record cached: the audit decodes only the pairs' images, once each.
    const cacheDir = join(out, 'cache');
    await audit(model, ds, { probes: probes(), seed, cacheDir });
    reset();
    const cached = await audit(model, ds, { probes: probes(), seed, cacheDir });
    assert.equal(cached.run.cache.misses, 0);
    const cm = cached.probes['cue-conflict'].metrics as any;
    assert.deepEqual([cm.shape, cm.texture, cm.other], [m.shape, m.texture, m.other]);
    const inPairs = new Set(plan.pairs.flatMap((pp) => [pp.a.index, pp.b.index]));
    assert.deepEqual([...counts.keys()].sort((x, y) => x - y), [...inPairs].sort((x, y) => x - y));
    for (const [i, n] of counts) assert.equal(n, 1, `record ${i} decoded ${n} times`);
  } finally {
    await model.dispose();
    rmSync(out, { recursive: true, force: true });
  }
});

test('the default probes with cue-conflict: every image decoded once', async () => {
  ensureDemoData();
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  try {
    const base = await openDataset(DEMO_TEST, { labels: model.labels, limit: 16, seed: 2 });
    const { ds, counts } = counting(base);
    const report = await audit(model, ds, { probes: createProbes([...DEFAULT_PROBES, 'cue-conflict']), seed: 0 });
    for (const [id, p] of Object.entries(report.probes)) assert.equal(p.status, 'ok', `${id}: ${p.reason}`);
    assert.ok((report.probes['cue-conflict'].metrics as any).conflicts > 0);
    assert.equal(counts.size, 16);
    for (const [i, n] of counts) assert.equal(n, 1, `record ${i} decoded ${n} times`);
  } finally {
    await model.dispose();
  }
});
