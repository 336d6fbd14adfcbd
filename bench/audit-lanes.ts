/**
 * Whole audits in lanes: for each --lanes N, N worker threads each audit every N-th batch of the
 * case's images (AuditOptions.only, by batch: a lane's batches are whole batches of --batch
 * images), all N started together for each repeat; N = 1 is one audit in one worker thread at
 * the engine's defaults. A lane of N > 1 runs ORT at --lane-threads intra-op threads (default 1)
 * with --lane-view-workers views workers (default 0), so N lanes keep N threads busy and no more.
 * Per repeat it prints the wall time of the slowest lane (when the audit would be done) and the
 * process's CPU time; after each N, a bare ONNX Runtime loop in the main thread over the same
 * forward passes at the same batch size, the engine's default session options (as bench/audit.ts),
 * and the ratio of each repeat to it.
 *
 * This measures a layout, not the engine as it ships: each lane also summarises its half of the
 * records (a few ms), and nothing merges them. It is the evidence for (or against) evaluating
 * batches in lanes (bench/README.md, twentieth pass).
 *
 *   node --import tsx bench/audit-lanes.ts [--case mnist|cifar|imagenet] [--lanes 1,2] [--repeat 4]
 *                                          [--images N] [--batch 32] [--lane-threads 1]
 *                                          [--lane-view-workers 0] [--fixtures DIR]
 *
 * Needs ../shared/fixtures. A diagnostic beside bench/audit.ts, which holds the target.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel } from '../server/engine/model';
import { makeBatchSymbolic } from '../server/engine/model/batch';
import { decodeModel, encodeModel } from '../server/engine/model/onnx';
import { sessionOptions } from '../server/engine/model/providers';
import { createProbes } from '../server/engine/probes';
import { BENCH_CASES, type BenchCase, caseModelOptions } from './cases';

type CaseKey = BenchCase['key'];
const caseOf = (key: string) => BENCH_CASES.find((c) => c.key === key);
const PROBES = ['clean', 'shift', 'patches', 'ood', 'corruptions'];

interface LaneJob {
  fixtures: string;
  caseKey: CaseKey;
  images: number;
  batch: number;
  lane: number;
  lanes: number;
  repeats: number;
  barrier: Int32Array;
}

/** One lane: loads the model once, then for each repeat waits for every lane and audits its batches. */
async function lane(job: LaneJob): Promise<void> {
  const c = caseOf(job.caseKey)!;
  // forward passes: the rows of each run's [N, K] class scores, as bench/audit.ts counts them
  let passes = 0;
  let K = 0;
  const proto = (ort.InferenceSession as unknown as { prototype: { run: (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType> } }).prototype;
  const run = proto.run;
  proto.run = async function (this: ort.InferenceSession, ...args: unknown[]) {
    const out = await run.apply(this, args);
    const scores = Object.values(out).find((x) => x.dims.length === 2 && Number(x.dims[1]) === K);
    if (scores) passes += Number(scores.dims[0]);
    return out;
  };
  const model = await loadModel(join(job.fixtures, c.model), caseModelOptions(c, job.fixtures, { batchSize: job.batch }));
  K = model.info.numClasses;
  for (let r = 0; r < job.repeats; r++) {
    Atomics.add(job.barrier, r, 1);
    Atomics.notify(job.barrier, r);
    for (let seen = Atomics.load(job.barrier, r); seen < job.lanes; seen = Atomics.load(job.barrier, r)) Atomics.wait(job.barrier, r, seen, 50);
    const ds = await openDataset(join(job.fixtures, c.data), { labels: model.labels, limit: job.images });
    // a lane's batches: positions [k·batch, (k+1)·batch) with k ≡ lane (mod lanes)
    const position = new Map(ds.records.map((rec, i) => [rec.index, i]));
    const only = job.lanes === 1 ? undefined : (rec: { index: number }) => Math.floor(position.get(rec.index)! / job.batch) % job.lanes === job.lane;
    passes = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await audit(model, ds, { probes: createProbes(PROBES), batchSize: job.batch, only });
    const cpu = process.cpuUsage(c0); // the whole process's (every lane's), not this thread's
    parentPort!.postMessage({ repeat: r, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, passes });
  }
  parentPort!.postMessage({ done: true });
}

async function main() {
  const { values } = parseArgs({
    options: {
      case: { type: 'string', default: 'mnist' },
      lanes: { type: 'string', default: '1,2' },
      repeat: { type: 'string', default: '4' },
      images: { type: 'string' },
      batch: { type: 'string', default: '32' },
      'lane-threads': { type: 'string', default: '1' },
      'lane-view-workers': { type: 'string', default: '0' },
      fixtures: { type: 'string' },
    },
  });
  const fixtures = resolve(values.fixtures ?? join(__dirname, '../../shared/fixtures'));
  if (!existsSync(fixtures)) {
    console.log(`skipped: no fixtures at ${fixtures}`);
    return;
  }
  const c = caseOf(values.case!);
  if (!c) throw new Error(`--case mnist|cifar|imagenet, not ${values.case}`);
  const caseKey = c.key;
  const images = Number(values.images ?? c.images);
  const batch = Number(values.batch);
  const repeats = Number(values.repeat);
  // under tsx each lane loads this file through tsx; bundled (bench/device/pack.mjs), the bundle itself
  const laneScript = __filename.endsWith('.ts') ? `require(${JSON.stringify(createRequire(__filename).resolve('tsx/cjs'))}); require(${JSON.stringify(__filename)});` : undefined;
  console.log(`${caseKey}: ${images} images, batch ${batch}, ${repeats} repeats; lanes of N > 1 at ${values['lane-threads']} ORT thread(s), ${values['lane-view-workers']} views worker(s) each`);
  for (const lanes of values.lanes.split(',').map(Number)) {
    const env = { ...process.env };
    if (lanes > 1) {
      env.SKEPTIC_THREADS = values['lane-threads'];
      env.SKEPTIC_VIEW_WORKERS = values['lane-view-workers'];
    }
    const barrier = new Int32Array(new SharedArrayBuffer(4 * repeats));
    const per: Array<Array<{ ms: number; cpuMs: number; passes: number }>> = Array.from({ length: repeats }, () => []);
    const c0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: lanes }, (_, k) => {
        const job: LaneJob = { fixtures, caseKey, images, batch, lane: k, lanes, repeats, barrier };
        const w = laneScript ? new Worker(laneScript, { eval: true, env, workerData: job }) : new Worker(__filename, { env, workerData: job });
        return new Promise<void>((done, fail) => {
          w.on('message', (m) => (m.done ? void w.terminate().then(() => done()) : per[m.repeat].push(m)));
          w.on('error', fail);
        });
      }),
    );
    const cpu = process.cpuUsage(c0);
    // the bare loop over one repeat's passes, at the batch size, the engine's default options
    const passes = per[0].reduce((a, p) => a + p.passes, 0);
    const bare = await bareLoop(join(fixtures, c.model), passes, batch);
    const walls = per.map((p) => Math.max(...p.map((x) => x.ms)));
    console.log(
      `lanes ${lanes}: audit ${walls.map((w) => (w / 1000).toFixed(2)).join(', ')} s (slowest lane); bare loop over its ${passes} passes ${(bare / 1000).toFixed(2)} s; ` +
        `ratios ${walls.map((w) => (w / bare).toFixed(2)).join(', ')}; the process's CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s from the lanes' start to their end (${repeats} repeats, model loading included)`,
    );
  }
}

async function bareLoop(file: string, passes: number, batch: number): Promise<number> {
  const proto = decodeModel(readFileSync(file), file);
  const input = proto.graph!.input![0];
  makeBatchSymbolic(proto, input.name!);
  const session = await ort.InferenceSession.create(encodeModel(proto), sessionOptions('cpu'));
  const dims = input.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue ?? 0)).slice(1);
  const size = dims.reduce((a, d) => a * d, 1);
  const x = new Float32Array(batch * size).map((_, i) => ((i * 2654435761) % 1000) / 1000);
  const run = (rows: number) => session.run({ [input.name!]: new ort.Tensor('float32', x.subarray(0, rows * size), [rows, ...dims]) });
  await run(batch);
  const t0 = performance.now();
  for (let done = 0; done < passes; done += batch) await run(Math.min(batch, passes - done));
  const ms = performance.now() - t0;
  await session.release();
  return ms;
}

if (isMainThread) void main();
else void lane(workerData as LaneJob);
