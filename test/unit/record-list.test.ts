/**
 * report/record-list.ts: probe records kept as JSON text read back as the same records, in image
 * order whatever order they came in, with artifacts set afterwards, and refused writes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordList } from '../../server/engine/report/record-list';

type Rec = { image: number; pred: number; conf?: number; top5?: number[]; artifacts?: string[] };

test('records come back equal, in image order, as an array-like view', () => {
  const list = new RecordList<Rec>();
  const input: Rec[] = [];
  // out of order inside "batches", as cache hits and computed records interleave
  for (const image of [2, 0, 1, 5, 3, 4, 6]) {
    const r: Rec = { pred: image % 3, conf: 1 / (image + 3), image };
    if (image % 2) r.top5 = [image, 1, 2];
    input.push(r);
    list.push(r);
  }
  // a record whose keys put image first is kept as it is
  list.push({ image: 7, pred: 1 });
  input.push({ image: 7, pred: 1 });
  const expected = [...input].sort((a, b) => a.image - b.image);
  assert.equal(list.view.length, 8);
  assert.deepEqual([...list.view], expected);
  assert.deepEqual(list.toArray(), expected);
  assert.deepEqual(JSON.parse(JSON.stringify(list.view)), expected);
  // key order as the record had it (records.jsonl and the cache write them so)
  assert.equal(JSON.stringify(list.view[0]), JSON.stringify(expected[0]));
  assert.equal(JSON.stringify(list.view[7]), JSON.stringify({ image: 7, pred: 1 }));
  assert.deepEqual(list.view.filter((r) => r.top5).map((r) => r.image), [1, 3, 5]);
  assert.deepEqual(list.byImage(5), expected[5]);
  assert.equal(list.byImage(42), undefined);

  list.setArtifacts(3, ['a.png']);
  assert.deepEqual(list.view[3].artifacts, ['a.png']);
  assert.equal(list.view[4].artifacts, undefined);
  list.trim();
  assert.deepEqual(list.view.map((r) => r.image), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => (list.view as Rec[]).push({ image: 9, pred: 0 }), TypeError, 'the view refuses writes');
});

test('many records over several chunks, one longer than a chunk', () => {
  const list = new RecordList<{ image: number; s: string }>();
  const long = 'x'.repeat((1 << 20) + 10);
  for (let i = 0; i < 30_000; i++) list.push({ image: i, s: i === 12_345 ? long : `r${i}`.repeat(10) });
  assert.equal(list.length, 30_000);
  assert.equal(list.view[12_345].s, long);
  assert.equal(list.view[29_999].s, 'r29999'.repeat(10));
  assert.equal(list.view[12_346].s, 'r12346'.repeat(10));
});
