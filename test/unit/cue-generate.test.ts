/**
 * The weights-free cue-conflict generator (server/engine/cue/generate.ts, cue/pairs.ts): its parts
 * on synthetic images whose answer is known, and on the demo data (models/demo): deterministic
 * for a seed, and every stimulus labelled with A's class as shape and B's class as texture.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  backgroundPlane, boxBlur, compose, edgeControl, fillHoles, otsu, quiltTexture, shapeCarrier, silhouetteControl,
} from '../../server/engine/cue/generate';
import { generatedStimuli, planPairs, quiltComposer } from '../../server/engine/cue/pairs';
import { openDataset } from '../../server/engine/data';
import { mulberry32 } from '../../server/engine/random';
import type { DatasetRecord, PixelImage } from '../../server/engine/types';
import { DEMO_TEST, ensureDemoData } from './helpers/demo';


/** A 3-channel image from a per-pixel colour function. */
function rgb(H: number, W: number, f: (y: number, x: number) => [number, number, number]): PixelImage {
  const d = new Float32Array(3 * H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const c = f(y, x);
      for (let k = 0; k < 3; k++) d[k * H * W + y * W + x] = c[k];
    }
  }
  return { data: d, channels: 3, height: H, width: W };
}

const disc = (H: number) => rgb(H, H, (y, x) => ((y - H / 2) ** 2 + (x - H / 2) ** 2 < (H / 4) ** 2 ? [1, 1, 1] : [0, 0, 0]));
/** A red/green checkerboard square on blue. */
const checker = (H: number) =>
  rgb(H, H, (y, x) => (y >= H / 4 && y < (3 * H) / 4 && x >= H / 4 && x < (3 * H) / 4 ? ((y >> 1) + (x >> 1)) % 2 ? [1, 0, 0] : [0, 1, 0] : [0, 0, 1]));

test('helpers: box blur keeps constants, Otsu splits two levels, holes are filled, the plane fits a gradient', () => {
  const c = boxBlur(new Float32Array(20).fill(0.3), 4, 5, 2);
  for (const v of c) assert.ok(Math.abs(v - 0.3) < 1e-6);
  const t = otsu(Float32Array.from([0.1, 0.1, 0.12, 0.9, 0.88, 0.9]));
  assert.ok(t > 0.12 && t < 0.88, `threshold ${t}`);
  const ring = Uint8Array.from([
    0, 0, 0, 0, 0,
    0, 1, 1, 1, 0,
    0, 1, 0, 1, 0,
    0, 1, 1, 1, 0,
    0, 0, 0, 0, 0,
  ]);
  assert.equal(fillHoles(ring, 5, 5)[12], 1);
  assert.equal(fillHoles(ring, 5, 5)[0], 0);
  const grad = rgb(16, 16, (y, x) => [x / 16, y / 16, 0.5]);
  const plane = backgroundPlane(grad);
  for (let i = 0; i < grad.data.length; i++) assert.ok(Math.abs(plane[i] - grad.data[i]) < 1e-5);
});

test('shape of A, texture of B: a white disc filled with B\'s checker, nothing of B\'s background', () => {
  const H = 32;
  const a = shapeCarrier(disc(H));
  assert.ok(a.silhouetteOk);
  assert.ok(Math.abs(a.coverage - Math.PI / 16) < 0.03, `coverage ${a.coverage}`);
  const b = checker(H);
  const cb = shapeCarrier(b);
  const tex = quiltTexture(b, cb.mask, mulberry32(3));
  const n = H * H;
  // Every quilted pixel is a blend of checker colours: no blue.
  for (let i = 0; i < n; i++) assert.ok(tex.data[2 * n + i] < 0.05, `blue at ${i}`);
  const s = compose(a, tex);
  const at = (y: number, x: number) => [0, 1, 2].map((k) => s.data[k * n + y * H + x]);
  assert.deepEqual(at(0, 0), [0, 0, 0], 'background of A (black)');
  const centre = at(H / 2, H / 2);
  assert.ok(centre[2] < 0.05 && centre[0] + centre[1] > 0.9, `checker colours inside: ${centre}`);
  // Controls: edges and silhouette of the disc in its own colours; no texture there.
  const sil = silhouetteControl(a)!;
  assert.ok(sil.data[H / 2 * H + H / 2] > 0.9 && sil.data[0] < 0.05);
  const e = edgeControl(a);
  assert.ok(e.data[(H / 2) * H + H / 4] > e.data[(H / 2) * H + H / 2], 'edge on the rim, not in the middle');
  // A flat image has no silhouette: the texture fills the frame.
  const flat = shapeCarrier(rgb(H, H, () => [0.5, 0.5, 0.5]));
  assert.equal(flat.silhouetteOk, false);
  assert.equal(silhouetteControl(flat), undefined);
});

test('pairs: balanced shapes, every texture category met, shape ≠ texture, deterministic', () => {
  const records: DatasetRecord[] = [];
  for (let c = 0; c < 4; c++) for (let i = 0; i < 30; i++) records.push({ index: records.length, id: `c${c}/${i}.png`, file: '', label: c });
  records.push({ index: 999, id: 'x.png', file: '' }); // unlabelled: ignored
  const plan = planPairs(records, (l) => l, 7, 48, 3);
  assert.equal(plan.pairs.length, 48);
  const shapeCounts = [0, 0, 0, 0];
  const meet = new Map<string, number>();
  for (const p of plan.pairs) {
    assert.equal(p.shape, p.a.label);
    assert.equal(p.texture, p.b.label);
    assert.notEqual(p.shape, p.texture);
    shapeCounts[p.shape]++;
    meet.set(`${p.shape}-${p.texture}`, (meet.get(`${p.shape}-${p.texture}`) ?? 0) + 1);
  }
  assert.deepEqual(shapeCounts, [12, 12, 12, 12]);
  assert.equal(meet.size, 12);
  for (const v of meet.values()) assert.equal(v, 4);
  assert.equal(new Set(plan.pairs.map((p) => p.b.id)).size, 12, '3 texture sources per class');
  assert.deepEqual(planPairs([...records].reverse(), (l) => l, 7, 48, 3).pairs.map((p) => [p.a.id, p.b.id]), plan.pairs.map((p) => [p.a.id, p.b.id]), 'order-free');
  assert.notDeepEqual(planPairs(records, (l) => l, 8, 48, 3).pairs.map((p) => p.a.id), plan.pairs.map((p) => p.a.id));
  assert.match(planPairs(records.filter((r) => r.label === 0), (l) => l, 7, 10, 3).reason!, /1 category/);
});

test('demo data: generated stimuli are deterministic for a seed and labelled shape = A, texture = B', async () => {
  ensureDemoData();
  const csv = DEMO_TEST;
  const ds = await openDataset(csv, { labels: { names: ['circle', 'cross', 'square', 'triangle'], keys: [['circle'], ['cross'], ['square'], ['triangle']], source: 't' } });
  const spec = { channels: 3 as const, height: 32, width: 32 };
  const plan = planPairs(ds.records, (l) => l, 1, 40, 4);
  assert.equal(plan.pairs.length, 40);
  const run = async (seed: number) => {
    const out = [];
    for await (const b of generatedStimuli(ds, spec, plan.pairs, quiltComposer(seed), 16)) out.push(...b);
    return out;
  };
  const first = await run(1);
  const again = await run(1);
  const other = await run(2);
  assert.equal(first.length, 40);
  for (let i = 0; i < first.length; i++) {
    const { pair } = first[i];
    // the label comes from the file's class folder, as the manifest says
    assert.equal(ds.records[pair.a.index].id.split('/')[1], ['circle', 'cross', 'square', 'triangle'][pair.shape]);
    assert.equal(ds.records[pair.b.index].id.split('/')[1], ['circle', 'cross', 'square', 'triangle'][pair.texture]);
    assert.notEqual(pair.shape, pair.texture);
    assert.deepEqual(again[i].pair, pair);
    assert.ok(Buffer.from(again[i].image.data.buffer).equals(Buffer.from(first[i].image.data.buffer)), `stimulus ${i} differs between runs`);
  }
  assert.ok(first.some((s, i) => !Buffer.from(other[i].image.data.buffer).equals(Buffer.from(s.image.data.buffer))), 'another seed quilts other textures');
  assert.ok(first.filter((s) => s.silhouette).length >= 36, 'the demo shapes are found on their backgrounds');
});
