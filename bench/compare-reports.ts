/**
 * The largest change, per probe, of any metric between two reports of the same audit (e.g. before
 * and after an engine change): every numeric leaf of probes.<id>.metrics is compared; fractions
 * are shown in points (×100), other numbers as they are, with the path of the largest change.
 * Also counts records whose fields differ.
 *
 *   node --import tsx bench/compare-reports.ts BEFORE/report.json AFTER/report.json
 */
import { readFileSync } from 'node:fs';

const [a, b] = process.argv.slice(2).map((f) => JSON.parse(readFileSync(f, 'utf8')));
if (!a || !b) {
  console.error('usage: compare-reports BEFORE.json AFTER.json');
  process.exit(2);
}

function leaves(x: unknown, path: string, out: Map<string, number>): void {
  if (typeof x === 'number') out.set(path, x);
  else if (Array.isArray(x)) x.forEach((v, i) => leaves(v, `${path}[${i}]`, out));
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) leaves(v, path ? `${path}.${k}` : k, out);
}

console.log('probe          metrics  largest change                     where                                   records that differ');
for (const id of Object.keys(a.probes)) {
  const pa = a.probes[id];
  const pb = b.probes[id];
  if (!pb) {
    console.log(`${id.padEnd(14)} missing after`);
    continue;
  }
  const la = new Map<string, number>();
  const lb = new Map<string, number>();
  leaves(pa.metrics, '', la);
  leaves(pb.metrics, '', lb);
  let worst = 0;
  let where = '-';
  let fraction = true;
  for (const [k, v] of la) {
    const w = lb.get(k);
    if (w === undefined) continue;
    const d = Math.abs(v - w);
    if (d > worst) {
      worst = d;
      where = k;
      fraction = Math.abs(v) <= 1 && Math.abs(w) <= 1;
    }
  }
  const ra = pa.records ?? [];
  const rb = pb.records ?? [];
  let differ = 0;
  const strip = (r: Record<string, unknown>) => JSON.stringify({ ...r, artifacts: undefined });
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) if (strip(ra[i]) !== strip(rb[i])) differ++;
  const shown = fraction ? `${(worst * 100).toFixed(3)} points` : `${worst.toPrecision(3)}`;
  console.log(`${id.padEnd(14)} ${String(la.size).padStart(7)}  ${shown.padEnd(33)}  ${where.slice(0, 38).padEnd(38)}  ${differ}/${ra.length}`);
}
