/**
 * A process that writes into a shared results cache, for the concurrent-writers test:
 * `node --import tsx cache-writer.ts DIR WRITER BATCHES`. Each batch is 3 entries of its own and
 * one that every writer also writes (the same key and value, as content addressing gives); every
 * 10th batch it opens the cache afresh, as a starting shard does, which folds segments when many.
 */
import { ProbeCache, type CacheScope } from '../../../server/engine/cache/cache';

export const SCOPE: CacheScope = { modelSha256: 'f'.repeat(64), preprocessing: {}, outputKind: 'logits', probe: 'clean', params: {}, seed: 0, engineVersion: 'test' };

export function value(key: string): { key: string; payload: string } {
  // a few kilobytes, so writes take long enough to overlap
  return { key, payload: key.repeat(Math.ceil(3000 / key.length)).slice(0, 3000) };
}

if (process.argv[2]) {
  const [dir, writer, batches] = [process.argv[2], process.argv[3], Number(process.argv[4])];
  let cache = new ProbeCache<object>(dir, SCOPE);
  for (let b = 0; b < batches; b++) {
    const keys = [0, 1, 2].map((j) => `w${writer}-b${b}-${j}`).concat(`shared-${b}`);
    cache.putAll(keys.map((k) => [k, value(k)]));
    if (b % 10 === 9) cache = new ProbeCache<object>(dir, SCOPE);
  }
}
