/** derivedSeed/derivedRng: the seeds are sha256 of the seed and parts joined by NUL, whatever hash API computes them. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { derivedRng, derivedSeed, mulberry32 } from '../../server/engine/random';

test('derivedSeed is the first 4 bytes (LE) of sha256(seed ‖ NUL part ...), for no parts, ASCII and non-ASCII parts, empty parts', () => {
  const reference = (seed: number, parts: string[]) => {
    const h = createHash('sha256').update(String(seed));
    for (const p of parts) h.update('\0').update(p);
    return h.digest().readUInt32LE(0);
  };
  const cases: Array<[number, string[]]> = [
    [0, []],
    [3, ['shift/embed', 'a'.repeat(64)]],
    [12345, ['corruptions/gaussian_noise', '3', 'é€😀']],
    [7, ['', '', 'x']],
    [-1, ['ood/uniform']],
  ];
  for (const [seed, parts] of cases) {
    assert.equal(derivedSeed(seed, ...parts), reference(seed, parts), JSON.stringify([seed, parts]));
    const a = derivedRng(seed, ...parts);
    const b = mulberry32(reference(seed, parts));
    for (let i = 0; i < 5; i++) assert.equal(a(), b());
  }
  // a known value (sha256("3\0shift/embed\0x")), so a change of the byte layout shows
  assert.equal(derivedSeed(3, 'shift/embed', 'x'), createHash('sha256').update('3\0shift/embed\0x').digest().readUInt32LE(0));
});

test('mulberry32().normals fills mean + std·gaussian(rng) per value, the same draws in the same order, and the generator goes on after them', async () => {
  const { fillNormals, gaussian } = await import('../../server/engine/random');
  // an independent mulberry32 (the published algorithm) and Box–Muller, call by call
  const reference = (seed: number) => {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), a | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  };
  for (const seed of [0, 1, 0xdeadbeef, 2 ** 32 - 1]) {
    for (const n of [0, 1, 7, 1000]) {
      const want = reference(seed);
      const expected = Float64Array.from({ length: n }, () => 0.25 + 1.5 * (Math.sqrt(-2 * Math.log(nonZero(want))) * Math.cos(2 * Math.PI * want())));
      const got = new Float64Array(n);
      const fresh = mulberry32(seed);
      fillNormals(fresh, got, 0.25, 1.5);
      assert.deepEqual(got, expected, `seed ${seed}, ${n} values`);
      // the generator continues where the normals stopped: the next draw equals the reference's next
      const after = reference(seed);
      for (let i = 0; i < n; i++) {
        nonZero(after);
        after();
      }
      assert.equal(fresh(), after(), `seed ${seed}: the draw after ${n} normals`);
      // and a generator without the method (any () => number) gets gaussian() per value
      const plain = reference(seed);
      const slow = new Float64Array(n);
      fillNormals(() => plain(), slow, 0.25, 1.5);
      const viaGaussian = reference(seed);
      assert.deepEqual(slow, Float64Array.from({ length: n }, () => 0.25 + 1.5 * gaussian(viaGaussian)));
      assert.deepEqual(slow, got);
    }
  }
});

test('normalsOrZero gives normals()\'s values wherever they reach the floor, 0 or the value below it, and leaves mulberry32 where normals() does', async () => {
  const { fillNormalsOrZero, MULBERRY_STEP } = await import('../../server/engine/random');
  const toZero = (k: number) => Number((BigInt(2 ** 32) - ((BigInt(k) * BigInt(MULBERRY_STEP)) % BigInt(2 ** 32))) % BigInt(2 ** 32));
  // snow's small-image severities (mean, std, threshold), a floor at the mean, one below it, a flat one
  const cases: Array<[number, number, number]> = [[0.1, 0.2, 0.6], [0.1, 0.2, 0.5], [0.3, 0.3, 0.3], [0.3, 0.3, -1], [0.5, 0, 0.6], [0.1, 0.2, 2.1]];
  for (const seed of [3, 0xfeedface, toZero(1), toZero(6)]) {
    for (const [mean, std, floor] of cases) {
      const n = 5000;
      const want = new Float64Array(n);
      const wantRng = mulberry32(seed);
      wantRng.normals(want, mean, std);
      const got = new Float64Array(n).fill(Number.NaN);
      const gotRng = mulberry32(seed);
      gotRng.normalsOrZero(got, mean, std, floor);
      let zeroed = 0;
      let reached = 0;
      for (let p = 0; p < n; p++) {
        if (want[p] >= floor) reached++;
        if (Object.is(got[p], want[p])) continue;
        assert.ok(got[p] === 0 && want[p] < floor, `seed ${seed}, (${mean}, ${std}, ${floor}), value ${p}: ${got[p]} for ${want[p]}`);
        zeroed++;
      }
      assert.equal(gotRng(), wantRng(), 'the generator ends where normals() leaves it');
      // the skip is taken where it can be (the point of the method): most values below a floor 2.5σ up
      if (mean === 0.1 && floor === 0.6) assert.ok(zeroed > 0.9 * n && reached > 0, `${zeroed} of ${n} skipped, ${reached} reach the floor`);
      if (floor <= mean) assert.equal(zeroed, 0, 'nothing is skipped when the mean reaches the floor');
      // any other generator gets every value through fillNormals
      const plain = mulberry32(seed);
      const viaHelper = new Float64Array(n);
      fillNormalsOrZero(() => plain(), viaHelper, mean, std, floor);
      assert.deepEqual(viaHelper, want);
    }
  }
});

/** gaussian()'s radius draw: a 0 is drawn again. */
function nonZero(rng: () => number): number {
  let u = 0;
  while (u === 0) u = rng();
  return u;
}

test('skipNormals leaves mulberry32 where that many gaussian() draws would, a radius draw of 0 redrawn as they do; any other generator draws them', async () => {
  const { gaussian, skipNormals, MULBERRY_STEP, mulberryUnit } = await import('../../server/engine/random');
  // seeds whose first, fifth and 400th step land on the state 0, where mulberry32 returns 0 (gaussian() draws it again)
  const toZero = (k: number) => Number((BigInt(2 ** 32) - ((BigInt(k) * BigInt(MULBERRY_STEP)) % BigInt(2 ** 32))) % BigInt(2 ** 32));
  assert.equal(mulberryUnit(0), 0);
  for (const seed of [1, 0xdeadbeef, toZero(1), toZero(5), toZero(400)]) {
    for (const n of [0, 1, 3, 1000]) {
      const want = mulberry32(seed);
      let zeros = 0;
      for (let i = 0; i < n; i++) {
        let u = 0;
        while (u === 0) zeros += (u = want()) === 0 ? 1 : 0;
        want();
      }
      const got = mulberry32(seed);
      got.skipNormals(n);
      assert.equal(got(), want(), `seed ${seed}: the draw after skipping ${n} normals`);
      if (seed === toZero(5) && n >= 3) assert.equal(zeros, 1, 'the fifth step is a 0 (a radius draw), redrawn');
      // the same through the helper, and for a generator without the method
      const viaHelper = mulberry32(seed);
      skipNormals(viaHelper, n);
      const plain = mulberry32(seed);
      const wrapped = () => plain();
      skipNormals(wrapped, n);
      const viaGaussian = mulberry32(seed);
      for (let i = 0; i < n; i++) gaussian(viaGaussian);
      const next = viaGaussian();
      assert.equal(viaHelper(), next);
      assert.equal(wrapped(), next);
    }
  }
});
