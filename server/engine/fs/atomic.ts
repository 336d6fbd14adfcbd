/**
 * Atomic file writes for reports (report.json, SARIF, HTML): the data goes to a temporary file
 * beside the target, which is then renamed over it, so a reader (the editor watching the report
 * folder, a CI step) sees the old file or the new one, never half of one, and a full disk leaves
 * the previous report intact. A failure is a SkepticInputError naming the path and the reason.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SkepticInputError } from '../errors';
import { fsReason } from './files';

let counter = 0;

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${counter++}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w', 0o644);
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
