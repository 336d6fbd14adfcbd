/**
 * Shard assignment (rendezvous hashing), the scheduler's environment, and how shards of
 * different audits are told apart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseShard, shardFromEnv, shardOf } from '../../server/engine/shard/assign';
import { identityDiff, type ShardIdentity } from '../../server/engine/shard/result';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `train/class${(from + i) % 10}/img${String(from + i).padStart(6, '0')}.jpg`);

test('an item keeps its shard when the dataset grows; N→N+1 moves only what the new shard wins', () => {
  const before = ids(5000);
  const grown = [...ids(2000, 5000), ...before].sort(); // new images interleaved in the listing
  const at = new Map(grown.map((id) => [id, shardOf(id, 7)]));
  for (const id of before) assert.equal(at.get(id), shardOf(id, 7), id);

  // Rendezvous: going from 7 to 8 shards, an item either stays or moves to the new shard 7,
  // and about 1/8 of them move (hash mod N would move about 7/8).
  let moved = 0;
  for (const id of before) {
    const a = shardOf(id, 7);
    const b = shardOf(id, 8);
    if (a !== b) {
      assert.equal(b, 7, `${id} moved from ${a} to ${b}, not to the new shard`);
      moved++;
    }
  }
  const share = moved / before.length;
  assert.ok(share > 0.1 && share < 0.15, `moved ${share}`);
});

test('shards are balanced: every shard gets about its share (chi-square) and one shard takes all', () => {
  const n = 10;
  const counts = new Array(n).fill(0);
  for (const id of ids(20000)) counts[shardOf(id, n)]++;
  const expected = 2000;
  const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  // 9 degrees of freedom: P(chi2 > 27.9) = 0.001
  assert.ok(chi2 < 27.9, `chi2 ${chi2} for ${counts}`);
  assert.ok(ids(100).every((id) => shardOf(id, 1) === 0));
});

test('--shard I/N and the schedulers\' variables', () => {
  assert.deepEqual(parseShard('2/5'), { index: 2, count: 5, source: '--shard' });
  assert.throws(() => parseShard('5/5'), /--shard: shard index 5 is outside 0\.\.4/);
  assert.throws(() => parseShard('1-of-4'), /--shard must look like I\/N/);
  assert.throws(() => parseShard('0/0'), /the shard count must be at least 1/);

  assert.equal(shardFromEnv({}), undefined);
  assert.deepEqual(shardFromEnv({ SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '8' }), {
    index: 3,
    count: 8,
    source: 'SLURM_ARRAY_TASK_ID=3, count from SLURM_ARRAY_TASK_COUNT',
  });
  // --array=1-4: tasks 1..4 are shards 0..3
  assert.deepEqual(
    [1, 2, 3, 4].map((t) => shardFromEnv({ SLURM_ARRAY_TASK_ID: String(t), SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_MAX: '4' })!.index),
    [0, 1, 2, 3],
  );
  // an explicit count wins (e.g. --array=0-99%10 with a count of 100 is the same; a sparse array is not)
  assert.equal(shardFromEnv({ SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '4' }, 16)!.count, 16);
  assert.throws(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '3' }), /not the array size: pass --shard-count N/);
  assert.throws(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '9', SLURM_ARRAY_TASK_COUNT: '4' }), /shard index 9 is outside 0\.\.3/);
  assert.deepEqual(shardFromEnv({ JOB_COMPLETION_INDEX: '2', SKEPTIC_SHARD_COUNT: '6' }), {
    index: 2,
    count: 6,
    source: 'JOB_COMPLETION_INDEX=2, count from SKEPTIC_SHARD_COUNT',
  });
  assert.throws(() => shardFromEnv({ JOB_COMPLETION_INDEX: 'x', SKEPTIC_SHARD_COUNT: '6' }), /JOB_COMPLETION_INDEX must be a non-negative integer/);
});

test('merge names every field in which two shards differ', () => {
  const base: ShardIdentity = {
    engineVersion: '1',
    toolVersion: '0.1.0',
    model: { sha256: 'a'.repeat(64), preprocessing: { scale: 1 }, outputKind: 'logits', labels: ['cat', 'dog'] },
    dataset: { listing: 'b'.repeat(64), selected: 30, total: 400 },
    seed: 0,
    limit: 30,
    batchSize: 32,
    probes: ['clean', 'shift'],
    params: { clean: {}, shift: { k: 2, embedPositions: 8 } },
    shardCount: 3,
  };
  const same = structuredClone(base);
  assert.deepEqual(identityDiff(base, same, 'a.json', 'b.json'), []);
  const other: ShardIdentity = {
    ...structuredClone(base),
    engineVersion: '2',
    model: { ...base.model, sha256: 'c'.repeat(64) },
    dataset: { listing: 'd'.repeat(64), selected: 31, total: 400 },
    limit: 31,
    params: { clean: {}, shift: { k: 3, embedPositions: 8 } },
    shardCount: 2,
  };
  const diff = identityDiff(base, other, 'a.json', 'b.json');
  assert.deepEqual(diff, [
    'engine version (a.json: "1", b.json: "2")',
    `model (sha256) (a.json: "${'a'.repeat(64)}", b.json: "${'c'.repeat(64)}")`,
    'dataset (selected items) (a.json: "30 of 400, listing bbbbbbbbbbbb", b.json: "31 of 400, listing dddddddddddd")',
    '--limit (a.json: 30, b.json: 31)',
    'probe parameters shift.k (a.json: 2, b.json: 3)',
    'shard count (a.json: 3, b.json: 2)',
  ]);
});
