/**
 * Skeptic's attack probe at the `standard` preset against the reference AutoAttack
 * (fra31/auto-attack, PyTorch) on the same model and images (not a test):
 *
 *   - the model: the fixture VNN-COMP CIFAR-10 ResNet-2B (adversarially trained), run by
 *     ONNX Runtime in Skeptic and rebuilt in torch by bench/autoattack/reference.py;
 *   - the images: the first 100 CIFAR-10 test images of the fixtures (or --limit);
 *   - per ε (k/255): the images each leaves robust. The check: Skeptic leaves no image robust
 *     that AutoAttack breaks, i.e. Skeptic's robust set ⊆ AutoAttack's, or at least no more
 *     robust images in all (attacks are random; the two differ in random streams).
 *
 * Both sides run L∞ only, without Skeptic's minimal-ε bisection and large-ε run (AutoAttack has
 * neither), so the times compare the same work. AutoAttack's `standard` also runs FAB-T between
 * APGD-T and Square; Skeptic has no FAB-T, so its log has one step fewer.
 *
 *   node --import tsx bench/autoattack.ts [--eps 1,2,4,8] [--limit 100] [--preset standard]
 *        [--autoattack DIR | --reference FILE.json] [--threads 2]
 *
 * --autoattack DIR: a checkout of fra31/auto-attack (the folder holding `autoattack/`); the
 * script runs bench/autoattack/reference.py with /usr/bin/python3 and tcmalloc preloaded, with
 * torch.set_num_threads(--threads). --reference FILE: that script's JSON output from an earlier
 * run. Neither: Skeptic's side only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel, setCpuThreads } from '../server/engine/model';
import { attackProbe, type AttackRecord } from '../server/engine/probes/attack';
import { cleanProbe } from '../server/engine/probes/clean';
import type { Probe } from '../server/engine/probes/probe';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');
const MODEL = join(FIXTURES, 'models', 'cifar10_resnet2b_advtrained.onnx');
const DATA = join(FIXTURES, 'cifar10_test_first100');
const MEAN = [0.4914, 0.4822, 0.4465];
const STD = [0.2471, 0.2435, 0.2616];
const PY = '/usr/bin/python3';
const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';

const { values: args } = parseArgs({
  options: {
    eps: { type: 'string', default: '1,2,4,8' },
    limit: { type: 'string', default: '100' },
    preset: { type: 'string', default: 'standard' },
    autoattack: { type: 'string' },
    reference: { type: 'string' },
    threads: { type: 'string', default: '2' },
  },
});

interface Reference {
  files: string[];
  clean: number[];
  torch: string;
  runs: Array<{ eps255: number; robust: number[]; robustAccuracy: number; seconds: number; maxLinf: number; log: string[] }>;
}

async function main(): Promise<void> {
  if (!existsSync(MODEL)) {
    console.log(`fixtures absent (${FIXTURES}): nothing to compare`);
    return;
  }
  const eps255 = args.eps!.split(',').map(Number);
  const limit = Number(args.limit);

  // ---- AutoAttack, first (so that the two do not share the CPU)
  let ref: Reference | undefined;
  if (args.reference) ref = JSON.parse(readFileSync(args.reference, 'utf8'));
  else if (args.autoattack) {
    const script = join(__dirname, 'autoattack', 'reference.py');
    const out = execFileSync(
      PY,
      [script, '--autoattack', args.autoattack, '--model', MODEL, '--data', DATA, '--eps', eps255.join(','), '--limit', String(limit), '--threads', args.threads!],
      { env: { ...process.env, LD_PRELOAD: TCMALLOC }, maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    ref = JSON.parse(out.toString());
  }

  // ---- Skeptic
  setCpuThreads(Number(args.threads));
  const model = await loadModel(MODEL, { device: 'cpu', preprocess: { scale: 1, mean: MEAN, std: STD } });
  let records: AttackRecord[] = [];
  let files: string[] = [];
  let seconds = 0;
  let log: Array<{ attack: string; robustAccuracy: number[] }> = [];
  try {
    const dataset = await openDataset(DATA, { labels: model.labels, limit, seed: 0 });
    const probe = attackProbe({ preset: args.preset, eps: eps255.map((e) => `${e}/255`), epsL2: 'none', bisectionSteps: 0, largeEps: 0, maxImages: limit });
    const t0 = performance.now();
    const report = await audit(model, dataset, {
      probes: [cleanProbe(), probe as Probe<object>],
      batchSize: 128,
      onProgress: (p) => {
        if (p.step) process.stderr.write(`  skeptic: ${p.step}\n`);
      },
    });
    seconds = (performance.now() - t0) / 1000;
    const res = report.probes.attack;
    if (res.status !== 'ok') throw new Error(`attack probe ${res.status}: ${res.reason}`);
    files = report.images.map((im) => im.path.replace(/^.*cifar10_test_first100\//, ''));
    records = res.records as unknown as AttackRecord[];
    log = (res.metrics as { protocol: { linf: typeof log } }).protocol.linf;
    console.log(`Skeptic ${args.preset}: ${res.headline} [${seconds.toFixed(1)} s]`);
  } finally {
    await model.dispose();
  }

  // Per ε, Skeptic's robust images (by file): attacked and broken by nothing.
  const robustFiles = (k: number) => new Set(records.filter((r) => r.status === 'attacked' && r.brokenBy && r.brokenBy[k] === null).map((r) => files[(r as unknown as { image: number }).image]));

  console.log('\nRobust accuracy after each attack, in run order (Skeptic):');
  console.log(['attack', ...eps255.map((e) => `${e}/255`)].join('\t'));
  for (const step of log) console.log([step.attack, ...step.robustAccuracy.map((a) => `${(a * 100).toFixed(0)}%`)].join('\t'));

  if (!ref) return;
  const refFiles = ref.files.map((f) => f.replace(/^.*cifar10_test_first100\//, ''));
  console.log(`\nAutoAttack (torch ${ref.torch}) log:`);
  for (const run of ref.runs) {
    console.log(`  ε = ${run.eps255}/255: ${run.log.filter((l) => /robust accuracy|initial accuracy/.test(l)).map((l) => l.trim()).join('; ')}`);
  }
  console.log('\nε\tAutoAttack robust\tSkeptic robust\tSkeptic ⊆ AA\tonly Skeptic robust\tonly AA robust');
  let ok = true;
  eps255.forEach((e, k) => {
    const run = ref!.runs.find((r) => r.eps255 === e);
    if (!run) return;
    const aa = new Set(refFiles.filter((_, i) => run.robust[i] === 1));
    const sk = robustFiles(k);
    const onlySk = [...sk].filter((f) => !aa.has(f));
    const onlyAa = [...aa].filter((f) => !sk.has(f));
    if (sk.size > aa.size) ok = false;
    console.log(`${e}/255\t${aa.size}/${refFiles.length}\t\t\t${sk.size}/${files.length}\t\t${onlySk.length === 0 ? 'yes' : 'no'}\t\t${onlySk.join(' ') || '-'}\t${onlyAa.join(' ') || '-'}`);
  });
  const aaSeconds = ref.runs.reduce((a, r) => a + r.seconds, 0);
  console.log(`\ntime: Skeptic ${args.preset} ${seconds.toFixed(1)} s (all ε, L∞, with model load excluded); AutoAttack standard ${aaSeconds.toFixed(1)} s (${ref.runs.map((r) => `${r.seconds.toFixed(0)} s at ${r.eps255}/255`).join(', ')})`);
  console.log(ok ? 'PASS: Skeptic leaves no more robust images than AutoAttack at any ε' : 'FAIL: Skeptic leaves more robust images than AutoAttack at some ε');
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
