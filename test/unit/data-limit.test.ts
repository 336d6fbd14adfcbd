import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stratifiedSample } from '../../server/engine/data/limit';
import { SkepticInputError } from '../../server/engine/errors';
import type { DatasetRecord } from '../../server/engine/types';

/** Records with the given class sizes, interleaved, plus `problems` problem records. */
function records(sizes: number[], problems = 0): DatasetRecord[] {
  const labels: (number | undefined)[] = [];
  sizes.forEach((n, c) => labels.push(...new Array(n).fill(c)));
  for (let i = 0; i < problems; i++) labels.push(undefined);
  // Deterministic interleave so classes are not contiguous.
  labels.sort((a, b) => ((a ?? 99) * 7919) % 13 - ((b ?? 99) * 7919) % 13);
  return labels.map((label, index) => ({ index, id: `r${index}`, file: `/x/${index}.png`, label, problem: label === undefined ? 'bad' : undefined }));
}
const counts = (rs: DatasetRecord[]) => {
  const m: Record<string, number> = {};
  for (const r of rs) m[r.problem ? 'problem' : String(r.label)] = (m[r.problem ? 'problem' : String(r.label)] ?? 0) + 1;
  return m;
};

test('each class gets its proportional share; problems are a group of their own', () => {
  const rs = records([60, 30, 10], 5);
  const s = stratifiedSample(rs, 21, 0);
  assert.equal(s.length, 21);
  assert.deepEqual(counts(s), { '0': 12, '1': 6, '2': 2, problem: 1 });
});

test('largest remainder rounding: totals are exact and no share is off by more than one', () => {
  const rs = records([5, 3, 2]);
  for (let seed = 0; seed < 20; seed++) {
    const c = counts(stratifiedSample(rs, 5, seed));
    assert.equal(Object.values(c).reduce((a, b) => a + b, 0), 5);
    assert.ok(c['0'] >= 2 && c['0'] <= 3 && c['1'] >= 1 && c['1'] <= 2 && c['2'] === 1, JSON.stringify(c));
  }
});

test('the sample is deterministic per seed and in dataset order', () => {
  const rs = records([40, 25, 35]);
  const a = stratifiedSample(rs, 17, 123).map((r) => r.index);
  assert.deepEqual(stratifiedSample(rs, 17, 123).map((r) => r.index), a);
  assert.deepEqual([...a].sort((x, y) => x - y), a);
  assert.notDeepEqual(stratifiedSample(rs, 17, 124).map((r) => r.index), a);
  assert.equal(new Set(a).size, 17);
});

test('no limit or a limit at or above the size keeps everything; bad limits throw', () => {
  const rs = records([3, 2]);
  assert.deepEqual(stratifiedSample(rs, undefined), rs);
  assert.deepEqual(stratifiedSample(rs, 5), rs);
  assert.deepEqual(stratifiedSample(rs, 50), rs);
  assert.throws(() => stratifiedSample(rs, 0), SkepticInputError);
  assert.throws(() => stratifiedSample(rs, 2.5), SkepticInputError);
});

test('unlabelled records are sampled as one group', () => {
  const rs: DatasetRecord[] = Array.from({ length: 10 }, (_, index) => ({ index, id: String(index), file: '/x' }));
  const s = stratifiedSample(rs, 4, 9);
  assert.equal(s.length, 4);
  assert.deepEqual(stratifiedSample(rs, 4, 9), s);
});
