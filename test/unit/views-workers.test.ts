/**
 * The corruption views' CPU part made in worker threads (server/engine/views/workers.ts) against
 * the same makers in this thread (views/corruptions.ts): bit for bit, for every corruption, with
 * input sets given back and filled again across threads; the same errors; cancellation; a worker
 * that cannot start; the threads ended with the model and never holding a process; the same
 * report with workers on and off; and the bundled CLI using dist/views-worker.js.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { CancelledError, SkepticInputError } from '../../server/engine/errors';
import { CORRUPTIONS, EXTRA_CORRUPTIONS, type CorruptionName } from '../../server/engine/image/corrupt';
import { derivedSeed, recipeSeeds } from '../../server/engine/random';
import type { PixelImage } from '../../server/engine/types';
import { corruptionViews } from '../../server/engine/views/corruptions';
import type { ViewInputs, ViewPlan } from '../../server/engine/views/plan';
import { makeViews } from '../../server/engine/views/session';
import { corruptionViewMaker, defaultViewWorkers, imagesPerMessage, releaseViewWorkers, setViewWorkers, viewWorkerJobs, viewWorkerThreads } from '../../server/engine/views/workers';

const ROOT = resolve(__dirname, '../..');
const FIXTURES = resolve(ROOT, '../shared/fixtures');
const ALL = [...CORRUPTIONS, ...EXTRA_CORRUPTIONS];

after(() => setViewWorkers(undefined));

/** A decoded-looking image (k/255 values, which shot noise's cached Poisson constants take). */
function image(C: number, H: number, W: number, seed: number): PixelImage {
  const data = new Float32Array(C * H * W);
  let a = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    data[i] = Math.fround(Math.floor((a / 2 ** 32) * 256) / 255);
  }
  return { data, channels: C as 1 | 3, height: H, width: W };
}

const seedOf = (k: number) => (name: string, s: number) => derivedSeed(k, `corruptions/${name}/${s}`, `sha${k}`);

/** The first value at which two input sets differ (Object.is: −0 and NaN count), or undefined. */
function firstDifference(a: ViewInputs, b: ViewInputs): string | undefined {
  const keys = Object.keys(b).sort();
  if (Object.keys(a).sort().join() !== keys.join()) return `keys ${Object.keys(a)} against ${keys}`;
  for (const k of keys as Array<keyof ViewInputs>) {
    const x = a[k] as ArrayLike<number>;
    const y = b[k] as ArrayLike<number>;
    if (x.length !== y.length) return `${k}: length ${x.length} against ${y.length}`;
    for (let i = 0; i < y.length; i++) if (!Object.is(x[i], y[i])) return `${k}[${i}]: ${x[i]} against ${y[i]}`;
  }
  return undefined;
}

test('the default number of worker threads: half the CPUs, at least 1, at most 8', () => {
  assert.deepEqual([1, 2, 3, 4, 16, 64].map((n) => defaultViewWorkers(n)), [1, 1, 1, 2, 8, 8]);
});

test('worker-made corruption inputs equal this thread\'s bit for bit: every corruption and the extras at severities 1, 3, 5, one and three channels, several images a message, sets given back and filled again across threads', async () => {
  await setViewWorkers(1);
  const owner = {};
  try {
    for (const [C, H, W] of [[1, 12, 12], [3, 40, 56]] as const) {
      const list = ALL.flatMap((name) => [1, 3, 5].map((s): [CorruptionName, number] => [name, s]));
      const here = corruptionViews(list, H, W);
      const there = corruptionViewMaker(list, H, W, {}, { owner });
      assert.equal(there.threads, 1);
      assert.equal(there.ahead, 2);
      assert.deepEqual(there.ops, here.ops);
      // two rounds: the second fills the sets the first gave back (they went to the worker and back)
      let given: ViewInputs[] = [];
      for (const round of [0, 1]) {
        const imgs = [0, 1, 2].map((i) => image(C, H, W, 10 * round + i + C));
        const made = await Promise.all(imgs.map((img, i) => there.inputs(img, seedOf(10 * round + i))));
        // the worker's sets live in shared memory: they move between threads without a transfer
        // (a transferred buffer counts as new external memory in the thread it reaches, and V8
        // collected garbage about twice an ImageNet image for it), and nothing here is detached
        for (const m of made) for (const v of Object.values(m)) assert.ok(ArrayBuffer.isView(v) && v.buffer instanceof SharedArrayBuffer, 'a worker-made input outside shared memory');
        for (let i = 0; i < imgs.length; i++) {
          const want = await here.inputs(imgs[i], seedOf(10 * round + i));
          assert.equal(firstDifference(made[i], want), undefined, `${C}×${H}×${W}, round ${round}, image ${i}`);
        }
        // the sets given back came back filled: the second round's are the first round's memory
        if (round === 1) {
          assert.ok(given.every((g) => g.noise!.length > 0 && g.given!.length > 0), 'a given-back set was detached');
          for (const m of made) m.noise![0] = -7;
          assert.equal(given.filter((g) => g.noise![0] === -7).length, made.length, 'the second round made new sets instead of filling the given ones');
        }
        for (const m of made) there.recycle(m);
        given = made;
      }
    }
    assert.equal(viewWorkerThreads(), 1);
    // on Linux the worker's thread is named for `top -H`, `ps -L` and bench/audit.ts's per-thread CPU
    if (process.platform === 'linux') assert.ok(threadNames().includes('skeptic-views'), `threads: ${threadNames().join(', ')}`);
  } finally {
    await releaseViewWorkers(owner);
  }
  assert.equal(viewWorkerThreads(), 0, 'the workers end with their last owner');
});

test('a run of one source whose inputs a worker made in shared memory: ONNX Runtime takes no tensor over a SharedArrayBuffer, so they are copied, and the views equal those from this thread\'s inputs', async () => {
  await setViewWorkers(1);
  const owner = {};
  try {
    const [C, H] = [3, 32];
    const list = ALL.flatMap((name) => [2, 5].map((s): [CorruptionName, number] => [name, s]));
    const here = corruptionViews(list, H, H);
    const there = corruptionViewMaker(list, H, H, {}, { owner });
    const img = image(C, H, H, 5);
    const shared = await there.inputs(img, seedOf(5));
    assert.ok(Object.values(shared).some((v) => ArrayBuffer.isView(v) && v.buffer instanceof SharedArrayBuffer), 'the worker\'s inputs are not in shared memory');
    const plan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: here.ops };
    const want = await makeViews(plan, [{ source: img, inputs: await here.inputs(img, seedOf(5)) }]);
    const got = await makeViews(plan, [{ source: img, inputs: shared }]);
    assert.equal(got.length, want.length);
    assert.ok(got.every((v, i) => Object.is(v, want[i])), 'the views from shared inputs differ');
  } finally {
    await releaseViewWorkers(owner);
  }
});

test('seeds that come with their recipe (the corruptions probe\'s) are derived in the worker: the main thread hashes none, and the inputs equal this thread\'s from the same seeds bit for bit', async () => {
  // the recipe's seeds are the ones the probe derived before recipes (same report)
  const r = recipeSeeds({ seed: 7, prefix: 'corruptions', tag: 'sha7' });
  for (const [n, s] of [['snow', 1], ['shot_noise', 5], ['elastic_transform', 3]] as const) assert.equal(r(n, s), derivedSeed(7, `corruptions/${n}/${s}`, 'sha7'));
  assert.deepEqual(r.recipe, { seed: 7, prefix: 'corruptions', tag: 'sha7' });
  await setViewWorkers(1);
  const owner = {};
  try {
    const list = ALL.flatMap((name) => [2, 4].map((s): [CorruptionName, number] => [name, s]));
    const here = corruptionViews(list, 20, 20);
    const there = corruptionViewMaker(list, 20, 20, {}, { owner });
    const imgs = [0, 1, 2].map((i) => image(3, 20, 20, 40 + i));
    let calls = 0;
    const counted = (k: number) => {
      const seeds = recipeSeeds({ seed: 11, prefix: 'corruptions', tag: `sha${k}` });
      return Object.assign((n: string, s: number) => (calls++, seeds(n, s)), { recipe: seeds.recipe });
    };
    for (const round of [0, 1]) {
      const made = await Promise.all(imgs.map((img, k) => there.inputs(img, counted(k))));
      assert.equal(calls, 0, `round ${round}: the main thread derived seeds`);
      for (let k = 0; k < imgs.length; k++) {
        assert.equal(firstDifference(made[k], await here.inputs(imgs[k], recipeSeeds({ seed: 11, prefix: 'corruptions', tag: `sha${k}` }))), undefined, `round ${round}, image ${k}`);
      }
      for (const m of made) there.recycle(m);
    }
    // a seed function without a recipe still has its seeds derived here and sent
    await there.inputs(imgs[0], (n, s) => (calls++, derivedSeed(3, n, String(s))));
    assert.ok(calls > 0, 'a seed function without a recipe was not called');
  } finally {
    await releaseViewWorkers(owner);
  }
});

/** The names of this process's threads (Linux). */
function threadNames(): string[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      return [readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()];
    } catch {
      return []; // a thread that ended meanwhile
    }
  });
}

test('images asked for together go to the workers in messages of about 8,192 pixels at most, of nearly equal size, at least one per worker', async () => {
  // runViews asks for its first runs together: MNIST's 32 images in one message kept the first
  // run waiting for all of them
  assert.equal(imagesPerMessage(32, 28 * 28, 1), 8);
  assert.equal(imagesPerMessage(33, 28 * 28, 1), 9);
  assert.equal(imagesPerMessage(16, 32 * 32, 1), 8);
  assert.equal(imagesPerMessage(2, 224 * 224, 1), 1);
  assert.equal(imagesPerMessage(3, 40 * 56, 1), 3);
  assert.equal(imagesPerMessage(4, 40 * 56, 1), 2);
  assert.equal(imagesPerMessage(6, 12 * 12, 2), 3);
  assert.equal(imagesPerMessage(1, 500 * 500, 4), 1);

  await setViewWorkers(1);
  const owner = {};
  try {
    const list: Array<[CorruptionName, number]> = [['shot_noise', 1], ['snow', 3]];
    const here = corruptionViews(list, 28, 28);
    const there = corruptionViewMaker(list, 28, 28, {}, { owner });
    const imgs = Array.from({ length: 32 }, (_, i) => image(1, 28, 28, i));
    const made = await Promise.all(imgs.map((img, i) => there.inputs(img, seedOf(i))));
    assert.equal(viewWorkerJobs(), 4, 'four messages of 8 images');
    for (let i = 0; i < imgs.length; i++) assert.equal(firstDifference(made[i], await here.inputs(imgs[i], seedOf(i))), undefined, `image ${i}`);
  } finally {
    await releaseViewWorkers(owner);
  }
});

test('worker-made inputs at ImageNet size (224×224×3), ImageNet-C\'s fifteen at five severities, equal this thread\'s bit for bit', async () => {
  await setViewWorkers(1);
  const owner = {};
  try {
    const list = CORRUPTIONS.flatMap((name) => [1, 2, 3, 4, 5].map((s): [CorruptionName, number] => [name, s]));
    const img = image(3, 224, 224, 5);
    const made = await corruptionViewMaker(list, 224, 224, {}, { owner }).inputs(img, seedOf(5));
    const want = await corruptionViews(list, 224, 224).inputs(img, seedOf(5));
    assert.equal(firstDifference(made, want), undefined);
  } finally {
    await releaseViewWorkers(owner);
  }
});

test('an error in a worker is the error this thread gives: the same class, message and file', async () => {
  await setViewWorkers(1);
  const owner = {};
  const missing = join(tmpdir(), 'skeptic-no-such-frost-folder');
  const list: Array<[CorruptionName, number]> = [['frost', 2]];
  try {
    const here = await corruptionViews(list, 12, 12, { frostDir: missing }).inputs(image(1, 12, 12, 1), seedOf(1)).catch((e: Error) => e);
    const there = await corruptionViewMaker(list, 12, 12, { frostDir: missing }, { owner }).inputs(image(1, 12, 12, 1), seedOf(1)).catch((e: Error) => e);
    assert.ok(here instanceof SkepticInputError, String(here));
    assert.ok(there instanceof SkepticInputError, String(there));
    assert.equal(there.message, here.message);
    assert.equal(there.file, here.file);
    assert.match(there.message, /cannot read .*skeptic-no-such-frost-folder/);
    // the worker is still there and well after the error
    const ok = await corruptionViewMaker([['shot_noise', 3]], 12, 12, {}, { owner }).inputs(image(1, 12, 12, 2), seedOf(2));
    assert.equal(firstDifference(ok, await corruptionViews([['shot_noise', 3]], 12, 12).inputs(image(1, 12, 12, 2), seedOf(2))), undefined);
  } finally {
    await releaseViewWorkers(owner);
  }
});

test('cancelled: the inputs being made reject with CancelledError at once (not when the worker is done), and the workers keep working', async () => {
  await setViewWorkers(1);
  const owner = {};
  const ac = new AbortController();
  try {
    const list = CORRUPTIONS.flatMap((name) => [1, 2, 3, 4, 5].map((s): [CorruptionName, number] => [name, s]));
    const maker = corruptionViewMaker(list, 224, 224, {}, { owner, signal: ac.signal });
    // about half a second of work for the worker
    const pending = [1, 2, 3].map((i) => maker.inputs(image(3, 224, 224, i), seedOf(i)));
    const settled = pending.map((p) => p.then(() => 'made', (e) => e));
    await new Promise((r) => setImmediate(r)); // the message is on its way
    ac.abort();
    await new Promise((r) => setImmediate(r));
    const first = await Promise.race([settled[0], new Promise((r) => setImmediate(() => r('still pending')))]);
    assert.ok(first instanceof CancelledError, `after the abort: ${String(first)}`);
    for (const s of settled) assert.ok((await s) instanceof CancelledError);
    assert.throws(() => maker.inputs(image(3, 224, 224, 4), seedOf(4)), CancelledError);
    // a new audit's maker gets its inputs from the same worker
    const again = await corruptionViewMaker([['impulse_noise', 2]], 16, 16, {}, { owner }).inputs(image(3, 16, 16, 3), seedOf(3));
    assert.equal(firstDifference(again, await corruptionViews([['impulse_noise', 2]], 16, 16).inputs(image(3, 16, 16, 3), seedOf(3))), undefined);
  } finally {
    await releaseViewWorkers(owner);
  }
});

test('a worker that cannot start (its script missing, or failing as it loads): the inputs are made in this thread, the same values, and the debug log says why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-views-worker-'));
  const failing = join(dir, 'fails.js');
  writeFileSync(failing, "throw new Error('cannot load sharp here');\n");
  const list = ALL.map((name): [CorruptionName, number] => [name, 2]);
  const before = process.env.SKEPTIC_VIEWS_WORKER;
  try {
    for (const script of [join(dir, 'missing.js'), failing]) {
      process.env.SKEPTIC_VIEWS_WORKER = script;
      await setViewWorkers(1); // forgets the previous failure
      const owner = {};
      const maker = corruptionViewMaker(list, 12, 12, {}, { owner });
      const made = await Promise.all([1, 2].map((i) => maker.inputs(image(3, 12, 12, i), seedOf(i))));
      for (const i of [1, 2]) assert.equal(firstDifference(made[i - 1], await corruptionViews(list, 12, 12).inputs(image(3, 12, 12, i), seedOf(i))), undefined, script);
      // later requests do not try again
      await maker.inputs(image(3, 12, 12, 3), seedOf(3));
      assert.equal(viewWorkerThreads(), 0);
      await releaseViewWorkers(owner);
    }
  } finally {
    if (before === undefined) delete process.env.SKEPTIC_VIEWS_WORKER;
    else process.env.SKEPTIC_VIEWS_WORKER = before;
    await setViewWorkers(undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  // what NODE_DEBUG=skeptic-views prints, from a process of its own
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `
    const { corruptionViewMaker } = require(${JSON.stringify(join(ROOT, 'server/engine/views/workers.ts'))});
    corruptionViewMaker([['shot_noise', 1]], 8, 8).inputs({ channels: 1, height: 8, width: 8, data: new Float32Array(64).fill(0.5) }, () => 1)
      .then((v) => console.log('made', v.given.length));`], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_DEBUG: 'skeptic-views', SKEPTIC_VIEW_WORKERS: '1', SKEPTIC_VIEWS_WORKER: '/nonexistent/views-worker.js' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /made 64/);
  assert.match(r.stderr, /views worker script \/nonexistent\/views-worker\.js is missing: making the views' CPU part in the main thread/);
});

test('SKEPTIC_VIEWS_WORKER may be a path relative to the working directory, as a shell gives it (Worker alone takes only ./-prefixed ones)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-views-rel-'));
  try {
    // a built script stand-in: the TypeScript worker through tsx's require hook
    const tsx = require.resolve('tsx/cjs');
    writeFileSync(join(dir, 'worker.js'), `require(${JSON.stringify(tsx)});\nrequire(${JSON.stringify(join(ROOT, 'server/engine/views/cpu-worker.ts'))});\n`);
    const r = spawnSync(process.execPath, ['-r', tsx, '-e', `
      const { corruptionViewMaker, viewWorkerJobs } = require(${JSON.stringify(join(ROOT, 'server/engine/views/workers.ts'))});
      corruptionViewMaker([['shot_noise', 1]], 8, 8).inputs({ channels: 1, height: 8, width: 8, data: new Float32Array(64).fill(0.5) }, () => 1)
        .then((v) => console.log('made', v.given.length, 'jobs', viewWorkerJobs()));`], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_DEBUG: 'skeptic-views', SKEPTIC_VIEW_WORKERS: '1', SKEPTIC_VIEWS_WORKER: 'worker.js' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /made 64 jobs 1/);
    assert.doesNotMatch(r.stderr, /could not start|main thread/);
    assert.ok(r.stderr.includes(`starting views worker 1 of 1: ${join(dir, 'worker.js')}`), r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a views worker loads neither sharp nor the ONNX protobuf code to start and make every corruption of MNIST-, CIFAR- and ImageNet-size images (they cost a worker\'s start 50–100 ms; sharp loads only for a colour JPEG over 224×224)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-views-modules-'));
  try {
    // the worker as the pool starts it, which writes the modules it has loaded after each message
    const tsx = require.resolve('tsx/cjs');
    const out = join(dir, 'modules.json');
    writeFileSync(join(dir, 'worker.js'), `require(${JSON.stringify(tsx)});
require(${JSON.stringify(join(ROOT, 'server/engine/views/cpu-worker.ts'))});
require('node:worker_threads').parentPort.on('message', () => setTimeout(() => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))), 50));
`);
    const r = spawnSync(process.execPath, ['-r', tsx, '-e', `
      const { corruptionViewMaker, viewWorkerJobs } = require(${JSON.stringify(join(ROOT, 'server/engine/views/workers.ts'))});
      const { CORRUPTIONS } = require(${JSON.stringify(join(ROOT, 'server/engine/image/corrupt.ts'))});
      (async () => {
        for (const [C, S] of [[1, 28], [3, 32], [3, 224]]) {
          const list = CORRUPTIONS.flatMap((n) => [1, 5].map((s) => [n, s]));
          await corruptionViewMaker(list, S, S).inputs({ channels: C, height: S, width: S, data: new Float32Array(C * S * S).fill(0.5) }, (n, s) => s);
        }
        console.log('jobs', viewWorkerJobs());
        await new Promise((r) => setTimeout(r, 300));
        process.exit(0);
      })();`], { cwd: dir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, SKEPTIC_VIEW_WORKERS: '1', SKEPTIC_VIEWS_WORKER: join(dir, 'worker.js') } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /jobs 3/);
    const loaded: string[] = JSON.parse(readFileSync(out, 'utf8'));
    assert.ok(loaded.some((f) => f.endsWith('views/corruptions.ts')), 'the makers ran in the worker');
    assert.deepEqual(loaded.filter((f) => /node_modules[\\/](sharp|onnx-proto|protobufjs)[\\/]|engine[\\/]model[\\/]onnx\.ts$/.test(f)), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a process that never releases its model still exits: idle workers do not hold it', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `
    const { corruptionViewMaker, viewWorkerThreads } = require(${JSON.stringify(join(ROOT, 'server/engine/views/workers.ts'))});
    corruptionViewMaker([['snow', 1], ['jpeg_compression', 2]], 16, 16, {}, { owner: {} }).inputs({ channels: 3, height: 16, width: 16, data: new Float32Array(768).fill(0.25) }, () => 7)
      .then((v) => console.log('made', v.given.length, 'threads', viewWorkerThreads()));`], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, SKEPTIC_VIEW_WORKERS: '1' } });
  assert.equal(r.error, undefined, 'the process did not exit on its own');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /made 1536 threads 1/);
});

test('the corruptions probe gives the same report with worker threads and without (mnist-8, three batches)', { skip: !existsSync(join(FIXTURES, 'mnist')) && 'no fixtures' }, async () => {
  const { audit } = await import('../../server/engine/audit');
  const { openDataset } = await import('../../server/engine/data');
  const { loadModel } = await import('../../server/engine/model');
  const { createProbes } = await import('../../server/engine/probes');
  const reports = [];
  for (const workers of [0, 1]) {
    await setViewWorkers(workers);
    const model = await loadModel(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
    try {
      const ds = await openDataset(join(FIXTURES, 'mnist'), { limit: 24 });
      reports.push(await audit(model, ds, { probes: createProbes(['corruptions'], { corruptions: { corruptions: 'all,extra' } }), batchSize: 8, seed: 5 }));
      assert.equal(viewWorkerThreads(), workers, 'the probe used the workers');
    } finally {
      await model.dispose();
    }
    assert.equal(viewWorkerThreads(), 0, 'the workers end with the model');
  }
  const [a, b] = reports.map((r) => r.probes.corruptions);
  assert.equal(a.status, 'ok', a.reason);
  assert.deepEqual(b.metrics, a.metrics);
  assert.deepEqual(b.records, a.records);
  assert.deepEqual(reports[1].findings, reports[0].findings);
});

test('the bundled CLI makes the views\' CPU part in dist/views-worker.js, and its report equals the one made without workers', () => {
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) {
    const r = spawnSync(process.execPath, cmd, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  const work = mkdtempSync(join(tmpdir(), 'skeptic-views-cli-'));
  try {
    const run = (workers: string) => {
      const out = join(work, `w${workers}`);
      const r = spawnSync(
        process.execPath,
        [join(ROOT, 'bin/skeptic.js'), 'audit', join(ROOT, 'models/demo/shapes-cnn.onnx'), '--data', join(ROOT, 'models/demo/data/test.csv'), '--limit', '12', '--probes', 'corruptions', '--no-cache', '--quiet', '--out', out],
        { cwd: work, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NODE_DEBUG: 'skeptic-views', SKEPTIC_VIEW_WORKERS: workers } },
      );
      assert.equal(r.error, undefined, 'the CLI did not exit');
      assert.equal(r.status, 0, r.stderr);
      return { stderr: r.stderr, report: JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) };
    };
    const off = run('0');
    const on = run('1');
    assert.match(on.stderr, /starting views worker 1 of 1: .*dist\/views-worker\.js/);
    assert.match(on.stderr, /views worker ready/);
    assert.doesNotMatch(on.stderr, /main thread/);
    assert.doesNotMatch(off.stderr, /views worker/);
    assert.equal(on.report.probes.corruptions.status, 'ok');
    assert.deepEqual(on.report.probes.corruptions.metrics, off.report.probes.corruptions.metrics);
    assert.deepEqual(on.report.probes.corruptions.records, off.report.probes.corruptions.records);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('runViews keeps `ahead` runs of sources in the making beyond the one running, never more, and hands each item its own scores in order', async () => {
  const { runViews } = await import('../../server/engine/views/session');
  for (const ahead of [1, 2, 3]) {
    let live = 0;
    let most = 0;
    const runner = {
      views: 1,
      mode: 'standalone' as const,
      features: false,
      sourcesPerRun: 2,
      modelSlices: 1,
      shared: false,
      async predict(sources: Array<{ source: PixelImage }>) {
        await new Promise((r) => setTimeout(r, 2));
        const logits = Float32Array.from(sources, (s) => s.source.data[0]);
        return { n: sources.length, numClasses: 1, logits, probs: logits };
      },
    };
    const items = Array.from({ length: 11 }, (_, i) => i);
    const got: number[] = [];
    await runViews(
      runner,
      items,
      async (i) => {
        most = Math.max(most, ++live);
        await new Promise((r) => setTimeout(r, 1));
        return { source: { channels: 1, height: 1, width: 1, data: Float32Array.of(i) }, done: () => live-- };
      },
      (i, scores, first) => got.push(i * 1000 + scores.logits[first]),
      undefined,
      ahead,
    );
    assert.deepEqual(got, items.map((i) => i * 1001));
    assert.equal(live, 0);
    // the run's 2 sources and `ahead` runs of 2 more
    assert.equal(most, 2 * (ahead + 1), `ahead ${ahead}`);
  }
});
