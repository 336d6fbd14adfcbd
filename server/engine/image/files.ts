/** Writing pixel-space images and arrays as files: PNG for people, .npy for numpy.load. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadSharp } from './sharp';
import type { PixelImage } from '../types';

/** Planar CHW floats in [0,1] → interleaved HWC bytes, optionally enlarged by an integer factor
 *  with nearest-neighbour pixels (so a 28×28 digit stays crisp in a gallery). */
export function toBytes(img: PixelImage, scale = 1): Buffer {
  const { channels: c, height: h, width: w } = img;
  const out = Buffer.alloc(c * h * w * scale * scale);
  if (scale === 1) {
    // the common case (JPEG's input at every quality of every image) plane by plane, no index arithmetic per value
    const n = h * w;
    for (let ch = 0; ch < c; ch++) {
      for (let p = 0; p < n; p++) {
        const v = img.data[ch * n + p];
        out[p * c + ch] = Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * 255);
      }
    }
    return out;
  }
  const W = w * scale;
  for (let y = 0; y < h * scale; y++) {
    const sy = Math.floor(y / scale);
    for (let x = 0; x < W; x++) {
      const sx = Math.floor(x / scale);
      for (let ch = 0; ch < c; ch++) {
        const v = img.data[ch * h * w + sy * w + sx];
        out[(y * W + x) * c + ch] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
    }
  }
  return out;
}

export async function writePng(file: string, img: PixelImage, scale = 1): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await loadSharp()(toBytes(img, scale), { raw: { width: img.width * scale, height: img.height * scale, channels: img.channels } })
    // zlib's default level: 2–3% larger files than 9 for audit images, at about half the CPU
    .png({ compressionLevel: 6 })
    .toFile(file);
}

/** NumPy .npy version 1.0, little-endian float32, C order. */
export function npyBytes(data: Float32Array, shape: number[]): Buffer {
  if (shape.reduce((a, b) => a * b, 1) !== data.length) throw new RangeError(`shape ${shape} does not match ${data.length} values`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

export function writeNpy(file: string, data: Float32Array, shape: number[]): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, npyBytes(data, shape));
}
