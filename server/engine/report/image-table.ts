/**
 * The audit's image table, kept compact: an ImageEntry per selected item would cost an object and
 * a 64-character hash string per image (about 150 bytes; 30 MB for 200,000 rows) on top of the
 * dataset's own records. Here an entry is made when it is read, from the dataset record, the
 * report-relative location of its file (shared by every row of a manifest), 32 bytes of hash and,
 * for the few items that failed, an error string.
 *
 * `entries` is what Report.images and SummaryContext.images hold: an array-like view that makes
 * each ImageEntry on access. It indexes, iterates, maps and serialises like the array it stands
 * for (JSON.stringify, assert.deepEqual), so readers do not change; writing to an entry it hands
 * out changes nothing, so the audit goes through setSha and setError.
 */
import type { DatasetRecord } from '../types';
import { viewOf } from './array-view';
import type { ImageEntry } from './schema';

type Locate = (file: string) => { path: string; uri: string };

const HEX64 = /^[0-9a-f]{64}$/;

export class ImageTable {
  private readonly hashes: Uint8Array;
  /** 1 where hashes holds the image's sha256. */
  private readonly hashed: Uint8Array;
  /** Hashes that are not 64 hex digits (test datasets), and decode errors: few, by image. */
  private readonly otherHashes = new Map<number, string>();
  private readonly errors = new Map<number, string>();
  readonly entries: ImageEntry[];

  constructor(
    private readonly records: readonly DatasetRecord[],
    private readonly locate: Locate,
  ) {
    this.hashes = new Uint8Array(records.length * 32);
    this.hashed = new Uint8Array(records.length);
    this.entries = entriesView(this);
  }

  get length(): number {
    return this.records.length;
  }

  setSha(i: number, sha256: string | undefined): void {
    if (sha256 === undefined) return;
    if (HEX64.test(sha256)) {
      this.hashes.set(Buffer.from(sha256, 'hex'), i * 32);
      this.hashed[i] = 1;
    } else this.otherHashes.set(i, sha256);
  }

  sha(i: number): string | undefined {
    if (this.hashed[i]) return Buffer.from(this.hashes.buffer, this.hashes.byteOffset + i * 32, 32).toString('hex');
    return this.otherHashes.get(i);
  }

  setError(i: number, error: string): void {
    this.errors.set(i, error);
  }

  error(i: number): string | undefined {
    return this.errors.get(i);
  }

  /** Evaluated: read, hashed and decoded without an error. */
  evaluated(i: number): boolean {
    return (this.hashed[i] === 1 || this.otherHashes.has(i)) && !this.errors.has(i);
  }

  entry(i: number): ImageEntry {
    const r = this.records[i];
    // A manifest row is where a person fixes a bad item, so findings point at the row;
    // otherwise at the image file (or the idx file with the item's index).
    const e: ImageEntry = { id: r.id, ...this.locate(r.manifest ?? r.file) };
    if (r.line !== undefined) e.line = r.line;
    if (r.manifest === undefined && r.id.includes('#')) e.index = Number(r.id.slice(r.id.lastIndexOf('#') + 1));
    if (r.label !== undefined) e.label = r.label;
    if (r.labelName !== undefined) e.labelName = r.labelName;
    const sha = this.sha(i);
    if (sha !== undefined) e.sha256 = sha;
    const error = this.errors.get(i);
    if (error !== undefined) e.error = error;
    return e;
  }
}

/** A read-only array of the table's entries, each made when it is read. */
function entriesView(table: ImageTable): ImageEntry[] {
  return viewOf(() => table.length, (i) => table.entry(i));
}
