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
