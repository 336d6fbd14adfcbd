/**
 * What a forward pass costs at each batch size: the bare model (its own graph, the engine's
 * session options, memory patterns off as in the view sessions) run over the same number of
 * passes at batch sizes 1 … 76, per pass wall and CPU ms, best of --repeat rounds (the rounds
 * interleave the batch sizes, so a load that drifts hits them alike). It says how to size the
 * view sessions' runs (views/session.ts RUN_PASSES): a batch whose activations fall out of the
 * caches costs more per pass, a small batch pays the per-run fixed cost more often.
 *
 *   node --import tsx bench/batch-sweep.ts [--case imagenet|mnist] [--batches 1,4,8,...] [--passes 384] [--repeat 3]
 *
 * Needs ../shared/fixtures. A diagnostic, not a target.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../server/engine/model';
import { makeBatchSymbolic } from '../server/engine/model/batch';
import { decodeModel, encodeModel } from '../server/engine/model/onnx';
import { sessionOptions } from '../server/engine/model/providers';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'imagenet' },
    batches: { type: 'string' },
    passes: { type: 'string' },
    repeat: { type: 'string', default: '3' },
    fixtures: { type: 'string' },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
const CASES = {
  imagenet: { model: 'models/imagenet_mobilenetv2-12-int8.onnx', preprocess: 'imagenet', batches: '1,2,4,6,8,12,16,24,32,43,50,64,76', passes: 384 },
  mnist: { model: 'models/mnist-8_onnxzoo_cntk.onnx', preprocess: 'unit', batches: '8,32,64,128,256,512,1024,1337,2048', passes: 8192 },
} as const;
const c = CASES[values.case as keyof typeof CASES];
if (!c) throw new Error('--case imagenet|mnist');
const batches = (values.batches ?? c.batches).split(',').map(Number);
const passes = Number(values.passes ?? c.passes);
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

async function main() {
  const path = join(FIXTURES, c.model);
  const model = await loadModel(path, { device: 'cpu', preprocess: c.preprocess });
  const proto = decodeModel(readFileSync(path), path);
  const inputName = proto.graph!.input![0].name!;
  if (model.info.batch.patched) makeBatchSymbolic(proto, inputName);
  const { channels: C, height: H, width: W } = model.info;
  const x = new Float32Array(Math.max(...batches) * C * H * W);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  const best = new Map<number, { wall: number; cpu: number }>();
  console.log(`${c.model}: ${passes} passes per batch size, best of ${values.repeat}, load ${loadavg()[0].toFixed(1)}`);
  for (let r = 0; r < Number(values.repeat); r++) {
    for (const b of batches) {
      // a fresh session per batch size: its arena sized to this batch alone, warmed by two runs
      const session = await ort.InferenceSession.create(encodeModel(proto), sessionOptions(model.device.used, 'all', false));
      const feed = { [inputName]: new ort.Tensor('float32', x.subarray(0, b * C * H * W), [b, C, H, W]) };
      for (let w = 0; w < 2; w++) await session.run(feed);
      const runs = Math.max(1, Math.round(passes / b));
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) await session.run(feed);
      const wall = (performance.now() - t0) / (runs * b);
      const cpu = cpuMs(process.cpuUsage(c0)) / (runs * b);
      await session.release();
      const prev = best.get(b);
      best.set(b, { wall: Math.min(prev?.wall ?? Infinity, wall), cpu: Math.min(prev?.cpu ?? Infinity, cpu) });
    }
  }
  console.log('| batch | wall ms / pass | CPU ms / pass |\n|---|---|---|');
  for (const b of batches) console.log(`| ${b} | ${best.get(b)!.wall.toFixed(3)} | ${best.get(b)!.cpu.toFixed(3)} |`);
  console.log(`load ${loadavg()[0].toFixed(1)}`);
  await model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
