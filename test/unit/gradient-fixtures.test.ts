/**
 * Input gradients of the fixture models (../shared/fixtures/models), checked against finite
 * differences (gradcheck) for both losses: mnist-8 (opset 8, fixed batch 1 made symbolic),
 * the VeriVital MaxPool CNN, the adversarially trained CIFAR ResNet-2B (mean/std in the graph),
 * the tf2onnx NHWC CIFAR CNN, and the constant-weight SqueezeNet and ResNet-50 graphs. Those two
 * compute the same logit for every class, so their loss is log K whatever the input and the
 * gradient is the float32 rounding of per-class gradients that cancel: the check there is that it is
 * finite (gradcheck reports such samples below float32 resolution); their real graphs
 * (MaxPool, Concat, BatchNormalization, Sum, Dropout, AveragePool, the 4-D Softmax ending) are then
 * checked with seeded random weights in place of the ConstantOfShape ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { onnx } from 'onnx-proto';
import { loadModel } from '../../server/engine/model';
import { buildGradientModel } from '../../server/engine/model/gradient';
import { formatGradcheck, gradcheck, type GradcheckResult } from '../../server/engine/gradcheck';
import { gaussian, mulberry32 } from '../../server/engine/random';
import type { LoadedModel } from '../../server/engine/types';
import { tmpDir } from './helpers/onnx-builder';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `fixtures absent: ${FIXTURES}`;
const model = (name: string) => join(FIXTURES, 'models', name);

function assertPass(r: GradcheckResult, what: string, minCompared = 1): void {
  assert.ok(r.pass, `${what}:\n${formatGradcheck(r)}`);
  assert.ok(r.checked - r.belowNoise >= minCompared, `${what}: only ${r.checked - r.belowNoise} samples compared\n${formatGradcheck(r)}`);
  assert.ok(r.lossMismatch < 1e-4, `${what}: loss output ≠ loss of the logits (${r.lossMismatch})`);
}

/** Gradchecks both losses on one gradient model; returns the results. */
async function checkBoth(m: LoadedModel, what: string, o: { samples?: number; directions?: number; minCompared?: number; steps?: number } = {}): Promise<GradcheckResult[]> {
  const gm = await buildGradientModel(m, { device: 'cpu' });
  try {
    const out: GradcheckResult[] = [];
    for (const loss of ['ce', 'margin'] as const) {
      const r = await gradcheck(m, { gradient: gm, loss, samples: o.samples ?? 2, directions: o.directions ?? 4, steps: o.steps, seed: 1 });
      assertPass(r, `${what} (${loss})`, o.minCompared ?? 4);
      out.push(r);
    }
    return out;
  } finally {
    await gm.dispose();
  }
}

const ops = (r: GradcheckResult) => Object.fromEntries(r.coverage.ops.map((e) => [e.op, e.count]));

test('mnist-8 (CNTK, opset 8, fixed batch 1): gradcheck passes for both losses', { skip }, async () => {
  const m = await loadModel(model('mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    const [r] = await checkBoth(m, 'mnist-8');
    assert.deepEqual(ops(r), { Conv: 2, Add: 3, Relu: 2, MaxPool: 2, Reshape: 1, MatMul: 1 });
    assert.deepEqual(r.coverage.opset, { model: 8, graph: 11 });
  } finally {
    await m.dispose();
  }
});

test('mnist_convnet_maxpool (VeriVital, MaxPool): gradcheck passes', { skip }, async () => {
  const m = await loadModel(model('mnist_convnet_maxpool_verivital.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    const [r] = await checkBoth(m, 'mnist_convnet_maxpool');
    assert.deepEqual(ops(r), { Conv: 1, Relu: 1, MaxPool: 1, Flatten: 1, Gemm: 1 });
  } finally {
    await m.dispose();
  }
});

test('cifar10_resnet2b (adversarially trained, mean/std in the prefix): gradcheck passes', { skip }, async () => {
  const m = await loadModel(model('cifar10_resnet2b_advtrained.onnx'), {
    device: 'cpu',
    preprocess: { mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] },
  });
  try {
    const [r] = await checkBoth(m, 'resnet2b');
    assert.deepEqual(ops(r), { Conv: 6, Relu: 6, Add: 2, Flatten: 1, Gemm: 2 });
    assert.ok(r.coverage.notes.some((n) => /preprocessing/.test(n)), r.coverage.notes.join('\n'));
  } finally {
    await m.dispose();
  }
});

test('cifar10_marabou_small (tf2onnx, NHWC input): gradcheck passes', { skip }, async () => {
  const m = await loadModel(model('cifar10_marabou_small_nhwc.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    assert.equal(m.info.layout, 'NHWC');
    const [r] = await checkBoth(m, 'marabou');
    assert.deepEqual(ops(r), { Transpose: 2, Conv: 2, Relu: 4, Reshape: 1, MatMul: 3, Add: 3 });
  } finally {
    await m.dispose();
  }
});

/**
 * A copy of a constant-weight model with seeded random weights instead of its ConstantOfShape
 * nodes: He-normal convolution and fully connected weights, BatchNormalization with mean 0, var 1,
 * scale `bnScale(name)`, zero biases.
 */
function randomised(file: string, bnScale: (name: string) => number): string {
  const m = onnx.ModelProto.decode(readFileSync(file));
  const g = m.graph!;
  const use = new Map<string, { op: string; slot: number }>();
  for (const n of g.node ?? []) (n.input ?? []).forEach((x, slot) => use.set(x, { op: n.opType ?? '', slot }));
  const rng = mulberry32(20240607);
  const inits: onnx.ITensorProto[] = [];
  const keep: onnx.INodeProto[] = [];
  for (const n of g.node ?? []) {
    if (n.opType !== 'ConstantOfShape') {
      keep.push(n);
      continue;
    }
    const out = n.output![0];
    const shapeT = (g.initializer ?? []).find((t) => t.name === n.input![0])!;
    const dims = (shapeT.int64Data?.length ? shapeT.int64Data : Array.from(new BigInt64Array(new Uint8Array(shapeT.rawData!).slice().buffer))).map(Number);
    const size = dims.reduce((a, b) => a * b, 1);
    const u = use.get(out) ?? { op: '', slot: -1 };
    const data = new Float32Array(size);
    if ((u.op === 'Conv' || u.op === 'Gemm' || u.op === 'MatMul') && u.slot === 1) {
      const fanIn = u.op === 'Conv' ? size / dims[0] : dims[dims.length - 1];
      const std = Math.sqrt((u.op === 'Conv' ? 2 : 1) / fanIn);
      for (let i = 0; i < size; i++) data[i] = gaussian(rng) * std;
    } else if (u.op === 'BatchNormalization') {
      data.fill(u.slot === 1 ? bnScale(out) : u.slot === 4 ? 1 : 0);
    }
    inits.push({ name: out, dataType: 1, dims, rawData: new Uint8Array(data.buffer) });
  }
  g.node = keep;
  g.initializer = [...(g.initializer ?? []), ...inits];
  if (Number(m.irVersion) < 4) g.input = [...(g.input ?? []), ...inits.map((t) => ({ name: t.name, type: { tensorType: { elemType: 1, shape: { dim: t.dims!.map((d) => ({ dimValue: d })) } } } }))];
  const outFile = join(tmpDir(), file.split('/').pop()!.replace('constweights', 'randomweights'));
  writeFileSync(outFile, onnx.ModelProto.encode(m).finish());
  return outFile;
}

/** Constant weights: every class gets the same logit, so the loss is log K whatever the input. */
async function constantWeights(file: string): Promise<void> {
  const m = await loadModel(file, { device: 'cpu', preprocess: 'imagenet' });
  try {
    const gm = await buildGradientModel(m, { device: 'cpu' });
    try {
      assert.match(gm.coverage.logits, /Softmax/);
      const D = 3 * 224 * 224;
      const x = new Float32Array(2 * D);
      const rng = mulberry32(5);
      for (let i = 0; i < x.length; i++) x[i] = rng();
      for (const loss of ['ce', 'margin'] as const) {
        const r = await gm.lossAndGrad({ data: x, n: 2, channels: 3, height: 224, width: 224 }, [3, 999], loss);
        assert.ok(r.grad.every(Number.isFinite), 'the gradient is finite');
        for (let i = 0; i < 2; i++) {
          const row = r.logits.subarray(i * 1000, (i + 1) * 1000);
          assert.ok(row.every((z) => z === row[0]), 'every class gets the same logit');
          assert.ok(Math.abs(r.loss[i] - (loss === 'ce' ? Math.log(1000) : 0)) < 1e-4, `loss ${r.loss[i]}`);
        }
      }
    } finally {
      await gm.dispose();
    }
  } finally {
    await m.dispose();
  }
}

test('light_squeezenet: constant weights (degenerate, finite), then seeded random weights: gradcheck passes', { skip }, async () => {
  await constantWeights(model('light_squeezenet_constweights.onnx'));
  const m = await loadModel(randomised(model('light_squeezenet_constweights.onnx'), () => 1), { device: 'cpu', preprocess: 'imagenet' });
  try {
    const [r] = await checkBoth(m, 'squeezenet (random weights)', { samples: 1, directions: 4, minCompared: 2 });
    assert.deepEqual(ops(r), { Conv: 26, Relu: 26, Concat: 8, MaxPool: 3, Dropout: 1, GlobalAveragePool: 1 });
    assert.ok(r.coverage.notes.some((n) => /class of non-overlapping windows/.test(n)), 'opset 9 MaxPool 3×3/2 routes per window class');
  } finally {
    await m.dispose();
  }
});

test('light_resnet50: constant weights (degenerate, finite), then seeded random weights: gradcheck passes', { skip }, async () => {
  await constantWeights(model('light_resnet50_constweights.onnx'));
  const file = randomised(model('light_resnet50_constweights.onnx'), (name) => (/branch2c_bn_s/.test(name) ? 0.2 : 1));
  const m = await loadModel(file, { device: 'cpu', preprocess: 'imagenet' });
  try {
    const gm = await buildGradientModel(m, { device: 'cpu' });
    try {
      const r = await gradcheck(m, { gradient: gm, loss: 'margin', samples: 1, directions: 2, seed: 1, steps: 8, eps: 0.02 });
      assertPass(r, 'resnet50 (random weights)', 1);
      assert.deepEqual(ops(r), { Conv: 53, BatchNormalization: 53, Relu: 49, Sum: 16, MaxPool: 1, AveragePool: 1, Reshape: 1, Gemm: 1 });
    } finally {
      await gm.dispose();
    }
  } finally {
    await m.dispose();
  }
});
