/**
 * Views made by ONNX Runtime graphs (server/engine/views) against the plain JavaScript
 * implementations in image/ops.ts and image/corrupt.ts, written independently as loops over
 * pixels: exact for the geometric views, within 1e-5 for the photometric ones (float32 kernels
 * against float64 sums). Then the composed session (views in front of the model, one session)
 * against model.predict on the JavaScript views, on the fixture models.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { brightness, contrast, defocusBlur, diskKernel, pixelate } from '../../server/engine/image/corrupt';
import { crop, downscale, paste, toBatch } from '../../server/engine/image/ops';
import { loadModel } from '../../server/engine/model';
import type { PixelImage } from '../../server/engine/types';
import { image, maxDiff } from './helpers/pixels';
import { makeViews, viewsFor, type ViewOp, type ViewPlan } from '../../server/engine/views';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');

/** View j of source i out of makeViews' output. */
const viewOf = (out: Float32Array, plan: ViewPlan, i: number, j: number) => {
  const per = plan.channels * plan.height * plan.width;
  return out.subarray((i * plan.ops.length + j) * per, (i * plan.ops.length + j + 1) * per);
};

for (const C of [1, 3]) {
  const H = 9;
  const W = 7;
  const m = 3;

  test(`crop views (C=${C}) are exact windows of the source`, async () => {
    const src = image(C, H + 2 * m, W + 2 * m, 11 + C);
    const ops: ViewOp[] = [];
    for (let top = 0; top <= 2 * m; top += 2) for (let left = 0; left <= 2 * m; left += 3) ops.push({ kind: 'crop', top, left });
    // a vertical sweep (one column offset): made as one gather of rows
    for (let top = 2 * m; top >= 0; top--) ops.push({ kind: 'crop', top, left: 1 });
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: m, ops };
    const out = await makeViews(plan, [{ source: src }]);
    ops.forEach((op, j) => {
      const o = op as { top: number; left: number };
      assert.deepEqual(viewOf(out, plan, 0, j), crop(src, o.top, o.left, H, W).data, `crop at ${o.top},${o.left}`);
    });
  });

  for (const [H, W] of [[9, 7], [70, 67]]) test(`embed views (C=${C}, ${H}×${W}: Slices of the pooled parities alone, ${H * W <= 4096 ? 'MatMuls' : 'an index map'} in a batch) equal paste on a 2× black canvas then 2×2 block means`, async () => {
    // Values on a 1/256 grid: sums of four are exact in float32, so the comparison can be exact.
    const src = image(C, H + 2 * m, W + 2 * m, 5 + C, 256);
    const centre = crop(src, m, m, H, W);
    const positions = [[0, 0], [H, W], [H >> 1, W >> 1], [3, 0], [0, 6], [H, 1], [2, 5], [H - 1, W - 2]];
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: m, ops: positions.map((_, slot) => ({ kind: 'embed', slot })) };
    const out = await makeViews(plan, [{ source: src, inputs: { embed: positions.flat() } }]);
    // one source (a run of its own: Slices of its four pooled parities), then two in one run (MatMuls or an index map)
    const two = await makeViews(plan, [{ source: src, inputs: { embed: positions.flat() } }, { source: src, inputs: { embed: positions.flat() } }]);
    positions.forEach(([top, left], j) => {
      const want = downscale(paste(centre, 2 * H, 2 * W, top, left, 0), 2);
      assert.deepEqual(viewOf(out, plan, 0, j), want.data, `embed at ${top},${left}, one source`);
      assert.deepEqual(viewOf(two, plan, 1, j), want.data, `embed at ${top},${left}, two sources`);
    });
  });

  test(`photometric views (C=${C}) match image/corrupt.ts within 1e-5`, async () => {
    const src = image(C, H + 2 * m, W + 2 * m, 23 + C);
    const centre = crop(src, m, m, H, W);
    const cases: Array<[ViewOp, PixelImage]> = [
      [{ kind: 'blur', kernel: diskKernel(1, 0.1) }, defocusBlur(centre, 1, 0.1)],
      [{ kind: 'blur', kernel: diskKernel(3, 0.5) }, defocusBlur(centre, 3, 0.5)],
      // a disk wider than the image: reflection wraps more than once
      [{ kind: 'blur', kernel: diskKernel(10, 0.5) }, defocusBlur(centre, 10, 0.5)],
      [{ kind: 'pixelate', factor: 0.6 }, pixelate(centre, 0.6)],
      [{ kind: 'pixelate', factor: 0.5 }, pixelate(centre, 0.5)],
      [{ kind: 'pixelate', factor: 0.25 }, pixelate(centre, 0.25)],
      [{ kind: 'brightness', delta: 0.1 }, brightness(centre, 0.1)],
      [{ kind: 'brightness', delta: 0.5 }, brightness(centre, 0.5)],
      [{ kind: 'contrast', factor: 0.4 }, contrast(centre, 0.4)],
      [{ kind: 'contrast', factor: 0.05 }, contrast(centre, 0.05)],
    ];
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: m, ops: cases.map(([op]) => op) };
    const out = await makeViews(plan, [{ source: src }]);
    cases.forEach(([op, want], j) => {
      const d = maxDiff(viewOf(out, plan, 0, j), want.data);
      assert.ok(d <= 1e-5, `${JSON.stringify(op).slice(0, 60)}: max |diff| ${d}`);
    });
  });

  test(`brightness and contrast views (C=${C}), five severities over one view axis, equal image/corrupt.ts bit for bit: 8-bit values, black and grey pixels, values outside [0, 1]`, async () => {
    const [h, w] = [40, 37];
    const src = image(C, h, w, 31 + C, 255);
    const n = h * w;
    for (let p = 0; p < n; p += 7) for (let c = 0; c < C; c++) src.data[c * n + p] = 0; // black
    for (let p = 3; p < n; p += 11) for (let c = 0; c < C; c++) src.data[c * n + p] = src.data[p]; // grey
    for (let p = 5; p < n; p += 13) src.data[(C - 1) * n + p] = p % 2 ? 1.25 : -0.5; // out of range
    const deltas = [0.1, 0.2, 0.3, 0.4, 0.5];
    const factors = [0.4, 0.3, 0.2, 0.1, 0.05];
    const ops: ViewOp[] = [...deltas.map((delta): ViewOp => ({ kind: 'brightness', delta })), ...factors.map((factor): ViewOp => ({ kind: 'contrast', factor }))];
    const plan: ViewPlan = { channels: C, height: h, width: w, margin: 0, ops };
    const out = await makeViews(plan, [{ source: src }]);
    deltas.forEach((delta, j) => assert.deepEqual(viewOf(out, plan, 0, j), brightness(src, delta).data, `brightness ${delta}`));
    factors.forEach((factor, j) => assert.deepEqual(viewOf(out, plan, 0, deltas.length + j), contrast(src, factor).data, `contrast ${factor}`));
  });

  test(`noise and given views (C=${C}); a batch of sources gives each its own views`, async () => {
    const plane = C * H * W;
    const sources = [0, 1, 2].map((i) => {
      const source = image(C, H + 2 * m, W + 2 * m, 40 + i);
      const noise = image(4, C * H, W, 50 + i).data.map((u) => Math.max(u, 1e-6));
      const given = image(1, plane, 1, 60 + i).data;
      return { source, inputs: { noise, given } };
    });
    const ops: ViewOp[] = [{ kind: 'noise', sigma: 0.3, slot: 1 }, { kind: 'given', slot: 0 }, { kind: 'noise', sigma: 0.08, slot: 0 }];
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: m, ops };
    const together = await makeViews(plan, sources);
    for (let i = 0; i < sources.length; i++) {
      const alone = await makeViews(plan, [sources[i]]);
      // vectorised Log/Cos kernels round the tail of a tensor differently: equal to float32 rounding
      assert.ok(maxDiff(together.subarray(i * 3 * plane, (i + 1) * 3 * plane), alone) <= 1e-6, `source ${i} alone and in a batch`);
      const centre = crop(sources[i].source, m, m, H, W).data;
      const { noise, given } = sources[i].inputs;
      const z = (s: number, p: number) => Math.sqrt(-2 * Math.log(noise[2 * (s * plane + p)])) * Math.cos(2 * Math.PI * noise[2 * (s * plane + p) + 1]);
      const want = (sigma: number, s: number) => centre.map((x, p) => Math.min(1, Math.max(0, x + sigma * z(s, p))));
      assert.ok(maxDiff(viewOf(alone, plan, 0, 0), want(0.3, 1)) <= 1e-5);
      assert.deepEqual(viewOf(alone, plan, 0, 1), given);
      assert.ok(maxDiff(viewOf(alone, plan, 0, 2), want(0.08, 0)) <= 1e-5);
    }
  });
}

test('noise views (a run of slots and an ood normal view) are the same at every opset the view graph is written for: 11 (Split and Squeeze with attributes), 13 (Squeeze axes as an input), 18 (Split num_outputs)', async () => {
  const ort = await import('onnxruntime-node');
  const { standaloneViewModel, VIEW_INPUT } = await import('../../server/engine/views/graph');
  const [C, H, W, m] = [3, 6, 5, 1];
  const plane = C * H * W;
  const src = image(C, H + 2 * m, W + 2 * m, 71);
  const noise = image(6, plane, 1, 72).data.map((u) => Math.max(u, 1e-6)); // 3 slots of (u1, u2) pairs
  const ops: ViewOp[] = [{ kind: 'noise', sigma: 0.1, slot: 0 }, { kind: 'noise', sigma: 0.2, slot: 1 }, { kind: 'normal', slot: 2 }];
  const plan: ViewPlan = { channels: C, height: H, width: W, margin: m, ops };
  const centre = crop(src, m, m, H, W).data;
  const z = (s: number, p: number) => Math.sqrt(-2 * Math.log(noise[2 * (s * plane + p)])) * Math.cos(2 * Math.PI * noise[2 * (s * plane + p) + 1]);
  for (const opset of [11, 13, 18]) {
    const built = standaloneViewModel(plan, opset);
    const session = await ort.InferenceSession.create(built.bytes);
    const out = (await session.run({
      [VIEW_INPUT.src]: new ort.Tensor('float32', src.data, [1, C, H + 2 * m, W + 2 * m]),
      [VIEW_INPUT.noise]: new ort.Tensor('float32', noise, [1, 3, C, H, W, 2]),
    }))[built.output].data as Float32Array;
    await session.release();
    [0.1, 0.2].forEach((sigma, s) => {
      const want = centre.map((x, p) => Math.min(1, Math.max(0, x + sigma * z(s, p))));
      assert.ok(maxDiff(viewOf(out, plan, 0, s), want) <= 1e-5, `opset ${opset}, noise slot ${s}`);
    });
    // the normal view: the image's mean and spread per channel, the third slot's normals
    const n = H * W;
    const want = new Float32Array(plane);
    for (let c = 0; c < C; c++) {
      let mu = 0;
      for (let p = 0; p < n; p++) mu += centre[c * n + p] / n;
      let v = 0;
      for (let p = 0; p < n; p++) v += (centre[c * n + p] - mu) ** 2 / n;
      for (let p = 0; p < n; p++) want[c * n + p] = Math.min(1, Math.max(0, mu + Math.sqrt(v) * z(2, c * n + p)));
    }
    assert.ok(maxDiff(viewOf(out, plan, 0, 2), want) <= 1e-5, `opset ${opset}, normal view`);
  }
});

const composedCases = [
  { name: 'mnist-8 (opset 8, batch 1 made symbolic)', model: 'models/mnist-8_onnxzoo_cntk.onnx', preprocess: 'unit', C: 1, H: 28 },
  { name: 'MobileNetV2-int8 (opset 12, ImageNet mean/std)', model: 'models/imagenet_mobilenetv2-12-int8.onnx', preprocess: 'imagenet', C: 3, H: 224 },
];
for (const c of composedCases) {
  test(`views composed with ${c.name} in one session give model.predict's scores on the JS views`, { skip: !existsSync(join(FIXTURES, c.model)) && 'no fixtures' }, async () => {
    const model = await loadModel(join(FIXTURES, c.model), { device: 'cpu', preprocess: c.preprocess });
    try {
      const m = 2;
      const H = c.H;
      const src = image(c.C, H + 2 * m, H + 2 * m, 7);
      const centre = crop(src, m, m, H, H);
      const ops: ViewOp[] = [
        { kind: 'crop', top: m, left: m },
        { kind: 'crop', top: 0, left: 2 * m },
        { kind: 'blur', kernel: diskKernel(3, 0.5) },
        { kind: 'contrast', factor: 0.3 },
        { kind: 'pixelate', factor: 0.5 },
      ];
      const plan: ViewPlan = { channels: c.C, height: H, width: H, margin: m, ops };
      const runner = await viewsFor(model, plan);
      assert.equal(runner.mode, 'composed', runner.reason);
      const got = await runner.predict([{ source: src }, { source: image(c.C, H + 2 * m, H + 2 * m, 8) }]);
      assert.equal(got.n, 2 * ops.length);
      const js = [centre, crop(src, 0, 2 * m, H, H), defocusBlur(centre, 3, 0.5), contrast(centre, 0.3), pixelate(centre, 0.5)];
      const want = await model.predict(toBatch(js));
      const K = model.info.numClasses;
      // Composing changes nothing: the scores are model.predict's on the views the plan's graph
      // makes alone. (Against the JS views the photometric ones differ by float32 rounding, which
      // an int8 model can turn into a quantisation step and a logit moved by ~1: only top-1 below.)
      const alone = await makeViews(plan, [{ source: src }]);
      const onViews = await model.predict({ data: alone, n: ops.length, channels: c.C as 1 | 3, height: H, width: H });
      const d = maxDiff(got.logits.subarray(0, ops.length * K), onViews.logits);
      const scale = Math.max(1, ...Array.from(onViews.logits, Math.abs));
      assert.ok(d <= 1e-4 * scale, `max |logit diff| ${d} (scale ${scale})`);
      for (let v = 0; v < ops.length; v++) {
        let a = 0, b = 0;
        for (let k = 1; k < K; k++) {
          if (got.logits[v * K + k] > got.logits[v * K + a]) a = k;
          if (want.logits[v * K + k] > want.logits[v * K + b]) b = k;
        }
        assert.equal(a, b, `top-1 of view ${v}`);
      }
    } finally {
      await model.dispose();
    }
  });
}

test('the composed session applies the preprocessing (ImageNet mean/std) and the int8 model\'s input QuantizeLinear to each group of views before the Concat, and once to the source for its crops, and gives model.predict\'s scores on the standalone views bit for bit', { skip: !existsSync(join(FIXTURES, composedCases[1].model)) && 'no fixtures' }, async () => {
  const { composedModel } = await import('../../server/engine/views/session');
  const { decodeModel } = await import('../../server/engine/model/onnx');
  const model = await loadModel(join(FIXTURES, composedCases[1].model), { device: 'cpu', preprocess: 'imagenet' });
  try {
    const [C, H, m] = [3 as const, 224, 2];
    const ops: ViewOp[] = [
      { kind: 'crop', top: m, left: m },
      { kind: 'brightness', delta: 0.3 },
      { kind: 'brightness', delta: 0.5 },
      { kind: 'blur', kernel: diskKernel(3, 0.5) },
      { kind: 'pixelate', factor: 0.5 },
      // crops off the centre, alone and as a vertical sweep (one Gather of rows)
      { kind: 'crop', top: 0, left: 2 * m },
      { kind: 'crop', top: 1, left: 1 },
      { kind: 'crop', top: 2 * m, left: 1 },
      { kind: 'crop', top: 0, left: 1 },
      // selections too: a tile shuffle, exact rotations; a tilt is arithmetic
      { kind: 'tiles', rows: [0, 100, 224], cols: [0, 112, 224], slot: 0 },
      { kind: 'rotate', degrees: 90 },
      { kind: 'rotate', degrees: 180 },
      { kind: 'rotate', degrees: 15 },
    ];
    const plan: ViewPlan = { channels: C, height: H, width: H, margin: m, ops };
    const built = await composedModel(model, plan, 1);
    assert.ok('bytes' in built, 'reason' in built ? built.reason : '');
    const nodes = decodeModel(built.bytes, 'composed').graph!.node ?? [];
    const model0 = nodes.filter((n) => !n.name?.startsWith('skeptic_view_'));
    assert.deepEqual(model0.filter((n) => n.name?.startsWith('skeptic_pre_')).map((n) => n.opType), [], 'the prefix Mul and Add are gone from the model');
    assert.equal(model0.filter((n) => n.opType === 'QuantizeLinear').length, 0, 'and so is its QuantizeLinear');
    // a Mul, an Add and a QuantizeLinear per group of views (the two brightness views together,
    // the blur, the pixelate, the tilt) and one on the source, which the five crops, the tile
    // shuffle and the exact rotations select from; then a Concat of bytes
    const reads = (op: string, name: string) => nodes.filter((n) => n.name?.startsWith('skeptic_view_') && n.opType === op && n.input?.includes(name)).length;
    assert.equal(reads('Mul', 'skeptic_pre_a'), 5);
    assert.equal(reads('Add', 'skeptic_pre_b'), 5);
    assert.equal(reads('QuantizeLinear', 'input_scale'), 5);
    assert.equal(nodes.filter((n) => n.opType === 'Mul' && n.input?.includes('skeptic_view_src')).length, 1, 'the source goes through the prefix');
    const src = image(C, H + 2 * m, H + 2 * m, 91, 255);
    const runner = await viewsFor(model, plan);
    assert.equal(runner.mode, 'composed', runner.reason);
    const inputs = { perm: [2, 0, 3, 1] };
    const got = await runner.predict([{ source: src, inputs }]);
    const alone = await makeViews(plan, [{ source: src, inputs }]);
    const want = await model.predict({ data: alone, n: ops.length, channels: C, height: H, width: H });
    assert.deepEqual(got.logits, want.logits);
  } finally {
    await model.dispose();
  }
});

test('corruption views equal image/corrupt.ts with the same seed: same noise draws, same JPEG, same blur; ImageNet-C\'s other seven and the extras (CIFAR constants at 12 px, ImageNet-C\'s at 70 px)', async () => {
  const { CORRUPTIONS: MAIN, EXTRA_CORRUPTIONS, corrupt } = await import('../../server/engine/image/corrupt');
  const CORRUPTIONS = [...MAIN, ...EXTRA_CORRUPTIONS];
  const { corruptionViews } = await import('../../server/engine/views/corruptions');
  const { derivedSeed, mulberry32 } = await import('../../server/engine/random');
  for (const [C, H] of [[1, 12], [3, 70]] as const) {
    const src = image(C, H, H, 99 + C, 255);
    const list = CORRUPTIONS.flatMap((name) => [1, 3, 5].map((s): [typeof name, number] => [name, s]));
    const made = corruptionViews(list, H, H);
    const seed = (name: string, s: number) => derivedSeed(7, `corruptions/${name}/${s}`, 'sha');
    const plan: ViewPlan = { channels: C, height: H, width: H, margin: 0, ops: made.ops };
    const out = await makeViews(plan, [{ source: src, inputs: await made.inputs(src, seed) }]);
    for (let j = 0; j < list.length; j++) {
      const [name, s] = list[j];
      const want = await corrupt(src, name, s, mulberry32(seed(name, s)));
      const d = maxDiff(viewOf(out, plan, 0, j), want.data);
      assert.ok(d <= 1e-5, `${name} severity ${s} at ${C}×${H}×${H}: max |diff| ${d}`);
    }
  }
});

test('per-image corruption inputs given back with recycle() and filled for another image equal a fresh set bit for bit (every value is written again), every corruption and the extras', async () => {
  const { CORRUPTIONS: MAIN, EXTRA_CORRUPTIONS } = await import('../../server/engine/image/corrupt');
  const { corruptionViews } = await import('../../server/engine/views/corruptions');
  const { derivedSeed } = await import('../../server/engine/random');
  for (const [C, H] of [[1, 12], [3, 70]] as const) {
    const list = [...MAIN, ...EXTRA_CORRUPTIONS].flatMap((name) => [1, 3, 5].map((s): [typeof name, number] => [name, s]));
    const seed = (k: number) => (name: string, s: number) => derivedSeed(k, `corruptions/${name}/${s}`, 'sha');
    // a set made for a bright image and given back, then filled for a dark one
    const pooled = corruptionViews(list, H, H);
    const first = await pooled.inputs(image(C, H, H, 1, 255), seed(1));
    for (const v of Object.values(first)) (v as Float32Array).fill(7); // anything left over would show
    pooled.recycle(first);
    const again = await pooled.inputs(image(C, H, H, 2, 255), seed(2));
    assert.equal(again, first, 'the given-back set is reused');
    const fresh = await corruptionViews(list, H, H).inputs(image(C, H, H, 2, 255), seed(2));
    assert.deepEqual(Object.keys(again).sort(), Object.keys(fresh).sort());
    for (const k of Object.keys(fresh) as Array<keyof typeof fresh>) {
      const a = again[k] as ArrayLike<number>;
      const b = fresh[k] as ArrayLike<number>;
      assert.equal(a.length, b.length, `${k} length`);
      let firstDiff = -1;
      for (let i = 0; i < b.length && firstDiff < 0; i++) if (!Object.is(a[i], b[i])) firstDiff = i;
      assert.equal(firstDiff, -1, `${C}×${H}×${H} ${String(k)}: value ${firstDiff} differs`);
    }
  }
});

test('elastic views smooth the drawn field in the graph (MatMuls with the folded Gaussian when the kernel is long, reflect-padded Convs when not), the severities as one run (in any order: fields grouped by σ), and give image/imagenet-c.ts elastic within 1e-5, H ≠ W, every severity, two images in one batch', async () => {
  const { corrupt } = await import('../../server/engine/image/corrupt');
  const { corruptionViews } = await import('../../server/engine/views/corruptions');
  const { mulberry32 } = await import('../../server/engine/random');
  const { gaussianWeights } = await import('../../server/engine/image/imagenet-c');
  const { severityConstant } = await import('../../server/engine/image/corrupt');
  for (const [C, H, W, order] of [[3, 70, 90, [1, 2, 3, 4, 5]], [1, 90, 70, [3, 1, 5, 2, 4]], [1, 20, 24, [1, 2, 3, 4, 5]]] as const) {
    const list = order.map((s): ['elastic_transform', number] => ['elastic_transform', s]);
    // both smoothing paths are exercised at the ImageNet-C sizes
    const wide = list.map(([, s]) => gaussianWeights((severityConstant('elastic_transform', s, H, W) as number[])[1], 3).length > Math.min(H, W));
    if (H === 70) assert.deepEqual(wide, [true, false, false, false, false]);
    const made = corruptionViews(list, H, W);
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: made.ops };
    const srcs = [image(C, H, W, 5, 255), image(C, H, W, 6, 255)];
    const seed = (_: string, s: number) => 31 * s + H;
    const out = await makeViews(plan, await Promise.all(srcs.map(async (src, i) => ({ source: src, inputs: await made.inputs(src, (n, s) => seed(n, s) + i) }))));
    for (let i = 0; i < srcs.length; i++) {
      for (let j = 0; j < list.length; j++) {
        const want = await corrupt(srcs[i], 'elastic_transform', list[j][1], mulberry32(seed('', list[j][1]) + i));
        const d = maxDiff(viewOf(out, plan, i, j), want.data);
        assert.ok(d <= 1e-5, `${C}×${H}×${W} image ${i} severity ${list[j][1]}: max |diff| ${d}`);
      }
    }
  }
});

test('tile views equal patches.ts shuffleTiles (equal tiles) and ood.ts patchShuffle (unequal tiles) exactly', async () => {
  const { shuffleTiles, tiling, derangement } = await import('../../server/engine/probes/patches');
  const { patchShuffle, tileBorders } = await import('../../server/engine/probes/ood');
  const { mulberry32, shuffleInPlace } = await import('../../server/engine/random');
  for (const [C, H, W] of [[1, 28, 28], [3, 13, 10]] as const) {
    const src = image(C, H, W, 3 + H);
    const ops: ViewOp[] = [];
    const perm: number[] = [];
    const want: PixelImage[] = [];
    for (const g of [2, 4, 8]) {
      if (g > Math.min(H, W)) continue;
      const ty = tiling(H, g);
      const tx = tiling(W, g);
      const p = derangement(g * g, mulberry32(g));
      ops.push({ kind: 'tiles', rows: Array.from({ length: g + 1 }, (_, i) => ty.offset + i * ty.size), cols: Array.from({ length: g + 1 }, (_, i) => tx.offset + i * tx.size), slot: ops.length });
      perm.push(...p);
      want.push(shuffleTiles(src, g, p));
    }
    // ood's unequal tiles: the same rng drives both (the permutation within each size group)
    const g = 4;
    const rows = tileBorders(H, g);
    const cols = tileBorders(W, g);
    const groups = new Map<string, number[]>();
    for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) {
      const key = `${rows[r + 1] - rows[r]}x${cols[c + 1] - cols[c]}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(r * g + c);
    }
    const rng = mulberry32(77);
    const source = new Array<number>(g * g);
    for (const members of groups.values()) {
      const p = shuffleInPlace([...members], rng);
      members.forEach((dst, k) => (source[dst] = p[k]));
    }
    ops.push({ kind: 'tiles', rows, cols, slot: ops.length });
    perm.push(...source);
    want.push(patchShuffle(src, g, mulberry32(77)));
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops };
    const out = await makeViews(plan, [{ source: src, inputs: { perm } }]);
    want.forEach((w, j) => assert.deepEqual(viewOf(out, plan, 0, j), w.data, `tiles view ${j} at ${C}×${H}×${W}`));
  }
});

test('patch views equal patches.ts patchOnCanvas with the mean colour or a grey, bit for bit, alone and in runs', async () => {
  const { canvasFill, patchOnCanvas } = await import('../../server/engine/probes/patches');
  const src = image(3, 12, 9, 31);
  src.data[5] = 0; // a black pixel inside the first patches
  // runs of the same fill (the first three, then two greys) are one computation; the last is alone
  const cases: Array<[number, number, number, 'mean' | number]> = [[0, 0, 0, 'mean'], [0, 0, 3, 'mean'], [9, 6, 3, 'mean'], [4, 2, 5, 0.5], [2, 1, 4, 0.5], [0, 0, 0, 0.25]];
  const plan: ViewPlan = { channels: 3, height: 12, width: 9, margin: 0, ops: cases.map(([top, left, size, fill]) => ({ kind: 'patch', top, left, size, fill })) };
  const out = await makeViews(plan, [{ source: src }, { source: image(3, 12, 9, 32) }]);
  cases.forEach(([top, left, size, fill], j) => {
    assert.deepEqual(viewOf(out, plan, 0, j), patchOnCanvas(src, top, left, size, canvasFill(src, fill)).data, `patch ${size} at ${top},${left} fill ${fill}`);
  });
});

test('ood views equal ood.ts: inversion, rotations (exact at 90° and 180°, bilinear tilts), noise with the image statistics', async () => {
  const { borderMean, gaussianNoise, invert, rotate180, rotate90, rotateAbout } = await import('../../server/engine/probes/ood');
  const { gaussianUniforms, mulberry32 } = await import('../../server/engine/random');
  for (const [C, H, W] of [[1, 28, 28], [3, 11, 11], [3, 9, 12]] as const) {
    const src = image(C, H, W, 1 + H + W);
    const plan: ViewPlan = {
      channels: C, height: H, width: W, margin: 0,
      ops: [{ kind: 'invert' }, { kind: 'rotate', degrees: 90 }, { kind: 'rotate', degrees: 180 }, { kind: 'rotate', degrees: 15 }, { kind: 'rotate', degrees: 45 }, { kind: 'rotate', degrees: 60 }, { kind: 'normal', slot: 0 }],
    };
    const out = await makeViews(plan, [{ source: src, inputs: { noise: gaussianUniforms(5, C * H * W) } }]);
    const exact = [invert(src), rotate90(src), rotate180(src)];
    exact.forEach((w, j) => {
      if (j === 1 && H !== W) assert.ok(maxDiff(viewOf(out, plan, 0, j), w.data) <= 1e-6);
      else assert.deepEqual(viewOf(out, plan, 0, j), w.data, `view ${j} at ${C}×${H}×${W}`);
    });
    [15, 45, 60].forEach((deg, i) => {
      const d = maxDiff(viewOf(out, plan, 0, 3 + i), rotateAbout(src, deg, borderMean(src)).data);
      assert.ok(d <= 1e-6, `tilt ${deg} at ${C}×${H}×${W}: ${d}`);
    });
    const d = maxDiff(viewOf(out, plan, 0, 6), gaussianNoise(src, mulberry32(5)).data);
    assert.ok(d <= 1e-5, `noise with the image statistics: ${d}`);
  }
});

test('a one-source graph carries one channel of a rotation\'s index map and each patch\'s rows and columns, not whole planes (ONNX Runtime folds them)', async () => {
  const { standaloneViewModel } = await import('../../server/engine/views/graph');
  const { decodeModel } = await import('../../server/engine/model/onnx');
  const [C, H, W] = [3, 64, 64];
  const ops: ViewOp[] = [{ kind: 'rotate', degrees: 15 }, { kind: 'rotate', degrees: 90 }];
  for (let k = 0; k < 8; k++) ops.push({ kind: 'patch', top: 8 * k, left: 4 * k, size: 8, fill: 'mean' });
  const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops };
  const graph = decodeModel(standaloneViewModel(plan, 13, true).bytes, 'views').graph!;
  const elements = (t: { dims?: Array<number | { toNumber(): number }> | null }) => (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1);
  const largest = Math.max(...graph.initializer!.map(elements));
  assert.ok(largest <= H * W, `largest constant ${largest} values, more than one plane (${H * W})`);
  // and the views are still the plain implementations': the rotations ood.ts makes, the patches patches.ts makes
  const { borderMean, rotate90, rotateAbout } = await import('../../server/engine/probes/ood');
  const { canvasFill, patchOnCanvas } = await import('../../server/engine/probes/patches');
  const src = image(C, H, W, 7);
  const out = await makeViews(plan, [{ source: src }]);
  const tilt = maxDiff(viewOf(out, plan, 0, 0), rotateAbout(src, 15, borderMean(src)).data);
  assert.ok(tilt <= 1e-6, `tilt 15: ${tilt}`);
  assert.deepEqual(viewOf(out, plan, 0, 1), rotate90(src).data);
  for (let k = 0; k < 8; k++) assert.deepEqual(viewOf(out, plan, 0, 2 + k), patchOnCanvas(src, 8 * k, 4 * k, 8, canvasFill(src, 'mean')).data, `patch ${k}`);
});

test('the ood and patches probes\' views of a source are the same alone in a run (constant index maps, Slices) and beside another (maps expanded to the batch)', async () => {
  const { oodViews, GENERATED_SETS } = await import('../../server/engine/probes/ood');
  const { derivedSeed } = await import('../../server/engine/random');
  for (const [C, H, W] of [[3, 13, 10], [1, 28, 28]] as const) {
    const views = oodViews([...GENERATED_SETS], C, H, W, 4);
    const ops: ViewOp[] = [...views.ops, { kind: 'tiles', rows: [1, 5, 9], cols: [0, 3, 6, 9], slot: 1 }];
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops };
    const sources = [0, 1].map((i) => {
      const source = image(C, H, W, 90 + i);
      const inputs = views.inputs(source, (set) => derivedSeed(4 + i, `ood/${set}`, 'sha'));
      return { source, inputs: { ...inputs, perm: [...Array.from(inputs.perm!), ...[[5, 2, 3, 4, 0, 1], [1, 4, 0, 5, 3, 2]][i]] } };
    });
    const both = await makeViews(plan, sources);
    for (let i = 0; i < 2; i++) {
      const alone = await makeViews(plan, [sources[i]]);
      ops.forEach((op, j) => {
        const d = maxDiff(viewOf(both, plan, i, j), viewOf(alone, plan, 0, j));
        // Box–Muller's vectorised Log/Cos round a tensor's tail differently; the rest is exact
        assert.ok(op.kind === 'normal' ? d <= 1e-6 : d === 0, `${op.kind} view ${j} of source ${i} at ${C}×${H}×${W}: ${d}`);
      });
    }
  }
});

test('the ood probe\'s input sets given back are reused and written again whole: the values of fresh ones', async () => {
  const { GENERATED_SETS, oodViews } = await import('../../server/engine/probes/ood');
  const { derivedSeed } = await import('../../server/engine/random');
  const views = oodViews([...GENERATED_SETS], 3, 13, 10, 4);
  const src = image(3, 13, 10, 7);
  const seed = (k: number) => (set: string) => derivedSeed(k, `ood/${set}`, 'sha');
  const want = (k: number) => {
    const v = oodViews([...GENERATED_SETS], 3, 13, 10, 4).inputs(src, seed(k));
    return { given: Array.from(v.given!), noise: Array.from(v.noise!), perm: Array.from(v.perm!) };
  };
  const first = views.inputs(src, seed(1));
  first.given!.fill(Number.NaN);
  first.noise!.fill(Number.NaN);
  views.recycle(first);
  const again = views.inputs(src, seed(2));
  assert.equal(again, first, 'the set given back is the one filled');
  assert.deepEqual({ given: Array.from(again.given!), noise: Array.from(again.noise!), perm: Array.from(again.perm!) }, want(2));
});

test('the ood probe\'s views equal generateOod for every set with the same seed', async () => {
  const { GENERATED_SETS, generateOod, oodViews } = await import('../../server/engine/probes/ood');
  const { derivedSeed } = await import('../../server/engine/random');
  for (const [C, H, W] of [[1, 28, 28], [3, 13, 10]] as const) {
    const src = image(C, H, W, 2 + H);
    const views = oodViews([...GENERATED_SETS], C, H, W, 8);
    const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: views.ops };
    const out = await makeViews(plan, [{ source: src, inputs: views.inputs(src, (set) => derivedSeed(3, `ood/${set}`, 'sha')) }]);
    GENERATED_SETS.forEach((set, j) => {
      const d = maxDiff(viewOf(out, plan, 0, j), generateOod(set, src, 3, 'sha', 8).data);
      assert.ok(d <= 1e-5, `${set} at ${C}×${H}×${W}: ${d}`);
    });
  }
});

test('the default audit gives the same report at batch sizes 5 and 32, at any view run size (one source per run, several, all of a batch) and with the model whole or in slices of a run', { skip: !existsSync(join(FIXTURES, 'mnist')) && 'no fixtures' }, async () => {
  const { audit } = await import('../../server/engine/audit');
  const { openDataset } = await import('../../server/engine/data');
  const { createProbes, DEFAULT_PROBES } = await import('../../server/engine/probes');
  const { setModelChunkRows, setViewRunPasses, sourcesPerRun } = await import('../../server/engine/views');
  const model = await loadModel(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), { device: 'cpu', preprocess: 'unit' });
  try {
    const reports = [];
    // run passes: sized from the input (all of a batch's sources in one run here), 1 (each
    // source alone), 100 (a few sources per run, the last run of a batch shorter); model
    // slices of 100 rows: the runs of all of a batch in 7–12 slices, those of 100 passes in one
    for (const [batchSize, passes, chunkRows] of [[5, undefined, undefined], [32, undefined, undefined], [32, 1, undefined], [24, 100, undefined], [32, undefined, 100]] as const) {
      setViewRunPasses(passes);
      setModelChunkRows(chunkRows);
      const ds = await openDataset(join(FIXTURES, 'mnist'), { limit: 24 });
      const r = await audit(model, ds, { probes: createProbes(DEFAULT_PROBES, { patches: { evidenceRate: 0.5 } }), batchSize, seed: 3 });
      reports.push(r);
    }
    setViewRunPasses(undefined);
    setModelChunkRows(undefined);
    for (const r of reports.slice(1)) {
      for (const id of DEFAULT_PROBES) {
        assert.equal(reports[0].probes[id].status, 'ok', `${id}: ${reports[0].probes[id].reason}`);
        assert.deepEqual(reports[0].probes[id].metrics, r.probes[id].metrics, `${id} metrics`);
        assert.deepEqual(reports[0].probes[id].records, r.probes[id].records, `${id} records`);
      }
      assert.deepEqual(reports[0].findings, r.findings);
    }
    // the run sizes those audits used: a 12-view plan (ood's shape) on 28×28 takes 64 sources
    // sized from the input (the whole batch), 1 at one pass per run, 8 (96 passes) at 100
    const plan = (views: number): ViewPlan => ({ channels: 1, height: 28, width: 28, margin: 0, ops: Array.from({ length: views }, () => ({ kind: 'invert' }) as ViewOp) });
    assert.equal(sourcesPerRun(plan(12)), 64);
    setViewRunPasses(1);
    assert.equal(sourcesPerRun(plan(12)), 1);
    setViewRunPasses(100);
    assert.equal(sourcesPerRun(plan(12)), 8);
    setViewRunPasses(undefined);
    // and the slices: mnist-8 composes with its model in 7 copies for that plan at 100 rows
    const { composedModel } = await import('../../server/engine/views/session');
    setModelChunkRows(100);
    const built = await composedModel(model, plan(12), 64);
    assert.ok('bytes' in built, 'reason' in built ? built.reason : '');
    assert.equal(built.chunks, 7);
  } finally {
    setViewRunPasses(undefined);
    setModelChunkRows(undefined);
    await model.dispose();
  }
});

test('view runs are sized by forward passes: at most 2^20 input values, whole sources, at least one source, runs of nearly equal size', async () => {
  const { balancedStep, runPasses, sourcesPerRun } = await import('../../server/engine/views');
  const plan = (C: number, H: number, W: number, views: number): ViewPlan => ({ channels: C, height: H, width: W, margin: 0, ops: Array.from({ length: views }, () => ({ kind: 'invert' }) as ViewOp) });
  // mnist-8: 1,337 passes; a 76-view plan (corruptions) takes 17 sources (1,292 passes), a
  // 43-view one (shift) 31, a 12-view one the cap of 64
  assert.equal(runPasses(plan(1, 28, 28, 1)), Math.floor(2 ** 20 / 784));
  assert.equal(sourcesPerRun(plan(1, 28, 28, 76)), 17);
  assert.equal(sourcesPerRun(plan(1, 28, 28, 43)), 31);
  assert.equal(sourcesPerRun(plan(1, 28, 28, 12)), 64);
  // CIFAR size: 341 passes; ImageNet size: 6, so every image runs alone with all its views
  assert.equal(sourcesPerRun(plan(3, 32, 32, 41)), 8);
  assert.equal(sourcesPerRun(plan(3, 224, 224, 41)), 1);
  assert.equal(sourcesPerRun(plan(3, 224, 224, 2)), 3);
  // a batch of 32 at 31 per run: two runs of 16 (not 31 and 1); at 17: two of 16; at 64: one;
  // at 1: 32 of 1; 33 at 16: three of 11
  assert.equal(balancedStep(32, 31), 16);
  assert.equal(balancedStep(32, 17), 16);
  assert.equal(balancedStep(32, 64), 32);
  assert.equal(balancedStep(32, 1), 1);
  assert.equal(balancedStep(33, 16), 11);
  assert.equal(balancedStep(0, 16), 1);
});

test('the CPU-made corruption views (shot noise with cached Poisson constants, impulse noise, glass blur\'s shuffle) equal image/corrupt.ts bit for bit, written in place or not', async () => {
  const { impulseNoise, shotNoise } = await import('../../server/engine/image/corrupt');
  const { glassPermutation } = await import('../../server/engine/image/imagenet-c');
  const { glassShuffle, impulse, shot } = await import('../../server/engine/views/corruptions');
  const { mulberry32 } = await import('../../server/engine/random');
  // k/255 values (the cached path), arbitrary values (computed per value), and values outside [0, 1]
  for (const quantum of [255, 0]) {
    const r = mulberry32(quantum + 1);
    const data = Float32Array.from({ length: 3 * 40 * 40 }, () => {
      const u = r() * 1.2 - 0.1;
      return quantum ? Math.round(u * quantum) / quantum : u;
    });
    const img = { data, channels: 3 as const, height: 40, width: 40 };
    // rates on both sides of λ = 10 (inversion below, PTRS above) and far above
    for (const rate of [60, 25, 12, 5, 3, 0.5, 500]) {
      assert.deepEqual(shot(data, rate, rate * 7), shotNoise(img, rate, mulberry32(rate * 7)).data, `shot noise at rate ${rate}, quantum ${quantum}`);
    }
    for (const amount of [0.03, 0.27, 0.9]) {
      assert.deepEqual(impulse(data, amount, 11), impulseNoise(img, amount, mulberry32(11)).data, `impulse noise ${amount}, quantum ${quantum}`);
    }
    // into a part of a larger buffer, as corruptionViews writes them
    const big = new Float32Array(3 * data.length).fill(7);
    shot(data, 12, 5, big.subarray(data.length, 2 * data.length));
    assert.deepEqual(big.subarray(data.length, 2 * data.length), shotNoise(img, 12, mulberry32(5)).data);
    assert.ok(big.subarray(0, data.length).every((v) => v === 7) && big.subarray(2 * data.length).every((v) => v === 7), 'nothing written outside its place');
  }
  // glass blur's sequential "swaps": ImageNet-C's (σ, delta, iterations) at 224 px and CIFAR's at 32 px
  for (const [H, W, d, it] of [[224, 224, 1, 2], [224, 200, 3, 2], [32, 32, 2, 1], [9, 7, 1, 3]]) {
    assert.deepEqual(glassShuffle(H, W, d, it, 1234 + d), glassPermutation(H, W, d, it, mulberry32(1234 + d)), `${H}×${W} delta ${d} iterations ${it}`);
  }
});

test('blur kernels split into outer products exactly (diskKernel: one term per distinct row width); a kernel that does not split is convolved directly', async () => {
  const { separable } = await import('../../server/engine/views/graph');
  const { reflect101, severityConstant } = await import('../../server/engine/image/corrupt');
  // ImageNet-C's five radii at 224×224: 3, 4, 5, 6, 7 terms
  const terms = [1, 2, 3, 4, 5].map((s) => {
    const [r, a] = severityConstant('defocus_blur', s, 224, 224) as [number, number];
    const k = diskKernel(r, a);
    const split = separable(k.size, k.weights);
    assert.ok(split, `severity ${s} splits`);
    for (let y = 0; y < k.size; y++) for (let x = 0; x < k.size; x++) {
      let v = 0;
      split.cols.forEach((c, l) => (v += c[y] * split.rows[l][x]));
      assert.ok(Math.abs(v - k.weights[y * k.size + x]) < 1e-15, `severity ${s} weight ${y},${x}`);
    }
    return split.rows.length;
  });
  assert.deepEqual(terms, [3, 4, 5, 6, 7]);
  // a kernel of full rank: no split; the view is then a direct convolution
  const size = 5;
  const r = image(1, size, size, 3).data;
  assert.equal(separable(size, r), undefined);
  const C = 3, H = 11, W = 8;
  const src = image(C, H, W, 8);
  const plan: ViewPlan = { channels: C, height: H, width: W, margin: 0, ops: [{ kind: 'blur', kernel: { size, weights: r } }] };
  const out = await makeViews(plan, [{ source: src }]);
  const h = (size - 1) / 2;
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let dy = 0; dy < size; dy++) for (let dx = 0; dx < size; dx++) s += r[dy * size + dx] * src.data[(c * H + reflect101(y + dy - h, H)) * W + reflect101(x + dx - h, W)];
    const want = Math.min(1, Math.max(0, s));
    assert.ok(Math.abs(out[(c * H + y) * W + x] - want) <= 1e-5, `direct blur at ${c},${y},${x}`);
  }
});

test('JPEG views of one-channel images, written into arrays that held other values, are sharp\'s round trip of each image', async () => {
  const { jpegView } = await import('../../server/engine/views/corruptions');
  const { toBytes } = await import('../../server/engine/image/files');
  const sharp = (await import('sharp')).default;
  // sizes that are and are not whole 8×8 blocks (libjpeg pads an edge by repeating it)
  for (const [H, W, n] of [[28, 28, 3], [13, 9, 2]] as const) {
    for (const quality of [80, 50, 10]) {
      const imgs = Array.from({ length: n }, (_, k) => image(1, H, W, 100 * H + 10 * k + quality, k % 2 ? 255 : 0));
      const together = imgs.map(() => new Float32Array(H * W).fill(0.25));
      await Promise.all(imgs.map((img, k) => jpegView(img, quality, undefined, together[k])));
      for (let k = 0; k < n; k++) {
        const encoded = await sharp(toBytes(imgs[k]), { raw: { width: W, height: H, channels: 1 } }).jpeg({ quality, optimiseCoding: false }).toBuffer();
        const { data, info } = await sharp(encoded).raw().toBuffer({ resolveWithObject: true });
        const want = Float32Array.from({ length: H * W }, (_, p) => data[p * info.channels] / 255);
        assert.deepEqual(together[k], want, `${H}×${W} image ${k} at quality ${quality}`);
      }
    }
  }
});

for (const c of composedCases) {
  test(`a view session asked for the penultimate features of ${c.name} gives the feature tap's features of its views, from the same run as the scores`, { skip: !existsSync(join(FIXTURES, c.model)) && 'no fixtures' }, async () => {
    const { openTap } = await import('../../server/engine/ood/compose');
    const model = await loadModel(join(FIXTURES, c.model), { device: 'cpu', preprocess: c.preprocess });
    const tap = await openTap(model);
    try {
      assert.ok(tap.runner, tap.error);
      const m = 2;
      const H = c.H;
      const plan: ViewPlan = { channels: c.C, height: H, width: H, margin: m, ops: [{ kind: 'crop', top: m, left: m }, { kind: 'invert' }, { kind: 'rotate', degrees: 15 }] };
      const runner = await viewsFor(model, plan, { tensor: tap.tensor, quant: tap.quant });
      assert.equal(runner.mode, 'composed', runner.reason);
      assert.ok(runner.features);
      const sources = [{ source: image(c.C, H + 2 * m, H + 2 * m, 17) }, { source: image(c.C, H + 2 * m, H + 2 * m, 18) }];
      const got = await runner.predict(sources);
      const views = await makeViews(plan, sources);
      const want = await tap.runner!.run(views, got.n);
      assert.ok(got.feats, 'features returned');
      assert.equal(got.feats.dims, want.dims);
      const scale = Math.max(1, ...Array.from(want.data, Math.abs));
      assert.ok(maxDiff(got.feats.data, want.data) <= 1e-5 * scale, `features: max |diff| ${maxDiff(got.feats.data, want.data)}`);
      assert.ok(maxDiff(got.logits, want.output!) <= 1e-5 * Math.max(1, ...Array.from(want.output!, Math.abs)), 'scores of the same run');
      // without features the same plan is another runner, with the scores alone
      const plain = await viewsFor(model, plan);
      assert.equal(plain.features, false);
      assert.equal((await plain.predict(sources)).feats, undefined);
    } finally {
      await tap.runner?.release();
      await model.dispose();
    }
  });
}

test('the model\'s front nodes the view graph takes over: elementwise, each the sole reader, constant operands of rank ≤ 3, a QuantizeLinear only per tensor, never a tensor the caller asked for', async () => {
  const { prefixNodes } = await import('../../server/engine/views/session');
  type Init = { name: string; dataType: number; dims: number[]; floatData?: number[]; int32Data?: number[] };
  const f32 = (name: string, dims: number[]): Init => ({ name, dataType: 1, dims, floatData: new Array<number>(dims.reduce((a, b) => a * b, 1)).fill(0.5) });
  const node = (opType: string, input: string[], output: string) => ({ opType, input, output: [output], name: output, domain: '' });
  const graph = (nodes: ReturnType<typeof node>[], inits: Init[]) => ({ node: nodes, initializer: inits, output: [{ name: 'y' }] });
  const inits = [f32('a', [3, 1, 1]), f32('b', [3, 1, 1]), f32('s', []), { name: 'z', dataType: 2, dims: [], int32Data: [128] } as Init, f32('s3', [3]), f32('a4', [1, 3, 1, 1])];
  const ops = (r: ReturnType<typeof prefixNodes>) => r?.post.map((p) => p.opType) ?? [];
  const chain = [node('Mul', ['px', 'a'], 'm'), node('Add', ['m', 'b'], 'p'), node('QuantizeLinear', ['p', 's', 'z'], 'q'), node('QLinearConv', ['q', 's', 'z'], 'y')];
  const all = prefixNodes(graph(chain, inits), 'px');
  assert.deepEqual(ops(all), ['Mul', 'Add', 'QuantizeLinear']);
  assert.equal(all!.output, 'q');
  assert.deepEqual(all!.post[1].input, [null, 'b']);
  assert.equal(all!.onSource, true, 'per-channel and scalar constants: the nodes may run on the (larger) source');
  // a constant that varies over rows and columns (a mean image) is taken, but not onto the source
  const meanImage = prefixNodes(graph([node('Sub', ['px', 'img'], 'm'), node('Relu', ['m'], 'y')], [...inits, f32('img', [3, 2, 2])]), 'px');
  assert.deepEqual(ops(meanImage), ['Sub']);
  assert.equal(meanImage!.onSource, false);
  // the flowing tensor as Mul's second operand
  assert.deepEqual(ops(prefixNodes(graph([node('Mul', ['a', 'px'], 'm'), node('Relu', ['m'], 'y')], inits), 'px')), ['Mul']);
  // a second reader of the pixels, or of a tensor on the way: nothing past it (the last tensor
  // taken may have several readers: the view graph makes it)
  assert.deepEqual(ops(prefixNodes(graph([...chain, node('Relu', ['px'], 'r')], inits), 'px')), []);
  assert.deepEqual(ops(prefixNodes(graph([...chain, node('Relu', ['m'], 'r')], inits), 'px')), ['Mul']);
  assert.deepEqual(ops(prefixNodes(graph([...chain, node('Relu', ['p'], 'r')], inits), 'px')), ['Mul', 'Add']);
  // a per-channel QuantizeLinear (its axis would read the view axis), a rank-4 constant, Sub with the pixels second
  assert.deepEqual(ops(prefixNodes(graph([chain[0], chain[1], node('QuantizeLinear', ['p', 's3', 'z'], 'q'), chain[3]], inits), 'px')), ['Mul', 'Add']);
  assert.deepEqual(ops(prefixNodes(graph([node('Mul', ['px', 'a4'], 'm'), node('Relu', ['m'], 'y')], inits), 'px')), []);
  assert.deepEqual(ops(prefixNodes(graph([node('Sub', ['a', 'px'], 'm'), node('Relu', ['m'], 'y')], inits), 'px')), []);
  // an operand that is not a constant
  assert.deepEqual(ops(prefixNodes(graph([node('Add', ['px', 'other'], 'm'), node('Relu', ['m'], 'y')], inits), 'px')), []);
  // a tensor the caller asked for (a feature) stays in the model
  assert.deepEqual(ops(prefixNodes(graph(chain, inits), 'px', ['p'])), ['Mul']);
});
