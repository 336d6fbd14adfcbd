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
 *
 * `--manifest` measures a large manifest instead (issue 13): 8 CIFAR-10 test images repeated over
 * 20,000 and 200,000 rows of a CSV, `--probes clean` on the small CIFAR model, the way the CLI
 * audits them (list, audit, write report.json and its per-image files). It prints peak RSS, CPU
 * seconds, the seconds to the first progress report, and the size of report.json and of the
 * per-image files.
 *
 *   node --import tsx bench/memory.ts --manifest [--rows 20000,200000]
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');
const { values } = parseArgs({
  options: {
    probes: { type: 'string', default: 'clean,shift,patches,ood,corruptions' },
    child: { type: 'string' },
    manifest: { type: 'boolean', default: false },
    rows: { type: 'string', default: '20000,200000' },
    work: { type: 'string' },
  },
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

/** One manifest audit in this process (--child N --manifest --work DIR). */
async function manifestChild(rows: number, work: string) {
  const { statSync } = await import('node:fs');
  const { audit } = await import('../server/engine/audit');
  const { openDataset } = await import('../server/engine/data');
  const { loadModel } = await import('../server/engine/model');
  const { createProbes } = await import('../server/engine/probes');
  const { writeReport } = await import('../server/engine/report/write');
  const t0 = performance.now();
  let first: number | undefined;
  const model = await loadModel(resolve(FIXTURES, 'models/cifar10_marabou_small_nhwc.onnx'), { device: 'cpu', preprocess: 'unit' });
  const ds = await openDataset(join(work, `m${rows}.csv`), { labels: model.labels, numClasses: model.info.numClasses, onProgress: () => (first ??= performance.now()) });
  const out = join(work, `out-${rows}`);
  const report = await audit(model, ds, { probes: createProbes(['clean']), outDir: out, onProgress: () => (first ??= performance.now()) });
  await writeReport(report, out, ['json']);
  const size = (f: string) => statSync(join(out, f)).size / 2 ** 20;
  const cpu = process.cpuUsage();
  console.log(JSON.stringify({
    rows,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    firstProgressSeconds: ((first ?? performance.now()) - t0) / 1000,
    reportKiB: size('report.json') * 1024,
    perImageMiB: size('images.jsonl') + size('records.jsonl') + size('findings.jsonl'),
  }));
}

function manifestMain() {
  if (!existsSync(FIXTURES)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'skeptic-bench-manifest-'));
  try {
    const src = join(FIXTURES, 'cifar10_test_first100');
    const lines = readFileSync(join(src, 'labels.csv'), 'utf8').trim().split('\n').slice(1, 9);
    mkdirSync(join(work, 'images'));
    for (const l of lines) copyFileSync(join(src, l.split(',')[0]), join(work, l.split(',')[0]));
    const sizes = values.rows!.split(',').map(Number);
    for (const n of sizes) {
      const rows = ['file,label'];
      for (let i = 0; i < n; i++) rows.push(lines[i % lines.length].split(',').slice(0, 2).join(','));
      writeFileSync(join(work, `m${n}.csv`), rows.join('\n') + '\n');
    }
    const results = sizes.map((n) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', String(n), '--manifest', '--work', work], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { rows: number; maxRssMiB: number; cpuSeconds: number; firstProgressSeconds: number; reportKiB: number; perImageMiB: number };
    });
    console.log('manifest of 8 CIFAR-10 images repeated, --probes clean');
    for (const r of results) {
      console.log(`${String(r.rows).padStart(7)} rows: peak RSS ${r.maxRssMiB.toFixed(0)} MiB, CPU ${r.cpuSeconds.toFixed(1)} s, first progress after ${r.firstProgressSeconds.toFixed(1)} s, report.json ${r.reportKiB.toFixed(1)} KiB, per-image files ${r.perImageMiB.toFixed(1)} MiB`);
    }
    const [a, b] = [results[0], results[results.length - 1]];
    console.log(`peak RSS ${b.rows} / ${a.rows} rows: ${(b.maxRssMiB / a.maxRssMiB).toFixed(2)}× (flat: ≤ 1.2×); report.json ${(b.reportKiB / a.reportKiB).toFixed(2)}×`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (values.child && values.manifest) manifestChild(Number(values.child), values.work!).catch((e) => { console.error(e); process.exit(1); });
else if (values.child) child(Number(values.child)).catch((e) => { console.error(e); process.exit(1); });
else if (values.manifest) manifestMain();
else main();
