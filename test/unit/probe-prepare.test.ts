/**
 * Probe.prepare: the audit tells each probe its images before any probe of the batch runs, and
 * the corruptions probe starts the views' CPU part for its first runs in the worker threads then,
 * so they are made while the probes before it run; run() takes them and gives the same records.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { corruptionsProbe } from '../../server/engine/probes/corruptions';
import type { Probe, ProbeImage } from '../../server/engine/probes/probe';
import { releaseViewWorkers, setViewWorkers } from '../../server/engine/views/workers';
import type { PixelImage } from '../../server/engine/types';
import { fakeDataset, fakeModel } from './helpers/fake';

after(() => setViewWorkers(undefined));

test('the audit tells every probe its images (the cache misses) before the first probe of the batch runs, and run() then gets those images', async () => {
  const log: string[] = [];
  const toy = (id: string, withPrepare: boolean): Probe<{ v: number }> => ({
    id,
    title: id,
    params: {},
    margin: 0,
    rules: {},
    ...(withPrepare ? { prepare: (images: ProbeImage[]) => void log.push(`${id}.prepare ${images.map((i) => i.image).join(',')}`) } : {}),
    async run(images) {
      log.push(`${id}.run ${images.map((i) => i.image).join(',')}`);
      return images.map((i) => ({ v: i.image }));
    },
    summarize: () => ({ headline: '', metrics: {}, findings: [] }),
  });
  const model = fakeModel({ height: 4, width: 4, numClasses: 2, logits: () => [0, 1] });
  const ds = fakeDataset(Array.from({ length: 5 }, (_, i) => ({ id: `img${i}`, image: { data: new Float32Array(16).fill(i / 10), channels: 1, height: 4, width: 4 } as PixelImage, label: 0 })));
  const r = await audit(model, ds, { probes: [toy('first', false), toy('second', true)], batchSize: 3, seed: 1 });
  assert.equal(r.probes.second.status, 'ok');
  assert.deepEqual(log, ['second.prepare 0,1,2', 'first.run 0,1,2', 'second.run 0,1,2', 'second.prepare 3,4', 'first.run 3,4', 'second.run 3,4']);
});

test('a probe whose prepare() throws fails with the message; the others go on', async () => {
  const model = fakeModel({ height: 4, width: 4, numClasses: 2, logits: () => [0, 1] });
  const ds = fakeDataset(Array.from({ length: 2 }, (_, i) => ({ id: `img${i}`, image: { data: new Float32Array(16).fill(i / 4), channels: 1, height: 4, width: 4 } as PixelImage, label: 0 })));
  const ok: Probe<{ v: number }> = { id: 'ok', title: 'ok', params: {}, margin: 0, rules: {}, run: async (images) => images.map(() => ({ v: 1 })), summarize: () => ({ headline: '', metrics: {}, findings: [] }) };
  const bad: Probe<{ v: number }> = { ...ok, id: 'bad', title: 'bad', prepare: () => { throw new Error('no room to prepare'); } };
  const r = await audit(model, ds, { probes: [ok, bad], batchSize: 2, seed: 1 });
  assert.equal(r.probes.ok.status, 'ok');
  assert.equal(r.probes.bad.status, 'failed');
  assert.match(r.probes.bad.reason ?? '', /bad failed: no room to prepare/);
});

/** 8×8 images around ½, classified by mean brightness: impulse noise's draws decide the class. */
function images(): ProbeImage[] {
  return Array.from({ length: 6 }, (_, i) => {
    const pixels: PixelImage = { data: new Float32Array(64).fill(0.5 + (i - 3) / 1000), channels: 1, height: 8, width: 8 };
    return { image: i, record: { index: i, id: `img${i}`, file: `/d/img${i}.png` }, sha256: `h${i}`, label: 0, pixels, context: pixels, margin: 0 };
  });
}

test('the corruptions probe\'s run() takes the inputs prepare() asked the worker threads for, and gives the records a run alone gives', async () => {
  await setViewWorkers(1);
  const model = fakeModel({ height: 8, width: 8, numClasses: 2, logits: (px) => [0, 200 * (px.reduce((a, b) => a + b, 0) / px.length - 0.5)] });
  try {
    const params = { corruptions: ['impulse_noise', 'shot_noise'] };
    const alone = async (seed: number) => corruptionsProbe(params).run(images(), { model, seed });
    const [seed0, seed1] = [await alone(0), await alone(1)];
    assert.notDeepEqual(seed0, seed1, 'the premise: the seed changes the records');

    // prepared and run with the same context: the records of a run alone
    const probe = corruptionsProbe(params);
    const imgs = images();
    probe.prepare!(imgs, { model, seed: 0 });
    assert.deepEqual(await probe.run(imgs, { model, seed: 0 }), seed0);
    // what run() computes comes from what prepare() started: prepared with seed 1, run with seed 0,
    // the records are seed 1's (all six images go in the first run of an 8×8 plan)
    const other = images();
    probe.prepare!(other, { model, seed: 1 });
    assert.deepEqual(await probe.run(other, { model, seed: 0 }), seed1);
    // prepared for other images: run() asks again for its own
    probe.prepare!(images(), { model, seed: 1 });
    assert.deepEqual(await probe.run(images(), { model, seed: 0 }), seed0);
  } finally {
    await releaseViewWorkers(model);
  }
});
