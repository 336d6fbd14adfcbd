/**
 * Plans declared before their first run share one session (views/session.ts declareViews): each
 * plan's view graph a branch of an If chain in front of one copy of the model. Each plan's runner
 * gives the scores and features of a session of its own, bit for bit, with runs of the plans in
 * any order; a plan with fewer views than the shared model slices, or one not declared, keeps a
 * session of its own; a model the shared graph cannot be made for runs each plan as it would
 * alone; and an audit declares its probes' plans and gives the same report with fewer sessions.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../server/engine/model';
import type { PixelImage } from '../../server/engine/types';
import { declareViews, setModelChunkRows, setSharedViews, setViewRunPasses, viewsFor, type ViewFeatures, type ViewOp, type ViewPlan, type ViewPrediction, type ViewSource } from '../../server/engine/views';
import { composedGroup } from '../../server/engine/views/session';
import { convNet, seeded, writeModel } from './helpers/onnx-builder';

const plan = (ops: ViewOp[]): ViewPlan => ({ channels: 1, height: 8, width: 8, margin: 1, ops });
/** Crops and photometric views (no per-image inputs). */
const A = plan([
  { kind: 'crop', top: 0, left: 1 }, { kind: 'crop', top: 2, left: 2 }, { kind: 'brightness', delta: 0.2 },
  { kind: 'invert' }, { kind: 'pixelate', factor: 0.5 }, { kind: 'rotate', degrees: 90 },
]);
/** Noise and embeddings (noise and embed inputs). */
const B = plan([{ kind: 'noise', sigma: 0.1, slot: 0 }, { kind: 'noise', sigma: 0.3, slot: 1 }, { kind: 'embed', slot: 0 }, { kind: 'crop', top: 1, left: 1 }]);
/** A tile shuffle (a perm input). */
const C = plan([{ kind: 'crop', top: 1, left: 1 }, { kind: 'tiles', rows: [0, 4, 8], cols: [0, 4, 8], slot: 0 }]);
/** Eight views with no inputs. */
const D = plan(Array.from({ length: 8 }, (_, i): ViewOp => ({ kind: 'brightness', delta: i / 20 })));

function sources(p: ViewPlan, n = 5): ViewSource[] {
  return Array.from({ length: n }, (_, i): ViewSource => {
    const source: PixelImage = { data: seeded(100, 40 + i, 0, 1), channels: 1, height: 10, width: 10 };
    if (p === B) return { source, inputs: { noise: seeded(2 * 2 * 64, 70 + i, 0.01, 1), embed: [i % 9, (3 * i) % 9] } };
    if (p === C) return { source, inputs: { perm: i % 2 ? [3, 2, 1, 0] : [1, 0, 3, 2] } };
    return { source };
  });
}

interface Asked {
  plan: ViewPlan;
  features?: ViewFeatures;
  declare: boolean;
}

/** Each asked plan's runner (declared first where asked), and its predictions over runs of the plans taking turns. */
async function runPlans(file: string, shared: boolean, asked: Asked[]): Promise<Array<{ mode: string; shared: boolean; slices: number; out: ViewPrediction[] }>> {
  setSharedViews(shared);
  const model = await loadModel(file, { device: 'cpu', preprocess: { mean: [0.5], std: [0.25] } });
  try {
    for (const a of asked) if (a.declare) declareViews(model, a.plan, a.features);
    const runners = [];
    for (const a of asked) runners.push(await viewsFor(model, a.plan, a.features));
    const out: ViewPrediction[][] = asked.map(() => []);
    for (const round of [0, 1]) {
      for (const [i, a] of asked.entries()) out[i].push(await runners[i].predict(sources(a.plan, round ? 3 : 5)));
    }
    return runners.map((r, i) => ({ mode: r.mode, shared: r.shared, slices: r.modelSlices, out: out[i] }));
  } finally {
    setSharedViews(true);
    await model.dispose();
  }
}

function sameScores(got: ViewPrediction[], want: ViewPrediction[], what: string): void {
  assert.equal(got.length, want.length);
  for (const [i, g] of got.entries()) {
    assert.deepEqual(g.logits, want[i].logits, `${what}: scores of round ${i}`);
    assert.deepEqual(g.probs, want[i].probs, `${what}: probabilities of round ${i}`);
    assert.deepEqual(g.feats?.data, want[i].feats?.data, `${what}: features of round ${i}`);
  }
}

test('declared plans share one session: each gives the scores and features of a session of its own, bit for bit, in runs of the plans taking turns', async () => {
  const file = writeModel(convNet(), 'conv.onnx');
  const asked: Asked[] = [{ plan: A, features: { tensor: 'feat' }, declare: true }, { plan: B, declare: true }, { plan: C, declare: true }];
  try {
    setViewRunPasses(12); // runs of 2, 3 and 6 sources: several runs a prediction, the last one shorter
    const alone = await runPlans(file, false, asked);
    const shared = await runPlans(file, true, asked);
    for (const [i, name] of ['A', 'B', 'C'].entries()) {
      assert.equal(alone[i].mode, 'composed');
      assert.equal(alone[i].shared, false);
      assert.equal(shared[i].mode, 'composed');
      assert.equal(shared[i].shared, true, `${name} shares`);
      sameScores(shared[i].out, alone[i].out, name);
    }
    assert.equal(shared[0].out[0].feats?.dims, 4);
  } finally {
    setViewRunPasses(undefined);
  }
});

test('the shared session slices the model as the plan that wants most does; a plan with fewer views than that, or not declared, keeps a session of its own', async () => {
  const file = writeModel(convNet(), 'conv.onnx');
  // at 4 rows a slice and 24 passes a run: A 6 slices (4 sources of 6 views), D 6 (3 of 8), C 2
  // (12 of 2: at most its views), B 4 (6 of 4) not declared
  const asked: Asked[] = [{ plan: A, declare: true }, { plan: D, declare: true }, { plan: C, declare: true }, { plan: B, declare: false }];
  try {
    setViewRunPasses(24);
    setModelChunkRows(4);
    const alone = await runPlans(file, false, asked);
    const shared = await runPlans(file, true, asked);
    assert.deepEqual(shared.map((r) => r.shared), [true, true, false, false]);
    assert.deepEqual(shared.map((r) => r.slices), [6, 6, 2, 4]);
    assert.deepEqual(alone.map((r) => r.slices), [6, 6, 2, 4]);
    for (const [i, name] of ['A', 'D', 'C', 'B'].entries()) sameScores(shared[i].out, alone[i].out, name);
  } finally {
    setViewRunPasses(undefined);
    setModelChunkRows(undefined);
  }
});

test('a model no composed graph can be made for runs each declared plan as it would alone (standalone view graphs), not shared', async () => {
  const file = writeModel(convNet('skeptic_view_c'), 'reserved.onnx');
  const asked: Asked[] = [{ plan: A, declare: true }, { plan: B, declare: true }];
  const model = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
  try {
    const built = await composedGroup(model, [{ plan: A, perRun: 2 }, { plan: B, perRun: 3 }], 1);
    assert.ok('reason' in built && /reserved name skeptic_view_c/.test(built.reason), JSON.stringify('reason' in built ? built.reason : 'built'));
  } finally {
    await model.dispose();
  }
  const alone = await runPlans(file, false, asked);
  const shared = await runPlans(file, true, asked);
  for (const [i, name] of ['A', 'B'].entries()) {
    assert.equal(shared[i].mode, 'standalone');
    assert.equal(shared[i].shared, false);
    sameScores(shared[i].out, alone[i].out, name);
  }
});

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
test('an audit declares its probes\' plans: the default audit of mnist-8 builds fewer sessions and gives the same report as with a session per plan', { skip: !existsSync(join(FIXTURES, 'mnist')) && 'no fixtures' }, async () => {
  const { audit } = await import('../../server/engine/audit');
  const { openDataset } = await import('../../server/engine/data');
  const { createProbes, DEFAULT_PROBES } = await import('../../server/engine/probes');
  const create = ort.InferenceSession.create;
  let created = 0;
  ort.InferenceSession.create = ((...args: Parameters<typeof create>) => {
    created++;
    return create.apply(ort.InferenceSession, args);
  }) as typeof create;
  const reports = [];
  const sessions = [];
  try {
    for (const shared of [false, true]) {
      setSharedViews(shared);
      const model = await loadModel(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
      try {
        created = 0;
        const ds = await openDataset(join(FIXTURES, 'mnist'), { limit: 40 });
        reports.push(await audit(model, ds, { probes: createProbes(DEFAULT_PROBES, { patches: { evidenceRate: 0.5 } }), batchSize: 16, seed: 5 }));
        sessions.push(created);
      } finally {
        await model.dispose();
      }
    }
  } finally {
    ort.InferenceSession.create = create;
    setSharedViews(true);
  }
  // besides the model's own (made before counting): a session per plan (shift, the patches'
  // shuffles and evidence, ood, the corruptions), or one for all five
  assert.equal(sessions[0], 5, `sessions with a session per plan: ${sessions[0]}`);
  assert.equal(sessions[1], 1, `sessions with the plans shared: ${sessions[1]}`);
  for (const id of DEFAULT_PROBES) {
    assert.equal(reports[0].probes[id].status, 'ok', `${id}: ${reports[0].probes[id].reason}`);
    assert.deepEqual(reports[1].probes[id].metrics, reports[0].probes[id].metrics, `${id} metrics`);
    assert.deepEqual(reports[1].probes[id].records, reports[0].probes[id].records, `${id} records`);
  }
  assert.deepEqual(reports[1].findings, reports[0].findings);
});
