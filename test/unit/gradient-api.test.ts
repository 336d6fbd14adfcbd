/**
 * The gradient model's contract: the loss outputs equal cross-entropy and the margin computed in
 * JS from the logits output; logits match predict; batches split into runs like predict's (free,
 * fixed and absent batch axes); bad labels and sizes are refused; an op without a rule throws
 * GradientUnsupportedError naming every such op and its nodes; float16 and uint8-input models are
 * differentiated in float32; and gradcheck notices a gradient rule that is 3% wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel } from '../../server/engine/model';
import { buildGradientModel, GradientUnsupportedError } from '../../server/engine/model/gradient';
import { RULES } from '../../server/engine/model/gradient/rules';
import { formatGradcheck, gradcheck, lossOf } from '../../server/engine/gradcheck';
import { mulberry32 } from '../../server/engine/random';
import type { LoadedModel } from '../../server/engine/types';
import { node, seeded, tensor, writeModel, type ModelSpec } from './helpers/onnx-builder';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');

/** x [N,3,6,6] → Conv → Relu → MaxPool → Flatten → Gemm → y [N,K]. */
function convnet(o: { batch?: number | string; K?: number; inputShape?: (number | string)[]; inputType?: 'float32' | 'float16' | 'uint8'; opset?: number } = {}): ModelSpec {
  const K = o.K ?? 7;
  const f16 = o.inputType === 'float16';
  const nodes = [];
  let x = 'x';
  if (o.inputType === 'uint8') {
    nodes.push(node('Cast', ['x'], ['xf'], { to: 1 }));
    nodes.push(node('Div', ['xf', 'c255'], ['xs']));
    x = 'xs';
  }
  const inShape = o.inputShape ?? [o.batch ?? 'N', 3, 6, 6];
  const noBatch = inShape.length === 3;
  if (noBatch) {
    nodes.push(node('Unsqueeze', [x], ['x4'], { axes: [0] }));
    x = 'x4';
  }
  nodes.push(
    node('Conv', [x, 'W1', 'b1'], ['c'], { pads: [1, 1, 1, 1] }),
    node('Relu', ['c'], ['r']),
    node('MaxPool', ['r'], ['p'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
    node('Flatten', ['p'], ['f'], { axis: 1 }),
    node('Gemm', ['f', 'W2', 'b2'], [noBatch ? 'y2' : 'y']),
  );
  if (noBatch) nodes.push(node('Squeeze', ['y2'], ['y'], { axes: [0] }));
  const t = f16 ? 'float16' : 'float32';
  return {
    inputs: [{ name: 'x', type: o.inputType ?? 'float32', shape: inShape }],
    outputs: [{ name: 'y', type: t, shape: noBatch ? [K] : [inShape[0], K] }],
    initializers: [
      tensor('W1', [4, 3, 3, 3], seeded(108, 1, -0.5, 0.5), t),
      tensor('b1', [4], seeded(4, 2, -0.1, 0.1), t),
      tensor('W2', [36, K], seeded(36 * K, 3, -0.3, 0.3), t),
      tensor('b2', [K], seeded(K, 4, -0.1, 0.1), t),
      ...(o.inputType === 'uint8' ? [tensor('c255', [], [255])] : []),
    ],
    nodes,
    opset: o.opset ?? 11,
  };
}

function images(n: number, seed = 1, D = 108): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n * D }, () => r());
}

async function withModel(spec: ModelSpec, name: string, fn: (m: LoadedModel) => Promise<void>, opts: Parameters<typeof loadModel>[1] = {}): Promise<void> {
  const m = await loadModel(writeModel(spec, name), { device: 'cpu', preprocess: 'unit', ...opts });
  try {
    await fn(m);
  } finally {
    await m.dispose();
  }
}

test('loss outputs equal cross-entropy and the margin computed from the logits; logits equal predict', async () => {
  await withModel(convnet(), 'loss.onnx', async (m) => {
    const gm = await buildGradientModel(m, { device: 'cpu' });
    try {
      const n = 6;
      const batch = { data: images(n), n, channels: 3 as const, height: 6, width: 6 };
      const labels = [0, 1, 2, 3, 4, 6];
      const p = await m.predict(batch);
      for (const loss of ['ce', 'margin'] as const) {
        const r = await gm.lossAndGrad(batch, labels, loss);
        assert.equal(r.logits.length, n * 7);
        assert.equal(r.grad.length, n * 108);
        for (let i = 0; i < n; i++) {
          // independent float64 formulas
          const z = Array.from(r.logits.subarray(i * 7, i * 7 + 7));
          const y = labels[i];
          const lse = Math.log(z.reduce((s, v) => s + Math.exp(v), 0));
          const want = loss === 'ce' ? lse - z[y] : Math.max(...z.filter((_, k) => k !== y)) - z[y];
          assert.ok(Math.abs(r.loss[i] - want) < 1e-5, `${loss}: ${r.loss[i]} vs ${want}`);
          assert.ok(Math.abs(lossOf(r.logits, i * 7, 7, y, loss) - want) < 1e-9);
          for (let k = 0; k < 7; k++) assert.ok(Math.abs(r.logits[i * 7 + k] - p.logits[i * 7 + k]) < 1e-5, 'logits equal predict');
        }
      }
      const z = await gm.logits(batch);
      assert.ok(z.every((v, i) => Math.abs(v - p.logits[i]) < 1e-5), 'the forward-only logits equal predict');
    } finally {
      await gm.dispose();
    }
  });
});

test('batches: runs of batchSize give the same results as one image at a time; fixed batch, fixed batch 1 and no batch axis', async () => {
  const labels = [1, 5, 0, 6, 2, 3, 4, 1, 0, 2];
  const n = labels.length;
  const data = images(n, 9);
  let reference: { loss: Float32Array; grad: Float32Array } | undefined;
  const cases: [string, ModelSpec, number][] = [
    ['dynamic', convnet(), 4],
    ['fixed4', convnet({ batch: 4 }), 16],
    ['fixed1', convnet({ batch: 1 }), 16],
    ['nobatch', convnet({ inputShape: [3, 6, 6] }), 16],
  ];
  for (const [name, spec, batchSize] of cases) {
    await withModel(spec, `${name}.onnx`, async (m) => {
      const gm = await buildGradientModel(m, { device: 'cpu', batchSize });
      try {
        const r = await gm.lossAndGrad({ data, n, channels: 3, height: 6, width: 6 }, labels, 'ce');
        if (!reference) {
          // one image at a time through the dynamic model
          const loss = new Float32Array(n);
          const grad = new Float32Array(n * 108);
          for (let i = 0; i < n; i++) {
            const one = await gm.lossAndGrad({ data: data.subarray(i * 108, (i + 1) * 108), n: 1, channels: 3, height: 6, width: 6 }, [labels[i]], 'ce');
            loss[i] = one.loss[0];
            grad.set(one.grad, i * 108);
          }
          reference = { loss, grad };
        }
        for (let i = 0; i < n; i++) assert.ok(Math.abs(r.loss[i] - reference.loss[i]) < 1e-5, `${name}: loss ${i}`);
        for (let i = 0; i < n * 108; i++) assert.ok(Math.abs(r.grad[i] - reference.grad[i]) < 1e-5, `${name}: grad ${i}`);
      } finally {
        await gm.dispose();
      }
    });
  }
});

test('bad calls: labels out of range or missing, wrong image size, unknown loss, after dispose', async () => {
  await withModel(convnet(), 'bad.onnx', async (m) => {
    const gm = await buildGradientModel(m, { device: 'cpu' });
    const batch = { data: images(2), n: 2, channels: 3 as const, height: 6, width: 6 };
    await assert.rejects(gm.lossAndGrad(batch, [0, 7], 'ce'), /label 7 of image 1 is not a class index in \[0, 7\)/);
    await assert.rejects(gm.lossAndGrad(batch, [0], 'ce'), /1 labels for 2 images/);
    await assert.rejects(gm.lossAndGrad({ ...batch, height: 5 }, [0, 1], 'ce'), /the model takes 3×6×6/);
    await assert.rejects(gm.lossAndGrad(batch, [0, 1], 'hinge' as 'ce'), /unknown loss 'hinge'/);
    await gm.dispose();
    await assert.rejects(gm.lossAndGrad(batch, [0, 1], 'ce'), /after dispose/);
  });
});

test('an op without a gradient rule: GradientUnsupportedError names every such op and its nodes', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: ['N', 3, 4, 4] }],
    outputs: [{ name: 'y', shape: ['N', 5] }],
    initializers: [tensor('W', [48, 10], seeded(480, 1)), tensor('k', [1], [5], 'int64'), tensor('V', [10, 5], seeded(50, 2))],
    nodes: [
      node('Flatten', ['x'], ['f'], { axis: 1 }),
      node('Sin', ['f'], ['s'], {}, 'the_sine'),
      node('MatMul', ['s', 'W'], ['h']),
      node('Cos', ['h'], ['c1'], {}, 'cos_a'),
      node('Cos', ['c1'], ['c2'], {}, 'cos_b'),
      node('MatMul', ['c2', 'V'], ['z']),
      node('TopK', ['z', 'k'], ['y', 'idx'], { axis: 1 }, 'topk'),
    ],
    opset: 13,
  };
  const file = writeModel(spec, 'unsupported.onnx');
  const m = await loadModel(file, { device: 'cpu', preprocess: 'unit' });
  try {
    await assert.rejects(buildGradientModel(m, { device: 'cpu' }), (e: unknown) => {
      assert.ok(e instanceof GradientUnsupportedError, String(e));
      assert.deepEqual([...e.unsupported].sort(), ['Cos', 'Sin', 'TopK']);
      assert.ok(e.message.includes(file), e.message);
      assert.match(e.message, /Sin \(node 'the_sine'\)/);
      assert.match(e.message, /Cos \(nodes 'cos_b', 'cos_a'\)|Cos \(nodes 'cos_a', 'cos_b'\)/);
      assert.match(e.message, /TopK \(node 'topk'\)/);
      return true;
    });
  } finally {
    await m.dispose();
  }
});

test('class scores that do not depend differentiably on the input are refused with the op that cuts the path', async () => {
  const spec: ModelSpec = {
    inputs: [{ name: 'x', shape: ['N', 3, 4, 4] }],
    outputs: [{ name: 'y', shape: ['N', 5] }],
    initializers: [tensor('W', [48, 5], seeded(240, 1)), tensor('E', [5, 5], Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0)))],
    nodes: [
      node('Flatten', ['x'], ['f'], { axis: 1 }),
      node('MatMul', ['f', 'W'], ['z']),
      node('ArgMax', ['z'], ['a'], { axis: 1, keepdims: 0 }, 'argmax'),
      node('Gather', ['E', 'a'], ['y'], { axis: 0 }),
    ],
    opset: 13,
  };
  await withModel(spec, 'cut.onnx', async (m) => {
    await assert.rejects(buildGradientModel(m, { device: 'cpu' }), (e: unknown) => {
      assert.ok(e instanceof GradientUnsupportedError, String(e));
      assert.match(e.message, /do not depend differentiably on the input.*ArgMax.*'argmax'/);
      return true;
    });
  });
});

test('float16 weights and input, and a uint8 input, are differentiated in float32 (gradcheck passes)', async () => {
  await withModel(convnet({ inputType: 'float16' }), 'half.onnx', async (m) => {
    const r = await gradcheck(m, { samples: 2, directions: 4 });
    assert.ok(r.pass, formatGradcheck(r));
    assert.ok(r.coverage.notes.some((n) => /float16/.test(n)), r.coverage.notes.join('\n'));
  });
  await withModel(convnet({ inputType: 'uint8' }), 'u8.onnx', async (m) => {
    const r = await gradcheck(m, { samples: 2, directions: 4 });
    assert.ok(r.pass, formatGradcheck(r));
    assert.ok(r.coverage.notes.some((n) => /uint8 input is fed as float32/.test(n)), r.coverage.notes.join('\n'));
  }, { preprocess: 'raw255' });
});

test('gradcheck fails a rule that is 3% wrong (Conv, MaxPool), and formatGradcheck prints the verdict and coverage', async () => {
  for (const op of ['Conv', 'MaxPool']) {
    const orig = RULES[op];
    RULES[op] = { doc: orig.doc, fn: (c, n, gy, act) => orig.fn(c, n, gy, act).map((g) => (g ? c.b.mul(g, c.b.scalar(1.03)) : g)) };
    try {
      await withModel(convnet(), `wrong-${op}.onnx`, async (m) => {
        const r = await gradcheck(m, { samples: 2, directions: 4 });
        assert.ok(!r.pass && r.worst > 0.02, `a 3% error in ${op} went unnoticed:\n${formatGradcheck(r)}`);
        assert.match(formatGradcheck(r), /^FAIL: worst ≥ 0\.01$/m);
      });
    } finally {
      RULES[op] = orig;
    }
  }
  await withModel(convnet(), 'right.onnx', async (m) => {
    const r = await gradcheck(m, { samples: 2, directions: 4 });
    const text = formatGradcheck(r);
    assert.match(text, /^worst relative error \S+, median \S+ \(/m);
    assert.match(text, /^PASS: worst < 0\.01$/m);
    assert.match(text, /^ {2}Conv +1 +stride 1: Conv with the flipped/m);
    assert.match(text, /^ {2}MaxPool +1 +exact routing/m);
  });
});

test('mnist-8 (fixed batch 1 made symbolic): loss outputs match JS on real digits', { skip: existsSync(FIXTURES) ? false : `fixtures absent: ${FIXTURES}` }, async () => {
  const m = await loadModel(join(FIXTURES, 'models', 'mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    assert.equal(m.info.batch.patched, true);
    const gm = await buildGradientModel(m, { device: 'cpu' });
    try {
      const n = 20;
      const batch = { data: images(n, 3, 784), n, channels: 1 as const, height: 28, width: 28 };
      const labels = Array.from({ length: n }, (_, i) => i % 10);
      for (const loss of ['ce', 'margin'] as const) {
        const r = await gm.lossAndGrad(batch, labels, loss);
        for (let i = 0; i < n; i++) assert.ok(Math.abs(r.loss[i] - lossOf(r.logits, i * 10, 10, labels[i], loss)) < 1e-5);
      }
    } finally {
      await gm.dispose();
    }
  } finally {
    await m.dispose();
  }
});
