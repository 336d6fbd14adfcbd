/**
 * Atomic file writes for reports (report.json, SARIF, HTML) and shard results: the data goes to a temporary file
 * beside the target, which is then renamed over it, so a reader (the editor watching the report
 * folder, a CI step) sees the old file or the new one, never half of one, and a full disk leaves
 * the previous report intact. A failure is a SkepticInputError naming the path and the reason.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SkepticInputError } from '../errors';
import { fsReason } from './files';

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  // Random bytes as well as the pid: on a shared file system, writers on two hosts may share one.
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the write error is the one to report
      }
    }
    rmSync(tmp, { force: true });
    throw new SkepticInputError(`cannot write ${file}: ${fsReason(e)}`, file);
  }
}

/**
 * A file written piece by piece and then renamed into place, like writeFileAtomic: for JSON Lines
 * files too large to build as one string (a report's per-image data). Pieces are buffered and
 * written in chunks of about 1 MB; commit() makes the file appear, abort() leaves no trace.
 */
export class AtomicWriter {
  private readonly tmp: string;
  private fd: number | undefined;
  private pending: string[] = [];
  private pendingChars = 0;

  constructor(readonly file: string) {
    this.tmp = join(dirname(file), `.${basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    try {
      this.fd = openSync(this.tmp, 'wx', 0o644);
    } catch (e) {
      throw new SkepticInputError(`cannot write ${file}: ${fsReason(e)}`, file);
    }
  }

  write(text: string): void {
    this.pending.push(text);
    this.pendingChars += text.length;
    if (this.pendingChars >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (!this.pending.length) return;
    const buf = Buffer.from(this.pending.join(''));
    this.pending = [];
    this.pendingChars = 0;
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(this.fd!, buf, off, buf.length - off);
    } catch (e) {
      this.abort();
      throw new SkepticInputError(`cannot write ${this.file}: ${fsReason(e)}`, this.file);
    }
  }

  commit(): void {
    this.finish();
    this.publish();
  }

  /** Writes what is buffered and syncs it to disk; the file is not in place yet. */
  finish(): void {
    this.flush();
    try {
      fsyncSync(this.fd!);
      closeSync(this.fd!);
      this.fd = undefined;
    } catch (e) {
      this.abort();
      throw new SkepticInputError(`cannot write ${this.file}: ${fsReason(e)}`, this.file);
    }
  }

  /** Renames the finished file into place. */
  publish(): void {
    try {
      renameSync(this.tmp, this.file);
    } catch (e) {
      this.abort();
      throw new SkepticInputError(`cannot write ${this.file}: ${fsReason(e)}`, this.file);
    }
  }

  /** Closes and removes the temporary file (safe to call twice). */
  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already failing; the first error is the one to report
      }
      this.fd = undefined;
    }
    rmSync(this.tmp, { force: true });
  }
}
