/**
 * An audit in lanes (engine/shard/lanes.ts): how many lanes `auto` takes; the report of 3 lanes
 * equals one lane's in everything but `run`, artifacts included, for every probe on the demo
 * model (with a broken image before the attack's cap); progress adds up; a cancel stops every
 * lane and reports what finished; a lane that cannot open the model fails the audit naming it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { audit, type AuditProgress } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { SkepticInputError } from '../../server/engine/errors';
import { loadModel } from '../../server/engine/model';
import type { LoadedModel } from '../../server/engine/types';
import { createProbes } from '../../server/engine/probes';
import { laneOf, shardOf } from '../../server/engine/shard/assign';
import { auditInLanes, laneBytes, lanePlan, runShardInLanes, type LanePlan } from '../../server/engine/shard/lanes';
import { mergeShards, planMerge, type MergeInput } from '../../server/engine/shard/merge';
import { runShard, type ShardOpen } from '../../server/engine/shard/result';
import { DEMO_MODEL } from './helpers/demo';
import { ALL_PROBES, artifactFiles, demoManifest, SMALL_PARAMS, stripRun } from './helpers/small-audit';

const GiB = 2 ** 30;
const plan = (o: Partial<Parameters<typeof lanePlan>[1]>, choice: number | 'auto' = 'auto') =>
  lanePlan(choice, { device: 'cpu', images: 1000, laneBytes: GiB, cpus: 16, free: 64 * GiB, ...o });

test('lanePlan: one lane per 4 cores on the CPU, at most 4, and per 16 images; one on a GPU or on few cores; no more than memory holds', () => {
  assert.deepEqual(plan({}), { lanes: 4, threads: 4, workers: 2, why: '16 cores' });
  assert.equal(plan({ cpus: 64 }).lanes, 4, 'at most 4 by default');
  assert.equal(plan({ cpus: 64 }).threads, 16, 'the cores shared out');
  assert.equal(plan({ cpus: 8 }).lanes, 2);
  assert.equal(plan({ cpus: 7 }).lanes, 1, '7 cores: one lane');
  assert.equal(plan({ cpus: 2 }).lanes, 1);
  assert.equal(plan({ device: 'webgpu' }).lanes, 1);
  assert.match(plan({ device: 'webgpu' }).why, /webgpu/);
  // 16 images a lane at least: 100 ImageNet samples take 4 lanes (the target's case), 40 two
  assert.equal(plan({ images: 100 }).lanes, 4);
  assert.equal(plan({ images: 48 }).lanes, 3);
  assert.equal(plan({ images: 40 }).lanes, 2);
  assert.equal(plan({ images: 31 }).lanes, 1);
  assert.match(plan({ images: 31 }).why, /31 images/);
  const tight = plan({ free: 2.5 * GiB });
  assert.equal(tight.lanes, 2, '2.5 GiB free holds two lanes of 1 GiB');
  assert.equal(tight.threads, 8);
  assert.match(tight.why, /free memory 2\.5 GiB holds 2 lanes/);
  assert.equal(plan({ free: 0.5 * GiB }).lanes, 1, 'never fewer than one');
  // as asked, whatever the machine; --threads as given
  assert.deepEqual(plan({ cpus: 2 }, 3), { lanes: 3, threads: 1, workers: 1, why: '3 as asked' });
  assert.equal(plan({ threads: 2 }, 4).threads, 2);
  assert.equal(plan({ threads: 6 }).workers, 3);
  // auto with the user's threads: lanes of that many threads fill the cores, no more
  assert.equal(plan({ threads: 16 }).lanes, 1);
  assert.equal(plan({ threads: 8 }).lanes, 2);
  assert.deepEqual(plan({ threads: 2 }), { lanes: 4, threads: 2, workers: 1, why: '16 cores' });
  assert.throws(() => plan({}, 0), SkepticInputError);
  assert.throws(() => plan({}, 1.5), SkepticInputError);
  assert.equal(laneBytes(100 * 2 ** 20), GiB + 4000 * 2 ** 20);
});

/** A temporary folder and the demo model, both gone after `fn`. */
async function withDemo(fn: (tmp: string, model: LoadedModel) => Promise<void>): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'skeptic-lanes-'));
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  try {
    await fn(tmp, model);
  } finally {
    await model.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
}

const lanes = (n: number): LanePlan => ({ lanes: n, threads: 1, workers: 1, why: `${n} as asked` });

test('demo model, every probe: 3 lanes = 1 lane, artifacts and all; progress adds up to the images', () =>
  withDemo(async (tmp, model) => {
    const dataPath = demoManifest(tmp);
    const dataset = await openDataset(dataPath, { labels: model.labels, seed: 3 });
    const common = { seed: 3, batchSize: 8, baseDir: tmp };
    const single = await audit(model, dataset, { ...common, probes: createProbes(ALL_PROBES, SMALL_PARAMS), outDir: join(tmp, 'single') });
    for (const [id, p] of Object.entries(single.probes)) assert.equal(p.status, 'ok', `${id}: ${p.reason}`);
    const open: ShardOpen = { modelPath: DEMO_MODEL, modelOptions: { device: 'cpu' }, dataPath, datasetOptions: {}, probes: ALL_PROBES, params: SMALL_PARAMS, baseDir: tmp };
    const seen: AuditProgress[] = [];
    const report = await auditInLanes(model, dataset, {
      ...common,
      probes: createProbes(ALL_PROBES, SMALL_PARAMS),
      outDir: join(tmp, 'lanes'),
      plan: lanes(3),
      open,
      onProgress: (p) => seen.push(p),
    });
    assert.deepEqual(stripRun(report), stripRun(single), '3 lanes = 1 lane');
    assert.deepEqual(artifactFiles(join(tmp, 'lanes')), artifactFiles(join(tmp, 'single')), 'the same artifacts');
    assert.deepEqual(report.run.lanes, { count: 3, threads: 1, why: '3 as asked' });
    assert.equal(report.run.shards, undefined, 'not a sharded report');
    assert.equal(report.run.cancelled, false);
    assert.deepEqual(report.run.cache, single.run.cache, "records computed and found: as many as one lane's");
    const evaluating = seen.filter((p) => p.phase === 'evaluating');
    assert.ok(evaluating.length > 3, 'progress from the lanes');
    for (let i = 1; i < evaluating.length; i++) assert.ok(evaluating[i].done >= evaluating[i - 1].done, 'never backwards');
    assert.ok(evaluating.every((p) => p.total === 42));
    assert.equal(evaluating.at(-1)!.done, 42);
    assert.ok(seen.some((p) => p.phase === 'summarizing'), "the merge's summaries show");
  }));

test("a shard in lanes: its result is the one process's for that shard, and the shards merge into the single audit", () =>
  withDemo(async (tmp, model) => {
    const dataPath = demoManifest(tmp);
    const dataset = await openDataset(dataPath, { labels: model.labels, seed: 3 });
    const common = { seed: 3, batchSize: 8, baseDir: tmp };
    const open: ShardOpen = { modelPath: DEMO_MODEL, modelOptions: { device: 'cpu' }, dataPath, datasetOptions: {}, probes: ALL_PROBES, params: SMALL_PARAMS, baseDir: tmp };
    const single = await audit(model, dataset, { ...common, probes: createProbes(ALL_PROBES, SMALL_PARAMS) });
    const inputs: MergeInput[] = [];
    for (let i = 0; i < 3; i++) {
      const shard = { index: i, count: 3, source: 'test' };
      const laned = await runShardInLanes(model, dataset, shard, { ...common, probes: createProbes(ALL_PROBES, SMALL_PARAMS), plan: lanes(2), open });
      const alone = await runShard(model, dataset, shard, open, { ...common, probes: createProbes(ALL_PROBES, SMALL_PARAMS) });
      assert.deepEqual(JSON.parse(JSON.stringify({ ...laned, run: undefined })), JSON.parse(JSON.stringify({ ...alone, run: undefined })), `shard ${i}/3 in 2 lanes = in one`);
      assert.deepEqual(laned.run.cache, alone.run.cache);
      inputs.push({ file: `shard-${i}`, result: laned });
    }
    const merged = await mergeShards(model, dataset, planMerge(inputs, false), { probes: createProbes(ALL_PROBES, SMALL_PARAMS), baseDir: tmp });
    assert.deepEqual(stripRun(merged), stripRun(single), 'the laned shards merged = one process');
  }));

test("laneOf splits a shard's items, not by the shard's own choice", () => {
  const ids = Array.from({ length: 4000 }, (_, i) => `img/${i}.png`);
  // the items of shard 0 of 4 go to both lanes of 2, about half each
  const shard0 = ids.filter((id) => shardOf(id, 4) === 0);
  const inLane0 = shard0.filter((id) => laneOf(id, 2) === 0).length;
  assert.ok(Math.abs(inLane0 / shard0.length - 0.5) < 0.06, `${inLane0} of ${shard0.length} in lane 0`);
  assert.equal(laneOf('x', 1), 0);
});

test('lanes share the results cache: a second audit in lanes finds every record there and gives the same report', () =>
  withDemo(async (tmp, model) => {
    const dataPath = demoManifest(tmp);
    const dataset = await openDataset(dataPath, { labels: model.labels });
    const probes = ['clean', 'shift'];
    const run = () =>
      auditInLanes(model, dataset, {
        probes: createProbes(probes, SMALL_PARAMS),
        batchSize: 8,
        cacheDir: join(tmp, 'cache'),
        plan: lanes(2),
        open: { modelPath: DEMO_MODEL, modelOptions: { device: 'cpu' }, dataPath, datasetOptions: {}, probes, params: SMALL_PARAMS, baseDir: tmp },
      });
    const first = await run();
    assert.deepEqual(first.run.cache, { hits: 0, misses: 80, path: join(tmp, 'cache') }, '40 usable images, two probes');
    const second = await run();
    assert.deepEqual(second.run.cache, { hits: 80, misses: 0, path: join(tmp, 'cache') });
    assert.deepEqual(stripRun(second), stripRun(first));
  }));

test('a cancel stops every lane; the report holds what they finished, marked cancelled', () =>
  withDemo(async (tmp, model) => {
    const dataPath = demoManifest(tmp, 200);
    const dataset = await openDataset(dataPath, { labels: model.labels });
    const probes = ['clean', 'shift', 'corruptions'];
    const controller = new AbortController();
    const report = await auditInLanes(model, dataset, {
      probes: createProbes(probes, {}),
      batchSize: 4,
      signal: controller.signal,
      plan: lanes(2),
      open: { modelPath: DEMO_MODEL, modelOptions: { device: 'cpu' }, dataPath, datasetOptions: {}, probes, params: {}, baseDir: tmp },
      onProgress: (p) => p.phase === 'evaluating' && p.done >= 8 && controller.abort(),
    });
    assert.equal(report.run.cancelled, true);
    assert.equal(report.dataset.selected, 202, 'every image listed, as in a cancelled single lane');
    assert.ok(report.dataset.evaluated >= 8 && report.dataset.evaluated < 150, `evaluated ${report.dataset.evaluated} of 200 before the lanes stopped`);
    for (const p of Object.values(report.probes)) assert.equal(p.status, 'cancelled');
    assert.equal(report.probes.clean.count, report.dataset.evaluated, 'a record for every image evaluated');
  }));

test("a lane that cannot open the model fails the audit, naming the file, once every lane's thread has ended", () =>
  withDemo(async (tmp, model) => {
    const dataPath = demoManifest(tmp, 16);
    const dataset = await openDataset(dataPath, { labels: model.labels });
    const missing = join(tmp, 'gone.onnx');
    await assert.rejects(
      auditInLanes(model, dataset, {
        probes: createProbes(['clean'], {}),
        batchSize: 4,
        plan: lanes(2),
        open: { modelPath: missing, modelOptions: { device: 'cpu' }, dataPath, datasetOptions: {}, probes: ['clean'], params: {}, baseDir: tmp },
      }),
      (e: Error) => e instanceof SkepticInputError && e.message.includes(missing),
    );
  }));

test('without its lane script the audit runs in one lane and says so', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'skeptic-lanes-'));
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const was = process.env.SKEPTIC_LANE_WORKER;
  process.env.SKEPTIC_LANE_WORKER = join(tmp, 'no-lane-worker.js');
  try {
    const dataPath = demoManifest(tmp, 16);
    const dataset = await openDataset(dataPath, { labels: model.labels });
    const report = await auditInLanes(model, dataset, {
      probes: createProbes(['clean'], {}),
      batchSize: 4,
      plan: lanes(2),
      open: { modelPath: DEMO_MODEL, modelOptions: { device: 'cpu' }, dataPath, datasetOptions: {}, probes: ['clean'], params: {}, baseDir: tmp },
    });
    assert.equal(report.run.lanes, undefined);
    assert.equal(report.probes.clean.count, 16);
    assert.ok(report.warnings.some((w) => w.includes('no-lane-worker.js is missing, so the audit ran in one lane instead of 2')), report.warnings.join('\n'));
  } finally {
    if (was === undefined) delete process.env.SKEPTIC_LANE_WORKER;
    else process.env.SKEPTIC_LANE_WORKER = was;
    await model.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
});
