/**
 * The geometry of decoding, after the decoder (data/decode.ts): resampling to the model's size
 * (Pillow's or torchvision's arithmetic), torchvision's centre crop with its rounding, the margin,
 * and the conversion to planar float [0,1]. Pure JavaScript without sharp, so a worker thread
 * can run it (data/decode-workers.ts) and give the same bits.
 */
import { resizeU8, resizeU8Window, type ResizeWindow, type U8Image } from '../image/resample';
import { resizeTensorU8 } from '../image/resample-tensor';
import type { DecodeSpec, PixelImage } from '../types';

/** v/255 for every byte value, as float32, so decoding is a table look-up. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offsets use it). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Size after torchvision's Resize(S) on a width×height image: the short side becomes S. */
export function shortSideSize(width: number, height: number, s: number): { width: number; height: number } {
  if (width <= height) return { width: s, height: Math.floor((s * height) / width) };
  return { width: Math.floor((s * width) / height), height: s };
}

/** Offset of a centred `crop`-long window in a `size`-long side (negative: the window is larger).
 *  torchvision rounds (size − crop)/2 half to even; Hugging Face's center_crop floors it. */
export function centreOffset(size: number, crop: number, rounding: 'half-even' | 'floor' = 'half-even'): number {
  if (size < crop) return -Math.floor((crop - size) / 2);
  return rounding === 'floor' ? Math.floor((size - crop) / 2) : roundHalfEven((size - crop) / 2);
}

/** The spec's margin, after checking the spec (a bad one is a bug: RangeError). */
export function checkSpec(spec: DecodeSpec): number {
  const margin = spec.margin ?? 0;
  const ok = (n: number) => Number.isInteger(n) && n > 0;
  if ((spec.channels !== 1 && spec.channels !== 3) || !ok(spec.height) || !ok(spec.width)) {
    throw new RangeError(`bad decode spec: ${JSON.stringify(spec)}`);
  }
  if (!Number.isInteger(margin) || margin < 0 || (spec.resizeShortSide !== undefined && !ok(spec.resizeShortSide))) {
    throw new RangeError(`bad decode spec: ${JSON.stringify(spec)}`);
  }
  return margin;
}

/** The size to resample a width×height source to. */
export function resizeTarget(width: number, height: number, spec: DecodeSpec): { width: number; height: number } {
  return spec.resizeShortSide !== undefined
    ? shortSideSize(width, height, spec.resizeShortSide)
    : { width: spec.width, height: spec.height };
}

/** Where place() reads: the resized image's window that holds the output (offsets clamped to it). */
export function placeWindow(sw: number, sh: number, spec: DecodeSpec, margin: number): ResizeWindow {
  const { top, left, oh, ow } = outputFrame(sw, sh, spec, margin);
  const clamp = (v: number, hi: number) => (v < 0 ? 0 : v > hi ? hi : v);
  return { x0: clamp(left, sw - 1), x1: clamp(left + ow - 1, sw - 1) + 1, y0: clamp(top, sh - 1), y1: clamp(top + oh - 1, sh - 1) + 1 };
}

function outputFrame(sw: number, sh: number, spec: DecodeSpec, margin: number): { top: number; left: number; oh: number; ow: number } {
  const oh = spec.height + 2 * margin;
  const ow = spec.width + 2 * margin;
  const top = spec.resizeShortSide !== undefined ? centreOffset(sh, spec.height, spec.cropRounding) - margin : -margin;
  const left = spec.resizeShortSide !== undefined ? centreOffset(sw, spec.width, spec.cropRounding) - margin : -margin;
  return { top, left, oh, ow };
}

/**
 * Cuts the output window out of interleaved 8-bit pixels (spec.channels per pixel, already
 * resized to sw×sh), repeating border pixels outside them, and converts to planar float [0,1].
 * `src` may hold only a window of the resized image (placeWindow's), its top-left corner at `at`.
 */
export function place(src: Uint8Array, sw: number, sh: number, spec: DecodeSpec, margin: number, at: { x: number; y: number; width: number } = { x: 0, y: 0, width: sw }): PixelImage {
  const sc = spec.channels;
  const { top, left, oh, ow } = outputFrame(sw, sh, spec, margin);
  const clamp = (v: number, hi: number) => (v < 0 ? 0 : v > hi ? hi : v);
  const xs = Int32Array.from({ length: ow }, (_, x) => clamp(x + left, sw - 1) - at.x);
  const plane = oh * ow;
  const out = new Float32Array(sc * plane);
  for (let y = 0; y < oh; y++) {
    const row = (clamp(y + top, sh - 1) - at.y) * at.width;
    const o = y * ow;
    if (sc === 1) {
      for (let x = 0; x < ow; x++) out[o + x] = UNIT[src[row + xs[x]]];
    } else {
      for (let x = 0; x < ow; x++) {
        const p = (row + xs[x]) * 3;
        out[o + x] = UNIT[src[p]];
        out[plane + o + x] = UNIT[src[p + 1]];
        out[2 * plane + o + x] = UNIT[src[p + 2]];
      }
    }
  }
  return { data: out, channels: sc, height: oh, width: ow };
}

/**
 * decodeImage's second part, all JavaScript and the larger part of its CPU time at ImageNet
 * size: resampling to the spec's size (Pillow's or torchvision's arithmetic) and the window
 * with its margin, as planar float. The same bits on any thread (data/decode-workers.ts runs it
 * in worker threads).
 */
export function finishDecode(raw: U8Image, spec: DecodeSpec): PixelImage {
  const margin = checkSpec(spec);
  if (raw.channels !== spec.channels || raw.data.length !== raw.width * raw.height * raw.channels) {
    throw new RangeError(`finishDecode: ${raw.width}×${raw.height}×${raw.channels} pixels (${raw.data.length} bytes) for a ${spec.channels}-channel spec`);
  }
  const target = resizeTarget(raw.width, raw.height, spec);
  if (spec.resampler === 'tensor' || spec.resampler === 'tensor-antialias') {
    const r = resize(raw, target.width, target.height, spec);
    return place(r.data, r.width, r.height, spec, margin);
  }
  // Pillow's resampling, only the window the crop keeps
  const win = placeWindow(target.width, target.height, spec, margin);
  const r = resizeU8Window(raw, target.width, target.height, spec.interpolation ?? 'bilinear', win);
  return place(r.data, target.width, target.height, spec, margin, { x: win.x0, y: win.y0, width: r.width });
}

/** Resizes with the spec's filter, by Pillow's algorithm or torchvision's tensor one. */
export function resize(img: U8Image, width: number, height: number, spec: DecodeSpec): U8Image {
  const filter = spec.interpolation ?? 'bilinear';
  if (spec.resampler === 'tensor' || spec.resampler === 'tensor-antialias') {
    return resizeTensorU8(img, width, height, filter, spec.resampler === 'tensor-antialias');
  }
  return resizeU8(img, width, height, filter);
}
