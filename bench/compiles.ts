/**
 * What V8's optimising compiler (TurboFan) costs an audit: the default audit of a bench case
 * (bench/cases.ts) run --audits times in one process, that process started with --trace-opt, and
 * each audit's compiles summed from the trace (every thread's: the main one's and the views
 * worker's; a compile's three phases, whichever thread ran them). Prints per audit its wall and
 * process CPU time, the compiles and their CPU, then the functions that cost most in the first
 * audit and in the last. A first audit pays to compile the engine and the makers; a warm one
 * (the same loaded model again, as the daemon runs it) compiles again what V8 did not keep.
 *
 *   node --import tsx bench/compiles.ts [--case mnist] [--audits 3] [--top 12] [--images N] [--fixtures DIR]
 *
 * A diagnostic, not a target (bench/audit.ts holds the target); bench/README.md, thirty-sixth pass.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_CASES, caseModelOptions } from './cases';

const { values } = parseArgs({
  options: {
    case: { type: 'string', default: 'mnist' },
    audits: { type: 'string', default: '3' },
    top: { type: 'string', default: '12' },
    images: { type: 'string' },
    fixtures: { type: 'string' },
    // internal: this script again, as the traced process
    child: { type: 'boolean', default: false },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
const MARK = 'bench-compiles ';

/** One compile from a --trace-opt line: the function, its file, and the CPU of its three phases (ms). */
export interface Compile {
  name: string;
  file: string;
  ms: number;
  osr: boolean;
}

/**
 * The compile a `--trace-opt --trace-file-names` line reports as completed, or undefined. Such a
 * line reads (V8 11, Node 20):
 *   [completed compiling 0x… <JSFunction snow </…/imagenet-c.ts> (sfi = 0x…)> (target TURBOFAN) - took 0.1, 20.5, 0.2 ms]
 * with OSR after the target for an on-stack replacement, and no name for an anonymous function.
 */
export function parseCompile(line: string): Compile | undefined {
  const m = line.match(/^\[completed compiling 0x[0-9a-f]+ <JSFunction (.*?) ?(?:<([^>]*)> )?\(sfi = [^)]*\)> \(target [A-Z]+\)( OSR)? - took ([\d.]+), ([\d.]+), ([\d.]+) ms\]/);
  if (!m) return undefined;
  return { name: m[1] || '(anonymous)', file: m[2] ?? '', ms: Number(m[4]) + Number(m[5]) + Number(m[6]), osr: !!m[3] };
}

async function child(): Promise<void> {
  const c = BENCH_CASES.find((b) => b.key === values.case)!;
  const { audit } = await import('../server/engine/audit');
  const { openDataset } = await import('../server/engine/data');
  const { loadModel } = await import('../server/engine/model');
  const { createProbes, DEFAULT_PROBES } = await import('../server/engine/probes');
  const model = await loadModel(join(FIXTURES, c.model), caseModelOptions(c, FIXTURES, { batchSize: 32 }));
  const limit = values.images ? Number(values.images) : c.images;
  for (let a = 0; a < Number(values.audits); a++) {
    const dataset = await openDataset(join(FIXTURES, c.data), { labels: model.labels, limit });
    // the markers go to stdout, where V8's trace goes, so that the parent reads them in order
    process.stdout.write(`${MARK}start ${a}\n`);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await audit(model, dataset, { probes: createProbes(DEFAULT_PROBES), batchSize: 32 });
    const cpu = process.cpuUsage(c0);
    process.stdout.write(`${MARK}end ${a} ${(performance.now() - t0).toFixed(0)} ${((cpu.user + cpu.system) / 1000).toFixed(0)}\n`);
  }
  await model.dispose();
}

function parent(): void {
  const c = BENCH_CASES.find((b) => b.key === values.case);
  if (!c) throw new Error(`--case takes ${BENCH_CASES.map((b) => b.key).join(', ')}, not ${values.case}`);
  const audits = Number(values.audits);
  if (!(Number.isInteger(audits) && audits >= 1)) throw new Error(`--audits takes a whole number ≥ 1, not ${values.audits}`);
  if (!existsSync(join(FIXTURES, c.model))) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  const args = ['--trace-opt', '--trace-file-names', '--import', 'tsx', __filename, '--child', '--case', c.key, '--audits', String(audits), '--fixtures', FIXTURES];
  if (values.images) args.push('--images', values.images);
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`the traced process exited with ${run.status ?? run.signal}: ${run.stderr.split('\n').slice(-5).join('\n')}`);
  const per: Array<{ wall: number; cpu: number; compiles: Compile[] }> = [];
  let current: Compile[] | undefined;
  const unread: string[] = [];
  for (const line of run.stdout.split('\n')) {
    if (line.startsWith(`${MARK}start`)) current = [];
    else if (line.startsWith(`${MARK}end`)) {
      const [, , wall, cpu] = line.slice(MARK.length).split(' '); // "end <audit> <wall ms> <CPU ms>"
      per.push({ wall: Number(wall), cpu: Number(cpu), compiles: current ?? [] });
      current = undefined;
    } else if (current && line.startsWith('[completed compiling')) {
      const k = parseCompile(line);
      if (k) current.push(k);
      else unread.push(line);
    }
  }
  if (per.length !== audits) throw new Error(`the traced process reported ${per.length} audits of ${audits}`);
  // none read at all: V8's trace format changed, and every number below would be 0
  if (!per[0].compiles.length) throw new Error(`no compile in the first audit read from V8's trace${unread.length ? `, e.g. not understood: ${unread[0]}` : ''}`);
  const sum = (ks: Compile[]) => ks.reduce((a, k) => a + k.ms, 0);
  console.log(`${c.name}, ${values.images ?? c.images} images, the default audit ${audits} times in one process (node ${process.version})`);
  console.log('audit   wall ms   CPU ms   compiles   compile CPU ms   of the CPU');
  // two threads (the main one and the views worker) write the trace at once, so a line now and
  // then comes out spliced with another and its compile is left out
  if (unread.length) console.log(`(${unread.length} compile lines spliced by two threads writing at once, left out)`);
  per.forEach((p, a) => {
    const ms = sum(p.compiles);
    console.log(`${String(a + 1).padStart(5)}   ${String(p.wall).padStart(7)}   ${String(p.cpu).padStart(6)}   ${String(p.compiles.length).padStart(8)}   ${ms.toFixed(0).padStart(14)}   ${((100 * ms) / p.cpu).toFixed(1).padStart(9)}%`);
  });
  const top = Number(values.top);
  const shown = audits > 1 ? [0, audits - 1] : [0];
  for (const a of shown) {
    const by = new Map<string, { ms: number; n: number }>();
    for (const k of per[a].compiles) {
      const key = `${k.name}${k.osr ? ' (OSR)' : ''}  ${k.file.startsWith('/') ? relative(process.cwd(), k.file) : k.file}`;
      const e = by.get(key) ?? { ms: 0, n: 0 };
      e.ms += k.ms;
      e.n++;
      by.set(key, e);
    }
    console.log(`\naudit ${a + 1}: the ${top} functions whose compiles cost most (ms, compiles)`);
    for (const [key, e] of [...by].sort((x, y) => y[1].ms - x[1].ms).slice(0, top)) console.log(`${e.ms.toFixed(1).padStart(8)} ${String(e.n).padStart(3)}  ${key}`);
  }
}

if (require.main === module) {
  if (values.child) {
    child().then(() => process.exit(0), (e) => {
      console.error(e);
      process.exit(1);
    });
  } else parent();
}
