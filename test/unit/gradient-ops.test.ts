/**
 * Gradient rules, one tiny ONNX graph per op family (built with onnx-builder): each is loaded,
 * its gradient graph built, and checked against central finite differences (gradcheck) for the
 * cross-entropy and the margin loss. Every check must pass (worst relative error < 1e-2) on at
 * least a few smooth samples, and the coverage must list the ops under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../server/engine/model';
import { buildGradientModel, type GradientModel, type GradientVariants } from '../../server/engine/model/gradient';
import { formatGradcheck, gradcheck, type GradcheckResult } from '../../server/engine/gradcheck';
import type { LoadedModel } from '../../server/engine/types';
import { node, seeded, tensor, writeModel, type Dim, type ModelSpec, type NodeSpec, type TensorSpec } from './helpers/onnx-builder';

interface Net {
  nodes: NodeSpec[];
  inits: TensorSpec[];
  /** Counter for fresh names. */
  k: number;
  seed: number;
}

function net(seed = 1): Net {
  return { nodes: [], inits: [], k: 0, seed };
}

/** A fresh value name. */
function v(n: Net, hint = 'v'): string {
  return `${hint}${n.k++}`;
}

/** Adds an initializer of seeded values in [−s, s]. */
function w(n: Net, dims: number[], s = 0.5, hint = 'w'): string {
  const name = v(n, hint);
  const size = dims.reduce((a, b) => a * b, 1);
  n.inits.push(tensor(name, dims, seeded(size, n.seed++, -s, s)));
  return name;
}

/** Adds an initializer with given values. */
function c(n: Net, dims: number[], data: ArrayLike<number>, type: TensorSpec['type'] = 'float32', hint = 'c'): string {
  const name = v(n, hint);
  n.inits.push(tensor(name, dims, data, type));
  return name;
}

/** Adds a node with one output; returns it. */
function op(n: Net, type: string, inputs: string[], attrs?: NodeSpec['attrs']): string {
  const out = v(n, type.toLowerCase());
  n.nodes.push(node(type, inputs, [out], attrs, `${type}_${n.k}`));
  return out;
}

/** Flatten → Gemm to K logits named 'y', from a value of `features` elements per image. */
function head(n: Net, x: string, features: number, K = 5): string {
  const f = op(n, 'Flatten', [x], { axis: 1 });
  const W = w(n, [features, K], 1 / Math.sqrt(features) * 1.5);
  const b = w(n, [K], 0.1);
  n.nodes.push(node('Gemm', [f, W, b], ['y'], {}, 'head'));
  return 'y';
}

function spec(n: Net, input: Dim[], opts: { opset?: number; K?: number; output?: string; outputShape?: Dim[] } = {}): ModelSpec {
  return {
    inputs: [{ name: 'x', shape: input }],
    outputs: [{ name: opts.output ?? 'y', shape: opts.outputShape ?? [input[0], opts.K ?? 5] }],
    nodes: n.nodes,
    initializers: n.inits,
    opset: opts.opset ?? 17,
  };
}

interface CheckOptions {
  /** Op types the coverage must list. */
  ops?: string[];
  losses?: ('ce' | 'margin')[];
  preprocess?: string | Record<string, unknown>;
  samples?: number;
  directions?: number;
  support?: number;
  /** Least number of smooth (non-flat) samples per loss. */
  minSmooth?: number;
  variants?: Partial<GradientVariants>;
  seed?: number;
  /** Inspect the model and gradient model before they are disposed. */
  also?: (model: LoadedModel, gm: GradientModel, results: GradcheckResult[]) => Promise<void> | void;
}

/** Writes the spec, loads it, builds the gradient graph and gradchecks both losses. */
async function check(name: string, s: ModelSpec, o: CheckOptions = {}): Promise<GradcheckResult[]> {
  const file = writeModel(s, `${name}.onnx`);
  const model = await loadModel(file, { device: 'cpu', preprocess: (o.preprocess ?? 'unit') as string });
  const results: GradcheckResult[] = [];
  try {
    const gm = await buildGradientModel(model, { device: 'cpu', variants: o.variants });
    try {
      for (const loss of o.losses ?? ['ce', 'margin']) {
        const r = await gradcheck(model, { gradient: gm, loss, samples: o.samples ?? 2, directions: o.directions ?? 4, support: o.support, seed: o.seed ?? 7 });
        results.push(r);
        assert.ok(r.pass, `${name} (${loss}):\n${formatGradcheck(r)}`);
        const smooth = r.checked - r.belowNoise;
        assert.ok(smooth >= (o.minSmooth ?? 3), `${name} (${loss}): only ${smooth} samples compared\n${formatGradcheck(r)}`);
      }
      for (const want of o.ops ?? []) {
        assert.ok(gm.coverage.ops.some((e) => e.op === want), `${name}: coverage lacks ${want}: ${JSON.stringify(gm.coverage.ops.map((e) => e.op))}`);
      }
      await o.also?.(model, gm, results);
    } finally {
      await gm.dispose();
    }
  } finally {
    await model.dispose();
  }
  return results;
}

// ---------------------------------------------------------------------------------------------

test('Conv: stride 2, asymmetric padding, dilation 2, groups 2, bias (ConvTranspose path)', async () => {
  const n = net(11);
  const x4 = op(n, 'Conv', ['x', w(n, [4, 3, 1, 1], 0.6)], {});
  const y = op(n, 'Conv', [x4, w(n, [6, 2, 3, 3], 0.4), w(n, [6], 0.1)], { strides: [2, 2], pads: [1, 2, 0, 1], dilations: [2, 2], group: 2, kernel_shape: [3, 3] });
  // out: H (11+1+0−5)/2+1 = 4, W (11+2+1−5)/2+1 = 5
  const r = op(n, 'Relu', [y]);
  head(n, r, 6 * 4 * 5);
  await check('conv-strided', spec(n, ['N', 3, 11, 11]), { ops: ['Conv', 'Relu', 'Gemm', 'Flatten'], preprocess: { mean: [0.5], std: [0.25] } });
});

test('Conv: stride 1 as a flipped-kernel Conv (dense, depthwise, 1×1, even kernel SAME_LOWER), and the ConvTranspose variant', async () => {
  const mk = () => {
    const n = net(12);
    let h = op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.4)], { pads: [1, 1, 1, 1] });
    h = op(n, 'Tanh', [h]);
    h = op(n, 'Conv', [h, w(n, [4, 1, 3, 3], 0.5), w(n, [4], 0.1)], { pads: [1, 1, 1, 1], group: 4 });
    h = op(n, 'Conv', [h, w(n, [5, 4, 4, 4], 0.3)], { auto_pad: 'SAME_LOWER' });
    h = op(n, 'Sigmoid', [h]);
    h = op(n, 'Conv', [h, w(n, [3, 5, 1, 1], 0.5)], {});
    head(n, h, 3 * 8 * 8);
    return spec(n, ['N', 3, 8, 8]);
  };
  await check('conv-flip', mk(), {
    ops: ['Conv', 'Tanh', 'Sigmoid'],
    also: (_m, gm) => assert.ok(gm.coverage.notes.some((t) => /flipped kernel/.test(t)), gm.coverage.notes.join('\n')),
  });
  await check('conv-transpose-variant', mk(), {
    variants: { conv: 'transpose' },
    also: (_m, gm) => assert.ok(!gm.coverage.notes.some((t) => /flipped kernel/.test(t)), gm.coverage.notes.join('\n')),
  });
});

test('Conv: SAME_UPPER stride 2, VALID, padding wider than the kernel, and a 1-D Conv', async () => {
  const n = net(13);
  let h = op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.4)], { auto_pad: 'SAME_UPPER', strides: [2, 2] }); // 5×5
  h = op(n, 'LeakyRelu', [h], { alpha: 0.1 });
  h = op(n, 'Conv', [h, w(n, [4, 4, 2, 2], 0.4)], { auto_pad: 'VALID' }); // 4×4
  h = op(n, 'Conv', [h, w(n, [4, 4, 3, 3], 0.3)], { pads: [3, 3, 3, 3] }); // 8×8
  const r = op(n, 'Reshape', [h, c(n, [3], [0, 4 * 8, 8], 'int64')]); // [N, 32, 8]
  const c1 = op(n, 'Conv', [r, w(n, [6, 32, 3], 0.2)], { pads: [1, 1], strides: [2] }); // [N,6,4]
  head(n, op(n, 'Tanh', [c1]), 24);
  await check('conv-autopad-1d', spec(n, ['N', 3, 9, 9]), { ops: ['Conv', 'LeakyRelu', 'Reshape'] });
});

test('Gemm (transA, transB, alpha, beta, C) and MatMul (batched, broadcast, vector, both operands active)', async () => {
  const n = net(21);
  const f = op(n, 'Flatten', ['x'], { axis: 1 }); // [N,48]
  const g1 = op(n, 'Gemm', [f, w(n, [16, 48], 0.2), w(n, [16], 0.1)], { transB: 1, alpha: 0.7, beta: 1.3 });
  const t = op(n, 'Tanh', [g1]);
  // transA: Aᵀ with A = tᵀ [16,N]
  const tt = op(n, 'Transpose', [t], { perm: [1, 0] });
  const g2 = op(n, 'Gemm', [tt, w(n, [16, 12], 0.3)], { transA: 1, alpha: 1.1 }); // [N,12]
  // batched MatMul: [N,3,16] @ [16,8], then a constant [5,3] @ [N,3,8] (broadcast), then @ vector
  const r = op(n, 'Reshape', ['x', c(n, [3], [0, 3, 16], 'int64')]);
  const m1 = op(n, 'MatMul', [r, w(n, [16, 8], 0.3)]);
  const s1 = op(n, 'Sigmoid', [m1]);
  const m2 = op(n, 'MatMul', [w(n, [5, 3], 0.5), s1]); // [N,5,8]
  const m3 = op(n, 'MatMul', [m2, w(n, [8], 0.5)]); // [N,5]
  // both operands active: [N,3,4]·[N,4,3]
  const q = op(n, 'MatMul', [r, w(n, [16, 4], 0.3)]);
  const kT = op(n, 'Transpose', [op(n, 'MatMul', [r, w(n, [16, 4], 0.3)])], { perm: [0, 2, 1] });
  const att = op(n, 'MatMul', [q, kT]); // [N,3,3]
  const af = op(n, 'Flatten', [att], { axis: 1 }); // [N,9]
  const all = op(n, 'Concat', [g2, m3, af], { axis: 1 }); // [N,26]
  head(n, all, 26);
  await check('gemm-matmul', spec(n, ['N', 3, 4, 4]), { ops: ['Gemm', 'MatMul', 'Transpose', 'Concat'] });
});

test('Add/Sub/Mul/Div/Pow with broadcasting, both operands active (SE-style gating, normalisation)', async () => {
  const n = net(31);
  const a = op(n, 'Mul', ['x', w(n, [3, 1, 1], 1)]);
  const b = op(n, 'Add', [a, w(n, [1, 8], 0.5)]); // [N,3,8,8] + [1,8]
  const gp = op(n, 'GlobalAveragePool', [b]); // [N,3,1,1]
  const s = op(n, 'Sigmoid', [gp]);
  const gated = op(n, 'Mul', [b, s]); // both active, broadcast over H,W
  const mean = op(n, 'ReduceMean', [gated], { axes: [1, 2, 3], keepdims: 1 }); // [N,1,1,1]
  const den = op(n, 'Add', [op(n, 'Mul', [mean, mean]), c(n, [], [1])]);
  const d = op(n, 'Div', [gated, den]); // active denominator, broadcast
  const e = op(n, 'Sub', [w(n, [8], 0.5), d]); // active second operand
  const p = op(n, 'Pow', [op(n, 'Sigmoid', [e]), c(n, [], [2])]);
  const q = op(n, 'Div', [c(n, [1], [1]), op(n, 'Add', [p, c(n, [], [0.5])])]); // constant numerator
  const sum = op(n, 'Sum', [p, q, op(n, 'Mul', [b, c(n, [], [0.1])])]);
  head(n, sum, 3 * 8 * 8);
  await check('broadcast-arith', spec(n, ['N', 3, 8, 8], { opset: 11 }), { ops: ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sum', 'ReduceMean', 'GlobalAveragePool'] });
});

test('Max, Min, Mean, Where, Expand', async () => {
  const n = net(32);
  const a = op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] });
  const b = op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] });
  const mx = op(n, 'Max', [a, b, w(n, [4, 1, 1], 0.2)]);
  const mn = op(n, 'Min', [a, op(n, 'Tanh', [b])]);
  const mean = op(n, 'Mean', [mx, mn]);
  const cond = c(n, [1, 1, 8], [1, 0, 1, 1, 0, 0, 1, 0], 'bool');
  const wh = op(n, 'Where', [cond, mean, op(n, 'Neg', [a])]);
  const gp = op(n, 'GlobalAveragePool', [wh]); // [N,4,1,1]
  const ex = op(n, 'Expand', [gp, c(n, [4], [1, 4, 2, 2], 'int64')]); // [N,4,2,2]
  head(n, op(n, 'Add', [ex, op(n, 'AveragePool', [wh], { kernel_shape: [4, 4], strides: [4, 4] })]), 16);
  await check('max-min-where', spec(n, ['N', 3, 8, 8]), { ops: ['Max', 'Min', 'Mean', 'Where', 'Expand', 'Neg'] });
});

test('activations: Relu, LeakyRelu, Clip (inputs), Sigmoid, Tanh, HardSigmoid, HardSwish, Elu, Selu, Softplus, Softsign, PRelu, Exp, Log, Sqrt, Reciprocal, Abs, Erf', async () => {
  const n = net(41);
  const f = op(n, 'Flatten', ['x'], { axis: 1 }); // [N,48]
  const branches: string[] = [];
  const lin = () => op(n, 'Gemm', [f, w(n, [48, 6], 0.5), w(n, [6], 0.3)]);
  const pos = () => {
    const l = lin();
    return op(n, 'Add', [op(n, 'Mul', [l, l]), c(n, [], [0.5])]); // > 0
  };
  branches.push(op(n, 'Relu', [lin()]));
  branches.push(op(n, 'LeakyRelu', [lin()], { alpha: 0.2 }));
  branches.push(op(n, 'Clip', [lin(), c(n, [], [-0.3]), c(n, [], [0.4])]));
  branches.push(op(n, 'Clip', [lin(), '', c(n, [], [0.2])]));
  branches.push(op(n, 'Sigmoid', [lin()]));
  branches.push(op(n, 'Tanh', [lin()]));
  branches.push(op(n, 'HardSigmoid', [op(n, 'Mul', [lin(), c(n, [], [4])])], { alpha: 0.3, beta: 0.4 }));
  branches.push(op(n, 'HardSwish', [op(n, 'Mul', [lin(), c(n, [], [6])])]));
  branches.push(op(n, 'Elu', [lin()], { alpha: 0.8 }));
  branches.push(op(n, 'Selu', [lin()]));
  branches.push(op(n, 'Softplus', [lin()]));
  branches.push(op(n, 'Softsign', [lin()]));
  branches.push(op(n, 'PRelu', [lin(), w(n, [6], 0.3)]));
  branches.push(op(n, 'Exp', [lin()]));
  branches.push(op(n, 'Log', [pos()]));
  branches.push(op(n, 'Sqrt', [pos()]));
  branches.push(op(n, 'Reciprocal', [pos()]));
  branches.push(op(n, 'Abs', [lin()]));
  branches.push(op(n, 'Erf', [lin()]));
  const cat = op(n, 'Concat', branches, { axis: 1 });
  head(n, cat, 6 * branches.length);
  await check('activations', spec(n, ['N', 3, 4, 4], { opset: 14 }), {
    ops: ['Relu', 'LeakyRelu', 'Clip', 'Sigmoid', 'Tanh', 'HardSigmoid', 'HardSwish', 'Elu', 'Selu', 'Softplus', 'Softsign', 'PRelu', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Abs', 'Erf'],
  });
});

test('opset 9 graph: Clip with min/max attributes, Pad and Slice attributes, BatchNormalization, Dropout; opset raised to 11', async () => {
  const n = net(42);
  let h = op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], {});
  h = op(n, 'BatchNormalization', [h, w(n, [4], 1), w(n, [4], 0.2), w(n, [4], 0.2), c(n, [4], [0.5, 1, 2, 0.7])], { epsilon: 1e-3 });
  h = op(n, 'Clip', [h], { min: -0.5, max: 0.6 });
  h = op(n, 'Pad', [h], { pads: [0, 0, 1, 2, 0, 0, 2, 1], mode: 'constant', value: 0.25 });
  h = op(n, 'Slice', [h], { starts: [1, 0], ends: [8, 7], axes: [2, 3] });
  h = op(n, 'Dropout', [h], { ratio: 0.3 });
  head(n, h, 4 * 7 * 7);
  await check('opset9', spec(n, ['N', 3, 8, 8], { opset: 9 }), {
    ops: ['Clip', 'Pad', 'Slice', 'BatchNormalization', 'Dropout'],
    also: (_m, gm) => assert.deepEqual(gm.coverage.opset, { model: 9, graph: 11 }),
  });
});

test('Softmax / LogSoftmax ends: differentiated through the logits before them ([N,K], [N,K,1,1], Softmax → Flatten)', async () => {
  const cases: [string, (n: Net) => ModelSpec][] = [
    ['softmax-end', (n) => {
      const z = op(n, 'Gemm', [op(n, 'Flatten', ['x'], { axis: 1 }), w(n, [48, 5], 0.6)]);
      n.nodes.push(node('Softmax', [z], ['y'], { axis: 1 }));
      return spec(n, ['N', 3, 4, 4], { opset: 13 });
    }],
    ['logsoftmax-end', (n) => {
      const z = op(n, 'Gemm', [op(n, 'Flatten', ['x'], { axis: 1 }), w(n, [48, 5], 0.6)]);
      n.nodes.push(node('LogSoftmax', [z], ['y'], { axis: -1 }));
      return spec(n, ['N', 3, 4, 4], { opset: 13 });
    }],
    ['softmax-4d', (n) => {
      // SqueezeNet's ending: Conv → GlobalAveragePool → Softmax (opset 9: coerced to 2-D) on [N,K,1,1]
      const z = op(n, 'GlobalAveragePool', [op(n, 'Relu', [op(n, 'Conv', ['x', w(n, [5, 3, 1, 1], 1)], {})])]);
      n.nodes.push(node('Softmax', [z], ['y'], { axis: 1 }));
      return spec(n, ['N', 3, 4, 4], { opset: 9, outputShape: ['N', 5, 1, 1] });
    }],
    ['softmax-flatten', (n) => {
      const z = op(n, 'GlobalAveragePool', [op(n, 'Tanh', [op(n, 'Conv', ['x', w(n, [5, 3, 1, 1], 2)], {})])]);
      const p = op(n, 'Softmax', [z], { axis: 1 });
      n.nodes.push(node('Flatten', [p], ['y'], { axis: 1 }));
      return spec(n, ['N', 3, 4, 4], { opset: 13 });
    }],
  ];
  for (const [name, mk] of cases) {
    await check(name, mk(net(51)), {
      also: async (model, gm) => {
        assert.match(gm.coverage.logits, /Softmax/, `${name}: ${gm.coverage.logits}`);
        assert.ok(!gm.coverage.ops.some((e) => e.op === 'Softmax' || e.op === 'LogSoftmax'), `${name}: the final softmax is not differentiated`);
        // the logits are the pre-softmax values: they give predict's probabilities
        const x = { data: seeded(2 * 48, 3, 0, 1), n: 2, channels: 3 as const, height: 4, width: 4 };
        const p = await model.predict(x);
        const r = await gm.lossAndGrad(x, [0, 1], 'ce');
        for (let i = 0; i < 2; i++) {
          const row = Array.from(r.logits.subarray(i * 5, i * 5 + 5));
          const m = Math.max(...row);
          const s = row.reduce((a, z) => a + Math.exp(z - m), 0);
          row.forEach((z, k) => assert.ok(Math.abs(Math.exp(z - m) / s - p.probs[i * 5 + k]) < 1e-5, `${name}: softmax of the logits ≠ predict's probabilities`));
        }
      },
    });
  }
});

test('Softmax and LogSoftmax inside the graph (attention-like, opset 11 coerced axes and opset 13 single axis)', async () => {
  for (const opset of [11, 13]) {
    const n = net(52);
    const r = op(n, 'Reshape', ['x', c(n, [3], [0, 3, 16], 'int64')]);
    const q = op(n, 'MatMul', [r, w(n, [16, 4], 0.5)]);
    const kT = op(n, 'Transpose', [op(n, 'MatMul', [r, w(n, [16, 4], 0.5)])], { perm: [0, 2, 1] });
    const att = op(n, 'Softmax', [op(n, 'MatMul', [q, kT])], { axis: 2 }); // [N,3,3]
    const val = op(n, 'MatMul', [att, op(n, 'MatMul', [r, w(n, [16, 4], 0.5)])]); // [N,3,4]
    const ls = op(n, 'LogSoftmax', [val], { axis: opset >= 13 ? 1 : 2 });
    head(n, op(n, 'Add', [val, op(n, 'Mul', [ls, c(n, [], [0.3])])]), 12);
    await check(`softmax-inner-${opset}`, spec(n, ['N', 3, 4, 4], { opset }), { ops: ['Softmax', 'LogSoftmax', 'MatMul'] });
  }
});

test('BatchNormalization on feature maps and on vectors', async () => {
  const n = net(61);
  let h = op(n, 'Conv', ['x', w(n, [6, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] });
  h = op(n, 'BatchNormalization', [h, w(n, [6], 1.5), w(n, [6], 0.3), w(n, [6], 0.3), c(n, [6], [0.5, 1, 2, 0.7, 0.1, 3])], { epsilon: 1e-5 });
  h = op(n, 'Relu', [h]);
  const g = op(n, 'Gemm', [op(n, 'Flatten', [h], { axis: 1 }), w(n, [6 * 36, 8], 0.1)]);
  const b = op(n, 'BatchNormalization', [g, w(n, [8], 1.2), w(n, [8], 0.2), w(n, [8], 0.2), c(n, [8], [0.5, 1, 2, 0.7, 0.1, 3, 1, 1])]);
  head(n, op(n, 'Tanh', [b]), 8);
  await check('batchnorm', spec(n, ['N', 3, 6, 6], { opset: 15 }), { ops: ['BatchNormalization', 'Relu'] });
});

test('MaxPool: overlapping 3×3 stride 2 (ScatterElements add, opset 17), the same at opset 13 (per window class), ceil_mode, after ReLU (ties at 0), the MaxUnpool variant; GlobalMaxPool', async () => {
  const mk = (opset: number, ceil: number) => {
    const n = net(71);
    const h = op(n, 'Relu', [op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5), w(n, [4], 0.2)], { pads: [1, 1, 1, 1] })]); // 9×9, many zeros
    const p = op(n, 'MaxPool', [h], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: ceil }); // 5×5
    const p2 = op(n, 'MaxPool', [op(n, 'Tanh', [p])], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }); // non-overlapping, 3×3
    const gm = op(n, 'GlobalMaxPool', [p2]);
    const cat = op(n, 'Concat', [op(n, 'Flatten', [p2], { axis: 1 }), op(n, 'Flatten', [gm], { axis: 1 })], { axis: 1 });
    head(n, cat, 4 * 9 + 4);
    return spec(n, ['N', 3, 9, 9], { opset });
  };
  await check('maxpool-17', mk(17, 0), { ops: ['MaxPool', 'GlobalMaxPool'], also: (_m, g) => assert.ok(g.coverage.notes.some((t) => /reduction=add/.test(t)), g.coverage.notes.join('\n')) });
  await check('maxpool-13-ceil', mk(13, 1), { ops: ['MaxPool'], also: (_m, g) => assert.ok(g.coverage.notes.some((t) => /class of non-overlapping windows/.test(t)), g.coverage.notes.join('\n')) });
  await check('maxpool-unpool', mk(17, 0), { variants: { maxpool: 'unpool' } });
});

test('MaxPool routes to the first maximum exactly when the window has ties', async () => {
  // constant regions: every window of the pooled map is a tie; the gradient goes to one pixel per window
  const n = net(72);
  const h = op(n, 'Relu', [op(n, 'Sub', ['x', c(n, [], [2])])]); // all zeros for x in [0,1]
  const p = op(n, 'MaxPool', [op(n, 'Add', [h, 'x'])], { kernel_shape: [3, 3], strides: [2, 2] });
  head(n, p, 1 * 3 * 3);
  const file = writeModel(spec(n, ['N', 1, 7, 7]), 'maxpool-ties.onnx');
  const model = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
  const gm = await buildGradientModel(model, { device: 'cpu' });
  try {
    const x = new Float32Array(49).fill(0.5);
    const r = await gm.lossAndGrad({ data: x, n: 1, channels: 1, height: 7, width: 7 }, [2], 'ce');
    // dL/dp for the 9 windows, then each window's gradient lands on its first pixel (row-major)
    const nonzero = Array.from(r.grad.keys()).filter((i) => r.grad[i] !== 0);
    const firsts = [0, 2, 4, 14, 16, 18, 28, 30, 32];
    assert.deepEqual(nonzero.filter((i) => !firsts.includes(i)), [], `gradient outside the windows' first pixels: ${nonzero}`);
  } finally {
    await gm.dispose();
    await model.dispose();
  }
});

test('AveragePool: count_include_pad 0 and 1, padding, ceil_mode; GlobalAveragePool', async () => {
  for (const cip of [0, 1]) {
    const n = net(81);
    const h = op(n, 'Tanh', [op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] })]); // 9×9
    const a = op(n, 'AveragePool', [h], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: cip }); // 5×5
    const b = op(n, 'AveragePool', [a], { kernel_shape: [2, 3], strides: [2, 2], pads: [0, 1, 1, 0], ceil_mode: 1, count_include_pad: cip }); // 3×3
    const g = op(n, 'GlobalAveragePool', [a]);
    head(n, op(n, 'Concat', [op(n, 'Flatten', [b], { axis: 1 }), op(n, 'Flatten', [g], { axis: 1 })], { axis: 1 }), 4 * 9 + 4);
    await check(`avgpool-cip${cip}`, spec(n, ['N', 3, 9, 9]), { ops: ['AveragePool', 'GlobalAveragePool'] });
  }
});

test('shape ops: Reshape from a shape subgraph (Shape→Gather→Unsqueeze→Concat), Flatten, Transpose, Squeeze, Unsqueeze, Identity, Cast', async () => {
  const n = net(91);
  const h = op(n, 'Tanh', [op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] })]); // [N,4,6,6]
  const shp = op(n, 'Shape', [h]);
  const batch = op(n, 'Gather', [shp, c(n, [], [0], 'int64')], { axis: 0 });
  const target = op(n, 'Concat', [op(n, 'Unsqueeze', [batch, c(n, [1], [0], 'int64')]), c(n, [2], [4, -1], 'int64')], { axis: 0 });
  const r = op(n, 'Reshape', [h, target]); // [N,4,36]
  const t = op(n, 'Transpose', [r], { perm: [0, 2, 1] }); // [N,36,4]
  const u = op(n, 'Unsqueeze', [t, c(n, [1], [1], 'int64')]); // [N,1,36,4]
  const s = op(n, 'Squeeze', [op(n, 'Identity', [u]), c(n, [1], [1], 'int64')]);
  const cast = op(n, 'Cast', [s], { to: 1 });
  head(n, cast, 144);
  await check('shape-ops', spec(n, ['N', 3, 6, 6], { opset: 13 }), {
    ops: ['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Flatten'],
    also: (_m, gm) => {
      for (const op0 of ['Shape', 'Gather', 'Concat', 'Unsqueeze']) if (op0 !== 'Unsqueeze') assert.ok(!gm.coverage.ops.some((e) => e.op === op0), `${op0} is a shape computation, not differentiated`);
      assert.ok(gm.coverage.constantOps.Shape === 1 && gm.coverage.constantOps.Gather === 1, JSON.stringify(gm.coverage.constantOps));
    },
  });
});

test('Concat, Split, Slice (steps 1 and −1), Gather (scalar index, distinct indices), Pad (constant with negative pads, reflect, edge)', async () => {
  const n = net(101);
  const a = op(n, 'Tanh', [op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] })]); // [N,4,6,6]
  const b = op(n, 'Sigmoid', [op(n, 'Conv', ['x', w(n, [2, 3, 1, 1], 0.5)], {})]); // [N,2,6,6]
  const cat = op(n, 'Concat', [a, b, 'x'], { axis: 1 }); // [N,9,6,6]
  const s1 = v(n, 'split');
  const s2 = v(n, 'split');
  const s3 = v(n, 'split');
  n.nodes.push(node('Split', [cat, c(n, [3], [3, 4, 2], 'int64')], [s1, s2, s3], { axis: 1 }, 'split'));
  const sl = op(n, 'Slice', [s2, c(n, [2], [5, 1], 'int64'), c(n, [2], [0, 6], 'int64'), c(n, [2], [2, 3], 'int64'), c(n, [2], [-1, 2], 'int64')]); // [N,4,5,3]
  const g0 = op(n, 'Gather', [s1, c(n, [], [1], 'int64')], { axis: 1 }); // [N,6,6]
  const g1 = op(n, 'Gather', [s1, c(n, [2], [2, 0], 'int64')], { axis: 1 }); // [N,2,6,6]
  const pc = op(n, 'Pad', [g1, c(n, [8], [0, 0, 1, -1, 0, 0, -2, 2], 'int64'), c(n, [], [0.5])]); // [N,2,5,7]
  const pr = op(n, 'Pad', [g1, c(n, [8], [0, 0, 2, 1, 0, 0, 1, 3], 'int64')], { mode: 'reflect' }); // [N,2,9,10]
  const pe = op(n, 'Pad', [g0, c(n, [6], [0, 1, 2, 0, 2, 1], 'int64')], { mode: 'edge' }); // [N,9,9]
  const parts = [sl, g0, pc, pr, pe, s3].map((t) => op(n, 'Flatten', [t], { axis: 1 }));
  const all = op(n, 'Concat', parts, { axis: 1 });
  head(n, all, 4 * 5 * 3 + 36 + 2 * 5 * 7 + 2 * 9 * 10 + 81 + 2 * 36);
  await check('concat-split-slice-pad', spec(n, ['N', 3, 6, 6], { opset: 13 }), { ops: ['Concat', 'Split', 'Slice', 'Gather', 'Pad'] });
});

test('ReduceMean (keepdims 0 and 1), ReduceSum (axes as input)', async () => {
  const n = net(111);
  const h = op(n, 'Tanh', [op(n, 'Conv', ['x', w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1] })]); // [N,4,6,6]
  const m0 = op(n, 'ReduceMean', [h], { axes: [2], keepdims: 0 }); // [N,4,6]
  const m1 = op(n, 'ReduceMean', [h], { axes: [1, 3], keepdims: 1 }); // [N,1,6,1]
  const s0 = op(n, 'ReduceSum', [h, c(n, [2], [-1, -2], 'int64')], { keepdims: 0 }); // [N,4]
  head(n, op(n, 'Concat', [op(n, 'Flatten', [m0], { axis: 1 }), op(n, 'Flatten', [m1], { axis: 1 }), s0], { axis: 1 }), 24 + 6 + 4);
  await check('reduce', spec(n, ['N', 3, 6, 6], { opset: 13 }), { ops: ['ReduceMean', 'ReduceSum'] });
});

test('the pixel prefix: NHWC input with BGR channels and mean/std, and a flat [N,D] input', async () => {
  {
    const n = net(121);
    const t = op(n, 'Transpose', ['x'], { perm: [0, 3, 1, 2] });
    const h = op(n, 'Relu', [op(n, 'Conv', [t, w(n, [4, 3, 3, 3], 0.5)], { pads: [1, 1, 1, 1], strides: [2, 2] })]);
    head(n, h, 4 * 4 * 4);
    await check('nhwc-bgr', spec(n, ['N', 8, 8, 3]), { preprocess: { channelOrder: 'bgr', mean: [0.4, 0.5, 0.6], std: [0.2, 0.3, 0.25], scale: 1 } });
  }
  {
    const n = net(122);
    const g = op(n, 'Tanh', [op(n, 'Gemm', ['x', w(n, [64, 12], 0.3), w(n, [12], 0.1)])]);
    n.nodes.push(node('Gemm', [g, w(n, [12, 5], 0.5)], ['y']));
    await check('flat', spec(n, ['N', 64]), { preprocess: 'mnist' });
  }
});

test('i64Init writes int64 initializers as ONNX reads them: small ones as int64_data, long ones as little-endian raw_data, 32-bit values and larger alike', async () => {
  const { i64Init } = await import('../../server/engine/model/gradient/tensor');
  const small = i64Init('s', [3], [1, -2, 3.9]);
  assert.deepEqual(small.int64Data, [1, -2, 3]);
  // the reference: each value as a BigInt, in a BigInt64Array read back little-endian
  const decode = (raw: Uint8Array) => {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    return Array.from({ length: raw.byteLength / 8 }, (_, i) => view.getBigInt64(8 * i, true));
  };
  const ints = Array.from({ length: 100 }, (_, i) => (i % 2 ? -1 : 1) * i * 21474836); // up to about ±2.1e9
  const edges = [0, -0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 7.9, -7.9];
  for (const values of [ints, [...ints, ...edges], [...edges, ...ints, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 40)]]) {
    const t = i64Init('x', [values.length], values);
    assert.equal(t.int64Data, undefined);
    assert.deepEqual(decode(t.rawData!), values.map((v) => BigInt(Math.trunc(v))), `${values.length} values`);
  }
});
