/**
 * The editor's audits run the corruptions probe at severities 1, 3 and 5 (ImageNet-C's 15 at
 * about the cost the 8 had) unless a setting, skeptic.json or the request names severities
 * (server/daemon/job.ts); the CLI keeps all five, which mCE needs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { DEFAULT_SETTINGS, resolveJob } from '../../server/daemon/job';

test('editor audits: corruptions default to severities 1, 3, 5; explicit severities win; other probes untouched', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-job-'));
  const model = join(dir, 'm.onnx');
  writeFileSync(model, 'x');
  const req = (probes: string[] | undefined, params?: Record<string, Record<string, unknown>>) =>
    resolveJob({ model: pathToFileURL(model).href, dataset: pathToFileURL(join(dir, 'data')).href, probes, params }, DEFAULT_SETTINGS, [dir]).job.params;
  assert.deepEqual(req(['corruptions']).corruptions, { severities: [1, 3, 5] });
  assert.deepEqual(req(undefined).corruptions, { severities: [1, 3, 5] }, 'the default probes include corruptions');
  assert.deepEqual(req(['corruptions'], { corruptions: { corruptions: 'extra' } }).corruptions, { corruptions: 'extra', severities: [1, 3, 5] });
  assert.deepEqual(req(['corruptions'], { corruptions: { severities: [1, 2, 3, 4, 5] } }).corruptions, { severities: [1, 2, 3, 4, 5] });
  assert.equal(req(['clean']).corruptions, undefined);
  const fromSettings = resolveJob({ model: pathToFileURL(model).href, dataset: pathToFileURL(join(dir, 'data')).href, probes: ['corruptions'] },
    { ...DEFAULT_SETTINGS, probeParameters: { corruptions: { frostDir: 'tex' } } }, [dir]).job.params;
  assert.equal(fromSettings.corruptions!.frostDir, join(dir, 'tex'), 'a frostDir in the settings is relative to the workspace');
});
