/**
 * The reusable metrics (server/engine/metrics) on cases worked out by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auroc, binIndex, calibration, downsample, fprAtTpr, histogram, mean, rocCurve, trapezoidArea } from '../../server/engine/metrics';

const close = (a: number | null | undefined, b: number, tol = 1e-12, what = '') =>
  assert.ok(a !== null && a !== undefined && Math.abs(a - b) <= tol, `${what} expected ${b}, got ${a}`);

test('AUROC: Mann–Whitney with ties counted half', () => {
  // in = [0.9, 0.8, 0.8, 0.3], out = [0.8, 0.5, 0.2]: 4 × 3 = 12 pairs.
  //   0.9 beats 0.8, 0.5, 0.2                          → 3
  //   0.8 ties 0.8 (½), beats 0.5 and 0.2             → 2.5, and the same for the second 0.8 → 5
  //   0.3 loses to 0.8 and 0.5, beats 0.2              → 1
  //   AUROC = (3 + 5 + 1) / 12 = 9/12 = 0.75
  assert.equal(auroc([0.9, 0.8, 0.8, 0.3], [0.8, 0.5, 0.2]), 0.75);
  // Order of the inputs does not matter.
  assert.equal(auroc([0.3, 0.8, 0.9, 0.8], [0.2, 0.8, 0.5]), 0.75);
  // Perfect separation both ways.
  assert.equal(auroc([3, 4], [1, 2]), 1);
  assert.equal(auroc([1, 2], [3, 4]), 0);
  // in = [1, 2, 2], out = [2, 2]: 1 loses twice (0); each 2 ties twice (½ + ½ = 1) → 2/6 = 1/3.
  close(auroc([1, 2, 2], [2, 2]), 1 / 3);
});

test('AUROC edge cases: all-equal scores give 0.5, empty sets give null (not NaN), NaN is ignored', () => {
  assert.equal(auroc([0.7, 0.7, 0.7], [0.7, 0.7]), 0.5);
  assert.equal(auroc([], [0.1, 0.2]), null);
  assert.equal(auroc([0.1], []), null);
  assert.equal(auroc([], []), null);
  assert.equal(auroc([0.9, NaN, 0.8, 0.8, 0.3], [0.8, NaN, 0.5, 0.2]), 0.75);
  assert.equal(auroc([NaN], [1]), null);
  assert.equal(auroc([Infinity], [-Infinity, 5]), 1);
});

test('FPR at 95% TPR: the largest threshold keeping ≥ 95% of in-scores, out-scores ≥ it are false positives', () => {
  // in = 1..20 (n = 20). k = ⌈0.95 · 20⌉ = 19: the threshold is the 19th largest in-score, t = 2
  // (at t = 2, 19 of 20 in-scores are ≥ t: TPR = 0.95; any larger t keeps only 18: 0.90).
  // out = [10, 2, 1.5, 0]: 10 and 2 are ≥ 2 (the tie at t counts) → FPR = 2/4 = 0.5.
  const inS = Array.from({ length: 20 }, (_, i) => i + 1);
  assert.deepEqual(fprAtTpr(inS, [10, 2, 1.5, 0]), { fpr: 0.5, threshold: 2, tpr: 0.95 });
  // k is computed with a 1e-9 slack: 0.07 · 100 = 7.000000000000001 in floating point, which a
  // plain ⌈·⌉ would make 8. in = 1..100, target 7% → k = 7, t = the 7th largest = 94.
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(fprAtTpr(hundred, [1], 0.07)!.threshold, 94);
  // A tie in the in-scores at the threshold: 16 scores 5..20 and four 3s (n = 20). The 19th
  // largest is 3; every t > 3 keeps 16/20 = 0.8 < 0.95, so t = 3, and all four 3s pass: TPR = 1.
  // out = [4, 3, 2.9]: 4 and 3 are ≥ 3 → FPR = 2/3.
  const tied = [...Array.from({ length: 16 }, (_, i) => i + 5), 3, 3, 3, 3];
  const r = fprAtTpr(tied, [4, 3, 2.9])!;
  assert.equal(r.threshold, 3);
  assert.equal(r.tpr, 1);
  close(r.fpr, 2 / 3);
  // Two in-scores: ⌈0.95 · 2⌉ = 2, t = the smaller (0.1); out 0.5 ≥ 0.1 → FPR 1.
  assert.deepEqual(fprAtTpr([0.9, 0.1], [0.5]), { fpr: 1, threshold: 0.1, tpr: 1 });
  // Another target: 50% TPR of [4,3,2,1] → k = 2, t = 3; out [3.5, 3, 1] → 2/3.
  close(fprAtTpr([4, 3, 2, 1], [3.5, 3, 1], 0.5)!.fpr, 2 / 3);
  // Empty sides: null.
  assert.equal(fprAtTpr([], [1]), null);
  assert.equal(fprAtTpr([1], []), null);
  assert.throws(() => fprAtTpr([1], [1], 0), RangeError);
});

test('ROC curve: hand-worked points, its area is the AUROC, and it is downsampled to ≤ 101 points', () => {
  // Same sets as the AUROC case. Thresholds from the top:
  //   t = 0.9: TPR 1/4, FPR 0;   t = 0.8: TPR 3/4, FPR 1/3 (the tie moves both);
  //   t = 0.5: TPR 3/4, FPR 2/3; t = 0.3: TPR 1, FPR 2/3;  t = 0.2: TPR 1, FPR 1.
  const pts = rocCurve([0.9, 0.8, 0.8, 0.3], [0.8, 0.5, 0.2])!;
  assert.deepEqual(pts, [[0, 0], [0, 0.25], [1 / 3, 0.75], [2 / 3, 0.75], [2 / 3, 1], [1, 1]]);
  close(trapezoidArea(pts), 0.75, 1e-12, 'area');
  assert.equal(rocCurve([], [1]), null);

  const inS = Array.from({ length: 500 }, (_, i) => Math.sin(i) + 0.3);
  const outS = Array.from({ length: 700 }, (_, i) => Math.cos(3 * i));
  const full = rocCurve(inS, outS, Infinity)!;
  close(trapezoidArea(full), auroc(inS, outS)!, 1e-12, 'area of the full curve');
  const small = rocCurve(inS, outS)!;
  assert.ok(small.length <= 101 && small.length >= 100, `got ${small.length} points`);
  assert.deepEqual(small[0], [0, 0]);
  assert.deepEqual(small[small.length - 1], [1, 1]);
  assert.deepEqual(downsample([1, 2, 3, 4, 5], 3), [1, 3, 5]);
  assert.deepEqual(downsample([1, 2], 101), [1, 2]);
});

test('ECE over 15 equal-width bins, with the reliability diagram', () => {
  // Bins are (b/15, (b+1)/15]; b = ⌈15c⌉ − 1.
  //   0.95 ✓, 0.97 ✗  → bin 14 (0.933, 1]:     n 2, conf 0.96, acc 0.5, gap 0.46
  //   0.5 ✓           → bin 7 (0.467, 0.533]:  n 1, conf 0.5,  acc 1,   gap 0.5
  //   0.7 ✓, 0.72 ✓   → bin 10 (0.667, 0.733]: n 2, conf 0.71, acc 1,   gap 0.29
  //   0.1 ✗           → bin 1 (0.067, 0.133]:  n 1, conf 0.1,  acc 0,   gap 0.1
  //   ECE = (2·0.46 + 1·0.5 + 2·0.29 + 1·0.1) / 6 = 2.1 / 6 = 0.35; MCE = 0.5
  const c = calibration([0.95, 0.97, 0.5, 0.7, 0.72, 0.1], [true, false, true, true, true, false]);
  close(c.ece, 0.35, 1e-12, 'ece');
  close(c.mce, 0.5, 1e-12, 'mce');
  assert.equal(c.count, 6);
  assert.equal(c.bins.length, 15);
  assert.deepEqual(c.bins.map((b) => b.count), [0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 2]);
  close(c.bins[14].meanConfidence, 0.96, 1e-12);
  assert.equal(c.bins[14].accuracy, 0.5);
  close(c.bins[10].meanConfidence, 0.71, 1e-12);
  assert.equal(c.bins[10].accuracy, 1);
  assert.equal(c.bins[0].meanConfidence, null);
  assert.equal(c.bins[0].accuracy, null);
  close(c.bins[7].lo, 7 / 15);
  close(c.bins[7].hi, 8 / 15);
  // Perfect calibration in one bin: confidence 1, always right.
  assert.equal(calibration([1, 1], [true, true]).ece, 0);
  // Edges: 0 goes to the first bin, 1 to the last.
  assert.equal(binIndex(0, 15), 0);
  assert.equal(binIndex(1, 15), 14);
  assert.equal(binIndex(0.5, 10), 4);
  // Empty: null, not NaN; bins still listed.
  const e = calibration([], []);
  assert.equal(e.ece, null);
  assert.equal(e.mce, null);
  assert.equal(e.bins.length, 15);
  assert.throws(() => calibration([0.5], []), RangeError);
});

test('mean and histogram', () => {
  assert.equal(mean([1, 2, 3, NaN]), 2);
  assert.equal(mean([]), null);
  // [0,1] in 4 bins: [0,.25) [.25,.5) [.5,.75) [.75,1]; 1 goes to the last bin, -1 to the first.
  const h = histogram([0, 0.1, 0.25, 0.6, 1, -1, 2, NaN], 4, 0, 1);
  assert.deepEqual(h.counts, [3, 1, 1, 2]);
  assert.deepEqual(h.edges, [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(histogram([3, 3], 2, 3, 3).counts, [2, 0]);
});
