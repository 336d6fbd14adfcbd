/**
 * The report folder: created if needed and checked writable before an audit starts (so a bad
 * --out costs no audit time) and again when the report is written. Problems are
 * SkepticInputErrors naming the folder: it is a file, it lies under a file, it is read-only.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { SkepticInputError } from '../errors';
import { fsReason } from './files';

export function ensureOutDir(dir: string): void {
  try {
    const st = statSync(dir);
    if (!st.isDirectory()) throw new SkepticInputError(`report folder ${dir} is a file, not a folder`, dir);
  } catch (e) {
    if (e instanceof SkepticInputError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new SkepticInputError(`report folder ${dir}: ${fsReason(e)}`, dir);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e2) {
      throw new SkepticInputError(`cannot create the report folder ${dir}: ${fsReason(e2)}`, dir);
    }
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new SkepticInputError(`report folder ${dir} is not writable: ${fsReason(e)}`, dir);
  }
}
