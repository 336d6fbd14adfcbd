/**
 * Runs corpus cases in this process through the CLI's main(), one after another, and prints one
 * JSON line per case to stdout (prefixed so that nothing else printed is mistaken for it):
 *   @@begin <i>            before case i (the parent times each case from here)
 *   @@end <json>           its outcome: exit status, stdout, stderr, report.json when written
 * The parent (robustness.test.ts) kills this process when a case overruns, records a hang and
 * starts a new one after it. Usage: run-cases.ts CASES.json FIRST
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../server/cli';
import type { Report as FullReport } from '../../server/engine/report/schema';
import type { Case } from './corpus';
import { loadReport } from '../../server/engine/compare/load';

const [casesFile, firstArg] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesFile, 'utf8')) as Case[];
const realStdout = process.stdout.write.bind(process.stdout);

let captured: { out: string; err: string } | undefined;
let escaped: unknown;
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  if (captured) captured.out += chunk.toString();
  else return realStdout(chunk as string, ...(rest as []));
  return true;
}) as typeof process.stdout.write;
process.stderr.write = ((chunk: string | Uint8Array) => {
  if (captured) captured.err += chunk.toString();
  return true;
}) as typeof process.stderr.write;
// An error escaping main (from a callback, a stray promise) is a crash of the case running.
process.on('uncaughtException', (e) => (escaped = e));
process.on('unhandledRejection', (e) => (escaped = e));

function outDir(args: string[]): string | undefined {
  const i = args.indexOf('--out');
  return i >= 0 ? args[i + 1] : undefined;
}

async function run(): Promise<void> {
  for (let i = Number(firstArg); i < cases.length; i++) {
    const c = cases[i];
    realStdout(`@@begin ${i}\n`);
    captured = { out: '', err: '' };
    escaped = undefined;
    const t0 = Date.now();
    let code: number | undefined;
    let thrown: string | undefined;
    try {
      process.chdir(c.cwd);
      code = await main(c.args);
    } catch (e) {
      thrown = (e as Error)?.stack ?? String(e);
    }
    await new Promise((r) => setImmediate(r));
    if (escaped !== undefined) thrown = (escaped as Error)?.stack ?? String(escaped);
    const { out, err } = captured;
    captured = undefined;
    let report: unknown;
    const dir = outDir(c.args);
    if (dir && (code === 0 || code === 1)) {
      try {
        const r = loadReport(join(dir, 'report.json')) as FullReport;
        // Only what the classification needs: findings and which items were read.
        report = {
          evaluated: r.dataset.evaluated,
          findings: r.findings.map((f) => ({ rule: f.rule, message: f.message, image: f.subject.image })),
          images: r.images.map((im) => ({ id: im.id, sha256: im.sha256 })),
        };
      } catch {
        report = undefined;
      }
    }
    realStdout(`@@end ${JSON.stringify({ i, code, thrown, stdout: out.slice(0, 4000), stderr: err.slice(0, 4000), ms: Date.now() - t0, report })}\n`);
  }
}

void run().then(() => process.exit(0));
