/** The project's own demo model and data (models/demo), which tests can use without ../shared. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const DEMO = resolve(__dirname, '../../../models/demo');
export const DEMO_MODEL = join(DEMO, 'shapes-cnn.onnx');
export const DEMO_TEST = join(DEMO, 'data/test.csv');
export const DEMO_CONFLICT = join(DEMO, 'data/conflict.csv');

/** Makes the demo's test and conflict splits (seeded and idempotent, about a second) unless they are there. */
export function ensureDemoData(): void {
  if (existsSync(DEMO_TEST) && existsSync(DEMO_CONFLICT)) return;
  const r = spawnSync(process.execPath, [join(DEMO, 'make-data.mjs'), '--quiet'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `make-data.mjs failed: ${r.stderr}`);
}
