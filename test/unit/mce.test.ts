/**
 * mCE (Hendrycks & Dietterich 2019) against AlexNet's published per-corruption errors, on a case
 * worked by hand, through metrics/mce.ts and through the corruptions probe's summary.
 *
 * gaussian_noise accuracies 0.5, 0.4, 0.3, 0.2, 0.1: mean error 0.7, CE = 0.7 / 0.886428 = 0.789686.
 * contrast accuracies 1, 1, 0.5, 0.5, 0: mean error 0.4, CE = 0.4 / 0.853204 = 0.468821.
 * mCE over the two = 0.629254 (to 6 digits, as the report rounds). speckle_noise (an extra) has no AlexNet baseline: no CE.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALEXNET_ERR, corruptionError, meanCorruptionError } from '../../server/engine/metrics/mce';
import { CORRUPTIONS } from '../../server/engine/image/corrupt';
import { corruptionsProbe } from '../../server/engine/probes/corruptions';
import type { ImageEntry } from '../../server/engine/report/schema';
import { fakeModel } from './helpers/fake';

test('CE and mCE by hand; AlexNet has a baseline for each of the 15 and only those', () => {
  const all = [1, 2, 3, 4, 5];
  assert.ok(Math.abs(corruptionError('gaussian_noise', [0.5, 0.4, 0.3, 0.2, 0.1], all)! - 0.7 / 0.886428) < 1e-12);
  assert.ok(Math.abs(corruptionError('contrast', [1, 1, 0.5, 0.5, 0], all)! - 0.4 / 0.853204) < 1e-12);
  assert.equal(corruptionError('speckle_noise', [1, 1, 1, 1, 1], all), null);
  assert.equal(corruptionError('contrast', [1, 1, 1], [1, 2, 3]), null, 'AlexNet\'s errors average all five severities');
  const m = meanCorruptionError([0.7 / 0.886428, 0.4 / 0.853204, null]);
  assert.equal(m.count, 2);
  assert.ok(Math.abs(m.mCE! - 0.629254) < 1e-6);
  assert.deepEqual(Object.keys(ALEXNET_ERR).sort(), [...CORRUPTIONS].sort());
});

test('the probe reports CE per corruption and mCE on an ImageNet-shaped model, not on others', async () => {
  // 10 labelled images; hit masks give the accuracies above (bit s−1 = right at severity s)
  const hits: Record<string, number[]> = {
    // image i is right at severity s when i < 6 − s: 5, 4, 3, 2, 1 of 10
    gaussian_noise: Array.from({ length: 10 }, (_, i) => [1, 2, 3, 4, 5].reduce((m, s) => m | (i < 6 - s ? 1 << (s - 1) : 0), 0)),
    // images 0–4 right at severities 1–4, images 5–9 at 1–2
    contrast: [0b01111, 0b01111, 0b01111, 0b01111, 0b01111, 0b00011, 0b00011, 0b00011, 0b00011, 0b00011],
    speckle_noise: Array(10).fill(0b11111),
  };
  const records = Array.from({ length: 10 }, (_, i) => ({
    image: i, pred: 0, conf: 1, same: {},
    hit: Object.fromEntries(Object.entries(hits).map(([k, v]) => [k, v[i]])),
  }));
  const images: ImageEntry[] = records.map((r) => ({ id: `i${r.image}`, uri: `file:///d/i${r.image}`, path: `i${r.image}`, label: 0 }));
  const probe = corruptionsProbe({ corruptions: ['gaussian_noise', 'contrast', 'speckle_noise'] });
  const imagenet = fakeModel({ channels: 3, height: 224, width: 224, numClasses: 1000, logits: () => [0] });
  const s = await probe.summarize(records as never, { model: imagenet, seed: 0, images, className: String });
  const m = s.metrics as any;
  assert.deepEqual(m.accuracy.gaussian_noise, [0.5, 0.4, 0.3, 0.2, 0.1]);
  assert.deepEqual(m.accuracy.contrast, [1, 1, 0.5, 0.5, 0]);
  const ce = Object.fromEntries(m.perCorruption.map((p: any) => [p.corruption, p.ce]));
  assert.equal(ce.gaussian_noise, 0.789686);
  assert.equal(ce.contrast, 0.468821);
  assert.equal(ce.speckle_noise, null);
  assert.equal(m.mCE, 0.629254);
  assert.equal(m.mCECorruptions, 2);
  assert.match(s.headline, /mCE 62\.9% over 2 of 15/);

  const cifar = fakeModel({ channels: 3, height: 32, width: 32, numClasses: 10, logits: () => [0] });
  const c = (await probe.summarize(records as never, { model: cifar, seed: 0, images, className: String })).metrics as any;
  assert.equal(c.mCE, null);
  assert.ok(c.perCorruption.every((p: any) => p.ce === null));
  assert.equal(c.relativeDegradation, m.relativeDegradation, 'the relative drop stays');
});
