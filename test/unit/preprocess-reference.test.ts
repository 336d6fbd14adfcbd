/**
 * Skeptic's decoding and resampling against torchvision's, pixel for pixel: the reference
 * (test/reference/torchvision/, written by its make_reference.py with torchvision 0.14 on PIL
 * 9.4) holds torchvision's output for fixture JPEGs (plain, with an ICC profile, grayscale, odd
 * sizes), a CMYK JPEG and a tiny PNG, with all six filters, downscaling and upscaling, short-side
 * resize + centre crop and straight resize, 3 and 1 channels; and torchvision's resize of uint8
 * tensors (antialias off and on) on three of them. Reading it needs no Python.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { decodeImage } from '../../server/engine/data/decode';
import type { DecodeSpec, Interpolation, Resampler } from '../../server/engine/types';

const REF = resolve(__dirname, '../reference/torchvision');
const FIXTURES = resolve(__dirname, '../../../shared/fixtures');

interface Case {
  input: string;
  mode: string;
  channels: 1 | 3;
  height: number;
  width: number;
  resizeShortSide?: number;
  interpolation: Interpolation;
  /** Absent: torchvision on PIL images; else torchvision's resize on uint8 tensors. */
  resampler?: Resampler;
  offset: number;
  length: number;
}

const meta = JSON.parse(readFileSync(join(REF, 'reference.json'), 'utf8')) as { cases: Case[] };
const blob = readFileSync(join(REF, 'reference.bin'));

function inputPath(input: string): string {
  const [kind, path] = input.split(/:(.*)/s);
  return kind === 'fixture' ? join(FIXTURES, path) : join(REF, path);
}

/** Compares one case; returns the number of values and of exact ones. Asserts ±1 everywhere. */
async function check(c: Case): Promise<{ n: number; exact: number }> {
  const spec: DecodeSpec = { channels: c.channels, height: c.height, width: c.width, interpolation: c.interpolation };
  if (c.resizeShortSide !== undefined) spec.resizeShortSide = c.resizeShortSide;
  if (c.resampler !== undefined) spec.resampler = c.resampler;
  const img = await decodeImage(readFileSync(inputPath(c.input)), spec);
  const ref = blob.subarray(c.offset, c.offset + c.length);
  assert.equal(img.data.length, ref.length, `${c.input} ${JSON.stringify(spec)}: size`);
  let exact = 0;
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(Math.round(img.data[i] * 255) - ref[i]);
    if (d === 0) exact++;
    if (d > worst) worst = d;
  }
  assert.ok(worst <= 1, `${c.input} ${JSON.stringify(spec)}: off by ${worst}/255 somewhere`);
  return { n: ref.length, exact };
}

const groups = new Map<string, Case[]>();
for (const c of meta.cases) {
  const key = `${c.input}${c.resampler ? ` [${c.resampler}]` : ''}`;
  groups.set(key, [...(groups.get(key) ?? []), c]);
}

let total = 0;
let exact = 0;
for (const [input, cases] of groups) {
  const fixture = input.startsWith('fixture:');
  // torchvision's tensor resize is computed in float32 there and in float64 here: a value on a
  // rounding boundary may land one level apart; Pillow's path is integer arithmetic, and exact.
  const skip = fixture && !existsSync(FIXTURES) ? `no fixtures at ${FIXTURES}` : false;
  const filters = [...new Set(cases.map((c) => c.interpolation))].join(', ');
  test(`${input} (${cases[0].mode}): ${cases.length} cases (${filters}) match torchvision within 1/255`, { skip }, async () => {
    let e = 0;
    let n = 0;
    for (const c of cases) {
      const r = await check(c);
      n += r.n;
      e += r.exact;
    }
    total += n;
    exact += e;
    assert.ok(e / n >= 0.99, `${input}: ${e} of ${n} values exact`);
  });
}

test('at least 99% of all reference values are exact', (t) => {
  if (total === 0) return;
  assert.ok(exact / total >= 0.99, `${exact} of ${total} exact`);
  t.diagnostic(`${exact} of ${total} values exact`);
});

test('the reference covers all six filters, up- and downscaling, grayscale and CMYK', () => {
  const interps = new Set(meta.cases.map((c) => c.interpolation));
  assert.deepEqual([...interps].sort(), ['bicubic', 'bilinear', 'box', 'hamming', 'lanczos', 'nearest']);
  assert.ok(meta.cases.some((c) => c.mode === 'CMYK'));
  assert.ok(meta.cases.some((c) => c.mode === 'L'));
  assert.ok(meta.cases.some((c) => c.channels === 1));
  assert.ok(meta.cases.some((c) => c.resizeShortSide !== undefined && c.resizeShortSide > 500), 'an upscale');
  assert.ok(meta.cases.some((c) => c.resampler === 'tensor') && meta.cases.some((c) => c.resampler === 'tensor-antialias'));
});
