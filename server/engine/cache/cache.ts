/**
 * Content-addressed results cache under .skeptic/cache/ (or --cache-dir / SKEPTIC_CACHE_DIR).
 * A probe's records depend only on the model, its preprocessing, the probe's parameters, the
 * seed, the engine version, and the image's bytes and label; the first five name a folder, the
 * last two key an entry in it.
 *
 * The cache may sit on a shared file system (NFS) written by many processes at once (the shards
 * of one audit, audits of two models), so no file is ever written by two processes or read
 * while it is written:
 *  - each batch of results is one new segment file, written under a unique temporary name in the
 *    same folder and renamed into place (rename is atomic, on NFS too);
 *  - a segment ends with a trailer holding its entry count, byte length and sha256: a torn or
 *    half-written segment (a crash, a client that lost its server mid-write) fails the check
 *    and is ignored whole, so its images are simply computed again;
 *  - segment names carry the host, process id and random bytes, so writers never collide.
 * A crashed or cancelled audit keeps the batches it finished, and the next run resumes there.
 * When a folder holds many segments, a reader folds them into one (written the same way) and
 * removes the ones it folded; a reader that meets a vanished segment lists the folder again.
 *
 * Older caches (one append-only `.jsonl` per scope) are still read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
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

const SEGMENT = '.seg';
const TRAILER = '#skeptic-cache-segment';
/** Segments a reader tolerates before folding them into one. */
export const COMPACT_AT = 64;

export class ProbeCache<R> {
  private readonly entries = new Map<string, R>();
  /** The scope's folder of segments (undefined: no disk cache). */
  readonly folder?: string;

  constructor(dir: string | undefined, scope: CacheScope) {
    if (!dir) return;
    const digest = createHash('sha256').update(stableJson(scope)).digest('hex').slice(0, 24);
    const base = join(dir, scope.modelSha256.slice(0, 16), `${scope.probe}-${digest}`);
    this.folder = base;
    readLegacy(`${base}.jsonl`, this.entries);
    const read = readSegments(base, this.entries);
    if (read.length >= COMPACT_AT) this.compact(read);
  }

  get(key: string): R | undefined {
    return this.entries.get(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Adds entries computed elsewhere (a merge's shard results), in memory only. */
  supply(items: Iterable<[string, R]>): void {
    for (const [k, r] of items) this.entries.set(k, r);
  }

  /** Stores a batch of results, on disk at once (one atomic segment). */
  putAll(items: Array<[string, R]>): void {
    if (items.length === 0) return;
    for (const [k, r] of items) this.entries.set(k, r);
    if (!this.folder) return;
    writeSegment(this.folder, items);
  }

  /** Folds the segments just read into one; what another process added meanwhile stays. */
  private compact(read: string[]): void {
    try {
      writeSegment(this.folder!, [...this.entries]);
    } catch {
      return; // a read-only or full cache: keep the segments as they are
    }
    for (const f of read) {
      try {
        unlinkSync(join(this.folder!, f));
      } catch {
        // another reader folded it first
      }
    }
  }
}

/** Writes one segment: entries, then the trailer; under a temporary name, then renamed. */
export function writeSegment(folder: string, items: Array<[string, unknown]>): string {
  mkdirSync(folder, { recursive: true });
  const body = items.map(([k, r]) => JSON.stringify({ k, r })).join('\n') + '\n';
  const bytes = Buffer.byteLength(body);
  const sha = createHash('sha256').update(body).digest('hex');
  const data = `${body}${TRAILER} ${items.length} ${bytes} ${sha}\n`;
  const unique = `${Date.now().toString(36)}-${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}-${randomBytes(6).toString('hex')}`;
  const tmp = join(folder, `.${unique}.tmp`);
  const final = join(folder, `${unique}${SEGMENT}`);
  // No fsync: a segment that a crash leaves torn fails its trailer check and is computed again,
  // so durability would only save a batch of work, at a few milliseconds per batch.
  const fd = openSync(tmp, 'wx');
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, final);
  return final;
}

/**
 * Reads every complete segment of a folder into `into`; returns the names it read. A segment
 * whose trailer is missing or does not match its bytes is skipped whole.
 */
export function readSegments(folder: string, into: Map<string, unknown>): string[] {
  const read = new Set<string>();
  // Lists again when a segment vanished between listing and reading (another reader folded it).
  for (let attempt = 0; attempt < 3; attempt++) {
    let names: string[];
    try {
      names = readdirSync(folder).filter((f) => f.endsWith(SEGMENT) && !read.has(f)).sort();
    } catch {
      return [...read];
    }
    let vanished = false;
    for (const name of names) {
      let text: string;
      try {
        text = readFileSync(join(folder, name), 'utf8');
      } catch {
        vanished = true;
        continue;
      }
      const entries = parseSegment(text);
      if (!entries) continue;
      for (const [k, r] of entries) into.set(k, r);
      read.add(name);
    }
    if (!vanished) break;
  }
  return [...read];
}

/** A segment's entries, or undefined when it is torn or corrupt. */
export function parseSegment(text: string): Array<[string, unknown]> | undefined {
  const end = text.lastIndexOf(`\n${TRAILER} `);
  if (end < 0 || !text.endsWith('\n')) return undefined;
  const body = text.slice(0, end + 1);
  const [count, bytes, sha] = text.slice(end + 1 + TRAILER.length + 1, -1).split(' ');
  if (Number(bytes) !== Buffer.byteLength(body) || createHash('sha256').update(body).digest('hex') !== sha) return undefined;
  const out: Array<[string, unknown]> = [];
  for (const line of body.split('\n')) {
    if (!line) continue;
    const { k, r } = JSON.parse(line) as { k: string; r: unknown };
    out.push([k, r]);
  }
  return out.length === Number(count) ? out : undefined;
}

/** The cache format before segments: one append-only JSON Lines file; a torn line is skipped. */
function readLegacy(file: string, into: Map<string, unknown>): void {
  if (!existsSync(file)) return;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const { k, r } = JSON.parse(line) as { k: string; r: unknown };
      into.set(k, r);
    } catch {
      // a torn line from an interrupted write: recompute that image
    }
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
