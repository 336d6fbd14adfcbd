/**
 * Sharded audits as a user runs them (bin/skeptic.js in child processes): the shard taken from
 * --shard or from Slurm's and Kubernetes' environment, the merge, and its refusals: shards of
 * different audits, missing and unfinished shards; --partial says what it covers.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import Ajv from 'ajv';
import schema from '../../server/engine/report/report.schema.json';
import { loadReport } from '../../server/engine/compare/load';

const ROOT = resolve(__dirname, '../..');
const DEMO_MODEL = join(ROOT, 'models/demo/shapes-cnn.onnx');
const DEMO_DATA = join(ROOT, 'models/demo/data/test.csv');
let work: string;

/** Runs the CLI with a clean scheduler environment plus `env`. */
function skeptic(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SLURM_|JOB_COMPLETION_INDEX|SKEPTIC_)/.test(k)));
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), ...args], { cwd: work, encoding: 'utf8', timeout: 120_000, env: { ...clean, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const AUDIT = ['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '30', '--probes', 'clean,shift', '--param', 'shift.k=2', '--no-cache', '--quiet'];

before(() => {
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) {
    const r = spawnSync(process.execPath, cmd, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  work = mkdtempSync(join(tmpdir(), 'skeptic-shard-cli-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

test('shards from --shard, Slurm (ID/COUNT and MIN/MAX) and a Kubernetes index merge into the single-process report', () => {
  const single = skeptic([...AUDIT, '--out', join(work, 'single')]);
  assert.equal(single.code, 0, single.stderr);
  const dir = join(work, 'shards');
  const runs: Array<{ args: string[]; env: Record<string, string>; says: RegExp }> = [
    { args: ['--shard', '0/4'], env: {}, says: /shard 0\/4 \(--shard\)/ },
    { args: [], env: { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '4' }, says: /shard 1\/4 \(SLURM_ARRAY_TASK_ID=1, count from SLURM_ARRAY_TASK_COUNT\)/ },
    // an array --array=5-8: task 7 is shard 2
    { args: [], env: { SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_MIN: '5', SLURM_ARRAY_TASK_MAX: '8' }, says: /shard 2\/4 \(SLURM_ARRAY_TASK_ID=7 \(min 5\), count from SLURM_ARRAY_TASK_MIN\/MAX\)/ },
    { args: ['--shard-count', '4'], env: { JOB_COMPLETION_INDEX: '3' }, says: /shard 3\/4 \(JOB_COMPLETION_INDEX=3, count from --shard-count\)/ },
  ];
  for (const r of runs) {
    const out = skeptic([...AUDIT, ...r.args, '--out', dir], r.env);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, r.says);
    assert.match(out.stdout, /Shard result: .*shard-000\d-of-0004\.json/);
  }
  const merged = skeptic(['merge', dir, '--out', join(work, 'merged'), '--format', 'json,sarif,html']);
  assert.equal(merged.code, 0, merged.stderr);
  assert.match(merged.stdout, /Merged 4 of 4 shards/);
  assert.match(merged.stderr, /skeptic merge: read 4\/4 shard results/);
  // merge takes --threads as an audit does: checked, and cut to the --cpus budget
  const budget = skeptic(['merge', dir, '--out', join(work, 'merged-cpus'), '--cpus', '1', '--threads', '2']);
  assert.equal(budget.code, 0, budget.stderr);
  if (availableParallelism() > 1) assert.match(budget.stderr, /--threads 2 is more than the 1 CPUs this process may use; using 1/);
  assert.equal((loadReport(join(work, 'merged-cpus/report.json')) as any).device.threads, 1);
  const noThreads = skeptic(['merge', dir, '--out', join(work, 'x'), '--threads', '0']);
  assert.equal(noThreads.code, 2);
  assert.match(noThreads.stderr, /--threads must be from 1 to \d+, not 0/);
  const a = loadReport(join(work, 'single/report.json')) as any;
  const b: any = loadReport(join(work, 'merged/report.json'));
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  assert.ok(validate(b) as boolean, JSON.stringify(validate.errors));
  assert.deepEqual(b.run.shards.merged, [0, 1, 2, 3]);
  delete a.run;
  delete b.run;
  assert.deepEqual(b, a);
  // SARIF and HTML come from the same report: equal apart from the run block's traces
  const sarif = readFileSync(join(work, 'merged/report.sarif'), 'utf8');
  assert.ok(JSON.parse(sarif).runs[0].results.length > 0);
  assert.match(readFileSync(join(work, 'merged/report.html'), 'utf8'), /<html/i);

  // Kubernetes without a count is refused, naming what to set
  const k8s = skeptic([...AUDIT, '--out', dir], { JOB_COMPLETION_INDEX: '0' });
  assert.equal(k8s.code, 2);
  assert.match(k8s.stderr, /JOB_COMPLETION_INDEX is set but not the number of shards: pass --shard-count N or set SKEPTIC_SHARD_COUNT/);
});

test('merge refuses shards of different audits, names missing and unfinished shards; --partial says what it covers', () => {
  const dir = join(work, 'mixed');
  for (const i of [0, 1, 2]) assert.equal(skeptic([...AUDIT, '--shard', `${i}/3`, '--out', dir]).code, 0);
  const other = join(work, 'other');
  assert.equal(skeptic([...AUDIT, '--shard', '2/3', '--seed', '5', '--out', other]).code, 0);
  const seedDiff = skeptic(['merge', join(dir, 'shard-0000-of-0003.json'), join(dir, 'shard-0001-of-0003.json'), join(other, 'shard-0002-of-0003.json'), '--out', join(work, 'x')]);
  assert.equal(seedDiff.code, 2);
  assert.match(seedDiff.stderr, /not a shard of the same audit as .*shard-0000-of-0003\.json; they differ in .*seed \(.*: 0, .*: 5\)/);
  assert.doesNotMatch(seedDiff.stderr, /\n\s+at /, 'no stack trace');

  // An unfinished shard (as if cancelled by Slurm's time limit) and a missing one are named.
  const partialDir = join(work, 'partial');
  mkdirSync(partialDir);
  for (const i of [0, 1]) copyFileSync(join(dir, `shard-000${i}-of-0003.json`), join(partialDir, `shard-000${i}-of-0003.json`));
  const f1 = join(partialDir, 'shard-0001-of-0003.json');
  const s1 = JSON.parse(readFileSync(f1, 'utf8'));
  s1.status = 'cancelled';
  writeFileSync(f1, JSON.stringify(s1));
  const refused = skeptic(['merge', partialDir, '--out', join(work, 'x')]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /cannot merge: shard 2\/3 missing; shard 1\/3 \(.*shard-0001-of-0003\.json\) was cancelled before it finished\. Rerun them, or merge what is there with --partial/);

  const partial = skeptic(['merge', partialDir, '--partial', '--out', join(work, 'partial-report')]);
  assert.equal(partial.code, 0, partial.stderr);
  const report = loadReport(join(work, 'partial-report/report.json')) as any;
  const s0 = JSON.parse(readFileSync(join(partialDir, 'shard-0000-of-0003.json'), 'utf8'));
  assert.equal(report.dataset.selected, s0.images.length);
  assert.deepEqual(report.images.map((im: { id: string }) => im.id), s0.images.map((im: { id: string }) => im.id));
  assert.deepEqual(
    { partial: report.run.shards.partial, merged: report.run.shards.merged, missing: report.run.shards.missing, failed: report.run.shards.failed },
    { partial: true, merged: [0], missing: [2], failed: [1] },
  );
  assert.ok(report.warnings.some((w: string) => w === `partial report: built from 1 of 3 shards (without 1/3, 2/3); it covers ${s0.images.length} of the 30 selected images`), report.warnings.join('\n'));

  const twice = skeptic(['merge', join(dir, 'shard-0000-of-0003.json'), join(dir, 'shard-0000-of-0003.json'), '--out', join(work, 'x')]);
  assert.match(twice.stderr, /shard 0\/3 given twice/);
  const notShard = join(work, 'single/report.json');
  const wrong = skeptic(['merge', notShard, '--out', join(work, 'x')]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /report\.json: not a Skeptic shard result/);
});

test('SIGTERM (Slurm at the time limit, Kubernetes stopping a pod) writes a shard result marked cancelled', async () => {
  const dir = join(work, 'term');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SLURM_|JOB_COMPLETION_INDEX|SKEPTIC_)/.test(k)));
  const child = spawn(process.execPath, [join(ROOT, 'bin/skeptic.js'), 'audit', DEMO_MODEL, '--data', DEMO_DATA, '--probes', 'clean,corruptions', '--batch-size', '8', '--shard', '0/2', '--no-cache', '--out', dir], { cwd: work, env: clean });
  let err = '';
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((done) => {
    child.stderr.on('data', (d) => {
      err += d;
      // the first batch is done: stop it as a scheduler would
      if (/skeptic shard: [1-9]\d*\/\d+ images/.test(err) && child.exitCode === null && !child.killed) child.kill('SIGTERM');
    });
    child.on('exit', (c) => done(c));
  });
  assert.equal(code, 130, err);
  assert.match(err, /terminated, cancelling/);
  assert.match(out, /cancelled before it finished/);
  const result = JSON.parse(readFileSync(join(dir, 'shard-0000-of-0002.json'), 'utf8'));
  assert.equal(result.status, 'cancelled');
  assert.ok(result.probes.clean.records.length < result.images.length, 'it stopped early');
  const merge = skeptic(['merge', dir, '--out', join(work, 'x')]);
  assert.equal(merge.code, 2);
  assert.match(merge.stderr, /shard 0\/2 \(.*\) was cancelled before it finished/);
});
