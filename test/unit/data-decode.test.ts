import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { centreOffset, DecodeError, decodeGrayPixels, decodeImage, roundHalfEven, shortSideSize } from '../../server/engine/data/decode';
import type { PixelImage } from '../../server/engine/types';

const f = (v: number) => Math.fround(v / 255);
const rgb = (w: number, h: number, px: number[]) => sharp(Buffer.from(px), { raw: { width: w, height: h, channels: 3 } });
const plane = (img: PixelImage, c: number) => Array.from(img.data.subarray(c * img.height * img.width, (c + 1) * img.height * img.width));

// 2×2: red, green / blue, (10,20,30)
const PX = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];

test('a 2×2 RGB PNG decodes to exact CHW floats in [0,1]', async () => {
  const png = await rgb(2, 2, PX).png().toBuffer();
  const img = await decodeImage(png, { channels: 3, height: 2, width: 2 });
  assert.equal(img.channels, 3);
  assert.equal(img.height, 2);
  assert.equal(img.width, 2);
  assert.deepEqual(plane(img, 0), [1, 0, 0, f(10)]);
  assert.deepEqual(plane(img, 1), [0, 1, 0, f(20)]);
  assert.deepEqual(plane(img, 2), [0, 0, 1, f(30)]);
});

test("one channel is PIL's convert('L'): ITU-R 601 luma rounded to 8 bits; grey sources come back exactly", async () => {
  const png = await rgb(2, 2, PX).png().toBuffer();
  const img = await decodeImage(png, { channels: 1, height: 2, width: 2 });
  // By hand: 0.299·255 = 76.2 → 76, 0.587·255 = 149.7 → 150, 0.114·255 = 29.07 → 29,
  // 0.299·10 + 0.587·20 + 0.114·30 = 18.15 → 18 (what PIL 9.4 gives for these pixels).
  assert.deepEqual(Array.from(img.data), [76, 150, 29, 18].map(f));

  const grey = await sharp(Buffer.from([0, 100, 200, 255]), { raw: { width: 2, height: 2, channels: 1 } }).png().toBuffer();
  assert.deepEqual(Array.from((await decodeImage(grey, { channels: 1, height: 2, width: 2 })).data), [0, f(100), f(200), 1]);
  // Grey to three channels: the value repeats in R, G and B.
  const three = await decodeImage(grey, { channels: 3, height: 2, width: 2 });
  for (let c = 0; c < 3; c++) assert.deepEqual(plane(three, c), [0, f(100), f(200), 1]);
});

test('margin without resizeShortSide repeats border pixels', async () => {
  const png = await rgb(2, 2, PX).png().toBuffer();
  const img = await decodeImage(png, { channels: 3, height: 2, width: 2, margin: 1 });
  assert.equal(img.height, 4);
  assert.equal(img.width, 4);
  const r = [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, f(10), f(10), 0, 0, f(10), f(10)];
  assert.deepEqual(plane(img, 0), r);
});

test('resizeShortSide at the source size crops the centre without resampling', async () => {
  // 4 wide, 2 high; grey values 10..80 so every pixel is distinct.
  const v = [10, 20, 30, 40, 50, 60, 70, 80];
  const png = await sharp(Buffer.from(v), { raw: { width: 4, height: 2, channels: 1 } }).png().toBuffer();
  const img = await decodeImage(png, { channels: 1, height: 2, width: 2, resizeShortSide: 2 });
  assert.deepEqual(Array.from(img.data), [f(20), f(30), f(60), f(70)]);
  // With a margin the window grows around that same crop; rows past the image repeat.
  const m = await decodeImage(png, { channels: 1, height: 2, width: 2, resizeShortSide: 2, margin: 1 });
  assert.equal(m.width, 4);
  assert.deepEqual(Array.from(m.data), [10, 20, 30, 40, 10, 20, 30, 40, 50, 60, 70, 80, 50, 60, 70, 80].map(f));
  // Centre of the margin image = the margin-free crop.
  const centre = [5, 6, 9, 10].map((i) => m.data[i]);
  assert.deepEqual(centre, Array.from(img.data));
});

test('a crop window larger than the resized image extends its borders', async () => {
  const png = await sharp(Buffer.from([10, 20, 30, 40]), { raw: { width: 2, height: 2, channels: 1 } }).png().toBuffer();
  const img = await decodeImage(png, { channels: 1, height: 4, width: 4, resizeShortSide: 2 });
  assert.deepEqual(Array.from(img.data), [10, 10, 20, 20, 10, 10, 20, 20, 30, 30, 40, 40, 30, 30, 40, 40].map(f));
});

test('centre-crop geometry follows torchvision (Resize + CenterCrop)', () => {
  assert.deepEqual(shortSideSize(500, 375, 256), { width: 341, height: 256 }); // int(256·500/375)
  assert.deepEqual(shortSideSize(375, 500, 256), { width: 256, height: 341 });
  assert.equal(centreOffset(256, 224), 16);
  assert.equal(centreOffset(5, 2), 2); // round(1.5) = 2
  assert.equal(centreOffset(7, 2), 2); // round(2.5) = 2 (half to even)
  assert.equal(centreOffset(2, 5), -1); // torchvision pads (5-2)//2 = 1 on the top/left
  // Hugging Face's center_crop: (size − crop) // 2.
  assert.equal(centreOffset(5, 2, 'floor'), 1);
  assert.equal(centreOffset(7, 2, 'floor'), 2);
  assert.equal(centreOffset(256, 224, 'floor'), 16);
  assert.equal(roundHalfEven(0.5), 0);
  assert.equal(roundHalfEven(3.5), 4);
});

test("cropRounding 'floor' moves an odd-margin crop one pixel towards the top left", async () => {
  // 5 wide, 2 high, resizeShortSide 2 (no resampling), crop 2×2: margin 3 → offset 2 (round 1.5 half to even) or 1 (floor).
  const v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
  const png = await sharp(Buffer.from(v), { raw: { width: 5, height: 2, channels: 1 } }).png().toBuffer();
  const tv = await decodeImage(png, { channels: 1, height: 2, width: 2, resizeShortSide: 2 });
  assert.deepEqual(Array.from(tv.data), [30, 40, 80, 90].map(f));
  const hf = await decodeImage(png, { channels: 1, height: 2, width: 2, resizeShortSide: 2, cropRounding: 'floor' });
  assert.deepEqual(Array.from(hf.data), [20, 30, 70, 80].map(f));
});

test('resampling a constant image keeps the constant; fill ignores aspect', async () => {
  const png = await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: 200, g: 100, b: 50 } } }).png().toBuffer();
  const img = await decodeImage(png, { channels: 3, height: 3, width: 3 });
  assert.equal(img.data.length, 27);
  assert.deepEqual(plane(img, 0), new Array(9).fill(f(200)));
  assert.deepEqual(plane(img, 2), new Array(9).fill(f(50)));
  const s = await decodeImage(png, { channels: 3, height: 4, width: 4, resizeShortSide: 5 });
  assert.equal(s.height, 4);
  assert.deepEqual(plane(s, 1), new Array(16).fill(f(100)));
});

test('alpha is flattened onto black', async () => {
  const rgba = Buffer.from([255, 255, 255, 0, 255, 255, 255, 255, 255, 0, 0, 128, 0, 0, 0, 0]);
  const png = await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).png().toBuffer();
  const img = await decodeImage(png, { channels: 3, height: 2, width: 2 });
  const r = plane(img, 0);
  assert.equal(r[0], 0); // fully transparent white → black
  assert.equal(r[1], 1); // opaque white stays white
  assert.ok(Math.abs(r[2] - 128 / 255) <= 1 / 255); // half-transparent red → half red
  assert.equal(plane(img, 1)[2], 0);
});

test('16-bit, palette, CMYK and grey+alpha inputs are converted, not rejected', async () => {
  const g16 = await sharp(new Uint16Array([65535, 0, 32768, 257]), { raw: { width: 2, height: 2, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  assert.equal((await sharp(g16).metadata()).depth, 'ushort');
  const a = await decodeImage(g16, { channels: 1, height: 2, width: 2 });
  const want = [1, 0, 32768 / 65535, 257 / 65535];
  a.data.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 0.5 / 255 + 1e-7, `pixel ${i}: ${v}`));

  const pal = await rgb(2, 2, PX).png({ palette: true }).toBuffer();
  assert.deepEqual(plane(await decodeImage(pal, { channels: 3, height: 2, width: 2 }), 0), [1, 0, 0, f(10)]);

  const cmyk = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 255, g: 0, b: 0 } } }).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  const c = await decodeImage(cmyk, { channels: 3, height: 8, width: 8 });
  assert.equal(c.channels, 3);
  assert.ok(plane(c, 0).every((v) => v > 0.7) && plane(c, 1).every((v) => v < 0.3) && plane(c, 2).every((v) => v < 0.3), 'CMYK red stays red');

  const ga = await sharp(Buffer.from([200, 255, 200, 0]), { raw: { width: 2, height: 1, channels: 2 } }).png().toBuffer();
  assert.deepEqual(Array.from((await decodeImage(ga, { channels: 1, height: 1, width: 2 })).data), [f(200), 0]);
});

test('WebP, GIF (first frame), TIFF and AVIF decode', async () => {
  const spec = { channels: 3 as const, height: 2, width: 2 };
  for (const [name, buf] of [
    ['webp', await rgb(2, 2, PX).webp({ lossless: true }).toBuffer()],
    ['tiff', await rgb(2, 2, PX).tiff({ compression: 'lzw' }).toBuffer()],
    ['avif', await rgb(2, 2, PX).avif({ lossless: true }).toBuffer()],
  ] as const) {
    assert.deepEqual(plane(await decodeImage(buf, spec), 0), [1, 0, 0, f(10)], name);
  }
  // Two frames of 2×2: red, then blue. Only the first one is decoded.
  const frames = Buffer.from([...Array(4).fill([255, 0, 0]).flat(), ...Array(4).fill([0, 0, 255]).flat()]);
  const gif = await sharp(frames, { raw: { width: 2, height: 4, channels: 3, pageHeight: 2 } }).gif().toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const g = await decodeImage(gif, spec);
  assert.deepEqual(plane(g, 0), [1, 1, 1, 1]);
  assert.deepEqual(plane(g, 2), [0, 0, 0, 0]);
});

test('EXIF orientation is applied', async () => {
  // 2×1 red|green tagged "rotate 90° clockwise": shown as 1×2, red on top.
  const png = await rgb(2, 1, [255, 0, 0, 0, 255, 0]).png().withMetadata({ orientation: 6 }).toBuffer();
  const img = await decodeImage(png, { channels: 3, height: 2, width: 1 });
  assert.deepEqual(plane(img, 0), [1, 0]);
  assert.deepEqual(plane(img, 1), [0, 1]);
});

test('bad input gives a DecodeError that says why', async () => {
  const spec = { channels: 3 as const, height: 4, width: 4 };
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png({ compressionLevel: 0 }).toBuffer();
  await assert.rejects(decodeImage(png.subarray(0, png.length >> 1), spec), (e: Error) => e instanceof DecodeError && /corrupt or truncated/.test(e.message));
  const jpg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).jpeg().toBuffer();
  await assert.rejects(decodeImage(jpg.subarray(0, jpg.length >> 1), spec), /corrupt or truncated/);
  await assert.rejects(decodeImage(Buffer.alloc(0), spec), /empty/);
  await assert.rejects(decodeImage(Buffer.from('just some text\n'), spec), /not an image: the file is a text file/);
  await assert.rejects(decodeImage(Buffer.from([0x42, 0x4d, 0, 0, 0, 0, 0x80, 0x90]), spec), /BMP/);
  await assert.rejects(decodeImage(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]), spec), /not a recognised image/);
  await assert.rejects(decodeImage(png, spec, 1000), /larger than the limit of 1000 pixels/);
  await assert.rejects(decodeImage(png, { channels: 2 as 3, height: 4, width: 4 }), RangeError);
});

test('raw grey pixels (idx) decode with the same geometry', async () => {
  const px = Uint8Array.from([0, 51, 102, 255]);
  const img = await decodeGrayPixels(px, 2, 2, { channels: 1, height: 2, width: 2, margin: 1 });
  assert.deepEqual(Array.from(img.data), [0, 0, 51, 51, 0, 0, 51, 51, 102, 102, 255, 255, 102, 102, 255, 255].map(f));
  const three = await decodeGrayPixels(px, 2, 2, { channels: 3, height: 2, width: 2 });
  assert.deepEqual(plane(three, 2), [0, 51, 102, 255].map(f));
  // Resampled path (28 → 32 style): a constant stays constant.
  const big = await decodeGrayPixels(new Uint8Array(16).fill(77), 4, 4, { channels: 1, height: 6, width: 6 });
  assert.deepEqual(Array.from(big.data), new Array(36).fill(f(77)));
});
