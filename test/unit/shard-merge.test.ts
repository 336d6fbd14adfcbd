/**
 * Sharded audits: 1 process against 4 and 7 shards merged, for every probe, on the demo model
 * (with an unreadable image and an unusable row, so a capped probe's top-up in the merge is
 * exercised) and on a fixture model; merged reports equal the single-process report in
 * everything but `run`, and the artifacts written are the same files with the same bytes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { openDataset } from '../../server/engine/data';
import { loadModel } from '../../server/engine/model';
import { createProbes } from '../../server/engine/probes';
import type { Report } from '../../server/engine/report/schema';
import { mergeShards, planMerge, type MergeInput } from '../../server/engine/shard/merge';
import { runShard, type ShardOpen } from '../../server/engine/shard/result';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';
import { ALL_PROBES, artifactFiles, demoManifest, SMALL_PARAMS, stripRun } from './helpers/small-audit';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skipFixtures = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

async function compareShardings(o: {
  modelPath: string;
  modelOptions: Record<string, unknown>;
  dataPath: string;
  limit?: number;
  seed: number;
  tmp: string;
  params?: Record<string, Record<string, unknown>>;
}): Promise<{ single: Report; computed: number[] }> {
  const model = await loadModel(o.modelPath, { device: 'cpu', ...o.modelOptions });
  try {
    const dataset = await openDataset(o.dataPath, { labels: model.labels, limit: o.limit, seed: o.seed });
    const params = { ...SMALL_PARAMS, ...o.params };
    const probes = () => createProbes(ALL_PROBES, params);
    const common = { seed: o.seed, batchSize: 8, limit: o.limit, baseDir: o.tmp };
    const single = await audit(model, dataset, { ...common, probes: probes(), outDir: join(o.tmp, 'single') });
    const singleFiles = artifactFiles(join(o.tmp, 'single'));
    for (const [id, p] of Object.entries(single.probes)) assert.equal(p.status, 'ok', `${id}: ${p.reason}`);
    const open: ShardOpen = { modelPath: o.modelPath, modelOptions: o.modelOptions, dataPath: o.dataPath, datasetOptions: {}, probes: ALL_PROBES, params, baseDir: o.tmp };
    const computed: number[] = [];
    for (const n of [4, 7]) {
      const inputs: MergeInput[] = [];
      // Shards in reverse order: the merge must not depend on the order they come in.
      for (let i = n - 1; i >= 0; i--) {
        const result = await runShard(model, dataset, { index: i, count: n, source: 'test' }, open, { ...common, probes: probes() });
        assert.equal(result.status, 'complete');
        inputs.push({ file: `shard-${i}`, result: JSON.parse(JSON.stringify(result)) });
      }
      const sizes = inputs.map((m) => m.result.images.length);
      assert.equal(sizes.reduce((a, b) => a + b, 0), dataset.records.length, 'every item in exactly one shard');
      const outDir = join(o.tmp, `merged-${n}`);
      const merged = await mergeShards(model, dataset, planMerge(inputs, false), { probes: probes(), outDir, baseDir: o.tmp });
      assert.deepEqual(stripRun(merged), stripRun(single), `${n} shards merged = 1 process`);
      assert.deepEqual(artifactFiles(outDir), singleFiles, `${n} shards: the same artifacts`);
      assert.equal(merged.run.shards!.partial, false);
      assert.deepEqual(merged.run.shards!.merged, Array.from({ length: n }, (_, i) => i));
      computed.push(merged.run.shards!.computed);
    }
    return { single, computed };
  } finally {
    await model.dispose();
  }
}

test('demo model: every probe, 1 process = 4 shards = 7 shards merged (with a broken image before the attack cap)', async () => {
  ensureDemoData();
  const tmp = mkdtempSync(join(tmpdir(), 'skeptic-shards-'));
  try {
    // 40 demo images; row 3 is not an image, row 6 names an unknown class.
    const manifest = demoManifest(tmp);
    const { single, computed } = await compareShardings({ modelPath: DEMO_MODEL, modelOptions: {}, dataPath: manifest, seed: 3, tmp });
    assert.equal(single.dataset.selected, 42);
    assert.deepEqual(single.findings.filter((f) => f.probe === 'data').map((f) => f.rule).sort(), ['data/unreadable-image', 'data/unusable-item']);
    assert.equal(single.probes.attack.count, 6);
    // The broken image sits before the attack's cap of 6: the 7th listed image is the 6th that
    // decodes, which no shard could know it owed; the merge computed that one record itself.
    assert.deepEqual(computed, [1, 1]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('fixture model (mnist-8 on MNIST, notMNIST as the OOD set): every probe, 1 process = 4 shards = 7 shards merged', { skip: skipFixtures }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'skeptic-shards-'));
  try {
    const { single } = await compareShardings({
      modelPath: join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'),
      modelOptions: { preprocess: 'unit', preprocessSource: 'cli' },
      dataPath: join(FIXTURES, 'mnist'),
      limit: 40,
      seed: 1,
      tmp,
      // the user's OOD set is streamed in the summary, so by the merge
      params: { ood: { sets: 'uniform', samples: 2, oodData: join(FIXTURES, 'notmnist'), oodLimit: 20 } },
    });
    assert.equal(single.dataset.selected, 40);
    assert.ok(JSON.stringify(single.probes.ood.metrics).includes('notmnist'), 'the OOD set was read');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('more shards than images: empty shards merge too', async () => {
  ensureDemoData();
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  try {
    const dataset = await openDataset(DEMO_TEST, { labels: model.labels, limit: 4, seed: 0 });
    const probes = () => createProbes(['clean'], {});
    const single = await audit(model, dataset, { probes: probes(), seed: 0, limit: 4 });
    const open: ShardOpen = { modelPath: DEMO_MODEL, modelOptions: {}, dataPath: DEMO_TEST, datasetOptions: {}, probes: ['clean'], params: {}, baseDir: process.cwd() };
    const inputs: MergeInput[] = [];
    for (let i = 0; i < 7; i++) inputs.push({ file: `s${i}`, result: await runShard(model, dataset, { index: i, count: 7, source: 'test' }, open, { probes: probes(), seed: 0, limit: 4 }) });
    assert.ok(inputs.some((m) => m.result.images.length === 0), 'some shard is empty');
    const merged = await mergeShards(model, dataset, planMerge(inputs, false), { probes: probes() });
    assert.deepEqual(stripRun(merged), stripRun(single));
  } finally {
    await model.dispose();
  }
});
