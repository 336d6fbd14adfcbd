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
 *        [--autoattack DIR | --reference FILE.json] [--threads 2] [--save S.json | --skeptic S.json]
 *
 * --autoattack DIR: a checkout of fra31/auto-attack (the folder holding `autoattack/`); the
 * script runs bench/autoattack/reference.py with /usr/bin/python3 and tcmalloc preloaded, with
 * torch.set_num_threads(--threads). --reference FILE: that script's JSON output from an earlier
 * run (several, comma-separated, each on its own ε and images: the comparison is over the
 * images each ran on). Neither: Skeptic's side only.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
    // --save FILE writes Skeptic's side; --skeptic FILE reads it back instead of running it
    save: { type: 'string' },
    skeptic: { type: 'string' },
  },
});

interface Reference {
  version?: string;
  files: string[];
  clean: number[];
  torch: string;
  runs: Array<{ eps255: number; robust: number[]; robustAccuracy: number; seconds: number; maxLinf: number; log: string[] }>;
}

interface SkepticSide {
  preset: string;
  headline: string;
  records: Array<AttackRecord & { image: number }>;
  files: string[];
  seconds: number;
  log: Array<{ attack: string; robustAccuracy: number[] }>;
}

async function runSkeptic(eps255: number[], limit: number): Promise<SkepticSide> {
  setCpuThreads(Number(args.threads));
  const model = await loadModel(MODEL, { device: 'cpu', preprocess: { scale: 1, mean: MEAN, std: STD } });
  try {
    const dataset = await openDataset(DATA, { labels: model.labels, limit, seed: 0 });
    const probe = attackProbe({ preset: args.preset, eps: eps255.map((e) => `${e}/255`), epsL2: 'none', bisectionSteps: 0, largeEps: 0, maxImages: limit });
    const t0 = performance.now();
    const report = await audit(model, dataset, {
      probes: [cleanProbe(), probe as Probe<object>],
      batchSize: 128,
      onProgress: (p) => {
        if (p.step) process.stderr.write(`  skeptic: ${p.step} [${((performance.now() - t0) / 1000).toFixed(0)} s]\n`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const res = report.probes.attack;
    if (res.status !== 'ok') throw new Error(`attack probe ${res.status}: ${res.reason}`);
    return {
      preset: args.preset!,
      headline: res.headline ?? '',
      files: report.images.map((im) => im.id),
      records: res.records as unknown as SkepticSide['records'],
      seconds,
      log: (res.metrics as { protocol: { linf: SkepticSide['log'] } }).protocol.linf,
    };
  } finally {
    await model.dispose();
  }
}

async function main(): Promise<void> {
  if (!existsSync(MODEL)) {
    console.log(`fixtures absent (${FIXTURES}): nothing to compare`);
    return;
  }
  // The probe sorts its grid: so do we, so that index k means the same ε on both sides.
  const eps255 = [...new Set(args.eps!.split(',').map(Number))].sort((a, b) => a - b);
  const limit = Number(args.limit);

  // ---- AutoAttack, first (so that the two do not share the CPU); or earlier runs of it, each
  // on its own ε and images (--reference A.json,B.json)
  const refs: Reference[] = [];
  if (args.reference) for (const f of args.reference.split(',')) refs.push(JSON.parse(readFileSync(f, 'utf8')));
  else if (args.autoattack) {
    const script = join(__dirname, 'autoattack', 'reference.py');
    const out = execFileSync(
      PY,
      [script, '--autoattack', args.autoattack, '--model', MODEL, '--data', DATA, '--eps', eps255.join(','), '--limit', String(limit), '--threads', args.threads!],
      { env: { ...process.env, LD_PRELOAD: TCMALLOC }, maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    refs.push(JSON.parse(out.toString()));
  }

  // ---- Skeptic (or its results from an earlier run, --skeptic)
  const sk: SkepticSide = args.skeptic ? JSON.parse(readFileSync(args.skeptic, 'utf8')) : await runSkeptic(eps255, limit);
  if (args.save) writeFileSync(args.save, JSON.stringify(sk));
  const { records, files, seconds, log } = sk;
  console.log(`Skeptic ${sk.preset}: ${sk.headline} [${seconds.toFixed(1)} s]`);

  console.log('\nRobust accuracy after each attack, in run order (Skeptic):');
  console.log(['attack', ...eps255.map((e) => `${e}/255`)].join('\t'));
  for (const step of log) console.log([step.attack, ...step.robustAccuracy.map((a) => `${(a * 100).toFixed(0)}%`)].join('\t'));
  if (!refs.length) return;

  // Per ε, the robust images (by file) on each side, over the images the reference ran on.
  const skRobust = (k: number, among: Set<string>) =>
    new Set(records.filter((r) => r.status === 'attacked' && r.brokenBy && r.brokenBy[k] === null).map((r) => files[r.image]).filter((f) => among.has(f)));
  console.log('\nε\timages\tAutoAttack robust\tSkeptic robust\tSkeptic ⊆ AA\tonly Skeptic robust\tonly AA robust\tAA time');
  let ok = true;
  for (const ref of refs) {
    const refFiles = ref.files.map((f) => f.replace(/^.*cifar10_test_first100\//, ''));
    const among = new Set(refFiles);
    for (const run of ref.runs) {
      const k = eps255.indexOf(run.eps255);
      if (k < 0) continue;
      console.log(`  AutoAttack log at ${run.eps255}/255 (${refFiles.length} images): ${run.log.filter((l) => /robust accuracy|initial accuracy/.test(l)).map((l) => l.trim()).join('; ')}`);
      const aa = new Set(refFiles.filter((_, i) => run.robust[i] === 1));
      const mine = skRobust(k, among);
      const onlySk = [...mine].filter((f) => !aa.has(f));
      const onlyAa = [...aa].filter((f) => !mine.has(f));
      if (mine.size > aa.size) ok = false;
      console.log(`${run.eps255}/255\t${refFiles.length}\t${aa.size}\t${mine.size}\t${onlySk.length === 0 ? 'yes' : 'no'}\t${onlySk.join(' ') || '-'}\t${onlyAa.join(' ') || '-'}\t${run.seconds.toFixed(0)} s`);
    }
  }
  const aaSeconds = refs.flatMap((r) => r.runs).reduce((a, r) => a + r.seconds, 0);
  console.log(`\ntime: Skeptic ${sk.preset} ${seconds.toFixed(1)} s (all ε, all images, L∞, model load excluded); AutoAttack ${refs[0].version ?? 'standard'} ${aaSeconds.toFixed(1)} s over the runs above (torch ${refs[0].torch})`);
  console.log(ok ? 'PASS: Skeptic leaves no more robust images than AutoAttack at any ε compared' : 'FAIL: Skeptic leaves more robust images than AutoAttack at some ε');
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
