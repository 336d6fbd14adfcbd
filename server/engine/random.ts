/**
 * Seeded randomness. Every random choice in the engine comes from here, so the same inputs and
 * seed give the same report. Per-image streams are derived from the image's content hash, not
 * its position, so an image gets the same randomness whether it is audited alone or in a crowd
 * (and cached results stay valid under --limit).
 */
import * as crypto from 'node:crypto';
import { uniformsKernel, unitDoublesKernel } from './wasm/kernels';

/**
 * The first 4 bytes (little-endian) of sha256(seed ‖ ("\0" ‖ part)*). One-shot crypto.hash where
 * Node has it (20.12+): 2.5 against 4.6 µs per call, and the corruptions probe derives dozens of
 * seeds per image; the incremental hash of the same bytes elsewhere.
 */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'buffer') => Buffer }).hash;
function seedHash(seed: number, parts: string[]): number {
  if (oneShot) return oneShot('sha256', parts.length ? `${seed}\0${parts.join('\0')}` : String(seed), 'buffer').readUInt32LE(0);
  const h = crypto.createHash('sha256').update(String(seed));
  for (const p of parts) h.update('\0').update(p);
  return h.digest().readUInt32LE(0);
}

/** mulberry32's output for the state `a` it has just stepped to (inlined by V8 in the loops below). */
export function mulberryUnit(a: number): number {
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
/** mulberry32's step. */
export const MULBERRY_STEP = 0x6d2b79f5;

/**
 * A mulberry32 generator: each call gives the next float in [0, 1). `normals` fills an array
 * with mean + std·gaussian(rng) per value, the same draws in the same order (the generator goes
 * on after them): its state a local of one loop, about twice as fast as a call per draw.
 */
export interface Mulberry32 {
  (): number;
  normals(out: Float64Array, mean: number, std: number): void;
  /** out[p] = lo + span·rng() for every p in order, in float32 (the generator goes on after them). */
  uniforms(out: Float32Array, lo: number, span: number): void;
  /** out[p] = rng() for every p in order (the generator goes on after them). */
  draws(out: Float64Array): void;
  /** Steps past `count` gaussian() draws without computing them: the generator is then where
   *  `count` values of normals() would leave it (a radius draw of 0 is redrawn there too). */
  skipNormals(count: number): void;
  /** normals(), but a value that certainly falls below `floor` is written as 0 instead of computed
   *  (the same draws are taken, so the generator ends where normals() leaves it). */
  normalsOrZero(out: Float64Array, mean: number, std: number, floor: number): void;
}

/** mulberry32: a small, fast 32-bit PRNG; returns floats in [0,1). */
export function mulberry32(seed: number): Mulberry32 {
  let a = seed >>> 0;
  const next = (() => {
    a = (a + MULBERRY_STEP) >>> 0;
    return mulberryUnit(a);
  }) as Mulberry32;
  // normals() is normalsOrZero() with nothing skipped: no value certainly falls below −∞
  next.normals = (out, mean, std) => next.normalsOrZero(out, mean, std, -Infinity);
  next.uniforms = (out, lo, span) => {
    uniformsInto(a, out, lo, span);
    a = (a + Math.imul(out.length, MULBERRY_STEP)) >>> 0;
  };
  next.draws = (out) => {
    drawsInto(a, out);
    a = (a + Math.imul(out.length, MULBERRY_STEP)) >>> 0;
  };
  next.normalsOrZero = (out, mean, std, floor) => {
    // mean + std·√(−2 ln u)·cos 2πv < floor whenever √(−2 ln u) < (floor − mean)/std, i.e. whenever u
    // is above e^(−r²/2) for that r: the log, square root and cosine (~40 ns) are skipped there. The
    // bound is taken 1e-9 inside (relative), far beyond the rounding of those few operations.
    const r = std > 0 && floor > mean ? ((floor - mean) / std) * (1 - 1e-9) : 0;
    const above = r > 0 ? Math.exp((-r * r) / 2) * (1 + 1e-9) : Infinity;
    let s = a;
    for (let p = 0; p < out.length; p++) {
      let u = 0;
      while (u === 0) u = mulberryUnit((s = (s + MULBERRY_STEP) >>> 0));
      s = (s + MULBERRY_STEP) >>> 0;
      out[p] = u > above ? 0 : mean + std * (Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * mulberryUnit(s))); // gaussian()'s expression
    }
    a = s;
  };
  next.skipNormals = (count) => {
    let s = a;
    for (let p = 0; p < count; p++) {
      // the radius draw (hashed only to see whether it is the 0 that normals() redraws), then the angle's
      do s = (s + MULBERRY_STEP) >>> 0;
      while (mulberryUnit(s) === 0);
      s = (s + MULBERRY_STEP) >>> 0;
    }
    a = s;
  };
  return next;
}

/** out[p] = mean + std·gaussian(rng) for every p in order; in one loop when rng is mulberry32's. */
export function fillNormals(rng: () => number, out: Float64Array, mean: number, std: number): void {
  const fast = (rng as Partial<Mulberry32>).normals;
  if (fast) fast(out, mean, std);
  else for (let p = 0; p < out.length; p++) out[p] = mean + std * gaussian(rng);
}

/** fillNormals, except that a value certainly below `floor` may be written as 0 instead (mulberry32's
 *  normalsOrZero); for a caller that sends every value below `floor` to 0 anyway. */
export function fillNormalsOrZero(rng: () => number, out: Float64Array, mean: number, std: number, floor: number): void {
  const fast = (rng as Partial<Mulberry32>).normalsOrZero;
  if (fast) fast(out, mean, std, floor);
  else fillNormals(rng, out, mean, std);
}

/** out[p] = rng() for every p in order; in one pass when rng is mulberry32's. */
export function fillDraws(rng: () => number, out: Float64Array): void {
  const fast = (rng as Partial<Mulberry32>).draws;
  if (fast) fast(out);
  else for (let p = 0; p < out.length; p++) out[p] = rng();
}

/** out[p] = lo + span·rng() for every p in order (float32); in one pass when rng is mulberry32's. */
export function fillUniforms(rng: () => number, out: Float32Array, lo: number, span: number): void {
  const fast = (rng as Partial<Mulberry32>).uniforms;
  if (fast) fast(out, lo, span);
  else for (let p = 0; p < out.length; p++) out[p] = lo + span * rng();
}

/** Steps rng past `count` gaussian() draws: skipNormals when rng is mulberry32's, else the draws themselves. */
export function skipNormals(rng: () => number, count: number): void {
  const fast = (rng as Partial<Mulberry32>).skipNormals;
  if (fast) fast(count);
  else for (let p = 0; p < count; p++) gaussian(rng);
}

/** A PRNG seeded from the run's seed and any number of strings (probe id, image hash...). */
export function derivedRng(seed: number, ...parts: string[]): Mulberry32 {
  return mulberry32(seedHash(seed, parts));
}

/** Fisher–Yates shuffle in place with the given PRNG. */
export function shuffleInPlace<T>(items: T[], rng: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
  return items;
}

/** Standard normal variate (Box–Muller). */
export function gaussian(rng: () => number): number {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** The 32-bit seed derivedRng(seed, ...parts) starts mulberry32 from (for generators that fill arrays). */
export function derivedSeed(seed: number, ...parts: string[]): number {
  return seedHash(seed, parts);
}

/** How an image's view seeds follow from the audit's: derivedSeed(seed, `${prefix}/${name}/${severity}`, tag). */
export interface SeedRecipe {
  seed: number;
  prefix: string;
  /** The image's content hash. */
  tag: string;
}

/** A view's seed by its name and severity; `recipe`, when there, says how it is derived, so that a
 *  worker thread can derive the seeds it uses itself (views/workers.ts). */
export type ViewSeeds<Name extends string = string> = ((name: Name, severity: number) => number) & { recipe?: SeedRecipe };

/** The seeds of a recipe, as a function that carries it. */
export function recipeSeeds(recipe: SeedRecipe): ViewSeeds {
  const seeds: ViewSeeds = (name, severity) => derivedSeed(recipe.seed, `${recipe.prefix}/${name}/${severity}`, recipe.tag);
  seeds.recipe = recipe;
  return seeds;
}

/**
 * The uniforms gaussian() draws from mulberry32(seed), n values' worth, as (u1, u2) pairs: u1 the
 * radius draw (a 0 is redrawn, as gaussian() does), u2 the angle. Box–Muller on them
 * (√(−2 ln u1)·cos 2πu2) gives gaussian()'s values; the views graph does that part. Inlined
 * mulberry32: ~20× faster than calling gaussian() per value.
 */
export function gaussianUniforms(seed: number, n: number, out = new Float32Array(2 * n)): Float32Array {
  // four at a time in the WebAssembly kernel where it runs (the same values), else the loop
  if (uniformsKernel(seed, out.subarray(0, 2 * n), 0, 1, true)) return out;
  let a = seed >>> 0;
  for (let i = 0; i < 2 * n; i++) {
    let u: number;
    do {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    } while (u === 0 && (i & 1) === 0);
    out[i] = u;
  }
  return out;
}

/**
 * out.length draws of mulberry32(seed), in order, as the doubles it returns: four at a time in the
 * WebAssembly kernel where it runs, else mulberryFill.
 */
export function drawsInto(seed: number, out: Float64Array): void {
  if (!unitDoublesKernel(seed, out)) mulberryFill(seed, out, 0, 1);
}

/**
 * out.length draws of mulberry32(seed), in order, as float32 lo + span·u: four at a time in the
 * WebAssembly kernel where it runs, else mulberryFill.
 */
function uniformsInto(seed: number, out: Float32Array<ArrayBufferLike>, lo: number, span: number): void {
  if (!uniformsKernel(seed, out, lo, span)) mulberryFill(seed, out, lo, span);
}

/**
 * The kernels' loop in JavaScript: out[p] = lo + span·u for the draws u of mulberry32(seed), in
 * order (0 + 1·u is u, exactly). A function of its own: written in the generator's closure the
 * same loop took 2.4× as long, and through mulberryUnit and MULBERRY_STEP (exports, under tsx)
 * twice as long.
 */
function mulberryFill(seed: number, out: Float32Array<ArrayBufferLike> | Float64Array, lo: number, span: number): void {
  let a = seed >>> 0;
  for (let p = 0; p < out.length; p++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[p] = lo + span * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
}

/** n draws of mulberry32(seed), in order, into a float32 array (uniformNoise's values: 0 + 1·u is u). */
export function uniforms(seed: number, n: number, out: Float32Array<ArrayBufferLike> = new Float32Array(n)): Float32Array<ArrayBufferLike> {
  uniformsInto(seed, out.subarray(0, n), 0, 1);
  return out;
}
