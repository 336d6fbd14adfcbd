import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { openDataset } from '../../server/engine/data';
import { SkepticInputError } from '../../server/engine/errors';
import type { Dataset, DecodeSpec, LabelSet, Sample } from '../../server/engine/types';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const MNIST = join(FIXTURES, 'mnist');
const IMAGES = 't10k-00000-04999-images-idx3-ubyte.gz';
const tmp = mkdtempSync(join(tmpdir(), 'skeptic-data-idx-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function samples(ds: Dataset, spec: DecodeSpec = { channels: 1, height: 28, width: 28 }, batchSize = 64): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const b of ds.stream(spec, { batchSize })) {
    assert.ok(b.length <= batchSize);
    out.push(...b);
  }
  return out;
}

/** Writes an idx pair: n images of h×w where image i is filled with value i, labels i % 10. */
function writeIdx(dir: string, n: number, h = 2, w = 3, opts: { gz?: boolean; magic?: number; labelCount?: number; cut?: number } = {}) {
  mkdirSync(dir, { recursive: true });
  const img = Buffer.alloc(16 + n * h * w);
  [opts.magic ?? 0x803, n, h, w].forEach((v, i) => img.writeUInt32BE(v, 4 * i));
  for (let i = 0; i < n; i++) img.fill(i, 16 + i * h * w, 16 + (i + 1) * h * w);
  const lab = Buffer.alloc(8 + n);
  [0x801, opts.labelCount ?? n].forEach((v, i) => lab.writeUInt32BE(v, 4 * i));
  for (let i = 0; i < n; i++) lab[8 + i] = i % 10;
  const body = img.subarray(0, img.length - (opts.cut ?? 0));
  const ext = opts.gz ? '.gz' : '';
  writeFileSync(join(dir, `set-images-idx3-ubyte${ext}`), opts.gz ? gzipSync(body) : body);
  writeFileSync(join(dir, `set-labels-idx1-ubyte${ext}`), opts.gz ? gzipSync(lab) : lab);
}

test('real fixture: MNIST idx (5000 items, labels 7,2,1,0,4, pixels match an independent read)', async (t) => {
  if (!existsSync(MNIST)) return t.skip(`fixtures folder ${MNIST} is absent`);
  const ds = await openDataset(MNIST);
  assert.equal(ds.kind, 'idx');
  assert.equal(ds.total, 5000);
  assert.equal(ds.records.length, 5000);
  assert.deepEqual(ds.records.slice(0, 5).map((r) => r.label), [7, 2, 1, 0, 4]);
  assert.equal(ds.records[0].id, `${IMAGES}#0`);
  assert.equal(ds.records[0].file, join(MNIST, IMAGES));
  assert.equal(ds.records[4999].index, 4999);

  const raw = gunzipSync(readFileSync(join(MNIST, IMAGES)));
  assert.equal(raw.readUInt32BE(4), 5000);
  const first = raw.subarray(16, 16 + 784);
  const got = await samples(ds);
  assert.equal(got.length, 5000);
  const img = got[0].image!;
  assert.equal(img.channels, 1);
  assert.equal(img.height, 28);
  let sum = 0;
  for (const v of img.data) sum += v;
  let want = 0;
  for (const v of first) want += v / 255;
  assert.ok(Math.abs(sum - want) < 1e-3, `pixel sum ${sum} vs ${want}`);
  assert.equal(got[0].sha256, createHash('sha256').update(first).digest('hex'));
  const last = raw.subarray(16 + 4999 * 784, 16 + 5000 * 784);
  assert.deepEqual(Array.from(got[4999].image!.data), Array.from(last, (v) => Math.fround(v / 255)));
  // Three channels and a resize (28 → 32) work on idx data too.
  const small = await openDataset(join(MNIST, IMAGES), { limit: 3 });
  const rgb = await samples(small, { channels: 3, height: 32, width: 32, margin: 2 });
  assert.equal(rgb[0].image!.data.length, 3 * 36 * 36);
});

test('stream() on idx with --limit yields exactly the selected items, in order', async (t) => {
  if (!existsSync(MNIST)) return t.skip(`fixtures folder ${MNIST} is absent`);
  const ds = await openDataset(MNIST, { limit: 50, seed: 3 });
  assert.equal(ds.records.length, 50);
  const raw = gunzipSync(readFileSync(join(MNIST, IMAGES)));
  const got = await samples(ds, undefined, 8);
  assert.deepEqual(got.map((s) => s.record.index), ds.records.map((r) => r.index));
  for (const s of got) {
    const i = s.record.index;
    assert.equal(s.sha256, createHash('sha256').update(raw.subarray(16 + i * 784, 16 + (i + 1) * 784)).digest('hex'));
  }
  // Stratified: every digit present, the counts follow the label frequencies (±1).
  const freq = new Map<number, number>();
  (await openDataset(MNIST)).records.forEach((r) => freq.set(r.label!, (freq.get(r.label!) ?? 0) + 1));
  for (const [digit, n] of freq) {
    const k = ds.records.filter((r) => r.label === digit).length;
    assert.ok(Math.abs(k - (50 * n) / 5000) < 1, `digit ${digit}: ${k}`);
  }
});

test('synthetic idx: raw and gzipped files, selected items and labels', async () => {
  for (const gz of [false, true]) {
    const dir = join(tmp, gz ? 'gz' : 'raw');
    writeIdx(dir, 12, 2, 3, { gz });
    const ds = await openDataset(dir, { limit: 4, seed: 1 });
    assert.equal(ds.total, 12);
    const got = await samples(ds, { channels: 1, height: 2, width: 3 }, 3);
    assert.deepEqual(got.map((s) => s.record.index), ds.records.map((r) => r.index));
    for (const s of got) {
      assert.deepEqual(Array.from(s.image!.data), new Array(6).fill(Math.fround(s.record.index / 255)));
      assert.equal(s.record.label, s.record.index % 10);
    }
  }
  // Labels beyond the model's classes are problems, not crashes.
  const labels: LabelSet = { names: ['a', 'b', 'c'], keys: [['a'], ['b'], ['c']], source: 'test' };
  const ds = await openDataset(join(tmp, 'raw'), { labels });
  assert.match(ds.records[5].problem!, /set-images-idx3-ubyte#5: label 5 is out of range/);
  assert.equal((await samples(ds, { channels: 1, height: 2, width: 3 })).length, 5 /* indices 0–2, 10 and 11 */);
});

test('broken idx files: wrong header throws, truncation is reported', async () => {
  writeIdx(join(tmp, 'magic'), 3, 2, 2, { magic: 0x802 });
  await assert.rejects(openDataset(join(tmp, 'magic')), (e: Error) =>
    e instanceof SkepticInputError && /set-images-idx3-ubyte/.test(e.file ?? '') && /not an IDX uint8 images file/.test(e.message));
  writeIdx(join(tmp, 'count'), 3, 2, 2, { labelCount: 4 });
  await assert.rejects(openDataset(join(tmp, 'count')), /holds 3 images but .* holds 4 labels/);
  writeIdx(join(tmp, 'cut'), 3, 2, 2, { cut: 2 });
  await assert.rejects(openDataset(join(tmp, 'cut')), /is truncated/);
  mkdirSync(join(tmp, 'nolabels'));
  writeFileSync(join(tmp, 'nolabels', 'x-images-idx3-ubyte'), Buffer.alloc(16));
  await assert.rejects(openDataset(join(tmp, 'nolabels')), /no IDX labels file/);

  // A gzipped file cut short: a warning at listing, then an error for each item that is missing.
  writeIdx(join(tmp, 'gzcut'), 4, 2, 2, { gz: true, cut: 6 });
  const ds = await openDataset(join(tmp, 'gzcut'));
  assert.match(ds.warnings.join(), /may be truncated/);
  const got = await samples(ds, { channels: 1, height: 2, width: 2 });
  assert.deepEqual(got.map((s) => !!s.image), [true, true, false, false]);
  assert.match(got[2].error!, /set-images-idx3-ubyte\.gz#2: cannot read the item .* \(the file ended early\)/);
});
