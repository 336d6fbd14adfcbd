/**
 * The view graphs for a provider without float64 (WebGPU: WGSL has no 64-bit floats). The graphs
 * keep some arithmetic in float64 on the CPU and CUDA, to stay bit-close to the JavaScript
 * references; for WebGPU they do it in float32, so that no node needs a float64 kernel and falls
 * back to the CPU between copies. Here: no float64 tensor is left in those graphs (and the
 * float64 graphs do have some, so the check can fail), the audit's sessions get them when the
 * provider says so, and their views equal the independent JavaScript loops within float32
 * rounding (views.test.ts holds the float64 graphs to the same loops, tighter).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compositePlan, compositeSource } from '../../server/engine/cue/composite';
import { compose, fromBytes01, quiltTexture, shapeCarrier, shapeMaterial, toBytes01 } from '../../server/engine/cue/generate';
import { brightness, contrast, CORRUPTIONS, corrupt, EXTRA_CORRUPTIONS } from '../../server/engine/image/corrupt';
import { loadModel } from '../../server/engine/model';
import { decodeModel } from '../../server/engine/model/onnx';
import { providerHasFloat64 } from '../../server/engine/model/providers';
import { canvasFill, patchOnCanvas } from '../../server/engine/probes/patches';
import { GENERATED_SETS, generateOod, oodViews } from '../../server/engine/probes/ood';
import { derivedSeed, mulberry32 } from '../../server/engine/random';
import type { PixelImage } from '../../server/engine/types';
import { makeViews, setViewsFloat64, standaloneViewModel, type ViewOp, type ViewPlan } from '../../server/engine/views';
import { corruptionViews } from '../../server/engine/views/corruptions';
import { composedModel } from '../../server/engine/views/session';
import { DEMO_MODEL } from './helpers/demo';

const DOUBLE = 11;

function image(C: number, H: number, W: number, seed: number, quantum = 0): PixelImage {
  const data = new Float32Array(C * H * W);
  let a = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    const u = a / 2 ** 32;
    data[i] = quantum ? Math.floor(u * quantum) / quantum : u;
  }
  return { data, channels: C as 1 | 3, height: H, width: W };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const viewOf = (out: Float32Array, plan: ViewPlan, j: number) => {
  const per = plan.channels * plan.height * plan.width;
  return out.subarray(j * per, (j + 1) * per);
};

/** Where an ONNX graph's nodes (those named `prefix`…, or all) would need float64: constants, Casts to it, graph inputs. */
function float64Uses(bytes: Uint8Array, prefix = ''): string[] {
  const g = decodeModel(bytes, 'graph').graph!;
  const uses: string[] = [];
  for (const t of g.initializer ?? []) if (t.dataType === DOUBLE && t.name?.startsWith(prefix)) uses.push(`constant ${t.name}`);
  for (const n of g.node ?? []) {
    if (!n.name?.startsWith(prefix)) continue;
    if (n.opType === 'Cast' && n.attribute?.some((a) => a.name === 'to' && Number(a.i) === DOUBLE)) uses.push(`Cast ${n.name}`);
  }
  for (const v of g.input ?? []) if (v.type?.tensorType?.elemType === DOUBLE) uses.push(`input ${v.name}`);
  return uses;
}

/** Plans with every view kind that does float64 arithmetic on the CPU, and the others beside them. */
function plans(C: 1 | 3, H: number): Array<[string, ViewPlan]> {
  const corruptions = [...CORRUPTIONS, ...EXTRA_CORRUPTIONS].flatMap((name) => [1, 5].map((s): [typeof name, number] => [name, s]));
  const plan = (ops: ViewOp[]): ViewPlan => ({ channels: C, height: H, width: H, margin: 0, ops });
  return [
    ['photometric', plan([{ kind: 'brightness', delta: 0.3 }, { kind: 'brightness', delta: 0.5 }, { kind: 'contrast', factor: 0.2 }])],
    ['corruptions', plan(corruptionViews(corruptions, H, H).ops)],
    ['ood', plan(oodViews([...GENERATED_SETS], C, H, H, 4).ops)],
    ['patches', plan([{ kind: 'patch', top: 1, left: 2, size: 4, fill: 'mean' }, { kind: 'patch', top: 0, left: 0, size: 0, fill: 'mean' }, { kind: 'tiles', rows: [0, 5, H], cols: [0, 6, H], slot: 0 }])],
    ['cue-conflict', compositePlan(C, H, H)],
  ];
}

test('for a provider without float64 (WebGPU) no view graph holds a float64 tensor; the float64 graphs (CPU, CUDA) do, for every kind that sums in float64', () => {
  assert.equal(providerHasFloat64('webgpu'), false);
  assert.equal(providerHasFloat64('cpu'), true);
  assert.equal(providerHasFloat64('cuda'), true);
  for (const [C, H] of [[1, 12], [3, 24]] as const) {
    for (const [name, plan] of plans(C, H)) {
      for (const one of [false, true]) {
        assert.ok(float64Uses(standaloneViewModel(plan, 13, one).bytes).length > 0, `${name} at ${C}×${H}: the float64 graph sums in float64`);
        assert.deepEqual(float64Uses(standaloneViewModel(plan, 13, one, false).bytes), [], `${name} at ${C}×${H}, one source a run: ${one}`);
      }
    }
  }
});

test('the audit\'s composed sessions take the float32 view graph when the provider has no float64, and the float64 one otherwise', async () => {
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const { channels: C, height: H, width: W } = model.info;
  const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: [{ kind: 'brightness', delta: 0.2 }, { kind: 'contrast', factor: 0.3 }, { kind: 'rotate', degrees: 15 }] };
  try {
    const uses = async () => {
      const built = await composedModel(model, plan, 4);
      assert.ok('bytes' in built, 'reason' in built ? built.reason : '');
      return float64Uses(built.bytes, 'skeptic_view_');
    };
    assert.ok((await uses()).length > 0, 'on the CPU the views sum in float64');
    setViewsFloat64(false);
    assert.deepEqual(await uses(), [], 'as a WebGPU session would get them');
  } finally {
    setViewsFloat64(undefined);
    await model.dispose();
  }
});

test('float32 view graphs equal the JavaScript loops within float32 rounding: every corruption (glass blur within a level), brightness, contrast, the ood sets, mean-colour patches, cue-conflict\'s composition', async () => {
  const seed = (name: string, s: number) => derivedSeed(7, `corruptions/${name}/${s}`, 'sha');
  for (const [C, H] of [[1, 12], [3, 70]] as const) {
    const src = image(C, H, H, 99 + C, 255);
    const list = [...CORRUPTIONS, ...EXTRA_CORRUPTIONS].flatMap((name) => [1, 3, 5].map((s): [typeof name, number] => [name, s]));
    const made = corruptionViews(list, H, H);
    const plan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: made.ops };
    const out = await makeViews(plan, [{ source: src, inputs: await made.inputs(src, seed) }], false);
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
    const pout = await makeViews(pplan, [{ source: src }], false);
    photometric.forEach(([op, want], j) => assert.ok(maxDiff(viewOf(pout, pplan, j), want.data) <= 1e-5, `${JSON.stringify(op)} at ${C}×${H}×${H}`));

    const ood = oodViews([...GENERATED_SETS], C, H, H, 8);
    const oplan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: ood.ops };
    const oout = await makeViews(oplan, [{ source: src, inputs: ood.inputs(src, (set) => derivedSeed(3, `ood/${set}`, 'sha')) }], false);
    GENERATED_SETS.forEach((set, j) => {
      const d = maxDiff(viewOf(oout, oplan, j), generateOod(set, src, 3, 'sha', 8).data);
      assert.ok(d <= 1e-5, `ood ${set} at ${C}×${H}×${H}: ${d}`);
    });

    const rng = mulberry32(5 + C);
    const a = image(C, H, H, 11 + C);
    for (let y = 2; y < H - 3; y++) for (let x = 3; x < H - 2; x++) for (let c = 0; c < C; c++) a.data[(c * H + y) * H + x] = 0.8 - 0.1 * c; // a silhouette
    const texture = fromBytes01(toBytes01(quiltTexture(image(C, H, H, 13 + C), undefined, rng)), C, H, H);
    const want = compose(shapeCarrier(a), texture).data;
    const cout = await makeViews(compositePlan(C, H, H), [compositeSource(shapeMaterial(a), texture)], false);
    assert.ok(maxDiff(cout, want) <= 1e-5, `composite at ${C}×${H}×${H}: ${maxDiff(cout, want)}`);
  }
});
