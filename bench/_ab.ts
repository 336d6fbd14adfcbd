// Paired A/B (scratch): base (/tmp/s6B/base) and new (this worktree) view graphs in one process, runs alternated.
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import * as NV from '../server/engine/views/corruptions';
import * as NG from '../server/engine/views/graph';
import * as NS from '../server/engine/views/session';
import * as NM from '../server/engine/model';
import { sessionOptions } from '../server/engine/model/providers';
import { CORRUPTIONS } from '../server/engine/image/corrupt';
const BASE = '/tmp/s6B/base/server/engine';
const S = 224;
async function main() {
  const BV = await import(`${BASE}/views/corruptions`);
  const BG = await import(`${BASE}/views/graph`);
  const BS = await import(`${BASE}/views/session`);
  const BM = await import(`${BASE}/model`);
  const { data } = await sharp('/work/shared/fixtures/imagenet_samples/images/n01440764_tench.JPEG').resize(S, S).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const img = { channels: 3 as const, height: S, width: S, data: new Float32Array(3 * S * S) };
  for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) img.data[c * S * S + p] = data[p * 3 + c] / 255;
  const N = Number(process.argv[2] ?? 15);
  const mode = process.argv[3] ?? 'both';
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  if (mode !== 'composed') {
    console.log('corruption           base best  new best   median new/base (paired, wall ms per run of 5 severities)');
    for (const name of CORRUPTIONS) {
      const sides = await Promise.all([[BV, BG], [NV, NG]].map(async ([V, G]) => {
        const made = V.corruptionViews([1, 2, 3, 4, 5].map((s: number) => [name, s]), S, S);
        const plan = { channels: 3, height: S, width: S, margin: 0, ops: made.ops };
        const built = G.standaloneViewModel(plan, 13, true);
        const session = await ort.InferenceSession.create(built.bytes, sessionOptions('cpu', 'all', false));
        const inputs = await made.inputs(img, (_n: string, s: number) => 1234 + s);
        const feeds = (NS as any).__feeds ?? null;
        return { made, plan, built, session, inputs };
      }));
      // the same feeds as makeViews builds: use each side's makeViews-equivalent via a private run
      const t: number[][] = [[], []];
      for (let i = 0; i < N + 2; i++) for (let k = 0; k < 2; k++) {
        const sd = sides[k];
        const f = feedsOf(sd.plan, img, sd.inputs);
        const t0 = performance.now();
        await sd.session.run(f, [sd.built.output]);
        if (i >= 2) t[k].push(performance.now() - t0);
      }
      const ratio = med(t[0].map((b, i) => t[1][i] / b));
      console.log(`${name.padEnd(20)} ${Math.min(...t[0]).toFixed(1).padStart(8)} ${Math.min(...t[1]).toFixed(1).padStart(9)}   ${ratio.toFixed(2)}`);
      for (const sd of sides) await sd.session.release();
    }
  }
  if (mode !== 'graphs') {
    const runners = await Promise.all([[BV, BS, BM], [NV, NS, NM]].map(async ([V, Sx, M]) => {
      const model = await M.loadModel('/work/shared/fixtures/models/imagenet_mobilenetv2-12-int8.onnx', { device: 'cpu', preprocess: 'imagenet' });
      const made = V.corruptionViews(CORRUPTIONS.flatMap((n) => [1, 2, 3, 4, 5].map((s) => [n, s])), S, S);
      const plan = { channels: 3, height: S, width: S, margin: 0, ops: [{ kind: 'crop', top: 0, left: 0 }, ...made.ops] };
      const runner = await Sx.viewsFor(model, plan);
      const inputs = await made.inputs(img, (_n: string, s: number) => 1234 + s);
      return { runner, inputs, model };
    }));
    const t: number[][] = [[], []];
    const c: number[][] = [[], []];
    for (let i = 0; i < N + 2; i++) for (let k = 0; k < 2; k++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await runners[k].runner.predict([{ source: img, inputs: runners[k].inputs }]);
      const cu = process.cpuUsage(c0);
      if (i >= 2) (t[k].push(performance.now() - t0), c[k].push((cu.user + cu.system) / 1000));
    }
    console.log(`composed corruptions session (76 views, one image a run), ${N} paired runs: wall best ${Math.min(...t[0]).toFixed(1)} → ${Math.min(...t[1]).toFixed(1)} ms, median ${med(t[0]).toFixed(1)} → ${med(t[1]).toFixed(1)}, paired median new/base ${med(t[0].map((b, i) => t[1][i] / b)).toFixed(3)}; CPU best ${Math.min(...c[0]).toFixed(1)} → ${Math.min(...c[1]).toFixed(1)} ms, median ${med(c[0]).toFixed(1)} → ${med(c[1]).toFixed(1)}, paired median ${med(c[0].map((b, i) => c[1][i] / b)).toFixed(3)}`);
    for (const r of runners) await r.model.dispose();
  }
}
function feedsOf(plan: any, img: any, inputs: any): Record<string, ort.Tensor> {
  const C = 3, H = S, W = S;
  const f: Record<string, ort.Tensor> = { skeptic_view_src: new ort.Tensor('float32', img.data, [1, C, H, W]) };
  const count = (k: string, per: number) => (inputs[k] ? inputs[k].length / per : 0);
  if (inputs.noise) f.skeptic_view_noise = new ort.Tensor('float32', inputs.noise, [1, count('noise', 2 * C * H * W), C, H, W, 2]);
  if (inputs.given) f.skeptic_view_given = new ort.Tensor('float32', inputs.given, [1, count('given', C * H * W), C, H, W]);
  if (inputs.layer) f.skeptic_view_layer = new ort.Tensor('float32', inputs.layer, [1, count('layer', C * H * W), C, H, W]);
  if (inputs.index) f.skeptic_view_index = new ort.Tensor('int32', inputs.index, [1, count('index', H * W), H * W]);
  if (inputs.weight) f.skeptic_view_weight = new ort.Tensor('float32', inputs.weight, [1, count('weight', H * W), H * W]);
  return f;
}
main().catch((e) => { console.error(e); process.exit(1); });
