/**
 * The results cache on storage shared by many processes (shards on NFS): concurrent writers
 * lose nothing and never corrupt one another; torn segments are ignored; folding many segments
 * into one keeps every entry.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { COMPACT_AT, parseSegment, ProbeCache } from '../../server/engine/cache/cache';
import { SCOPE, value } from './helpers/cache-writer';

const WRITER = resolve(__dirname, 'helpers/cache-writer.ts');

function run(args: string[]): Promise<number> {
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, ['--import', 'tsx', WRITER, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', fail);
    p.on('exit', (code) => ok(code ?? 1));
  });
}

test('four processes writing one cache folder at once lose nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-shared-cache-'));
  try {
    const writers = 4;
    const batches = 40; // 160 segments in all: readers fold them (COMPACT_AT) while others write
    assert.ok(writers * batches > 2 * COMPACT_AT);
    const codes = await Promise.all(Array.from({ length: writers }, (_, w) => run([dir, String(w), String(batches)])));
    assert.deepEqual(codes, new Array(writers).fill(0));
    const cache = new ProbeCache<object>(dir, SCOPE);
    for (let w = 0; w < writers; w++) {
      for (let b = 0; b < batches; b++) {
        for (let j = 0; j < 3; j++) {
          const k = `w${w}-b${b}-${j}`;
          assert.deepEqual(cache.get(k), value(k), k);
        }
      }
    }
    for (let b = 0; b < batches; b++) assert.deepEqual(cache.get(`shared-${b}`), value(`shared-${b}`));
    // No temporary file is left behind, and every segment on disk is whole.
    const folder = cache.folder!;
    const names = readdirSync(folder);
    assert.deepEqual(names.filter((f) => !f.endsWith('.seg')), []);
    for (const f of names) assert.ok(parseSegment(readFileSync(join(folder, f), 'utf8')), `${f} is whole`);
    assert.ok(names.length < writers * batches, `segments were folded (${names.length} left)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn segment, a corrupt one and a stray temporary file are ignored; the rest is read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-shared-cache-'));
  try {
    const a = new ProbeCache<object>(dir, SCOPE);
    a.putAll([['k1', value('k1')]]);
    a.putAll([['k2', value('k2')]]);
    a.putAll([['k3', value('k3')]]);
    const folder = a.folder!;
    const [s1, s2] = readdirSync(folder).sort();
    const t1 = readFileSync(join(folder, s1), 'utf8');
    writeFileSync(join(folder, s1), t1.slice(0, Math.floor(t1.length / 2))); // torn
    const t2 = readFileSync(join(folder, s2), 'utf8');
    writeFileSync(join(folder, s2), t2.replace('"payload":"k', '"payload":"K')); // same length, bytes changed
    writeFileSync(join(folder, '.half-written.tmp'), '{"k":"k9","r":');
    const b = new ProbeCache<object>(dir, SCOPE);
    const got = ['k1', 'k2', 'k3', 'k9'].filter((k) => b.has(k));
    // which of k1/k2 sat in the damaged segments depends on name order; exactly one survives
    assert.equal(got.length, 1);
    assert.deepEqual(b.get(got[0]), value(got[0]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
