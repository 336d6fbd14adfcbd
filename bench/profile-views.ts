/**
 * Where the view sessions spend their time: runs one probe of the audit on a few fixture images
 * with ONNX Runtime's own profiler on every session the engine creates, then sums the per-node
 * kernel times per session by op type (and lists the costliest nodes), beside the time the same
 * session spent in whole runs. The view nodes are the ones named skeptic_view_*; the rest is the
 * model (its preprocessing included, and the model's copies over slices of a run, with the nodes
 * that slice and concatenate: views/model-chunks.ts).
 *
 *   node --import tsx bench/profile-views.ts [--case imagenet|mnist] [--probes corruptions] [--images 4]
 *                                            [--top 15] [--keep DIR] [--run-passes N] [--chunk-rows N]
 *                                            [--views-webgpu]  (the view graphs WebGPU gets, on the CPU)
 *
 * Needs ../shared/fixtures. A diagnostic, not a target: bench/audit.ts holds the target.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel } from '../server/engine/model';
import { createProbes } from '../server/engine/probes';
import { setModelChunkRows, setViewKernels, setViewRunPasses } from '../server/engine/views';
import { viewKernels } from '../server/engine/model/providers';
import { MODEL_CHUNK_PREFIX } from '../server/engine/views/model-chunks';
import { caseModelOptions } from './cases';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'imagenet' },
    probes: { type: 'string', default: 'corruptions' },
    images: { type: 'string' },
    top: { type: 'string', default: '15' },
    keep: { type: 'string' },
    fixtures: { type: 'string' },
    batch: { type: 'string', default: '32' },
    'run-passes': { type: 'string' },
    'chunk-rows': { type: 'string' },
    'views-webgpu': { type: 'boolean', default: false },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
const CASES = {
  imagenet: { model: 'models/imagenet_mobilenetv2-12-int8.onnx', data: 'imagenet_samples/labels.csv', preprocess: 'imagenet', labels: 'labels/imagenet_1k_wnids_names.txt', images: 4 },
  mnist: { model: 'models/mnist-8_onnxzoo_cntk.onnx', data: 'mnist', preprocess: 'unit', labels: undefined, images: 256 },
} as const;
const c = CASES[values.case as keyof typeof CASES];
if (values['run-passes']) setViewRunPasses(Number(values['run-passes']));
if (values['chunk-rows']) setModelChunkRows(Number(values['chunk-rows']));
if (values['views-webgpu']) setViewKernels(viewKernels('webgpu'));
if (!c) throw new Error(`--case imagenet|mnist`);

const dir = values.keep ? resolve(values.keep) : mkdtempSync(join(tmpdir(), 'skeptic-profile-'));
mkdirSync(dir, { recursive: true });
let made = 0;
const Session = ort.InferenceSession as unknown as { create: (bytes: unknown, opts?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession> };
const origCreate = Session.create.bind(Session);
Session.create = (bytes: unknown, opts?: ort.InferenceSession.SessionOptions) =>
  origCreate(bytes, { ...(opts ?? {}), enableProfiling: true, profileFilePrefix: join(dir, `s${made++}`) });

interface Event {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

async function main() {
  const model = await loadModel(join(FIXTURES, c.model), caseModelOptions(c, FIXTURES, { batchSize: Number(values.batch) }));
  const ds = await openDataset(join(FIXTURES, c.data), { labels: model.labels, limit: Number(values.images ?? c.images) });
  const t0 = performance.now();
  await audit(model, ds, { probes: createProbes(values.probes!.split(',')), batchSize: Number(values.batch) });
  console.log(`audit ${(performance.now() - t0).toFixed(0)} ms (profiling on)`);
  await model.dispose();
  const top = Number(values.top);
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const events = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Event[];
    const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
    if (!runs.length) continue;
    const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
    const runUs = runs.reduce((a, e) => a + e.dur, 0);
    const byOp = new Map<string, { us: number; n: number; view: number }>();
    const byNode = new Map<string, { us: number; op: string }>();
    let viewUs = 0;
    for (const e of nodes) {
      const op = e.args?.op_name ?? '?';
      const name = e.name.replace(/_kernel_time$/, '');
      const isView = name.startsWith('skeptic_view_') && !name.startsWith(MODEL_CHUNK_PREFIX);
      if (isView) viewUs += e.dur;
      const o = byOp.get(`${isView ? 'view ' : 'model '}${op}`) ?? { us: 0, n: 0, view: 0 };
      o.us += e.dur;
      o.n++;
      byOp.set(`${isView ? 'view ' : 'model '}${op}`, o);
      const nn = byNode.get(name) ?? { us: 0, op };
      nn.us += e.dur;
      byNode.set(name, nn);
    }
    const nodeUs = nodes.reduce((a, e) => a + e.dur, 0);
    console.log(`\n${f}: ${runs.length} runs, ${(runUs / 1000).toFixed(0)} ms in runs, ${(nodeUs / 1000).toFixed(0)} ms in kernels (view nodes ${(viewUs / 1000).toFixed(0)} ms, model ${((nodeUs - viewUs) / 1000).toFixed(0)} ms)`);
    console.log('  by op type                         ms     calls');
    for (const [op, o] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, top)) {
      console.log(`  ${op.padEnd(30)} ${(o.us / 1000).toFixed(1).padStart(8)} ${String(o.n).padStart(8)}`);
    }
    console.log('  costliest nodes');
    for (const [name, o] of [...byNode].sort((a, b) => b[1].us - a[1].us).slice(0, top)) {
      console.log(`  ${name.slice(0, 48).padEnd(48)} ${o.op.padEnd(16)} ${(o.us / 1000).toFixed(1).padStart(8)} ms`);
    }
  }
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
