/**
 * torchvision's tensor resize (torchvision 0.14 `F.resize` on a uint8 tensor, i.e. PyTorch's
 * `interpolate` on the image cast to float32, then clamped for bicubic and rounded half to even
 * back to uint8), for pipelines that decode to tensors (`read_image`, `pil_to_tensor`) before
 * resizing. It differs from Pillow's (resample.ts), which torchvision uses on PIL images:
 *
 * - without antialiasing (torchvision 0.14's default on tensors), bilinear and bicubic sample
 *   2 or 4 taps at src = (i + 0.5)·in/out − 0.5 whatever the scale, so a downscale aliases;
 *   bicubic uses a = −0.75 and clamps the tap indices at the border; bilinear clamps src ≥ 0;
 * - with antialiasing the filter is stretched by the scale as Pillow's is (bicubic a = −0.5),
 *   but computed in floating point with no intermediate rounding to 8 bits;
 * - nearest takes floor(i·in/out) in float32 (Pillow takes the pixel under the centre).
 *
 * Weights are computed in double precision here (PyTorch uses float32); that moves a value by one
 * level only where the exact result sits on a rounding boundary.
 */
import type { Interpolation, U8Image } from './resample';

export const TENSOR_INTERPOLATIONS: readonly Interpolation[] = ['nearest', 'bilinear', 'bicubic'];

interface Axis {
  /** Taps per output. */
  taps: number;
  /** Source index of each tap (clamped into the image), out × taps. */
  idx: Int32Array;
  w: Float64Array;
}

function cubicWeights(t: number, A: number, w: Float64Array, o: number): void {
  const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  w[o] = c2(t + 1);
  w[o + 1] = c1(t);
  w[o + 2] = c1(1 - t);
  w[o + 3] = c2(2 - t);
}

function plainAxis(mode: 'bilinear' | 'bicubic', inSize: number, outSize: number): Axis {
  const scale = Math.fround(inSize / outSize);
  const taps = mode === 'bilinear' ? 2 : 4;
  const idx = new Int32Array(outSize * taps);
  const w = new Float64Array(outSize * taps);
  const clampI = (v: number) => (v < 0 ? 0 : v > inSize - 1 ? inSize - 1 : v);
  for (let i = 0; i < outSize; i++) {
    let src = Math.fround(scale * (i + 0.5) - 0.5);
    const o = i * taps;
    if (mode === 'bilinear') {
      if (src < 0) src = 0;
      const i0 = Math.trunc(src);
      const l1 = Math.fround(src - i0);
      idx[o] = i0;
      idx[o + 1] = i0 < inSize - 1 ? i0 + 1 : i0;
      w[o] = Math.fround(1 - l1);
      w[o + 1] = l1;
    } else {
      const i0 = Math.floor(src);
      cubicWeights(Math.fround(src - i0), -0.75, w, o);
      for (let k = 0; k < 4; k++) idx[o + k] = clampI(i0 - 1 + k);
    }
  }
  return { taps, idx, w };
}

function aaAxis(mode: 'bilinear' | 'bicubic', inSize: number, outSize: number): Axis {
  const scale = Math.fround(inSize / outSize);
  const interp = mode === 'bilinear' ? 2 : 4;
  const support = scale >= 1 ? interp * 0.5 * scale : interp * 0.5;
  const invscale = scale >= 1 ? 1 / scale : 1;
  const taps = Math.ceil(support) * 2 + 1;
  const idx = new Int32Array(outSize * taps);
  const w = new Float64Array(outSize * taps);
  const filter = mode === 'bilinear'
    ? (x: number) => { const a = Math.abs(x); return a < 1 ? 1 - a : 0; }
    : (x: number) => {
      const a = Math.abs(x);
      const A = -0.5;
      if (a < 1) return ((A + 2) * a - (A + 3)) * a * a + 1;
      if (a < 2) return (((a - 5) * a + 8) * a - 4) * A;
      return 0;
    };
  for (let i = 0; i < outSize; i++) {
    const centre = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const n = Math.min(Math.trunc(centre + support + 0.5), inSize) - lo;
    const o = i * taps;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const v = filter((j + lo - centre + 0.5) * invscale);
      w[o + j] = v;
      total += v;
    }
    for (let j = 0; j < taps; j++) {
      idx[o + j] = j < n ? lo + j : lo; // zero weights beyond n
      if (j < n && total !== 0) w[o + j] /= total;
    }
  }
  return { taps, idx, w };
}

/** PyTorch's nearest source index: floor(i·scale) in float32, with its exact ×1 and ×2 cases. */
function nearestAxis(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  const scale = Math.fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    if (outSize === inSize) idx[i] = i;
    else if (outSize === 2 * inSize) idx[i] = i >> 1;
    else idx[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  }
  return idx;
}

/** torch.round: half to even, then the uint8 range (bicubic overshoots; bilinear cannot). */
function toU8(v: number): number {
  let r = Math.round(v);
  if (r - v === 0.5 && r % 2 !== 0) r -= 1;
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** Resizes an interleaved 8-bit image as torchvision's F.resize does on a uint8 tensor. */
export function resizeTensorU8(src: U8Image, outW: number, outH: number, filter: Interpolation, antialias: boolean): U8Image {
  if (!TENSOR_INTERPOLATIONS.includes(filter)) {
    throw new RangeError(`torchvision resizes tensors with nearest, bilinear or bicubic only, not ${filter}`);
  }
  if (outW === src.width && outH === src.height) return src;
  const C = src.channels;
  const s = src.data;
  const out = new Uint8Array(outW * outH * C);
  if (filter === 'nearest') {
    const xs = nearestAxis(src.width, outW);
    const ys = nearestAxis(src.height, outH);
    let o = 0;
    for (let y = 0; y < outH; y++) {
      const r = ys[y] * src.width;
      for (let x = 0; x < outW; x++) for (let c = 0; c < C; c++) out[o++] = s[(r + xs[x]) * C + c];
    }
    return { data: out, width: outW, height: outH, channels: C };
  }
  const mode = filter as 'bilinear' | 'bicubic';
  if (antialias) {
    // Separable, width first (PyTorch's order), in floating point throughout.
    const ax = aaAxis(mode, src.width, outW);
    const ay = aaAxis(mode, src.height, outH);
    const tmp = new Float64Array(src.height * outW * C);
    for (let y = 0; y < src.height; y++) {
      for (let x = 0; x < outW; x++) {
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let t = 0; t < ax.taps; t++) acc += s[(y * src.width + ax.idx[x * ax.taps + t]) * C + c] * ax.w[x * ax.taps + t];
          tmp[(y * outW + x) * C + c] = acc;
        }
      }
    }
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let t = 0; t < ay.taps; t++) acc += tmp[(ay.idx[y * ay.taps + t] * outW + x) * C + c] * ay.w[y * ay.taps + t];
          out[(y * outW + x) * C + c] = toU8(acc);
        }
      }
    }
    return { data: out, width: outW, height: outH, channels: C };
  }
  // Without antialiasing: Σ_h w_h · Σ_w w_w · pixel, the height taps outermost (PyTorch's order).
  const ax = plainAxis(mode, src.width, outW);
  const ay = plainAxis(mode, src.height, outH);
  const T = ax.taps;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let ty = 0; ty < T; ty++) {
          const row = ay.idx[y * T + ty] * src.width;
          let inner = 0;
          for (let tx = 0; tx < T; tx++) inner += s[(row + ax.idx[x * T + tx]) * C + c] * ax.w[x * T + tx];
          acc += inner * ay.w[y * T + ty];
        }
        out[(y * outW + x) * C + c] = toU8(acc);
      }
    }
  }
  return { data: out, width: outW, height: outH, channels: C };
}
