/**
 * The view graphs alone: the plans of the default shift, patches (shuffles, evidence) and ood
 * probes at ImageNet size (3×224×224), each as a standalone view graph on the CPU, timed per
 * session.run (wall and the process's CPU), best of --rounds rounds of 3 runs after a warm-up.
 * With --against DIR (another checkout, e.g. main's), that checkout's views/graph.ts builds the
 * same plans and the two take turns in every round: the same inputs, outputs compared value by
 * value. The minimum over many short rounds is what a loaded machine lets through; the
 * standalone graph's output also goes back to JavaScript, a cost both sides pay alike.
 *
 *   node --import tsx bench/view-graphs.ts [--plans shift,tiles,evidence,ood] [--sources 1] [--rounds 20] [--against DIR]
 *
 * A diagnostic, not a target (bench/audit.ts holds the target).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../server/engine/model/providers';
import { standaloneViewModel } from '../server/engine/views/graph';
import type { ViewOp, ViewPlan } from '../server/engine/views/plan';

const { values } = parseArgs({
  options: {
    plans: { type: 'string', default: 'shift,tiles,evidence,ood' },
    sources: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '20' },
    against: { type: 'string' },
  },
});
const n = Number(values.sources);
const C = 3;
const H = 224;
const W = 224;
type Build = typeof standaloneViewModel;

/** A plan as the default probe makes it at 224 px, and its per-source inputs for n sources. */
function planOf(name: string): { plan: ViewPlan; feeds: Record<string, ort.Tensor> } {
  const m = name === 'shift' ? 8 : 0;
  const src = new Float32Array(n * C * (H + 2 * m) * (W + 2 * m)).map((_, i) => ((i * 2654435761) % 1000) / 1000);
  const feeds: Record<string, ort.Tensor> = { skeptic_view_src: new ort.Tensor('float32', src, [n, C, H + 2 * m, W + 2 * m]) };
  const perms = (sizes: number[]) => {
    const total = sizes.reduce((a, s) => a + s, 0);
    const p = new Int32Array(n * total);
    for (let i = 0; i < n; i++) {
      let at = 0;
      for (const s of sizes) {
        for (let k = 0; k < s; k++) p[i * total + at + k] = (k + 1 + i) % s;
        at += s;
      }
    }
    feeds.skeptic_view_perm = new ort.Tensor('int32', p, [n, total]);
  };
  const at = (g: number) => Array.from({ length: g + 1 }, (_, i) => i * Math.floor(H / g));
  let ops: ViewOp[];
  if (name === 'shift') {
    // k = 8: the horizontal sweep, the vertical sweep, the centred embedding and 8 at random
    const shifts = Array.from({ length: 17 }, (_, i) => i - 8);
    ops = [
      ...shifts.map((dx): ViewOp => ({ kind: 'crop', top: m, left: m - dx })),
      ...shifts.map((dy): ViewOp => ({ kind: 'crop', top: m - dy, left: m })),
      ...Array.from({ length: 9 }, (_, slot): ViewOp => ({ kind: 'embed', slot })),
    ];
    const e = new Int32Array(n * 18);
    for (let i = 0; i < e.length; i++) e[i] = (i * 37) % 225;
    feeds.skeptic_view_embed = new ort.Tensor('int32', e, [n, 9, 2]);
  } else if (name === 'tiles') {
    // patches' shuffles at grids 2, 4, 8 beside the image
    ops = [{ kind: 'crop', top: 0, left: 0 }, ...[2, 4, 8].map((g, slot): ViewOp => ({ kind: 'tiles', rows: at(g), cols: at(g), slot }))];
    perms([4, 16, 64]);
  } else if (name === 'evidence') {
    // patches' evidence: the blank canvas and 49 patches of 56 px at stride 28, mean fill
    ops = [{ kind: 'patch', top: 0, left: 0, size: 0, fill: 'mean' }];
    for (let t = 0; t <= 168; t += 28) for (let l = 0; l <= 168; l += 28) ops.push({ kind: 'patch', top: t, left: l, size: 56, fill: 'mean' });
  } else if (name === 'ood') {
    // the image and the 11 generated sets (uniform, constant, gaussian, inverted, rotations, patches)
    ops = [
      { kind: 'crop', top: 0, left: 0 }, { kind: 'given', slot: 0 }, { kind: 'given', slot: 1 }, { kind: 'normal', slot: 0 }, { kind: 'invert' },
      ...[90, 180, 15, 30, 45, 60].map((degrees): ViewOp => ({ kind: 'rotate', degrees })),
      { kind: 'tiles', rows: at(4), cols: at(4), slot: 0 },
    ];
    perms([16]);
    feeds.skeptic_view_noise = new ort.Tensor('float32', new Float32Array(n * C * H * W * 2).map((_, i) => 0.01 + ((i * 7919) % 977) / 1000), [n, 1, C, H, W, 2]);
    feeds.skeptic_view_given = new ort.Tensor('float32', new Float32Array(n * 2 * C * H * W).fill(0.3), [n, 2, C, H, W]);
  } else throw new Error(`unknown plan ${name}: shift, tiles, evidence, ood`);
  return { plan: { channels: C, height: H, width: W, margin: m, ops }, feeds };
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function main() {
  const sides: Array<[string, Build]> = [['this checkout', standaloneViewModel]];
  if (values.against) {
    const other = (await import(resolve(values.against, 'server/engine/views/graph.ts'))) as { standaloneViewModel: Build };
    sides.unshift([values.against, other.standaloneViewModel]);
  }
  console.log(`standalone view graphs, ${C}×${H}×${W}, ${n} source(s) a run, best of ${values.rounds} rounds of 3 runs`);
  console.log(`| plan | views | ${sides.map(([s]) => `${s}: wall, CPU ms a run`).join(' | ')} |${sides.length > 1 ? ' outputs |' : ''}`);
  console.log(`|---|---|${sides.map(() => '---|').join('')}${sides.length > 1 ? '---|' : ''}`);
  for (const name of values.plans!.split(',')) {
    const { plan, feeds } = planOf(name);
    const sessions = await Promise.all(sides.map(async ([, build]) => {
      const g = build(plan, 13, n === 1);
      return { session: await ort.InferenceSession.create(g.bytes, sessionOptions('cpu', 'all', false)), output: g.output };
    }));
    const outs: Float32Array[] = [];
    for (const s of sessions) for (let w = 0; w < 3; w++) outs[sessions.indexOf(s)] = (await s.session.run(feeds))[s.output].data as Float32Array;
    let same = 'identical';
    if (outs.length > 1) {
      let d = outs[0].length === outs[1].length ? 0 : Infinity;
      for (let i = 0; i < outs[0].length && d !== Infinity; i++) d = Math.max(d, Math.abs(outs[0][i] - outs[1][i]));
      if (d !== 0) same = `differ by ${d}`;
    }
    const best = sessions.map(() => ({ wall: Infinity, cpu: Infinity }));
    for (let r = 0; r < Number(values.rounds); r++) {
      for (let k = 0; k < sessions.length; k++) {
        const c0 = cpuMs();
        const t0 = performance.now();
        for (let i = 0; i < 3; i++) await sessions[k].session.run(feeds);
        best[k].wall = Math.min(best[k].wall, (performance.now() - t0) / 3);
        best[k].cpu = Math.min(best[k].cpu, (cpuMs() - c0) / 3);
      }
    }
    console.log(`| ${name} | ${plan.ops.length} | ${best.map((b) => `${b.wall.toFixed(1)}, ${b.cpu.toFixed(1)}`).join(' | ')} |${sessions.length > 1 ? ` ${same} |` : ''}`);
    for (const s of sessions) await s.session.release();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
