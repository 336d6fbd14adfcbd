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
