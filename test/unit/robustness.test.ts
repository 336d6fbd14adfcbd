/**
 * The hostile-input corpus (test/robustness): every case must end in a clear outcome, with 0
 * crashes, 0 hangs, 0 reads outside the dataset root and 0 unclear messages. The cases run
 * in-process through the CLI's main() in one child process (fast: the model loads in ~20 ms);
 * a case that overruns its limit kills that child, counts as a hang, and the rest go on in a
 * new one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { classify, type Outcome, type Verdict } from '../robustness/classify';
import { buildCorpus, type Case } from '../robustness/corpus';
import { ensureDemoData } from './helpers/demo';

const CASE_LIMIT_MS = 60_000;
const RUNNER = resolve(__dirname, '../robustness/run-cases.ts');

/** Runs cases [first, end) in a child; resolves to the outcomes and where it stopped. */
function runFrom(casesFile: string, first: number, outcomes: Map<number, Outcome>): Promise<number | undefined> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, casesFile, String(first)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
    });
    let current: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    let hung: number | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = current;
        child.kill('SIGKILL');
      }, CASE_LIMIT_MS);
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('@@begin ')) {
        current = Number(line.slice(8));
        arm();
      } else if (line.startsWith('@@end ')) {
        const o = JSON.parse(line.slice(6)) as Outcome & { i: number };
        outcomes.set(o.i, o);
        current = undefined;
        clearTimeout(timer);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      const stuck = hung ?? current;
      if (stuck !== undefined && !outcomes.has(stuck)) outcomes.set(stuck, { stdout: '', stderr: '', ms: CASE_LIMIT_MS, hang: hung !== undefined, thrown: hung === undefined ? 'the runner process died' : undefined });
      done(stuck);
    });
  });
}

test('hostile-input corpus: every case ends in a clear outcome', { timeout: 900_000 }, async () => {
  ensureDemoData();
  const root = mkdtempSync(join(tmpdir(), 'skeptic-corpus-'));
  try {
    const cases: Case[] = buildCorpus(root);
    const casesFile = join(root, 'cases.json');
    writeFileSync(casesFile, JSON.stringify(cases));
    const outcomes = new Map<number, Outcome>();
    let next = 0;
    while (next < cases.length) {
      const stopped = await runFrom(casesFile, next, outcomes);
      if (stopped === undefined) break;
      next = stopped + 1;
    }
    const counts: Record<Verdict, number> = { good: 0, crash: 0, hang: 0, 'outside-root': 0, network: 0, unclear: 0, accepted: 0 };
    const bad: string[] = [];
    const perGroup: Record<string, number> = {};
    cases.forEach((c, i) => {
      perGroup[c.group] = (perGroup[c.group] ?? 0) + 1;
      const o = outcomes.get(i);
      const { verdict, why } = o ? classify(c, o) : { verdict: 'crash' as Verdict, why: 'never ran' };
      counts[verdict]++;
      if (verdict !== 'good') bad.push(`  [${verdict}] ${c.name}: ${why}`);
    });
    const slowest = [...outcomes.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 3).map(([i, o]) => `${cases[i].name} ${o.ms} ms`);
    console.log(`corpus: ${cases.length} cases (${Object.entries(perGroup).map(([g, n]) => `${g} ${n}`).join(', ')})`);
    console.log(`verdicts: ${Object.entries(counts).map(([v, n]) => `${v} ${n}`).join(', ')}; slowest: ${slowest.join('; ')}`);
    assert.ok(cases.length >= 100, `the corpus has ${cases.length} cases`);
    assert.equal(bad.length, 0, `bad outcomes:\n${bad.join('\n')}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
