/**
 * Memory stays flat as a manifest grows (issue 13): what an audit keeps per row (the listing, the
 * image table, the clean probe's records, the report that holds them) is measured as live memory
 * after a full GC, in a child process, on 10,000 and 60,000 rows of one manifest. Objects per row
 * (a DatasetRecord, a record object) cost about 800 bytes a row; the compact tables about 150.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEMO, DEMO_TEST, ensureDemoData } from './helpers/demo';

/** Generous: about 2.5 times what is kept now, well under a third of what objects per row cost. */
const MAX_BYTES_PER_ROW = 400;

test('live memory after an audit grows by less than 400 bytes per manifest row', { timeout: 300_000 }, (t) => {
  ensureDemoData();
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-memory-flat-'));
  try {
    // eight demo images, each under its own name, repeated over the rows
    const rows = readFileSync(DEMO_TEST, 'utf8').trim().split('\n').slice(1, 9).map((l) => l.split(','));
    mkdirSync(join(dir, 'images'));
    rows.forEach(([path], i) => copyFileSync(join(DEMO, 'data', path), join(dir, 'images', `${i}.png`)));
    const live = (n: number) => {
      const file = join(dir, `m${n}.csv`);
      const lines = ['path,label'];
      for (let i = 0; i < n; i++) lines.push(`images/${i % 8}.png,${rows[i % 8][1]}`);
      writeFileSync(file, lines.join('\n') + '\n');
      const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(__dirname, 'helpers/manifest-memory.ts'), file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { rows: number; records: number; accuracy: number; liveBytes: number };
      assert.equal(out.rows, n);
      assert.equal(out.records, n, 'every row audited');
      return out;
    };
    const small = live(10_000);
    const large = live(60_000);
    assert.equal(large.accuracy, small.accuracy, 'the same eight images in the same proportions');
    const perRow = (large.liveBytes - small.liveBytes) / 50_000;
    t.diagnostic(`${perRow.toFixed(0)} bytes per row (${small.liveBytes} → ${large.liveBytes} bytes live)`);
    assert.ok(perRow < MAX_BYTES_PER_ROW, `live memory grew by ${perRow.toFixed(0)} bytes per row (${(small.liveBytes / 2 ** 20).toFixed(1)} → ${(large.liveBytes / 2 ** 20).toFixed(1)} MiB)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
