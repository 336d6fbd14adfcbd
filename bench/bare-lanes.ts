/**
 * Bare ONNX Runtime loops two ways over the same forward passes: one session whose intra-op
 * thread pool splits every kernel over the cores (how the engine runs a model), against N
 * sessions at one thread each in worker threads ("lanes", data parallelism), each taking 1/N of
 * the passes at the same batch size. Prints wall and process CPU seconds of each. The lanes
 * design was tried in the audit and not kept (bench/README.md, thirteenth pass); this shows the
 * bare model's side of it.
 *
 *   node --import tsx bench/bare-lanes.ts [--case mnist|imagenet] [--passes N] [--batch 32] [--lanes 2] [--repeat 2]
 *
 * Needs ../shared/fixtures.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { makeBatchSymbolic } from '../server/engine/model/batch';
import { decodeModel, encodeModel } from '../server/engine/model/onnx';
import { sessionOptions } from '../server/engine/model/providers';
import { cpuThreads } from '../server/engine/model/threads';

const CASES = {
  mnist: { model: 'models/mnist-8_onnxzoo_cntk.onnx', dims: [1, 28, 28], passes: 149_500 },
  imagenet: { model: 'models/imagenet_mobilenetv2-12-int8.onnx', dims: [3, 224, 224], passes: 3_200 },
} as const;

interface Job {
  bytes: Uint8Array;
  dims: number[];
  batch: number;
  passes: number;
  threads: number;
}

/** A session over the model's bytes, and a loop of `passes` forward passes at `batch` on it. */
async function loop(job: Job): Promise<() => Promise<void>> {
  const opts = { ...sessionOptions('cpu'), intraOpNumThreads: job.threads };
  const session = await ort.InferenceSession.create(job.bytes, opts);
  const name = session.inputNames[0];
  const x = new Float32Array(job.batch * job.dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 1000;
  const feeds = { [name]: new ort.Tensor('float32', x, [job.batch, ...job.dims]) };
  await session.run(feeds); // the arena grows on the first run
  return async () => {
    for (let done = 0; done < job.passes; done += job.batch) await session.run(feeds);
  };
}

async function timed(run: () => Promise<void>): Promise<string> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const c = process.cpuUsage(c0);
  return `${((performance.now() - t0) / 1000).toFixed(2)} s (CPU ${((c.user + c.system) / 1e6).toFixed(2)} s)`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      case: { type: 'string', default: 'mnist' },
      passes: { type: 'string' },
      batch: { type: 'string', default: '32' },
      lanes: { type: 'string', default: '2' },
      repeat: { type: 'string', default: '2' },
      fixtures: { type: 'string' },
    },
  });
  const c = CASES[values.case as keyof typeof CASES];
  if (!c) throw new Error('--case mnist|imagenet');
  const fixtures = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
  const path = join(fixtures, c.model);
  if (!existsSync(path)) return void console.log(`skipped: no fixtures at ${fixtures}`);
  const proto = decodeModel(readFileSync(path), path);
  makeBatchSymbolic(proto, proto.graph!.input![0].name!); // mnist-8 declares a batch of 1
  const bytes = encodeModel(proto);
  const batch = Number(values.batch);
  const passes = Number(values.passes ?? c.passes);
  const lanes = Number(values.lanes);
  const threads = cpuThreads() ?? 1;
  console.log(`${values.case}: ${passes} passes at batch ${batch}; one session at ${threads} threads against ${lanes} lanes at one thread each`);
  for (let r = 0; r < Number(values.repeat); r++) {
    const one = await loop({ bytes, dims: [...c.dims], batch, passes, threads });
    console.log(`  one session: ${await timed(one)}`);
    // under tsx, through its require hook (as views/workers.ts starts the views worker)
    const code = `require(${JSON.stringify(require.resolve('tsx/cjs'))});\nrequire(${JSON.stringify(__filename)});`;
    const workers = Array.from({ length: lanes }, () => new Worker(code, {
      eval: true,
      workerData: { bytes, dims: [...c.dims], batch, passes: Math.ceil(passes / lanes), threads: 1 } satisfies Job,
    }));
    await Promise.all(workers.map((w) => new Promise((ok, fail) => w.once('message', ok).once('error', fail))));
    console.log(`  ${lanes} lanes:     ${await timed(async () => {
      const done = workers.map((w) => new Promise((ok) => w.once('message', ok)));
      for (const w of workers) w.postMessage('go');
      await Promise.all(done);
    })}`);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

if (isMainThread) void main();
else {
  void loop(workerData as Job).then((run) => {
    parentPort!.once('message', () => void run().then(() => parentPort!.postMessage('done')));
    parentPort!.postMessage('ready');
  });
}
