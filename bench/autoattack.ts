/**
 * Skeptic's attack probe at the `standard` preset against the reference AutoAttack
 * (fra31/auto-attack, PyTorch) on the same model and images (not a test):
 *
 *   - the model: the fixture VNN-COMP CIFAR-10 ResNet-2B (adversarially trained), run by
 *     ONNX Runtime in Skeptic and rebuilt in torch by bench/autoattack/reference.py (whose
 *     logits are checked against ONNX Runtime's when this script runs it);
 *   - the images: the first 100 CIFAR-10 test images of the fixtures (or Skeptic's class-
 *     stratified --limit sample of them, which reference.py is given);
 *   - per ε (k/255), image by image: which attack broke it on each side. The check: every image
 *     Skeptic leaves robust is robust for AutoAttack too (Skeptic's robust set ⊆ AutoAttack's).
 *
 * Both sides run L∞ only, Skeptic without its minimal-ε bisection and large-ε run (AutoAttack has
 * neither), one audit per ε, so the times compare the same work. AutoAttack's `standard` also
 * runs FAB-T between APGD-T and Square; Skeptic has no FAB-T, so its log has one step fewer.
 * Times are wall and CPU (user + system of the process, all its threads): the development
 * machine is shared, and CPU time is the steadier number there.
 *
 *   node --import tsx bench/autoattack.ts [--eps 1,2,4,8] [--limit 100] [--preset standard]
 *        [--autoattack DIR [--reference-out F.json] | --reference F.json[,G.json]]
 *        [--threads 1] [--save S.json | --skeptic S.json]
 *
 * --autoattack DIR: a checkout of fra31/auto-attack (the folder holding `autoattack/`); the
 * script runs bench/autoattack/reference.py with /usr/bin/python3, tcmalloc preloaded,
 * torch.set_num_threads(--threads) and OMP_WAIT_POLICY=PASSIVE (see reference.py for why), and
 * keeps its JSON in --reference-out. AUTOATTACK_GIT_DIR names the checkout's git directory when
 * it is not DIR/.git, so that the commit is recorded. --reference F: that JSON from an earlier
 * run (bench/autoattack/reference-results.json is the committed one); several, comma-separated,
 * each on its own ε and images. Neither: Skeptic's side only. --threads is also ONNX Runtime's
 * thread count for Skeptic's side, so both sides get the same cores.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel, setCpuThreads } from '../server/engine/model';
import { attackProbe, type AttackRecord } from '../server/engine/probes/attack';
import { cleanProbe } from '../server/engine/probes/clean';
import type { Probe } from '../server/engine/probes/probe';
import type { LoadedModel } from '../server/engine/types';

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
    'reference-out': { type: 'string' },
    reference: { type: 'string' },
    threads: { type: 'string', default: '1' },
    // --save FILE writes Skeptic's side; --skeptic FILE reads it back instead of running it
    save: { type: 'string' },
    skeptic: { type: 'string' },
  },
});

/** reference.py's JSON. */
interface Reference {
  version?: string;
  files: string[];
  clean: number[];
  torch: string;
  autoattackCommit?: string | null;
  threads?: number;
  maxLogitDiff?: number;
  runs: Array<{
    eps255: number;
    robust: number[];
    robustAccuracy: number;
    /** Per image, the first attack whose output was misclassified (null: none; absent in old files). */
    brokenBy?: Array<string | null>;
    /** Per attack (apgd-ce, apgd-t, fab-t, square): its own wall and CPU seconds. */
    attackTimes?: Record<string, { seconds: number; cpuSeconds: number }>;
    seconds: number;
    cpuSeconds?: number;
    /** 1-minute load average when the ε started (the machine is shared). */
    loadAvg?: number;
    maxLinf: number;
    log: string[];
  }>;
}

/** Skeptic's side, one audit per ε. */
interface SkepticSide {
  preset: string;
  threads: number;
  files: string[];
  /** Per image: 1 when correctly classified. */
  clean: number[];
  runs: Array<{
    eps255: number;
    headline: string;
    /** Per image: the attack that broke it (Skeptic's names), null when robust, 'wrong' when misclassified clean. */
    brokenBy: Array<string | null>;
    log: Array<{ attack: string; robustAccuracy: number }>;
    seconds: number;
    cpuSeconds: number;
    loadAvg?: number;
  }>;
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** ONNX Runtime's logits for the images, in the dataset's file order (reference.py checks its torch graph against them). */
async function ortLogits(model: LoadedModel, limit: number): Promise<{ files: string[]; logits: number[][] }> {
  const dataset = await openDataset(DATA, { labels: model.labels, limit, seed: 0 });
  const files: string[] = [];
  const logits: number[][] = [];
  for await (const batch of dataset.stream(model.decodeSpec(0), { batchSize: 50 })) {
    for (const s of batch) {
      if (!s.image) throw new Error(`${s.record.id}: ${s.error}`);
      const p = await model.predict({ data: s.image.data, n: 1, channels: s.image.channels, height: s.image.height, width: s.image.width });
      files.push(s.record.id);
      logits.push(Array.from(p.logits));
    }
  }
  return { files, logits };
}

async function runSkeptic(model: LoadedModel, eps255: number[], limit: number): Promise<SkepticSide> {
  const dataset = await openDataset(DATA, { labels: model.labels, limit, seed: 0 });
  const side: SkepticSide = { preset: args.preset!, threads: Number(args.threads), files: [], clean: [], runs: [] };
  for (const e of eps255) {
    const probe = attackProbe({ preset: args.preset, eps: [`${e}/255`], epsL2: 'none', bisectionSteps: 0, largeEps: 0, maxImages: limit });
    const load = loadavg()[0];
    const t0 = performance.now();
    const c0 = cpuNow();
    const report = await audit(model, dataset, {
      probes: [cleanProbe(), probe as Probe<object>],
      batchSize: 128,
      onProgress: (p) => {
        if (p.step) process.stderr.write(`  skeptic ${e}/255: ${p.step} [${((performance.now() - t0) / 1000).toFixed(0)} s]\n`);
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = cpuNow() - c0;
    const res = report.probes.attack;
    if (res.status !== 'ok') throw new Error(`attack probe ${res.status}: ${res.reason}`);
    const records = res.records as unknown as Array<AttackRecord & { image: number }>;
    const files = report.images.map((im) => im.id);
    if (!side.files.length) side.files = files;
    const byFile = new Map(records.map((r) => [files[r.image], r]));
    side.clean = side.files.map((f) => (byFile.get(f)?.status === 'attacked' ? 1 : 0));
    const log = (res.metrics as { protocol: { linf: Array<{ attack: string; robustAccuracy: number[] }> } }).protocol.linf;
    side.runs.push({
      eps255: e,
      headline: res.headline ?? '',
      brokenBy: side.files.map((f) => {
        const r = byFile.get(f);
        if (!r) throw new Error(`no attack record for ${f}`);
        return r.status === 'wrong' ? 'wrong' : (r.brokenBy?.[0] ?? null);
      }),
      log: log.map((s) => ({ attack: s.attack, robustAccuracy: s.robustAccuracy[0] })),
      seconds,
      cpuSeconds,
      loadAvg: load,
    });
    process.stderr.write(`  skeptic ${e}/255: ${res.headline} [${seconds.toFixed(1)} s wall, ${cpuSeconds.toFixed(1)} s CPU]\n`);
  }
  return side;
}

const stripRoot = (f: string): string => f.replace(/^.*cifar10_test_first100\//, '');
const secs = (wall: number, cpu?: number): string => `${wall.toFixed(1)} s / ${cpu === undefined ? '?' : `${cpu.toFixed(1)} s`}`;

async function main(): Promise<void> {
  if (!existsSync(MODEL)) {
    console.log(`fixtures absent (${FIXTURES}): nothing to compare`);
    return;
  }
  const eps255 = [...new Set(args.eps!.split(',').map(Number))].sort((a, b) => a - b);
  const limit = Number(args.limit);
  setCpuThreads(Number(args.threads));
  const model = await loadModel(MODEL, { device: 'cpu', preprocess: { scale: 1, mean: MEAN, std: STD } });
  let sk: SkepticSide;
  const refs: Reference[] = [];
  try {
    // ---- AutoAttack, first (so that the two do not share the CPU); or earlier runs of it
    if (args.reference) for (const f of args.reference.split(',')) refs.push(JSON.parse(readFileSync(f, 'utf8')));
    else if (args.autoattack) {
      const tmp = mkdtempSync(join(tmpdir(), 'skeptic-aa-'));
      try {
        const ort = await ortLogits(model, limit);
        // reference.py attacks the images Skeptic's --limit chose (a class-stratified sample below 100), in its order
        const logitsFile = join(tmp, 'ort-logits.json');
        const filesFile = join(tmp, 'files.json');
        writeFileSync(logitsFile, JSON.stringify(ort.logits));
        writeFileSync(filesFile, JSON.stringify(ort.files));
        const script = join(__dirname, 'autoattack', 'reference.py');
        const out = execFileSync(
          PY,
          [script, '--autoattack', args.autoattack, '--model', MODEL, '--data', DATA, '--eps', eps255.join(','), '--limit', String(limit),
            '--threads', args.threads!, '--files', filesFile, '--check-logits', logitsFile],
          { env: { ...process.env, LD_PRELOAD: TCMALLOC, OMP_WAIT_POLICY: 'PASSIVE' }, maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'inherit'] },
        );
        const ref = JSON.parse(out.toString()) as Reference;
        if (ref.files.map(stripRoot).join() !== ort.files.join()) throw new Error('reference.py read the images in another order than Skeptic');
        if (args['reference-out']) writeFileSync(args['reference-out'], `${JSON.stringify(ref, null, 1)}\n`);
        refs.push(ref);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    // ---- Skeptic (or its results from an earlier run, --skeptic)
    sk = args.skeptic ? JSON.parse(readFileSync(args.skeptic, 'utf8')) : await runSkeptic(model, eps255, limit);
  } finally {
    await model.dispose();
  }
  if (args.save) writeFileSync(args.save, JSON.stringify(sk));

  console.log(`Skeptic ${sk.preset} (${sk.threads} thread${sk.threads === 1 ? '' : 's'}), one audit per ε:`);
  for (const run of sk.runs) console.log(`  ${run.eps255}/255: ${run.headline} [${secs(run.seconds, run.cpuSeconds)}]`);
  if (!refs.length) return;

  const AA_STEPS = ['apgd-ce', 'apgd-t', 'fab-t', 'square'];
  const SK_STEPS = ['apgd-ce', 'apgd-t', null, 'square'];
  const TITLES = ['APGD-CE', 'APGD-T', 'FAB-T', 'Square'];
  let ok = true;
  const summary: string[] = [];
  for (const ref of refs) {
    const refFiles = ref.files.map(stripRoot);
    console.log(`\nAutoAttack ${ref.version ?? 'standard'} (fra31/auto-attack ${ref.autoattackCommit?.slice(0, 12) ?? '?'}, torch ${ref.torch}, ${ref.threads ?? '?'} thread(s))` +
      (ref.maxLogitDiff !== undefined ? `; torch vs ONNX Runtime logits: max |diff| ${ref.maxLogitDiff.toExponential(2)}` : ''));
    for (const run of ref.runs) {
      const k = sk.runs.findIndex((r) => r.eps255 === run.eps255);
      if (k < 0) continue;
      const mine = sk.runs[k];
      const skIdx = new Map(sk.files.map((f, i) => [f, i]));
      const idx = refFiles.map((f) => {
        const i = skIdx.get(f);
        if (i === undefined) throw new Error(`${f}: in the reference, not in Skeptic's run`);
        return i;
      });
      const n = refFiles.length;
      const aaClean = ref.clean.reduce((a, b) => a + b, 0);
      const skClean = idx.reduce((a, i) => a + sk.clean[i], 0);
      // Robust counts after each step, from the per-image attribution (AutoAttack's log says the same in %).
      const aaAfter = (s: number): number | null => {
        if (!run.brokenBy) return null;
        const done = new Set(AA_STEPS.slice(0, s + 1));
        return refFiles.filter((_, j) => ref.clean[j] === 1 && !done.has(run.brokenBy![j] ?? '')).length;
      };
      const skAfter = (s: number): number | null => {
        if (SK_STEPS[s] === null) return null;
        const done = new Set(SK_STEPS.slice(0, s + 1));
        return idx.filter((i) => sk.clean[i] === 1 && !done.has(mine.brokenBy[i] ?? '')).length;
      };
      const aaLog = run.log.filter((l) => /robust accuracy after|initial accuracy/.test(l)).map((l) => l.trim());
      const aaRobust = new Set(refFiles.filter((_, j) => run.robust[j] === 1));
      const skRobust = new Set(refFiles.filter((_, j) => mine.brokenBy[idx[j]] === null));
      const onlySk = refFiles.filter((f, j) => skRobust.has(f) && !aaRobust.has(f)).map((f) => `${f} (AA: ${run.brokenBy?.[refFiles.indexOf(f)] ?? '?'})`);
      const otherAttack = refFiles
        .map((f, j) => ({ f, aa: run.brokenBy?.[j] ?? null, sk: mine.brokenBy[idx[j]] }))
        .filter((d) => d.aa !== null && d.sk !== null && d.sk !== 'wrong' && d.aa !== d.sk)
        .map((d) => `${d.f} (AutoAttack: ${d.aa}, Skeptic: ${d.sk})`);
      const onlyAa = refFiles.filter((f) => aaRobust.has(f) && !skRobust.has(f)).map((f) => `${f} (Skeptic: ${mine.brokenBy[skIdx.get(f)!]})`);
      if (onlySk.length) ok = false;
      const pct = (v: number | null): string => (v === null ? '-' : `${v}`);
      console.log(`\nε = ${run.eps255}/255, ${n} images (robust images; AutoAttack / Skeptic)`);
      console.log(`  clean\t\t${aaClean}\t${skClean}`);
      AA_STEPS.forEach((_, s) => console.log(`  after ${TITLES[s]}\t${pct(aaAfter(s))}\t${pct(skAfter(s))}`));
      console.log(`  final robust\t${aaRobust.size}\t${skRobust.size}`);
      console.log(`  robust for Skeptic, broken by AutoAttack: ${onlySk.join(', ') || 'none'}`);
      console.log(`  robust for AutoAttack, broken by Skeptic: ${onlyAa.join(', ') || 'none'}`);
      console.log(`  broken by another attack on each side: ${otherAttack.join(', ') || 'none'}`);
      const at = run.attackTimes;
      // AutoAttack without FAB-T runs the same three attacks as Skeptic's protocol.
      const noFab = at ? secs(run.seconds - (at['fab-t']?.seconds ?? 0), run.cpuSeconds === undefined ? undefined : run.cpuSeconds - (at['fab-t']?.cpuSeconds ?? 0)) : '-';
      if (at) console.log(`  AutoAttack per attack, wall / CPU: ${Object.entries(at).map(([a, t]) => `${a} ${secs(t.seconds, t.cpuSeconds)}`).join('; ')}`);
      const ld = (v?: number): string => (v === undefined ? '' : ` (load ${v.toFixed(1)})`);
      console.log(`  time, wall / CPU: AutoAttack ${secs(run.seconds, run.cpuSeconds)}${ld(run.loadAvg)}; Skeptic ${secs(mine.seconds, mine.cpuSeconds)}${ld(mine.loadAvg)}`);
      console.log(`  AutoAttack's log: ${aaLog.join('; ')}`);
      summary.push(`| ${run.eps255}/255 | ${n} | ${aaClean} / ${skClean} | ${pct(aaAfter(0))} / ${pct(skAfter(0))} | ${pct(aaAfter(1))} / ${pct(skAfter(1))} | ${pct(aaAfter(2))} | ${pct(aaAfter(3))} / ${pct(skAfter(3))} | ${aaRobust.size} / ${skRobust.size} | ${onlySk.length} | ${secs(run.seconds, run.cpuSeconds)} | ${noFab} | ${secs(mine.seconds, mine.cpuSeconds)} |`);
    }
  }
  console.log('\n| ε | images | clean | after APGD-CE | after APGD-T | after FAB-T (AA) | after Square | robust | robust for Skeptic only | AutoAttack wall / CPU | AutoAttack without FAB-T | Skeptic wall / CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of summary) console.log(row);
  console.log(ok ? '\nPASS: at every ε compared, each image Skeptic leaves robust is robust for AutoAttack too' : '\nFAIL: Skeptic leaves robust some image AutoAttack breaks');
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
