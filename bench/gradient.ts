/**
 * Gradient benchmark (not a test):
 *
 *   1. cost of one forward+backward (GradientModel.lossAndGrad) relative to one forward
 *      (LoadedModel.predict) on the same batch: mnist-8, CIFAR ResNet-2B, MobileNetV2-int8
 *      (its float shadow), and torchvision ResNet-18 when PyTorch is installed. Target ≤ 3×.
 *   2. the formulations the rules chose between, whole-model: stride-1 Conv input gradient as a
 *      flipped-kernel Conv or a ConvTranspose; overlapping MaxPool as ScatterElements or MaxUnpool;
 *   3. the same candidates in isolation (ResNet's first MaxPool and a few Conv shapes), with
 *      the exact-but-slow ones (MaxPool Indices compared elementwise through slices and Col2Im,
 *      stride-2 Conv input gradient as one polyphase Conv + DepthToSpace);
 *   4. PGD-10 (L∞, CE, random start) on 64 images of torchvision ResNet-18 (random init, exported
 *      to ONNX by PyTorch in a temp dir): Skeptic against torch autograd on the same architecture,
 *      with tcmalloc preloaded and torch.set_num_threads(2) (DESIGN.md: a fair baseline).
 *
 *   node --import tsx bench/gradient.ts [--size 32|224|both] [--repeat 5] [--skip-torch] [--skip-micro]
 *
 * Needs ../shared/fixtures for 1–2; 4 needs /usr/bin/python3 with torch and torchvision.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../server/engine/fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import { loadModel } from '../server/engine/model';
import { buildGradientModel, type GradientVariants } from '../server/engine/model/gradient';
import { encodeModel, onnx } from '../server/engine/model/onnx';
import { mulberry32 } from '../server/engine/random';
import type { LoadedModel, PixelBatch } from '../server/engine/types';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');
const PY = '/usr/bin/python3';
const TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: 'both' },
    repeat: { type: 'string', default: '5' },
    'skip-torch': { type: 'boolean', default: false },
    'skip-micro': { type: 'boolean', default: false },
  },
});
const REPEAT = Math.max(1, Number(args.repeat));

/** Best of `repeat` runs after a warm-up: the machines this runs on are shared, and interference
 *  only ever adds time. */
async function time(fn: () => Promise<unknown>, repeat = REPEAT): Promise<number> {
  await fn();
  let best = Infinity;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}
const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ms`.padStart(10);

function randomBatch(m: LoadedModel, n: number, seed = 1): PixelBatch {
  const { channels, height, width } = m.info;
  const r = mulberry32(seed);
  return { data: Float32Array.from({ length: n * channels * height * width }, () => r()), n, channels, height, width };
}

// ---------------------------------------------------------------------------------------------
// 1. forward+backward / forward

interface Case {
  name: string;
  file: string;
  preprocess: string | Record<string, unknown>;
  batch: number;
}

async function ratio(c: Case, variants?: Partial<GradientVariants>): Promise<{ predict: number; shadow: number; grad: number }> {
  const m = await loadModel(c.file, { preprocess: c.preprocess as string, batchSize: c.batch, device: 'cpu' });
  const gm = await buildGradientModel(m, { batchSize: c.batch, device: 'cpu', variants });
  try {
    const b = randomBatch(m, c.batch);
    const labels = Array.from({ length: c.batch }, (_, i) => i % m.info.numClasses);
    const predict = await time(() => m.predict(b));
    const shadow = await time(() => gm.logits(b));
    const grad = await time(() => gm.lossAndGrad(b, labels, 'ce'));
    return { predict, shadow, grad };
  } finally {
    await gm.dispose();
    await m.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// 3. candidates in isolation

type N = { op: string; inputs: string[]; outputs: string[]; attrs?: onnx.IAttributeProto[] };
const T = onnx.AttributeProto.AttributeType;
const ai = (name: string, v: number): onnx.IAttributeProto => ({ name, type: T.INT, i: v });
const ais = (name: string, v: number[]): onnx.IAttributeProto => ({ name, type: T.INTS, ints: v });
const as = (name: string, v: string): onnx.IAttributeProto => ({ name, type: T.STRING, s: new TextEncoder().encode(v) });
const i64 = (name: string, v: number[]): onnx.ITensorProto => ({ name, dataType: 7, dims: [v.length], int64Data: v });
const f32 = (name: string, dims: number[], v: Float32Array): onnx.ITensorProto => ({ name, dataType: 1, dims, rawData: new Uint8Array(v.buffer.slice(0)) });

/** A model with float inputs `ins` (name → dims) whose output 'r' is a ReduceSum of `out` (so the
 *  timing is not a copy of a big output to JS). */
function micro(ins: Record<string, number[]>, nodes: N[], inits: onnx.ITensorProto[], out: string, opset = 18): Uint8Array {
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'micro',
      node: [...nodes, { op: 'ReduceSum', inputs: [out], outputs: ['r'], attrs: [ai('keepdims', 0)] }].map((n, k) => ({ opType: n.op, input: n.inputs, output: n.outputs, name: `n${k}`, domain: '', attribute: n.attrs ?? [] })),
      initializer: inits,
      input: Object.entries(ins).map(([name, dims]) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } })),
      output: [{ name: 'r' }],
    },
  });
}

async function runMicro(bytes: Uint8Array, feeds: Record<string, number[]>): Promise<number> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const r = mulberry32(7);
  const f: Record<string, ort.Tensor> = {};
  for (const [k, dims] of Object.entries(feeds)) {
    const size = dims.reduce((a, b) => a * b, 1);
    f[k] = new ort.Tensor('float32', Float32Array.from({ length: size }, () => Math.round(r() * 8) / 8), dims);
  }
  try {
    return await time(() => s.run(f));
  } finally {
    await s.release();
  }
}

async function microMaxPool(): Promise<[string, number][]> {
  const [N, C, H, k, s, p] = [16, 64, 112, 3, 2, 1];
  const Ho = 56;
  const x = { x: [N, C, H, H] };
  const xg = { x: [N, C, H, H], g: [N, C, Ho, Ho] };
  const mp = [ais('kernel_shape', [k, k]), ais('strides', [s, s]), ais('pads', [p, p, p, p])];
  const out: [string, number][] = [];
  out.push(['MaxPool forward', await runMicro(micro(x, [{ op: 'MaxPool', inputs: ['x'], outputs: ['y'], attrs: mp }], [], 'y'), x)]);
  out.push(['MaxPool forward with Indices', await runMicro(micro(x, [{ op: 'MaxPool', inputs: ['x'], outputs: ['y', 'i'], attrs: mp }, { op: 'Cast', inputs: ['i'], outputs: ['ic'], attrs: [ai('to', 1)] }, { op: 'Add', inputs: ['y', 'ic'], outputs: ['yi'] }], [], 'yi'), x)]);
  const zeros: N[] = [
    { op: 'Shape', inputs: ['x'], outputs: ['sx'] },
    { op: 'ConstantOfShape', inputs: ['sx'], outputs: ['z4'] },
    { op: 'Reshape', inputs: ['z4', 'flat'], outputs: ['z'] },
  ];
  // (a) ScatterElements(reduction=add) of g over the flattened Indices: chosen
  out.push(['backward: Indices + ScatterElements(add)', await runMicro(micro(xg, [
    { op: 'MaxPool', inputs: ['x'], outputs: ['y', 'i'], attrs: mp }, ...zeros,
    { op: 'Reshape', inputs: ['i', 'flat'], outputs: ['if'] }, { op: 'Reshape', inputs: ['g', 'flat'], outputs: ['gf'] },
    { op: 'ScatterElements', inputs: ['z', 'if', 'gf'], outputs: ['gx'], attrs: [ai('axis', 0), as('reduction', 'add')] },
  ], [i64('flat', [-1])], 'gx'), xg)]);
  // (b) one ScatterElements (no reduction) per class of non-overlapping windows: opset < 16
  {
    const nodes: N[] = [{ op: 'MaxPool', inputs: ['x'], outputs: ['y', 'i'], attrs: mp }];
    const inits = [i64('flat', [-1]), i64('ax', [2, 3]), i64('st', [2, 2]), i64('end', [1e9, 1e9])];
    const parts: string[] = [];
    for (const [a, b] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      inits.push(i64(`s${a}${b}`, [a, b]));
      nodes.push({ op: 'Slice', inputs: ['g', `s${a}${b}`, 'end', 'ax', 'st'], outputs: [`g${a}${b}`] }, { op: 'Slice', inputs: ['i', `s${a}${b}`, 'end', 'ax', 'st'], outputs: [`i${a}${b}`] });
      nodes.push({ op: 'Shape', inputs: ['x'], outputs: [`sx${a}${b}`] }, { op: 'ConstantOfShape', inputs: [`sx${a}${b}`], outputs: [`z4${a}${b}`] }, { op: 'Reshape', inputs: [`z4${a}${b}`, 'flat'], outputs: [`z${a}${b}`] });
      nodes.push({ op: 'Reshape', inputs: [`i${a}${b}`, 'flat'], outputs: [`if${a}${b}`] }, { op: 'Reshape', inputs: [`g${a}${b}`, 'flat'], outputs: [`gf${a}${b}`] });
      nodes.push({ op: 'ScatterElements', inputs: [`z${a}${b}`, `if${a}${b}`, `gf${a}${b}`], outputs: [`p${a}${b}`], attrs: [ai('axis', 0)] });
      parts.push(`p${a}${b}`);
    }
    nodes.push({ op: 'Sum', inputs: parts, outputs: ['gx'] });
    out.push(['backward: Indices + 4 ScatterElements (per window class)', await runMicro(micro(xg, nodes, inits, 'gx'), xg)]);
  }
  // (c) MaxUnpool per class of non-overlapping windows
  {
    const nodes: N[] = [{ op: 'MaxPool', inputs: ['x'], outputs: ['y', 'i'], attrs: mp }, { op: 'Shape', inputs: ['x'], outputs: ['sx'] }];
    const inits = [i64('ax', [2, 3]), i64('st', [2, 2]), i64('end', [1e9, 1e9])];
    const parts: string[] = [];
    for (const [a, b] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      inits.push(i64(`s${a}${b}`, [a, b]));
      nodes.push({ op: 'Slice', inputs: ['g', `s${a}${b}`, 'end', 'ax', 'st'], outputs: [`g${a}${b}`] }, { op: 'Slice', inputs: ['i', `s${a}${b}`, 'end', 'ax', 'st'], outputs: [`i${a}${b}`] });
      nodes.push({ op: 'MaxUnpool', inputs: [`g${a}${b}`, `i${a}${b}`, 'sx'], outputs: [`u${a}${b}`], attrs: mp });
      parts.push(`u${a}${b}`);
    }
    nodes.push({ op: 'Sum', inputs: parts, outputs: ['gx'] });
    out.push(['backward: Indices + 4 MaxUnpool (per window class)', await runMicro(micro(xg, nodes, inits, 'gx'), xg)]);
  }
  // (d) no Indices: per window offset, compare the strided slice of x with y, route the gradient
  //     still unclaimed to the first match, and fold the k² maps back with Col2Im
  {
    const nodes: N[] = [{ op: 'MaxPool', inputs: ['x'], outputs: ['y'], attrs: mp }, { op: 'Pad', inputs: ['x', 'xpads', 'ninf'], outputs: ['xp'] }];
    const inits: onnx.ITensorProto[] = [i64('xpads', [0, 0, p, p, 0, 0, p, p]), f32('ninf', [], Float32Array.of(-3.4e38)), f32('zero', [], Float32Array.of(0)), i64('ax', [2, 3]), i64('st', [s, s]), i64('s5', [N, C, 1, Ho, Ho]), i64('s3', [N, C * k * k, Ho * Ho]), i64('img', [H, H]), i64('blk', [k, k])];
    let rest = 'g';
    const parts: string[] = [];
    for (let u = 0; u < k * k; u++) {
      const du = Math.floor(u / k);
      const dv = u % k;
      inits.push(i64(`b${u}`, [du, dv]), i64(`e${u}`, [du + (Ho - 1) * s + 1, dv + (Ho - 1) * s + 1]));
      nodes.push({ op: 'Slice', inputs: ['xp', `b${u}`, `e${u}`, 'ax', 'st'], outputs: [`X${u}`] }, { op: 'Equal', inputs: [`X${u}`, 'y'], outputs: [`E${u}`] });
      nodes.push({ op: 'Where', inputs: [`E${u}`, rest, 'zero'], outputs: [`G${u}`] });
      if (u < k * k - 1) {
        nodes.push({ op: 'Where', inputs: [`E${u}`, 'zero', rest], outputs: [`R${u}`] });
        rest = `R${u}`;
      }
      nodes.push({ op: 'Reshape', inputs: [`G${u}`, 's5'], outputs: [`G5${u}`] });
      parts.push(`G5${u}`);
    }
    nodes.push({ op: 'Concat', inputs: parts, outputs: ['cat'], attrs: [ai('axis', 2)] }, { op: 'Reshape', inputs: ['cat', 's3'], outputs: ['cols'] });
    nodes.push({ op: 'Col2Im', inputs: ['cols', 'img', 'blk'], outputs: ['gx'], attrs: [ais('strides', [s, s]), ais('pads', [p, p, p, p])] });
    out.push(['backward: no Indices, first max via slices + Col2Im', await runMicro(micro(xg, nodes, inits, 'gx'), xg)]);
  }
  return out;
}

async function microConv(): Promise<[string, number, number, number][]> {
  const shapes: [number, number, number, number, number, number, number][] = [
    // N, C, M, H, k, stride, group
    [16, 64, 64, 56, 3, 1, 1],
    [16, 64, 256, 56, 1, 1, 1],
    [16, 96, 96, 56, 3, 1, 96],
    [16, 3, 64, 224, 7, 2, 1],
    [16, 128, 128, 28, 3, 2, 1],
    [16, 96, 96, 112, 3, 2, 96],
  ];
  const out: [string, number, number, number][] = [];
  for (const [N, C, M, H, k, s, grp] of shapes) {
    const p = (k - 1) >> 1;
    const Ho = Math.floor((H + 2 * p - k) / s) + 1;
    const r = mulberry32(3);
    const W = Float32Array.from({ length: M * (C / grp) * k * k }, () => r() - 0.5);
    const attrs = [ais('kernel_shape', [k, k]), ais('pads', [p, p, p, p]), ai('group', grp)];
    const fwd = await runMicro(micro({ x: [N, C, H, H] }, [{ op: 'Conv', inputs: ['x', 'W'], outputs: ['y'], attrs: [...attrs, ais('strides', [s, s])] }], [f32('W', [M, C / grp, k, k], W)], 'y'), { x: [N, C, H, H] });
    const op = H - (s * (Ho - 1) + k - 2 * p);
    const ct = await runMicro(micro({ g: [N, M, Ho, Ho] }, [{ op: 'ConvTranspose', inputs: ['g', 'W'], outputs: ['y'], attrs: [...attrs, ais('strides', [s, s]), ais('output_padding', [op, op])] }], [f32('W', [M, C / grp, k, k], W)], 'y'), { g: [N, M, Ho, Ho] });
    let alt: number;
    const Cg = C / grp;
    const Mg = M / grp;
    if (s === 1) {
      // flipped kernel, channels swapped per group
      const Wf = new Float32Array(W.length);
      for (let gr = 0; gr < grp; gr++) for (let m = 0; m < Mg; m++) for (let c = 0; c < Cg; c++) for (let j = 0; j < k * k; j++) Wf[((gr * Cg + c) * Mg + m) * k * k + (k * k - 1 - j)] = W[((gr * Mg + m) * Cg + c) * k * k + j];
      alt = await runMicro(micro({ g: [N, M, Ho, Ho] }, [{ op: 'Conv', inputs: ['g', 'Wf'], outputs: ['y'], attrs: [ais('kernel_shape', [k, k]), ais('pads', [k - 1 - p, k - 1 - p, k - 1 - p, k - 1 - p]), ai('group', grp)] }], [f32('Wf', [C, Mg, k, k], Wf)], 'y'), { g: [N, M, Ho, Ho] });
    } else {
      // polyphase: one stride-1 Conv with s² phase kernels per input channel, DepthToSpace, Slice
      const kk = Math.ceil(k / s);
      const S2 = s * s;
      const Wp = new Float32Array(C * S2 * Mg * kk * kk);
      for (let c = 0; c < C; c++) {
        const gr = Math.floor(c / Cg);
        const cl = c % Cg;
        for (let a = 0; a < s; a++) for (let b = 0; b < s; b++) for (let m = 0; m < Mg; m++) for (let u = 0; u < kk; u++) for (let v = 0; v < kk; v++) {
          const ku = a + (kk - 1 - u) * s;
          const kv = b + (kk - 1 - v) * s;
          if (ku < k && kv < k) Wp[(((c * S2 + a * s + b) * Mg + m) * kk + u) * kk + v] = W[(((gr * Mg + m) * Cg + cl) * k + ku) * k + kv];
        }
      }
      const qmax = Math.floor((H - 1 + p) / s);
      const pe = Math.max(0, qmax + 1 - Ho);
      alt = await runMicro(micro({ g: [N, M, Ho, Ho] }, [
        { op: 'Conv', inputs: ['g', 'Wp'], outputs: ['z'], attrs: [ais('kernel_shape', [kk, kk]), ais('pads', [kk - 1, kk - 1, pe, pe]), ai('group', grp)] },
        { op: 'DepthToSpace', inputs: ['z'], outputs: ['f'], attrs: [ai('blocksize', s), as('mode', 'CRD')] },
        { op: 'Slice', inputs: ['f', 'st', 'en', 'ax'], outputs: ['y'] },
      ], [f32('Wp', [C * S2, Mg, kk, kk], Wp), i64('st', [p, p]), i64('en', [p + H, p + H]), i64('ax', [2, 3])], 'y'), { g: [N, M, Ho, Ho] });
    }
    out.push([`${N}×${C}→${M} ${H}² k${k} s${s}${grp > 1 ? ` g${grp}` : ''}`, fwd, ct, alt]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 4. PGD-10 against PyTorch

const PY_EXPORT = `
import sys, torch, torchvision
torch.manual_seed(0)
size, out = int(sys.argv[1]), sys.argv[2]
m = torchvision.models.resnet18(num_classes=1000).eval()
torch.onnx.export(m, torch.rand(1, 3, size, size), out, opset_version=16, input_names=['input'], output_names=['logits'],
                  dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}})
`;

const PY_PGD = `
import sys, time, torch, torchvision
torch.set_num_threads(2)
torch.manual_seed(0)
size, steps, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
m = torchvision.models.resnet18(num_classes=1000).eval()
for p in m.parameters(): p.requires_grad_(False)
x0 = torch.rand(n, 3, size, size); y = torch.randint(0, 1000, (n,))
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1); std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
eps = 8 / 255; alpha = 2.5 * eps / steps
def pgd():
    x = (x0 + torch.empty_like(x0).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(m((x - mean) / std), y, reduction='sum')
        g, = torch.autograd.grad(loss, x)
        x = torch.min(torch.max(x.detach() + alpha * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    return x
pgd()
best = float('inf')
for _ in range(2):
    t = time.time(); pgd(); best = min(best, time.time() - t)
print(best)
`;

function torchAvailable(): boolean {
  try {
    execFileSync(PY, ['-c', 'import torch, torchvision'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function pgdSkeptic(file: string, size: number, steps: number, n: number): Promise<number> {
  const m = await loadModel(file, { preprocess: 'imagenet', device: 'cpu' });
  const gm = await buildGradientModel(m, { device: 'cpu' }); // default runs: 64 at 32×32, 16 at 224×224
  try {
    const D = 3 * size * size;
    const r = mulberry32(1);
    const x0 = Float32Array.from({ length: n * D }, () => r());
    const labels = Array.from({ length: n }, () => Math.floor(r() * 1000));
    const eps = 8 / 255;
    const alpha = (2.5 * eps) / steps;
    const pgd = async () => {
      const x = x0.map((v) => Math.min(1, Math.max(0, v + (2 * r() - 1) * eps)));
      for (let s = 0; s < steps; s++) {
        const { grad } = await gm.lossAndGrad({ data: x, n, channels: 3, height: size, width: size }, labels, 'ce');
        for (let i = 0; i < x.length; i++) x[i] = Math.min(1, Math.max(0, Math.min(x0[i] + eps, Math.max(x0[i] - eps, x[i] + alpha * Math.sign(grad[i])))));
      }
    };
    await pgd();
    let best = Infinity;
    for (let k = 0; k < 2; k++) {
      const t0 = performance.now();
      await pgd();
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    return best;
  } finally {
    await gm.dispose();
    await m.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  console.log(`onnxruntime-node ${ort.env.versions?.common ?? ''}, ${availableParallelism()} cores, best of ${REPEAT} after a warm-up`);
  const haveFixtures = existsSync(FIXTURES);
  const haveTorch = !args['skip-torch'] && torchAvailable();
  const tmp = mkdtempSync(join(tmpdir(), 'skeptic-bench-'));
  const sizes = args.size === 'both' ? [32, 224] : [Number(args.size)];
  const r18: Record<number, string> = {};
  try {
    if (haveTorch) {
      writeFileSync(join(tmp, 'export.py'), PY_EXPORT);
      for (const size of sizes) {
        r18[size] = join(tmp, `resnet18_${size}.onnx`);
        execFileSync(PY, [join(tmp, 'export.py'), String(size), r18[size]], { stdio: 'ignore' });
      }
    }

    // 1
    const cases: Case[] = [];
    if (haveFixtures) {
      cases.push(
        { name: 'mnist-8', file: join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), preprocess: 'unit', batch: 64 },
        { name: 'CIFAR ResNet-2B', file: join(FIXTURES, 'models/cifar10_resnet2b_advtrained.onnx'), preprocess: { mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] }, batch: 64 },
        { name: 'MobileNetV2-int8 (float shadow)', file: join(FIXTURES, 'models/imagenet_mobilenetv2-12-int8.onnx'), preprocess: 'imagenet', batch: 16 },
      );
    }
    for (const size of sizes) if (r18[size]) cases.push({ name: `ResNet-18 ${size}×${size}`, file: r18[size], preprocess: 'imagenet', batch: size === 224 ? 16 : 64 });
    if (cases.length) {
      console.log('\n1. forward+backward (lossAndGrad) vs forward (predict), same batch');
      console.log('model                              batch    predict  grad fwd only  lossAndGrad  ratio');
      for (const c of cases) {
        const t = await ratio(c);
        console.log(`${c.name.padEnd(34)} ${String(c.batch).padStart(5)} ${ms(t.predict)}     ${ms(t.shadow)} ${ms(t.grad)}  ${(t.grad / t.predict).toFixed(2)}×`);
      }
    }

    // 2
    const variantModel = r18[224] ?? r18[32] ?? (haveFixtures ? join(FIXTURES, 'models/light_resnet50_constweights.onnx') : undefined);
    if (variantModel) {
      const c: Case = { name: variantModel.split('/').pop()!, file: variantModel, preprocess: 'imagenet', batch: 16 };
      console.log(`\n2. whole-model lossAndGrad by formulation (${c.name}, batch ${c.batch})`);
      for (const [label, v] of [
        ['stride-1 Conv: flipped-kernel Conv; MaxPool: ScatterElements (default)', {}],
        ['stride-1 Conv: ConvTranspose', { conv: 'transpose' }],
        ['MaxPool: MaxUnpool per window class', { maxpool: 'unpool' }],
      ] as [string, Partial<GradientVariants>][]) {
        const t = await ratio(c, v);
        console.log(`  ${label.padEnd(72)} ${ms(t.grad)}  (${(t.grad / t.predict).toFixed(2)}× predict)`);
      }
    }

    // 3
    if (!args['skip-micro']) {
      console.log('\n3a. MaxPool 3×3/2 pad 1 on 16×64×112×112 (ResNet stem), in isolation');
      for (const [label, t] of await microMaxPool()) console.log(`  ${label.padEnd(58)} ${ms(t)}`);
      console.log('\n3b. Conv input gradient, in isolation (stride 1: flipped Conv; stride 2: polyphase Conv+DepthToSpace)');
      console.log('  shape                             forward  ConvTranspose   alternative');
      for (const [label, fwd, ct, alt] of await microConv()) console.log(`  ${label.padEnd(30)} ${ms(fwd)}    ${ms(ct)}    ${ms(alt)}`);
    }

    // 4
    if (haveTorch) {
      writeFileSync(join(tmp, 'pgd.py'), PY_PGD);
      const env = { ...process.env, ...(existsSync(TCMALLOC) ? { LD_PRELOAD: TCMALLOC } : {}) };
      console.log(`\n4. PGD-10 (L∞ 8/255, CE, random start) on 64 images, torchvision ResNet-18 (random init), best of 2 after a warm-up; Skeptic in runs of 16 (224) or 64 (32); torch ${existsSync(TCMALLOC) ? 'with tcmalloc' : 'WITHOUT tcmalloc (apt-get install -y libtcmalloc-minimal4)'}, 2 threads`);
      for (const size of sizes) {
        const sk = await pgdSkeptic(r18[size], size, 10, 64);
        const th = Number(execFileSync(PY, [join(tmp, 'pgd.py'), String(size), '10', '64'], { env }).toString().trim().split('\n').pop());
        console.log(`  ${`${size}×${size}`.padEnd(8)} Skeptic ${sk.toFixed(2)} s   PyTorch ${th.toFixed(2)} s   PyTorch/Skeptic ${(th / sk).toFixed(2)}`);
      }
    } else {
      console.log(`\n4. PGD-10 vs PyTorch: skipped (${args['skip-torch'] ? '--skip-torch' : `no torch/torchvision for ${PY}`})`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
