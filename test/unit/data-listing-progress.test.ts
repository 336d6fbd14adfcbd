/**
 * Listing a large manifest reports how far it got (a 200,000-row one takes seconds before the
 * first image is read): rows read, then files checked, every LISTING_PROGRESS_EVERY rows.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDataset, type ListingProgress } from '../../server/engine/data';
import { LISTING_PROGRESS_EVERY } from '../../server/engine/data/common';
import { DEMO, ensureDemoData } from './helpers/demo';

test('a 20,000-row manifest: progress while reading its rows and checking its files', async () => {
  ensureDemoData();
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-listing-'));
  try {
    copyFileSync(join(DEMO, 'data/test/circle/circle-0000-stripes.png'), join(dir, 'a.png'));
    const n = 20_000;
    writeFileSync(join(dir, 'm.csv'), 'path,label\n' + 'a.png,0\n'.repeat(n));
    const seen: ListingProgress[] = [];
    const ds = await openDataset(join(dir, 'm.csv'), { onProgress: (p) => seen.push(p) });
    assert.equal(ds.records.length, n);
    const reading = seen.filter((p) => p.step === 'reading m.csv');
    const checking = seen.filter((p) => p.step === 'checking the files of m.csv');
    assert.deepEqual(reading[0], { done: 0, total: 0, step: 'reading m.csv' }, 'said before the file is parsed, its size unknown');
    assert.deepEqual(reading.slice(1).map((p) => p.done), [0, 1, 2].map((k) => k * LISTING_PROGRESS_EVERY));
    assert.ok(reading.slice(1).every((p) => p.total === n));
    assert.deepEqual(checking.map((p) => p.done), [1, 2].map((k) => k * LISTING_PROGRESS_EVERY));
    assert.equal(seen.indexOf(checking[0]), reading.length, 'rows are read, then files checked');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
