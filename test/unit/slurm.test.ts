/**
 * The repository's own Slurm recipe (deploy/slurm) on a real one-node Slurm cluster that the test
 * starts and stops itself (helpers/slurm.ts): submit.sh submits 4 shards as a job array and the
 * merge with --dependency=afterok; the merged report equals a single-process audit but for `run`.
 * Skipped, saying why, where Slurm is not installed or the test is not root.
 *
 * Alone: node --import tsx --test test/unit/slurm.test.ts
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { sleep, slurmUnavailable, startSlurm } from './helpers/slurm';
import { loadReport } from '../../server/engine/compare/load';

const ROOT = resolve(__dirname, '../..');
const skip = slurmUnavailable();
if (skip) console.log(`# slurm test skipped: ${skip}`);

const AUDIT_ARGS = [
  '--limit', '40', '--seed', '2', '--probes', 'clean,shift,attack,cue-conflict',
  '--param', 'shift.k=2', '--param', 'shift.embedPositions=2',
  '--param', 'attack.preset=fast', '--param', 'attack.apgdSteps=4', '--param', 'attack.targets=2', '--param', 'attack.maxImages=6', '--param', 'attack.steps=4', '--param', 'attack.queries=20', '--param', 'attack.bisectionSteps=2',
  '--param', 'cue-conflict.pairs=12', '--param', 'cue-conflict.minDecisions=1',
];

test("deploy/slurm: a task's CPUs reach Skeptic as its CPU budget (--cpus), not as threads a session", () => {
  // With --threads N, lanes' auto reads N as one lane's share: 16 CPUs made one lane of 16 threads
  // (1.7–2.1× the bare loop on 16 cores) instead of four lanes of 4 (1.1×). The scripts run here
  // as Slurm runs them, with SKEPTIC a stand-in that records its arguments.
  const work = mkdtempSync(join(tmpdir(), 'skeptic-sbatch-'));
  try {
    const record = join(work, 'args');
    const fake = join(work, 'fake-skeptic');
    writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > '${record}'\n`, { mode: 0o755 });
    const scripts: Array<[string, Record<string, string>]> = [
      ['skeptic-shards.sbatch', { MODEL: join(work, 'model.onnx'), DATA: join(work, 'data'), SHARDS_DIR: work, SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_JOB_ID: '1' }],
      ['skeptic-merge.sbatch', { SHARDS_DIR: work, REPORT_DIR: join(work, 'report') }],
    ];
    for (const [script, env] of scripts) {
      for (const cpus of ['16', undefined]) {
        const { SLURM_CPUS_PER_TASK: _, ...outer } = process.env; // this test may itself run under Slurm
        const r = spawnSync('bash', [join(ROOT, 'deploy/slurm', script)], { encoding: 'utf8', env: { ...outer, ...env, SKEPTIC: fake, ...(cpus ? { SLURM_CPUS_PER_TASK: cpus } : {}) } });
        assert.equal(r.status, 0, `${script}: ${r.stderr}`);
        const args = readFileSync(record, 'utf8').trim().split('\n');
        assert.equal(args[args.indexOf('--cpus') + 1], cpus ?? '4', `${script}: --cpus the task's CPUs (4 when Slurm does not say)`);
        assert.ok(!args.includes('--threads'), `${script}: no --threads`);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('deploy/slurm: 4 array tasks and the merge job on a local Slurm give the single-process report', { skip, timeout: 300_000 }, async () => {
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) {
    const r = spawnSync(process.execPath, cmd, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  const work = mkdtempSync(join(tmpdir(), 'skeptic-slurm-run-'));
  const model = join(ROOT, 'models/demo/shapes-cnn.onnx');
  const data = join(ROOT, 'models/demo/data/test.csv');
  const cluster = await startSlurm();
  try {
    const env = {
      ...cluster.env,
      MODEL: model,
      DATA: data,
      SHARDS_DIR: join(work, 'shards'),
      REPORT_DIR: join(work, 'report'),
      N: '4',
      SKEPTIC: `${process.execPath} ${join(ROOT, 'bin/skeptic.js')}`,
      SKEPTIC_AUDIT_ARGS: AUDIT_ARGS.join(' '),
      SKEPTIC_CACHE_DIR: join(work, 'cache'),
    };
    // This node has few CPUs: ask for one per task instead of the recipe's four.
    const submit = spawnSync(join(ROOT, 'deploy/slurm/submit.sh'), ['--cpus-per-task=1'], { env, encoding: 'utf8', cwd: work });
    assert.equal(submit.status, 0, `${submit.stderr}\n${cluster.logs()}`);
    const [shardJob, mergeJob] = readFileSync(join(work, 'shards/slurm-jobs'), 'utf8').trim().split(' ');
    assert.match(submit.stdout, new RegExp(`shards: job ${shardJob} \\(array 0-3\\); merge: job ${mergeJob}`));

    // A single-process audit of the same data while the cluster works (with the merge job's
    // thread count: report.device says how the merge ran the model).
    const single = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), 'audit', model, '--data', data, ...AUDIT_ARGS, '--threads', '1', '--no-cache', '--quiet', '--out', join(work, 'single')], { cwd: work, encoding: 'utf8' });
    assert.equal(single.status, 0, single.stderr);

    const deadline = Date.now() + 240_000;
    const state = (job: string) => /JobState=(\w+)/.exec(cluster.cli('scontrol', ['show', 'job', job]))?.[1];
    while (Date.now() < deadline && !['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT'].includes(state(mergeJob) ?? '')) await sleep(1000);
    const logs = readdirSync(join(work, 'shards')).filter((f) => f.endsWith('.log')).sort();
    const logText = logs.map((f) => `--- ${f}\n${readFileSync(join(work, 'shards', f), 'utf8')}`).join('\n');
    assert.equal(state(mergeJob), 'COMPLETED', `merge job: ${state(mergeJob)}\n${logText}\n${cluster.logs()}`);
    // every array task ran (and succeeded, or the afterok merge would never have started)
    const tasks = cluster.cli('scontrol', ['show', 'job', shardJob]).match(/JobState=\w+/g) ?? [];
    assert.deepEqual(tasks, new Array(4).fill('JobState=COMPLETED'));
    for (let i = 0; i < 4; i++) {
      assert.ok(existsSync(join(work, `shards/shard-000${i}-of-0004.json`)), `shard ${i} result`);
      assert.match(logText, new RegExp(`skeptic: shard ${i}/4 \\(SLURM_ARRAY_TASK_ID=${i}, count from SLURM_ARRAY_TASK_COUNT\\)`));
    }

    const a = loadReport(join(work, 'single/report.json')) as any;
    const b = loadReport(join(work, 'report/report.json')) as any;
    assert.deepEqual(b.run.shards.merged, [0, 1, 2, 3]);
    assert.ok(existsSync(join(work, 'report/report.sarif')) && existsSync(join(work, 'report/report.html')));
    delete a.run;
    delete b.run;
    assert.deepEqual(b, a);
  } finally {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
});
