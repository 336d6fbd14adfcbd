/**
 * Pixel-space image operations the probes share: crops, batching, resampling. Images are planar
 * CHW float32 in [0,1] (see PixelImage in ../types).
 */
import type { PixelBatch, PixelImage } from '../types';

/** Copies the h×w window at (top, left) out of `img`. The window must lie inside the image. */
export function crop(img: PixelImage, top: number, left: number, h: number, w: number): PixelImage {
  if (top < 0 || left < 0 || top + h > img.height || left + w > img.width) {
    throw new RangeError(`crop ${h}x${w}@(${top},${left}) outside ${img.height}x${img.width}`);
  }
  const out = new Float32Array(img.channels * h * w);
  for (let c = 0; c < img.channels; c++) {
    const src = c * img.height * img.width;
    const dst = c * h * w;
    for (let y = 0; y < h; y++) {
      const s = src + (top + y) * img.width + left;
      out.set(img.data.subarray(s, s + w), dst + y * w);
    }
  }
  return { data: out, channels: img.channels, height: h, width: w };
}

/** The centre of an image decoded with `margin` extra pixels on each side. */
export function centre(img: PixelImage, margin: number): PixelImage {
  if (margin === 0) return img;
  return crop(img, margin, margin, img.height - 2 * margin, img.width - 2 * margin);
}

/** Packs equally sized images into one N×C×H×W batch. */
export function toBatch(images: PixelImage[]): PixelBatch {
  if (images.length === 0) throw new RangeError('empty batch');
  const { channels, height, width } = images[0];
  const size = channels * height * width;
  const data = new Float32Array(images.length * size);
  images.forEach((img, i) => {
    if (img.channels !== channels || img.height !== height || img.width !== width) {
      throw new RangeError('images in a batch must have the same size');
    }
    data.set(img.data, i * size);
  });
  return { data, n: images.length, channels, height, width };
}

/**
 * Area-average downscale by an integer factor (each output pixel is the mean of a f×f block);
 * the size must divide, and the caller pads or crops first. Exact and deterministic, which a
 * general resampler would not make easy to test.
 */
export function downscale(img: PixelImage, f: number): PixelImage {
  const h = Math.floor(img.height / f);
  const w = Math.floor(img.width / f);
  const out = new Float32Array(img.channels * h * w);
  const inv = 1 / (f * f);
  for (let c = 0; c < img.channels; c++) {
    const src = c * img.height * img.width;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let dy = 0; dy < f; dy++) {
          const row = src + (y * f + dy) * img.width + x * f;
          for (let dx = 0; dx < f; dx++) s += img.data[row + dx];
        }
        out[c * h * w + y * w + x] = s * inv;
      }
    }
  }
  return { data: out, channels: img.channels, height: h, width: w };
}

/** Pastes `img` into a new canvas of the given size, filled with `fill`, at (top, left). */
export function paste(
  img: PixelImage,
  height: number,
  width: number,
  top: number,
  left: number,
  fill = 0,
): PixelImage {
  const out = new Float32Array(img.channels * height * width).fill(fill);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < img.height; y++) {
      const s = c * img.height * img.width + y * img.width;
      out.set(img.data.subarray(s, s + img.width), c * height * width + (top + y) * width + left);
    }
  }
  return { data: out, channels: img.channels, height, width };
}
