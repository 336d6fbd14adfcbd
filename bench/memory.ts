/**
 * Memory stays flat as the dataset grows: peak RSS of a whole audit (mnist-8 on MNIST, the
 * forward-only probes) on 1,000 against 5,000 images. Target: they differ by less than 10%.
 * Each audit runs in its own process so the peaks do not mix.
 *
 * Beside peak RSS it prints the live heap after a full GC at the end (report included): what the
 * audit actually keeps. Peak RSS also counts what the allocators keep after freeing (V8's heap
 * reservation, glibc's per-thread malloc arenas: ORT's and sharp's threads allocate too); run it
 * with MALLOC_ARENA_MAX=2 in the environment to see that part go.
 *
 *   node --import tsx bench/memory.ts [--probes clean,shift,ood,patches,corruptions]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');
const { values } = parseArgs({
  options: { probes: { type: 'string', default: 'clean,shift,patches,ood,corruptions' }, child: { type: 'string' } },
});

async function child(limit: number) {
  const { audit } = await import('../server/engine/audit');
  const { openDataset } = await import('../server/engine/data');
  const { loadModel } = await import('../server/engine/model');
  const { createProbes } = await import('../server/engine/probes');
  const model = await loadModel(resolve(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
  const ds = await openDataset(resolve(FIXTURES, 'mnist'), { limit });
  const t = performance.now();
  const report = await audit(model, ds, { probes: createProbes(values.probes!.split(',')) });
  // The report is part of what an audit holds: serialise it as the CLI would.
  const seconds = (performance.now() - t) / 1000;
  const size = JSON.stringify(report).length;
  (globalThis as { gc?: () => void }).gc?.();
  const liveMiB = process.memoryUsage().heapUsed / 2 ** 20;
  console.log(JSON.stringify({ limit, maxRssMiB: process.resourceUsage().maxRSS / 1024, liveMiB, seconds, reportMiB: size / 2 ** 20 }));
}

function main() {
  if (!existsSync(FIXTURES)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  const rows: Array<{ limit: number; maxRssMiB: number; liveMiB: number; seconds: number; reportMiB: number }> = [];
  for (const limit of [1000, 5000]) {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', __filename, '--child', String(limit), '--probes', values.probes!], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    rows.push(JSON.parse(r.stdout.trim().split('\n').pop()!));
  }
  console.log(`probes: ${values.probes}`);
  for (const r of rows) {
    console.log(`${String(r.limit).padStart(5)} images: peak RSS ${r.maxRssMiB.toFixed(0)} MiB, live heap after GC ${r.liveMiB.toFixed(1)} MiB, ${r.seconds.toFixed(1)} s, report ${r.reportMiB.toFixed(1)} MiB`);
  }
  const growth = rows[1].maxRssMiB / rows[0].maxRssMiB - 1;
  console.log(`peak RSS growth 1,000 → 5,000 images: ${(growth * 100).toFixed(1)}% (target < 10%)${process.env.MALLOC_ARENA_MAX ? ` (MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX})` : ''}`);
  console.log(`live heap growth: ${(rows[1].liveMiB - rows[0].liveMiB).toFixed(1)} MiB for ${rows[1].limit - rows[0].limit} more images (the report's records and image table)`);
}

if (values.child) child(Number(values.child)).catch((e) => { console.error(e); process.exit(1); });
else main();
