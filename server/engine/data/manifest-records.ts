/**
 * A manifest's listing, stored by column: the DatasetRecord objects every reader uses are made
 * when read (`view`), so a 200,000-row manifest costs about 17 bytes per row plus each distinct
 * path once, instead of an object and three strings per row (about 375 bytes, 75 MB).
 *
 * Per row: the distinct path it names (an index into `paths`, the path relative to the manifest's
 * folder, which is also the record's id), whether an earlier row named that path already (its id
 * then gets " (row N)"), its line, label and label name (an index into the few distinct names);
 * listing problems are few and kept by row. A record made from here equals the one listManifest
 * made as an object before (same keys, in the same order).
 */
import { join } from 'node:path';
import { viewOf } from '../report/array-view';
import type { DatasetRecord } from '../types';

const NONE = -1;
const NO_LABEL = -0x80000000;

export class ManifestRecords {
  private n = 0;
  private slotOf = new Int32Array(1024);
  private repeat = new Uint8Array(1024);
  private lines = new Uint32Array(1024);
  private labels = new Int32Array(1024);
  private nameOf = new Int32Array(1024);
  /** Distinct paths, relative to the manifest's folder (forward slashes). */
  readonly paths: string[] = [];
  private pathIds? = new Map<string, number>();
  private readonly names: string[] = [];
  private readonly nameIds = new Map<string, number>();
  private readonly problems = new Map<number, string>();
  readonly view: DatasetRecord[];

  constructor(
    readonly manifest: string,
    readonly root: string,
    private readonly base: string,
  ) {
    this.view = viewOf(() => this.n, (i) => this.get(i));
  }

  get length(): number {
    return this.n;
  }

  /** A new row, read from `line`; returns its index. */
  add(line: number): number {
    if (this.n === this.lines.length) this.grow(Math.max(1024, this.n * 2));
    const i = this.n++;
    this.slotOf[i] = NONE;
    this.lines[i] = line;
    this.labels[i] = NO_LABEL;
    this.nameOf[i] = NONE;
    return i;
  }

  /** Row i names the file at `rel` (relative to the root); true when an earlier row named it too. */
  setPath(i: number, rel: string): boolean {
    let slot = this.pathIds!.get(rel);
    const seen = slot !== undefined;
    if (slot === undefined) {
      slot = this.paths.push(rel) - 1;
      this.pathIds!.set(rel, slot);
    }
    this.slotOf[i] = slot;
    this.repeat[i] = seen ? 1 : 0;
    return seen;
  }

  setLabel(i: number, label: number | undefined): void {
    this.labels[i] = label === undefined ? NO_LABEL : label;
  }

  setLabelName(i: number, name: string): void {
    let k = this.nameIds.get(name);
    if (k === undefined) {
      k = this.names.push(name) - 1;
      this.nameIds.set(name, k);
    }
    this.nameOf[i] = k;
  }

  setProblem(i: number, problem: string): void {
    this.problems.set(i, problem);
  }

  hasProblem(i: number): boolean {
    return this.problems.has(i);
  }

  /** The distinct path row i names (an index into `paths`), or -1. */
  slot(i: number): number {
    return this.slotOf[i];
  }

  line(i: number): number {
    return this.lines[i];
  }

  /** Listing is over: the path index is not needed any more. */
  finish(): void {
    this.pathIds = undefined;
    this.grow(this.n); // gives back the room kept for more rows
  }

  get(i: number): DatasetRecord {
    const slot = this.slotOf[i];
    const line = this.lines[i];
    const r: DatasetRecord =
      slot === NONE
        ? { index: i, id: `${this.base}:${line}`, file: this.manifest, manifest: this.manifest, line }
        : {
            index: i,
            id: this.repeat[i] ? `${this.paths[slot]} (row ${line})` : this.paths[slot],
            file: join(this.root, this.paths[slot]),
            manifest: this.manifest,
            line,
          };
    if (this.nameOf[i] !== NONE) r.labelName = this.names[this.nameOf[i]];
    if (this.labels[i] !== NO_LABEL) r.label = this.labels[i];
    const problem = this.problems.get(i);
    if (problem !== undefined) r.problem = problem;
    return r;
  }

  private grow(size: number): void {
    const more = <T extends Int32Array | Uint32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a.subarray(0, Math.min(a.length, size)));
      return b;
    };
    this.slotOf = more(this.slotOf, (k) => new Int32Array(k));
    this.repeat = more(this.repeat, (k) => new Uint8Array(k));
    this.lines = more(this.lines, (k) => new Uint32Array(k));
    this.labels = more(this.labels, (k) => new Int32Array(k));
    this.nameOf = more(this.nameOf, (k) => new Int32Array(k));
  }
}
