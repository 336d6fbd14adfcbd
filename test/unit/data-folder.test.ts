import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { openDataset } from '../../server/engine/data';
import { CancelledError, SkepticInputError } from '../../server/engine/errors';
import type { LabelSet, Sample } from '../../server/engine/types';

const tmp = mkdtempSync(join(tmpdir(), 'skeptic-data-folder-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const solid = (r: number, g: number, b: number, size = 4) =>
  sharp({ create: { width: size, height: size, channels: 3, background: { r, g, b } } });
const labelSet = (names: string[]): LabelSet => ({ names, keys: names.map((n) => [n.toLowerCase()]), source: 'test' });
const spec = { channels: 3 as const, height: 4, width: 4 };

async function all(ds: Awaited<ReturnType<typeof openDataset>>, batchSize = 3, extra = {}): Promise<Sample[][]> {
  const out: Sample[][] = [];
  for await (const b of ds.stream(spec, { batchSize, ...extra })) out.push(b);
  return out;
}

let root: string;
before(async () => {
  root = join(tmp, 'pets');
  for (const d of ['cat', 'dog', 'dog/sub', '.hidden', 'empty']) mkdirSync(join(root, d), { recursive: true });
  await solid(255, 0, 0).png().toFile(join(root, 'cat', 'a.png'));
  await solid(0, 255, 0).jpeg().toFile(join(root, 'cat', 'b.jpg'));
  const good = await solid(0, 0, 255, 32).png({ compressionLevel: 0 }).toBuffer();
  writeFileSync(join(root, 'cat', 'c_truncated.png'), good.subarray(0, good.length >> 1));
  writeFileSync(join(root, 'cat', 'd_empty.jpg'), Buffer.alloc(0));
  writeFileSync(join(root, 'cat', 'e_text.png'), 'this is not an image\n');
  writeFileSync(join(root, 'cat', 'README.txt'), 'ignored');
  await sharp(Buffer.from([9, 9, 9, 9]), { raw: { width: 2, height: 2, channels: 1 } }).png().toFile(join(root, 'dog', 'z_gray.png'));
  await sharp(Buffer.alloc(64, 200), { raw: { width: 4, height: 4, channels: 4 } }).png().toFile(join(root, 'dog', 'm_rgba.png'));
  await solid(1, 2, 3).png().toFile(join(root, 'dog', 'sub', 'x.png'));
  await solid(1, 2, 3).png().toFile(join(root, '.hidden', 'h.png'));
  await solid(1, 2, 3).png().toFile(join(root, 'dog', '._apple_double.png'));
  await solid(1, 2, 3).png().toFile(join(root, 'stray.png'));
  symlinkSync(join(root, 'nowhere.png'), join(root, 'dog', 'n_broken.png'));
});

test('an ImageFolder lists classes, files in torchvision order, and flags unusable files', async () => {
  const ds = await openDataset(root);
  assert.equal(ds.kind, 'folder');
  assert.equal(ds.root, root);
  assert.deepEqual(ds.classes, ['cat', 'dog', 'empty']);
  assert.deepEqual(
    ds.records.map((r) => r.id),
    ['cat/a.png', 'cat/b.jpg', 'cat/c_truncated.png', 'cat/d_empty.jpg', 'cat/e_text.png', 'dog/m_rgba.png', 'dog/n_broken.png', 'dog/z_gray.png', 'dog/sub/x.png'],
  );
  assert.deepEqual(ds.records.map((r) => r.index), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(ds.total, 9);
  assert.deepEqual(ds.records.map((r) => r.label), [0, 0, 0, 0, 0, 1, 1, 1, 1]);
  assert.equal(ds.records[0].labelName, 'cat');
  assert.equal(ds.records[0].file, join(root, 'cat', 'a.png'));
  assert.match(ds.records[3].problem!, /cat\/d_empty\.jpg: file is empty \(0 bytes\)/);
  assert.match(ds.records[6].problem!, /dog\/n_broken\.png: file not found/);
  assert.equal(ds.records.filter((r) => r.problem).length, 2);
  const w = ds.warnings.join('\n');
  assert.match(w, /sorted folder name/);
  assert.match(w, /without images: "empty"/);
  assert.match(w, /1 file\(s\) without an image extension/);
  assert.match(w, /stray\.png/);
});

test('stream() decodes in order, in batches, and reports decode failures per file', async () => {
  const ds = await openDataset(root, { concurrency: 3 });
  const batches = await all(ds, 3);
  assert.deepEqual(batches.map((b) => b.length), [3, 3, 1]);
  const samples = batches.flat();
  assert.deepEqual(samples.map((s) => s.record.id), ['cat/a.png', 'cat/b.jpg', 'cat/c_truncated.png', 'cat/e_text.png', 'dog/m_rgba.png', 'dog/z_gray.png', 'dog/sub/x.png']);
  const byId = new Map(samples.map((s) => [s.record.id, s]));
  assert.match(byId.get('cat/c_truncated.png')!.error!, /^cat\/c_truncated\.png: corrupt or truncated image/);
  assert.match(byId.get('cat/e_text.png')!.error!, /^cat\/e_text\.png: not an image: the file is a text file/);
  for (const id of ['cat/c_truncated.png', 'cat/e_text.png']) assert.equal(byId.get(id)!.image, undefined);
  const a = byId.get('cat/a.png')!;
  assert.equal(a.sha256, createHash('sha256').update(readFileSync(join(root, 'cat', 'a.png'))).digest('hex'));
  assert.equal(a.margin, 0);
  assert.deepEqual(Array.from(a.image!.data.subarray(0, 16)), new Array(16).fill(1));
  assert.equal(byId.get('dog/z_gray.png')!.image!.data[0], Math.fround(9 / 255));
  assert.equal(byId.get('dog/z_gray.png')!.image!.height, 4);
});

test('wantImage=false skips decoding but still hashes', async () => {
  const ds = await openDataset(root);
  const asked: string[] = [];
  const samples = (await all(ds, 4, { wantImage: (r: { id: string }, sha: string) => (asked.push(`${r.id}:${sha.length}`), r.id === 'cat/b.jpg') })).flat();
  assert.equal(asked.length, 7);
  assert.ok(asked.every((s) => s.endsWith(':64')));
  for (const s of samples) {
    if (s.record.id === 'cat/b.jpg') assert.ok(s.image);
    else {
      assert.equal(s.image, undefined);
      if (!s.error) assert.equal(s.sha256!.length, 64);
    }
  }
  // The text file is hashed, not decoded, so it has no error here.
  assert.equal(samples.find((s) => s.record.id === 'cat/e_text.png')!.error, undefined);
});

test('an aborted signal stops the stream with CancelledError; an early break closes it', async () => {
  const ds = await openDataset(root);
  const ctl = new AbortController();
  await assert.rejects(async () => {
    for await (const _ of ds.stream(spec, { batchSize: 1, signal: ctl.signal })) ctl.abort();
  }, CancelledError);
  let n = 0;
  for await (const _ of ds.stream(spec, { batchSize: 2 })) if (++n === 1) break;
  assert.equal(n, 1);
});

test('folder names matching the model classes use those indices', async () => {
  const ds = await openDataset(root, { labels: labelSet(['Dog', 'bird', 'CAT', 'Empty']) });
  assert.deepEqual([...new Set(ds.records.map((r) => `${r.labelName}=${r.label}`))], ['cat=2', 'dog=0']);
  assert.equal(ds.warnings.some((w) => /sorted folder name/.test(w)), false);
  // Partial matches fall back to sorted order, and say which folders did not match.
  const partial = await openDataset(root, { labels: labelSet(['dog', 'cat']) });
  assert.deepEqual([...new Set(partial.records.map((r) => r.label))], [0, 1]);
  assert.match(partial.warnings.join('\n'), /"empty" do not match the model's classes \(test\); classes are numbered by sorted folder name/);
});

test('integer folder names are class indices', async () => {
  const r = join(tmp, 'digits');
  for (const d of ['0', '1', '2', '10']) {
    mkdirSync(join(r, d), { recursive: true });
    await solid(0, 0, 0).png().toFile(join(r, d, 'i.png'));
  }
  const ds = await openDataset(r);
  assert.deepEqual(ds.classes, ['0', '1', '10', '2']);
  assert.deepEqual(ds.records.map((x) => x.label), [0, 1, 10, 2]);
  assert.match(ds.warnings.join('\n'), /integer names/);
  // Out of the model's range: sorted order, with a warning.
  const small = await openDataset(r, { labels: labelSet(['a', 'b', 'c']) });
  assert.deepEqual(small.records.map((x) => x.label), [0, 1, 2, 3]);
});

test('a folder of images without class folders is an unlabelled set; empty or missing folders throw', async () => {
  const flat = join(tmp, 'flat');
  mkdirSync(flat);
  await solid(5, 5, 5).png().toFile(join(flat, 'b.png'));
  await solid(5, 5, 5).webp().toFile(join(flat, 'a.webp'));
  writeFileSync(join(flat, 'notes.md'), '# notes');
  const ds = await openDataset(flat);
  assert.equal(ds.classes, undefined);
  assert.deepEqual(ds.records.map((r) => [r.id, r.label]), [['a.webp', undefined], ['b.png', undefined]]);
  assert.match(ds.warnings.join(), /unlabelled/);

  const empty = join(tmp, 'nothing');
  mkdirSync(join(empty, 'cls'), { recursive: true });
  await assert.rejects(openDataset(empty), (e: Error) => e instanceof SkepticInputError && e.file === empty && /holds no images/.test(e.message));
  mkdirSync(join(tmp, 'void'));
  await assert.rejects(openDataset(join(tmp, 'void')), SkepticInputError);
  await assert.rejects(openDataset(join(tmp, 'does-not-exist')), (e: Error) => e instanceof SkepticInputError && /dataset not found: .*does-not-exist/.test(e.message));
  await assert.rejects(openDataset(join(flat, 'b.png')), /is a single image/);
});

test('--limit on a folder keeps dataset order and class shares', async () => {
  const r = join(tmp, 'many');
  for (const [cls, n] of [['a', 6], ['b', 3]] as const) {
    mkdirSync(join(r, cls), { recursive: true });
    for (let i = 0; i < n; i++) await solid(i, 0, 0, 2).png().toFile(join(r, cls, `${i}.png`));
  }
  const ds = await openDataset(r, { limit: 3, seed: 7 });
  assert.equal(ds.total, 9);
  assert.equal(ds.records.length, 3);
  assert.deepEqual(ds.records.map((x) => x.label), [0, 0, 1]);
  assert.deepEqual([...ds.records].sort((x, y) => x.index - y.index), ds.records);
  const streamed = (await all(ds)).flat().map((s) => s.record.index);
  assert.deepEqual(streamed, ds.records.map((x) => x.index));
  assert.deepEqual((await openDataset(r, { limit: 3, seed: 7 })).records.map((x) => x.index), ds.records.map((x) => x.index));
});
