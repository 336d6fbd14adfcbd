/**
 * Sharded audits: what the merge costs against the audit, and how even the shards are.
 *
 *   node --import tsx bench/shards.ts [--repeat 2] [--shards 4]
 *
 * Needs ../shared/fixtures. For each fixture (model, dataset, the default probes):
 *  - audit: one process, no cache, the whole selection;
 *  - shards: the same selection as --shards shard runs, one after the other (their sum is the
 *    work a cluster spreads out; the largest is the wall time of an array with one node per shard);
 *  - merge: `skeptic merge` of those shards (re-hash every image, summaries, artifacts);
 *  - merge / audit: the overhead a sharded audit adds on top of its longest shard.
 * Then the shard imbalance (largest shard / mean) of each fixture's whole listing for N = 2..64.
 * Times are the best of --repeat after a warm-up run; the machine may be shared, so they are noisy.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel } from '../server/engine/model';
import { createProbes, DEFAULT_PROBES } from '../server/engine/probes';
import { shardOf } from '../server/engine/shard/assign';
import { mergeShards, planMerge, type MergeInput } from '../server/engine/shard/merge';
import { runShard, type ShardOpen } from '../server/engine/shard/result';
import { caseModelOptions } from './cases';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');
const { values } = parseArgs({ options: { repeat: { type: 'string', default: '2' }, shards: { type: 'string', default: '4' } } });
const repeat = Number(values.repeat);
const N = Number(values.shards);

const CASES = [
  { name: 'mnist-8 / MNIST (limit 1000)', model: 'models/mnist-8_onnxzoo_cntk.onnx', data: 'mnist', preprocess: 'unit', limit: 1000 },
  { name: 'ResNet-2B / CIFAR-10 100', model: 'models/cifar10_resnet2b_advtrained.onnx', data: 'cifar10_test_first100/labels.csv', preprocess: '{"scale":1,"mean":[0.4914,0.4822,0.4465],"std":[0.2471,0.2435,0.2616],"channelOrder":"rgb"}', labels: 'labels/cifar10_classes.txt' },
  { name: 'MobileNetV2-int8 / ImageNet 100 (clean, shift k=2)', model: 'models/imagenet_mobilenetv2-12-int8.onnx', data: 'imagenet_samples/labels.csv', preprocess: 'imagenet', labels: 'labels/imagenet_1k_wnids_names.txt', probes: ['clean', 'shift'], params: { shift: { k: 2, embedPositions: 2 } } },
];

async function best<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  let out: { ms: number; value: T } | undefined;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    const value = await f();
    const ms = performance.now() - t0;
    if (!out || ms < out.ms) out = { ms, value };
  }
  return out!;
}

async function main(): Promise<void> {
  if (!existsSync(FIXTURES)) {
    console.log(`no fixtures at ${FIXTURES}: skipped`);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'skeptic-bench-shards-'));
  console.log(`| fixture | images | audit s | ${N} shards: sum s | largest s | merge s | merge / audit |`);
  console.log('|---|---|---|---|---|---|---|');
  try {
    for (const c of CASES) {
      const model = await loadModel(join(FIXTURES, c.model), caseModelOptions(c, FIXTURES));
      try {
        const dataset = await openDataset(join(FIXTURES, c.data), { labels: model.labels, limit: c.limit, seed: 0 });
        const ids = c.probes ?? DEFAULT_PROBES;
        const params = (c.params ?? {}) as Record<string, Record<string, unknown>>;
        const probes = () => createProbes(ids, params);
        const common = { seed: 0, batchSize: 32, limit: c.limit, baseDir: tmp };
        await audit(model, dataset, { ...common, probes: probes() }); // warm-up
        const single = await best(() => audit(model, dataset, { ...common, probes: probes(), outDir: join(tmp, 'single') }));
        const open: ShardOpen = { modelPath: model.path, modelOptions: {}, dataPath: dataset.path, datasetOptions: {}, probes: ids, params, baseDir: tmp };
        const shardMs: number[] = [];
        const inputs: MergeInput[] = [];
        for (let i = 0; i < N; i++) {
          const r = await best(() => runShard(model, dataset, { index: i, count: N, source: 'bench' }, open, { ...common, probes: probes() }));
          shardMs.push(r.ms);
          inputs.push({ file: `shard-${i}`, result: r.value });
        }
        const merged = await best(() => mergeShards(model, dataset, planMerge(inputs, false), { probes: probes(), outDir: join(tmp, 'merged'), baseDir: tmp }));
        const s = (ms: number) => (ms / 1000).toFixed(2);
        console.log(
          `| ${c.name} | ${dataset.records.length} | ${s(single.ms)} | ${s(shardMs.reduce((a, b) => a + b, 0))} | ${s(Math.max(...shardMs))} | ${s(merged.ms)} | ${(merged.ms / single.ms).toFixed(3)} |`,
        );
      } finally {
        await model.dispose();
      }
    }

    console.log('\nShard imbalance (largest shard / mean shard) of each whole listing:\n');
    const counts = [2, 4, 8, 16, 32, 64];
    console.log(`| listing | items | ${counts.map((n) => `N=${n}`).join(' | ')} |`);
    console.log(`|---|---|${counts.map(() => '---').join('|')}|`);
    for (const c of CASES) {
      const dataset = await openDataset(join(FIXTURES, c.data), {});
      const row = counts.map((n) => {
        const size = new Array(n).fill(0);
        for (const r of dataset.records) size[shardOf(r.id, n)]++;
        return (Math.max(...size) / (dataset.records.length / n)).toFixed(2);
      });
      console.log(`| ${c.data} | ${dataset.records.length} | ${row.join(' | ')} |`);
    }
    // What to expect at scale: 50,000 ImageNet-style ids.
    const ids = Array.from({ length: 50000 }, (_, i) => `val/n${String(1440764 + (i % 1000) * 37).padStart(8, '0')}/ILSVRC2012_val_${String(i + 1).padStart(8, '0')}.JPEG`);
    const row = counts.map((n) => {
      const size = new Array(n).fill(0);
      for (const id of ids) size[shardOf(id, n)]++;
      return (Math.max(...size) / (ids.length / n)).toFixed(2);
    });
    console.log(`| 50,000 ImageNet-style ids (synthetic) | 50000 | ${row.join(' | ')} |`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
