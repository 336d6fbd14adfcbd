/**
 * Category mappings for cue-conflict decisions (server/engine/cue/categories.ts) and the shape-bias
 * rule (cue/shape-bias.ts), on cases worked out by hand; the shipped 16-category ImageNet mapping
 * against the fixture's independently derived one.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  categoryIndex, categoryMapFor, categoryOfClass, decide, identity, IMAGENET16_CATEGORIES, imagenet16, parseMapping, readCategoriesFile,
  resolveMapping,
} from '../../server/engine/cue/categories';
import { shapeBias } from '../../server/engine/cue/shape-bias';
import { SkepticInputError } from '../../server/engine/errors';
import { readLabelsFile } from '../../server/engine/model/labels';
import type { LabelSet } from '../../server/engine/types';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

const labels = (names: string[]): LabelSet => ({ names, keys: names.map((n) => [n.toLowerCase()]), source: 'test' });

test('the shipped ImageNet-16 mapping equals the fixture json, category by category', { skip }, () => {
  const fixture = JSON.parse(readFileSync(join(FIXTURES, 'labels/imagenet16_to_imagenet1k_indices.json'), 'utf8'));
  assert.deepEqual(Object.keys(IMAGENET16_CATEGORIES).sort(), [...fixture.categories].sort());
  let total = 0;
  for (const c of fixture.categories) {
    assert.deepEqual(IMAGENET16_CATEGORIES[c].indices, [...fixture.mapping[c].imagenet1k_indices].sort((a: number, b: number) => a - b), c);
    total += IMAGENET16_CATEGORIES[c].indices.length;
  }
  assert.equal(total, 207);
});

test('ImageNet-16 by WNID through a labels file gives the standard indices', { skip }, () => {
  const ls = readLabelsFile(join(FIXTURES, 'labels/imagenet_1k_wnids_names.txt'));
  const byWnid = imagenet16(1000, ls)!;
  const byIndex = imagenet16(1000)!;
  assert.equal(byWnid.source, 'imagenet16 (by WNID)');
  assert.deepEqual(byWnid.names, byIndex.names);
  byWnid.classes.forEach((cls, i) => assert.deepEqual([...cls].sort((a, b) => a - b), byIndex.classes[i]));
});

test('the published per-category counts (Geirhos et al.) hold', () => {
  const counts = Object.fromEntries(Object.entries(IMAGENET16_CATEGORIES).map(([k, v]) => [k, v.indices.length]));
  assert.deepEqual(counts, {
    airplane: 1, bear: 4, bicycle: 2, bird: 49, boat: 5, bottle: 7, car: 3, cat: 6, chair: 4, clock: 3, dog: 109, elephant: 2,
    keyboard: 2, knife: 1, oven: 1, truck: 8,
  });
  // Spot checks against the lists printed in the authors' code.
  assert.deepEqual(IMAGENET16_CATEGORIES.cat.indices, [281, 282, 283, 284, 285, 286]);
  assert.deepEqual(IMAGENET16_CATEGORIES.truck.indices, [555, 569, 656, 675, 717, 734, 864, 867]);
  assert.deepEqual(IMAGENET16_CATEGORIES.airplane.indices, [404]);
});

test('decide: the largest MEAN probability wins, not the largest sum; ties go to the first category', () => {
  const map = resolveMapping({ a: [0, 1, 2], b: [3], c: [4] }, 5, undefined, 'test');
  // a sums to 0.6 but averages 0.2; b has 0.3.
  assert.equal(decide([0.2, 0.2, 0.2, 0.3, 0.1], 0, map), 1);
  assert.equal(decide([0.1, 0.1, 0.1, 0.1, 0.6], 0, map), 2);
  assert.equal(decide([0, 0, 0, 0.5, 0.5], 0, map), 1, 'tie between b and c goes to b');
  assert.equal(decide([9, 9, 0.2, 0.2, 0.2, 0.3, 0.1], 2, map), 1, 'offset');
});

test('user mappings: indices, names, WNIDs, the wrapped formats, and clear errors', () => {
  const ls: LabelSet = { names: ['tench', 'goldfish', 'shark'], keys: [['n01440764', 'tench'], ['n01443537', 'goldfish'], ['n01484850', 'shark']], source: 't' };
  const m = resolveMapping(parseMapping({ fish: ['tench', 'N01443537'], big: [2], none: ['whale'] }), 3, ls, 'f.json');
  assert.deepEqual(m.names, ['fish', 'big']);
  assert.deepEqual(m.classes, [[0, 1], [2]]);
  assert.ok(m.warnings.some((w) => w.includes("'none'")));
  assert.ok(m.warnings.some((w) => w.includes('none: whale')));
  assert.deepEqual(parseMapping({ mapping: { x: { imagenet1k_indices: [1] }, y: { indices: [2] } } }), { x: [1], y: [2] });
  assert.throws(() => parseMapping([1, 2]), SkepticInputError);
  assert.throws(() => parseMapping({ x: [1] }), /at least two/);
  assert.throws(() => parseMapping({ x: [1.5], y: [2] }), /class indices/);
  assert.throws(() => resolveMapping({ x: [7], y: [8] }, 3, undefined, 'f.json'), /fewer than two/);

  const dir = mkdtempSync(join(tmpdir(), 'skeptic-cats-'));
  try {
    const f = join(dir, 'cats.json');
    writeFileSync(f, JSON.stringify({ round: ['circle'], angular: ['square', 'triangle', 'cross'] }));
    const raw = readCategoriesFile(f);
    const model = { info: { numClasses: 4 } as never, labels: labels(['circle', 'cross', 'square', 'triangle']) };
    const map = categoryMapFor(model, raw, f);
    assert.deepEqual(map.classes, [[0], [2, 3, 1]]);
    assert.equal(categoryOfClass(map, 3), 1);
    assert.throws(() => readCategoriesFile(join(dir, 'missing.json')), /categories file .*missing\.json: file not found/);
    writeFileSync(f, '{not json');
    assert.throws(() => readCategoriesFile(f), SkepticInputError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('default mapping: ImageNet-16 for 1000 classes, identity otherwise; identity matches any label key', () => {
  assert.equal(categoryMapFor({ info: { numClasses: 1000 } as never, labels: undefined }, undefined, undefined).source, 'imagenet16');
  const ls = labels(['circle', 'cross', 'square', 'triangle']);
  const map = categoryMapFor({ info: { numClasses: 4 } as never, labels: ls }, undefined, undefined);
  assert.equal(map.source, 'identity');
  assert.equal(categoryIndex(map, 'Square', ls), 2);
  assert.equal(categoryIndex(identity(3), '1'), 1);
  assert.equal(categoryIndex(map, 'hexagon', ls), -1);
});

test('shape bias: conflicts only, shape / (shape + texture), counts per category', () => {
  const d = (shape: string, texture: string, decision: string | null) => ({ shape, texture, decision });
  const r = shapeBias([
    d('cat', 'dog', 'cat'),
    d('cat', 'dog', 'dog'),
    d('cat', 'car', 'car'),
    d('cat', 'car', 'bird'),
    d('dog', 'cat', 'cat'),
    d('dog', 'dog', 'dog'), // no conflict: dropped
    d('dog', 'car', null),
  ]);
  assert.equal(r.dropped, 1);
  assert.equal(r.conflicts, 6);
  assert.equal(r.shape, 1);
  assert.equal(r.texture, 3);
  assert.equal(r.other, 2);
  assert.equal(r.shapeBias, 0.25);
  assert.deepEqual(Object.keys(r.byShape), ['cat', 'dog']);
  assert.equal(r.byShape.cat.shapeBias, 1 / 3);
  assert.equal(r.byShape.dog.shapeBias, 0);
  assert.equal(r.byTexture.car.texture, 1);
  assert.equal(shapeBias([d('a', 'b', 'c')]).shapeBias, null);
});
