/**
 * Hendrycks' common corruptions (image/corrupt.ts holds the definitions and the constant table)
 * as views: defocus blur, pixelation, brightness and contrast become graph ops; Gaussian noise
 * becomes a graph op (Box–Muller) fed with the uniforms gaussian() would draw; shot noise (Poisson, whose number of draws
 * depends on the pixel), impulse noise (a tight loop) and JPEG (image/corrupt.ts jpeg()) are made on the CPU and fed as given
 * views. The draws come from the caller's per-image, per-corruption-and-severity seed (mulberry32) exactly as
 * image/corrupt.ts draws them, so a view is the same image (to float32 rounding) whichever path
 * made it: the report does not change. ImageNet-C's other corruptions and the extras use the ops
 * of views/imagenet-c.ts, with their per-image draws (glass blur's shuffle, fog's plasma, frost's
 * texture crop, elastic's affine taps and field uniforms) made here; motion blur, snow and spatter
 * are made whole on the CPU. Every CPU-made plane is written in place in the per-image inputs.
 */
import { diskKernel, jpeg, jpegBlocksOf, logFactorial, severityConstant, SMALL_MAX_SIDE, type CorruptionName, type CorruptOptions } from '../image/corrupt';
import type { JpegBlocks } from '../image/jpeg';
import { toBytes } from '../image/files';
import { frostLayer, frostTextures } from '../image/frost';
import { elasticDraws, fogLayer, motionBlur, snow, zoomFactors } from '../image/imagenet-c';
import { spatter } from '../image/spatter';
import { shotKernel, type ShotTables } from '../wasm/kernels';
import { drawsInto, gaussianUniforms, mulberry32, MULBERRY_STEP, mulberryUnit } from '../random';
import type { PixelImage } from '../types';
import { keepForReuse, type ViewInputs, type ViewOp } from './plan';

export interface CorruptionViews {
  /** One view per (corruption, severity), in the order given. */
  ops: ViewOp[];
  /** The per-image inputs those views read. */
  inputs(img: PixelImage, seed: (name: CorruptionName, severity: number) => number): Promise<ViewInputs>;
  /** Gives inputs() result back once its run is over, to be filled again for a later image. */
  recycle(inputs: ViewInputs): void;
}

/** What the makers of one image share, made on first use: its 8-bit interleaved bytes and what
 *  JPEG's round trip computes before the quality counts (image/corrupt.ts jpegBlocksOf), the
 *  same for its five qualities. */
type Shared = { bytes: () => Buffer; blocks: () => JpegBlocks | undefined };

/** A view's CPU part for a noise or given slot, written into `into` (its place in the input): no plane allocated and copied per view. */
type Made = { slot: 'noise' | 'given'; make: (img: PixelImage, seed: number, into: Float32Array, shared: Shared) => void | Promise<void> };

/** The planes of an ImageNet-C view's CPU part, at their places in the per-image inputs. */
type Into = { layer: Float32Array; index: Int32Array; weight: Float32Array };

/** The CPU part of an ImageNet-C view (views/imagenet-c.ts): per-image planes drawn with the seed, written into fixed planes. */
type MadeC = {
  name: CorruptionName;
  severity: number;
  /** First plane of each input it writes, and how many. */
  at: Partial<Record<keyof Into, [number, number]>>;
  make: (img: PixelImage, seed: number, into: Partial<Into>) => void | Promise<void>;
};

/**
 * The views of `list` (corruption, severity) on images of height × width, and the makers of their
 * per-image inputs. `sharedMemory`: the inputs' arrays live in SharedArrayBuffers (the views' worker
 * threads, views/workers.ts: a set moves between threads without a transfer, see there).
 */
export function corruptionViews(list: Array<[CorruptionName, number]>, height: number, width: number, opts: CorruptOptions = {}, sharedMemory = false): CorruptionViews {
  // the memory of n 4-byte values (float32 or int32)
  const memory = (n: number) => (sharedMemory ? new SharedArrayBuffer(4 * n) : new ArrayBuffer(4 * n));
  const ops: ViewOp[] = [];
  const made: Array<{ name: CorruptionName; severity: number } & Made> = [];
  const madeC: MadeC[] = [];
  const planes = { layer: 0, index: 0, weight: 0 };
  const small = Math.min(height, width) <= SMALL_MAX_SIDE;
  let noise = 0;
  let given = 0;
  for (const [name, severity] of list) {
    const c = severityConstant(name, severity, height, width);
    const t = c as number[];
    switch (name) {
      // ImageNet-C's other corruptions: the draws here (in image/imagenet-c.ts's order), the arithmetic in the graph
      case 'glass_blur': {
        const index = planes.index++;
        ops.push({ kind: 'glass', sigma: t[0], index });
        madeC.push({ name, severity, at: { index: [index, 1] }, make: (img, seed, into) => void glassShuffle(img.height, img.width, t[1], t[2], seed, into.index) });
        break;
      }
      case 'zoom_blur':
        ops.push({ kind: 'zoom', factors: zoomFactors(t[0], t[1]) });
        break;
      case 'fog': {
        const slot = planes.layer++;
        ops.push({ kind: 'fog', strength: t[0], slot });
        madeC.push({ name, severity, at: { layer: [slot, 1] }, make: (img, seed, into) => {
          // the plane once, then copied to the other channels, in place
          const n = img.height * img.width;
          fogLayer(img.height, img.width, t[1], mulberry32(seed), into.layer!.subarray(0, n));
          for (let ch = 1; ch < img.channels; ch++) into.layer!.copyWithin(ch * n, 0, n);
        } });
        break;
      }
      case 'frost': {
        const slot = planes.layer++;
        ops.push({ kind: 'frost', a: t[0], b: t[1], slot });
        madeC.push({ name, severity, at: { layer: [slot, 1] }, make: async (img, seed, into) => {
          const textures = await frostTextures(img.height, img.width, small, opts.frostDir);
          frostLayer(img.channels, img.height, img.width, textures, mulberry32(seed), into.layer);
        } });
        break;
      }
      case 'elastic_transform': {
        // the affine warp's taps and the displacement field's uniform draws; the graph smooths the field
        const index = planes.index;
        const weight = planes.weight;
        planes.index += 4;
        planes.weight += 6;
        ops.push({ kind: 'elastic', index, weight, alpha: t[0], sigma: t[1] });
        madeC.push({ name, severity, at: { index: [index, 4], weight: [weight, 6] }, make: (img, seed, into) => void elasticDraws(img.height, img.width, t, mulberry32(seed), into.index, into.weight) });
        break;
      }
      case 'motion_blur':
        // CPU-made: the blur's direction is drawn per image (see views/imagenet-c.ts)
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed, into) => void motionBlur(img, t[0], t[1], mulberry32(seed), into) });
        break;
      case 'snow':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed, into) => void snow(img, t, mulberry32(seed), into) });
        break;
      case 'spatter':
        // CPU-made: its liquid layer is drawn per pixel and runs through Canny, a distance transform and
        // histogram equalisation (image/spatter.ts) before it is mixed in
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed, into) => into.set(spatter(img, t, mulberry32(seed)).data) });
        break;
      case 'speckle_noise':
        ops.push({ kind: 'speckle', sigma: c as number, slot: noise++ });
        made.push({ name, severity, slot: 'noise', make: (img, seed, into) => void gaussianUniforms(seed, img.data.length, into as Float32Array<ArrayBuffer>) });
        break;
      case 'gaussian_blur':
        ops.push({ kind: 'gaussian', sigma: c as number });
        break;
      case 'saturate':
        ops.push({ kind: 'saturate', scale: t[0], shift: t[1] });
        break;
      case 'gaussian_noise':
        ops.push({ kind: 'noise', sigma: c as number, slot: noise++ });
        made.push({ name, severity, slot: 'noise', make: (img, seed, into) => void gaussianUniforms(seed, img.data.length, into as Float32Array<ArrayBuffer>) });
        break;
      case 'shot_noise':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed, into) => void shot(img.data, c as number, seed, into) });
        break;
      case 'impulse_noise':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, seed, into) => void impulse(img.data, c as number, seed, into) });
        break;
      case 'jpeg_compression':
        ops.push({ kind: 'given', slot: given++ });
        made.push({ name, severity, slot: 'given', make: (img, _seed, into, shared) => jpegView(img, c as number, shared, into) });
        break;
      case 'defocus_blur': {
        const [radius, alias] = c as [number, number];
        ops.push({ kind: 'blur', kernel: diskKernel(radius, alias) });
        break;
      }
      case 'pixelate':
        ops.push({ kind: 'pixelate', factor: c as number });
        break;
      case 'brightness':
        ops.push({ kind: 'brightness', delta: c as number });
        break;
      case 'contrast':
        ops.push({ kind: 'contrast', factor: c as number });
        break;
    }
  }
  const counts = { ...planes };
  const kept: ViewInputs[] = [];
  let keptPlane = 0;
  return {
    ops,
    recycle(inputs) {
      keepForReuse(kept, inputs);
    },
    async inputs(img, seed) {
      const plane = img.data.length;
      if (plane !== keptPlane) {
        kept.length = 0;
        keptPlane = plane;
      }
      // Every value of a reused set is written again below: each view's maker fills its whole
      // place (views.test.ts checks reused sets against fresh ones, bit for bit).
      const reused = kept.pop();
      const out: ViewInputs = reused ?? {};
      if (noise && !reused) out.noise = new Float32Array(memory(noise * plane * 2));
      if (given && !reused) out.given = new Float32Array(memory(given * plane));
      const k = { noise: 0, given: 0 };
      const work: Array<void | Promise<void>> = [];
      let bytes: Buffer | undefined;
      let blocks: { of: JpegBlocks | undefined } | undefined;
      const shared: Shared = { bytes: () => (bytes ??= toBytes(img)), blocks: () => (blocks ??= { of: jpegBlocksOf(img, shared.bytes()) }).of };
      for (const m of made) {
        const len = m.slot === 'noise' ? 2 * plane : plane;
        const at = k[m.slot]++ * len;
        work.push(m.make(img, seed(m.name, m.severity), out[m.slot]!.subarray(at, at + len), shared));
      }
      if (madeC.length) {
        const n = img.height * img.width;
        const per = { layer: plane, index: n, weight: n };
        if (counts.layer && !reused) out.layer = new Float32Array(memory(counts.layer * per.layer));
        if (counts.index && !reused) out.index = new Int32Array(memory(counts.index * per.index));
        if (counts.weight && !reused) out.weight = new Float32Array(memory(counts.weight * per.weight));
        for (const m of madeC) {
          const into: Partial<Into> = {};
          for (const key of ['layer', 'index', 'weight'] as const) {
            const at = m.at[key];
            if (at) (into as Record<string, Float32Array | Int32Array>)[key] = out[key]!.subarray(at[0] * per[key], (at[0] + at[1]) * per[key]);
          }
          work.push(m.make(img, seed(m.name, m.severity), into));
        }
      }
      await Promise.all(work);
      return out;
    },
  };
}

// Module-level constants, not import aliases: under tsx (tests, benchmarks) an imported function is
// called through the module object on every call, which kept V8 from inlining it into the loops
// below (impulse noise and glass blur's shuffle ran 6× slower); a bundle calls it directly either way.
const unit = mulberryUnit;
const STEP = MULBERRY_STEP;

/**
 * image/corrupt.ts's impulseNoise with mulberry32(seed) inlined: the same draws in the same order
 * (one per value, a second for the salt-or-pepper choice when the first is below `amount`). The
 * state is a local, not a closure's variable: several times faster.
 */
export function impulse(x: Float32Array, amount: number, seed: number, out: Float32Array = new Float32Array(x.length)): Float32Array {
  let a = seed >>> 0;
  for (let i = 0; i < x.length; i++) {
    a = (a + STEP) >>> 0;
    if (unit(a) < amount) {
      a = (a + STEP) >>> 0;
      out[i] = unit(a) < 0.5 ? 0 : 1;
    } else out[i] = x[i] < 0 ? 0 : x[i] > 1 ? 1 : x[i];
  }
  return out;
}

/**
 * image/imagenet-c.ts's glassPermutation(H, W, maxDelta, iterations, mulberry32(seed)) with the
 * draws made in one pass beforehand (random.ts drawsInto): the same draws in the same order, the
 * same index map.
 */
export function glassShuffle(H: number, W: number, maxDelta: number, iterations: number, seed: number, perm: Int32Array = new Int32Array(H * W)): Int32Array {
  for (let p = 0; p < H * W; p++) perm[p] = p;
  const d = maxDelta;
  // two draws per moved pixel, in order: made beforehand (four at a time in the WebAssembly kernel)
  const count = 2 * iterations * Math.max(0, H - 2 * d) * Math.max(0, W - 2 * d);
  if (glassDraws.length < count) glassDraws = new Float64Array(count);
  const u = glassDraws.subarray(0, count);
  drawsInto(seed, u);
  let k = 0;
  for (let it = 0; it < iterations; it++) {
    for (let h = H - d; h > d; h--) {
      for (let w = W - d; w > d; w--) {
        const dx = -d + Math.floor(u[k++] * 2 * d);
        const dy = -d + Math.floor(u[k++] * 2 * d);
        perm[h * W + w] = perm[(h + dy) * W + (w + dx)];
      }
    }
  }
  return perm;
}
/** glassShuffle's draws, kept from call to call (a thread makes one shuffle at a time). */
let glassDraws = new Float64Array(0);

/** Largest value mulberry32 returns: an inversion table that reaches it needs no further terms. */
const U_MAX = 4294967295 / 4294967296;

/** Per-λ constants of image/corrupt.ts poisson(): the inversion CDF below 10, PTRS's above. */
type PoissonConsts =
  | { kind: 'inversion'; cdf: Float64Array }
  | { kind: 'ptrs'; lambda: number; loglam: number; a: number; b: number; logInvalpha: number; vr: number };

function poissonConsts(lambda: number): PoissonConsts {
  if (lambda < 10) {
    // the running sums poisson()'s sequential search makes, in the same order (so the same
    // doubles), up to the first that no uniform exceeds or its cap of 200 terms
    const cdf = [Math.exp(-lambda)];
    let p = cdf[0];
    for (let k = 1; k <= 200 && cdf[k - 1] < U_MAX; k++) {
      p *= lambda / k;
      cdf.push(cdf[k - 1] + p);
    }
    return { kind: 'inversion', cdf: Float64Array.from(cdf) };
  }
  const slam = Math.sqrt(lambda);
  const b = 0.931 + 2.53 * slam;
  return {
    kind: 'ptrs', lambda, loglam: Math.log(lambda), b, a: -0.059 + 0.02483 * b,
    logInvalpha: Math.log(1.1239 + 1.1328 / (b - 3.4)), vr: 0.9277 - 3.6224 / (b - 2),
  };
}

/**
 * Buckets of an inversion's guide table: guideTable(cdf)[b] is the first k with cdf[k] ≥ b/GUIDE
 * (or the last), so for u in bucket b the answer (the first k with u ≤ cdf[k]) is at or after
 * it and the search from there takes a step or two: the same k as the search from 0, with far
 * fewer of the mispredicted branches that made most of its cost.
 */
const GUIDE = 32;
function guideTable(cdf: Float64Array): Int32Array {
  const last = cdf.length - 1;
  const guide = new Int32Array(GUIDE);
  let k = 0;
  for (let b = 0; b < GUIDE; b++) {
    while (k < last && cdf[k] < b / GUIDE) k++;
    guide[b] = k;
  }
  return guide;
}

/**
 * poisson()'s constants for every level k/255 at one rate (a level's λ is k/255·rate, so they are
 * the same for every image), flat, for shot()'s loop and its WebAssembly kernel (wasm/kernels.ts).
 * Kept by rate from call to call: at 28×28 working them out per call cost more than the draws. A
 * handful of rates (ImageNet-C's five) at a time.
 */
const shotTablesByRate = new Map<number, ShotTables>();
function shotTables(rate: number): ShotTables {
  let t = shotTablesByRate.get(rate);
  if (t) return t;
  if (shotTablesByRate.size >= 16) shotTablesByRate.clear();
  const guide = new Int32Array(256 * GUIDE);
  const cdfFirst = new Int32Array(256);
  const last = new Int32Array(256);
  const ptrs = new Float64Array(256 * 6);
  const cdfs: Float64Array[] = [];
  let at = 0;
  for (let q = 1; q < 256; q++) {
    const c = poissonConsts(LEVELS[q] * rate); // the λ shot() works out for a value LEVELS[q]
    if (c.kind === 'inversion') {
      guide.set(guideTable(c.cdf), q * GUIDE);
      cdfFirst[q] = at;
      last[q] = c.cdf.length - 1;
      cdfs.push(c.cdf);
      at += c.cdf.length;
      // (cdfs are laid out in level order, so each starts where the one before ended)
    } else ptrs.set([c.lambda, c.loglam, c.a, c.b, c.logInvalpha, c.vr], q * 6);
  }
  const cdf = new Float64Array(at);
  let first = 0;
  for (const c of cdfs) {
    cdf.set(c, first);
    first += c.length;
  }
  const lf = Float64Array.from({ length: 256 }, (_, k) => logFactorial(k));
  shotTablesByRate.set(rate, (t = { guide, cdfFirst, last, cdf, ptrs, lf, levels: LEVELS, logFactorial }));
  return t;
}

/** shotTables for the tests. */
export const shotTablesForTest = shotTables;

/** The float32 value of each 8-bit level k/255: what a decoded image holds. */
const LEVELS = Float32Array.from({ length: 256 }, (_, q) => q / 255);

/**
 * image/corrupt.ts's shotNoise(img, rate, mulberry32(seed)) bit for bit: the same Poisson
 * variates from the same draws, with mulberry32 inlined and poisson()'s per-λ constants (the
 * inversion CDF, PTRS's coefficients) taken from shotTables for the levels k/255 that decoded
 * images hold, instead of worked out per value; any other value gets its own. The inversion
 * search starts from a guide table (guideTable): 32 → 22 ms for the five ImageNet-C rates on a
 * 224² image.
 */
export function shot(x: Float32Array, rate: number, seed: number, out: Float32Array = new Float32Array(x.length)): Float32Array {
  // the WebAssembly kernel where it runs and the image's values are all levels (the same draws, ~1.6× faster)
  const tables = shotTables(rate);
  if (shotKernel(x, rate, seed, tables, out)) return out;
  const { guide, cdfFirst, last, cdf, ptrs } = tables;
  let a = seed >>> 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const lambda = v * rate;
    if (!(lambda > 0)) {
      out[i] = 0; // poisson() draws nothing and returns 0
      continue;
    }
    const q = Math.round(v * 255);
    // a level k/255 (its tables chose inversion or PTRS by the same λ), or a value of its own
    const level = q < 256 && LEVELS[q] === v;
    let k = 0;
    if (lambda < 10) {
      a = (a + STEP) >>> 0;
      const u = unit(a);
      if (level) {
        // the first k with u ≤ cdf[k] (or the last), from the guide's start for u's bucket
        const first = cdfFirst[q];
        const end = last[q];
        k = guide[q * GUIDE + ((u * GUIDE) | 0)];
        while (k < end && u > cdf[first + k]) k++;
      } else {
        // poisson()'s sequential search as it is (a value that is not k/255)
        let p = Math.exp(-lambda);
        let F = p;
        while (u > F && k < 200) {
          k++;
          p *= lambda / k;
          F += p;
        }
      }
    } else {
      let o = q * 6;
      let c = ptrs;
      if (!level) {
        const g = poissonConsts(lambda) as Extract<PoissonConsts, { kind: 'ptrs' }>;
        c = Float64Array.of(g.lambda, g.loglam, g.a, g.b, g.logInvalpha, g.vr);
        o = 0;
      }
      const L = c[o], loglam = c[o + 1], A = c[o + 2], B = c[o + 3], logInvalpha = c[o + 4], vr = c[o + 5];
      for (;;) {
        a = (a + STEP) >>> 0;
        const U = unit(a) - 0.5;
        a = (a + STEP) >>> 0;
        const V = unit(a);
        const us = 0.5 - Math.abs(U);
        k = Math.floor(((2 * A) / us + B) * U + L + 0.43);
        if (us >= 0.07 && V <= vr) break;
        if (k < 0 || (us < 0.013 && V > us)) continue;
        if (Math.log(V) + logInvalpha - Math.log(A / (us * us) + B) <= -L + k * loglam - logFactorial(k)) break;
      }
    }
    const y = k / rate;
    out[i] = y < 0 ? 0 : y > 1 ? 1 : y;
  }
  return out;
}

/** image/corrupt.ts's jpeg(img, quality) into `into` (for a one-channel image, image/jpeg.ts's round trip, no sharp call). */
export function jpegView(img: PixelImage, quality: number, shared: Shared | undefined, into: Float32Array): Promise<void> {
  return jpeg(img, quality, shared?.bytes(), into, shared?.blocks()).then(() => undefined);
}
