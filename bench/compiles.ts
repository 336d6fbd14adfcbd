/**
 * What V8's optimising compiler (TurboFan) costs an audit: the default audit of a bench case
 * (bench/cases.ts) run --audits times in one process, that process started with --trace-opt,
 * --trace-deopt and --log-code, and each audit's compiles summed from the trace (every thread's:
 * the main one's and the views worker's; a compile's three phases, whichever thread ran them).
 * Prints per audit its wall and process CPU time, the compiles and their CPU, the deoptimisations,
 * and how many of the compiles were of a function compiled before in this process ("again"); then
 * the functions that cost most in the first audit and in the last, by source line.
 *
 * A first audit pays to compile the engine and the makers. A warm one (the same loaded model
 * again, as the daemon runs it) compiles again what V8 did not keep: V8 keeps a function's
 * optimised code alive only through the function objects that use it (the code shared by all the
 * closures of one function literal is held weakly), so once every closure of a literal has died,
 * the next full collection drops its code and its next closures are compiled anew. That is so for
 * a probe's methods (new probes every audit) and for the callbacks a probe makes per batch.
 * The logs slow the traced audits (a first MNIST audit 5.6–6.1 s against 4.5 without them), so
 * their wall times are not bench/audit.ts's.
 *
 *   node --import tsx bench/compiles.ts [--case mnist] [--audits 3] [--top 12] [--images N] [--fixtures DIR]
 *
 * A diagnostic, not a target (bench/audit.ts holds the target); bench/README.md, thirty-sixth and
 * thirty-seventh passes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { findSourceMap } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_CASES, type BenchCase, caseModelOptions } from './cases';

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

/** One compile from a --trace-opt line: the function, its file, the CPU of its three phases (ms),
 *  and its SharedFunctionInfo's address (as the trace prints it, a tagged pointer). */
export interface Compile {
  name: string;
  file: string;
  ms: number;
  osr: boolean;
  sfi: string;
}

/**
 * The compile a `--trace-opt --trace-file-names` line reports as completed, or undefined. Such a
 * line reads (V8 11, Node 20):
 *   [completed compiling 0x… <JSFunction snow </…/imagenet-c.ts> (sfi = 0x…)> (target TURBOFAN) - took 0.1, 20.5, 0.2 ms]
 * with OSR after the target for an on-stack replacement, and no name for an anonymous function.
 */
export function parseCompile(line: string): Compile | undefined {
  const m = line.match(/^\[completed compiling 0x[0-9a-f]+ <JSFunction (.*?) ?(?:<([^>]*)> )?\(sfi = (0x[0-9a-f]+)\)> \(target [A-Z]+\)( OSR)? - took ([\d.]+), ([\d.]+), ([\d.]+) ms\]/);
  if (!m) return undefined;
  return { name: m[1] || '(anonymous)', file: m[2] ?? '', ms: Number(m[5]) + Number(m[6]) + Number(m[7]), osr: !!m[4], sfi: m[3] };
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

/** Where each function V8's --log-code logs (one per isolate, in `dir`) saw created is: "name
 *  file:line:col" (lines and columns of the code V8 ran, here tsx's output), by the untagged
 *  address of its SharedFunctionInfo. An address freed and used again for another function later
 *  in the run would name the later one: rare, and only for a diagnostic's labels. */
function functionsByAddress(dir: string): Map<string, string> {
  const by = new Map<string, string>();
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      // code-creation,JS,<kind>,<µs>,<code address>,<size>,<name file:line:col>,<sfi address>,<tier>
      if (!line.startsWith('code-creation,JS,')) continue;
      const f = line.split(',');
      by.set(f[f.length - 2], f.slice(6, -2).join(','));
    }
  }
  return by;
}

/** "name file:line" in the TypeScript source, through the source map tsx gives the file it
 *  transformed (this process transforms it the same way); V8's position for other files. */
function sourceLine(where: string): string {
  const m = where.match(/^(.*?) ?((?:file:\/\/)?\/[^:]+):(\d+):(\d+)$/);
  if (!m) return where.trim();
  const [, name, url, line, col] = m;
  const file = url.startsWith('file:') ? fileURLToPath(url) : url;
  let at = `${relative(process.cwd(), file)}:${line}:${col}`;
  if (file.endsWith('.ts')) {
    if (!findSourceMap(file)) {
      try {
        require(file);
      } catch {
        // not loadable here: V8's position stays
      }
    }
    const e = findSourceMap(file)?.findEntry(Number(line) - 1, Number(col) - 1) as { originalLine?: number } | undefined;
    at = e?.originalLine !== undefined ? `${relative(process.cwd(), file)}:${e.originalLine + 1}` : `${at} of tsx's output`;
  }
  return `${name || '(anonymous)'}  ${at}`;
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
  // before any engine file is loaded here, so that sourceLine finds their source maps
  process.setSourceMapsEnabled(true);
  const logs = mkdtempSync(join(tmpdir(), 'skeptic-compiles-'));
  try {
    // V8 names each isolate's log isolate-<address>-<pid>-v8.log, in the folder given
    const args = ['--trace-opt', '--trace-deopt', '--trace-file-names', '--log-code', `--logfile=${join(logs, 'v8.log')}`, '--import', 'tsx', __filename, '--child', '--case', c.key, '--audits', String(audits), '--fixtures', FIXTURES];
    if (values.images) args.push('--images', values.images);
    const run = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (run.status !== 0) throw new Error(`the traced process exited with ${run.status ?? run.signal}: ${run.stderr.split('\n').slice(-5).join('\n')}`);
    report(c, audits, run.stdout, functionsByAddress(logs));
  } finally {
    rmSync(logs, { recursive: true, force: true });
  }
}

interface Placed extends Compile {
  /** The audit it fell in, −1 outside them (model loading, between audits). */
  audit: number;
  /** Where the function is ("name file:line:col" as V8 logged it), or its name and file. */
  where: string;
  /** The function and the kind of compile (OSR or not): what "compiled before" compares. */
  key: string;
  /** A function compiled (the same way: OSR or not) before in this process. */
  again: boolean;
}

function report(c: BenchCase, audits: number, trace: string, functions: Map<string, string>): void {
  const per: Array<{ wall: number; cpu: number; deopts: number }> = [];
  const compiles: Placed[] = [];
  const seen = new Set<string>();
  let audit = -1;
  let unread = 0;
  let unplaced = 0;
  for (const line of trace.split('\n')) {
    if (line.startsWith(`${MARK}start`)) {
      audit = per.length;
      per.push({ wall: 0, cpu: 0, deopts: 0 });
    } else if (line.startsWith(`${MARK}end`)) {
      const [, , wall, cpu] = line.slice(MARK.length).split(' '); // "end <audit> <wall ms> <CPU ms>"
      Object.assign(per[audit], { wall: Number(wall), cpu: Number(cpu) });
      audit = -1;
    } else if (line.startsWith('[bailout')) {
      if (audit >= 0) per[audit].deopts++;
    } else if (line.startsWith('[completed compiling')) {
      const k = parseCompile(line);
      if (!k) {
        if (audit >= 0) unread++;
        continue;
      }
      const logged = functions.get(`0x${(BigInt(k.sfi) - 1n).toString(16)}`);
      if (!logged) unplaced++;
      const where = logged ?? `${k.name} ${k.file}`;
      const key = `${where}${k.osr ? ' (OSR)' : ''}`;
      compiles.push({ ...k, audit, where, key, again: seen.has(key) });
      seen.add(key);
    }
  }
  if (per.length !== audits) throw new Error(`the traced process reported ${per.length} audits of ${audits}`);
  const inAudit = (a: number) => compiles.filter((k) => k.audit === a);
  // none read at all: V8's trace format changed, and every number below would be 0
  if (!inAudit(0).length) throw new Error("no compile in the first audit read from V8's trace");
  const sum = (ks: Compile[]) => ks.reduce((s, k) => s + k.ms, 0);
  console.log(`${c.name}, ${values.images ?? c.images} images, the default audit ${audits} times in one process (node ${process.version})`);
  console.log('"again": compiles of a function compiled before in this process, its code dropped since (after a deopt, or by a full collection once no closure of it was alive)');
  console.log('audit   wall ms   CPU ms   compiles   compile CPU ms   of the CPU   again   again ms   deopts');
  // two threads (the main one and the views worker) write the trace at once, so a line now and
  // then comes out spliced with another and its compile is left out
  if (unread) console.log(`(${unread} compile lines spliced by two threads writing at once, left out)`);
  if (unplaced) console.log(`(${unplaced} of ${compiles.length} compiles not found in V8's code log: named by function and file only)`);
  per.forEach((p, a) => {
    const ks = inAudit(a);
    const ms = sum(ks);
    const again = ks.filter((k) => k.again);
    console.log(
      `${String(a + 1).padStart(5)}   ${String(p.wall).padStart(7)}   ${String(p.cpu).padStart(6)}   ${String(ks.length).padStart(8)}   ${ms.toFixed(0).padStart(14)}   ${((100 * ms) / p.cpu).toFixed(1).padStart(9)}%` +
        `   ${String(again.length).padStart(5)}   ${sum(again).toFixed(0).padStart(8)}   ${String(p.deopts).padStart(6)}`,
    );
  });
  const top = Number(values.top);
  const shown = audits > 1 ? [0, audits - 1] : [0];
  for (const a of shown) {
    const by = new Map<string, { first: Placed; ms: number; n: number; again: number }>();
    for (const k of inAudit(a)) {
      const e = by.get(k.key) ?? { first: k, ms: 0, n: 0, again: 0 };
      e.ms += k.ms;
      e.n++;
      if (k.again) e.again++;
      by.set(k.key, e);
    }
    console.log(`\naudit ${a + 1}: the ${top} functions whose compiles cost most (ms, compiles, of them again)`);
    for (const e of [...by.values()].sort((x, y) => y.ms - x.ms).slice(0, top)) {
      console.log(`${e.ms.toFixed(1).padStart(8)} ${String(e.n).padStart(3)} ${String(e.again).padStart(3)}  ${sourceLine(e.first.where)}${e.first.osr ? ' (OSR)' : ''}`);
    }
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
