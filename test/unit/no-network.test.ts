/**
 * Nothing phones home: an audit runs under strace and must make no network connection (no
 * AF_INET/AF_INET6 connect, no DNS query, no name-service socket), and ONNX Runtime's telemetry
 * must leave nothing behind: no ~/.cache/Microsoft/DeveloperTools/.onnxruntime (a queue of events
 * about the model) and no /tmp/mat-debug-<pid>.log. With telemetry on (ORT_DISABLE_TELEMETRY=0)
 * the same run does write that queue, which shows the check can see it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { DEMO_MODEL, DEMO_TEST, ensureDemoData } from './helpers/demo';

const ROOT = resolve(__dirname, '../..');
const TSX = pathToFileURL(require.resolve('tsx')).href;
const SKEPTIC = join(ROOT, 'test/robustness/skeptic.ts');
const hasStrace = spawnSync('strace', ['-V']).status === 0;

/** Runs a short audit under strace with HOME in a temp folder; returns the trace and that HOME. */
function tracedAudit(dir: string, env: Record<string, string | undefined>) {
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  writeFileSync(join(dir, 'skeptic.json'), '{}');
  const trace = join(dir, 'trace');
  const r = spawnSync(
    'strace',
    ['-f', '-qq', '-e', 'trace=connect,sendto,sendmsg,openat', '-o', trace, process.execPath, '--import', TSX, SKEPTIC,
      'audit', DEMO_MODEL, '--data', DEMO_TEST, '--probes', 'clean,shift', '--limit', '40', '--no-cache', '--quiet', '--out', join(dir, 'out')],
    { cwd: dir, encoding: 'utf8', env: { ...process.env, HOME: home, ...env }, timeout: 240_000 },
  );
  return { r, lines: readFileSync(trace, 'utf8').split('\n'), home };
}

/** Network attempts in a trace: IP sockets, DNS (port 53) and the name-service sockets. */
function networkCalls(lines: string[]): string[] {
  return lines.filter((l) =>
    /\b(connect|sendto|sendmsg)\(/.test(l) &&
    (/AF_INET6?\b/.test(l) || /htons\(53\)/.test(l) || /sun_path="[^"]*(nscd|resolve|dbus)/.test(l)));
}

test('an audit makes no network connection and ONNX Runtime writes no telemetry', { skip: !hasStrace && 'strace is not installed (.ci/run installs it)', timeout: 600_000 }, () => {
  ensureDemoData();
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-net-'));
  try {
    const { r, lines, home } = tracedAudit(dir, { ORT_DISABLE_TELEMETRY: undefined });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(lines.some((l) => l.includes('shapes-cnn.onnx')), 'the trace sees the audit read the model');
    assert.deepEqual(networkCalls(lines), []);
    assert.deepEqual(lines.filter((l) => /mat-debug-|\.onnxruntime|DeveloperTools/.test(l)), []);
    assert.equal(existsSync(join(home, '.cache', 'Microsoft')), false, 'no telemetry queue under HOME');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the check sees ONNX Runtime telemetry when it is switched on', { skip: !hasStrace && 'strace is not installed', timeout: 600_000 }, () => {
  ensureDemoData();
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-net-'));
  try {
    // ONNX Runtime writes no telemetry when it sees a CI variable (CI=true, as CI runs this), so
    // the control takes them away to see it switched on.
    const { r, lines, home } = tracedAudit(dir, { ORT_DISABLE_TELEMETRY: '0', CI: undefined, CONTINUOUS_INTEGRATION: undefined, BUILD_NUMBER: undefined, TF_BUILD: undefined, GITHUB_ACTIONS: undefined });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(lines.some((l) => /mat-debug-|\.onnxruntime/.test(l)), 'telemetry files opened');
    assert.equal(existsSync(join(home, '.cache', 'Microsoft', 'DeveloperTools', '.onnxruntime')), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
