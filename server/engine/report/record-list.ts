/**
 * A probe's per-image records, kept compact while an audit runs and in the report it returns.
 *
 * One record as a JavaScript object costs several times its JSON (an object, a hidden class per
 * shape, a heap number per fraction, often an array of top-5 classes): about 350 bytes for a
 * clean record, 70 MB at 200,000 rows. Here each record is its JSON text, UTF-8, in 1 MB chunks
 * (about 60 bytes for a clean record: its image index is kept beside), with 16 bytes of position
 * per record; a record is parsed again when it is read. Records are JSON already (the results
 * cache and records.jsonl store them so), so what comes back is what a cache hit or a report
 * read back would give.
 *
 * `view` is what ProbeResult.records holds, and what summarize gets when the probe folds its
 * records (Probe.foldsRecords; other probes get toArray()): a read-only array-like that makes
 * each record on access, in image order, like ImageTable's entries. It indexes, iterates, maps,
 * filters and serialises like the array it stands for, and every read parses again. Writing to a
 * record it hands out changes nothing: artifacts go through setArtifacts.
 */
import { viewOf } from './array-view';

const CHUNK = 1 << 20;

export class RecordList<R extends { image: number }> {
  private readonly chunks: Buffer[] = [];
  private used = CHUNK; // of the last chunk: full, so that the first record opens one
  /** Per record: chunk, start and length of its JSON, and its image (grown by doubling). */
  private chunkOf = new Uint32Array(64);
  private start = new Uint32Array(64);
  private length_ = new Uint32Array(64);
  private images = new Int32Array(64);
  private n = 0;
  /** Read order, when records came out of image order (a cache hit beside a miss in one batch). */
  private order?: Int32Array;
  private sorted = true;
  private readonly artifacts = new Map<number, string[]>();
  readonly view: R[];

  constructor() {
    this.view = viewOf(() => this.n, (i) => this.get(i));
  }

  get length(): number {
    return this.n;
  }

  push(record: R): void {
    if (this.n === this.images.length) this.grow(Math.max(64, this.n * 2));
    let text = JSON.stringify(record);
    // The image index is kept beside (images): a record that ends with it is stored without it.
    const tail = `,"image":${record.image}}`;
    if (text.endsWith(tail)) text = text.slice(0, -tail.length) + '}';
    const bytes = Buffer.byteLength(text);
    if (this.used + bytes > (this.chunks.at(-1)?.length ?? 0)) {
      this.chunks.push(Buffer.allocUnsafe(Math.max(CHUNK, bytes)));
      this.used = 0;
    }
    const i = this.n++;
    this.chunkOf[i] = this.chunks.length - 1;
    this.start[i] = this.used;
    this.length_[i] = this.chunks.at(-1)!.write(text, this.used);
    this.used += this.length_[i];
    this.images[i] = record.image;
    if (i > 0 && record.image < this.images[i - 1]) this.sorted = false;
    this.order = undefined;
  }

  /** The k-th record in image order. */
  get(k: number): R {
    const i = this.position(k);
    const r = JSON.parse(this.chunks[this.chunkOf[i]].toString('utf8', this.start[i], this.start[i] + this.length_[i])) as R & { artifacts?: string[] };
    if (!('image' in r)) (r as { image: number }).image = this.images[i]; // last, where it was
    const files = this.artifacts.get(r.image);
    if (files) r.artifacts = files;
    return r;
  }

  /** Gives back the room kept for more records (when no more will come). */
  trim(): void {
    if (this.images.length === this.n) return;
    this.chunkOf = this.chunkOf.slice(0, this.n);
    this.start = this.start.slice(0, this.n);
    this.length_ = this.length_.slice(0, this.n);
    this.images = this.images.slice(0, this.n);
  }

  /** Every record, as objects, in image order. */
  toArray(): R[] {
    return Array.from({ length: this.n }, (_, k) => this.get(k));
  }

  /** The record of image `image`, if there is one. */
  byImage(image: number): R | undefined {
    let lo = 0;
    let hi = this.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.images[this.position(mid)];
      if (v === image) return this.get(mid);
      if (v < image) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Files written for an image's record (render), shown on it from now on. */
  setArtifacts(image: number, files: string[]): void {
    this.artifacts.set(image, files);
  }

  private position(k: number): number {
    if (this.sorted) return k;
    if (!this.order) {
      const order = Int32Array.from({ length: this.n }, (_, i) => i);
      // stable by image, like Array.prototype.sort on the records
      this.order = order.sort((a, b) => this.images[a] - this.images[b] || a - b);
    }
    return this.order[k];
  }

  private grow(size: number): void {
    const more = <T extends Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.chunkOf = more(this.chunkOf, (n) => new Uint32Array(n));
    this.start = more(this.start, (n) => new Uint32Array(n));
    this.length_ = more(this.length_, (n) => new Uint32Array(n));
    this.images = more(this.images, (n) => new Int32Array(n));
  }
}
