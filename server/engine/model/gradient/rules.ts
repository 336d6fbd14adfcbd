/**
 * Reverse-mode rules, written in standard ONNX ops. A rule gets the gradients of a node's outputs
 * (undefined where none flows) and returns the gradients of its inputs (undefined for inputs that
 * do not depend on the pixels). Shapes come from the probe (probe.ts): a dimension that changes
 * between the batch-1 and batch-2 runs is the batch and is never baked into a constant.
 *
 * Rules prefer a node's output over its input where both tell the same (Relu: y > 0), so that
 * ONNX Runtime can still fuse the forward (Conv+Relu) whose intermediate is then not needed.
 */
import type { onnx } from '../onnx';
import { A, type Builder } from './builder';
import { type Meta, reshapeTarget, isStatic } from './probe';
import { attrFloat, attrInt, attrInts, attrString, type JsTensor } from './tensor';

export interface Variants {
  /** Stride-1 Conv input gradient: 'flip' = a Conv with the flipped kernel (default), 'transpose' = ConvTranspose. */
  conv: 'flip' | 'transpose';
  /** Overlapping MaxPool: 'scatter' = ScatterElements over the argmax indices (default), 'unpool' = MaxUnpool per non-overlapping window class. */
  maxpool: 'scatter' | 'unpool';
}

export const DEFAULT_VARIANTS: Variants = { conv: 'flip', maxpool: 'scatter' };

/** Thrown by a rule for a configuration it does not handle. */
export class RuleFail extends Error {}

export interface Ctx {
  b: Builder;
  opset: number;
  variants: Variants;
  meta(v: string): Meta;
  hasMeta(v: string): boolean;
  constVal(v: string): JsTensor | undefined;
  /** Whether a value is consumed anywhere else than by `node` (for rules that change a node's outputs). */
  usedElsewhere(v: string, node: onnx.INodeProto): boolean;
  note(key: string, text: string): void;
}

type Grads = (string | undefined)[];
export type RuleFn = (c: Ctx, n: onnx.INodeProto, gy: Grads, active: boolean[]) => Grads;
export interface Rule {
  doc: string;
  fn: RuleFn;
}

const fail = (why: string): never => {
  throw new RuleFail(why);
};

// ---------------------------------------------------------------------------------------------
// helpers

const ins = (n: onnx.INodeProto) => n.input ?? [];
const outs = (n: onnx.INodeProto) => n.output ?? [];
const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);
const ones = (r: number) => new Array(r).fill(1);

/** Reshape g to the shape of value `target`. */
export function reshapeTo(c: Ctx, g: string, target: string): string {
  const t = reshapeTarget(c.meta(target));
  return t ? c.b.reshape(g, t) : c.b.op('Reshape', [g, c.b.op('Shape', [target])]);
}

/** Sums g (of dims gm) over the axes that `target` was broadcast along, and reshapes it to target. */
export function unbroadcast(c: Ctx, g: string, gm: Pick<Meta, 'd1' | 'd2'>, target: string): string {
  const tm = c.meta(target);
  const R = gm.d1.length;
  const r = tm.d1.length;
  const axes: number[] = [];
  for (let i = 0; i < R; i++) {
    const j = i - (R - r);
    if (j < 0) {
      axes.push(i);
      continue;
    }
    const t1 = tm.d1[j] === 1 && tm.d2[j] === 1;
    const g1 = gm.d1[i] === 1 && gm.d2[i] === 1;
    if (t1 && !g1) axes.push(i);
  }
  if (axes.length === 0) return g;
  const s = c.b.reduce('ReduceSum', g, axes, true);
  return R !== r ? reshapeTo(c, s, target) : s;
}

/** Explicit begin/end pads of a Conv/pool from auto_pad, pads and the static spatial input dims. */
function resolvePads(n: onnx.INodeProto, H: number[], k: number[], s: number[], d: number[]): [number[], number[]] {
  const r = H.length;
  const auto = attrString(n, 'auto_pad', 'NOTSET');
  if (auto === 'VALID') return [new Array(r).fill(0), new Array(r).fill(0)];
  if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
    const pb: number[] = [];
    const pe: number[] = [];
    for (let i = 0; i < r; i++) {
      const out = Math.ceil(H[i] / s[i]);
      const total = Math.max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - H[i]);
      const head = auto === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      pb.push(head);
      pe.push(total - head);
    }
    return [pb, pe];
  }
  const pads = attrInts(n, 'pads') ?? new Array(2 * r).fill(0);
  return [pads.slice(0, r), pads.slice(r, 2 * r)];
}

/** Static spatial dims of a value (fails when they vary with the batch). */
function spatial(c: Ctx, v: string): number[] {
  const m = c.meta(v);
  for (let i = 2; i < m.d1.length; i++) if (!isStatic(m, i)) fail(`spatial dims of '${v}' vary with the batch`);
  return m.d1.slice(2);
}

/**
 * A transposed window op that maps the output grid O back onto the input grid H (stride s,
 * effective kernel keff, begin pads pb): ConvTranspose pads and output_padding, plus any zero
 * rows past output_padding's limit (< stride), added with a Pad.
 */
function transposedGeometry(H: number[], O: number[], keff: number[], s: number[], d: number[], pb: number[]) {
  const r = H.length;
  const pe: number[] = [];
  const op: number[] = [];
  const extra: number[] = [];
  for (let i = 0; i < r; i++) {
    const full = s[i] * (O[i] - 1) + keff[i];
    const rem = full - pb[i];
    if (rem >= H[i]) {
      pe.push(rem - H[i]);
      op.push(0);
      extra.push(0);
    } else {
      pe.push(0);
      const need = H[i] - rem;
      const lim = Math.max(s[i], d[i]) - 1;
      op.push(Math.min(need, lim));
      extra.push(need - Math.min(need, lim));
    }
  }
  return { pe, op, extra };
}

function padEnd(c: Ctx, x: string, rank: number, extra: number[]): string {
  if (extra.every((e) => e === 0)) return x;
  const pads = new Array(2 * rank).fill(0);
  extra.forEach((e, i) => (pads[rank + 2 + i] = e));
  return c.b.pad(x, pads);
}

/** Flips a [M, C/g, k...] kernel into the [C, M/g, k...] kernel of its input-gradient Conv. */
export function flipKernel(w: JsTensor, group: number): { dims: number[]; data: Float32Array } {
  const [M, Cg, ...k] = w.dims;
  const K = prod(k);
  const Mg = M / group;
  const C = Cg * group;
  const out = new Float32Array(w.data.length);
  for (let gr = 0; gr < group; gr++) {
    for (let m = 0; m < Mg; m++) {
      for (let cc = 0; cc < Cg; cc++) {
        const src = ((gr * Mg + m) * Cg + cc) * K;
        const dst = ((gr * Cg + cc) * Mg + m) * K;
        for (let j = 0; j < K; j++) out[dst + K - 1 - j] = w.data[src + j];
      }
    }
  }
  return { dims: [C, Mg, ...k], data: out };
}

// ---------------------------------------------------------------------------------------------
// rules

const unary = (doc: string, f: (c: Ctx, n: onnx.INodeProto, g: string) => string): Rule => ({
  doc,
  fn: (c, n, [g]) => [f(c, n, g!)],
});

const pass: Rule = { doc: 'identity', fn: (_c, _n, [g]) => [g] };

const binaryRules: Record<string, Rule> = {
  Add: {
    doc: 'g to both inputs, summed over broadcast axes (ReduceSum + Reshape)',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      return ins(n).map((x, i) => (act[i] ? unbroadcast(c, g!, ym, x) : undefined));
    },
  },
  Sub: {
    doc: 'g and −g, summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      const [a, b] = ins(n);
      return [act[0] ? unbroadcast(c, g!, ym, a) : undefined, act[1] ? unbroadcast(c, c.b.op('Neg', [g!]), ym, b) : undefined];
    },
  },
  Mul: {
    doc: 'g·b and g·a, summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      const [a, b] = ins(n);
      return [act[0] ? unbroadcast(c, c.b.mul(g!, b), ym, a) : undefined, act[1] ? unbroadcast(c, c.b.mul(g!, a), ym, b) : undefined];
    },
  },
  Div: {
    doc: 'g/b and −g·y/b, summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const y = outs(n)[0];
      const ym = c.meta(y);
      const [a, b] = ins(n);
      return [
        act[0] ? unbroadcast(c, c.b.op('Div', [g!, b]), ym, a) : undefined,
        act[1] ? unbroadcast(c, c.b.op('Neg', [c.b.mul(g!, c.b.op('Div', [y, b]))]), ym, b) : undefined,
      ];
    },
  },
  Pow: {
    doc: 'g·e·x^(e−1) for the base, g·y·ln x for the exponent, summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const y = outs(n)[0];
      const ym = c.meta(y);
      const [a, e] = ins(n);
      const ga = act[0] ? unbroadcast(c, c.b.mul(g!, c.b.mul(e, c.b.op('Pow', [a, c.b.op('Sub', [e, c.b.scalar(1)])]))), ym, a) : undefined;
      const ge = act[1] ? unbroadcast(c, c.b.mul(g!, c.b.mul(y, c.b.op('Log', [a]))), ym, e) : undefined;
      return [ga, ge];
    },
  },
  Sum: {
    doc: 'g to every input, summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      return ins(n).map((x, i) => (act[i] ? unbroadcast(c, g!, ym, x) : undefined));
    },
  },
  Mean: {
    doc: 'g/n to every input, summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      const gs = c.b.mul(g!, c.b.scalar(1 / ins(n).length));
      return ins(n).map((x, i) => (act[i] ? unbroadcast(c, gs, ym, x) : undefined));
    },
  },
  Max: { doc: 'g to the first input equal to the output (exact at ties), summed over broadcast axes', fn: (c, n, gy, act) => extremum(c, n, gy[0]!, act) },
  Min: { doc: 'g to the first input equal to the output (exact at ties), summed over broadcast axes', fn: (c, n, gy, act) => extremum(c, n, gy[0]!, act) },
  Where: {
    doc: 'g where the condition holds to the first branch, elsewhere to the second; summed over broadcast axes',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      const [cond, a, b] = ins(n);
      const z = c.b.scalar(0);
      return [
        undefined,
        act[1] ? unbroadcast(c, c.b.op('Where', [cond, g!, z]), ym, a) : undefined,
        act[2] ? unbroadcast(c, c.b.op('Where', [cond, z, g!]), ym, b) : undefined,
      ];
    },
  },
  Expand: {
    doc: 'ReduceSum over the expanded axes',
    fn: (c, n, [g]) => [unbroadcast(c, g!, c.meta(outs(n)[0]), ins(n)[0]), undefined],
  },
  PRelu: {
    doc: 'g where x > 0, slope·g elsewhere',
    fn: (c, n, [g], act) => {
      if (act[1]) fail('the slope depends on the input');
      const [x, slope] = ins(n);
      const pos = c.b.op('Greater', [x, c.b.scalar(0)]);
      return [unbroadcast(c, c.b.op('Where', [pos, g!, c.b.mul(g!, slope)]), c.meta(outs(n)[0]), x), undefined];
    },
  },
};

function extremum(c: Ctx, n: onnx.INodeProto, g: string, act: boolean[]): Grads {
  const y = outs(n)[0];
  const ym = c.meta(y);
  const z = c.b.scalar(0);
  let rest = g;
  return ins(n).map((x, i) => {
    const last = i === ins(n).length - 1;
    const eq = c.b.op('Equal', [x, y]);
    const gi = last ? rest : c.b.op('Where', [eq, rest, z]);
    if (!last) rest = c.b.op('Where', [eq, z, rest]);
    return act[i] ? unbroadcast(c, gi, ym, x) : undefined;
  });
}

const unaryRules: Record<string, Rule> = {
  Identity: pass,
  Dropout: {
    doc: 'identity (inference)',
    fn: (c, n, [g]) => {
      const tm = ins(n)[2] ? c.constVal(ins(n)[2]) : undefined;
      if (attrInt(n, 'training_mode', 0) || (tm && tm.data[0])) fail('training mode');
      return [g];
    },
  },
  // mask = HardSigmoid(y; α = 3.4e38, β = 0) = min(1, α·y): 0 at y = 0, 1 for every normal y > 0
  // (measured 1.6× faster than Where(Greater(y, 0), g, 0), which ORT runs single-threaded)
  Relu: unary('g·[y > 0] (mask as HardSigmoid(y·3.4e38))', (c, n, g) => c.b.mul(g, c.b.op('HardSigmoid', [outs(n)[0]], [A.f('alpha', 3.4e38), A.f('beta', 0)]))),
  LeakyRelu: unary('g where x > 0, alpha·g elsewhere', (c, n, g) => {
    const alpha = attrFloat(n, 'alpha', 0.01);
    const ref = alpha > 0 ? outs(n)[0] : ins(n)[0];
    return c.b.op('Where', [c.b.op('Greater', [ref, c.b.scalar(0)]), g, c.b.mul(g, c.b.scalar(alpha))]);
  }),
  Elu: unary('g where x > 0, g·(y + alpha) elsewhere', (c, n, g) => {
    const alpha = attrFloat(n, 'alpha', 1);
    const [x] = ins(n);
    const y = outs(n)[0];
    return c.b.op('Where', [c.b.op('Greater', [x, c.b.scalar(0)]), g, c.b.mul(g, c.b.op('Add', [y, c.b.scalar(alpha)]))]);
  }),
  Selu: unary('gamma·g where x > 0, g·(y + gamma·alpha) elsewhere', (c, n, g) => {
    const alpha = attrFloat(n, 'alpha', 1.67326319217681884765625);
    const gamma = attrFloat(n, 'gamma', 1.05070102214813232421875);
    const [x] = ins(n);
    const y = outs(n)[0];
    return c.b.op('Where', [c.b.op('Greater', [x, c.b.scalar(0)]), c.b.mul(g, c.b.scalar(gamma)), c.b.mul(g, c.b.op('Add', [y, c.b.scalar(gamma * alpha)]))]);
  }),
  Sigmoid: unary('g·y·(1 − y)', (c, n, g) => {
    const y = outs(n)[0];
    return c.b.mul(g, c.b.mul(y, c.b.op('Sub', [c.b.scalar(1), y])));
  }),
  Tanh: unary('g·(1 − y²)', (c, n, g) => {
    const y = outs(n)[0];
    return c.b.mul(g, c.b.op('Sub', [c.b.scalar(1), c.b.mul(y, y)]));
  }),
  HardSigmoid: unary('alpha·g where 0 < y < 1', (c, n, g) => {
    const alpha = attrFloat(n, 'alpha', 0.2);
    const y = outs(n)[0];
    const inside = c.b.op('And', [c.b.op('Greater', [y, c.b.scalar(0)]), c.b.op('Less', [y, c.b.scalar(1)])]);
    return c.b.mask(inside, c.b.mul(g, c.b.scalar(alpha)));
  }),
  HardSwish: unary('g·(x/3 + 1/2) for −3 < x < 3, g for x ≥ 3, 0 below', (c, n, g) => {
    const x = ins(n)[0];
    const slope = c.b.op('Add', [c.b.mul(x, c.b.scalar(1 / 3)), c.b.scalar(0.5)]);
    const d = c.b.op('Where', [c.b.op('Less', [x, c.b.scalar(-3)]), c.b.scalar(0), c.b.op('Where', [c.b.op('Less', [x, c.b.scalar(3)]), slope, c.b.scalar(1)])]);
    return c.b.mul(g, d);
  }),
  Softplus: unary('g·sigmoid(x)', (c, n, g) => c.b.mul(g, c.b.op('Sigmoid', [ins(n)[0]]))),
  Softsign: unary('g/(1 + |x|)²', (c, n, g) => {
    const t = c.b.op('Add', [c.b.scalar(1), c.b.op('Abs', [ins(n)[0]])]);
    return c.b.op('Div', [g, c.b.mul(t, t)]);
  }),
  Exp: unary('g·y', (c, n, g) => c.b.mul(g, outs(n)[0])),
  Log: unary('g/x', (c, n, g) => c.b.op('Div', [g, ins(n)[0]])),
  Sqrt: unary('g/(2y)', (c, n, g) => c.b.op('Div', [c.b.mul(g, c.b.scalar(0.5)), outs(n)[0]])),
  Neg: unary('−g', (c, _n, g) => c.b.op('Neg', [g])),
  Reciprocal: unary('−g·y²', (c, n, g) => {
    const y = outs(n)[0];
    return c.b.op('Neg', [c.b.mul(g, c.b.mul(y, y))]);
  }),
  Abs: unary('g·sign(x)', (c, n, g) => c.b.mul(g, c.b.op('Sign', [ins(n)[0]]))),
  Erf: unary('g·2/√π·exp(−x²)', (c, n, g) => {
    const x = ins(n)[0];
    return c.b.mul(g, c.b.mul(c.b.scalar(2 / Math.sqrt(Math.PI)), c.b.op('Exp', [c.b.op('Neg', [c.b.mul(x, x)])])));
  }),
  Round: unary('straight-through (identity)', (c, _n, g) => {
    c.note('ste-round', 'Round/Floor/Ceil on the path: straight-through (identity) gradient (BPDA)');
    return g;
  }),
  Floor: unary('straight-through (identity)', (c, _n, g) => {
    c.note('ste-round', 'Round/Floor/Ceil on the path: straight-through (identity) gradient (BPDA)');
    return g;
  }),
  Ceil: unary('straight-through (identity)', (c, _n, g) => {
    c.note('ste-round', 'Round/Floor/Ceil on the path: straight-through (identity) gradient (BPDA)');
    return g;
  }),
  Cast: unary('identity (float to float)', (c, n, g) => {
    const x = ins(n)[0];
    if (c.meta(x).dtype !== 'float32') fail(`cast from ${c.meta(x).dtype}`);
    return g;
  }),
  Clip: {
    doc: 'g where min < y < max',
    fn: (c, n, [g], act) => {
      if (act[1] || act[2]) fail('min/max depend on the input');
      const [, lo, hi] = ins(n);
      const y = outs(n)[0];
      let mask: string | undefined;
      if (lo) mask = c.b.op('Greater', [y, lo]);
      if (hi) {
        const m2 = c.b.op('Less', [y, hi]);
        mask = mask ? c.b.op('And', [mask, m2]) : m2;
      }
      // Mul by the cast mask: 1.3× faster than Where in ORT (measured)
      return [mask ? c.b.mul(g!, c.b.op('Cast', [mask], [A.i('to', 1)])) : g, undefined, undefined];
    },
  },
  Softmax: { doc: 'y·(g − Σ g·y) over the softmax axes', fn: (c, n, [g]) => [softmaxGrad(c, n, g!, false)] },
  LogSoftmax: { doc: 'g − exp(y)·Σ g over the softmax axes', fn: (c, n, [g]) => [softmaxGrad(c, n, g!, true)] },
};

function softmaxAxes(c: Ctx, n: onnx.INodeProto): number[] {
  const r = c.meta(ins(n)[0]).d1.length;
  let axis = attrInt(n, 'axis', c.opset >= 13 ? -1 : 1);
  if (axis < 0) axis += r;
  if (c.opset >= 13) return [axis];
  return Array.from({ length: r - axis }, (_, i) => axis + i); // coerced to 2-D before opset 13
}

function softmaxGrad(c: Ctx, n: onnx.INodeProto, g: string, log: boolean): string {
  const y = outs(n)[0];
  const axes = softmaxAxes(c, n);
  if (log) return c.b.op('Sub', [g, c.b.mul(c.b.op('Exp', [y]), c.b.reduce('ReduceSum', g, axes, true))]);
  const s = c.b.reduce('ReduceSum', c.b.mul(g, y), axes, true);
  return c.b.mul(y, c.b.op('Sub', [g, s]));
}

const shapeRules: Record<string, Rule> = {
  Reshape: { doc: 'Reshape back to the input shape', fn: (c, n, [g]) => [reshapeTo(c, g!, ins(n)[0])] },
  Flatten: { doc: 'Reshape back to the input shape', fn: (c, n, [g]) => [reshapeTo(c, g!, ins(n)[0])] },
  Squeeze: { doc: 'Reshape back to the input shape', fn: (c, n, [g]) => [reshapeTo(c, g!, ins(n)[0])] },
  Unsqueeze: { doc: 'Reshape back to the input shape', fn: (c, n, [g]) => [reshapeTo(c, g!, ins(n)[0])] },
  Transpose: {
    doc: 'Transpose by the inverse permutation',
    fn: (c, n, [g]) => {
      const r = c.meta(ins(n)[0]).d1.length;
      const perm = attrInts(n, 'perm') ?? Array.from({ length: r }, (_, i) => r - 1 - i);
      const inv = new Array(r);
      perm.forEach((p, i) => (inv[p] = i));
      return [c.b.transpose(g!, inv)];
    },
  },
  Concat: {
    doc: 'Slice of g per input along the axis',
    fn: (c, n, [g], act) => {
      const ym = c.meta(outs(n)[0]);
      let axis = attrInt(n, 'axis', 0);
      if (axis < 0) axis += ym.d1.length;
      if (!isStatic(ym, axis)) fail('concatenation along the batch axis');
      let off = 0;
      return ins(n).map((x, i) => {
        const len = c.meta(x).d1[axis];
        const start = off;
        off += len;
        return act[i] ? c.b.slice(g!, [start], [start + len], [axis]) : undefined;
      });
    },
  },
  Split: {
    doc: 'Concat of the outputs’ gradients (zeros where none flows)',
    fn: (c, n, gy) => {
      const x = ins(n)[0];
      const xm = c.meta(x);
      let axis = attrInt(n, 'axis', 0);
      if (axis < 0) axis += xm.d1.length;
      const parts = outs(n).map((o, i) => gy[i] ?? c.b.op('ConstantOfShape', [c.b.op('Shape', [o])]));
      return [c.b.op('Concat', parts, [A.i('axis', axis)])];
    },
  },
  Slice: {
    doc: 'g put back in place: Pad (steps ±1), zeros interleaved for larger steps',
    fn: (c, n, [g]) => {
      // ends are implied by the output's length along each axis
      const [x, st, , ax, sp] = ins(n);
      const xm = c.meta(x);
      const ym = c.meta(outs(n)[0]);
      const r = xm.d1.length;
      const get = (v: string | undefined, what: string) => {
        if (!v) return undefined;
        const t = c.constVal(v);
        if (!t) fail(`${what} are computed at run time`);
        return Array.from(t!.data);
      };
      const starts = get(st, 'starts')!;
      const axes = (get(ax, 'axes') ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + r : a));
      const steps = get(sp, 'steps') ?? starts.map(() => 1);
      let cur = g!;
      // current dims of cur (batch axis as −1 for Reshape targets)
      const dims = ym.d1.map((d, i) => (isStatic(ym, i) ? d : -1));
      axes.forEach((a, i) => {
        if (!isStatic(xm, a)) fail('slicing along the batch axis');
        const D = xm.d1[a];
        const L = ym.d1[a];
        let step = steps[i];
        if (L === 0) fail('an empty slice');
        // the first index taken (clamped as ONNX does)
        let s0 = starts[i] < 0 ? starts[i] + D : starts[i];
        s0 = step > 0 ? Math.min(Math.max(s0, 0), D) : Math.min(Math.max(s0, 0), D - 1);
        let first = s0;
        if (step < 0) {
          cur = c.b.slice(cur, [-1], [-(2 ** 62)], [a], [-1]);
          first = s0 + (L - 1) * step;
          step = -step;
        }
        if (step > 1) {
          // interleave step−1 zeros after each value: [.., L, ..] → [.., L, step, ..] → [.., L·step, ..]
          const u = c.b.unsqueeze(cur, [a + 1]);
          const pads = new Array(2 * (r + 1)).fill(0);
          pads[r + 1 + a + 1] = step - 1;
          const wide = c.b.reshape(c.b.pad(u, pads), dims.map((d, k) => (k === a ? L * step : d)));
          cur = c.b.slice(wide, [0], [(L - 1) * step + 1], [a]);
        }
        const span = (L - 1) * step + 1;
        const pads = new Array(2 * r).fill(0);
        pads[a] = first;
        pads[r + a] = D - first - span;
        cur = c.b.pad(cur, pads);
        dims[a] = D;
      });
      return [cur];
    },
  },
  Pad: {
    doc: 'Slice of g (constant mode; negative pads re-padded); reflect and edge folded back',
    fn: (c, n, [g], act) => {
      const [x, p, , axesIn] = ins(n);
      if (act[2]) fail('the pad value depends on the input');
      const xm = c.meta(x);
      const r = xm.d1.length;
      let pads: number[];
      if (p) {
        const t = c.constVal(p);
        if (!t) fail('pads are computed at run time');
        pads = Array.from(t!.data);
      } else pads = attrInts(n, 'pads') ?? new Array(2 * r).fill(0);
      if (axesIn) {
        const t = c.constVal(axesIn);
        if (!t) fail('axes are computed at run time');
        const axes = Array.from(t!.data).map((a) => (a < 0 ? a + r : a));
        const full = new Array(2 * r).fill(0);
        axes.forEach((a, i) => {
          full[a] = pads[i];
          full[r + a] = pads[axes.length + i];
        });
        pads = full;
      }
      const mode = attrString(n, 'mode', 'constant');
      for (let a = 0; a < r; a++) if ((pads[a] || pads[r + a]) && !isStatic(xm, a)) fail('padding along the batch axis');
      if (mode === 'constant') {
        // crop (negative pads) came first in the forward: re-pad it with zeros, then cut the padding
        const neg = pads.map((v) => Math.max(0, -v));
        const cur = c.b.pad(g!, neg);
        const axes: number[] = [];
        const starts: number[] = [];
        const ends: number[] = [];
        for (let a = 0; a < r; a++) {
          if (pads[a] > 0 || pads[r + a] > 0) {
            axes.push(a);
            starts.push(Math.max(0, pads[a]));
            ends.push(Math.max(0, pads[a]) + xm.d1[a]);
          }
        }
        return [axes.length ? c.b.slice(cur, starts, ends, axes) : cur, undefined, undefined, undefined];
      }
      if (mode !== 'reflect' && mode !== 'edge') fail(`mode '${mode}'`);
      if (pads.some((v) => v < 0)) fail(`negative pads in ${mode} mode`);
      // separable: undo one axis at a time, last axis first
      let cur = g!;
      for (let a = r - 1; a >= 0; a--) {
        const pb = pads[a];
        const pe = pads[r + a];
        if (!pb && !pe) continue;
        const D = xm.d1[a];
        const termPads = (begin: number, end: number) => {
          const q = new Array(2 * r).fill(0);
          q[a] = begin;
          q[r + a] = end;
          return q;
        };
        const terms = [c.b.slice(cur, [pb], [pb + D], [a])];
        if (mode === 'edge') {
          if (pb) terms.push(c.b.pad(c.b.reduce('ReduceSum', c.b.slice(cur, [0], [pb], [a]), [a], true), termPads(0, D - 1)));
          if (pe) terms.push(c.b.pad(c.b.reduce('ReduceSum', c.b.slice(cur, [pb + D], [pb + D + pe], [a]), [a], true), termPads(D - 1, 0)));
        } else {
          if (pb) terms.push(c.b.pad(c.b.slice(cur, [pb - 1], [-(2 ** 62)], [a], [-1]), termPads(1, D - 1 - pb)));
          if (pe) terms.push(c.b.pad(c.b.slice(cur, [pb + D + pe - 1], [pb + D - 1], [a], [-1]), termPads(D - 1 - pe, 1)));
        }
        cur = terms.length === 1 ? terms[0] : c.b.op('Sum', terms);
      }
      return [cur, undefined, undefined, undefined];
    },
  },
  Gather: {
    doc: 'inverse Gather for constant indices (a single index: Pad; distinct indices: Gather from g with a zero slot)',
    fn: (c, n, [g], act) => {
      if (act[1]) fail('indices depend on the input');
      const [x, idx] = ins(n);
      const xm = c.meta(x);
      const r = xm.d1.length;
      let axis = attrInt(n, 'axis', 0);
      if (axis < 0) axis += r;
      if (!isStatic(xm, axis)) fail('gathering along the batch axis');
      const t = c.constVal(idx);
      if (!t) fail('indices are computed at run time');
      const D = xm.d1[axis];
      const values = Array.from(t!.data, (v) => (v < 0 ? v + D : v));
      if (t!.dims.length === 0) {
        const pads = new Array(2 * r).fill(0);
        pads[axis] = values[0];
        pads[r + axis] = D - 1 - values[0];
        return [c.b.pad(c.b.unsqueeze(g!, [axis]), pads), undefined];
      }
      if (t!.dims.length !== 1) fail('multi-dimensional indices');
      if (new Set(values).size !== values.length) fail('repeated indices');
      const L = values.length;
      const map = new Array(D).fill(L);
      values.forEach((v, j) => (map[v] = j));
      if (L === D) return [c.b.op('Gather', [g!, c.b.i64(map)], [A.i('axis', axis)]), undefined];
      const zero = c.b.mul(c.b.slice(g!, [0], [1], [axis]), c.b.scalar(0));
      const ext = c.b.op('Concat', [g!, zero], [A.i('axis', axis)]);
      return [c.b.op('Gather', [ext, c.b.i64(map)], [A.i('axis', axis)]), undefined];
    },
  },
};

// ---- layers

const layerRules: Record<string, Rule> = {
  Conv: {
    doc: 'stride 1: Conv with the flipped, channel-swapped kernel (precomputed); else ConvTranspose with the same weights',
    fn: (c, n, [g], act) => {
      if (act[1] || act[2]) fail('weights or bias depend on the input');
      const [x, w] = ins(n);
      const y = outs(n)[0];
      const H = spatial(c, x);
      const O = spatial(c, y);
      const r = H.length;
      const wv = c.constVal(w);
      const wdims = wv?.dims ?? (c.hasMeta(w) ? c.meta(w).d1 : undefined);
      const k = attrInts(n, 'kernel_shape') ?? wdims?.slice(2) ?? fail('unknown kernel shape');
      const s = attrInts(n, 'strides') ?? ones(r);
      const d = attrInts(n, 'dilations') ?? ones(r);
      const group = attrInt(n, 'group', 1);
      const [pb, pe] = resolvePads(n, H, k, s, d);
      const keff = k.map((kk, i) => (kk - 1) * d[i] + 1);
      const flippable = s.every((v) => v === 1) && wv && keff.every((ke, i) => ke - 1 - pb[i] >= 0 && ke - 1 - pe[i] >= 0);
      if (flippable && c.variants.conv === 'flip') {
        const f = flipKernel(wv!, group);
        const wf = c.b.f32(f.data, f.dims, 'wflip');
        const attrs = [A.ints('kernel_shape', k), A.ints('dilations', d), A.i('group', group), A.ints('strides', ones(r)), A.ints('pads', [...keff.map((ke, i) => ke - 1 - pb[i]), ...keff.map((ke, i) => ke - 1 - pe[i])])];
        c.note('conv-flip', 'Conv (stride 1): input gradient as a Conv with the flipped kernel');
        return [c.b.op('Conv', [g!, wf], attrs), undefined, undefined];
      }
      const geo = transposedGeometry(H, O, keff, s, d, pb);
      const attrs = [A.ints('kernel_shape', k), A.ints('dilations', d), A.i('group', group), A.ints('strides', s), A.ints('pads', [...pb, ...geo.pe])];
      if (geo.op.some((v) => v)) attrs.push(A.ints('output_padding', geo.op));
      c.note('conv-transpose', 'Conv (strided): input gradient as a ConvTranspose with the same weights');
      return [padEnd(c, c.b.op('ConvTranspose', [g!, w], attrs), r, geo.extra), undefined, undefined];
    },
  },
  Gemm: {
    doc: 'Gemm with the transposes swapped (alpha kept); beta·g to C over broadcast axes',
    fn: (c, n, [g], act) => {
      const [a, b, cc] = ins(n);
      const alpha = attrFloat(n, 'alpha', 1);
      const beta = attrFloat(n, 'beta', 1);
      const tA = attrInt(n, 'transA', 0);
      const tB = attrInt(n, 'transB', 0);
      const al = [A.f('alpha', alpha)];
      let ga: string | undefined;
      let gb: string | undefined;
      let gc: string | undefined;
      if (act[0]) ga = tA ? c.b.op('Gemm', [b, g!], [...al, A.i('transA', tB), A.i('transB', 1)]) : c.b.op('Gemm', [g!, b], [...al, A.i('transA', 0), A.i('transB', tB ? 0 : 1)]);
      if (act[1]) gb = tB ? c.b.op('Gemm', [g!, a], [...al, A.i('transA', 1), A.i('transB', tA)]) : c.b.op('Gemm', [a, g!], [...al, A.i('transA', tA ? 0 : 1), A.i('transB', 0)]);
      if (act[2]) gc = unbroadcast(c, beta === 1 ? g! : c.b.mul(g!, c.b.scalar(beta)), c.meta(outs(n)[0]), cc);
      return [ga, gb, gc];
    },
  },
  MatMul: {
    doc: 'g·Bᵀ and Aᵀ·g (last two axes), summed over broadcast batch axes',
    fn: (c, n, [g], act) => {
      const [a, b] = ins(n);
      const am = c.meta(a);
      const bm = c.meta(b);
      const ym = c.meta(outs(n)[0]);
      const ra = am.d1.length;
      const rb = bm.d1.length;
      const swap = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
      let ga: string | undefined;
      let gb: string | undefined;
      if (ra >= 2 && rb >= 2) {
        if (act[0]) {
          const dims = (which: 'd1' | 'd2') => [...ym[which].slice(0, -1), am.d1[ra - 1]];
          ga = unbroadcast(c, c.b.op('MatMul', [g!, c.b.transpose(b, swap(rb))]), { d1: dims('d1'), d2: dims('d2') }, a);
        }
        if (act[1]) {
          const dims = (which: 'd1' | 'd2') => [...ym[which].slice(0, -2), bm.d1[rb - 2], ym[which][ym[which].length - 1]];
          gb = unbroadcast(c, c.b.op('MatMul', [c.b.transpose(a, swap(ra)), g!]), { d1: dims('d1'), d2: dims('d2') }, b);
        }
      } else if (rb === 1 && ra >= 2) {
        const gu = c.b.unsqueeze(g!, [-1]);
        if (act[0]) ga = c.b.mul(gu, b);
        if (act[1]) gb = unbroadcast(c, c.b.mul(gu, a), am, b);
      } else if (ra === 1 && rb >= 2) {
        const gu = c.b.unsqueeze(g!, [-2]);
        if (act[0]) {
          const dims = (which: 'd1' | 'd2') => [...ym[which].slice(0, -1), 1, am.d1[0]];
          ga = unbroadcast(c, c.b.op('MatMul', [gu, c.b.transpose(b, swap(rb))]), { d1: dims('d1'), d2: dims('d2') }, a);
        }
        if (act[1]) gb = unbroadcast(c, c.b.mul(c.b.unsqueeze(a, [-1]), gu), bm, b);
      } else fail('MatMul of two vectors');
      return [ga, gb];
    },
  },
  BatchNormalization: {
    doc: 'g·scale/√(var+ε) per channel (inference mode)',
    fn: (c, n, [g], act) => {
      if (attrInt(n, 'training_mode', 0)) fail('training mode');
      if (act.slice(1).some(Boolean)) fail('statistics depend on the input');
      const [x, scale, , , variance] = ins(n);
      const eps = attrFloat(n, 'epsilon', 1e-5);
      const r = c.meta(x).d1.length;
      const sv = c.constVal(scale);
      const vv = c.constVal(variance);
      const shape = [-1, ...ones(Math.max(0, r - 2))];
      let k: string;
      if (sv && vv) {
        const kk = new Float32Array(sv.data.length);
        for (let i = 0; i < kk.length; i++) kk[i] = sv.data[i] / Math.sqrt(vv.data[i] + eps);
        k = c.b.f32(kk, [kk.length, ...ones(Math.max(0, r - 2))], 'bnk');
      } else {
        k = c.b.reshape(c.b.op('Div', [scale, c.b.op('Sqrt', [c.b.op('Add', [variance, c.b.scalar(eps)])])]), shape);
      }
      return [c.b.mul(g!, k), undefined, undefined, undefined, undefined];
    },
  },
  MaxPool: {
    doc: 'exact routing to the argmax: ScatterElements over MaxPool’s Indices (reduction=add where windows overlap; before opset 16, one scatter per class of non-overlapping windows)',
    fn: (c, n, gy) => {
      const g = gy[0]!;
      const x = ins(n)[0];
      const r = c.meta(x).d1.length - 2;
      const k = attrInts(n, 'kernel_shape') ?? fail('no kernel_shape');
      const s = attrInts(n, 'strides') ?? ones(r);
      const d = attrInts(n, 'dilations') ?? ones(r);
      const keff = k.map((kk, i) => (kk - 1) * d[i] + 1);
      const o = outs(n);
      if (attrInt(n, 'storage_order', 0) === 1) {
        if (o[1] && c.usedElsewhere(o[1], n)) fail('column-major indices used by the model');
        n.attribute = (n.attribute ?? []).filter((a) => a.name !== 'storage_order');
      }
      let idx = o[1];
      if (!idx) {
        idx = c.b.fresh('argmax');
        n.output = [o[0], idx];
      }
      const overlap = keff.some((ke, i) => ke > s[i]);
      const flat = c.b.i64([-1]);
      const zerosFlat = () => c.b.op('Reshape', [c.b.op('ConstantOfShape', [c.b.op('Shape', [x])]), flat]);
      const scatter = (gv: string, iv: string, add: boolean) =>
        c.b.op('ScatterElements', [zerosFlat(), c.b.op('Reshape', [iv, flat]), c.b.op('Reshape', [gv, flat])], add ? [A.i('axis', 0), A.s('reduction', 'add')] : [A.i('axis', 0)]);
      const classes = () => {
        const m = keff.map((ke, i) => Math.ceil(ke / s[i]));
        const tuples: number[][] = [[]];
        for (const mi of m) {
          const next: number[][] = [];
          for (const t of tuples) for (let a = 0; a < mi; a++) next.push([...t, a]);
          tuples.splice(0, tuples.length, ...next);
        }
        const axes = Array.from({ length: r }, (_, i) => i + 2);
        return tuples.map((t) => ({ starts: t, axes, steps: m }));
      };
      if (c.variants.maxpool === 'unpool' && overlap) {
        c.note('maxpool', 'MaxPool: MaxUnpool per class of non-overlapping windows');
        const attrs = [A.ints('kernel_shape', k), A.ints('strides', s)];
        const pads = attrInts(n, 'pads');
        if (pads) attrs.push(A.ints('pads', pads));
        const shape = c.b.op('Shape', [x]);
        const parts = classes().map(({ starts, axes, steps }) => {
          const ends = starts.map(() => 2 ** 62);
          return c.b.op('MaxUnpool', [c.b.slice(g, starts, ends, axes, steps), c.b.slice(idx!, starts, ends, axes, steps), shape], attrs);
        });
        return [c.b.op('Sum', parts)];
      }
      let out: string;
      if (!overlap) {
        c.note('maxpool', 'MaxPool: ScatterElements of g to the argmax indices');
        out = scatter(g, idx, false);
      } else if (c.opset >= 16) {
        c.note('maxpool', 'MaxPool: ScatterElements(reduction=add) of g to the argmax indices');
        out = scatter(g, idx, true);
      } else {
        c.note('maxpool', 'MaxPool (overlapping windows, opset < 16): one ScatterElements per class of non-overlapping windows, summed');
        const parts = classes().map(({ starts, axes, steps }) => {
          const ends = starts.map(() => 2 ** 62);
          return scatter(c.b.slice(g, starts, ends, axes, steps), c.b.slice(idx!, starts, ends, axes, steps), false);
        });
        out = parts.length === 1 ? parts[0] : c.b.op('Sum', parts);
      }
      return [reshapeTo(c, out, x)];
    },
  },
  AveragePool: {
    doc: 'g divided by each window’s count (count_include_pad either way), spread back with a ConvTranspose of ones per channel plane',
    fn: (c, n, [g]) => {
      const x = ins(n)[0];
      const y = outs(n)[0];
      const H = spatial(c, x);
      const O = spatial(c, y);
      const r = H.length;
      const k = attrInts(n, 'kernel_shape') ?? fail('no kernel_shape');
      const s = attrInts(n, 'strides') ?? ones(r);
      const d = attrInts(n, 'dilations') ?? ones(r);
      if (d.some((v) => v !== 1)) fail('dilations');
      const cip = attrInt(n, 'count_include_pad', 0) === 1;
      const [pb, pe] = resolvePads(n, H, k, s, d);
      // per-axis window counts, as ONNX Runtime divides
      const counts = O.map((o, i) =>
        Array.from({ length: o }, (_, j) => {
          const start = j * s[i] - pb[i];
          const end = Math.min(start + k[i], H[i] + pe[i]);
          return cip ? end - start : Math.min(end, H[i]) - Math.max(start, 0);
        }),
      );
      const total = prod(O);
      const inv = new Float32Array(total);
      for (let p = 0; p < total; p++) {
        let rem = p;
        let cnt = 1;
        for (let i = r - 1; i >= 0; i--) {
          cnt *= counts[i][rem % O[i]];
          rem = Math.floor(rem / O[i]);
        }
        inv[p] = 1 / cnt;
      }
      const uniform = inv.every((v) => v === inv[0]);
      const gs = c.b.mul(g!, uniform ? c.b.scalar(inv[0]) : c.b.f32(inv, [1, 1, ...O], 'avgdiv'));
      const planes = c.b.reshape(gs, [-1, 1, ...O]);
      const geo = transposedGeometry(H, O, k, s, d, pb);
      const attrs = [A.ints('kernel_shape', k), A.ints('strides', s), A.ints('pads', [...pb, ...geo.pe])];
      if (geo.op.some((v) => v)) attrs.push(A.ints('output_padding', geo.op));
      const ct = padEnd(c, c.b.op('ConvTranspose', [planes, c.b.f32(new Float32Array(prod(k)).fill(1), [1, 1, ...k], 'ones')], attrs), r, geo.extra);
      return [reshapeTo(c, ct, x)];
    },
  },
  GlobalAveragePool: {
    doc: 'g/(H·W) expanded over the spatial axes',
    fn: (c, n, [g]) => {
      const x = ins(n)[0];
      const H = spatial(c, x);
      const gs = c.b.mul(g!, c.b.scalar(1 / prod(H)));
      return [c.b.op('Expand', [gs, c.b.i64([1, 1, ...H])])];
    },
  },
  GlobalMaxPool: {
    doc: 'g to the first argmax of each channel plane (ArgMax, Equal, Where)',
    fn: (c, n, [g]) => {
      const x = ins(n)[0];
      const H = spatial(c, x);
      const P = prod(H);
      const flat = c.b.reshape(x, [0, 0, -1]);
      const am = c.b.op('ArgMax', [flat], [A.i('axis', 2), A.i('keepdims', 1)]);
      const mask = c.b.op('Equal', [am, c.b.i64(Array.from({ length: P }, (_, i) => i), [1, 1, P])]);
      const out = c.b.op('Where', [mask, c.b.reshape(g!, [0, 0, 1]), c.b.scalar(0)]);
      return [reshapeTo(c, out, x)];
    },
  },
  ReduceMean: { doc: 'g/count expanded over the reduced axes', fn: (c, n, gy, act) => reduceGrad(c, n, gy[0]!, act, true) },
  ReduceSum: { doc: 'g expanded over the reduced axes', fn: (c, n, gy, act) => reduceGrad(c, n, gy[0]!, act, false) },
};

function reduceGrad(c: Ctx, n: onnx.INodeProto, g: string, act: boolean[], mean: boolean): Grads {
  const x = ins(n)[0];
  const xm = c.meta(x);
  const r = xm.d1.length;
  const axesAsInput = n.opType === 'ReduceSum' ? c.opset >= 13 : c.opset >= 18;
  let axes: number[] | undefined;
  if (axesAsInput && ins(n)[1]) {
    const t = c.constVal(ins(n)[1]);
    if (!t) fail('axes are computed at run time');
    axes = Array.from(t!.data);
  } else if (!axesAsInput) axes = attrInts(n, 'axes');
  if (!axes || axes.length === 0) {
    if (axesAsInput && attrInt(n, 'noop_with_empty_axes', 0)) return [g, undefined];
    axes = Array.from({ length: r }, (_, i) => i);
  }
  axes = axes.map((a) => (a < 0 ? a + r : a));
  if (axes.some((a) => !isStatic(xm, a))) fail('reduction over the batch axis');
  const keep = attrInt(n, 'keepdims', 1) === 1;
  let gk = g;
  if (!keep) {
    const target = xm.d1.map((dd, i) => (axes!.includes(i) ? 1 : isStatic(xm, i) ? dd : -1));
    gk = c.b.reshape(g, target);
  }
  if (mean) gk = c.b.mul(gk, c.b.scalar(1 / prod(axes.map((a) => xm.d1[a]))));
  const shape = xm.d1.map((dd, i) => (isStatic(xm, i) ? dd : 1));
  return [c.b.op('Expand', [gk, c.b.i64(shape)]), ...act.slice(1).map(() => undefined)];
}

export const RULES: Record<string, Rule> = { ...binaryRules, ...unaryRules, ...shapeRules, ...layerRules };

/** Ops whose outputs carry no gradient (integer, boolean, or piecewise constant results). */
export const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'ArgMax', 'ArgMin', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or',
  'Xor', 'IsNaN', 'IsInf', 'NonZero', 'Sign', 'ConstantOfShape', 'Constant', 'RandomNormalLike', 'RandomUniformLike', 'EyeLike',
  'OneHot', 'Range', 'BitShift', 'Bernoulli', 'Multinomial',
]);

