/**
 * P1, the attack probe, on fake linear models where the answers are known by hand, with the
 * gradient model injected (the real one is tested on the fixtures in attack-fixtures.test.ts).
 *
 * The model: two classes on a 3×4×4 image, z = W·x + b with v = w₁ − w₀ and b₁ − b₀ = −½Σv.
 * The image x = ½ − s·sign(v) (all pixels well inside [0,1]) has z₀ − z₁ = s·‖v‖₁, so with label 0
 * its minimal L∞ adversarial distance is exactly s (δ = s·sign(v)), and FGSM and PGD both find
 * an adversarial at ε exactly when ε > s. Images (natural grid 1, 2, 4, 8 /255; largeEps 0.5):
 *   A  s = 0.5/255   broken at every ε ⇒ masks 0b1111; minimal ε ≈ 0.5/255 ⇒ invisible-flip finding
 *   B  s = 3/255     broken at 4/255, 8/255 ⇒ 0b1100; minimal ε ≈ 3/255
 *   C  s = 20/255    robust on the grid, broken at 0.5 ⇒ 0; bisected in [8/255, 0.5] ⇒ ≈ 20/255
 *   D  s = −0.1, label 0: misclassified already ⇒ 'wrong', not attacked
 * PGD L2 likewise with the L2 distance s·‖v‖₁/‖v‖₂. Clean accuracy 3/4; PGD robust accuracy [A broken] 2/4, 2/4, [B too] 1/4, 1/4; median
 * minimal ε (A, B, C) ≈ 3/255.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import type { LossKind } from '../../server/engine/attacks/base';
import { audit } from '../../server/engine/audit';
import { cleanProbe } from '../../server/engine/probes/clean';
import { GradientUnsupportedError } from '../../server/engine/model/gradient';
import { attackProbe, eps255, type AttackDeps, type AttackRecord, type GradientModelLike } from '../../server/engine/probes/attack';
import type { Probe, ProbeImage, ProbeRecord } from '../../server/engine/probes/probe';
import type { ImageEntry } from '../../server/engine/report/schema';
import { mulberry32 } from '../../server/engine/random';
import type { PixelBatch, PixelImage } from '../../server/engine/types';
import { fakeDataset, fakeModel } from './helpers/fake';

const C = 3;
const H = 4;
const W = 4;
const D = C * H * W;
const rng = mulberry32(42);
const w0 = Array.from({ length: D }, () => rng() * 2 - 1);
const w1 = Array.from({ length: D }, () => rng() * 2 - 1);
const v = w1.map((w, j) => w - w0[j]);
const b = [0, -0.5 * v.reduce((a, x) => a + x, 0)];
const logitsOf = (x: ArrayLike<number>, off = 0) => [w0, w1].map((w, c) => w.reduce((a, wj, j) => a + wj * x[off + j], b[c]));

const linearModel = () => fakeModel({ channels: C, height: H, width: W, numClasses: 2, logits: (px) => logitsOf(px), labels: ['cat', 'dog'] });

/** The exact gradient of the linear model's loss; `zero` masks it (a gradient-masking model). */
function linearGradient(opts: { zero?: boolean } = {}): GradientModelLike & { disposed: number; built: number } {
  const g = {
    disposed: 0,
    built: 1,
    coverage: { notes: [] as string[] },
    async lossAndGrad(batch: PixelBatch, labels: ArrayLike<number>, loss: LossKind) {
      const logits = new Float32Array(batch.n * 2);
      const lossOut = new Float32Array(batch.n);
      const grad = new Float32Array(batch.n * D);
      for (let i = 0; i < batch.n; i++) {
        const z = logitsOf(batch.data, i * D);
        const y = labels[i];
        logits.set(z, i * 2);
        const other = 1 - y;
        const p = 1 / (1 + Math.exp(z[y] - z[other]));
        const coef = loss === 'ce' ? p : 1; // both: coef · (w_other − w_y)
        lossOut[i] = loss === 'ce' ? Math.log1p(Math.exp(z[other] - z[y])) : z[other] - z[y];
        if (opts.zero) continue;
        for (let j = 0; j < D; j++) grad[i * D + j] = coef * (y === 0 ? v[j] : -v[j]);
      }
      return { logits, loss: lossOut, grad };
    },
    async dispose() {
      g.disposed++;
    },
  };
  return g;
}

function deps(opts: { zero?: boolean } = {}): AttackDeps & { grads: ReturnType<typeof linearGradient>[] } {
  const d = {
    grads: [] as ReturnType<typeof linearGradient>[],
    async buildGradientModel() {
      const g = linearGradient(opts);
      d.grads.push(g);
      return g;
    },
  };
  return d;
}

const imageAt = (s: number): PixelImage => ({ data: Float32Array.from(v, (vj) => 0.5 - s * Math.sign(vj)), channels: C, height: H, width: W });
function probeImage(image: number, s: number, label?: number): ProbeImage {
  const px = imageAt(s);
  return { image, record: { index: image, id: `img${image}`, file: `/d/img${image}.png` }, sha256: `h${image}`, label, pixels: px, context: px, margin: 0 };
}
const entries = (images: ProbeImage[]): ImageEntry[] => images.map((im) => ({ id: im.record.id, uri: `file:///d/${im.record.id}`, path: im.record.id, label: im.label }));
const withImage = <R>(recs: R[]) => recs.map((r, i) => ({ ...r, image: i })) as ProbeRecord<R>[];
const summaryCtx = (model: ReturnType<typeof linearModel>, images: ProbeImage[]) => ({ model, seed: 0, images: entries(images), className: (i: number) => ['cat', 'dog'][i] });

const S = [0.5 / 255, 3 / 255, 20 / 255];

test('records and metrics match the hand-worked linear case', async () => {
  const model = linearModel();
  const d = deps();
  // The legacy attacks, each on every image (preset 'custom'; the default is the AutoAttack
  // protocol, tested in probe-attack-protocol.test.ts).
  const probe = attackProbe({ preset: 'custom', queries: 400 }, d);
  const images = [...S.map((s, i) => probeImage(i, s, 0)), probeImage(3, -0.1, 0)];
  const recs = await probe.run(images, { model, seed: 0 });

  assert.deepEqual(recs.map((r) => r.status), ['attacked', 'attacked', 'attacked', 'wrong']);
  assert.deepEqual(recs.map((r) => r.pgd), [0b1111, 0b1100, 0, undefined]);
  assert.deepEqual(recs.map((r) => r.fgsm), [0b1111, 0b1100, 0, undefined], 'FGSM is optimal on a linear model');
  assert.equal(recs[2].square, 0, 'nothing can break C on the grid');
  assert.equal(recs[0].square! & 0b1110, 0b1110, 'Square breaks A at 2/255 and up');
  assert.deepEqual(recs.map((r) => r.large), [true, true, true, undefined]);
  // Minimal ε within the bisection tolerance, from above: bracket / 2^7.
  const tol = [1 / 255 / 128, 2 / 255 / 128, (0.5 - 8 / 255) / 128];
  recs.slice(0, 3).forEach((r, i) => {
    assert.ok(r.minEps! >= S[i] && r.minEps! - S[i] <= tol[i], `image ${i}: ${r.minEps! * 255}/255 vs ${S[i] * 255}/255`);
    assert.equal(r.minEpsBy, 'pgd');
    assert.equal(r.advLabel, 1);
    assert.ok(r.advConf! >= 0.5 && r.advConf! < 0.6, `just across the boundary: ${r.advConf}`);
  });
  assert.equal(recs[0].queries!.length, 4);
  assert.ok(recs[2].queries!.every((q) => q === 400), 'Square spends its budget where it fails');
  assert.equal(recs[3].minEps, undefined);

  const summary = await probe.summarize(withImage(recs), summaryCtx(model, images));
  const m = summary.metrics as any;
  assert.equal(m.cleanAccuracy, 0.75);
  assert.deepEqual(m.robustAccuracy.pgd, [0.5, 0.5, 0.25, 0.25]);
  assert.deepEqual(m.robustAccuracy.fgsm, [0.5, 0.5, 0.25, 0.25]);
  assert.deepEqual(m.successRate.pgd, [0.333333, 0.333333, 0.666667, 0.666667]);
  assert.equal(m.robustAccuracyAtLargeEps, 0);
  assert.ok(m.medianMinEps255 >= 3 && m.medianMinEps255 - 3 <= 1 / 64 + 1e-4);
  assert.equal(m.minEpsFound, 3);
  assert.equal(m.attacked, 3);
  assert.equal(m.alreadyWrong, 1);
  assert.equal(m.domain, 'natural');
  assert.deepEqual(m.eps255, [1, 2, 4, 8]);
  assert.equal(m.whiteBox.available, true);
  assert.equal(m.meanQueries.length, 4);
  // PGD L2: the L2 distance is s·‖v‖₁/‖v‖₂ (A ≈ 0.01, B ≈ 0.07, C ≈ 0.46 here); grid 0.25, 0.5, 1.
  const ratio = v.reduce((a, x) => a + Math.abs(x), 0) / Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  const l2Mask = (s: number) => [0.25, 0.5, 1].reduce((mask, e, k) => {
    assert.ok(Math.abs(e - s * ratio) > 0.02 * e, 'no grid ε within the random start’s 1.3% of the distance');
    return e > s * ratio ? mask | (1 << k) : mask;
  }, 0);
  assert.deepEqual(recs.map((r) => r.pgdL2), [...S.map(l2Mask), undefined]);

  // One per-image finding: A, flipped by half a grey level. No sanity warning on a linear model.
  assert.deepEqual(summary.findings.map((f) => [f.rule, f.image]), [['attack/invisible-flip', 0]]);
  assert.match(summary.findings[0].message, /at most 0\.5\d\/255 per pixel \(L∞, PGD\) turns 'cat' \(\d+\.\d%\) into 'dog' \(5\d\.\d%\)/);
  assert.deepEqual(summary.render, [0, 1, 2], 'smallest minimal ε first');
  assert.match(summary.headline, /^clean 75\.0%; robust \(PGD L∞\) 50\.0% at 1\/255, 50\.0% at 2\/255, 25\.0% at 4\/255, 25\.0% at 8\/255; median minimal ε 3\.0\/255$/);
  assert.equal(d.grads.length, 1, 'one gradient model per audit');
  assert.equal(d.grads[0].disposed, 1, 'summarize releases it');
});

test('records depend only on the image, the seed and the params, not on the batch around it', async () => {
  const model = linearModel();
  const probe = attackProbe({ queries: 200, attacks: ['pgd-linf', 'square'], bisectionSteps: 3 }, deps());
  const images = S.map((s, i) => probeImage(i, s, 0));
  const all = await probe.run(images, { model, seed: 5 });
  const alone = await probe.run([images[1]], { model, seed: 5 });
  assert.deepEqual(alone[0], all[1]);
  const again = await probe.run(images, { model, seed: 5 });
  assert.deepEqual(again, all);
  assert.equal(all[0].fgsm, undefined, 'only the attacks asked for run');
  assert.equal(all[0].pgdL2, undefined);
});

test('unlabelled images are attacked against their own prediction; maxImages is the cap the audit applies', async () => {
  const model = linearModel();
  const probe = attackProbe({ attacks: ['fgsm'], maxImages: 3, bisectionSteps: 2 }, deps());
  assert.equal(probe.imageLimit!(model), 3);
  const images = [probeImage(0, -0.1, 0), probeImage(1, 3 / 255), probeImage(2, 3 / 255, 0), probeImage(3, 3 / 255, 0)];
  const recs = await probe.run(images, { model, seed: 0 });
  assert.deepEqual(recs.map((r) => r.status), ['wrong', 'attacked', 'attacked', 'attacked']);
  assert.equal(recs[1].fgsm, 0b1100);
  assert.equal(recs[1].large, undefined, 'FGSM alone: no large-ε run');
  // The audit hands the probe the first three images only.
  const s = await probe.summarize(withImage(recs.slice(0, 3)), summaryCtx(model, images));
  const m = s.metrics as any;
  // Labelled among those: images 0 (wrong) and 2 (robust up to 2/255).
  assert.equal(m.labelled, 2);
  assert.equal(m.cleanAccuracy, 0.5);
  assert.deepEqual(m.robustAccuracy.fgsm, [0.5, 0.5, 0, 0]);
  assert.equal(m.notAttacked, 1);
  assert.equal(m.robustAccuracyAtLargeEps, null);
});

test('without a gradient the probe runs Square alone and names the ops that blocked it', async () => {
  class GradientUnsupportedError extends Error {
    constructor(readonly ops: string[]) {
      super(`no gradient rule for ${ops.join(', ')}`);
      this.name = 'GradientUnsupportedError';
    }
  }
  const model = linearModel();
  const probe = attackProbe({ attacks: ['pgd-linf'], queries: 300 }, {
    async buildGradientModel() {
      throw new GradientUnsupportedError(['NonMaxSuppression', 'Loop']);
    },
  });
  const images = S.map((s, i) => probeImage(i, s, 0));
  const recs = await probe.run(images, { model, seed: 0 });
  assert.deepEqual(recs[0].whiteBox, { ops: ['Loop', 'NonMaxSuppression'], error: 'no gradient rule for NonMaxSuppression, Loop' });
  assert.equal(recs[0].pgd, undefined);
  assert.equal(recs[0].square! & 0b1110, 0b1110, 'Square ran although only PGD was asked for');
  assert.equal(recs[2].square, 0);
  // Minimal ε without a gradient: the smallest grid ε Square broke (no bisection).
  assert.equal(recs[0].minEpsBy, 'square');
  assert.ok([1 / 255, 2 / 255].includes(recs[0].minEps!));
  assert.equal(recs[2].minEps, 0.5, 'C falls to Square at largeEps');
  const s = await probe.summarize(withImage(recs), summaryCtx(model, images));
  const m = s.metrics as any;
  assert.deepEqual(m.whiteBox.blockedBy, ['Loop', 'NonMaxSuppression']);
  assert.equal(m.whiteBox.available, false);
  assert.equal(m.robustAccuracy.pgd, null);
  const f = s.findings.find((x) => x.rule === 'attack/white-box-unavailable')!;
  assert.equal(f.severity, 'info');
  assert.equal(f.image, undefined);
  assert.match(f.message, /No gradient rule for Loop, NonMaxSuppression: the white-box attacks \(PGD\) did not run/);
  assert.match(s.headline, /robust \(Square L∞\).*\(black-box only\)$/);
});

test('the real GradientUnsupportedError: its op types reach the report', async () => {
  const model = linearModel();
  const err = new GradientUnsupportedError('/m/fake.onnx', [{ op: 'TopK', nodes: ['t1', 't2'] }, { op: 'Loop', nodes: ['l'] }]);
  const probe = attackProbe({ attacks: ['fgsm', 'square'], queries: 50, largeEps: 0 }, {
    async buildGradientModel() {
      throw err;
    },
  });
  const images = [probeImage(0, 3 / 255, 0)];
  const recs = await probe.run(images, { model, seed: 0 });
  assert.deepEqual(recs[0].whiteBox, { ops: ['Loop', 'TopK'], error: err.message });
  const s = await probe.summarize(withImage(recs), summaryCtx(model, images));
  assert.match(s.findings[0].message, /^No gradient rule for Loop, TopK/);
});

test('a masked gradient that Square sees through: "gradient masking suspected" and "robust at large ε"', async () => {
  const model = linearModel();
  const probe = attackProbe({ attacks: ['fgsm', 'pgd-linf', 'square'], queries: 300 }, deps({ zero: true }));
  // Distances 1.5/255 .. 3/255: PGD's random start alone never crosses (its ±ε noise is
  // orthogonal to v on average), Square does from 4/255.
  const images = [1.5, 2, 2.5, 3].map((s, i) => probeImage(i, s / 255, 0));
  const recs = await probe.run(images, { model, seed: 0 });
  assert.ok(recs.every((r) => r.pgd === 0 && r.fgsm === 0), 'a zero gradient breaks nothing');
  assert.ok(recs.every((r) => (r.square! & 0b1100) === 0b1100), 'Square breaks all at 4/255 and 8/255');
  const s = await probe.summarize(withImage(recs), summaryCtx(model, images));
  const rules = s.findings.map((f) => f.rule);
  assert.ok(rules.includes('attack/gradient-masking'), rules.join());
  const f = s.findings.find((x) => x.rule === 'attack/gradient-masking')!;
  assert.equal(f.severity, 'warning');
  assert.match(f.message, /Gradient masking suspected: at ε = 4\/255 the black-box Square Attack breaks 4 of 4 images, the white-box attacks \(FGSM, PGD\) only 0/);
  // At largeEps = 0.5 PGD's random start alone breaks these (±0.5 noise dwarfs their margins):
  // no large-ε warning here.
  assert.equal((s.metrics as any).robustAccuracyAtLargeEps, 0);

  // Far images (s = 0.45: every pixel 0.05 from the box edge, the adversarial corner within
  // ε = 0.5): a working gradient breaks them at 0.5, a masked one does not.
  const far = [0, 1, 2].map((i) => probeImage(i, 0.45, 0));
  for (const zero of [true, false]) {
    const p = attackProbe({ attacks: ['pgd-linf'], bisectionSteps: 0 }, deps({ zero }));
    const r = await p.run(far, { model, seed: 0 });
    const sum = await p.summarize(withImage(r), summaryCtx(model, far));
    assert.equal((sum.metrics as any).robustAccuracyAtLargeEps, zero ? 1 : 0);
    const large = sum.findings.find((x) => x.rule === 'attack/robust-at-large-eps');
    assert.equal(large !== undefined, zero);
    if (large) assert.match(large.message, /Robust accuracy is still 100\.0% at ε = 0\.5 \(127\.5\/255\), where every pixel may move half the range/);
  }
});

test('robust accuracy rising with ε is a warning (synthetic records)', async () => {
  const model = linearModel();
  const probe = attackProbe({ preset: 'custom' }, deps());
  const images = [0, 1, 2, 3].map((i) => probeImage(i, 0.1, 0));
  // PGD breaks images at 2/255 that it does not at 4/255: accuracy 25% → 75%.
  const rec = (pgdMask: number): AttackRecord => ({ pred: 0, conf: 0.9, status: 'attacked', pgd: pgdMask, fgsm: 0, large: true, minEps: 0.1 });
  const recs = [rec(0b1010), rec(0b1010), rec(0b1110), rec(0b1000)];
  const s = await probe.summarize(withImage(recs), summaryCtx(model, images));
  assert.deepEqual((s.metrics as any).robustAccuracy.pgd, [1, 0.25, 0.75, 0]);
  const f = s.findings.find((x) => x.rule === 'attack/accuracy-rises-with-eps')!;
  assert.match(f.message, /PGD L∞: 25\.0% at ε = 2\/255 but 75\.0% at ε = 4\/255/);
  assert.ok(!s.findings.some((x) => x.rule === 'attack/robust-at-large-eps'));
});

test('digits get the digit grid; ε parameters accept k/255', async () => {
  const digit = fakeModel({ height: 28, width: 28, numClasses: 10, logits: () => new Array(10).fill(0) });
  const grid = async (params: Record<string, unknown>, model = digit) => {
    const s = await attackProbe(params).summarize([], { model, seed: 0, images: [], className: String });
    return [(s.metrics as any).domain, (s.metrics as any).eps];
  };
  assert.deepEqual(await grid({}), ['digits', { linf: [0.1, 0.2, 0.3], l2: [1, 2, 3] }]);
  assert.deepEqual(await grid({ domain: 'natural' }), ['natural', { linf: [1 / 255, 2 / 255, 4 / 255, 8 / 255], l2: [0.25, 0.5, 1] }]);
  assert.deepEqual((await grid({}, linearModel()))[0], 'natural', '3 channels');
  const maxImages = async (model: typeof digit) =>
    ((await attackProbe().summarize([], { model, seed: 0, images: [], className: String })).metrics as any).maxImages;
  assert.equal(await maxImages(digit), 100);
  assert.equal(await maxImages(fakeModel({ channels: 3, height: 224, width: 224, numClasses: 2, logits: () => [0, 0] })), 16);
  const p = attackProbe({ eps: ['8/255', 0.01, '1/255'], epsL2: '0.5, 1' });
  assert.deepEqual(p.params.eps, [1 / 255, 0.01, 8 / 255]);
  assert.deepEqual(p.params.epsL2, [0.5, 1]);
  assert.equal(attackProbe().params.eps, 'auto');
  assert.throws(() => attackProbe({ attacks: ['cw'] }), /attack\.attacks/);
  assert.throws(() => attackProbe({ eps: [2] }), /above 1/);
  assert.equal(eps255(1 / 255), '1/255');
  assert.equal(eps255(0.3), '76.5/255');
  assert.equal(eps255(0.5 / 255), '0.50/255');
});

test('audit end to end: render re-runs the attack at the minimal ε and writes PNGs and one .npy', async () => {
  const out = mkdtempSync(join(tmpdir(), 'skeptic-attack-'));
  try {
    const model = linearModel();
    const d = deps();
    const probe = attackProbe({ attacks: ['pgd-linf'], renderImages: 2 }, d);
    const items = [...S, 1 / 255].map((s, i) => ({ id: `i${i}.png`, label: 0, image: imageAt(s) }));
    const report = await audit(model, fakeDataset(items), { probes: [cleanProbe(), probe as Probe<object>], outDir: out, batchSize: 3 });
    const res = report.probes.attack;
    assert.equal(res.status, 'ok');
    // The two smallest minimal ε: image 0 (0.5/255) and image 3 (1/255); they sit in different
    // stream batches, so render is called twice and the .npy is rewritten with both.
    const arts = res.records.map((r) => r.artifacts ?? null);
    assert.deepEqual(arts[0], ['artifacts/attack/0-original.png', 'artifacts/attack/0-adversarial.png', 'artifacts/attack/0-perturbation.png', 'artifacts/attack/adversarial.npy']);
    assert.equal(arts[1], null);
    assert.equal(arts[3]![0], 'artifacts/attack/3-original.png');
    for (const f of arts[0]!) assert.ok(existsSync(join(out, f)), f);
    const meta = await sharp(join(out, 'artifacts/attack/0-perturbation.png')).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [128, 128, 3]);
    // The finding about image 0 carries the artifacts.
    const f = report.findings.find((x) => x.rule === 'attack/invisible-flip' && x.subject.image === 0)!;
    assert.deepEqual(f.artifacts, arts[0]);

    const npy = readFileSync(join(out, 'artifacts/attack/adversarial.npy'));
    const hl = npy.readUInt16LE(8);
    assert.match(npy.subarray(10, 10 + hl).toString('latin1'), /'shape': \(2, 3, 4, 4\)/);
    const advs = new Float32Array(npy.buffer.slice(npy.byteOffset + 10 + hl, npy.byteOffset + npy.length));
    const idx = readFileSync(join(out, 'artifacts/attack/adversarial-images.npy'));
    const il = idx.readUInt16LE(8);
    assert.deepEqual([...new Float32Array(idx.buffer.slice(idx.byteOffset + 10 + il, idx.byteOffset + idx.length))], [0, 3]);
    // Each row is the adversarial found at the stored minimal ε: misclassified, within ε.
    [0, 3].forEach((img, row) => {
      const rec = res.records[img] as unknown as AttackRecord;
      const x = imageAt([...S, 1 / 255][img]).data;
      const adv = advs.subarray(row * D, (row + 1) * D);
      const z = logitsOf(adv);
      assert.ok(z[1] > z[0], `row ${row} is adversarial`);
      let m = 0;
      for (let j = 0; j < D; j++) m = Math.max(m, Math.abs(adv[j] - x[j]));
      assert.ok(m <= rec.minEps!);
    });
    // The run's gradient model and each render call's are all released.
    assert.ok(d.grads.length >= 2 && d.grads.every((g) => g.disposed === 1));

    // Records survive the results cache: a second audit reads them all and reports the same.
    const cacheDir = join(out, 'cache');
    const first = await audit(model, fakeDataset(items), { probes: [attackProbe({ attacks: ['pgd-linf'] }, deps()) as Probe<object>], cacheDir });
    const again = await audit(model, fakeDataset(items), { probes: [attackProbe({ attacks: ['pgd-linf'] }, deps()) as Probe<object>], cacheDir });
    assert.equal(again.run.cache.hits, items.length);
    assert.deepEqual(again.probes.attack.records, first.probes.attack.records);
    assert.deepEqual(again.probes.attack.metrics, first.probes.attack.metrics);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
