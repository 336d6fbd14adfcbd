/**
 * Decoding images into pixel space (float32 CHW in [0,1], see PixelImage), with the pixels
 * torchvision gets from PIL: `Image.open(f).convert('RGB')` (or 'L'), `Resize`, `CenterCrop`.
 *
 * Decoding (sharp, i.e. libvips on libjpeg-turbo, as PIL is):
 * - Embedded ICC profiles are ignored, as PIL (and so torchvision) ignores them. With that,
 *   sharp's JPEG decode is byte-identical to PIL 9.4's on all 100 fixture ImageNet JPEGs
 *   (applying the profiles, as sharp does by default, changes 5 of them by up to 49 levels).
 * - CMYK is converted as PIL converts it, without a colour profile: R = (255−K) −
 *   (255−K)·C/255 with PIL's integer rounding (likewise G, B); Adobe's inverted CMYK JPEGs are
 *   un-inverted by the decoder, as PIL does.
 * - Grayscale, palette and 16-bit inputs become 8-bit sRGB (sharp's conversion).
 * - Alpha is flattened onto BLACK (i.e. premultiplied): the convention of MNIST-style data
 *   (white strokes on black) and the same for every image. PIL's convert('RGB') would instead
 *   drop the alpha channel and keep the colour underneath (the same for opaque pixels).
 * - One output channel is PIL's convert('L'): ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B) in
 *   PIL's 16-bit fixed point, rounded to 8 bits, before resizing. Grey sources come back exactly.
 * - EXIF orientation is applied (PIL's Image.open does not; none of the fixtures carries one);
 *   GIF, WebP and TIFF give their first frame/page.
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
 * - A source already at the target size is not resampled; otherwise it is resampled with
 *   spec.interpolation (default bilinear) exactly as PIL's Image.resize does (image/resample.ts).
 * Crop and border extension are done here in one pass over the resized pixels, which keeps
 * them exact and testable.
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import type { U8Image } from '../image/resample';
import type { DecodeSpec, PixelImage } from '../types';
import { checkSpec, finishDecode, place, resize, resizeTarget } from './geometry';

export { centreOffset, finishDecode, roundHalfEven, shortSideSize } from './geometry';

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
  return finishDecode(await decodeRaw(bytes, spec, maxPixels), spec);
}

/**
 * decodeImage's first part: the decoder (sharp, its work in libuv's threads) to 8-bit pixels,
 * interleaved, spec.channels per pixel, at the file's own size. Throws DecodeError as decodeImage.
 */
export async function decodeRaw(bytes: Buffer, spec: DecodeSpec, maxPixels: number = DEFAULT_MAX_PIXELS): Promise<U8Image> {
  checkSpec(spec);
  if (bytes.length === 0) throw new DecodeError('file is empty (0 bytes)');
  // failOn 'error': truncated or corrupt data fails (as PIL does), while the benign warnings
  // common in real JPEGs ("extraneous bytes before marker") do not.
  // ignoreIcc: PIL ignores embedded colour profiles, so torchvision's pixels are the file's own.
  const input = { limitInputPixels: maxPixels, failOn: 'error' as const, pages: 1, page: 0, ignoreIcc: true };
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
  let pixels: Uint8Array;
  let w: number;
  let h: number;
  try {
    let raw: { data: Buffer; info: OutputInfo };
    if (meta.space === 'cmyk') {
      // The decoder's CMYK bytes, untouched by a colour profile, converted as PIL does.
      raw = await sharp(bytes, input).autoOrient().pipelineColourspace('cmyk').toColourspace('cmyk').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      if (raw.info.channels !== 4) throw new Error(`unexpected decoder output: ${raw.info.width}x${raw.info.height}x${raw.info.channels}`);
      pixels = cmykToRgb(raw.data);
    } else {
      raw = await sharp(bytes, input).autoOrient().flatten({ background: '#000000' }).toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      if (raw.info.channels !== 3) throw new Error(`unexpected decoder output: ${raw.info.width}x${raw.info.height}x${raw.info.channels}`);
      pixels = raw.data;
    }
    w = raw.info.width;
    h = raw.info.height;
    if (pixels.length !== w * h * 3) throw new Error(`unexpected decoder output: ${w}x${h}`);
  } catch (e) {
    throw translate(e, bytes, maxPixels);
  }
  const sc = spec.channels;
  if (sc === 1) pixels = rgbToL(pixels);
  return { data: pixels, width: w, height: h, channels: sc };
}

/** PIL's CMYK → RGB: (255 − K) − (255 − K)·C/255 per channel, with its rounded division by 255. */
export function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const n = cmyk.length >> 2;
  const out = new Uint8Array(n * 3);
  for (let i = 0, p = 0, o = 0; i < n; i++, p += 4, o += 3) {
    const nk = 255 - cmyk[p + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[p + c] * nk + 128;
      out[o + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return out;
}

function grayToRgb(g: Uint8Array): Uint8Array {
  const out = new Uint8Array(g.length * 3);
  for (let i = 0, o = 0; i < g.length; i++, o += 3) out[o] = out[o + 1] = out[o + 2] = g[i];
  return out;
}

/** PIL's convert('L'): (19595 R + 38470 G + 7471 B + 2^15) >> 16. The weights sum to 2^16, so grey stays grey. */
export function rgbToL(rgb: Uint8Array): Uint8Array {
  const n = (rgb.length / 3) | 0;
  const out = new Uint8Array(n);
  for (let i = 0, p = 0; i < n; i++, p += 3) out[i] = (rgb[p] * 19595 + rgb[p + 1] * 38470 + rgb[p + 2] * 7471 + 0x8000) >> 16;
  return out;
}

/**
 * Decodes raw 8-bit grayscale pixels (row-major, width×height, e.g. one MNIST idx item) to spec,
 * with the same geometry and resampling as decodeImage.
 */
export async function decodeGrayPixels(pixels: Uint8Array, width: number, height: number, spec: DecodeSpec): Promise<PixelImage> {
  const margin = checkSpec(spec);
  if (pixels.length !== width * height) throw new DecodeError(`expected ${width * height} pixels, got ${pixels.length}`);
  const target = resizeTarget(width, height, spec);
  const r = resize({ data: pixels, width, height, channels: 1 }, target.width, target.height, spec);
  // A 3-channel model sees the grey value in R, G and B.
  const data = spec.channels === 3 ? grayToRgb(r.data) : r.data;
  return place(data, r.width, r.height, spec, margin);
}
