/**
 * The editor's audits run the attack probe at its `fast` preset unless a setting, skeptic.json
 * or the request names a preset or a custom list of attacks (server/daemon/job.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { DEFAULT_SETTINGS, resolveJob } from '../../server/daemon/job';

test('editor audits: attack defaults to the fast preset; an explicit preset or attack list wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-job-'));
  const model = join(dir, 'm.onnx');
  writeFileSync(model, 'x');
  const req = (probes: string[], params?: Record<string, Record<string, unknown>>) =>
    resolveJob({ model: pathToFileURL(model).href, dataset: pathToFileURL(join(dir, 'data')).href, probes, params }, DEFAULT_SETTINGS, [dir]).job.params;
  assert.deepEqual(req(['attack']).attack, { preset: 'fast' });
  assert.deepEqual(req(['attack'], { attack: { eps: ['8/255'] } }).attack, { eps: ['8/255'], preset: 'fast' });
  assert.deepEqual(req(['attack'], { attack: { preset: 'standard' } }).attack, { preset: 'standard' });
  assert.deepEqual(req(['attack'], { attack: { attacks: ['pgd-linf'] } }).attack, { attacks: ['pgd-linf'] });
  assert.equal(req(['clean']).attack, undefined, 'no attack probe, no attack parameters');
});
