/**
 * The corruption views' CPU part alone (views/corruptions.ts: the noise draws, motion blur, snow,
 * JPEG, fog's and frost's layers, elastic's and glass blur's draws), no model: ImageNet-C's
 * fifteen corruptions at five severities on one fixture image resized to --size, made for
 * --images images two at a time (as runViews asks for them) through the views' worker pool
 * (--workers 1) or in this thread (--workers 0), every set given back for reuse as the probe
 * does. Prints wall and process CPU ms per image, the minor page faults per image, and the time
 * V8 spent collecting garbage in this thread: the makers' own cost, which bench/audit.ts can only
 * show inside a whole audit (where the bare loop's spread on a shared VM hides a few percent).
 *
 *   node --import tsx bench/makers.ts [--size 224] [--channels 3] [--at-once 2] [--images 40] [--workers 1] [--repeat 3] [--fixtures DIR]
 *
 * (MNIST as the audit makes it: --size 28 --channels 1 --at-once 16, one run's sources.)
 *   node --import tsx bench/makers.ts --by-corruption [--size 224]
 *
 * --mnist: the first 64 MNIST test digits in turn instead of the tench (28×28×1, as the audit's
 * MNIST case; --size and --channels are then ignored): shot noise and JPEG cost what the image
 * holds, and a digit's black background and sharp strokes are not a photograph's.
 *
 * --by-corruption: each corruption's five severities alone, in this thread, ms an image (best of
 * five rounds of six images), with the WebAssembly kernels (wasm/kernels.ts) and without, the
 * rounds alternating. SKEPTIC_WASM=0 turns the kernels off for the whole run (workers too).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { CORRUPTIONS, type CorruptionName } from '../server/engine/image/corrupt';
import { corruptionViewMaker, setViewWorkers } from '../server/engine/views/workers';
import { setWasmKernels } from '../server/engine/wasm/kernels';
import type { PixelImage } from '../server/engine/types';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    images: { type: 'string', default: '40' },
    workers: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '3' },
    channels: { type: 'string', default: '3' },
    'at-once': { type: 'string', default: '2' },
    fixtures: { type: 'string' },
    'by-corruption': { type: 'boolean', default: false },
    mnist: { type: 'boolean', default: false },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));

async function main() {
  const file = join(FIXTURES, 'imagenet_samples/images/n01440764_tench.JPEG');
  if (!existsSync(file)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  const images = values.mnist ? mnistDigits(64) : [await tench(file, Number(values.size), Number(values.channels))];
  const { channels: C, height: S } = images[0];
  const N = Number(values.images);
  await setViewWorkers(Number(values.workers));
  if (values['by-corruption']) return byCorruption(images, Math.min(6, Number(values['at-once'])));
  const img = images[0];
  const list = (CORRUPTIONS as readonly CorruptionName[]).flatMap((n) => [1, 2, 3, 4, 5].map((s): [CorruptionName, number] => [n, s]));
  const made = corruptionViewMaker(list, S, S, {}, { owner: img });
  let gcMs = 0;
  new PerformanceObserver((l) => l.getEntries().forEach((e) => (gcMs += e.duration))).observe({ entryTypes: ['gc'] });
  const atOnce = Number(values['at-once']);
  const make = async (n: number, from: number) => {
    for (let i = 0; i < n; i += atOnce) {
      const sets = await Promise.all(Array.from({ length: atOnce }, (_, k) => made.inputs(images[(i + k) % images.length], (_name, s) => 7919 * (from + i + k) + s)));
      for (const set of sets) made.recycle(set);
    }
  };
  console.log(`${list.length} views of a ${S}×${S}×${C} image (${values.mnist ? 'MNIST digits' : 'the tench'}), ${N} images, ${atOnce} at a time, ${made.threads} worker thread(s)`);
  await make(4, 0); // warm: the workers start, the code is optimised, the sets exist
  for (let r = 0; r < Number(values.repeat); r++) {
    gcMs = 0;
    const f0 = process.resourceUsage().minorPageFault;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await make(N, 1000 * (r + 1));
    const c = process.cpuUsage(c0);
    console.log(`${((performance.now() - t0) / N).toFixed(2)} ms an image, CPU ${((c.user + c.system) / 1000 / N).toFixed(2)} ms, ${Math.round((process.resourceUsage().minorPageFault - f0) / N)} page faults, GC in this thread ${(gcMs / N).toFixed(1)} ms`);
  }
  process.exit(0); // the pool's workers would end after a minute
}
/** The tench resized to S×S, in C channels. */
async function tench(file: string, S: number, C: number): Promise<PixelImage> {
  if (C !== 1 && C !== 3) throw new Error('--channels 1|3');
  const { data } = await (C === 1 ? sharp(file).resize(S, S).greyscale() : sharp(file).resize(S, S).removeAlpha()).raw().toBuffer({ resolveWithObject: true });
  const img = { channels: C as 1 | 3, height: S, width: S, data: new Float32Array(C * S * S) };
  for (let c = 0; c < C; c++) for (let p = 0; p < S * S; p++) img.data[c * S * S + p] = data[p * C + c] / 255;
  return img;
}

/** The first n digits of the fixture MNIST test set, as the audit decodes them (k/255). */
function mnistDigits(n: number): PixelImage[] {
  const idx = gunzipSync(readFileSync(join(FIXTURES, 'mnist/t10k-00000-04999-images-idx3-ubyte.gz')));
  const at = 16; // the idx header: magic, count, rows, columns
  return Array.from({ length: n }, (_, k) => ({ channels: 1, height: 28, width: 28, data: Float32Array.from(idx.subarray(at + 784 * k, at + 784 * (k + 1)), (v) => v / 255) }));
}

/** Each corruption's makers alone, with the kernels and without (see the header). */
async function byCorruption(images: PixelImage[], atOnce: number) {
  await setViewWorkers(0);
  const img = images[0];
  console.log(`ms an image (five severities of a ${img.width}×${img.height}×${img.channels} image), best of 5 rounds of 6 images, ${atOnce} at a time`);
  console.log(`${'corruption'.padEnd(20)} ${'kernels'.padStart(8)} ${'loops'.padStart(8)}`);
  const total = { kernels: 0, loops: 0 };
  for (const name of CORRUPTIONS as readonly CorruptionName[]) {
    const list = [1, 2, 3, 4, 5].map((s): [CorruptionName, number] => [name, s]);
    const made = corruptionViewMaker(list, img.height, img.width, {}, { owner: img });
    const best = { kernels: Infinity, loops: Infinity };
    for (let r = 0; r < 6; r++) {
      for (const mode of ['kernels', 'loops'] as const) {
        setWasmKernels(mode === 'kernels');
        const t0 = performance.now();
        // six images, --at-once of them asked for together (MNIST's JPEGs go in one mosaic then)
        for (let i = 0; i < 6; i += atOnce) {
          const sets = await Promise.all(Array.from({ length: Math.min(atOnce, 6 - i) }, (_, k) => made.inputs(images[(i + k) % images.length], (_n, s) => 7919 * (r * 10 + i + k) + s)));
          for (const set of sets) made.recycle(set);
        }
        if (r > 0) best[mode] = Math.min(best[mode], (performance.now() - t0) / 6); // round 0 warms up
      }
    }
    setWasmKernels(true);
    total.kernels += best.kernels;
    total.loops += best.loops;
    console.log(`${name.padEnd(20)} ${best.kernels.toFixed(2).padStart(8)} ${best.loops.toFixed(2).padStart(8)}`);
  }
  console.log(`${'all'.padEnd(20)} ${total.kernels.toFixed(2).padStart(8)} ${total.loops.toFixed(2).padStart(8)}`);
  process.exit(0);
}

main();
