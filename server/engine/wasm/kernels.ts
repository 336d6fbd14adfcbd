/**
 * WebAssembly kernels for the engine's hottest CPU loops: the corruption views' makers (motion
 * blur, snow's layer and mix, shot noise's Poisson draws) and mulberry32's draws in bulk
 * (random.ts). kernels.wat is the source, assembled into kernels-wasm.ts by
 * scripts/build-kernels.mjs. They compute the same doubles as the JavaScript loops, several values
 * at a time in SIMD lanes where the values are independent: motion blur's sums of a 224² image's
 * five severities took 21–34 ms in JavaScript and take 4–6 here (bench/README.md, ninth pass).
 *
 * One instance per thread (the views workers have their own module state), made on first use. A
 * caller whose kernel is not there (a runtime without WebAssembly SIMD, or SKEPTIC_WASM=0) runs
 * its JavaScript loop: the same values, more slowly. The module's memory starts with the tables
 * that stay from call to call (shot noise's, per rate: `resident`); after them it is laid out per
 * call (kernels are synchronous, so a call has it to itself) and grows to the largest call.
 */
import { debuglog } from 'node:util';
import { KERNELS_WASM } from './kernels-wasm';

const debug = debuglog('skeptic');

// The little of the WebAssembly API used here (the project compiles against ES2022 and Node's
// types, which do not declare it)
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
};

interface Exports {
  memory: WasmMemory;
  pad_f32(dst: number, src: number, H: number, W: number, P: number): void;
  pad_f64(dst: number, src: number, H: number, W: number, P: number): void;
  shift_add(out: number, pad: number, H: number, W: number, P: number, taps: number, n: number): void;
  clip_f32(dst: number, src: number, count: number): void;
  uniforms(dst: number, count: number, seed: number, lo: number, span: number, radii: number): number;
  unit_doubles(dst: number, count: number, seed: number): void;
  snow_layer(layer: number, b: number, zw: number, hs: number, ws: number, H: number, W: number): void;
  snow_mix(dst: number, src: number, layer: number, C: number, n: number, mix: number, keep: number): void;
  shot(dst: number, src: number, n: number, rate: number, seed: number, levels: number, guide: number, cdfAt: number, last: number, ptrs: number, lf: number): number;
}

let instance: Exports | null | undefined;
/** ln k! for k ≥ 256, from the ShotTables of the current shotKernel call. */
let logFactorial: (k: number) => number = () => Number.NaN;
let enabled = process.env.SKEPTIC_WASM !== '0';

/** The kernels of this thread, or null where they cannot run (or are turned off). */
function kernels(): Exports | null {
  if (!enabled) return null;
  if (instance !== undefined) return instance;
  try {
    const bytes = Buffer.from(KERNELS_WASM, 'base64');
    // Math.log itself: V8 calls the same C function for it from WebAssembly as from JavaScript.
    // ln k! past the shot noise tables comes from the tables' owner (this module imports nothing
    // of the engine: random.ts uses it)
    const imports = { js: { log: Math.log, logFactorial: (k: number) => logFactorial(k) } };
    instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports as unknown as Exports;
  } catch (e) {
    // WebAssembly SIMD is in every Node the engine supports; a runtime built without it gets the loops
    debug('WebAssembly kernels unavailable (%s): the JavaScript loops run', (e as Error).message);
    instance = null;
  }
  return instance;
}

/** Turns the kernels on or off for this thread (tests and benchmarks compare the two paths). */
export function setWasmKernels(on: boolean): void {
  enabled = on;
}

/** Whether calls in this thread run the kernels. */
export function wasmKernelsOn(): boolean {
  return kernels() !== null;
}

/** Where each resident ShotTables lies in the module's memory (byte offsets). */
interface ShotPlaces {
  levels: number;
  guide: number;
  cdfAt: number;
  last: number;
  ptrs: number;
  lf: number;
}

/**
 * The tables kept at the start of this thread's module memory, and where they end: every call's
 * own layout starts at `end`. Shot noise's tables are 50–90 KB a rate, and copying them in on
 * every call (five rates an image, a copy from memory the other makers had pushed out of the
 * caches) cost more than the draws of a 28×28 image.
 */
const resident = { end: 0, shot: new Map<ShotTables, ShotPlaces>() };

/** The module's memory with at least `bytes` of it, as a buffer (growing detaches older views). */
function memory(k: Exports, bytes: number): ArrayBuffer {
  const have = k.memory.buffer.byteLength;
  if (bytes > have) k.memory.grow(Math.ceil((bytes - have) / 65536));
  return k.memory.buffer;
}

const align = (n: number) => Math.ceil(n / 16) * 16;

/** The copies a motion blur adds up (image/imagenet-c.ts motionTaps). */
export interface MotionTaps {
  weight: Float64Array;
  dy: Int32Array;
  dx: Int32Array;
}

/**
 * image/imagenet-c.ts's motion blur of one H×W plane by these taps (each copy's rows clamped, its
 * columns repeated past the edges), written into `out`: a Float64Array gets the sums as they are
 * (snow's layer), a Float32Array gets them clipped to [0, 1] (the motion blur view). False, with
 * `out` untouched, when the kernels are not there: the caller then runs its loop.
 */
export function motionBlurKernel(plane: Float32Array | Float64Array, H: number, W: number, taps: MotionTaps, out: Float32Array | Float64Array): boolean {
  const k = kernels();
  if (!k) return false;
  const n = taps.weight.length;
  let P = 0;
  for (const dx of taps.dx) P = Math.max(P, Math.abs(dx));
  const N = H * W;
  const at = resident.end;
  const src = at + align(16 * n);
  const pad = src + align(N * plane.BYTES_PER_ELEMENT);
  const sums = pad + align(H * (W + 2 * P) * 8);
  const clipped = sums + align(N * 8);
  const buf = memory(k, clipped + (out instanceof Float32Array ? N * 4 : 0));
  new Float64Array(buf, at, n).set(taps.weight);
  new Int32Array(buf, at + 8 * n, n).set(taps.dy);
  new Int32Array(buf, at + 12 * n, n).set(taps.dx);
  if (plane instanceof Float32Array) {
    new Float32Array(buf, src, N).set(plane);
    k.pad_f32(pad, src, H, W, P);
  } else {
    new Float64Array(buf, src, N).set(plane);
    k.pad_f64(pad, src, H, W, P);
  }
  k.shift_add(sums, pad, H, W, P, at, n);
  if (out instanceof Float64Array) out.set(new Float64Array(buf, sums, N));
  else {
    k.clip_f32(clipped, sums, N);
    out.set(new Float32Array(buf, clipped, N));
  }
  return true;
}

/** shot()'s Poisson constants per level k/255 at one rate, flat (views/corruptions.ts builds them). */
export interface ShotTables {
  /** per level, 32 entries: the inversion's guide table */
  guide: Int32Array;
  /** per level: the first index of its CDF in `cdf`, and its last index */
  cdfFirst: Int32Array;
  last: Int32Array;
  cdf: Float64Array;
  /** per level: λ, log λ, a, b, log(1/α), v_r */
  ptrs: Float64Array;
  /** ln k! for k < 256 */
  lf: Float64Array;
  /** the float32 value of each 8-bit level k/255 (what a decoded image holds) */
  levels: Float32Array;
  /** ln k! (image/corrupt.ts logFactorial), asked for k ≥ 256 */
  logFactorial: (k: number) => number;
}

/**
 * views/corruptions.ts shot() with the tables of its rate, into `out`. False, with `out` in an
 * unspecified state, when the kernels are not there or a value with λ > 0 is not a level k/255:
 * the caller then runs its loop.
 */
export function shotKernel(x: Float32Array, rate: number, seed: number, tables: ShotTables, out: Float32Array): boolean {
  const k = kernels();
  if (!k) return false;
  const { levels, guide, cdfAt, last, ptrs, lf } = residentShot(k, tables);
  const n = x.length;
  const src = resident.end;
  const buf = memory(k, src + 8 * n);
  new Float32Array(buf, src, n).set(x);
  logFactorial = tables.logFactorial;
  if (!k.shot(src + 4 * n, src, n, rate, seed >>> 0, levels, guide, cdfAt, last, ptrs, lf)) return false;
  out.set(new Float32Array(buf, src + 4 * n, n));
  return true;
}

/** Where `tables` lie in the module's memory, copied in (after the resident tables before them) on
 *  their first call. The tables are never changed once made (views/corruptions.ts keeps them by
 *  rate), so a copy made once stays right. */
function residentShot(k: Exports, tables: ShotTables): ShotPlaces {
  let places = resident.shot.get(tables);
  if (places) return places;
  if (resident.shot.size >= 16) {
    // a handful of rates in a process (ImageNet-C's five); more than that starts the region again
    resident.shot.clear();
    resident.end = 0;
  }
  const levels = resident.end;
  const guide = levels + 1024;
  const cdfAt = guide + 4 * 256 * 32;
  const last = cdfAt + 1024;
  const ptrs = last + 1024;
  const lf = ptrs + 8 * 256 * 6;
  const cdf = lf + 8 * 256;
  const end = align(cdf + 8 * tables.cdf.length);
  const buf = memory(k, end);
  new Float32Array(buf, levels, 256).set(tables.levels);
  new Int32Array(buf, guide, 256 * 32).set(tables.guide);
  const at = new Int32Array(buf, cdfAt, 256);
  for (let q = 0; q < 256; q++) at[q] = cdf + 8 * tables.cdfFirst[q];
  new Int32Array(buf, last, 256).set(tables.last);
  new Float64Array(buf, ptrs, 256 * 6).set(tables.ptrs);
  new Float64Array(buf, lf, 256).set(tables.lf);
  new Float64Array(buf, cdf, tables.cdf.length).set(tables.cdf);
  resident.end = end;
  resident.shot.set(tables, (places = { levels, guide, cdfAt, last, ptrs, lf }));
  return places;
}

/**
 * `out.length` draws of mulberry32 from state `seed` (random.ts), as float32 lo + span·u, into
 * `out`. With `radii`, gaussian()'s (radius, angle) pairs, where a radius draw of 0 would be drawn
 * again: the kernel then declines (once in about 2^31 pairs). False, `out` in an unspecified
 * state, when it declines or the kernels are not there: the caller then runs its loop.
 */
export function uniformsKernel(seed: number, out: Float32Array, lo: number, span: number, radii = false): boolean {
  const k = kernels();
  if (!k) return false;
  const n = out.length;
  const at = resident.end;
  const buf = memory(k, at + 4 * n);
  if (!k.uniforms(at, n, seed >>> 0, lo, span, radii ? 1 : 0)) return false;
  out.set(new Float32Array(buf, at, n));
  return true;
}

/**
 * The end of image/imagenet-c.ts snow(): its layer from the blurred plane (zh rows of zw values,
 * the top-left hs × ws used, each value and its 180° turn rounded to 8 bits and added) and the
 * image mixed with it, into `out`. False when the kernels are not there.
 */
export function snowMixKernel(blurred: Float64Array, zw: number, hs: number, ws: number, x: Float32Array, C: number, H: number, W: number, mix: number, out: Float32Array): boolean {
  const k = kernels();
  if (!k) return false;
  const n = H * W;
  const b = resident.end;
  const layer = b + align(8 * blurred.length);
  const src = layer + 8 * n;
  const dst = src + align(4 * C * n);
  const buf = memory(k, dst + 4 * C * n);
  new Float64Array(buf, b, blurred.length).set(blurred);
  new Float32Array(buf, src, C * n).set(x.subarray(0, C * n));
  k.snow_layer(layer, b, zw, hs, ws, H, W);
  k.snow_mix(dst, src, layer, C, n, mix, 1 - mix);
  out.set(new Float32Array(buf, dst, C * n));
  return true;
}

/** `out.length` draws of mulberry32 from state `seed` (random.ts), the doubles it returns, into `out`. False when the kernels are not there. */
export function unitDoublesKernel(seed: number, out: Float64Array): boolean {
  const k = kernels();
  if (!k) return false;
  const n = out.length;
  const at = resident.end;
  const buf = memory(k, at + 8 * n);
  k.unit_doubles(at, n, seed >>> 0);
  out.set(new Float64Array(buf, at, n));
  return true;
}
