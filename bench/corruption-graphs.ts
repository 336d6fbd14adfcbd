/**
 * What each corruption's view graph costs on the CPU provider: for each corruption, its five
 * severities as one view plan at 224×224 (one ImageNet fixture image), the standalone view graph
 * in one session (the engine's options, memory patterns off as the view sessions have them),
 * timed over repeated runs: the best and the median wall ms per run, the process CPU ms per run
 * (all threads), and the CPU ms of making the per-image inputs on the JavaScript side. With
 * --profile, ONNX Runtime's profiler on a second session per corruption: the costliest nodes
 * (ms per run) and their op types, to find what a view graph spends its time on.
 * With --composed, instead: the corruptions probe's whole plan (the clean view and every
 * corruption at every severity) composed with the fixture MobileNetV2-int8 in one session, as
 * the probe runs it (views/session.ts viewsFor), one image per run; with --profile, its costliest
 * nodes, view nodes (skeptic_view_*) and the model's apart, the first two runs left out (the
 * arena grows there). With --chunk-rows a,b,... (a number, or `default` for the provider's rows),
 * one composed session per value, the model in slices of that many rows, their runs taking turns.
 *
 *   node --import tsx bench/corruption-graphs.ts [--corruptions a,b,...] [--runs 12] [--profile] [--top 8]
 *                                                [--fixtures DIR] [--size 224] [--composed [--chunk-rows 19,default]]
 *
 * A diagnostic beside bench/audit.ts (which holds the target). On a shared machine take the best
 * of several invocations.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { CORRUPTIONS, type CorruptionName } from '../server/engine/image/corrupt';
import { loadModel } from '../server/engine/model';
import { sessionOptions } from '../server/engine/model/providers';
import { MODEL_CHUNK_PREFIX } from '../server/engine/views/model-chunks';
import { setModelChunkRows, viewsFor } from '../server/engine/views/session';
import { corruptionViews } from '../server/engine/views/corruptions';
import { standaloneViewModel, VIEW_INPUT, VIEW_INPUT_C } from '../server/engine/views/graph';
import { imagenetCSlots, slotCounts, type ViewPlan } from '../server/engine/views/plan';
import type { PixelImage } from '../server/engine/types';

const { values } = parseArgs({
  options: {
    corruptions: { type: 'string' },
    runs: { type: 'string', default: '12' },
    profile: { type: 'boolean', default: false },
    top: { type: 'string', default: '8' },
    fixtures: { type: 'string' },
    size: { type: 'string', default: '224' },
    composed: { type: 'boolean', default: false },
    'chunk-rows': { type: 'string' },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
const S = Number(values.size);
const RUNS = Number(values.runs);
const names = (values.corruptions?.split(',') ?? CORRUPTIONS) as CorruptionName[];

function feeds(plan: ViewPlan, img: PixelImage, inputs: Awaited<ReturnType<ReturnType<typeof corruptionViews>['inputs']>>): Record<string, ort.Tensor> {
  const { channels: C, height: H, width: W } = plan;
  const slots = slotCounts(plan);
  const c = imagenetCSlots(plan);
  const f: Record<string, ort.Tensor> = { [VIEW_INPUT.src]: new ort.Tensor('float32', img.data, [1, C, H, W]) };
  if (slots.noise) f[VIEW_INPUT.noise] = new ort.Tensor('float32', inputs.noise!, [1, slots.noise, C, H, W, 2]);
  if (slots.given) f[VIEW_INPUT.given] = new ort.Tensor('float32', inputs.given!, [1, slots.given, C, H, W]);
  if (c.layer) f[VIEW_INPUT_C.layer] = new ort.Tensor('float32', inputs.layer!, [1, c.layer, C, H, W]);
  if (c.index) f[VIEW_INPUT_C.index] = new ort.Tensor('int32', inputs.index!, [1, c.index, H * W]);
  if (c.weight) f[VIEW_INPUT_C.weight] = new ort.Tensor('float32', inputs.weight!, [1, c.weight, H * W]);
  return f;
}

interface Event {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}

async function loadImage(): Promise<PixelImage> {
  const file = join(FIXTURES, 'imagenet_samples/images/n01440764_tench.JPEG');
  const { data } = await sharp(file).resize(S, S).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const img: PixelImage = { channels: 3, height: S, width: S, data: new Float32Array(3 * S * S) };
  for (let ch = 0; ch < 3; ch++) for (let p = 0; p < S * S; p++) img.data[ch * S * S + p] = data[p * 3 + ch] / 255;
  return img;
}

/** The corruptions probe's plan composed with the model, one image per run (see the header). */
async function composed() {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cgraph-'));
  if (values.profile) {
    const Session = ort.InferenceSession as unknown as { create: (bytes: unknown, opts?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession> };
    const create = Session.create.bind(Session);
    let k = 0;
    Session.create = (bytes: unknown, opts?: ort.InferenceSession.SessionOptions) => create(bytes, { ...(opts ?? {}), enableProfiling: true, profileFilePrefix: join(dir, `s${k++}`) });
  }
  // one arm per --chunk-rows value (the model's rows per slice; 'default' the provider's), each
  // its own loaded model and session, their runs alternating so that a drifting machine hits
  // them alike
  const arms = (values['chunk-rows'] ?? 'default').split(',');
  const img = await loadImage();
  const made = corruptionViews(names.flatMap((n) => [1, 2, 3, 4, 5].map((s) => [n, s] as [CorruptionName, number])), S, S);
  const plan: ViewPlan = { channels: 3, height: S, width: S, margin: 0, ops: [{ kind: 'crop', top: 0, left: 0 }, ...made.ops] };
  const inputs = await made.inputs(img, (_n, s) => 1234 + s);
  const built: Array<{ arm: string; model: Awaited<ReturnType<typeof loadModel>>; runner: Awaited<ReturnType<typeof viewsFor>>; walls: number[]; cpu: number }> = [];
  for (const arm of arms) {
    setModelChunkRows(arm === 'default' ? undefined : Number(arm));
    const model = await loadModel(join(FIXTURES, 'models/imagenet_mobilenetv2-12-int8.onnx'), { device: 'cpu', preprocess: 'imagenet' });
    built.push({ arm, model, runner: await viewsFor(model, plan), walls: [], cpu: 0 });
  }
  setModelChunkRows(undefined);
  for (let i = 0; i < RUNS + 2; i++) {
    for (const a of built) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await a.runner.predict([{ source: img, inputs }]);
      const t = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (i >= 2) (a.walls.push(t), (a.cpu += (c.user + c.system) / 1000));
    }
  }
  for (const a of built) {
    a.walls.sort((x, y) => x - y);
    const rows = arms.length > 1 ? `, model rows a slice ${a.arm}` : '';
    console.log(`${a.runner.mode} session${rows}, ${plan.ops.length} views of one ${S}×${S} image a run, ${RUNS} runs: best ${a.walls[0].toFixed(1)} ms, median ${a.walls[a.walls.length >> 1].toFixed(1)} ms, CPU ${(a.cpu / RUNS).toFixed(1)} ms a run`);
    await a.model.dispose();
  }
  if (values.profile) {
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      const events = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Event[];
      const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
      if (events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length < RUNS) continue;
      report(nodes, RUNS + 2, 2);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

async function main() {
  if (values.composed) return composed();
  const img = await loadImage();
  console.log(`per corruption, 5 severities on one ${S}×${S} image, ${RUNS} runs (ms per run)`);
  console.log(`${'corruption'.padEnd(20)} ${'best'.padStart(7)} ${'median'.padStart(7)} ${'cpu'.padStart(7)} ${'js'.padStart(7)}`);
  let total = 0;
  for (const name of names) {
    const made = corruptionViews([1, 2, 3, 4, 5].map((s) => [name, s] as [CorruptionName, number]), S, S);
    const plan: ViewPlan = { channels: 3, height: S, width: S, margin: 0, ops: made.ops };
    const built = standaloneViewModel(plan, 13, true);
    const session = await ort.InferenceSession.create(built.bytes, sessionOptions('cpu', 'all', false));
    const jsT0 = process.cpuUsage();
    const inputs = await made.inputs(img, (_n, s) => 1234 + s);
    const js = process.cpuUsage(jsT0);
    const f = feeds(plan, img, inputs);
    const walls: number[] = [];
    let cpu = 0;
    for (let i = 0; i < RUNS + 2; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await session.run(f, [built.output]);
      const t = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (i >= 2) (walls.push(t), (cpu += (c.user + c.system) / 1000));
    }
    await session.release();
    walls.sort((a, b) => a - b);
    total += walls[0];
    console.log(`${name.padEnd(20)} ${walls[0].toFixed(1).padStart(7)} ${walls[walls.length >> 1].toFixed(1).padStart(7)} ${(cpu / RUNS).toFixed(1).padStart(7)} ${((js.user + js.system) / 1000).toFixed(1).padStart(7)}`);
    if (values.profile) await profile(built.bytes, built.output, f);
  }
  console.log(`${'sum of best'.padEnd(20)} ${total.toFixed(1).padStart(7)}`);
}

async function profile(bytes: Uint8Array, output: string, f: Record<string, ort.Tensor>) {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cgraph-'));
  const session = await ort.InferenceSession.create(bytes, { ...sessionOptions('cpu', 'all', false), enableProfiling: true, profileFilePrefix: join(dir, 'p') });
  const runs = Math.max(3, Math.min(RUNS, 6));
  for (let i = 0; i < runs + 1; i++) await session.run(f, [output]);
  await session.release();
  const events = JSON.parse(readFileSync(join(dir, readdirSync(dir).find((x) => x.endsWith('.json'))!), 'utf8')) as Event[];
  rmSync(dir, { recursive: true, force: true });
  report(events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time')), runs + 1, 1);
}

/** Per-node mean ms per run over the runs after the first `skip` (each node's events in run order). */
function report(nodes: Event[], runs: number, skip: number) {
  const byNode = new Map<string, { us: number[]; op: string }>();
  for (const e of nodes) {
    const name = e.name.replace(/_kernel_time$/, '');
    const n = byNode.get(name) ?? { us: [], op: e.args?.op_name ?? '?' };
    n.us.push(e.dur);
    byNode.set(name, n);
  }
  const per = [...byNode].map(([name, n]) => {
    const perRun = n.us.length / runs;
    return { name, op: n.op, view: name.startsWith('skeptic_view_') && !name.startsWith(MODEL_CHUNK_PREFIX), ms: n.us.slice(skip * perRun).reduce((a, b) => a + b, 0) / 1000 / (runs - skip) };
  });
  const sum = (ps: typeof per) => ps.reduce((a, p) => a + p.ms, 0);
  const views = per.filter((p) => p.view);
  const byOp = new Map<string, number>();
  for (const p of per) byOp.set(`${p.view ? '' : 'model '}${p.op}`, (byOp.get(`${p.view ? '' : 'model '}${p.op}`) ?? 0) + p.ms);
  const ops = [...byOp].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top)).map(([op, ms]) => `${op} ${ms.toFixed(2)}`);
  console.log(`    ${per.length} nodes, ${sum(per).toFixed(1)} ms in kernels per run (view nodes ${sum(views).toFixed(1)}, the rest ${(sum(per) - sum(views)).toFixed(1)}); by op: ${ops.join(', ')}`);
  const list = views.length < per.length ? views : per;
  if (views.length < per.length) console.log('    costliest view nodes');
  for (const p of list.sort((a, b) => b.ms - a.ms).slice(0, Number(values.top))) console.log(`    ${p.name.slice(0, 44).padEnd(44)} ${p.op.padEnd(16)} ${p.ms.toFixed(2).padStart(7)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
