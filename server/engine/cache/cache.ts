/**
 * Content-addressed results cache under .skeptic/cache/. A probe's records depend only on the
 * model, its preprocessing, the probe's parameters, the seed, the engine version, and the
 * image's bytes and label; the first five name a file, the last two key a line in it.
 *
 * Files are append-only JSON Lines written as each batch finishes, so a cancelled or crashed
 * audit keeps what it computed and the next run resumes from there. A torn last line (a crash
 * mid-write) is skipped on reading.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface CacheScope {
  modelSha256: string;
  preprocessing: unknown;
  outputKind: string;
  probe: string;
  params: unknown;
  seed: number;
  engineVersion: string;
}

export function imageKey(sha256: string, label: number | undefined): string {
  return label === undefined ? sha256 : `${sha256}:${label}`;
}

export class ProbeCache<R> {
  private readonly entries = new Map<string, R>();
  readonly file?: string;

  constructor(dir: string | undefined, scope: CacheScope) {
    if (!dir) return;
    const digest = createHash('sha256').update(stableJson(scope)).digest('hex').slice(0, 24);
    this.file = join(dir, scope.modelSha256.slice(0, 16), `${scope.probe}-${digest}.jsonl`);
    if (existsSync(this.file)) {
      for (const line of readFileSync(this.file, 'utf8').split('\n')) {
        if (!line) continue;
        try {
          const { k, r } = JSON.parse(line) as { k: string; r: R };
          this.entries.set(k, r);
        } catch {
          // a torn line from an interrupted write: recompute that image
        }
      }
    }
  }

  get(key: string): R | undefined {
    return this.entries.get(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Stores a batch of results, on disk at once. */
  putAll(items: Array<[string, R]>): void {
    if (items.length === 0) return;
    for (const [k, r] of items) this.entries.set(k, r);
    if (!this.file) return;
    mkdirSync(join(this.file, '..'), { recursive: true });
    appendFileSync(this.file, items.map(([k, r]) => JSON.stringify({ k, r })).join('\n') + '\n');
  }
}

/** JSON with object keys sorted, so equal values always hash the same. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((key) => [key, (v as Record<string, unknown>)[key]]))
      : v,
  );
}
