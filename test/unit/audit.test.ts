/**
 * The audit loop with in-memory model and data: findings for bad items, determinism, the
 * results cache, and cancellation that keeps what finished.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { audit } from '../../server/engine/audit';
import { createProbes } from '../../server/engine/probes';
import type { Report } from '../../server/engine/report/schema';
import { fakeDataset, fakeModel, gray, type FakeItem } from './helpers/fake';

// 2×2 grayscale images; class = index of the brightest of the four pixels.
const model = () =>
  fakeModel({ height: 2, width: 2, numClasses: 4, logits: (px) => [...px].map((v) => 10 * v), labels: ['tl', 'tr', 'bl', 'br'] });

function items(n: number): FakeItem[] {
  return Array.from({ length: n }, (_, i) => {
    const px = [0, 0, 0, 0];
    px[i % 4] = 1;
    // every fifth image is labelled wrongly, so accuracy is 80% when no item fails
    return { id: `img${i}.png`, label: i % 5 === 4 ? (i + 1) % 4 : i % 4, image: gray([px.slice(0, 2), px.slice(2)]) };
  });
}

const stripRun = (r: Report) => ({ ...r, run: undefined });

test('bad items become findings on their rows and the rest is audited', async () => {
  const data = items(10);
  data[3] = { id: 'broken.png', label: 1, error: 'broken.png: not a PNG file (bad signature)' };
  data[6] = { id: 'outside.png', problem: 'row 8: path ../outside.png escapes the dataset root' };
  const report = await audit(model(), fakeDataset(data), { probes: createProbes(['clean']), batchSize: 4 });
  assert.equal(report.dataset.selected, 10);
  assert.equal(report.dataset.evaluated, 8);
  assert.equal(report.probes.clean.count, 8);
  const dataFindings = report.findings.filter((f) => f.probe === 'data');
  assert.deepEqual(
    dataFindings.map((f) => [f.rule, f.subject.path, f.subject.line, f.severity]),
    [
      ['data/unreadable-image', '/data/manifest.csv', 5, 'error'],
      ['data/unusable-item', '/data/manifest.csv', 8, 'error'],
    ],
  );
  assert.match(dataFindings[0].message, /broken\.png: not a PNG/);
  // items 0..9 minus 3 and 6; wrong labels at 4 and 9 ⇒ 6 of 8 right
  assert.equal((report.probes.clean.metrics as any).accuracy, 0.75);
});

test('the same inputs and seed give the same report, and the cache serves the second run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cache-'));
  try {
    const probes = () => createProbes(['clean', 'shift'], { shift: { k: 1, embedPositions: 2 } });
    const m1 = model();
    // the shift probe needs one pixel of context: give images a 1-pixel black frame
    const framed = items(12).map((it) => ({ ...it, image: frame(it.image!) }));
    const r1 = await audit(m1, fakeDataset(framed, 1), { probes: probes(), batchSize: 5, cacheDir: dir, seed: 3 });
    assert.equal(r1.run.cache.hits, 0);
    assert.ok(m1.imagesSeen > 0);
    assert.ok(readdirSync(dir).length > 0, 'cache written');

    const m2 = model();
    const d2 = fakeDataset(framed, 1);
    const r2 = await audit(m2, d2, { probes: probes(), batchSize: 5, cacheDir: dir, seed: 3 });
    assert.equal(m2.imagesSeen, 0, 'nothing recomputed');
    assert.equal(d2.decoded, 0, 'nothing decoded');
    assert.equal(r2.run.cache.hits, 24);
    assert.deepEqual(stripRun(r2), stripRun(r1));

    // Another seed is another key: recomputed, and still deterministic against a fresh run.
    const r3 = await audit(model(), fakeDataset(framed, 1), { probes: probes(), batchSize: 5, cacheDir: dir, seed: 4 });
    assert.equal(r3.run.cache.hits, 0);
    const r4 = await audit(model(), fakeDataset(framed, 1), { probes: probes(), batchSize: 5, seed: 4 });
    assert.deepEqual(stripRun(r4), stripRun(r3));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn cache segment is ignored whole and recomputed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cache-'));
  try {
    // batches of 2: two segments of two entries each
    await audit(model(), fakeDataset(items(4)), { probes: createProbes(['clean']), cacheDir: dir, batchSize: 2 });
    const sub = join(dir, readdirSync(dir)[0]);
    const folder = join(sub, readdirSync(sub)[0]);
    const segments = readdirSync(folder).filter((f) => f.endsWith('.seg')).sort();
    assert.equal(segments.length, 2);
    const file = join(folder, segments[0]);
    const text = readFileSync(file, 'utf8');
    const { writeFileSync } = await import('node:fs');
    // a half-written segment: its entries are whole lines, but the trailer does not match
    writeFileSync(file, text.slice(0, text.length - 20));
    const m = model();
    const r = await audit(m, fakeDataset(items(4)), { probes: createProbes(['clean']), cacheDir: dir, batchSize: 2 });
    assert.equal(r.run.cache.hits, 2);
    assert.equal(m.imagesSeen, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cache file of the older format (one JSON Lines file, torn last line) is still read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cache-'));
  try {
    await audit(model(), fakeDataset(items(4)), { probes: createProbes(['clean']), cacheDir: dir });
    const sub = join(dir, readdirSync(dir)[0]);
    const folder = join(sub, readdirSync(sub)[0]);
    const seg = readFileSync(join(folder, readdirSync(folder)[0]), 'utf8').trimEnd().split('\n');
    const lines = seg.slice(0, -1); // the entries, without the trailer
    assert.equal(lines.length, 4);
    const { writeFileSync } = await import('node:fs');
    rmSync(folder, { recursive: true });
    writeFileSync(`${folder}.jsonl`, lines.slice(0, 3).join('\n') + '\n' + lines[3].slice(0, 10));
    const m = model();
    const r = await audit(m, fakeDataset(items(4)), { probes: createProbes(['clean']), cacheDir: dir });
    assert.equal(r.run.cache.hits, 3);
    assert.equal(m.imagesSeen, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cancelling keeps the batches that finished', async () => {
  const controller = new AbortController();
  const m = model();
  const report = await audit(m, fakeDataset(items(20)), {
    probes: createProbes(['clean']),
    batchSize: 5,
    signal: controller.signal,
    onProgress: (p) => {
      if (p.done >= 10) controller.abort();
    },
  });
  assert.equal(report.run.cancelled, true);
  assert.equal(report.probes.clean.status, 'cancelled');
  assert.equal(report.probes.clean.count, 10);
  assert.equal(report.probes.clean.records.length, 10);
});

test('a probe that throws is reported as failed; the others finish', async () => {
  const probes = createProbes(['clean']);
  const broken = { ...probes[0], id: 'broken', title: 'Broken', run: async () => { throw new Error('boom'); } };
  const report = await audit(model(), fakeDataset(items(6)), { probes: [probes[0], broken], batchSize: 4 });
  assert.equal(report.probes.clean.status, 'ok');
  assert.equal(report.probes.broken.status, 'failed');
  assert.match(report.probes.broken.reason!, /boom/);
  assert.ok(report.warnings.some((w) => /broken failed: boom/.test(w)));
});

function frame(img: { data: Float32Array; channels: 1 | 3; height: number; width: number }) {
  const rows: number[][] = [];
  for (let y = -1; y <= img.height; y++) {
    const row: number[] = [];
    for (let x = -1; x <= img.width; x++) row.push(y < 0 || x < 0 || y >= img.height || x >= img.width ? 0 : img.data[y * img.width + x]);
    rows.push(row);
  }
  return gray(rows);
}

test('a probe with an image limit sees only the first images in dataset order, cached or not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cache-'));
  try {
    const seen: string[] = [];
    const [clean] = createProbes(['clean']);
    const capped = {
      ...clean,
      id: 'capped',
      imageLimit: () => 3,
      async run(images: Parameters<typeof clean.run>[0], ctx: Parameters<typeof clean.run>[1]) {
        seen.push(...images.map((i) => i.record.id));
        return clean.run(images, ctx);
      },
    };
    const r1 = await audit(model(), fakeDataset(items(8)), { probes: [clean, capped], batchSize: 2, cacheDir: dir });
    assert.deepEqual(seen, ['img0.png', 'img1.png', 'img2.png']);
    assert.equal(r1.probes.capped.count, 3);
    assert.equal(r1.probes.clean.count, 8);
    // A second run over a different selection: the cap counts cached images too.
    seen.length = 0;
    const r2 = await audit(model(), fakeDataset(items(8).slice(1)), { probes: [clean, capped], batchSize: 2, cacheDir: dir });
    assert.deepEqual(seen, ['img3.png'], 'img1 and img2 came from the cache');
    assert.deepEqual(r2.probes.capped.records.map((r) => r.image), [0, 1, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
