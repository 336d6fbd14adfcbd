/**
 * What the tests that compare one audit with another made in pieces (shard-merge.test.ts,
 * lanes.test.ts) share: every probe at small parameters, the artifacts a report folder holds,
 * and a manifest of demo images with a broken image and an unusable row in it.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Report } from '../../../server/engine/report/schema';
import { DEMO, DEMO_TEST, ensureDemoData } from './demo';

export const ALL_PROBES = ['clean', 'shift', 'patches', 'ood', 'corruptions', 'attack', 'cue-conflict', 'prior'];
/** Every probe, with small parameters so that several audits of a dataset stay quick. */
export const SMALL_PARAMS: Record<string, Record<string, unknown>> = {
  shift: { k: 2, embedPositions: 2 },
  attack: { preset: 'fast', apgdSteps: 4, targets: 2, maxImages: 6, steps: 4, bisectionSteps: 2, queries: 20, renderImages: 2 },
  'cue-conflict': { pairs: 12, minDecisions: 1, gallery: 4 },
  prior: { dims: 16, folds: 2, maxIter: 20, minImages: 10 },
  ood: { sets: 'uniform,inverted', samples: 2 },
  corruptions: { minLabelled: 5, renderImages: 2 },
  patches: { minLabelled: 5, renderImages: 2 },
};

/** A report without `run` (what differs between two runs of the same audit). */
export const stripRun = (r: Report) => JSON.parse(JSON.stringify({ ...r, run: undefined }));

/** Every file under dir (artifacts), with its sha256. */
export function artifactFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/**
 * A manifest of the first `count` demo test images under dir/data: after the 3rd row comes a file
 * that is not an image, after the 6th a row naming an unknown class. Returns the manifest's path.
 */
export function demoManifest(dir: string, count = 40): string {
  ensureDemoData();
  const rows = readFileSync(DEMO_TEST, 'utf8').trim().split('\n').slice(1, count + 1);
  const data = join(dir, 'data');
  mkdirSync(join(data, 'img'), { recursive: true });
  const lines = ['path,label'];
  rows.forEach((row, i) => {
    const [path, label] = row.split(',');
    const name = `img/${String(i).padStart(3, '0')}.png`;
    copyFileSync(join(DEMO, 'data', path), join(data, name));
    lines.push(`${name},${label}`);
    if (i === 2) {
      writeFileSync(join(data, 'img/broken.png'), 'not a png at all');
      lines.push('img/broken.png,circle');
    }
    if (i === 5) lines.push(`img/${String(i).padStart(3, '0')}.png,no-such-class`);
  });
  writeFileSync(join(data, 'manifest.csv'), lines.join('\n') + '\n');
  return join(data, 'manifest.csv');
}
