/**
 * The resize of only the window a crop keeps (image/resample.ts resizeU8Window, which
 * data/geometry.ts finishDecode uses) against the whole resize cut afterwards: the same bytes for
 * every filter, growing and shrinking, one or three channels, one axis unchanged, windows at the
 * borders; and finishDecode against resizing the whole image and placing the crop from it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finishDecode, place, resize } from '../../server/engine/data/geometry';
import { INTERPOLATIONS, resizeU8, resizeU8Window, type U8Image } from '../../server/engine/image/resample';
import type { DecodeSpec } from '../../server/engine/types';

function noise(width: number, height: number, channels: number, seed: number): U8Image {
  const data = new Uint8Array(width * height * channels);
  let a = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    data[i] = a >>> 24;
  }
  return { data, width, height, channels };
}

/** Rows [y0, y1) and columns [x0, x1) of an interleaved image, as one array. */
function cut(img: U8Image, x0: number, x1: number, y0: number, y1: number): Uint8Array {
  const C = img.channels;
  const out = new Uint8Array((x1 - x0) * (y1 - y0) * C);
  for (let y = y0; y < y1; y++) out.set(img.data.subarray((y * img.width + x0) * C, (y * img.width + x1) * C), (y - y0) * (x1 - x0) * C);
  return out;
}

test('resizeU8Window gives the bytes of the whole resize, cut to the window, for every filter and shape', () => {
  let seed = 1;
  const shapes: Array<[number, number, number, number, number]> = [
    // source w, h → target w, h, channels
    [53, 41, 37, 29, 3], // shrink both
    [23, 19, 61, 45, 3], // grow both
    [40, 30, 40, 17, 1], // width unchanged
    [40, 30, 27, 30, 3], // height unchanged
    [31, 29, 31, 29, 3], // size unchanged
    [97, 11, 13, 44, 1], // shrink one axis, grow the other
  ];
  for (const [sw, sh, tw, th, C] of shapes) {
    const src = noise(sw, sh, C, seed++);
    for (const filter of INTERPOLATIONS) {
      const whole = resizeU8(src, tw, th, filter);
      const windows = [
        { x0: 0, x1: tw, y0: 0, y1: th },
        { x0: 3, x1: tw - 2, y0: 1, y1: th - 4 },
        { x0: 0, x1: 1, y0: th - 1, y1: th },
        { x0: tw - 5, x1: tw, y0: 0, y1: 6 },
      ];
      for (const win of windows) {
        const got = resizeU8Window(src, tw, th, filter, win);
        assert.equal(got.width, win.x1 - win.x0);
        assert.equal(got.height, win.y1 - win.y0);
        assert.deepEqual(got.data, cut(whole, win.x0, win.x1, win.y0, win.y1), `${sw}x${sh}→${tw}x${th}x${C} ${filter} ${JSON.stringify(win)}`);
      }
    }
  }
  assert.throws(() => resizeU8Window(noise(8, 8, 1, 1), 4, 4, 'bilinear', { x0: 2, x1: 2, y0: 0, y1: 4 }), RangeError);
  assert.throws(() => resizeU8Window(noise(8, 8, 1, 1), 4, 4, 'bilinear', { x0: 0, x1: 5, y0: 0, y1: 4 }), RangeError);
});

test('finishDecode equals the whole image resized, then cropped with its margin (borders repeated where the margin passes the image)', () => {
  const specs: DecodeSpec[] = [
    { channels: 3, height: 24, width: 24, resizeShortSide: 28, margin: 3 },
    { channels: 3, height: 24, width: 20, resizeShortSide: 26, margin: 6, cropRounding: 'floor' },
    { channels: 1, height: 16, width: 16, margin: 2, interpolation: 'lanczos' },
    { channels: 3, height: 30, width: 30, resizeShortSide: 30, margin: 9, interpolation: 'bicubic' }, // the margin passes the short side
    { channels: 3, height: 40, width: 40, resizeShortSide: 32, margin: 1, interpolation: 'nearest' }, // the crop larger than the image
    { channels: 3, height: 24, width: 24, resizeShortSide: 28, margin: 2, resampler: 'tensor-antialias' },
  ];
  let seed = 100;
  for (const spec of specs) {
    for (const [w, h] of [[70, 50], [33, 61], [28, 28]]) {
      const raw = noise(w, h, spec.channels, seed++);
      const got = finishDecode(raw, spec);
      const tw = spec.resizeShortSide === undefined ? spec.width : w <= h ? spec.resizeShortSide : Math.floor((spec.resizeShortSide * w) / h);
      const th = spec.resizeShortSide === undefined ? spec.height : w <= h ? Math.floor((spec.resizeShortSide * h) / w) : spec.resizeShortSide;
      const whole = resize(raw, tw, th, spec);
      assert.deepEqual(got, place(whole.data, whole.width, whole.height, spec, spec.margin ?? 0), `${w}x${h} ${JSON.stringify(spec)}`);
    }
  }
});
