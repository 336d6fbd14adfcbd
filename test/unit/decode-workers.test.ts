/**
 * Decoded images finished in worker threads (server/engine/data/decode-workers.ts) against
 * decodeImage on this thread: the same pixels bit for bit for every geometry (short-side resize
 * and centre crop with a margin, a straight resize, one channel, torchvision's tensor resampler),
 * small sources kept on this thread, the same errors, a worker that cannot start, idle workers
 * never holding a process, and the bundled CLI finishing its images in dist/views-worker.js.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { DecodeError, decodeImage } from '../../server/engine/data/decode';
import { decodeFile, decodeWorkerJobs, decodeWorkerThreads, setDecodeWorkers, SMALL } from '../../server/engine/data/decode-workers';
import type { DecodeSpec } from '../../server/engine/types';

const ROOT = resolve(__dirname, '../..');

after(() => setDecodeWorkers(undefined));

/** A photo-like JPEG (smooth gradients and noise), width × height, made here. */
async function jpeg(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  let a = seed >>> 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
      const n = (a >>> 24) - 128;
      const p = (y * width + x) * 3;
      raw[p] = Math.max(0, Math.min(255, (x * 255) / width + n / 4));
      raw[p + 1] = Math.max(0, Math.min(255, (y * 255) / height + n / 3));
      raw[p + 2] = Math.max(0, Math.min(255, 128 + n));
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

const SPECS: DecodeSpec[] = [
  { channels: 3, height: 224, width: 224, resizeShortSide: 256, margin: 8 },
  { channels: 3, height: 96, width: 128 },
  { channels: 1, height: 64, width: 64, resizeShortSide: 72, margin: 3, interpolation: 'bicubic' },
  { channels: 3, height: 100, width: 100, resizeShortSide: 110, resampler: 'tensor-antialias', cropRounding: 'floor' },
];

test('images finished in a worker thread are decodeImage\'s pixels bit for bit, for every geometry', async () => {
  const files = await Promise.all([[400, 300, 1], [333, 517, 2]].map(([w, h, s]) => jpeg(w, h, s)));
  await setDecodeWorkers(1);
  for (const spec of SPECS) {
    const before = decodeWorkerJobs();
    const got = await Promise.all(files.map((f) => decodeFile(f, spec)));
    assert.equal(decodeWorkerJobs() - before, files.length, 'both went to the worker');
    for (const [i, f] of files.entries()) {
      const want = await decodeImage(f, spec);
      assert.deepEqual({ ...got[i], data: undefined }, { ...want, data: undefined });
      assert.ok(Buffer.from(got[i].data.buffer, got[i].data.byteOffset, got[i].data.byteLength).equals(Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength)), JSON.stringify(spec));
    }
  }
  assert.equal(decodeWorkerThreads(), 1);
});

test('small sources are finished on this thread; with no workers nothing goes out', async () => {
  await setDecodeWorkers(1);
  const small = await jpeg(200, 200, 3); // 40,000 pixels < SMALL
  assert.ok(200 * 200 < SMALL);
  const before = decodeWorkerJobs();
  const spec = SPECS[0];
  assert.deepEqual(await decodeFile(small, spec), await decodeImage(small, spec));
  assert.equal(decodeWorkerJobs(), before);
  await setDecodeWorkers(0);
  const big = await jpeg(300, 300, 4);
  assert.deepEqual(await decodeFile(big, spec), await decodeImage(big, spec));
  assert.equal(decodeWorkerJobs(), before);
  assert.equal(decodeWorkerThreads(), 0);
});

test('a file that is not an image gives decodeImage\'s DecodeError, and a bad spec its RangeError', async () => {
  await setDecodeWorkers(1);
  await assert.rejects(decodeFile(Buffer.from('just some text\n'), SPECS[0]), (e: unknown) => e instanceof DecodeError && /text file/.test(e.message));
  const big = await jpeg(300, 300, 5);
  await assert.rejects(decodeFile(big.subarray(0, big.length >> 1), SPECS[0]), DecodeError);
  await assert.rejects(decodeFile(big, { channels: 3, height: 0, width: 10 }), RangeError);
});

test('a worker that cannot start (its script missing, or failing as it loads): the images are finished here, the same pixels, and the debug log says why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-decode-worker-'));
  const failing = join(dir, 'fails.js');
  writeFileSync(failing, "throw new Error('cannot load here');\n");
  const before = process.env.SKEPTIC_VIEWS_WORKER;
  const big = await jpeg(320, 240, 6);
  try {
    for (const script of [join(dir, 'missing.js'), failing]) {
      process.env.SKEPTIC_VIEWS_WORKER = script;
      await setDecodeWorkers(1); // forgets the previous failure
      for (let i = 0; i < 3; i++) assert.deepEqual(await decodeFile(big, SPECS[0]), await decodeImage(big, SPECS[0]), script);
      assert.equal(decodeWorkerThreads(), 0);
    }
  } finally {
    if (before === undefined) delete process.env.SKEPTIC_VIEWS_WORKER;
    else process.env.SKEPTIC_VIEWS_WORKER = before;
    await setDecodeWorkers(undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  const file = join(tmpdir(), `skeptic-decode-${process.pid}.jpg`);
  writeFileSync(file, big);
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `
      const { decodeFile } = require(${JSON.stringify(join(ROOT, 'server/engine/data/decode-workers.ts'))});
      decodeFile(require('fs').readFileSync(${JSON.stringify(file)}), { channels: 3, height: 224, width: 224, resizeShortSide: 256 }).then((i) => console.log('decoded', i.data.length));`], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_DEBUG: 'skeptic-decode', SKEPTIC_DECODE_WORKERS: '1', SKEPTIC_VIEWS_WORKER: '/nonexistent/views-worker.js' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /decoded 150528/);
    assert.match(r.stderr, /worker script \/nonexistent\/views-worker\.js is missing: finishing decoded images in the main thread/);
  } finally {
    rmSync(file, { force: true });
  }
});

test('the bundled CLI finishes large images in dist/views-worker.js, its report the same as without the workers, and exits on its own', async () => {
  const r0 = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r0.status, 0, r0.stderr);
  const work = mkdtempSync(join(tmpdir(), 'skeptic-decode-cli-'));
  try {
    const rows = ['path,label'];
    for (let i = 0; i < 6; i++) {
      writeFileSync(join(work, `img${i}.jpg`), await jpeg(300 + 17 * i, 280 + 9 * i, 10 + i));
      rows.push(`img${i}.jpg,${i % 2 ? 'circle' : 'cross'}`);
    }
    writeFileSync(join(work, 'data.csv'), rows.join('\n') + '\n');
    // the project's demo model takes 32×32 inputs, so each large JPEG is resampled (in the worker when there is one)
    const make = spawnSync(process.execPath, ['models/demo/make-data.mjs', '--quiet'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(make.status, 0, make.stderr);
    const run = (workers: string) => {
      const out = join(work, `w${workers}`);
      const r = spawnSync(
        process.execPath,
        [join(ROOT, 'bin/skeptic.js'), 'audit', join(ROOT, 'models/demo/shapes-cnn.onnx'), '--data', join(work, 'data.csv'), '--probes', 'clean,shift', '--no-cache', '--quiet', '--out', out],
        { cwd: work, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE_DEBUG: 'skeptic-decode', SKEPTIC_DECODE_WORKERS: workers } },
      );
      assert.equal(r.error, undefined, 'the CLI did not exit');
      assert.equal(r.status, 0, r.stderr);
      return { stderr: r.stderr, report: JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) };
    };
    const off = run('0');
    const on = run('1');
    assert.match(on.stderr, /starting decode worker 1 of 1: .*dist\/views-worker\.js/);
    assert.doesNotMatch(on.stderr, /main thread/);
    assert.doesNotMatch(off.stderr, /decode worker/);
    for (const p of ['clean', 'shift']) {
      assert.equal(on.report.probes[p].status, 'ok', on.report.probes[p].reason);
      assert.deepEqual(on.report.probes[p].metrics, off.report.probes[p].metrics);
      assert.deepEqual(on.report.probes[p].records, off.report.probes[p].records);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
