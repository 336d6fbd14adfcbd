/**
 * deploy/kubernetes without a cluster (none runs here): the manifests parse (kubectl, locally),
 * fit together (an Indexed Job whose completions equal the shard count it passes, one shared
 * ReadWriteMany volume, the merge reading where the shards write), and their commands work: each
 * pod's command runs here with JOB_COMPLETION_INDEX set as Kubernetes sets it, the init
 * container's wait ends, and the merge's report equals a single-process audit's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { loadReport } from '../../server/engine/compare/load';

const ROOT = resolve(__dirname, '../..');
const K8S = join(ROOT, 'deploy/kubernetes');
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const skip = kubectl.status === 0 ? false : 'kubectl is not installed (apt-get install kubernetes-client)';

type Obj = Record<string, any>;
/** A manifest as JSON, parsed by kubectl without a server. */
function manifest(file: string): Obj {
  const r = spawnSync('kubectl', ['label', '--local', '--dry-run=client', '-o', 'json', '-f', join(K8S, file), 'skeptic-test=parsed'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${file}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
/** A container's environment as the kubelet sets it: a value, or the container's CPU request through
 *  the downward API (resourceFieldRef requests.cpu, divisor 1: whole CPUs, rounded up). */
const envOf = (c: Obj) => Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value ?? cpuRequest(c, e.valueFrom?.resourceFieldRef)]));
function cpuRequest(c: Obj, ref: Obj | undefined): string {
  assert.equal(ref?.resource, 'requests.cpu', `${c.name}: an env entry without a value is the CPU request`);
  const q = String(c.resources.requests.cpu);
  return String(Math.ceil(q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q)));
}

test('the Kubernetes manifests fit together, and their commands audit and merge (run here, not on a cluster)', { skip, timeout: 240_000 }, () => {
  const volume = manifest('volume.yaml');
  const shards = manifest('shards-job.yaml');
  const merge = manifest('merge-job.yaml');
  assert.equal(volume.kind, 'PersistentVolumeClaim');
  assert.deepEqual(volume.spec.accessModes, ['ReadWriteMany']);
  for (const job of [shards, merge]) {
    assert.equal(job.apiVersion, 'batch/v1');
    assert.equal(job.kind, 'Job');
    assert.equal(job.spec.template.spec.restartPolicy, 'Never');
    assert.deepEqual(job.spec.template.spec.volumes, [{ name: 'work', persistentVolumeClaim: { claimName: volume.metadata.name } }]);
  }
  assert.equal(shards.spec.completionMode, 'Indexed');
  const shard = shards.spec.template.spec.containers[0];
  const count = shards.spec.completions;
  assert.equal(envOf(shard).SKEPTIC_SHARD_COUNT, String(count), 'completions = shard count');
  const [init] = merge.spec.template.spec.initContainers;
  assert.equal(envOf(init).SKEPTIC_SHARD_COUNT, String(count));
  const mergeC = merge.spec.template.spec.containers[0];
  assert.equal(mergeC.image, shard.image);
  assert.equal(envOf(mergeC).SKEPTIC_CACHE_DIR, envOf(shard).SKEPTIC_CACHE_DIR, 'one shared cache');
  // the pods' CPU requests are Skeptic's CPU budget (the containers see the whole node)
  for (const c of [shard, mergeC]) assert.equal(envOf(c).SKEPTIC_CPUS, String(c.resources.requests.cpu), c.name);
  const run = readFileSync(join(K8S, 'run.sh'), 'utf8');
  assert.match(run, /kubectl "\$@" wait --for=condition=complete job\/skeptic-shards/);
  assert.match(readFileSync(join(K8S, 'shards-job.yaml'), 'utf8'), /# limits: \{ memory: 8Gi, nvidia\.com\/gpu: 1 \}/);

  // The pods' commands, with the volume at a temporary folder.
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) assert.equal(spawnSync(process.execPath, cmd, { cwd: ROOT }).status, 0);
  const work = mkdtempSync(join(tmpdir(), 'skeptic-k8s-'));
  try {
    copyFileSync(join(ROOT, 'models/demo/shapes-cnn.onnx'), join(work, 'model.onnx'));
    mkdirSync(join(work, 'data'));
    copyFileSync(join(ROOT, 'models/demo/data/test.csv'), join(work, 'data/test.csv'));
    cpSync(join(ROOT, 'models/demo/data/test'), join(work, 'data/test'), { recursive: true });
    const at = (s: string) => s.split('/work').join(work);
    const extra = ['--limit', '24', '--probes', 'clean,shift', '--param', 'shift.k=2', '--quiet'];
    const skeptic = (args: string[], env: Record<string, string>) =>
      spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), ...args.map(at)], { cwd: work, encoding: 'utf8', env: { ...process.env, ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, at(v)])) } });
    const single = skeptic([...shard.args.slice(0, 4), ...extra, '--no-cache', '--out', '/work/single'], {});
    assert.equal(single.status, 0, single.stderr);
    for (let i = 0; i < count; i++) {
      const r = skeptic([...shard.args, ...extra], { ...envOf(shard), JOB_COMPLETION_INDEX: String(i) });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`shard ${i}/${count} \\(JOB_COMPLETION_INDEX=${i}, count from SKEPTIC_SHARD_COUNT\\)`));
    }
    const wait = spawnSync(init.command[0], [...init.command.slice(1), at(init.args[0])], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...envOf(init) } });
    assert.equal(wait.status, 0, `the init container's wait ends once all shards are there: ${wait.stderr}`);
    const merged = skeptic(mergeC.args, envOf(mergeC));
    assert.equal(merged.status, 0, merged.stderr);
    const a = loadReport(join(work, 'single/report.json')) as any;
    const b = loadReport(join(work, 'report/report.json')) as any;
    assert.equal(b.run.shards.count, count);
    delete a.run;
    delete b.run;
    assert.deepEqual(b, a);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
