/**
 * Decoding images into pixel space (float32 CHW in [0,1], see PixelImage) with sharp.
 *
 * Colour:
 * - Every input is converted, never rejected: grayscale, palette, 16-bit, CMYK, with or without
 *   alpha. sharp converts to 8-bit sRGB, honouring an embedded ICC profile (PIL, and so
 *   torchvision, ignores those; it only matters for images that are not sRGB already).
 * - Alpha is flattened onto BLACK (i.e. premultiplied): the convention of MNIST-style data
 *   (white strokes on black) and the same for every image, so it is predictable. A logo on a
 *   transparent background therefore comes out on black, not white.
 * - One output channel is luma with ITU-R 601 weights on the sRGB values (0.299 R + 0.587 G +
 *   0.114 B), as PIL's convert('L') and torchvision's Grayscale compute it, but not rounded to
 *   8 bits. Grey sources (R = G = B) come back exactly.
 * - EXIF orientation is applied; GIF, WebP and TIFF give their first frame/page.
 *
 * Geometry (torchvision's Resize + CenterCrop, so a model sees what it saw in training):
 * - With resizeShortSide S: resize so the short side is S and the long side floor(S·long/short),
 *   then take the centred height×width window, offset int(round((size − crop)/2)) with Python's
 *   round-half-to-even, and grow it by `margin` on each side. The margin window is placed
 *   relative to the plain crop (not re-centred), so its centre is exactly the margin-free crop
 *   whatever the parity. Where the window passes the resized image, border pixels repeat (like
 *   sharp's extendWith 'copy'); a window larger than the image is centred as torchvision pads it.
 * - Without resizeShortSide: resize straight to height×width (aspect ignored), then `margin`
 *   repeated border pixels on each side.
 * - A source already at the target size is not resampled; otherwise lanczos3 (sharp's default),
 *   without JPEG shrink-on-load, so the result does not depend on libjpeg's DCT scaling.
 * Crop and border extension are done here in one pass over the resized pixels, which keeps
 * them exact and testable.
 */
import sharp, { type Metadata } from 'sharp';
import type { DecodeSpec, PixelImage } from '../types';

/** Default decompression-bomb guard: images above this many pixels are refused. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** sharp's names for the raster formats we accept ('heif' covers AVIF). */
const ACCEPTED = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

/** Thrown for an image that cannot be decoded; the message says why, without the file name
 *  (the caller knows the file and the row). */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

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

/** Offset of a centred `crop`-long window in a `size`-long side (negative: the window is larger). */
export function centreOffset(size: number, crop: number): number {
  return size >= crop ? roundHalfEven((size - crop) / 2) : -Math.floor((crop - size) / 2);
}

function checkSpec(spec: DecodeSpec): number {
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
function resizeTarget(width: number, height: number, spec: DecodeSpec): { width: number; height: number } {
  return spec.resizeShortSide !== undefined
    ? shortSideSize(width, height, spec.resizeShortSide)
    : { width: spec.width, height: spec.height };
}

/**
 * Cuts the output window out of interleaved 8-bit pixels (1 or 3 channels, already resized),
 * repeating border pixels outside them, and converts to planar float [0,1] with spec.channels.
 */
function place(src: Uint8Array, sw: number, sh: number, sc: 1 | 3, spec: DecodeSpec, margin: number): PixelImage {
  const oh = spec.height + 2 * margin;
  const ow = spec.width + 2 * margin;
  // The common case (MNIST-style data already at the model's size): a straight conversion.
  if (margin === 0 && sc === spec.channels && sw === ow && sh === oh) {
    const n = ow * oh;
    const out = new Float32Array(sc * n);
    if (sc === 1) for (let i = 0; i < n; i++) out[i] = UNIT[src[i]];
    else {
      for (let i = 0; i < n; i++) {
        out[i] = UNIT[src[3 * i]];
        out[n + i] = UNIT[src[3 * i + 1]];
        out[2 * n + i] = UNIT[src[3 * i + 2]];
      }
    }
    return { data: out, channels: sc, height: oh, width: ow };
  }
  const top = spec.resizeShortSide !== undefined ? centreOffset(sh, spec.height) - margin : -margin;
  const left = spec.resizeShortSide !== undefined ? centreOffset(sw, spec.width) - margin : -margin;
  const clamp = (v: number, hi: number) => (v < 0 ? 0 : v > hi ? hi : v);
  const xs = Int32Array.from({ length: ow }, (_, x) => clamp(x + left, sw - 1));
  const plane = oh * ow;
  const out = new Float32Array(spec.channels * plane);
  for (let y = 0; y < oh; y++) {
    const row = clamp(y + top, sh - 1) * sw;
    const o = y * ow;
    for (let x = 0; x < ow; x++) {
      const p = (row + xs[x]) * sc;
      if (sc === 1) {
        const v = UNIT[src[p]];
        out[o + x] = v;
        if (spec.channels === 3) {
          out[plane + o + x] = v;
          out[2 * plane + o + x] = v;
        }
      } else if (spec.channels === 3) {
        out[o + x] = UNIT[src[p]];
        out[plane + o + x] = UNIT[src[p + 1]];
        out[2 * plane + o + x] = UNIT[src[p + 2]];
      } else {
        const r = src[p];
        const g = src[p + 1];
        const b = src[p + 2];
        out[o + x] = r === g && g === b ? UNIT[r] : (0.299 * r + 0.587 * g + 0.114 * b) / 255;
      }
    }
  }
  return { data: out, channels: spec.channels, height: oh, width: ow };
}

/** Names formats sharp cannot read, from their magic bytes, for a more useful message. */
function sniff(bytes: Buffer): string | undefined {
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'a BMP image, which the decoder (sharp) cannot read; convert it to PNG';
  if (bytes.length >= 3 && bytes[0] === 0x50 && bytes[1] >= 0x31 && bytes[1] <= 0x36 && /\s/.test(String.fromCharCode(bytes[2]))) {
    return 'a PNM/PPM/PGM image, which the decoder (sharp) cannot read; convert it to PNG';
  }
  const head = bytes.subarray(0, 512).toString('latin1');
  if (/^\s*(<\?xml|<svg)/i.test(head)) return 'an SVG (vector) file, not a raster image';
  // Text: no control bytes other than whitespace in the first 512 bytes.
  if (!/[\x00-\x08\x0e-\x1f\x7f]/.test(head)) return 'a text file, not an image';
  return undefined;
}

function translate(e: unknown, bytes: Buffer, maxPixels: number): DecodeError {
  const msg = (e as Error)?.message ?? String(e);
  if (/exceeds pixel limit/i.test(msg)) {
    return new DecodeError(`image is larger than the limit of ${maxPixels} pixels (decompression-bomb guard; raise maxPixels if it is genuine)`);
  }
  if (/buffer is empty/i.test(msg)) return new DecodeError('file is empty (0 bytes)');
  if (/unsupported image format/i.test(msg)) {
    const what = sniff(bytes);
    return new DecodeError(what ? `not an image: the file is ${what}` : 'not a recognised image (PNG, JPEG, WebP, GIF, TIFF or AVIF expected)');
  }
  return new DecodeError(`corrupt or truncated image (${msg.split('\n')[0].trim()})`);
}

/**
 * Decodes an encoded image (PNG, JPEG, WebP, GIF, TIFF, AVIF) to spec. Throws DecodeError with
 * a reason for empty, non-image, unsupported, corrupt, truncated or oversized input.
 */
export async function decodeImage(bytes: Buffer, spec: DecodeSpec, maxPixels: number = DEFAULT_MAX_PIXELS): Promise<PixelImage> {
  const margin = checkSpec(spec);
  if (bytes.length === 0) throw new DecodeError('file is empty (0 bytes)');
  // failOn 'error': truncated or corrupt data fails (as PIL does), while the benign warnings
  // common in real JPEGs ("extraneous bytes before marker") do not.
  const input = { limitInputPixels: maxPixels, failOn: 'error' as const, pages: 1, page: 0 };
  let meta: Metadata;
  try {
    meta = await sharp(bytes, input).metadata();
  } catch (e) {
    throw translate(e, bytes, maxPixels);
  }
  if (!meta.format || !ACCEPTED.has(meta.format)) {
    const what = sniff(bytes);
    throw new DecodeError(what ? `not an image: the file is ${what}` : `unsupported image format '${meta.format}'`);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw new DecodeError('image has no size in its header');
  const target = resizeTarget(width, height, spec);
  try {
    let pipe = sharp(bytes, input).autoOrient().flatten({ background: '#000000' });
    if (target.width !== width || target.height !== height) {
      pipe = pipe.resize(target.width, target.height, { fit: 'fill', kernel: 'lanczos3', fastShrinkOnLoad: false });
    }
    const { data, info } = await pipe.toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`unexpected decoder output: ${info.width}x${info.height}x${info.channels}`);
    }
    return place(data, info.width, info.height, 3, spec, margin);
  } catch (e) {
    throw translate(e, bytes, maxPixels);
  }
}

/**
 * Decodes raw 8-bit grayscale pixels (row-major, width×height, e.g. one MNIST idx item) to spec,
 * with the same geometry as decodeImage. Pixels already at the target size skip sharp entirely.
 */
export async function decodeGrayPixels(pixels: Uint8Array, width: number, height: number, spec: DecodeSpec): Promise<PixelImage> {
  const margin = checkSpec(spec);
  if (pixels.length !== width * height) throw new DecodeError(`expected ${width * height} pixels, got ${pixels.length}`);
  const target = resizeTarget(width, height, spec);
  if (target.width === width && target.height === height) return place(pixels, width, height, 1, spec, margin);
  const { data, info } = await sharp(pixels, { raw: { width, height, channels: 1 } })
    .resize(target.width, target.height, { fit: 'fill', kernel: 'lanczos3' })
    .toColourspace('b-w')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new Error(`unexpected decoder output: ${info.width}x${info.height}x${info.channels}`);
  return place(data, info.width, info.height, 1, spec, margin);
}
