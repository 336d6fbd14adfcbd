#!/usr/bin/env node
// Skeptic demo data: 32x32 RGB images of four textured shapes.
//
// Every image is one shape (circle, cross, square, triangle) filled with one texture
// (stripes, dots, waves, checker) over a noisy background gradient. In the train and test
// splits each class carries "its" texture most of the time (P_TIED), so a CNN trained on
// them can learn the texture as a shortcut instead of the shape. The conflict split puts
// the shape of class A in the texture of class B (A != B) and records both, in the layout
// of Geirhos et al. (ICLR 2019): conflict/<shape>/<shape>N-<texture>N.png.
//
// Deterministic across machines: all drawing is plain IEEE double arithmetic (+ - * / sqrt
// floor round; no Math.sin/cos/exp, whose last bit may differ between engines) into a
// Uint8Array; sharp only encodes the PNGs, losslessly. Each image has its own PRNG stream
// seeded from (seed, split, index), so a split's first N images do not depend on --n.
//
// Usage: node models/demo/make-data.mjs [--split train|test|conflict|all] [--n N]
//                                       [--seed S] [--out DIR] [--force] [--quiet]
// Default: the test and conflict splits, into models/demo/data, skipped when a stamp file
// shows they are already there with the same seed, counts and generator version.

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile, stat, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export const GENERATOR_VERSION = 1;
export const SIZE = 32;
export const CLASSES = ['circle', 'cross', 'square', 'triangle']; // sorted: ImageFolder order
// The texture that goes with each class in train/test (the shortcut).
export const TEXTURE_OF = { circle: 'stripes', cross: 'dots', square: 'waves', triangle: 'checker' };
export const SPLITS = {
  train: { id: 1, n: 8000, tied: 0.95 },
  test: { id: 2, n: 400, tied: 0.95 },
  conflict: { id: 3, n: 200, tied: 0 },
};
const DEFAULT_SEED = 1;
const SUB = 4; // 4x4 supersamples per pixel (anti-aliasing)

// ---------------------------------------------------------------- PRNG and maths
function mulberry32(a) {
  return function next() {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function mix32(h) {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
function imageSeed(seed, splitId, index) {
  return mix32(mix32(mix32(seed >>> 0) ^ Math.imul(splitId, 0x9e3779b1)) ^ Math.imul(index + 1, 0x7feb352d));
}

const PI = 3.141592653589793;
const TAU = 2 * PI;
// sin by range reduction and a Taylor series: only + - * / and round, so bit-identical everywhere.
function sin(x) {
  x -= TAU * Math.round(x / TAU); // [-pi, pi]
  if (x > PI / 2) x = PI - x;
  else if (x < -PI / 2) x = -PI - x; // [-pi/2, pi/2]
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let k = 1; k <= 9; k++) {
    term *= -x2 / ((2 * k) * (2 * k + 1));
    sum += term;
  }
  return sum;
}
const cos = (x) => sin(x + PI / 2);
const frac = (x) => x - Math.floor(x);

// ---------------------------------------------------------------- colours
// HSV to RGB in [0,1]; h in [0,1).
function hsv(h, s, v) {
  const i = Math.floor(h * 6) % 6;
  const f = h * 6 - Math.floor(h * 6);
  const p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  return [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i];
}
const luma = (c) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];

// ---------------------------------------------------------------- shapes (local coords, radius 1)
const SQ = 0.8;     // half side of the square
const ARM = 0.34;   // half width of the cross's arms
const TRI = 1.25;   // circumradius of the triangle (its area then matches the others')
const SHAPES = {
  circle: (u, v) => u * u + v * v <= 1,
  square: (u, v) => u <= SQ && u >= -SQ && v <= SQ && v >= -SQ,
  cross: (u, v) => (u <= 1 && u >= -1 && v <= ARM && v >= -ARM) || (u <= ARM && u >= -ARM && v <= 1 && v >= -1),
  // equilateral triangle about its centroid, apex up (v grows downward in the image)
  triangle: (u, v) => v <= 0.5 * TRI && 1.7320508075688772 * u - v <= TRI && -1.7320508075688772 * u - v <= TRI,
};
const SYMMETRY = { circle: TAU, square: PI / 2, cross: PI / 2, triangle: TAU / 3 };

// ---------------------------------------------------------------- textures (image coords) -> 0 or 1
function makeTexture(name, rnd) {
  const phi = rnd() * PI;
  const c = cos(phi), s = sin(phi);
  const ox = rnd() * 16, oy = rnd() * 16;
  const rot = (x, y) => [c * (x - ox) - s * (y - oy), s * (x - ox) + c * (y - oy)];
  switch (name) {
    case 'stripes': {
      const P = 3.5 + rnd() * 1.5;
      return (x, y) => (frac(rot(x, y)[0] / P) < 0.5 ? 1 : 0);
    }
    case 'checker': {
      const S = 2.2 + rnd() * 1.0;
      return (x, y) => {
        const [a, b] = rot(x, y);
        return (Math.floor(a / S) + Math.floor(b / S)) & 1;
      };
    }
    case 'dots': {
      const P = 4.0 + rnd() * 1.2;
      const R2 = (0.3 * P) * (0.3 * P);
      return (x, y) => {
        const [a, b] = rot(x, y);
        const da = (frac(a / P) - 0.5) * P, db = (frac(b / P) - 0.5) * P;
        return da * da + db * db <= R2 ? 1 : 0;
      };
    }
    case 'waves': {
      const P = 4.5 + rnd() * 1.5;   // distance between wave lines
      const L = 6.0 + rnd() * 3.0;   // wavelength along the line
      const A = 1.4 + rnd() * 0.8;   // amplitude
      return (x, y) => {
        const [a, b] = rot(x, y);
        return frac((b + A * sin(TAU * a / L)) / P) < 0.5 ? 1 : 0;
      };
    }
    default:
      throw new Error(`unknown texture ${name}`);
  }
}

// ---------------------------------------------------------------- one image
/** Draws one image; returns {rgb: Uint8Array(32*32*3), shape, texture (class name)}. */
export function drawImage(seed, split, index) {
  const spec = SPLITS[split];
  const rnd = mulberry32(imageSeed(seed, spec.id, index));
  let shape, texture;
  if (split === 'conflict') {
    // balanced: shape cycles over classes, texture over the three other classes
    shape = CLASSES[index % 4];
    const k = Math.floor(index / 4) % 3;
    texture = CLASSES[(index % 4 + 1 + k) % 4];
  } else {
    shape = CLASSES[index % 4];
    texture = shape;
    if (rnd() >= spec.tied) texture = CLASSES[(index % 4 + 1 + Math.floor(rnd() * 3)) % 4];
  }
  const inside = SHAPES[shape];
  const pattern = makeTexture(TEXTURE_OF[texture], rnd);

  // geometry
  const r = 8.5 + rnd() * 4.5;
  const m = 0.8 * r;
  const cx = m + rnd() * (SIZE - 2 * m), cy = m + rnd() * (SIZE - 2 * m);
  const th = rnd() * SYMMETRY[shape];
  const ct = cos(th), st = sin(th);

  // colours: background gradient between two colours; the shape's two texture colours
  // contrast with each other and, on average, with the background.
  const bgDark = rnd() < 0.5;
  const bgH = rnd();
  const bg0 = hsv(bgH, 0.2 + rnd() * 0.5, bgDark ? 0.1 + rnd() * 0.25 : 0.65 + rnd() * 0.3);
  const bg1 = hsv(frac(bgH + (rnd() - 0.5) * 0.2), 0.2 + rnd() * 0.5, bgDark ? 0.1 + rnd() * 0.25 : 0.65 + rnd() * 0.3);
  const fgH = rnd();
  const fgA = hsv(fgH, 0.5 + rnd() * 0.5, bgDark ? 0.85 + rnd() * 0.15 : 0.15 + rnd() * 0.2);
  const fgB = hsv(frac(fgH + 0.25 + rnd() * 0.5), 0.3 + rnd() * 0.5, bgDark ? 0.35 + rnd() * 0.2 : 0.55 + rnd() * 0.2);
  if (Math.abs(luma(fgA) - luma(fgB)) < 0.2) { // keep the texture visible
    const d = luma(fgA) > luma(fgB) ? 0.2 : -0.2;
    for (let ch = 0; ch < 3; ch++) fgA[ch] = Math.min(1, Math.max(0, fgA[ch] + d));
  }
  const ga = rnd() * TAU, gx = cos(ga), gy = sin(ga);
  const noise = 0.02 + rnd() * 0.03;

  const rgb = new Uint8Array(SIZE * SIZE * 3);
  const acc = [0, 0, 0];
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      acc[0] = acc[1] = acc[2] = 0;
      for (let j = 0; j < SUB; j++) {
        const py = y + (j + 0.5) / SUB;
        for (let i = 0; i < SUB; i++) {
          const px = x + (i + 0.5) / SUB;
          const dx = px - cx, dy = py - cy;
          const u = (ct * dx + st * dy) / r, v = (-st * dx + ct * dy) / r;
          let col;
          if (inside(u, v)) {
            col = pattern(px, py) ? fgA : fgB;
            acc[0] += col[0]; acc[1] += col[1]; acc[2] += col[2];
          } else {
            const t = 0.5 + ((px - 16) * gx + (py - 16) * gy) / 45; // in [~0.0, ~1.0]
            acc[0] += bg0[0] + (bg1[0] - bg0[0]) * t;
            acc[1] += bg0[1] + (bg1[1] - bg0[1]) * t;
            acc[2] += bg0[2] + (bg1[2] - bg0[2]) * t;
          }
        }
      }
      const o = (y * SIZE + x) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const val = acc[ch] / (SUB * SUB) + (rnd() - 0.5) * 2 * noise;
        rgb[o + ch] = Math.max(0, Math.min(255, Math.round(val * 255)));
      }
    }
  }
  return { rgb, shape, texture };
}

// ---------------------------------------------------------------- splits on disk
function fileName(split, index, shape, texture) {
  const n = String(index).padStart(4, '0');
  if (split === 'conflict') return `${shape}/${shape}${n}-${texture}${n}.png`; // Geirhos layout
  return `${shape}/${shape}-${n}-${TEXTURE_OF[texture]}.png`;
}

async function exists(p) {
  try { await stat(p); return true; } catch { return false; }
}

async function upToDate(out, split, seed, n) {
  const stampPath = path.join(out, `${split}.stamp.json`);
  let stamp;
  try { stamp = JSON.parse(await readFile(stampPath, 'utf8')); } catch { return false; }
  if (stamp.generatorVersion !== GENERATOR_VERSION || stamp.seed !== seed || stamp.n !== n) return false;
  if (!(await exists(path.join(out, `${split}.csv`)))) return false;
  // cheap completeness check: first and last file
  for (const f of [stamp.files?.[0], stamp.files?.[stamp.files.length - 1]]) {
    if (!f || !(await exists(path.join(out, f)))) return false;
  }
  return true;
}

export async function writeSplit(out, split, seed, n, { force = false, log = () => {} } = {}) {
  if (!force && (await upToDate(out, split, seed, n))) {
    log(`${split}: up to date (${n} images, seed ${seed}), skipped`);
    return { skipped: true };
  }
  const t0 = performance.now();
  const dir = path.join(out, split);
  await rm(dir, { recursive: true, force: true });
  for (const c of CLASSES) await mkdir(path.join(dir, c), { recursive: true });
  const pixelHash = createHash('sha256');
  const rows = [split === 'conflict' ? 'path,shape,texture' : 'path,label'];
  const files = [];
  const counts = {};
  const BATCH = 64;
  for (let start = 0; start < n; start += BATCH) {
    const jobs = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) {
      const { rgb, shape, texture } = drawImage(seed, split, i);
      pixelHash.update(rgb);
      const rel = `${split}/${fileName(split, i, shape, texture)}`;
      files.push(rel);
      rows.push(split === 'conflict' ? `${rel},${shape},${texture}` : `${rel},${shape}`);
      const key = split === 'conflict' ? `${shape}/${texture}` : shape === texture ? `${shape}/tied` : `${shape}/other`;
      counts[key] = (counts[key] ?? 0) + 1;
      jobs.push(
        sharp(Buffer.from(rgb.buffer), { raw: { width: SIZE, height: SIZE, channels: 3 } })
          .png({ compressionLevel: 9, adaptiveFiltering: false, palette: false })
          .toFile(path.join(out, rel)),
      );
    }
    await Promise.all(jobs);
  }
  await writeFile(path.join(out, `${split}.csv`), rows.join('\n') + '\n');
  const stamp = {
    generator: 'models/demo/make-data.mjs',
    generatorVersion: GENERATOR_VERSION,
    split,
    seed,
    n,
    tied: SPLITS[split].tied,
    classes: CLASSES,
    textureOf: TEXTURE_OF,
    pixelsSha256: pixelHash.digest('hex'),
    counts,
    files,
  };
  await writeFile(path.join(out, `${split}.stamp.json`), JSON.stringify(stamp, null, 1) + '\n');
  const ms = performance.now() - t0;
  log(`${split}: wrote ${n} images in ${(ms / 1000).toFixed(2)} s, pixels sha256 ${stamp.pixelsSha256.slice(0, 16)}…`);
  return { skipped: false, ms, pixelsSha256: stamp.pixelsSha256 };
}

function parseArgs(argv) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const opts = { split: 'default', n: undefined, seed: DEFAULT_SEED, out: path.join(here, 'data'), force: false, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--split') opts.split = val();
    else if (a === '--n') opts.n = Number(val());
    else if (a === '--seed') opts.seed = Number(val());
    else if (a === '--out') opts.out = path.resolve(val());
    else if (a === '--force') opts.force = true;
    else if (a === '--quiet') opts.quiet = true;
    else if (a === '-h' || a === '--help') opts.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!['default', 'all', ...Object.keys(SPLITS)].includes(opts.split)) throw new Error(`--split must be train, test, conflict or all, got ${opts.split}`);
  if (opts.n !== undefined && !(Number.isInteger(opts.n) && opts.n > 0)) throw new Error('--n must be a positive integer');
  if (!(Number.isInteger(opts.seed) && opts.seed >= 0 && opts.seed < 2 ** 32)) throw new Error('--seed must be an integer in [0, 2^32)');
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`make-data: ${e.message}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log('usage: node models/demo/make-data.mjs [--split train|test|conflict|all] [--n N] [--seed S] [--out DIR] [--force] [--quiet]\n' +
      'default: the test and conflict splits into models/demo/data (skipped when already there)');
    return;
  }
  const splits = opts.split === 'default' ? ['test', 'conflict'] : opts.split === 'all' ? ['train', 'test', 'conflict'] : [opts.split];
  const log = opts.quiet ? () => {} : (s) => console.log(`make-data: ${s}`);
  await mkdir(opts.out, { recursive: true });
  for (const s of splits) await writeSplit(opts.out, s, opts.seed, opts.n ?? SPLITS[s].n, { force: opts.force, log });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`make-data: ${e.stack ?? e}`);
    process.exit(1);
  });
}
