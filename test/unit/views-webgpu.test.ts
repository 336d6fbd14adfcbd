/**
 * The view graphs for ONNX Runtime's WebGPU provider. Its kernels take no float64 (WGSL has no
 * 64-bit floats), no int64 data (only indices and shapes) and have no Sum; a node it has no
 * kernel for runs on the CPU, between copies. So the graphs do their index arithmetic in int32
 * everywhere, and for WebGPU do in float32 what they do in float64 on the CPU and CUDA (to stay
 * bit-close to the JavaScript references) and add with Adds. Here: no float64 tensor or Sum is
 * left in those graphs (and the CPU's graphs have both, so the check can fail), the audit's
 * sessions get them when the provider says so, their views equal the independent JavaScript
 * loops within float32 rounding (views.test.ts holds the CPU's graphs to the same loops,
 * tighter), and, on WebGPU itself (SwiftShader's software Vulkan, where Chromium is installed),
 * every node that touches the image runs on the GPU and computes the CPU's views.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { compositePlan, compositeSource } from '../../server/engine/cue/composite';
import { compose, fromBytes01, quiltTexture, shapeCarrier, shapeMaterial, toBytes01 } from '../../server/engine/cue/generate';
import { brightness, contrast, CORRUPTIONS, corrupt, EXTRA_CORRUPTIONS } from '../../server/engine/image/corrupt';
import { loadModel } from '../../server/engine/model';
import { decodeModel } from '../../server/engine/model/onnx';
import { isWebgpuMissingOp, viewKernels } from '../../server/engine/model/providers';
import { canvasFill, patchOnCanvas } from '../../server/engine/probes/patches';
import { GENERATED_SETS, generateOod, oodViews } from '../../server/engine/probes/ood';
import { derivedSeed, mulberry32 } from '../../server/engine/random';
import type { PixelImage } from '../../server/engine/types';
import { image, maxDiff } from './helpers/pixels';
import { makeViews, setViewKernels, slotCounts, standaloneViewModel, type ViewOp, type ViewPlan, type ViewSource } from '../../server/engine/views';
import { corruptionViews } from '../../server/engine/views/corruptions';
import { composedModel, feedsFor } from '../../server/engine/views/session';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';
import { runOnWebgpu, softwareWebgpuMissing, SWIFTSHADER_ICD } from './helpers/webgpu';

const WEBGPU = viewKernels('webgpu');

const DOUBLE = 11;

const viewOf = (out: Float32Array, plan: ViewPlan, j: number) => {
  const per = plan.channels * plan.height * plan.width;
  return out.subarray(j * per, (j + 1) * per);
};

/** Where an ONNX graph's nodes (those named `prefix`…, or all) would need float64 (constants, Casts to it, graph inputs) or a Sum. */
function webgpuMisfits(bytes: Uint8Array, prefix = ''): string[] {
  const g = decodeModel(bytes, 'graph').graph!;
  const uses: string[] = [];
  for (const t of g.initializer ?? []) if (t.dataType === DOUBLE && t.name?.startsWith(prefix)) uses.push(`constant ${t.name}`);
  for (const n of g.node ?? []) {
    if (!n.name?.startsWith(prefix)) continue;
    if (n.opType === 'Cast' && n.attribute?.some((a) => a.name === 'to' && Number(a.i) === DOUBLE)) uses.push(`Cast ${n.name}`);
    if (n.opType === 'Sum') uses.push(`Sum ${n.name}`);
  }
  for (const v of g.input ?? []) if (v.type?.tensorType?.elemType === DOUBLE) uses.push(`input ${v.name}`);
  return uses;
}

/** Every corruption and extra at severities 1 and 5. */
const CORRUPTION_LIST = [...CORRUPTIONS, ...EXTRA_CORRUPTIONS].flatMap((name) => [1, 5].map((s): [typeof name, number] => [name, s]));

/** A cue-conflict stimulus: a shape (a bright rectangle on noise, so a silhouette is found) and a quilted texture. */
function cueStimulus(C: 1 | 3, H: number, k: number): { shape: PixelImage; texture: PixelImage } {
  const shape = image(C, H, H, 11 + k);
  for (let y = 2; y < H - 3; y++) for (let x = 3; x < H - 2; x++) for (let c = 0; c < C; c++) shape.data[(c * H + y) * H + x] = 0.8 - 0.1 * c;
  const texture = fromBytes01(toBytes01(quiltTexture(image(C, H, H, 13 + k), undefined, mulberry32(5 + k))), C, H, H);
  return { shape, texture };
}

/** Plans with every view kind that does float64 arithmetic on the CPU, and the others beside them. */
function plans(C: 1 | 3, H: number): Array<[string, ViewPlan]> {
  const plan = (ops: ViewOp[]): ViewPlan => ({ channels: C, height: H, width: H, margin: 0, ops });
  return [
    ['photometric', plan([{ kind: 'brightness', delta: 0.3 }, { kind: 'brightness', delta: 0.5 }, { kind: 'contrast', factor: 0.2 }])],
    ['corruptions', plan(corruptionViews(CORRUPTION_LIST, H, H).ops)],
    ['ood', plan(oodViews([...GENERATED_SETS], C, H, H, 4).ops)],
    ['patches', plan([{ kind: 'patch', top: 1, left: 2, size: 4, fill: 'mean' }, { kind: 'patch', top: 0, left: 0, size: 0, fill: 'mean' }, { kind: 'tiles', rows: [0, 5, H], cols: [0, 6, H], slot: 0 }])],
    ['cue-conflict', compositePlan(C, H, H)],
  ];
}

test('the view graphs for WebGPU hold no float64 tensor and no Sum; the CPU\'s graphs sum in float64 for every kind that does, and zoom blur with a Sum', () => {
  assert.deepEqual(WEBGPU, { float64: false, sum: false });
  assert.deepEqual(viewKernels('cpu'), { float64: true, sum: true });
  assert.deepEqual(viewKernels('cuda'), { float64: true, sum: true });
  for (const [C, H] of [[1, 12], [3, 24]] as const) {
    for (const [name, plan] of plans(C, H)) {
      for (const one of [false, true]) {
        const cpu = webgpuMisfits(standaloneViewModel(plan, 13, one).bytes);
        assert.ok(cpu.some((u) => !u.startsWith('Sum')), `${name} at ${C}×${H}: the CPU's graph sums in float64`);
        if (name === 'corruptions') assert.ok(cpu.some((u) => u.startsWith('Sum')), 'zoom blur adds its layers with a Sum on the CPU');
        assert.deepEqual(webgpuMisfits(standaloneViewModel(plan, 13, one, WEBGPU).bytes), [], `${name} at ${C}×${H}, one source a run: ${one}`);
      }
    }
  }
});

test('the audit\'s composed sessions take the view graph for WebGPU\'s kernels when asked, and the CPU\'s otherwise', async () => {
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const { channels: C, height: H, width: W } = model.info;
  const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: [{ kind: 'brightness', delta: 0.2 }, { kind: 'contrast', factor: 0.3 }, { kind: 'rotate', degrees: 15 }] };
  try {
    const uses = async () => {
      const built = await composedModel(model, plan, 4);
      assert.ok('bytes' in built, 'reason' in built ? built.reason : '');
      return webgpuMisfits(built.bytes, 'skeptic_view_');
    };
    assert.ok((await uses()).length > 0, 'on the CPU the views sum in float64');
    setViewKernels(WEBGPU);
    assert.deepEqual(await uses(), [], 'as a WebGPU session gets them');
  } finally {
    setViewKernels(undefined);
    await model.dispose();
  }
});

test('the view graphs for WebGPU equal the JavaScript loops within float32 rounding: every corruption (glass blur within a level), brightness, contrast, the ood sets, mean-colour patches, cue-conflict\'s composition', async () => {
  const seed = (name: string, s: number) => derivedSeed(7, `corruptions/${name}/${s}`, 'sha');
  for (const [C, H] of [[1, 12], [3, 70]] as const) {
    const src = image(C, H, H, 99 + C, 255);
    const list = [...CORRUPTIONS, ...EXTRA_CORRUPTIONS].flatMap((name) => [1, 3, 5].map((s): [typeof name, number] => [name, s]));
    const made = corruptionViews(list, H, H);
    const plan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: made.ops };
    const out = await makeViews(plan, [{ source: src, inputs: await made.inputs(src, seed) }], WEBGPU);
    for (let j = 0; j < list.length; j++) {
      const [name, s] = list[j];
      const want = await corrupt(src, name, s, mulberry32(seed(name, s)));
      const d = maxDiff(viewOf(out, plan, j), want.data);
      // glass blur truncates its first blur to 8 bits: a float32 sum may land on the next level
      const bound = name === 'glass_blur' ? 1 / 255 + 1e-6 : 1e-5;
      assert.ok(d <= bound, `${name} severity ${s} at ${C}×${H}×${H}: max |diff| ${d}`);
    }

    const photometric: Array<[ViewOp, PixelImage]> = [
      [{ kind: 'brightness', delta: 0.1 }, brightness(src, 0.1)],
      [{ kind: 'brightness', delta: 0.5 }, brightness(src, 0.5)],
      [{ kind: 'contrast', factor: 0.05 }, contrast(src, 0.05)],
      [{ kind: 'patch', top: 2, left: 3, size: 5, fill: 'mean' }, patchOnCanvas(src, 2, 3, 5, canvasFill(src, 'mean'))],
    ];
    const pplan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: photometric.map(([op]) => op) };
    const pout = await makeViews(pplan, [{ source: src }], WEBGPU);
    photometric.forEach(([op, want], j) => assert.ok(maxDiff(viewOf(pout, pplan, j), want.data) <= 1e-5, `${JSON.stringify(op)} at ${C}×${H}×${H}`));

    const ood = oodViews([...GENERATED_SETS], C, H, H, 8);
    const oplan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: ood.ops };
    const oout = await makeViews(oplan, [{ source: src, inputs: ood.inputs(src, (set) => derivedSeed(3, `ood/${set}`, 'sha')) }], WEBGPU);
    GENERATED_SETS.forEach((set, j) => {
      const d = maxDiff(viewOf(oout, oplan, j), generateOod(set, src, 3, 'sha', 8).data);
      assert.ok(d <= 1e-5, `ood ${set} at ${C}×${H}×${H}: ${d}`);
    });

    const { shape, texture } = cueStimulus(C, H, C);
    const want = compose(shapeCarrier(shape), texture).data;
    const cout = await makeViews(compositePlan(C, H, H), [compositeSource(shapeMaterial(shape), texture)], WEBGPU);
    assert.ok(maxDiff(cout, want) <= 1e-5, `composite at ${C}×${H}×${H}: ${maxDiff(cout, want)}`);
  }
});

/** Every view plan the probes build, with a source for it: [name, plan, sources]. */
async function cases(C: 1 | 3, H: number): Promise<Array<[string, ViewPlan, ViewSource[]]>> {
  const m = 3;
  const src = (k: number, margin = 0) => image(C, H + 2 * margin, H + 2 * margin, 40 + 7 * k + C, 255);
  const shifts = [-2, -1, 0, 1, 2];
  const shift: ViewPlan = {
    channels: C, height: H, width: H, margin: m,
    ops: [...shifts.map((dx): ViewOp => ({ kind: 'crop', top: m, left: m - dx })), ...shifts.map((dy): ViewOp => ({ kind: 'crop', top: m - dy, left: m })), ...[0, 1, 2].map((slot): ViewOp => ({ kind: 'embed', slot }))],
  };
  const embed = (k: number) => [0, 0, 1, 3, H - 2, 5].map((v) => v + k);
  const out: Array<[string, ViewPlan, ViewSource[]]> = [['shift', shift, [0, 1].map((k) => ({ source: src(k, m), inputs: { embed: embed(k) } }))]];
  const corruptionInputs = corruptionViews(CORRUPTION_LIST, H, H);
  const oodInputs = oodViews([...GENERATED_SETS], C, H, H, 4);
  for (const [name, plan] of plans(C, H)) {
    const sources: ViewSource[] = [];
    for (const k of [0, 1]) {
      const source = src(k);
      if (name === 'corruptions') sources.push({ source, inputs: await corruptionInputs.inputs(source, (n, s) => derivedSeed(k, `corruptions/${n}/${s}`, 'sha')) });
      else if (name === 'ood') sources.push({ source, inputs: oodInputs.inputs(source, (set) => derivedSeed(k, `ood/${set}`, 'sha')) });
      else if (name === 'patches') sources.push({ source, inputs: { perm: k ? [3, 0, 2, 1] : [1, 2, 3, 0] } });
      else if (name === 'cue-conflict') {
        const { shape, texture } = cueStimulus(C, H, k);
        sources.push(compositeSource(shapeMaterial(shape), texture));
      } else sources.push({ source });
    }
    out.push([name, plan, sources]);
  }
  return out;
}

/** Nodes that read only integer feeds (embed positions, permutations), constants and shapes: small host-side arithmetic ORT may leave to the CPU, where those feeds are anyway. */
function hostSide(bytes: Uint8Array): Set<string> {
  const g = decodeModel(bytes, 'graph').graph!;
  const host = new Set<string>(['']);
  for (const t of g.initializer ?? []) host.add(t.name!);
  for (const v of g.input ?? []) if (v.type?.tensorType?.elemType !== 1) host.add(v.name!);
  const nodes = new Set<string>();
  for (const n of g.node ?? []) {
    if (n.opType === 'Shape' || (n.input ?? []).every((i) => host.has(i))) {
      for (const o of n.output ?? []) host.add(o);
      nodes.add(n.name!);
    }
  }
  return nodes;
}

const webgpuMissing = softwareWebgpuMissing();
const requireWebgpu = process.env.SKEPTIC_REQUIRE_WEBGPU === '1';
test('on WebGPU (SwiftShader\'s software Vulkan) every node of every probe\'s view graph that touches the image runs on the GPU, one source a run and two, and the views are the CPU\'s within float32 rounding', { skip: !requireWebgpu && webgpuMissing }, async () => {
  assert.equal(webgpuMissing, undefined, 'SKEPTIC_REQUIRE_WEBGPU=1 but the software WebGPU is missing');
  const jobs: Array<{ name: string; plan: ViewPlan; one: boolean; bytes: Uint8Array; want: Float32Array; feeds: Record<string, import('onnxruntime-node').Tensor>; output: string }> = [];
  // 72² is past the small-image embeddings (two MatMuls up to 64²): the index-map ones
  for (const [C, H] of [[1, 28], [3, 40], [3, 72]] as const) {
    for (const [name, plan, sources] of await cases(C, H)) {
      if (H === 72 && name !== 'shift') continue;
      for (const one of [true, false]) {
        const run = one ? sources.slice(0, 1) : sources;
        const built = standaloneViewModel(plan, 13, one, WEBGPU);
        jobs.push({ name: `${name} at ${C}×${H}×${H}${one ? '' : ', two sources'}`, plan, one, bytes: built.bytes, output: built.output, feeds: feedsFor(plan, slotCounts(plan), run), want: await makeViews(plan, run, WEBGPU) });
      }
    }
  }
  const runs = runOnWebgpu(jobs.map((j) => ({ bytes: j.bytes, feeds: j.feeds, output: j.output })));
  jobs.forEach((j, k) => {
    const host = hostSide(j.bytes);
    const offGpu = runs[k].cpuNodes.filter((n) => !host.has(n.split('/')[0]));
    assert.deepEqual(offGpu, [], `${j.name}: nodes on the CPU`);
    const got = runs[k].output!;
    assert.equal(got.length, j.want.length);
    let d = 0;
    for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - j.want[i]));
    // WGSL's log and cos are looser than the CPU's (Box–Muller's noise: ~1e-4 here), and glass
    // blur's truncation to 8 bits may then land on the next level; the rest is float32 rounding
    const bound = j.name.startsWith('corruptions') ? 1 / 255 + 1e-6 : j.name.startsWith('ood') ? 1e-3 : 1e-6;
    assert.ok(d <= bound, `${j.name}: max |GPU − CPU| ${d}`);
  });
});

test('on WebGPU (SwiftShader) the audit\'s composed sessions run the views and the model (the project\'s demo CNN) on the GPU, its slices of a run included', { skip: !requireWebgpu && webgpuMissing }, async () => {
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const { channels: C, height: H } = model.info;
  setViewKernels(WEBGPU);
  try {
    const built: Uint8Array[] = [];
    for (const [name, plan] of await cases(C as 1 | 3, H)) {
      if (plan.width !== model.info.width) continue;
      for (const perRun of [1, 40]) {
        const composed = await composedModel(model, plan, perRun, undefined, 2);
        assert.ok('bytes' in composed, `${name}: ${'reason' in composed ? composed.reason : ''}`);
        built.push(composed.bytes);
      }
    }
    assert.ok(built.length >= 10);
    runOnWebgpu(built.map((bytes) => ({ bytes }))).forEach((r, k) => {
      const host = hostSide(built[k]);
      assert.deepEqual(r.cpuNodes.filter((n) => !host.has(n.split('/')[0])), [], `composed graph ${k}: nodes on the CPU`);
    });
  } finally {
    setViewKernels(undefined);
    await model.dispose();
  }
});

const INT8 = join(resolve(__dirname, '../../../shared/fixtures'), 'models/imagenet_mobilenetv2-12-int8.onnx');
test('on WebGPU (SwiftShader) ONNX Runtime leaves MobileNetV2-int8\'s quantized nodes to the CPU, as providers.ts isWebgpuMissingOp says (why device auto passes over WebGPU for such models)', { skip: (!requireWebgpu && webgpuMissing) || (!existsSync(INT8) && 'no fixtures') }, () => {
  const [run] = runOnWebgpu([{ bytes: readFileSync(INT8) }]);
  const cpu = run.ops.CPUExecutionProvider ?? {};
  const gpu = run.ops.WebGpuExecutionProvider ?? {};
  const missing = Object.keys(cpu).filter(isWebgpuMissingOp);
  assert.ok(['QLinearConv', 'QLinearAdd', 'QLinearMatMul', 'QuantizeLinear'].every((op) => missing.includes(op)), `on the CPU: ${JSON.stringify(cpu)}`);
  assert.deepEqual(Object.keys(gpu).filter(isWebgpuMissingOp), [], `on WebGPU: ${JSON.stringify(gpu)}`);
  const onCpu = Object.values(cpu).reduce((a, n) => a + n, 0);
  const onGpu = Object.values(gpu).reduce((a, n) => a + n, 0);
  assert.ok(onCpu > 5 * onGpu, `${onCpu} nodes on the CPU, ${onGpu} on WebGPU`);
});

/** Every numeric leaf under x, by path. */
function leaves(x: unknown, path: string, out: Map<string, number>): Map<string, number> {
  if (typeof x === 'number') out.set(path, x);
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) leaves(v, `${path}.${k}`, out);
  return out;
}

test('on WebGPU (SwiftShader) an audit gives the CPU\'s report: the CLI on the demo model, 8 images, the default probes, every metric within float rounding', { skip: !requireWebgpu && webgpuMissing }, () => {
  const ROOT = resolve(__dirname, '../..');
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-webgpu-audit-'));
  try {
    ensureDemoData();
    const reports = (['cpu', 'webgpu'] as const).map((device) => {
      const out = join(dir, device);
      const r = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), 'audit', DEMO_MODEL, '--data', DEMO_TEST, '--limit', '8', '--device', device, '--no-cache', '--out', out, '--quiet'], {
        encoding: 'utf8', timeout: 300_000, env: { ...process.env, VK_ICD_FILENAMES: SWIFTSHADER_ICD },
      });
      assert.ok(r.status === 0 || r.status === 1, `${device}: exit ${r.status}\n${r.stderr}`);
      return JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { device: { used: string }; probes: Record<string, { metrics: unknown }> };
    });
    const [cpu, gpu] = reports;
    assert.equal(gpu.device.used, 'webgpu', 'the audit ran on WebGPU');
    assert.deepEqual(Object.keys(gpu.probes), Object.keys(cpu.probes));
    for (const id of Object.keys(cpu.probes)) {
      const a = leaves(cpu.probes[id].metrics, id, new Map());
      const b = leaves(gpu.probes[id].metrics, id, new Map());
      assert.deepEqual([...b.keys()], [...a.keys()], `${id}: the same metrics`);
      // the model's and the views' float32 arithmetic on the GPU (OOD energies: ~2e-4 of ~10)
      for (const [k, v] of a) assert.ok(Math.abs(b.get(k)! - v) <= 1e-4 * Math.max(1, Math.abs(v)), `${k}: ${v} on the CPU, ${b.get(k)} on WebGPU`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
