/**
 * Audits at the speed of the model: the default audit (clean, shift, patches, ood, corruptions)
 * with no cache, per probe: wall time, time inside session.run and forward passes; then, in the
 * same process, a bare ONNX Runtime loop over the same number of forward passes at the same batch
 * size (the model's own graph, the engine's session options, tensors built before the clock
 * starts), right after each audit. Target: the audit within 1.5× the bare loop. With --repeat N
 * each audit is paired with its own bare loop (the load of a shared machine drifts) and every
 * pair's ratio is printed, with the load average before and after it. Beside wall time, the
 * process's CPU time (all threads) of the audit and of the bare loop: on a machine other
 * processes load, wall time measures the load as much as the work, CPU time mostly the work.
 * Minor page faults too: memory a session touches for the first time (its arena growing to the
 * largest run) is faulted in page by page, which costs a VM dearly (about 10 µs a page on the
 * development machine); per probe, those of the whole process while the probe was the current one.
 * Per probe, the sessions created while it ran and the time ORT took to create them, and the
 * time of each session's first two runs (where its arena grows: see views/session.ts).
 *
 *   node --import tsx bench/audit.ts [--batch 32] [--repeat 1] [--mnist 1000] [--imagenet 100]
 *                                    [--probes clean,shift,...] [--fixtures DIR] [--case mnist|imagenet|cifar]
 *                                    [--save DIR]   (writes each case's report.json there, to compare metrics)
 *                                    [--run-passes N]  (forward passes per run of the view sessions)
 *                                    [--chunk-rows N]  (rows per copy of the model inside a view run;
 *                                                       a large N keeps the model whole)
 *                                    [--views-webgpu]  (the view graphs WebGPU gets, float32 and
 *                                                       no Sum: their cost and, with --save, their
 *                                                       metrics, on the CPU)
 *                                    [--model FILE]  (another model for the one case chosen with --case,
 *                                                     same input size and preprocessing: a float
 *                                                     ImageNet model for a GPU, bench/device/)
 *                                    [--bare-batch N,...]  (more bare loops over the same passes, at
 *                                                           each batch N: on a GPU, batch 32 leaves
 *                                                           it idle between runs, and a large N
 *                                                           shows the model's own floor)
 *                                    [--interleave]  (the bare loop in chunks between the audit's
 *                                                     batches instead of after it: each time the
 *                                                     audit asks for its next batch, the bare loop
 *                                                     runs the passes the audit made since, and
 *                                                     that time is taken out of the audit's; on a
 *                                                     VM whose speed drifts the two then see the
 *                                                     same machine; the threads' CPU line then
 *                                                     includes the chunks. Fair only while the
 *                                                     audit finishes a batch before it asks for
 *                                                     the next: if its runs go on during a
 *                                                     chunk, the bench stops with an error)
 *                                    [--fresh N]  (N rounds, each case's audit in a process of its
 *                                                  own started for it, the cases taking turns:
 *                                                  every first audit of a process, which pays what
 *                                                  a CLI run pays (V8 compiling the engine, the
 *                                                  workers starting, the sessions' arenas growing)
 *                                                  and a warm audit does not; prints each
 *                                                  process's ratios, then per case the median and
 *                                                  range of the first audits and, with --repeat 2
 *                                                  or more, of the warm ones after them. Without
 *                                                  it, a run of both cases gives MNIST an audit
 *                                                  after ImageNet's, in a process already warm)
 *
 * Needs ../shared/fixtures (MobileNetV2-int8 on the ImageNet samples, mnist-8 on MNIST; with
 * --case cifar, which is not part of the target, the adversarially trained ResNet-2B on the 100
 * CIFAR-10 test images).
 *
 * session.run is timed by wrapping InferenceSession.prototype.run: every session the engine
 * creates (the model's, the views' composed with the model, a standalone view graph) counts, and
 * a run's forward passes are the rows of its [N, K] class-score output (a standalone view graph
 * has none). The time is charged to the probe the audit says is running.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { audit } from '../server/engine/audit';
import { openDataset } from '../server/engine/data';
import { loadModel } from '../server/engine/model';
import { makeBatchSymbolic } from '../server/engine/model/batch';
import { decodeModel, encodeModel } from '../server/engine/model/onnx';
import { sessionOptions, viewKernels } from '../server/engine/model/providers';
import { cpuThreads } from '../server/engine/model/threads';
import { createProbes, DEFAULT_PROBES } from '../server/engine/probes';
import { setModelChunkRows, setViewKernels, setViewRunPasses } from '../server/engine/views';
import { auditInLanes, lanePlan } from '../server/engine/shard/lanes';
import { BENCH_CASES, caseModelOptions } from './cases';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '32' },
    repeat: { type: 'string', default: '1' },
    mnist: { type: 'string', default: '1000' },
    imagenet: { type: 'string', default: '100' },
    probes: { type: 'string' },
    fixtures: { type: 'string' },
    case: { type: 'string' },
    device: { type: 'string', default: 'cpu' },
    save: { type: 'string' },
    'run-passes': { type: 'string' },
    'chunk-rows': { type: 'string' },
    'views-webgpu': { type: 'boolean', default: false },
    model: { type: 'string' },
    'bare-batch': { type: 'string' },
    interleave: { type: 'boolean', default: false },
    lanes: { type: 'string' },
    fresh: { type: 'string' },
    // internal: a --fresh child prints its ratios as one line for its parent to read
    'result-line': { type: 'boolean', default: false },
  },
});
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(__dirname, '../../shared/fixtures'));
const batchSize = Number(values.batch);
const repeat = Number(values.repeat);
const probeIds = values.probes ? values.probes.split(',') : DEFAULT_PROBES;
const device = values.device as 'cpu' | 'cuda' | 'auto';
// Forward passes per session.run of the view sessions (views/session.ts sizes them from the input otherwise).
if (values['run-passes']) setViewRunPasses(Number(values['run-passes']));
// Rows per copy of the model inside a composed view run (views/session.ts's MODEL_CHUNK_ROWS otherwise).
if (values['chunk-rows']) setModelChunkRows(Number(values['chunk-rows']));
if (values['views-webgpu']) setViewKernels(viewKernels('webgpu'));

// --imagenet and --mnist set the image counts of the target's cases (CIFAR-10 keeps its 100)
const limits: Record<string, string | undefined> = { imagenet: values.imagenet, mnist: values.mnist };
const CASES = BENCH_CASES.map((c) => ({ ...c, limit: Number(limits[c.key] ?? c.images) }))
  .filter((c) => (values.case ? c.key === values.case : !c.optional))
  .map((c) => (values.model ? { ...c, model: resolve(values.model), name: `${basename(values.model)} / ${c.name.split(' / ')[1]}` } : c));
if (values.model && (!values.case || CASES.length !== 1)) throw new Error('--model needs --case (the case whose data and preprocessing it takes)');
const bareBatches = values['bare-batch'] ? values['bare-batch'].split(',').map(Number) : [];
if (bareBatches.some((b) => !(Number.isInteger(b) && b >= 1))) throw new Error(`--bare-batch takes positive integers, not ${values['bare-batch']}`);
// --lanes 2,4: after the pairs, the same audit in that many lanes (engine/shard/lanes.ts), --repeat
// times each, against the pairs' best bare loop (lanes run in their own threads, which this file's
// tallies do not see; --run-passes and --chunk-rows do not reach them either)
const laneCounts = values.lanes ? values.lanes.split(',').map(Number) : [];
if (laneCounts.some((n) => !(Number.isInteger(n) && n >= 2))) throw new Error(`--lanes takes whole numbers ≥ 2, not ${values.lanes}`);

interface Tally {
  runMs: number;
  /** CPU time of the process (all threads) while session.run ran. */
  runCpuMs: number;
  runs: number;
  passes: number;
  /** Wall time of each session's first two runs (its arena grows, memory is faulted in). */
  firstMs: number;
  /** Sessions created while the probe ran, and the wall time their creation took. */
  sessions: number;
  createMs: number;
  /** Minor page faults of the process (all threads) while the probe was the current one. */
  faults: number;
  /** Wall time while the probe was the current one, and the process's CPU time (all threads) in it:
   *  their quotient is how many cores the audit kept busy then (at most the machine's). */
  currentMs: number;
  currentCpuMs: number;
}
let current = '-';
/** Forward passes of every probe so far (the interleaved bare loop's chunks follow it). */
let allPasses = 0;
/** --interleave: whether a bare-loop chunk is running, and the audit's runs that started meanwhile.
 *  The chunk's time is taken out of the audit's, which is fair only while the audit waits for it:
 *  an audit that took its batches ahead (its runs going on during a chunk) would get the chunk's
 *  time for free, so the bench refuses to print such a ratio. */
let bareRunning = false;
let runsDuringBare = 0;
let K = 0;
const tallies = new Map<string, Tally>();
const tally = (p: string) => {
  let t = tallies.get(p);
  if (!t) tallies.set(p, (t = { runMs: 0, runCpuMs: 0, firstMs: 0, runs: 0, passes: 0, sessions: 0, createMs: 0, faults: 0, currentMs: 0, currentCpuMs: 0 }));
  return t;
};
/** User + system CPU time of this process (all its threads: ORT's, sharp's, the main one), ms. */
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
/** A thread's name and CPU time (utime + stime at USER_HZ = 100), ms, from /proc/self/task/<tid>/stat. */
const threadStat = (tid: string) => {
  const s = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { name: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ms: ((Number(f[11]) + Number(f[12])) * 1000) / 100 };
};
/** CPU time of the main JavaScript thread alone, ms (Linux: /proc; NaN elsewhere): what the views'
 *  worker threads (views/workers.ts) take off it shows here, whatever else loads the machine. */
const mainThreadMs = () => {
  try {
    return threadStat(String(process.pid)).ms;
  } catch {
    return NaN;
  }
};
/** The machine's idle and stolen CPU time since boot, ms (Linux /proc/stat; NaN elsewhere): on a VM
 *  the hypervisor's steal slows both sides of a pair unevenly, and idle time beside an audit is
 *  time its pipeline left a core without work. */
const machineMs = () => {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: ((f[3] + f[4]) * 1000) / 100, steal: ((f[7] ?? 0) * 1000) / 100 };
  } catch {
    return { idle: NaN, steal: NaN };
  }
};
/** CPU time of each of this process's threads by thread id, with its name (Linux: /proc; empty elsewhere). */
const threadsMs = () => {
  const out = new Map<string, { name: string; ms: number }>();
  try {
    for (const tid of readdirSync('/proc/self/task')) out.set(tid, threadStat(tid));
  } catch {
    // not Linux
  }
  return out;
};
/** Threads that used CPU between two threadsMs(), each on its own, largest first: "name 1.2 s". */
const threadsLine = (a: Map<string, { name: string; ms: number }>, b: Map<string, { name: string; ms: number }>) => {
  const used: Array<{ name: string; ms: number }> = [];
  for (const [tid, t] of b) {
    const ms = t.ms - (a.get(tid)?.ms ?? 0);
    if (ms >= 50) used.push({ name: tid === String(process.pid) ? 'main' : `${t.name}${a.has(tid) ? '' : '*'}`, ms });
  }
  return used.sort((x, y) => y.ms - x.ms).map((t) => `${t.name} ${(t.ms / 1000).toFixed(1)}`).join(', ');
};
const proto = (ort.InferenceSession as unknown as { prototype: { run: (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType> } }).prototype;
const origRun = proto.run;
const runsOf = new WeakMap<object, number>();
proto.run = async function (this: ort.InferenceSession, ...args: unknown[]) {
  if (bareRunning) runsDuringBare++;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = await origRun.apply(this, args);
  const t = tally(current);
  t.runMs += performance.now() - t0;
  t.runCpuMs += cpuMs(process.cpuUsage(c0));
  const n = runsOf.get(this) ?? 0;
  runsOf.set(this, n + 1);
  if (n < 2) t.firstMs += performance.now() - t0;
  t.runs++;
  const scores = Object.values(out).find((x) => x.dims.length === 2 && Number(x.dims[1]) === K);
  if (scores) {
    t.passes += Number(scores.dims[0]);
    allPasses += Number(scores.dims[0]);
  }
  return out;
};
// Session creation (graph building is not in it: that is the caller's JavaScript), charged like runs.
const Session = ort.InferenceSession as unknown as { create: (...a: unknown[]) => Promise<ort.InferenceSession> };
const origCreate = Session.create.bind(Session);
Session.create = async (...args: unknown[]) => {
  const t0 = performance.now();
  const s = await origCreate(...args);
  const t = tally(current);
  t.createMs += performance.now() - t0;
  t.sessions++;
  return s;
};

async function main() {
  if (!existsSync(FIXTURES)) {
    console.log(`skipped: no fixtures at ${FIXTURES}`);
    return;
  }
  if (values.fresh !== undefined) return fresh(Number(values.fresh));
  console.log(`onnxruntime-node ${ort.env.versions?.node ?? '?'}, device ${device}, CPU threads per session: ${cpuThreads() ?? 'ORT default'}, batch ${batchSize}, best of ${repeat}, probes ${probeIds.join(',')}, view run passes ${values['run-passes'] ?? 'sized from the input'}, model chunk rows ${values['chunk-rows'] ?? 'default'}${values['views-webgpu'] ? ", WebGPU's view graphs" : ''}`);
  for (const c of CASES) {
    const modelPath = resolve(FIXTURES, c.model);
    const loadOptions = caseModelOptions(c, FIXTURES, { device, batchSize });
    const model = await loadModel(modelPath, loadOptions);
    K = model.info.numClasses;
    // where it runs: a provider asked for and not started (WebGPU without an adapter) falls back
    console.log(`\n${c.name}: ${model.device.used}${model.device.threads ? ` (${model.device.threads} CPU threads a session)` : ''}${model.device.fallbacks.length ? `; fell back: ${model.device.fallbacks.join('; ')}` : ''}`);
    // Bare ONNX Runtime over the same number of forward passes at the same batch size (the
    // model's own graph, the engine's session options).
    const proto = decodeModel(readFileSync(modelPath), modelPath);
    const inputName = proto.graph!.input![0].name!;
    if (model.info.batch.patched) makeBatchSymbolic(proto, inputName);
    const session = await ort.InferenceSession.create(encodeModel(proto), sessionOptions(model.device.used));
    const { channels: C, height: H, width: W } = model.info;
    const x = new Float32Array(Math.max(batchSize, ...bareBatches) * C * H * W);
    for (let i = 0; i < x.length; i++) x[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    const dims = (rows: number) => (model.info.layout === 'NHWC' ? [rows, H, W, C] : [rows, C, H, W]);
    const bareLoop = async (passes: number, batch = batchSize) => {
      const c1 = process.cpuUsage();
      const f1 = process.resourceUsage().minorPageFault;
      const t1 = performance.now();
      for (let done = 0; done < passes; done += batch) {
        const rows = Math.min(batch, passes - done);
        await origRun.call(session, { [inputName]: new ort.Tensor('float32', x.subarray(0, rows * C * H * W), dims(rows)) });
      }
      return { ms: performance.now() - t1, cpu: cpuMs(process.cpuUsage(c1)), faults: process.resourceUsage().minorPageFault - f1 };
    };

    // Each repeat is an audit and, right after it, the bare loop over its passes: on a shared
    // machine whose load drifts, the ratio within a pair is the fair number.
    let best: { wall: number; per: Map<string, Tally & { wallMs: number }> } | undefined;
    let bare = Infinity;
    const pairs: string[] = [];
    const ratios: number[] = []; // each pair's, for their median
    const threadLines: string[] = [];
    if (values.interleave) await bareLoop(2 * batchSize); // its first runs grow the arena, before any clock
    for (let r = 0; r < repeat; r++) {
      tallies.clear();
      const load0 = loadavg()[0];
      const opened = await openDataset(join(FIXTURES, c.data), { labels: model.labels, limit: c.limit });
      // --interleave: each time the audit asks for its next batch, the bare loop first runs the
      // passes the audit made since (about a batch's), and that time is taken out of the audit's.
      // The two then share the machine's state minute by minute, which a pair run one after the
      // other does not on a VM whose speed drifts by tens of percent.
      const inter = { pausedMs: 0, bareMs: 0, bareCpu: 0, counted: allPasses };
      const chunk = async () => {
        const delta = allPasses - inter.counted;
        inter.counted = allPasses;
        if (delta <= 0) return;
        const was = current;
        switchTo('(bare loop)');
        const t = performance.now();
        bareRunning = true;
        const b = await bareLoop(delta).finally(() => (bareRunning = false));
        inter.bareMs += b.ms;
        inter.bareCpu += b.cpu;
        inter.pausedMs += performance.now() - t;
        switchTo(was);
      };
      const ds: typeof opened = values.interleave ? { ...opened, stream: (spec, o) => interleaved(opened.stream(spec, o), chunk) } : opened;
      const c0 = process.cpuUsage();
      const m0 = mainThreadMs();
      const th0 = threadsMs();
      const k0 = machineMs();
      const f0 = process.resourceUsage().minorPageFault;
      const t0 = performance.now();
      let fSwitch = f0;
      let tSwitch = t0;
      let cSwitch = process.cpuUsage();
      const switchTo = (next: string) => {
        const f = process.resourceUsage().minorPageFault;
        const t = performance.now();
        const c = process.cpuUsage();
        const was = tally(current);
        was.faults += f - fSwitch;
        was.currentMs += t - tSwitch;
        was.currentCpuMs += cpuMs({ user: c.user - cSwitch.user, system: c.system - cSwitch.system });
        fSwitch = f;
        tSwitch = t;
        cSwitch = c;
        current = next;
      };
      const report = await audit(model, ds, {
        probes: createProbes(probeIds),
        batchSize,
        onProgress: (p) => {
          const next = p.phase === 'evaluating' && p.probe ? p.probe : p.phase === 'evaluating' ? 'decode/other' : p.phase;
          if (next !== current) switchTo(next);
        },
      });
      const wall = performance.now() - t0 - inter.pausedMs;
      const cpu = cpuMs(process.cpuUsage(c0)) - inter.bareCpu;
      const mainCpu = mainThreadMs() - m0;
      threadLines.push(threadsLine(th0, threadsMs()));
      const k1 = machineMs();
      const faults = process.resourceUsage().minorPageFault - f0;
      switchTo('-');
      if (values.save) {
        mkdirSync(values.save, { recursive: true });
        writeFileSync(join(values.save, `${c.key}-report.json`), JSON.stringify(report, null, 1));
      }
      const per = new Map<string, Tally & { wallMs: number }>();
      for (const [id, ms] of Object.entries(report.run.timingsMs ?? {})) per.set(id, { ...tally(id), wallMs: ms });
      // a phase that is not a probe (decoding, summaries) has no timing in the report: the time it was current
      for (const [id, t] of tallies) if (!per.has(id)) per.set(id, { ...t, wallMs: t.currentMs });
      if (values.interleave) {
        await chunk(); // passes made after the audit's last request for a batch (none in the bench's audits)
        if (runsDuringBare) {
          throw new Error(
            `--interleave: ${runsDuringBare} of the audit's session runs started while a bare-loop chunk ran, so the chunks' time ` +
              `would be taken out of an audit that did not wait for them; the audit no longer finishes a batch before asking ` +
              `for the next one. Measure without --interleave (each audit, then its bare loop).`,
          );
        }
        per.delete('(bare loop)');
        pairs.push(`interleaved: wall ${(wall / 1000).toFixed(1)} / ${(inter.bareMs / 1000).toFixed(1)} s = ${(wall / inter.bareMs).toFixed(2)}, CPU ${(cpu / 1000).toFixed(1)} / ${(inter.bareCpu / 1000).toFixed(1)} s = ${(cpu / inter.bareCpu).toFixed(2)} (load ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)})`);
        ratios.push(wall / inter.bareMs);
        bare = Math.min(bare, inter.bareMs);
        if (!best || wall < best.wall) best = { wall, per };
        continue;
      }
      const { ms: b, cpu: bCpu, faults: bFaults } = await bareLoop([...per.values()].reduce((a, t) => a + t.passes, 0));
      pairs.push(`wall ${(wall / 1000).toFixed(1)} / ${(b / 1000).toFixed(1)} s = ${(wall / b).toFixed(2)}, CPU ${(cpu / 1000).toFixed(1)} / ${(bCpu / 1000).toFixed(1)} s = ${(cpu / bCpu).toFixed(2)} (audit's main thread ${(mainCpu / 1000).toFixed(1)} s), minor page faults ${faults} / ${bFaults} (load ${load0.toFixed(1)} → ${loadavg()[0].toFixed(1)}; during the audit the machine's cores idled ${((k1.idle - k0.idle) / 1000).toFixed(1)} s and the hypervisor stole ${((k1.steal - k0.steal) / 1000).toFixed(1)} s)`);
      ratios.push(wall / b);
      bare = Math.min(bare, b);
      if (!best || wall < best.wall) best = { wall, per };
    }
    const { wall, per } = best!;
    const passes = [...per.values()].reduce((a, t) => a + t.passes, 0);
    let bareLarge = '';
    for (const b of bareBatches) {
      await bareLoop(2 * b, b); // its first runs grow the arena (and, on a GPU, build its kernels)
      const { ms } = await bareLoop(passes, b);
      bareLarge += `\nbare loop at batch ${b}: ${(ms / 1000).toFixed(1)} s over the same passes (${((1000 * ms) / passes).toFixed(1)} µs a pass): the audit is ${(wall / ms).toFixed(2)}× that`;
    }
    for (const lanes of laneCounts) {
      const plan = lanePlan(lanes, { device: model.device.used, images: c.limit, laneBytes: 0 });
      const walls: number[] = [];
      for (let r = 0; r < repeat; r++) {
        const dataset = await openDataset(join(FIXTURES, c.data), { labels: model.labels, limit: c.limit });
        const t0 = performance.now();
        const report = await auditInLanes(model, dataset, {
          probes: createProbes(probeIds),
          batchSize,
          plan,
          open: { modelPath, modelOptions: { ...loadOptions }, dataPath: join(FIXTURES, c.data), datasetOptions: {}, probes: probeIds, params: {}, baseDir: process.cwd() },
          limit: c.limit,
        });
        walls.push(performance.now() - t0);
        if (values.save) writeFileSync(join(values.save, `${c.key}-lanes-${lanes}-report.json`), JSON.stringify(report, null, 1));
      }
      bareLarge += `\nin ${lanes} lanes of ${plan.threads} threads, ${plan.workers} views workers each: audit ${walls.map((w) => (w / 1000).toFixed(1)).join(', ')} s: ${walls.map((w) => (w / bare).toFixed(2)).join(', ')}× the bare loop`;
    }
    const runMs = [...per.values()].reduce((a, t) => a + t.runMs, 0);
    const runCpuMs = [...per.values()].reduce((a, t) => a + t.runCpuMs, 0);
    const firstMs = [...per.values()].reduce((a, t) => a + t.firstMs, 0);
    await session.release();
    await model.dispose();

    console.log(`\n${c.name} (${c.limit} images): audit ${(wall / 1000).toFixed(1)} s, bare loop ${(bare / 1000).toFixed(1)} s over ${passes} forward passes: ratio ${(wall / bare).toFixed(2)}${repeat > 1 ? ` (best of each); the pairs' median ${median(ratios).toFixed(2)}, after the first ${median(ratios.slice(1)).toFixed(2)}` : ''}${bareLarge}`);
    console.log(`audit / ${values.interleave ? 'the bare loop between its batches' : 'the bare loop right after it'}: ${pairs.join('; ')}`);
    console.log(`the audit's CPU by thread (s, those over 0.05; * started during the audit): ${threadLines.join('; ')}`);
    const createMs = [...per.values()].reduce((a, t) => a + t.createMs, 0);
    const sessions = [...per.values()].reduce((a, t) => a + t.sessions, 0);
    console.log('probe          wall s   session.run s   its CPU s   first 2 runs s   runs   forward passes   sessions   creating s   page faults   cores busy');
    const row = (id: string, w: number, t: Tally) =>
      console.log(`${id.padEnd(14)} ${(w / 1000).toFixed(1).padStart(6)}   ${(t.runMs / 1000).toFixed(1).padStart(13)}   ${(t.runCpuMs / 1000).toFixed(1).padStart(9)}   ${(t.firstMs / 1000).toFixed(1).padStart(14)}   ${String(t.runs || '').padStart(4)}   ${String(t.passes).padStart(14)}   ${String(t.sessions).padStart(8)}   ${(t.createMs / 1000).toFixed(2).padStart(10)}   ${String(t.faults).padStart(11)}   ${t.currentMs > 0 ? (t.currentCpuMs / t.currentMs).toFixed(2).padStart(10) : ''}`);
    for (const [id, t] of per) row(id, t.wallMs, t);
    const sum = (k: 'faults' | 'currentMs' | 'currentCpuMs') => [...per.values()].reduce((a, t) => a + t[k], 0);
    row('total', wall, { runMs, runCpuMs, firstMs, runs: 0, passes, sessions, createMs, faults: sum('faults'), currentMs: sum('currentMs'), currentCpuMs: sum('currentCpuMs') });
    if (values['result-line']) console.log(`${RESULT_MARK}${JSON.stringify({ case: c.key, ratios })}`);
  }
}

const RESULT_MARK = 'bench-audit-result ';

/**
 * --fresh N: N rounds; in each, every case's audit in a new process (this script again, with the
 * same options, that case alone and --result-line), one after the other so that the cases share
 * the machine's drift. Each process's first pair is a first audit; its later pairs (--repeat)
 * are warm ones.
 */
function fresh(rounds: number): void {
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--fresh takes a whole number ≥ 1, not ${values.fresh}`);
  // this invocation's options, less --fresh and --case (each child gets its case)
  const own = new Set(['--fresh', '--case']);
  const args: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].split('=')[0];
    if (own.has(name)) {
      if (!argv[i].includes('=')) i++;
      continue;
    }
    args.push(argv[i]);
  }
  const firsts = new Map<string, number[]>();
  const warms = new Map<string, number[]>();
  for (let r = 1; r <= rounds; r++) {
    for (const c of CASES) {
      const child = spawnSync(process.execPath, [...process.execArgv, __filename, ...args, '--case', c.key, '--result-line'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 64 << 20,
      });
      const line = (child.stdout ?? '').split('\n').find((l) => l.startsWith(RESULT_MARK));
      if (child.status !== 0 || !line) throw new Error(`--fresh: the process for ${c.key} (round ${r}) ${child.status !== 0 ? `exited with ${child.status ?? child.signal}` : 'printed no result'}`);
      const { ratios } = JSON.parse(line.slice(RESULT_MARK.length)) as { ratios: number[] };
      firsts.set(c.key, [...(firsts.get(c.key) ?? []), ratios[0]]);
      warms.set(c.key, [...(warms.get(c.key) ?? []), ...ratios.slice(1)]);
      console.log(`round ${r}, ${c.name}: first audit ${ratios[0].toFixed(2)}${ratios.length > 1 ? `, then ${ratios.slice(1).map((x) => x.toFixed(2)).join(', ')}` : ''}`);
    }
  }
  const spread = (xs: number[]) => `median ${median(xs).toFixed(2)}, ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} (${xs.length}: ${xs.map((x) => x.toFixed(2)).join(', ')})`;
  console.log(`\neach a process of its own, ${values.interleave ? 'the bare loop interleaved' : 'the bare loop right after each audit'}; target ≤ 1.5`);
  for (const c of CASES) {
    console.log(`${c.name}: first audits ${spread(firsts.get(c.key)!)}`);
    const w = warms.get(c.key)!;
    if (w.length) console.log(`${c.name}: warm audits ${spread(w)}`);
  }
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** src's items, `between` awaited before each is asked for (and once after the last). */
async function* interleaved<T>(src: AsyncIterable<T>, between: () => Promise<void>): AsyncGenerator<T> {
  const it = src[Symbol.asyncIterator]();
  try {
    for (;;) {
      await between();
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
