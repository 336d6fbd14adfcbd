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
 *   node --import tsx bench/makers.ts [--size 224] [--images 40] [--workers 1] [--repeat 3] [--fixtures DIR]
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { CORRUPTIONS, type CorruptionName } from '../server/engine/image/corrupt';
import { corruptionViewMaker, setViewWorkers } from '../server/engine/views/workers';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    images: { type: 'string', default: '40' },
    workers: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '3' },
    fixtures: { type: 'string' },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));

async function main() {
  const file = join(FIXTURES, 'imagenet_samples/images/n01440764_tench.JPEG');
  if (!existsSync(file)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  const S = Number(values.size);
  const N = Number(values.images);
  await setViewWorkers(Number(values.workers));
  const { data } = await sharp(file).resize(S, S).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const img = { channels: 3 as const, height: S, width: S, data: new Float32Array(3 * S * S) };
  for (let c = 0; c < 3; c++) for (let p = 0; p < S * S; p++) img.data[c * S * S + p] = data[p * 3 + c] / 255;
  const list = (CORRUPTIONS as readonly CorruptionName[]).flatMap((n) => [1, 2, 3, 4, 5].map((s): [CorruptionName, number] => [n, s]));
  const made = corruptionViewMaker(list, S, S, {}, { owner: img });
  let gcMs = 0;
  new PerformanceObserver((l) => l.getEntries().forEach((e) => (gcMs += e.duration))).observe({ entryTypes: ['gc'] });
  const make = async (n: number, from: number) => {
    for (let i = 0; i < n; i += 2) {
      const sets = await Promise.all([0, 1].map((k) => made.inputs(img, (_name, s) => 7919 * (from + i + k) + s)));
      for (const set of sets) made.recycle(set);
    }
  };
  console.log(`${list.length} views of a ${S}×${S} image, ${N} images, ${made.threads} worker thread(s)`);
  await make(4, 0); // warm: the workers start, the code is optimised, the sets exist
  for (let r = 0; r < Number(values.repeat); r++) {
    gcMs = 0;
    const f0 = process.resourceUsage().minorPageFault;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await make(N, 1000 * (r + 1));
    const c = process.cpuUsage(c0);
    console.log(`${((performance.now() - t0) / N).toFixed(1)} ms an image, CPU ${((c.user + c.system) / 1000 / N).toFixed(1)} ms, ${Math.round((process.resourceUsage().minorPageFault - f0) / N)} page faults, GC in this thread ${(gcMs / N).toFixed(1)} ms`);
  }
  process.exit(0); // the pool's workers would end after a minute
}
main();
