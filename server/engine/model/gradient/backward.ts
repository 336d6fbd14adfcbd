/**
 * Builds the gradient graph from the prepared forward (prepare.ts) and its probed shapes
 * (probe.ts):
 *
 *   - picks the class-score output and the value to differentiate (the logits before a final
 *     Softmax/LogSoftmax, checked numerically against the output);
 *   - finds the nodes on a path from the pixels to the logits through differentiable values
 *     (float outputs; Shape, comparisons, ArgMax... carry none), so shape-only subgraphs such as
 *     Shape→Gather→Concat→Reshape are constants to the backward pass;
 *   - appends the loss head (cross-entropy, margin or targeted DLR, chosen at run time by two bool
 *     inputs) and
 *     the reverse sweep, one rule per node (rules.ts), gradients of a value summed where it fans out;
 *   - prunes what the outputs do not need, and encodes the full model and a forward-only one.
 */
import type { OutputKind } from '../../types';
import { encodeModel, onnx } from '../onnx';
import { classesOf } from '../output';
import { BATCH_DIM } from '../batch';
import { A, Builder } from './builder';
import { GradientUnsupportedError, UnsupportedList } from './errors';
import type { Forward } from './prepare';
import type { Meta, Probe } from './probe';
import { DEFAULT_VARIANTS, NON_DIFFERENTIABLE, RULES, RuleFail, reshapeTo, type Ctx, type Variants } from './rules';
import { SHADOW_RULES } from './shadow';
import { ConstFolder } from './tensor';

/** Names of the gradient model's inputs and outputs. */
export const IO = {
  labels: 'skeptic_labels',
  useCe: 'skeptic_use_ce',
  useDlr: 'skeptic_use_dlr',
  targets: 'skeptic_targets',
  logits: 'skeptic_logits',
  loss: 'skeptic_loss',
  grad: 'skeptic_grad',
} as const;

/** What the gradient covers: the model's ops on the differentiated path and the rule used for each. */
export type GradientCoverage = {
  /** Ops on the path from the pixels to the logits (the model's own op types, shadowed ones included). */
  ops: { op: string; count: number; rule: string }[];
  /** Ops that feed the path only as constants (shape subgraphs, weights computed in the graph). */
  constantOps: Record<string, number>;
  /** The value differentiated, in words. */
  logits: string;
  /** True when an int8 graph was differentiated through its float shadow. */
  shadow: boolean;
  opset: { model: number; graph: number };
  notes: string[];
};

export interface BuiltGraph {
  full: Uint8Array;
  forward: Uint8Array;
  coverage: GradientCoverage;
}

const PASS_THROUGH = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout', 'Cast']);

export function buildGradientGraph(fw: Forward, probe: Probe, K: number, kind: OutputKind, variants: Variants = DEFAULT_VARIANTS): BuiltGraph {
  const g = fw.m.graph!;
  const nodes = g.node!;
  const meta = probe.meta;
  const file = fw.file;
  const notes = [...fw.notes];

  // ---- the class scores and the value to differentiate
  const outName = (g.output ?? [])
    .map((o) => o.name ?? '')
    .find((o) => {
      const m = meta.get(o);
      return m && m.dtype === 'float32' && classesOf(m.d1, probe.rows) === K;
    });
  if (!outName) throw new Error(`${file}: no float output with ${K} scores per image in the prepared graph`);
  const producers = new Map<string, onnx.INodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producers.set(o, n);
  const findHead = (op: string): onnx.INodeProto | undefined => {
    let name = outName;
    for (let hops = 0; hops < 16; hops++) {
      const n = producers.get(name);
      if (!n) return undefined;
      if (n.opType === op) return n;
      if (!PASS_THROUGH.has(n.opType ?? '') || !n.input?.[0]) return undefined;
      name = n.input[0];
    }
    return undefined;
  };
  let logits = outName;
  let how = `the output '${outName}'`;
  const b = new Builder(fw.opset);
  if (kind !== 'logits') {
    const want = kind === 'probabilities' ? 'Softmax' : 'LogSoftmax';
    const head = findHead(want);
    const pre = head?.input?.[0];
    if (pre && verifyHead(probe, pre, outName, K, kind)) {
      logits = pre;
      how = `the input of the final ${want} '${head!.name || head!.output![0]}' (the logits before it)`;
    } else if (kind === 'probabilities') {
      const clipped = b.op('Clip', [outName, b.scalar(1e-30)]);
      logits = b.op('Log', [clipped]);
      nodes.push(...b.nodes.splice(0));
      const om = meta.get(outName)!;
      meta.set(clipped, om);
      meta.set(logits, om);
      how = `the log of the output probabilities '${outName}' (no Softmax found before it)`;
    } else {
      how = `the output log-probabilities '${outName}'`;
    }
  }
  const lm = meta.get(logits)!;
  if (lm.d1.reduce((a, c) => a * c, 1) !== probe.rows * K) throw new Error(`${file}: the logits '${logits}' do not hold ${K} values per image`);

  // ---- loss head: z [N,K]; CE, margin and targeted DLR (chosen by bool inputs); dz seeds the sweep
  const head: Head = {
    reads: [logits],
    what: how,
    dependsOn: 'the class scores',
    build(b, ctx) {
      const z = b.reshape(logits, [-1, K]);
      const labels1 = b.unsqueeze(IO.labels, [1]);
      const classes = b.i64(Array.from({ length: K }, (_, i) => i), [1, K]);
      const isY = b.op('Equal', [labels1, classes]);
      const onehot = b.op('Cast', [isY], [A.i('to', 1)]);
      const lsm = b.op('LogSoftmax', [z], [A.i('axis', 1)]);
      const ce = b.op('Neg', [b.reduce('ReduceSum', b.mul(lsm, onehot), [1], false)]);
      const dce = b.op('Sub', [b.op('Exp', [lsm]), onehot]);
      const others = b.op('Where', [isY, b.scalar(-3.4e38), z]);
      const zmax = b.reduce('ReduceMax', others, [1], false);
      const zy = b.reduce('ReduceSum', b.mul(z, onehot), [1], false);
      const margin = b.op('Sub', [zmax, zy]);
      const runnerUp = b.op('ArgMax', [others], [A.i('axis', 1), A.i('keepdims', 1)]);
      const dmargin = b.op('Sub', [b.op('Cast', [b.op('Equal', [runnerUp, classes])], [A.i('to', 1)]), onehot]);
      // targeted DLR (Croce & Hein 2020): −(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4) + 1e-12), with π
      // the classes by logit, largest first, found by ArgMax and masking (any opset; ties go to
      // the lower index, as attacks/dlr.ts does); with K < 4, π3 and π4 are the last class.
      const order: string[] = [];
      let rest = z;
      for (let j = 0; j < Math.min(4, K); j++) {
        const hit = b.op('Equal', [b.op('ArgMax', [rest], [A.i('axis', 1), A.i('keepdims', 1)]), classes]);
        order.push(b.op('Cast', [hit], [A.i('to', 1)]));
        if (j + 1 < Math.min(4, K)) rest = b.op('Where', [hit, b.scalar(-3.4e38), rest]);
      }
      while (order.length < 4) order.push(order[order.length - 1]);
      const half = b.scalar(0.5);
      const denDir = b.op('Sub', [order[0], b.mul(half, b.op('Add', [order[2], order[3]]))]);
      const den = b.op('Add', [b.reduce('ReduceSum', b.mul(z, denDir), [1], false), b.scalar(1e-12)]);
      const isT = b.op('Cast', [b.op('Equal', [b.unsqueeze(IO.targets, [1]), classes])], [A.i('to', 1)]);
      const numDir = b.op('Sub', [onehot, isT]);
      const num = b.reduce('ReduceSum', b.mul(z, numDir), [1], false);
      const dlr = b.op('Neg', [b.op('Div', [num, den])]);
      // d/dz: −numDir/den + num/den² · denDir
      const den1 = b.unsqueeze(den, [1]);
      const ddlr = b.op('Sub', [b.mul(b.op('Div', [b.unsqueeze(num, [1]), b.mul(den1, den1)]), denDir), b.op('Div', [numDir, den1])]);
      b.node('Where', [IO.useDlr, dlr, b.op('Where', [IO.useCe, ce, margin])], [], [IO.loss]);
      const dz = b.op('Where', [IO.useDlr, ddlr, b.op('Where', [IO.useCe, dce, dmargin])]);
      b.node('Identity', [z], [], [IO.logits]);
      return new Map([[logits, lm.d1.length === 2 && lm.d1[1] === K ? dz : reshapeTo(ctx, dz, logits)]]);
    },
    inputs: (batchDim) => [vi(IO.labels, 7, [batchDim]), vi(IO.useCe, 9, [{ dimValue: 1 }]), vi(IO.useDlr, 9, [{ dimValue: 1 }]), vi(IO.targets, 7, [batchDim])],
    outputs: (batchDim) => [vi(IO.logits, 1, [batchDim, { dimValue: K }]), vi(IO.loss, 1, [batchDim])],
    forwardOutputs: (batchDim) => [vi(IO.logits, 1, [batchDim, { dimValue: K }])],
  };
  return differentiate(fw, probe, b, head, variants, notes);
}

/** A value-info for a graph input or output. */
export const vi = (name: string, elemType: number, dim: onnx.TensorShapeProto.IDimension[]): onnx.IValueInfoProto => ({
  name, type: { tensorType: { elemType, shape: { dim } } },
});

/**
 * What is differentiated: a head reads values of the forward graph, appends its own nodes (the
 * loss and its gradient with respect to the values it read, written by hand) and names the
 * inputs and outputs it adds. The class-score loss above is one head; the feature losses of
 * style transfer (features.ts) are another.
 */
export interface Head {
  /** Forward values the head reads; the gradients it returns for them seed the reverse sweep. */
  reads: string[];
  /** The value(s) differentiated, in words (coverage.logits). */
  what: string;
  /** What must depend on the input, for the error message when it does not. */
  dependsOn: string;
  /** Appends the head's nodes; returns the seed gradient of each value it reads. */
  build(b: Builder, ctx: Ctx): Map<string, string>;
  /** Inputs besides the pixels, outputs besides the gradient, and the forward-only outputs. */
  inputs(batchDim: onnx.TensorShapeProto.IDimension): onnx.IValueInfoProto[];
  outputs(batchDim: onnx.TensorShapeProto.IDimension): onnx.IValueInfoProto[];
  forwardOutputs(batchDim: onnx.TensorShapeProto.IDimension): onnx.IValueInfoProto[];
}

/**
 * The reverse sweep from a head's values back to the pixels: the full model (pixels and the
 * head's inputs → the head's outputs and d loss / d pixels) and a forward-only one.
 */
export function differentiate(fw: Forward, probe: Probe, b: Builder, head: Head, variants: Variants, notes: string[] = [...fw.notes]): BuiltGraph {
  const g = fw.m.graph!;
  const nodes = g.node!;
  const meta = probe.meta;
  const file = fw.file;

  // ---- differentiable values and the nodes between the pixels and the head's values
  const isFloat = (v: string) => meta.get(v)?.dtype === 'float32';
  const active = new Set([fw.pixel]);
  for (const n of nodes) {
    if (NON_DIFFERENTIABLE.has(n.opType ?? '')) continue;
    if ((n.input ?? []).some((i) => active.has(i))) for (const o of n.output ?? []) if (o && isFloat(o)) active.add(o);
  }
  const needed = new Set(head.reads);
  const work: onnx.INodeProto[] = [];
  const inWork = new Set<onnx.INodeProto>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!(n.output ?? []).some((o) => needed.has(o) && active.has(o))) continue;
    const act = (n.input ?? []).filter((x) => active.has(x));
    if (!act.length) continue;
    work.push(n);
    inWork.add(n);
    for (const x of act) needed.add(x);
  }
  // every node upstream of the head's values, to tell shape subgraphs apart and to explain a cut
  const upstream = new Set<string>(head.reads);
  const constantOps: Record<string, number> = {};
  const cuts = new UnsupportedList();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!(n.output ?? []).some((o) => upstream.has(o))) continue;
    for (const x of n.input ?? []) if (x) upstream.add(x);
    if (inWork.has(n) || fw.prefixOutputs.has(n.output?.[0] ?? '')) continue;
    const op = fw.origin.get(n.output?.[0] ?? '')?.op ?? n.opType ?? '';
    constantOps[op] = (constantOps[op] ?? 0) + 1;
    if ((n.input ?? []).some((x) => active.has(x)) && !(n.output ?? []).some((o) => active.has(o))) {
      cuts.add(op, n.name || n.output?.[0] || op, 'no gradient flows through it');
    }
  }
  if (!needed.has(fw.pixel)) {
    throw new GradientUnsupportedError(file, cuts.list().length ? cuts.list() : [{ op: 'graph', nodes: head.reads, reason: `${head.dependsOn} do not depend on the input` }], `${head.dependsOn} do not depend differentiably on the input`);
  }

  // ---- rules available?
  const bad = new UnsupportedList();
  for (const n of work) {
    const op = n.opType ?? '';
    const domainOk = !n.domain || n.domain === 'ai.onnx';
    if (!domainOk || !RULES[op]) {
      const orig = fw.origin.get(n.output?.[0] ?? '')?.op;
      bad.add(domainOk ? op : `${n.domain}.${op}`, n.name || n.output?.[0] || op, orig && orig !== op ? `in the float shadow of ${orig}` : undefined);
    }
  }
  if (bad.size) throw new GradientUnsupportedError(file, bad.list());

  // ---- context for the rules
  const cf = new ConstFolder(g);
  const consumers = new Map<string, number>();
  for (const n of nodes) for (const x of n.input ?? []) consumers.set(x, (consumers.get(x) ?? 0) + 1);
  for (const o of g.output ?? []) consumers.set(o.name ?? '', (consumers.get(o.name ?? '') ?? 0) + 1);
  const ruleNotes = new Map<string, string>();
  const ctx: Ctx = {
    b,
    opset: fw.opset,
    variants,
    meta: (v) => {
      const m = meta.get(v);
      if (!m) throw new RuleFail(`no shape for '${v}'`);
      return m;
    },
    hasMeta: (v) => meta.has(v),
    constVal: (v) => cf.get(v),
    usedElsewhere: (v) => (consumers.get(v) ?? 0) > 0,
    note: (key, text) => ruleNotes.set(key, text),
  };

  // ---- the head: its loss and the seed gradients
  const grads = new Map<string, string[]>();
  for (const [v, gv] of head.build(b, ctx)) grads.set(v, [gv]);

  // ---- reverse sweep
  const gradOf = (v: string): string | undefined => {
    const list = grads.get(v);
    if (!list || !list.length) return undefined;
    if (list.length > 1) grads.set(v, [b.op('Sum', list)]);
    return grads.get(v)![0];
  };
  const failed = new UnsupportedList();
  for (const n of work) {
    const gy = (n.output ?? []).map((o) => gradOf(o));
    if (gy.every((x) => x === undefined)) continue;
    const act = (n.input ?? []).map((x) => active.has(x));
    let gx: (string | undefined)[];
    try {
      gx = RULES[n.opType!].fn(ctx, n, gy, act);
    } catch (e) {
      if (!(e instanceof RuleFail)) throw e;
      failed.add(n.opType ?? '', n.name || n.output?.[0] || '', e.message);
      continue;
    }
    (n.input ?? []).forEach((x, i) => {
      if (act[i] && gx[i]) {
        const list = grads.get(x) ?? [];
        list.push(gx[i]!);
        grads.set(x, list);
      }
    });
  }
  if (failed.size) throw new GradientUnsupportedError(file, failed.list(), 'the gradient rules do not handle these nodes');
  const gp = gradOf(fw.pixel);
  if (!gp) throw new Error(`${file}: no gradient reached the input`);
  b.node('Identity', [gp], [], [IO.grad]);

  // ---- models
  const pixelIn = g.input!.find((i) => i.name === fw.pixel)!;
  const batchDim: onnx.TensorShapeProto.IDimension = fw.mode.kind === 'dynamic' ? { dimParam: BATCH_DIM } : { dimValue: fw.mode.kind === 'fixed' ? fw.mode.size : 1 };
  const pixelDims = pixelIn.type?.tensorType?.shape?.dim ?? [];
  const allNodes = [...nodes, ...b.nodes];
  const allInits = [...(g.initializer ?? []), ...b.inits];
  const make = (inputs: onnx.IValueInfoProto[], outputs: onnx.IValueInfoProto[]): Uint8Array => {
    const graph: onnx.IGraphProto = { ...g, node: allNodes, initializer: allInits, input: inputs, output: outputs, valueInfo: [] };
    prune(graph);
    // MaxPool's Indices (added for the backward pass) cost ~10× the pooling: drop them where unused
    const used = new Set<string>(outputs.map((o) => o.name ?? ''));
    for (const n of graph.node ?? []) for (const x of n.input ?? []) used.add(x);
    graph.node = (graph.node ?? []).map((n) => (n.opType === 'MaxPool' && n.output?.[1] && !used.has(n.output[1]) ? { ...n, output: [n.output[0]] } : n));
    return encodeModel({ ...fw.m, graph });
  };
  const full = make([pixelIn, ...head.inputs(batchDim)], [...head.outputs(batchDim), vi(IO.grad, 1, pixelDims.map((d) => ({ ...d })))]);
  const forward = make([pixelIn], head.forwardOutputs(batchDim));

  // ---- coverage
  const byOp = new Map<string, { ids: Set<string | number>; rule: string }>();
  let prefixCount = 0;
  for (const n of work) {
    const out0 = n.output?.[0] ?? '';
    if (fw.prefixOutputs.has(out0)) {
      prefixCount++;
      continue;
    }
    const o = fw.origin.get(out0);
    const op = o?.op ?? n.opType ?? '';
    const rule = o ? SHADOW_RULES[o.op] ?? RULES[n.opType!].doc : RULES[n.opType!].doc;
    const e = byOp.get(op) ?? { ids: new Set(), rule };
    e.ids.add(o ? o.id : out0);
    byOp.set(op, e);
  }
  if (prefixCount) notes.push(`the pixel preprocessing (${prefixCount} op${prefixCount > 1 ? 's' : ''}: scale, mean/std, layout) is part of the graph differentiated: gradients are per pixel in [0,1]`);
  notes.push(...ruleNotes.values());
  const nConst = Object.values(constantOps).reduce((a, c) => a + c, 0);
  if (nConst) notes.push(`${nConst} node${nConst > 1 ? 's' : ''} upstream of ${head.dependsOn} ${nConst > 1 ? 'carry' : 'carries'} no gradient (shape computations, constants): ${Object.entries(constantOps).map(([op, c]) => `${op} ×${c}`).join(', ')}`);
  const coverage: GradientCoverage = {
    ops: [...byOp.entries()].map(([op, e]) => ({ op, count: e.ids.size, rule: e.rule })).sort((a, c) => c.count - a.count || a.op.localeCompare(c.op)),
    constantOps,
    logits: head.what,
    shadow: fw.shadow,
    opset: { model: fw.modelOpset, graph: fw.opset },
    notes,
  };
  return { full, forward, coverage };
}

/** Numerically checks that softmax (or log-softmax) of the candidate logits gives the output. */
function verifyHead(probe: Probe, pre: string, out: string, K: number, kind: OutputKind): boolean {
  const z = probe.values.get(pre);
  const p = probe.values.get(out);
  if (!z || !p || z.length !== p.length || z.length !== probe.rows * K) return false;
  for (let r = 0; r < probe.rows; r++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, z[r * K + k]);
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(z[r * K + k] - max);
    const lse = max + Math.log(s);
    for (let k = 0; k < K; k++) {
      const lp = z[r * K + k] - lse;
      const v = p[r * K + k];
      const ok = kind === 'probabilities' ? Math.abs(Math.exp(lp) - v) <= 1e-4 : Math.abs(lp - v) <= 1e-3 * Math.max(1, Math.abs(v));
      if (!ok) return false;
    }
  }
  return true;
}

/** Drops nodes, initializers and inputs the outputs do not need. */
function prune(g: onnx.IGraphProto): void {
  const need = new Set((g.output ?? []).map((o) => o.name ?? ''));
  const keep: onnx.INodeProto[] = [];
  const list = g.node ?? [];
  for (let i = list.length - 1; i >= 0; i--) {
    const n = list[i];
    if (!(n.output ?? []).some((o) => need.has(o))) continue;
    keep.push(n);
    for (const x of n.input ?? []) if (x) need.add(x);
  }
  g.node = keep.reverse();
  g.initializer = (g.initializer ?? []).filter((t) => need.has(t.name ?? ''));
}

export type { Meta };
