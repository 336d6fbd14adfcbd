/**
 * Memory stays flat as the dataset grows: peak RSS of a whole audit (mnist-8 on MNIST, the
 * forward-only probes) on 1,000 against 5,000 images. Target: they differ by less than 10%.
 * Each audit runs in its own process so the peaks do not mix.
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
  const size = JSON.stringify(report).length;
  console.log(JSON.stringify({ limit, maxRssMiB: process.resourceUsage().maxRSS / 1024, seconds: (performance.now() - t) / 1000, reportMiB: size / 2 ** 20 }));
}

function main() {
  if (!existsSync(FIXTURES)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  const rows: Array<{ limit: number; maxRssMiB: number; seconds: number; reportMiB: number }> = [];
  for (const limit of [1000, 5000]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', String(limit), '--probes', values.probes!], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    rows.push(JSON.parse(r.stdout.trim().split('\n').pop()!));
  }
  console.log(`probes: ${values.probes}`);
  for (const r of rows) console.log(`${String(r.limit).padStart(5)} images: peak RSS ${r.maxRssMiB.toFixed(0)} MiB, ${r.seconds.toFixed(1)} s, report ${r.reportMiB.toFixed(1)} MiB`);
  const growth = rows[1].maxRssMiB / rows[0].maxRssMiB - 1;
  console.log(`growth 1,000 → 5,000 images: ${(growth * 100).toFixed(1)}% (target < 10%)`);
}

if (values.child) child(Number(values.child)).catch((e) => { console.error(e); process.exit(1); });
else main();
