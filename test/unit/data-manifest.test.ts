import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { openDataset } from '../../server/engine/data';
import { SkepticInputError } from '../../server/engine/errors';
import type { Dataset, DecodeSpec, LabelSet, Sample } from '../../server/engine/types';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const tmp = mkdtempSync(join(tmpdir(), 'skeptic-data-manifest-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const labelSet = (names: string[], extra: string[][] = []): LabelSet => ({
  names,
  keys: names.map((n, i) => [n.toLowerCase(), ...(extra[i] ?? [])]),
  source: 'test',
});
const byLine = (ds: Dataset) => new Map(ds.records.map((r) => [r.line, r]));
async function samples(ds: Dataset, spec: DecodeSpec = { channels: 3, height: 4, width: 4 }): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const b of ds.stream(spec, { batchSize: 8 })) out.push(...b);
  return out;
}

let dir: string;
before(async () => {
  dir = join(tmp, 'ds');
  mkdirSync(join(dir, 'img'), { recursive: true });
  for (const [name, c] of [['cat1.png', 10], ['cat2.png', 20], ['dog1.png', 30], ['dog 2.png', 40]] as const) {
    await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: c, g: c, b: c } } }).png().toFile(join(dir, 'img', name));
  }
  writeFileSync(join(dir, 'img', 'empty.png'), Buffer.alloc(0));
  writeFileSync(join(tmp, 'outside.png'), readFileSync(join(dir, 'img', 'cat1.png')));
});

test('CSV rows keep their 1-based line, through blank lines and quoted newlines', async () => {
  const csv = [
    'File,Label,Note', //                 1
    'img/cat1.png,cat,plain', //          2
    '', //                                3 (blank, skipped)
    'img/cat2.png,cat,"two', //           4  a quoted field over two lines
    'lines"', //                          5
    '"img/dog 2.png",dog,', //            6
    'img/dog1.png,,no label', //          7
    'img/missing.png,dog,', //            8
    '../outside.png,dog,', //             9
    ',dog,no path', //                    10
    'img/empty.png,dog,', //              11
    'img/dog1.png,hamster,', //           12
  ].join('\n');
  writeFileSync(join(dir, 'rows.csv'), csv + '\n');
  const ds = await openDataset(join(dir, 'rows.csv'));
  assert.equal(ds.kind, 'csv');
  assert.equal(ds.root, dir);
  assert.deepEqual(ds.records.map((r) => r.line), [2, 4, 6, 7, 8, 9, 10, 11, 12]);
  assert.ok(ds.records.every((r) => r.manifest === join(dir, 'rows.csv')));
  assert.deepEqual(ds.classes, ['cat', 'dog', 'hamster']);
  const r = byLine(ds);
  assert.equal(r.get(2)!.id, 'img/cat1.png');
  assert.equal(r.get(2)!.label, 0);
  assert.equal(r.get(6)!.id, 'img/dog 2.png');
  assert.equal(r.get(6)!.label, 1);
  assert.equal(r.get(2)!.problem, undefined);
  assert.equal(r.get(4)!.problem, undefined);
  assert.match(r.get(7)!.problem!, /^rows\.csv row 7: no label \(column "Label" is empty\)/);
  assert.equal(r.get(7)!.label, undefined);
  assert.match(r.get(8)!.problem!, /^rows\.csv row 8: img\/missing\.png: file not found/);
  assert.match(r.get(9)!.problem!, /^rows\.csv row 9: image path "\.\.\/outside\.png" points outside the manifest's folder/);
  assert.match(r.get(10)!.problem!, /^rows\.csv row 10: no image path/);
  assert.match(r.get(11)!.problem!, /^rows\.csv row 11: img\/empty\.png: file is empty \(0 bytes\)/);
  assert.equal(r.get(12)!.problem, undefined); // no LabelSet: "hamster" is just another class
  assert.match(ds.warnings.join('\n'), /class names and the model has no class list/);

  const got = await samples(ds);
  assert.deepEqual(got.map((s) => s.record.line), [2, 4, 6, 12]);
  assert.equal(got[0].image!.data[0], Math.fround(10 / 255));
  assert.ok(got.every((s) => !s.error));
});

test('CRLF files and \\r\\n inside quoted fields keep correct lines', async () => {
  const csv = 'path,label\r\nimg/cat1.png,0\r\n\r\nimg/cat2.png,"1\r\n"\r\n"img/dog1.png",1\r\nimg/dog1.png,\r\n';
  writeFileSync(join(dir, 'crlf.csv'), '\ufeff' + csv);
  const ds = await openDataset(join(dir, 'crlf.csv'));
  assert.deepEqual(ds.records.map((r) => r.line), [2, 4, 6, 7]);
  assert.deepEqual(ds.records.map((r) => r.label), [0, 1, 1, undefined]);
  assert.match(ds.records[3].problem!, /row 7: no label/);
  assert.match(ds.warnings.join(), /more than once/);
});

test('a CSV syntax error becomes a problem on its row', async () => {
  writeFileSync(join(dir, 'broken.csv'), 'path,label\nimg/cat1.png,0\nimg/cat2.png,"0\n');
  const ds = await openDataset(join(dir, 'broken.csv'));
  assert.equal(ds.records[0].problem, undefined);
  assert.equal(ds.records.length, 2);
  assert.match(ds.records[1].problem!, /^broken\.csv row 3: CSV syntax error/);
});

test('JSONL rows: numbers and names, bad JSON, blank lines', async () => {
  const lines = [
    '{"image": "img/cat1.png", "class_index": 0}', // 1
    '', //                                           2
    '{"image": "img/dog1.png", "class_index": "1"}', // 3
    '{"image": "img/cat2.png", "class_index": 5}', //  4 out of range for a 2-class model
    'not json', //                                     5
    '[1, 2]', //                                       6
    '{"image": "img/dog 2.png"}', //                   7 no label
  ];
  writeFileSync(join(dir, 'rows.jsonl'), lines.join('\n'));
  const ds = await openDataset(join(dir, 'rows.jsonl'), { labels: labelSet(['cat', 'dog']) });
  assert.equal(ds.kind, 'jsonl');
  assert.deepEqual(ds.records.map((r) => r.line), [1, 3, 4, 5, 6, 7]);
  assert.deepEqual(ds.records.map((r) => r.label), [0, 1, undefined, undefined, undefined, undefined]);
  const r = byLine(ds);
  assert.match(r.get(4)!.problem!, /row 4: label 5 is out of range: the model has 2 classes/);
  assert.match(r.get(5)!.problem!, /^rows\.jsonl row 5: invalid JSON/);
  assert.match(r.get(6)!.problem!, /row 6: not a JSON object/);
  assert.match(r.get(7)!.problem!, /row 7: no label/);
  assert.equal(r.get(5)!.file, join(dir, 'rows.jsonl'));
  // .ndjson is the same format
  writeFileSync(join(dir, 'rows.ndjson'), lines[0]);
  assert.equal((await openDataset(join(dir, 'rows.ndjson'))).kind, 'jsonl');
});

test('name labels map through the LabelSet, case-insensitively and by alias; unknown names are problems', async () => {
  writeFileSync(join(dir, 'names.csv'), 'filename,class_name\nimg/cat1.png, CAT \nimg/dog1.png,n02084071\nimg/cat2.png,Pencil_Sharpener\nimg/dog 2.png,unicorn\n');
  const labels = labelSet(['pencil sharpener', 'cat', 'dog'], [[], [], ['n02084071']]);
  const ds = await openDataset(join(dir, 'names.csv'), { labels });
  assert.deepEqual(ds.records.map((r) => r.label), [1, 2, 0, undefined]);
  assert.deepEqual(ds.records.map((r) => r.labelName), ['CAT', 'n02084071', 'Pencil_Sharpener', 'unicorn']);
  assert.match(ds.records[3].problem!, /names\.csv row 5: label "unicorn" is not one of the model's classes/);
  assert.match(ds.warnings.join(), /1 label names are not among the model's classes \("unicorn"\)/);
  assert.deepEqual(ds.classes, ['CAT', 'Pencil_Sharpener', 'n02084071', 'unicorn']);
});

test('an index column is preferred over a name column; overrides and errors', async () => {
  writeFileSync(join(dir, 'both.csv'), 'class_name,path,class_index,extra\ncat,img/cat1.png,0,x\ndog,img/dog1.png,1,y\ncat,img/cat2.png,0,z\n');
  const ds = await openDataset(join(dir, 'both.csv'));
  assert.deepEqual(ds.records.map((r) => [r.label, r.labelName]), [[0, 'cat'], [1, 'dog'], [0, 'cat']]);
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.equal(ds.warnings.length, 0);

  const named = await openDataset(join(dir, 'both.csv'), { labelColumn: 'CLASS_NAME', labels: labelSet(['dog', 'cat']) });
  assert.deepEqual(named.records.map((r) => r.label), [1, 0, 1]);
  writeFileSync(join(dir, 'custom.csv'), 'where,what\nimg/cat1.png,1\n');
  const custom = await openDataset(join(dir, 'custom.csv'), { pathColumn: 'Where', labelColumn: 'what' });
  assert.deepEqual(custom.records.map((r) => [r.id, r.label]), [['img/cat1.png', 1]]);

  await assert.rejects(openDataset(join(dir, 'custom.csv')), (e: Error) =>
    e instanceof SkepticInputError && e.file === join(dir, 'custom.csv') && /no image path column/.test(e.message) && /"where", "what"/.test(e.message));
  await assert.rejects(openDataset(join(dir, 'both.csv'), { labelColumn: 'nope' }), /no column "nope"/);
  writeFileSync(join(dir, 'empty.csv'), '\n\n');
  await assert.rejects(openDataset(join(dir, 'empty.csv')), /is empty/);
  writeFileSync(join(dir, 'header-only.csv'), 'path,label\n');
  await assert.rejects(openDataset(join(dir, 'header-only.csv')), /no rows/);
});

test('headerless CSV and a manifest without labels', async () => {
  writeFileSync(join(dir, 'bare.csv'), 'img/cat1.png,1\nimg/dog1.png,0\n');
  const bare = await openDataset(join(dir, 'bare.csv'));
  assert.deepEqual(bare.records.map((r) => [r.line, r.label]), [[1, 1], [2, 0]]);
  assert.match(bare.warnings.join(), /no header row/);
  writeFileSync(join(dir, 'nolabel.csv'), 'path,score\nimg/cat1.png,0.5\n');
  const nl = await openDataset(join(dir, 'nolabel.csv'));
  assert.equal(nl.records[0].label, undefined);
  assert.equal(nl.records[0].problem, undefined);
  assert.match(nl.warnings.join(), /no label column/);
});

test('--limit on a manifest is stratified, counts problem rows as a group, and keeps order', async () => {
  const rows = ['path,label'];
  for (let i = 0; i < 40; i++) rows.push(`img/${['cat1', 'cat2', 'dog1'][i % 3]}.png,${i % 4 === 0 ? 1 : 0}`);
  for (let i = 0; i < 10; i++) rows.push('img/missing.png,0');
  writeFileSync(join(dir, 'big.csv'), rows.join('\n'));
  const ds = await openDataset(join(dir, 'big.csv'), { limit: 10, seed: 42 });
  assert.equal(ds.total, 50);
  const count = (p: (r: (typeof ds.records)[number]) => boolean) => ds.records.filter(p).length;
  assert.equal(count((r) => !!r.problem), 2); // 10/50 of 10
  assert.equal(count((r) => !r.problem && r.label === 1), 2); // 10/50
  assert.equal(count((r) => !r.problem && r.label === 0), 6); // 30/50
  assert.deepEqual(ds.records.map((r) => r.line), [...ds.records.map((r) => r.line!)].sort((a, b) => a - b));
});

const fixtures = existsSync(FIXTURES);

test('real fixture: imagenet_samples/labels.csv (grayscale JPEG decodes to 3 channels)', async (t) => {
  if (!fixtures) return t.skip(`fixtures folder ${FIXTURES} is absent`);
  const file = join(FIXTURES, 'imagenet_samples', 'labels.csv');
  const ds = await openDataset(file);
  assert.equal(ds.total, 100);
  assert.equal(ds.records.filter((r) => r.problem).length, 0);
  const csvRows = readFileSync(file, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  assert.deepEqual(ds.records.map((r) => r.label), csvRows.map((c) => Number(c[1])));
  assert.deepEqual(ds.records.map((r) => r.line), csvRows.map((_, i) => i + 2));
  // The model's labels by WNID map the wnid column to the same indices.
  const wnids = readFileSync(join(FIXTURES, 'labels', 'imagenet_1k_wnids_names.txt'), 'utf8').trim().split('\n').map((l) => l.split(/\s+/)[0]);
  const byWnid = await openDataset(file, { labelColumn: 'wnid', labels: { names: wnids, keys: wnids.map((w) => [w.toLowerCase()]), source: 'test' } });
  assert.deepEqual(byWnid.records.map((r) => r.label), csvRows.map((c) => Number(c[1])));

  const pencil = ds.records.filter((r) => r.id.endsWith('n03908714_pencil_sharpener.JPEG'));
  assert.equal(pencil.length, 1);
  assert.equal((await sharp(pencil[0].file).metadata()).channels, 1);
  const all = await samples(ds, { channels: 3, height: 224, width: 224, resizeShortSide: 256 });
  const s = all.find((x) => x.record.id === pencil[0].id)!;
  assert.equal(s.error, undefined);
  assert.equal(s.image!.channels, 3);
  assert.equal(s.image!.data.length, 3 * 224 * 224);
  const n = 224 * 224;
  assert.deepEqual(s.image!.data.subarray(0, n), s.image!.data.subarray(n, 2 * n));
  assert.ok(all.every((x) => !x.error && x.image!.height === 224));
});

test('real fixture: cifar10_test_first100/labels.csv', async (t) => {
  if (!fixtures) return t.skip(`fixtures folder ${FIXTURES} is absent`);
  const ds = await openDataset(join(FIXTURES, 'cifar10_test_first100', 'labels.csv'));
  assert.equal(ds.total, 100);
  assert.equal(ds.records[0].label, 3);
  assert.equal(ds.records[0].labelName, 'cat');
  assert.equal(ds.records[1].label, 8);
  const names = readFileSync(join(FIXTURES, 'labels', 'cifar10_classes.txt'), 'utf8').trim().split(/\r?\n/).map((s) => s.trim());
  assert.deepEqual(ds.classes, names);
  const got = await samples(ds, { channels: 3, height: 32, width: 32 });
  assert.equal(got.length, 100);
  assert.ok(got.every((s) => !s.error && s.image!.data.length === 3 * 32 * 32));
  // The folder holding labels.csv + images/ is read through its manifest.
  const viaFolder = await openDataset(join(FIXTURES, 'cifar10_test_first100'));
  assert.equal(viaFolder.kind, 'csv');
  assert.equal(viaFolder.total, 100);
});
