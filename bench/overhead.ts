/**
 * Engine overhead: images per second of the `clean` probe through the whole engine (streaming,
 * decoding, hashing, preprocessing, batching, records) against bare `session.run` on tensors
 * built beforehand, for the same model and batch size. Target: the engine keeps ≥ 0.85 of bare.
 *
 *   node --import tsx bench/overhead.ts [--batch 32] [--repeat 3]
 *
 * Needs ../shared/fixtures (mnist-8 on MNIST, MobileNetV2-int8 on the ImageNet samples).
 *
 * Bare ONNX Runtime gets the engine's own session options (sessionOptions: the same CPU threads),
 * so the ratio measures the engine, not a thread setting. The last columns put the ratio in
 * context: images/s of reading and decoding alone (the dataset streamed at the model's input
 * size, no model), and the CPU time per image of that decoding against bare inference's. When
 * decoding alone costs as much CPU as inference, no pipeline that decodes on the same cores can
 * come near bare session.run on tensors decoded beforehand.
 *
 * A second table splits the ImageNet decode: sharp's JPEG decode to raw RGB alone, Skeptic's
 * Pillow-exact resize (bilinear, short side 256, the imagenet preset) alone, and for comparison
 * libvips' own resize in the same sharp call (the pre-PIL pipeline, lanczos3), per image.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../server/engine/fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel } from '../server/engine/model';
import { makeBatchSymbolic } from '../server/engine/model/batch';
import { cpuThreads } from '../server/engine/model/threads';
import { sessionOptions } from '../server/engine/model/providers';
import { decodeModel, encodeModel } from '../server/engine/model/onnx';
import { createProbes } from '../server/engine/probes';
import type { LoadedModel } from '../server/engine/types';
import sharp from 'sharp';
import { readdirSync } from 'node:fs';
import { resizeU8 } from '../server/engine/image/resample';
import { shortSideSize } from '../server/engine/data/decode';
import { caseModelOptions } from './cases';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');
const { values } = parseArgs({ options: { batch: { type: 'string', default: '32' }, repeat: { type: 'string', default: '3' } } });
const batchSize = Number(values.batch);
const repeat = Number(values.repeat);

const CASES = [
  { name: 'mnist-8 / MNIST 5000', model: 'models/mnist-8_onnxzoo_cntk.onnx', data: 'mnist', preprocess: 'unit' },
  { name: 'MobileNetV2-int8 / ImageNet 100', model: 'models/imagenet_mobilenetv2-12-int8.onnx', data: 'imagenet_samples/labels.csv', preprocess: 'imagenet', labels: 'labels/imagenet_1k_wnids_names.txt' },
];

/** The model's own input tensors for every image, normalised in JS, in batches (not timed). */
async function prebuilt(model: LoadedModel, dataPath: string): Promise<Float32Array[]> {
  const ds = await openDataset(dataPath, { labels: model.labels });
  const { channels: C, height: H, width: W } = model.info;
  const pre = model.preprocessing;
  const batches: Float32Array[] = [];
  for await (const samples of ds.stream(model.decodeSpec(0), { batchSize })) {
    const x = new Float32Array(samples.length * C * H * W);
    samples.forEach((s, i) => {
      for (let c = 0; c < C; c++) {
        const a = pre.scale / pre.std[c];
        const b = -pre.mean[c] / pre.std[c];
        for (let p = 0; p < H * W; p++) x[(i * C + c) * H * W + p] = s.image!.data[c * H * W + p] * a + b;
      }
    });
    batches.push(x);
  }
  return batches;
}

async function main() {
  if (!existsSync(FIXTURES)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  console.log(`batch ${batchSize}, best of ${repeat}; ${ort.env.versions.node ? `onnxruntime-node ${ort.env.versions.node}` : ''}`);
  console.log(`CPU threads per session: ${cpuThreads() ?? 'ORT default'}`);
  console.log('case                                 images  engine img/s  bare img/s  ratio  decode-only img/s  CPU ms/img: decode  bare');
  for (const c of CASES) {
    const modelPath = join(FIXTURES, c.model);
    const model = await loadModel(modelPath, caseModelOptions(c, FIXTURES, { batchSize }));
    const dataPath = join(FIXTURES, c.data);

    // Bare ONNX Runtime: the same graph (with the batch made symbolic where the engine does so),
    // same provider and options, fed tensors that were built before the clock started.
    const proto = decodeModel(readFileSync(modelPath), modelPath);
    const inputName = proto.graph!.input![0].name!;
    if (model.info.batch.patched) makeBatchSymbolic(proto, inputName);
    const session = await ort.InferenceSession.create(encodeModel(proto), sessionOptions('cpu'));
    const batches = await prebuilt(model, dataPath);
    const n = batches.reduce((a, b) => a + b.length, 0) / (model.info.channels * model.info.height * model.info.width);
    const dims = (len: number) => {
      const chw = [model.info.channels, model.info.height, model.info.width];
      const rows = len / chw.reduce((a, b) => a * b, 1);
      return model.info.layout === 'NHWC' ? [rows, chw[1], chw[2], chw[0]] : [rows, ...chw];
    };
    let bare = Infinity;
    let engine = Infinity;
    let decode = Infinity;
    let bareCpu = Infinity;
    let decodeCpu = Infinity;
    const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
    for (let r = 0; r < repeat; r++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (const x of batches) await session.run({ [inputName]: new ort.Tensor('float32', x, dims(x.length)) });
      bare = Math.min(bare, performance.now() - t0);
      bareCpu = Math.min(bareCpu, cpuMs(process.cpuUsage(c0)));

      const dd = await openDataset(dataPath, { labels: model.labels });
      const t2 = performance.now();
      const c2 = process.cpuUsage();
      for await (const samples of dd.stream(model.decodeSpec(0), { batchSize })) if (!samples.length) throw new Error('empty batch');
      decode = Math.min(decode, performance.now() - t2);
      decodeCpu = Math.min(decodeCpu, cpuMs(process.cpuUsage(c2)));

      const ds = await openDataset(dataPath, { labels: model.labels });
      const t1 = performance.now();
      const report = await audit(model, ds, { probes: createProbes(['clean']), batchSize });
      engine = Math.min(engine, performance.now() - t1);
      if (report.probes.clean.count !== n) throw new Error(`engine saw ${report.probes.clean.count} images, bare ${n}`);
    }
    const e = (n / engine) * 1000;
    const b = (n / bare) * 1000;
    const d = (n / decode) * 1000;
    console.log(
      `${c.name.padEnd(36)} ${String(n).padStart(6)}  ${e.toFixed(0).padStart(12)}  ${b.toFixed(0).padStart(10)}  ${(e / b).toFixed(2).padStart(5)}  ` +
        `${d.toFixed(0).padStart(17)}  ${(decodeCpu / n).toFixed(3).padStart(18)}  ${(bareCpu / n).toFixed(3).padStart(5)}`,
    );
    await session.release();
    await model.dispose();
  }
  await resizeCost();
}

/** Per-image wall and CPU time of the ImageNet decode's parts, best of `repeat`, one image at a time. */
async function resizeCost() {
  const dir = join(FIXTURES, 'imagenet_samples/images');
  const files = readdirSync(dir).sort().map((f) => readFileSync(join(dir, f)));
  const opts = { ignoreIcc: true, failOn: 'error' as const };
  const raws: { data: Uint8Array; width: number; height: number }[] = [];
  const best = { decode: [Infinity, Infinity], resize: [Infinity, Infinity], vips: [Infinity, Infinity] };
  const time = async (key: keyof typeof best, f: () => Promise<void> | void) => {
    const t = performance.now();
    const c = process.cpuUsage();
    await f();
    const u = process.cpuUsage(c);
    best[key][0] = Math.min(best[key][0], performance.now() - t);
    best[key][1] = Math.min(best[key][1], (u.user + u.system) / 1000);
  };
  for (let r = 0; r < repeat; r++) {
    raws.length = 0;
    await time('decode', async () => {
      for (const b of files) {
        const { data, info } = await sharp(b, opts).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
        raws.push({ data, width: info.width, height: info.height });
      }
    });
    await time('resize', () => {
      for (const x of raws) {
        const s = shortSideSize(x.width, x.height, 256);
        resizeU8({ ...x, channels: 3 }, s.width, s.height, 'bilinear');
      }
    });
    await time('vips', async () => {
      for (let i = 0; i < files.length; i++) {
        const s = shortSideSize(raws[i].width, raws[i].height, 256);
        await sharp(files[i], opts).resize(s.width, s.height, { fit: 'fill', kernel: 'lanczos3', fastShrinkOnLoad: false }).toColourspace('srgb').raw().toBuffer();
      }
    });
  }
  const n = files.length;
  const row = (label: string, [wall, cpu]: number[], note = '') => console.log(`  ${label.padEnd(40)} ${(wall / n).toFixed(2).padStart(6)}  ${(cpu / n).toFixed(2).padStart(6)}${note}`);
  console.log(`\nImageNet decode per image (${n} images, best of ${repeat}, one at a time):   wall ms  CPU ms`);
  row('sharp JPEG decode to raw RGB', best.decode);
  row('Pillow-exact resize (bilinear, 256)', best.resize);
  row('sharp decode + libvips lanczos3 resize', best.vips, '  (the pipeline before)');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
