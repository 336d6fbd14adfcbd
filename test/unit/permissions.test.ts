/**
 * Permission denied, as a user without the rights meets it: an unreadable model, manifest or
 * class folder is refused in one line that names it and says "permission denied" (not "not
 * found", not an internal error); an unreadable image is an error finding on its row while the
 * rest is audited; a class folder that cannot be listed is refused, naming it; an unwritable --out is refused before the audit, naming the folder.
 *
 * Root reads everything, so as root the CLI runs as nobody (uid 65534) through setpriv; as
 * another user it runs as that user. Without either the tests are skipped, saying why.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEMO, ensureDemoData } from './helpers/demo';
import { ROOT } from './helpers/lsp-client';

const isRoot = process.getuid?.() === 0;
const setpriv = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const canDrop = isRoot && spawnSync('setpriv', [...setpriv, 'true']).status === 0;
const skip = process.platform === 'win32' ? 'POSIX permissions only' : isRoot && !canDrop ? 'running as root without setpriv (util-linux) to drop to an unprivileged user' : false;

let ws: string;
const p = (...parts: string[]) => join(ws, ...parts);

before(() => {
  if (skip) return;
  ensureDemoData();
  const build = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  ws = mkdtempSync(join(tmpdir(), 'skeptic-perm-'));
  chmodSync(ws, 0o755);
  copyFileSync(join(DEMO, 'shapes-cnn.onnx'), p('model.onnx'));
  copyFileSync(join(DEMO, 'shapes-cnn.labels.txt'), p('model.labels.txt'));
  mkdirSync(p('data'));
  const rows = readFileSync(join(DEMO, 'data/test.csv'), 'utf8').trim().split('\n').slice(0, 9);
  writeFileSync(p('data/m.csv'), rows.join('\n') + '\n');
  for (const r of rows.slice(1)) {
    const f = r.split(',')[0];
    mkdirSync(p('data', f, '..'), { recursive: true });
    copyFileSync(join(DEMO, 'data', f), p('data', f));
  }
  cpSync(p('data/test'), p('folders'), { recursive: true });
  spawnSync('chmod', ['-R', 'a+rX', ws]);
});
after(() => ws && rmSync(ws, { recursive: true, force: true }));

/** `skeptic audit MODEL --data DATA` as an unprivileged user; returns the exit code and output. */
function audit(model: string, data: string, out: string) {
  const cli = [process.execPath, join(ROOT, 'bin/skeptic.js'), 'audit', model, '--data', data, '--out', out, '--probes', 'clean', '--no-cache', '--quiet'];
  const [cmd, args] = canDrop ? ['setpriv', [...setpriv, ...cli]] : [cli[0], cli.slice(1)];
  const r = spawnSync(cmd, args, { cwd: ws, encoding: 'utf8', env: { ...process.env, HOME: ws }, timeout: 120_000 });
  return { code: r.status, stderr: r.stderr.trim(), stdout: r.stdout };
}

/** A fresh report folder the unprivileged user may write. */
function outDir(name: string): string {
  mkdirSync(p(name));
  chmodSync(p(name), 0o777);
  return p(name);
}

/** One line naming `file`, saying permission denied, exit 2. */
function refused(r: { code: number | null; stderr: string }, file: string): void {
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.split('\n').length, 1, `one line: ${r.stderr}`);
  assert.ok(r.stderr.includes(file), `names ${file}: ${r.stderr}`);
  assert.match(r.stderr, /permission denied/);
  assert.doesNotMatch(r.stderr, /not found|internal error|    at /);
}

test('an unreadable model: exit 2, one line naming it, permission denied', { skip }, () => {
  copyFileSync(p('model.onnx'), p('locked.onnx'));
  chmodSync(p('locked.onnx'), 0o000);
  refused(audit(p('locked.onnx'), p('data/m.csv'), outDir('o-model')), p('locked.onnx'));
});

test('an unreadable manifest, or dataset folder: exit 2, one line naming it, permission denied', { skip }, () => {
  copyFileSync(p('data/m.csv'), p('data/locked.csv'));
  chmodSync(p('data/locked.csv'), 0o000);
  refused(audit(p('model.onnx'), p('data/locked.csv'), outDir('o-manifest')), p('data/locked.csv'));
  mkdirSync(p('locked-folder/circle'), { recursive: true });
  chmodSync(p('locked-folder'), 0o000);
  refused(audit(p('model.onnx'), p('locked-folder'), outDir('o-folder')), p('locked-folder'));
});

test('an unreadable image: an error finding on its row, the rest audited; a class folder that cannot be listed: refused, naming it', { skip }, () => {
  const rows = readFileSync(p('data/m.csv'), 'utf8').trim().split('\n');
  const image = rows[2].split(',')[0];
  chmodSync(p('data', image), 0o000);
  try {
    const out = outDir('o-image');
    const r = audit(p('model.onnx'), p('data/m.csv'), out);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.equal(report.dataset.evaluated, rows.length - 2, 'every other image was audited');
    const errors = report.findings.filter((f: { severity: string }) => f.severity === 'error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0].subject.line, 3);
    assert.match(errors[0].message, new RegExp(`m\\.csv row 3 .*permission denied`));
  } finally {
    chmodSync(p('data', image), 0o644);
  }
  // a class folder of an ImageFolder dataset that cannot be listed: its images are unknown, so the
  // dataset is refused (an audit without them would report on a different dataset)
  chmodSync(p('folders/cross'), 0o000);
  try {
    const out = outDir('o-class');
    const r = audit(p('model.onnx'), p('folders'), out);
    assert.equal(r.code, 2, 'refused: the folder cannot even be listed');
    refused(r, p('folders/cross'));
  } finally {
    chmodSync(p('folders/cross'), 0o755);
  }
});

test('an unwritable --out: exit 2 before the audit, naming the folder, permission denied', { skip }, () => {
  mkdirSync(p('read-only'));
  chmodSync(p('read-only'), 0o555);
  refused(audit(p('model.onnx'), p('data/m.csv'), p('read-only')), p('read-only'));
  refused(audit(p('model.onnx'), p('data/m.csv'), p('read-only/report')), p('read-only'));
});
