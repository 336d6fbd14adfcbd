/** Artifacts: probes draw files for the images their summary picks; PNG and .npy writers. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { audit } from '../../server/engine/audit';
import { npyBytes, toBytes } from '../../server/engine/image/files';
import { createProbes } from '../../server/engine/probes';
import type { Probe } from '../../server/engine/probes/probe';
import { fakeDataset, fakeModel, gray } from './helpers/fake';

test('npy header follows the NumPy 1.0 format', () => {
  const b = npyBytes(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  assert.equal(b.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  assert.deepEqual([b[6], b[7]], [1, 0]);
  const headerLen = b.readUInt16LE(8);
  assert.equal((10 + headerLen) % 64, 0, 'data starts on a 64-byte boundary');
  const header = b.subarray(10, 10 + headerLen).toString('latin1');
  assert.equal(header.trimEnd(), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  assert.ok(header.endsWith('\n'));
  assert.equal(b.readFloatLE(10 + headerLen + 5 * 4), 6);
  assert.match(npyBytes(new Float32Array(4), [4]).toString('latin1'), /'shape': \(4,\)/);
});

test('toBytes converts CHW floats to HWC bytes and enlarges with nearest neighbours', () => {
  const img = { data: Float32Array.from([0, 1, 0.5, 2]), channels: 1 as const, height: 2, width: 2 };
  assert.deepEqual([...toBytes(img)], [0, 255, 128, 255]);
  assert.deepEqual([...toBytes({ ...img, height: 1, width: 2, data: Float32Array.from([0, 1]) }, 2)], [0, 0, 255, 255, 0, 0, 255, 255]);
  const rgb = { data: Float32Array.from([1, 0, 0, 1, 0, 0]), channels: 3 as const, height: 1, width: 2 };
  assert.deepEqual([...toBytes(rgb)], [255, 0, 0, 0, 255, 0]);
  // clipped, rounded half up, NaN as 0; scale 1 (its own loop) the same bytes as every other pixel of scale 2
  const odd = { data: Float32Array.from([-0.5, Number.NaN, 0.5 / 255, 1.5, 0.2, 254.5 / 255]), channels: 3 as const, height: 1, width: 2 };
  const byte = (v: number) => (Number.isNaN(v) ? 0 : Math.round(Math.min(1, Math.max(0, v)) * 255));
  const hwc = [0, 2, 4, 1, 3, 5].map((i) => odd.data[i]); // pixel 0's channels, then pixel 1's
  assert.deepEqual([...toBytes(odd)], hwc.map(byte));
  assert.deepEqual([...toBytes(odd)].slice(0, 5), [0, 1, 51, 0, 255]);
  const big = toBytes(odd, 2);
  assert.deepEqual([...big.subarray(0, 3), ...big.subarray(6, 9)], [...toBytes(odd)]);
});

test('render draws only the picked images and the paths reach records and findings', async () => {
  const out = mkdtempSync(join(tmpdir(), 'skeptic-art-'));
  try {
    const drawn: number[] = [];
    const probe: Probe<{ v: number }> = {
      id: 'toy',
      title: 'Toy',
      params: {},
      margin: 0,
      rules: { 'toy/bright': { name: 'Bright', text: 'bright', help: 'none' } },
      async run(images) {
        return images.map((im) => ({ v: im.pixels.data[0] }));
      },
      summarize(records) {
        const bright = records.filter((r) => r.v > 0.5).map((r) => r.image);
        return {
          headline: `${bright.length} bright`,
          metrics: {},
          findings: bright.map((image) => ({ rule: 'toy/bright', severity: 'info' as const, image, message: 'bright' })),
          render: bright,
        };
      },
      async render(images, _records, ctx) {
        const files = new Map<number, string[]>();
        for (const im of images) {
          drawn.push(im.image);
          files.set(im.image, [await ctx.writePng(`artifacts/toy/${im.image}.png`, im.pixels, { scale: 3 })]);
        }
        return files;
      },
    };
    const items = [0.1, 0.9, 0.2, 0.8].map((v, i) => ({ id: `i${i}.png`, label: 0, image: gray([[v, v], [v, v]]) }));
    const model = fakeModel({ height: 2, width: 2, numClasses: 2, logits: () => [0, 0] });
    const report = await audit(model, fakeDataset(items), { probes: [...createProbes(['clean']), probe as Probe<object>], outDir: out, batchSize: 3 });
    assert.deepEqual(drawn.sort(), [1, 3]);
    const recs = report.probes.toy.records;
    assert.deepEqual(recs.map((r) => r.artifacts ?? null), [null, ['artifacts/toy/1.png'], null, ['artifacts/toy/3.png']]);
    assert.deepEqual(report.findings.filter((f) => f.probe === 'toy').map((f) => f.artifacts), [['artifacts/toy/1.png'], ['artifacts/toy/3.png']]);
    const meta = await sharp(join(out, 'artifacts/toy/1.png')).metadata();
    assert.deepEqual([meta.width, meta.height], [6, 6]);
    assert.ok(!existsSync(join(out, 'artifacts/toy/0.png')));
    assert.equal(report.rules['toy/bright'].name, 'Bright');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('PNGs are encoded while the render goes on, each with the pixels it was given; the audit ends with every file written, and a write that fails fails it', async () => {
  const { writeFileSync } = await import('node:fs');
  const out = mkdtempSync(join(tmpdir(), 'skeptic-art-'));
  try {
    const probe = (broken: boolean): Probe<{ v: number }> => ({
      id: 'toy',
      title: 'Toy',
      params: {},
      margin: 0,
      rules: {},
      async run(images) {
        return images.map((im) => ({ v: im.pixels.data[0] }));
      },
      summarize(records) {
        return { headline: '', metrics: {}, findings: [], render: records.map((r) => r.image) };
      },
      async render(images, _records, ctx) {
        const files = new Map<number, string[]>();
        // one buffer for every image, overwritten after each call: a write must take the pixels when asked
        const shared = gray([[0, 0], [0, 0]]);
        for (const im of images) {
          shared.data.set(im.pixels.data);
          files.set(im.image, [await ctx.writePng(`${broken && im.image === 5 ? 'blocked/' : ''}artifacts/toy/${im.image}.png`, shared, { scale: 1 })]);
          shared.data.fill(1);
        }
        return files;
      },
    });
    const items = Array.from({ length: 40 }, (_, i) => ({ id: `i${i}.png`, label: 0, image: gray([[i / 40, i / 40], [i / 40, i / 40]]) }));
    const model = fakeModel({ height: 2, width: 2, numClasses: 2, logits: () => [0, 0] });
    await audit(model, fakeDataset(items), { probes: [probe(false) as Probe<object>], outDir: out });
    for (let i = 0; i < 40; i++) {
      const px = await sharp(join(out, `artifacts/toy/${i}.png`)).raw().toBuffer();
      assert.equal(px[0], Math.round(Math.fround(i / 40) * 255), `image ${i}`);
    }
    writeFileSync(join(out, 'blocked'), 'a file where a folder is needed');
    await assert.rejects(audit(model, fakeDataset(items), { probes: [probe(true) as Probe<object>], outDir: out }), /blocked/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
