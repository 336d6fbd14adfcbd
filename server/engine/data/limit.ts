/**
 * --limit N: a deterministic, class-stratified sample of a dataset.
 *
 * Each group gets a share of N proportional to its size, rounded by largest remainder (ties
 * broken by a seeded random order, so no class is always favoured), and its members are drawn
 * with a seeded shuffle. Groups are the label classes; records with a listing problem form one
 * group of their own (they are reported, so a sample should show them in proportion), and
 * unlabelled records another. The sample comes back in dataset order. The same records, limit
 * and seed always give the same sample.
 */
import { SkepticInputError } from '../errors';
import { mulberry32, shuffleInPlace } from '../random';
import { viewOf } from '../report/array-view';
import type { DatasetRecord } from '../types';

function groupKey(r: DatasetRecord): string {
  if (r.problem) return 'problem';
  return r.label === undefined ? 'unlabelled' : `class ${r.label}`;
}

/** The whole listing, or a sample of it. A listing whose records are made when read (a
 *  manifest's) is not copied into objects: the sample is a view of the chosen positions. */
export function stratifiedSample(records: readonly DatasetRecord[], limit?: number, seed = 0): DatasetRecord[] {
  if (limit === undefined) return records as DatasetRecord[];
  if (!Number.isSafeInteger(limit) || limit < 1) throw new SkepticInputError(`--limit must be a positive integer, not ${limit}`);
  if (limit >= records.length) return records as DatasetRecord[];

  const groups = new Map<string, number[]>(); // in order of first appearance
  records.forEach((r, i) => {
    const k = groupKey(r);
    const g = groups.get(k);
    if (g) g.push(i);
    else groups.set(k, [i]);
  });
  const members = [...groups.values()];
  const total = records.length;
  const rng = mulberry32(seed);

  // Largest remainder, in integers: quota = floor(N·n/total), remainder = N·n mod total.
  const quota = members.map((g) => Math.floor((limit * g.length) / total));
  const remainder = members.map((g) => (limit * g.length) % total);
  const tieRank = new Array<number>(members.length);
  shuffleInPlace(members.map((_, i) => i), rng).forEach((g, rank) => (tieRank[g] = rank));
  const byRemainder = members.map((_, i) => i).sort((a, b) => remainder[b] - remainder[a] || tieRank[a] - tieRank[b]);
  let left = limit - quota.reduce((a, b) => a + b, 0);
  for (const g of byRemainder) {
    if (left === 0) break;
    quota[g]++;
    left--;
  }

  const chosen: number[] = [];
  members.forEach((g, i) => {
    for (const idx of shuffleInPlace(g.slice(), rng).slice(0, quota[i])) chosen.push(idx);
  });
  const at = Int32Array.from(chosen).sort();
  return viewOf(() => at.length, (k) => records[at[k]]);
}
