/**
 * Child process of memory-flat.test.ts: audits a manifest (`--probes clean` on the demo model)
 * and prints what is alive after a full GC (V8's heap plus the ArrayBuffers, where the compact
 * listing, image table and records live) when evaluation ends and after the audit with the report
 * held, and the larger of the two.
 *
 *   node --expose-gc --import tsx manifest-memory.ts MANIFEST
 */
import { audit } from '../../../server/engine/audit';
import { openDataset } from '../../../server/engine/data';
import { loadModel } from '../../../server/engine/model';
import { createProbes } from '../../../server/engine/probes';
import { DEMO_MODEL } from './demo';

async function main() {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const model = await loadModel(DEMO_MODEL, { device: 'cpu' });
  const ds = await openDataset(process.argv[2], { labels: model.labels, numClasses: model.info.numClasses });
  const live = () => {
    gc();
    gc();
    const u = process.memoryUsage();
    return u.heapUsed + u.arrayBuffers;
  };
  // when every image is evaluated (the results cache's in-memory index is alive then), and after
  let evaluated = 0;
  const report = await audit(model, ds, {
    probes: createProbes(['clean']),
    batchSize: 64,
    onProgress: (p) => {
      if (p.phase === 'summarizing' && !evaluated) evaluated = live();
    },
  });
  const after = live();
  console.log(JSON.stringify({
    rows: report.images.length,
    records: report.probes.clean.records.length,
    accuracy: report.probes.clean.metrics.accuracy,
    liveBytes: Math.max(evaluated, after),
    evaluatedBytes: evaluated,
    afterBytes: after,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
