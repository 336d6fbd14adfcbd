/**
 * The end-to-end tests' workspace: the demo model and its generated test split (a manifest, so
 * findings land on rows), copied into a fresh folder, with workspace settings that ask for the
 * clean, attack and cue-conflict probes on 24 images on the CPU (well under a minute on two cores).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');
export const PROBES = ['clean', 'attack', 'cue-conflict'];
export const LIMIT = 24;
/** The audit that is cancelled: every probe on the whole test split (~45 s uninterrupted here). */
export const LONG = { probes: ['clean', 'shift', 'patches', 'ood', 'corruptions', 'attack', 'cue-conflict'], limit: 400 };
/** Where the engine writes the report of shapes-cnn.onnx on data/test.csv. */
export const REPORT = '.skeptic/reports/shapes-cnn--test/report.json';

/** Fills `ws` (created). With `configured`, skeptic.json already pairs the model with its dataset. */
export function makeWorkspace(ws: string, o: { configured?: boolean } = {}): void {
  const r = spawnSync(process.execPath, ['models/demo/make-data.mjs', '--split', 'test', '--quiet'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`models/demo/make-data.mjs failed: ${r.stderr}`);
  const demo = join(ROOT, 'models/demo');
  mkdirSync(join(ws, 'data'), { recursive: true });
  for (const f of ['shapes-cnn.onnx', 'shapes-cnn.labels.txt']) cpSync(join(demo, f), join(ws, f));
  cpSync(join(demo, 'data/test.csv'), join(ws, 'data/test.csv'));
  cpSync(join(demo, 'data/test'), join(ws, 'data/test'), { recursive: true });
  mkdirSync(join(ws, '.vscode'), { recursive: true });
  writeFileSync(join(ws, '.vscode/settings.json'), JSON.stringify({ 'skeptic.probes': PROBES, 'skeptic.limit': LIMIT, 'skeptic.device': 'cpu' }, null, 2) + '\n');
  if (o.configured) {
    writeFileSync(join(ws, 'skeptic.json'), JSON.stringify({ models: [{ path: 'shapes-cnn.onnx', dataset: 'data/test.csv' }] }, null, 2) + '\n');
  }
}
