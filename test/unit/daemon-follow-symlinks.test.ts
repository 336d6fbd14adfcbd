/**
 * The editor's audits follow dataset symlinks out of the dataset's folder only when asked, as the
 * CLI's --follow-symlinks: skeptic.json's "followSymlinks", else the skeptic.followSymlinks setting.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { DEFAULT_SETTINGS, resolveJob } from '../../server/daemon/job';
import { loadReport } from '../../server/engine/compare/load';
import { AuditRequest } from '../../server/protocol';
import { DEMO, ensureDemoData } from './helpers/demo';
import { ROOT, TestDaemon } from './helpers/lsp-client';

const ws = mkdtempSync(join(tmpdir(), 'skeptic-follow-'));
after(() => rmSync(ws, { recursive: true, force: true }));

test('resolveJob: skeptic.json "followSymlinks" wins over the setting; neither: not followed', () => {
  const dir = mkdtempSync(join(ws, 'job-'));
  const model = join(dir, 'm.onnx');
  writeFileSync(model, 'x');
  const job = (settings: Partial<typeof DEFAULT_SETTINGS>) =>
    resolveJob({ model: pathToFileURL(model).href, dataset: pathToFileURL(join(dir, 'data')).href }, { ...DEFAULT_SETTINGS, ...settings }, [dir]).job;
  assert.equal(job({}).followSymlinks, undefined);
  assert.equal(job({ followSymlinks: true }).followSymlinks, true);
  writeFileSync(join(dir, 'skeptic.json'), '{ "followSymlinks": true }');
  assert.equal(job({}).followSymlinks, true);
  writeFileSync(join(dir, 'skeptic.json'), '{ "followSymlinks": false }');
  assert.equal(job({ followSymlinks: true }).followSymlinks, undefined, 'skeptic.json says no');
});

test('a daemon audit reads a link leaving the dataset only with followSymlinks, as the CLI does', { timeout: 300_000 }, async () => {
  ensureDemoData();
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  const project = join(ws, 'project');
  mkdirSync(join(project, 'models'), { recursive: true });
  mkdirSync(join(project, 'data'));
  mkdirSync(join(ws, 'elsewhere'));
  copyFileSync(join(DEMO, 'shapes-cnn.onnx'), join(project, 'models/shapes-cnn.onnx'));
  copyFileSync(join(DEMO, 'shapes-cnn.labels.txt'), join(project, 'models/shapes-cnn.labels.txt'));
  copyFileSync(join(DEMO, 'data/test/circle/circle-0000-stripes.png'), join(project, 'data/a.png'));
  copyFileSync(join(DEMO, 'data/test/cross/cross-0001-dots.png'), join(ws, 'elsewhere/b.png'));
  symlinkSync(join(ws, 'elsewhere/b.png'), join(project, 'data/b.png'));
  writeFileSync(join(project, 'data/m.csv'), 'path,label\na.png,circle\nb.png,cross\n');
  const daemon = await TestDaemon.start({ workspace: project });
  try {
    const params = { model: pathToFileURL(join(project, 'models/shapes-cnn.onnx')).href, dataset: pathToFileURL(join(project, 'data/m.csv')).href, probes: ['clean'], noCache: true };
    const folder = join(project, '.skeptic/reports/shapes-cnn--m');
    const run = async () => {
      const r = await daemon.connection.sendRequest(AuditRequest, params);
      assert.equal(r.status, 'ok', r.error);
      return loadReport(folder);
    };
    const refused = await run();
    assert.equal(refused.dataset.evaluated, 1);
    const f = refused.findings.find((x) => x.rule === 'data/unusable-item');
    assert.ok(f, 'the link out of the dataset is an error finding');
    assert.equal(f.subject.line, 3);
    assert.match(f.message, /symbolic link to .*elsewhere\/b\.png, outside the dataset's folder/);

    writeFileSync(join(project, 'skeptic.json'), '{ "followSymlinks": true }');
    const followed = await run();
    assert.equal(followed.dataset.evaluated, 2, 'both images were read');
    assert.ok(!followed.findings.some((x) => x.rule === 'data/unusable-item'));
  } finally {
    await daemon.stop();
  }
});
