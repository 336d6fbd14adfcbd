/**
 * The corruption views of this checkout against another's (`--base DIR`, e.g. a `git archive` of
 * main with node_modules linked), in ONE process with their runs alternated, so that both sides
 * see the same load on a shared machine:
 *   graphs    per corruption, its five severities' standalone view graph at 224×224 on one
 *             ImageNet fixture image: best wall ms per run of each side and the median of the
 *             paired ratios (new / base);
 *   composed  the corruptions probe's whole plan (the clean view and 75 corruption views)
 *             composed with MobileNetV2-int8 as the probe runs it: wall and process CPU ms per
 *             run, best, median and the median paired ratio;
 *   diff      the views themselves on `--images` fixture images: per (corruption, severity), on
 *             how many images any value differs and the largest difference.
 * With SKEPTIC_THREADS=1 the sessions run on one thread, so CPU time is the work and little else.
 *
 *   node --import tsx bench/views-ab.ts --base DIR [--what graphs,composed,diff] [--runs 12] [--images 10] [--fixtures DIR]
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { CORRUPTIONS, type CorruptionName } from '../server/engine/image/corrupt';
import * as NM from '../server/engine/model';
import { sessionOptions } from '../server/engine/model/providers';
import type { PixelImage } from '../server/engine/types';
import * as NV from '../server/engine/views/corruptions';
import * as NG from '../server/engine/views/graph';
import * as NS from '../server/engine/views/session';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    what: { type: 'string', default: 'graphs,composed,diff' },
    runs: { type: 'string', default: '12' },
    images: { type: 'string', default: '10' },
    fixtures: { type: 'string' },
  },
});
if (!values.base) {
  console.error('usage: views-ab --base DIR (another checkout of this repository)');
  process.exit(2);
}
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
const ENGINE = join(resolve(values.base), 'server/engine');
const S = 224;
const N = Number(values.runs);
const what = new Set(values.what!.split(','));
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const best = (a: number[]) => Math.min(...a);
type Side = { V: typeof NV; G: typeof NG; S: typeof NS; M: typeof NM };

async function decode(file: string): Promise<PixelImage> {
  const { data } = await sharp(file).resize(S, S).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const img: PixelImage = { channels: 3, height: S, width: S, data: new Float32Array(3 * S * S) };
  for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) img.data[c * S * S + p] = data[p * 3 + c] / 255;
  return img;
}

function feeds(img: PixelImage, inputs: Record<string, Float32Array | Int32Array | undefined>): Record<string, ort.Tensor> {
  const plane = 3 * S * S;
  const f: Record<string, ort.Tensor> = { skeptic_view_src: new ort.Tensor('float32', img.data, [1, 3, S, S]) };
  const n = (k: string, per: number) => inputs[k]!.length / per;
  if (inputs.noise) f.skeptic_view_noise = new ort.Tensor('float32', inputs.noise as Float32Array, [1, n('noise', 2 * plane), 3, S, S, 2]);
  if (inputs.given) f.skeptic_view_given = new ort.Tensor('float32', inputs.given as Float32Array, [1, n('given', plane), 3, S, S]);
  if (inputs.layer) f.skeptic_view_layer = new ort.Tensor('float32', inputs.layer as Float32Array, [1, n('layer', plane), 3, S, S]);
  if (inputs.index) f.skeptic_view_index = new ort.Tensor('int32', inputs.index as Int32Array, [1, n('index', S * S), S * S]);
  if (inputs.weight) f.skeptic_view_weight = new ort.Tensor('float32', inputs.weight as Float32Array, [1, n('weight', S * S), S * S]);
  return f;
}

async function graphs(sides: Side[], img: PixelImage) {
  console.log(`per corruption, five severities' view graph alone, ${N} paired runs (wall ms per run)`);
  console.log('corruption            base best   new best   new/base (median of pairs)');
  for (const name of CORRUPTIONS) {
    const built = await Promise.all(sides.map(async ({ V, G }) => {
      const made = V.corruptionViews([1, 2, 3, 4, 5].map((s) => [name, s] as [CorruptionName, number]), S, S);
      const g = G.standaloneViewModel({ channels: 3, height: S, width: S, margin: 0, ops: made.ops }, 13, true);
      const session = await ort.InferenceSession.create(g.bytes, sessionOptions('cpu', 'all', false));
      return { session, output: g.output, feeds: feeds(img, (await made.inputs(img, (_n, s) => 1234 + s)) as Record<string, Float32Array>) };
    }));
    const t: number[][] = [[], []];
    for (let i = 0; i < N + 2; i++) for (let k = 0; k < 2; k++) {
      const t0 = performance.now();
      await built[k].session.run(built[k].feeds, [built[k].output]);
      if (i >= 2) t[k].push(performance.now() - t0);
    }
    console.log(`${name.padEnd(20)} ${best(t[0]).toFixed(1).padStart(10)} ${best(t[1]).toFixed(1).padStart(10)}   ${med(t[0].map((b, i) => t[1][i] / b)).toFixed(2)}`);
    for (const b of built) await b.session.release();
  }
}

async function composed(sides: Side[], img: PixelImage) {
  const runners = await Promise.all(sides.map(async ({ V, S: Sx, M }) => {
    const model = await M.loadModel(join(FIXTURES, 'models/imagenet_mobilenetv2-12-int8.onnx'), { device: 'cpu', preprocess: 'imagenet' });
    const made = V.corruptionViews(CORRUPTIONS.flatMap((n) => [1, 2, 3, 4, 5].map((s) => [n, s] as [CorruptionName, number])), S, S);
    const runner = await Sx.viewsFor(model, { channels: 3, height: S, width: S, margin: 0, ops: [{ kind: 'crop', top: 0, left: 0 }, ...made.ops] });
    return { runner, model, inputs: await made.inputs(img, (_n, s) => 1234 + s) };
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
  const pair = (x: number[][]) => med(x[0].map((b, i) => x[1][i] / b)).toFixed(3);
  console.log(`composed corruptions session (76 views of one image a run), ${N} paired runs, base → new: wall best ${best(t[0]).toFixed(1)} → ${best(t[1]).toFixed(1)} ms, median ${med(t[0]).toFixed(1)} → ${med(t[1]).toFixed(1)}, new/base ${pair(t)}; CPU best ${best(c[0]).toFixed(1)} → ${best(c[1]).toFixed(1)} ms, median ${med(c[0]).toFixed(1)} → ${med(c[1]).toFixed(1)}, new/base ${pair(c)}`);
  for (const r of runners) await r.model.dispose();
}

async function diff(sides: Side[]) {
  const dir = join(FIXTURES, 'imagenet_samples/images');
  const list = CORRUPTIONS.flatMap((n) => [1, 2, 3, 4, 5].map((s) => [n, s] as [CorruptionName, number]));
  const files = readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort().slice(0, Number(values.images));
  const per = 3 * S * S;
  const found = list.map(() => ({ images: 0, max: 0 }));
  for (const f of files) {
    const img = await decode(join(dir, f));
    const outs = await Promise.all(sides.map(async ({ V, S: Sx }) => {
      const made = V.corruptionViews(list, S, S);
      return Sx.makeViews({ channels: 3, height: S, width: S, margin: 0, ops: made.ops }, [{ source: img, inputs: await made.inputs(img, (_n, s) => 7 + s) }]);
    }));
    list.forEach((_, j) => {
      let m = 0;
      for (let i = j * per; i < (j + 1) * per; i++) m = Math.max(m, Math.abs(outs[0][i] - outs[1][i]));
      if (m > 0) found[j].images++;
      found[j].max = Math.max(found[j].max, m);
    });
  }
  list.forEach(([n, s], j) => found[j].images && console.log(`${`${n} ${s}`.padEnd(22)} differs on ${found[j].images}/${files.length} images, largest |difference| ${found[j].max.toExponential(2)}`));
  console.log(`views equal bit for bit on all ${files.length} images: ${found.filter((d) => !d.images).length} of ${list.length} (corruption, severity) pairs`);
}

async function main() {
  const base: Side = {
    V: await import(join(ENGINE, 'views/corruptions')),
    G: await import(join(ENGINE, 'views/graph')),
    S: await import(join(ENGINE, 'views/session')),
    M: await import(join(ENGINE, 'model')),
  };
  const sides = [base, { V: NV, G: NG, S: NS, M: NM }];
  const img = await decode(join(FIXTURES, 'imagenet_samples/images/n01440764_tench.JPEG'));
  if (what.has('graphs')) await graphs(sides, img);
  if (what.has('composed')) await composed(sides, img);
  if (what.has('diff')) await diff(sides);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
