/**
 * CPU threads per ONNX Runtime session (model/threads.ts): physical cores read from a sysfs tree
 * (a hyperthreaded machine, a VM without SMT, offline CPUs, the affinity cap), the override order,
 * and that sessions, reports and `skeptic inspect` carry the choice.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../server/engine/model';
import { sessionOptions } from '../../server/engine/model/providers';
import { cpuBudget, cpuThreads, physicalCores, setCpuBudget, setCpuThreads } from '../../server/engine/model/threads';
import { lanePlan } from '../../server/engine/shard/lanes';
import { defaultViewWorkers } from '../../server/engine/views/workers';
import { DEMO_MODEL } from './helpers/demo';

/** A fake /sys/devices/system/cpu with `cpus` as [package, core] per logical CPU (null: offline). */
function sysfs(cpus: Array<[number, number] | null>): string {
  const root = mkdtempSync(join(tmpdir(), 'skeptic-cpu-'));
  cpus.forEach((c, i) => {
    const dir = join(root, `cpu${i}`);
    mkdirSync(dir);
    if (!c) return;
    mkdirSync(join(dir, 'topology'));
    writeFileSync(join(dir, 'topology', 'physical_package_id'), `${c[0]}\n`);
    writeFileSync(join(dir, 'topology', 'core_id'), `${c[1]}\n`);
  });
  mkdirSync(join(root, 'cpufreq')); // not a CPU
  return root;
}

test('physical cores from sysfs: hyperthreads counted once, offline CPUs skipped, capped by the CPUs allowed', () => {
  const roots: string[] = [];
  const at = (cpus: Array<[number, number] | null>, limit = 64) => {
    const r = sysfs(cpus);
    roots.push(r);
    return physicalCores(r, limit);
  };
  try {
    // 4 logical CPUs, 2 cores with 2 hyperthreads each (ORT's Linux default, half, is right here).
    assert.equal(at([[0, 0], [0, 1], [0, 0], [0, 1]]), 2);
    // A VM without SMT: 2 cores, 2 CPUs (ORT's default would be 1).
    assert.equal(at([[0, 0], [0, 1]]), 2);
    // Two sockets reuse core ids.
    assert.equal(at([[0, 0], [0, 1], [1, 0], [1, 1]]), 4);
    assert.equal(at([[0, 0], null, [0, 2]]), 2);
    // The process may run on 3 of 8 cores (affinity, a container's cpuset).
    assert.equal(at(Array.from({ length: 8 }, (_, i) => [0, i] as [number, number]), 3), 3);
    assert.equal(at([]), undefined);
    assert.equal(physicalCores('/nonexistent/cpu', 4), undefined);
  } finally {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  }
});

test('the choice reaches session options and the report; SKEPTIC_THREADS overrides the automatic choice', async () => {
  const saved = process.env.SKEPTIC_THREADS;
  try {
    setCpuThreads(3);
    assert.equal(cpuThreads(), 3);
    assert.equal(sessionOptions('cpu').intraOpNumThreads, 3);
    // intra-op threads sleep between kernels instead of spinning (providers.ts says why)
    assert.deepEqual((sessionOptions('cpu') as { extra?: unknown }).extra, { session: { intra_op: { allow_spinning: '0' } } });
    const m = await loadModel(DEMO_MODEL, { device: 'cpu' });
    assert.equal(m.device.threads, 3);
    await m.dispose();
    process.env.SKEPTIC_THREADS = '1';
    setCpuThreads(undefined);
    assert.equal(cpuThreads(), 1);
    delete process.env.SKEPTIC_THREADS;
    setCpuThreads(undefined);
    assert.equal(cpuThreads(), physicalCores());
    assert.throws(() => setCpuThreads(0), /positive integer/);
  } finally {
    if (saved === undefined) delete process.env.SKEPTIC_THREADS;
    else process.env.SKEPTIC_THREADS = saved;
    setCpuThreads(undefined);
  }
});

test('a CPU budget (--cpus, SKEPTIC_CPUS) caps the cores counted, the automatic threads, the lanes and the views workers', () => {
  const saved = process.env.SKEPTIC_CPUS;
  const allowed = availableParallelism();
  try {
    delete process.env.SKEPTIC_CPUS;
    setCpuBudget(undefined);
    assert.equal(cpuBudget(), allowed);
    setCpuBudget(1);
    assert.equal(cpuBudget(), 1);
    assert.equal(physicalCores(), 1);
    assert.equal(cpuThreads(), 1, 'the automatic threads follow the budget');
    assert.equal(defaultViewWorkers(), 1);
    assert.equal(lanePlan('auto', { device: 'cpu', images: 1000, laneBytes: 1, free: 2 ** 40 }).threads, 1);
    // never more than the process may run on
    setCpuBudget(allowed + 7);
    assert.equal(cpuBudget(), allowed);
    assert.throws(() => setCpuBudget(0), /positive integer/);
    // threads a caller named stand (the CLI cuts --threads to --cpus itself)
    setCpuThreads(3);
    setCpuBudget(1);
    assert.equal(cpuThreads(), 3);
    setCpuThreads(undefined);
    assert.equal(cpuThreads(), 1);
    // SKEPTIC_CPUS when --cpus is not given; a value that is not a whole number from 1 is ignored
    setCpuBudget(undefined);
    process.env.SKEPTIC_CPUS = '1';
    assert.equal(cpuBudget(), 1);
    for (const bad of ['0', '-2', '1.5', 'two', '']) {
      process.env.SKEPTIC_CPUS = bad;
      assert.equal(cpuBudget(), allowed, `SKEPTIC_CPUS=${bad}`);
    }
  } finally {
    if (saved === undefined) delete process.env.SKEPTIC_CPUS;
    else process.env.SKEPTIC_CPUS = saved;
    setCpuBudget(undefined);
    setCpuThreads(undefined);
  }
});

test("SKEPTIC_ORT_LOG=0 makes ONNX Runtime say which provider each node runs on; unset or not a level, it prints errors only", () => {
  const load = (value: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (value === undefined) delete env.SKEPTIC_ORT_LOG;
    else env.SKEPTIC_ORT_LOG = value;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `require(${JSON.stringify(join(__dirname, '../../server/engine/model'))}).loadModel(${JSON.stringify(DEMO_MODEL)}, { device: 'cpu' }).then((m) => m.dispose())`], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout + r.stderr;
  };
  assert.match(load('0'), /Node placements[\s\S]*placed on \[CPUExecutionProvider\]/);
  for (const quiet of [undefined, '3', 'verbose', '7']) assert.doesNotMatch(load(quiet), /Node placements|\[V:onnxruntime/, `SKEPTIC_ORT_LOG=${quiet}`);
  assert.equal((withEnv('2', () => sessionOptions('cpu')) as { logSeverityLevel?: number }).logSeverityLevel, 2);
});

function withEnv<T>(value: string, f: () => T): T {
  const saved = process.env.SKEPTIC_ORT_LOG;
  process.env.SKEPTIC_ORT_LOG = value;
  try {
    return f();
  } finally {
    if (saved === undefined) delete process.env.SKEPTIC_ORT_LOG;
    else process.env.SKEPTIC_ORT_LOG = saved;
  }
}
