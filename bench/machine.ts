/**
 * What this machine charges for two things an audit does many times and a bare model loop hardly
 * does: touching memory for the first time (a page fault per 4 KiB page: each session's arena as
 * it grows, every new typed array) and waking a sleeping thread (ONNX Runtime's pool thread at
 * each parallel kernel, with spinning off; a worker's message). On a physical machine a fault
 * costs well under a microsecond and a wake a few; in some virtual machines both cost ten times
 * that, which changes what a first audit costs (bench/README.md, twenty-first pass).
 *
 *   node --import tsx bench/machine.ts [--mib 256] [--wakes 20000]
 *
 * A diagnostic, not a target.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' }, wakes: { type: 'string', default: '20000' } } });
const MIB = Number(values.mib);
const WAKES = Number(values.wakes);

/** µs per page fault: a fresh typed array (zeroed lazily by the kernel) touched once per 4 KiB page, three times. */
function faults(): string[] {
  const lines: string[] = [];
  for (let r = 0; r < 3; r++) {
    const f0 = process.resourceUsage().minorPageFault;
    const t0 = performance.now();
    const a = new Uint8Array(MIB << 20);
    for (let i = 0; i < a.length; i += 4096) a[i] = 1;
    const ms = performance.now() - t0;
    const n = process.resourceUsage().minorPageFault - f0;
    lines.push(`first touch of ${MIB} MiB: ${ms.toFixed(0)} ms, ${n} page faults, ${((ms * 1000) / Math.max(1, n)).toFixed(2)} µs a fault`);
  }
  return lines;
}

/** µs per round trip between this thread and a worker, each waiting in Atomics.wait (a futex) for the other. */
async function wakes(): Promise<string> {
  const sab = new SharedArrayBuffer(8);
  const flag = new Int32Array(sab);
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const f = new Int32Array(workerData.sab);
     for (let i = 0; i < workerData.n; i++) {
       while (Atomics.load(f, 0) !== 1) Atomics.wait(f, 0, 0);
       Atomics.store(f, 0, 0);
       Atomics.notify(f, 0);
     }`,
    { eval: true, workerData: { sab, n: WAKES } },
  );
  await new Promise((r) => worker.once('online', r));
  const t0 = performance.now();
  for (let i = 0; i < WAKES; i++) {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
    while (Atomics.load(flag, 0) !== 0) Atomics.wait(flag, 0, 1);
  }
  const us = ((performance.now() - t0) * 1000) / WAKES;
  await worker.terminate();
  return `thread wake-ups: ${us.toFixed(2)} µs a round trip (two wakes), over ${WAKES}`;
}

async function main() {
  for (const l of faults()) console.log(l);
  console.log(await wakes());
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
