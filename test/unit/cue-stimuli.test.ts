/**
 * Reading cue-conflict stimulus sets (server/engine/cue/stimuli.ts): the Geirhos folder layout,
 * manifests with shape and texture columns, and the fixture's set.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { decodeStimuli, listStimuli, parseStimulusName, stimulusSpec } from '../../server/engine/cue/stimuli';
import { SkepticInputError } from '../../server/engine/errors';

const FIXTURES = resolve(__dirname, '../../../shared/fixtures');
const skip = existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES} (../shared is absent)`;

async function png(file: string, w = 8, h = 6, v = 128): Promise<void> {
  await sharp(Buffer.alloc(w * h * 3, v), { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

test('file names in the Geirhos form', () => {
  assert.deepEqual(parseStimulusName('airplane1-bicycle2.png'), { shape: 'airplane', texture: 'bicycle' });
  assert.deepEqual(parseStimulusName('circle0000-cross0000.png'), { shape: 'circle', texture: 'cross' });
  assert.deepEqual(parseStimulusName('traffic light10-dog3.jpg'), { shape: 'traffic light', texture: 'dog' });
  assert.equal(parseStimulusName('airplane1.png'), undefined);
  assert.equal(parseStimulusName('README.md'), undefined);
});

test('a folder in the Geirhos layout, a manifest, and what is skipped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-stim-'));
  try {
    for (const c of ['cat', 'dog']) mkdirSync(join(dir, c));
    await png(join(dir, 'cat', 'cat1-dog2.png'));
    await png(join(dir, 'cat', 'cat2-cat1.png'));
    await png(join(dir, 'dog', 'dog1-cat3.png'));
    await png(join(dir, 'dog', 'cat9-dog1.png')); // wrong folder: file name wins, warned
    await png(join(dir, 'dog', 'photo.png')); // not a stimulus name: skipped, warned
    writeFileSync(join(dir, 'notes.txt'), 'x');
    const set = await listStimuli(dir);
    assert.deepEqual(set.stimuli.map((s) => [s.id, s.shape, s.texture]), [
      ['cat/cat1-dog2.png', 'cat', 'dog'],
      ['cat/cat2-cat1.png', 'cat', 'cat'],
      ['dog/cat9-dog1.png', 'cat', 'dog'],
      ['dog/dog1-cat3.png', 'dog', 'cat'],
    ]);
    assert.ok(set.warnings.some((w) => w.includes('1 images not named')));
    assert.ok(set.warnings.some((w) => w.includes('1 stimuli lie in a folder')));

    // A manifest at the top wins over the walk; rows without path/shape/texture are skipped.
    writeFileSync(join(dir, 'conflict.csv'), 'path,shape,texture\ncat/cat1-dog2.png,Cat,Dog\n,cat,dog\n../outside.png,cat,dog\n');
    const m = await listStimuli(dir);
    assert.equal(m.stimuli.length, 1);
    assert.deepEqual([m.stimuli[0].shape, m.stimuli[0].texture, m.stimuli[0].line], ['Cat', 'Dog', 2]);
    assert.ok(m.warnings.some((w) => w.includes('2 rows')));
    const j = join(dir, 'set.jsonl');
    writeFileSync(j, '{"file": "dog/dog1-cat3.png", "shape_category": "dog", "texture_category": "cat"}\n');
    assert.deepEqual((await listStimuli(j)).stimuli.map((s) => s.id), ['dog/dog1-cat3.png']);

    // Decoding: straight to the model's size unless crop; one unreadable file comes back with its error.
    writeFileSync(join(dir, 'cat', 'cat3-dog3.png'), 'not a png');
    const spec = stimulusSpec({ channels: 3, height: 4, width: 4, resizeShortSide: 5 }, false);
    assert.equal(spec.resizeShortSide, undefined);
    assert.equal(stimulusSpec({ channels: 3, height: 4, width: 4, resizeShortSide: 5 }, true).resizeShortSide, 5);
    const walked = await listStimuli(join(dir, 'cat'));
    const got = [];
    for await (const b of decodeStimuli(walked.stimuli, spec, 2)) got.push(...b);
    assert.equal(got.length, 3);
    assert.equal(got.filter((g) => g.error).length, 1);
    assert.equal(got.find((g) => g.image)!.image!.width, 4);

    await assert.rejects(listStimuli(join(dir, 'nope')), SkepticInputError);
    await assert.rejects(listStimuli(join(dir, 'notes.txt')), /give a folder/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    await assert.rejects(listStimuli(empty), /no cue-conflict stimuli found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the fixture set: 160 stimuli through labels.csv, 6 without a conflict', { skip }, async () => {
  const set = await listStimuli(join(FIXTURES, 'geirhos_cue_conflict'));
  assert.ok(set.path.endsWith('labels.csv'));
  assert.equal(set.stimuli.length, 160);
  assert.equal(set.stimuli.filter((s) => s.shape === s.texture).length, 6);
  assert.equal(new Set(set.stimuli.map((s) => s.shape)).size, 16);
  for (const s of set.stimuli) assert.deepEqual(parseStimulusName(s.file.split('/').pop()!), { shape: s.shape, texture: s.texture });
});
