/**
 * The report folder: created if needed and checked writable before an audit starts (so a bad
 * --out costs no audit time) and again when the report is written. Problems are
 * SkepticInputErrors naming the folder: it is a file, it lies under a file, it is read-only.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { SkepticInputError } from '../errors';
import { fsReason } from './files';

/**
 * mkdir -p, one level at a time: Node's recursive mkdirSync never returns for a path under
 * /proc (it retries the ENOENT forever).
 */
function mkdirs(dir: string): void {
  const missing: string[] = [];
  let d = dir;
  for (;;) {
    try {
      const st = statSync(d);
      if (!st.isDirectory()) throw new SkepticInputError(`cannot create the report folder ${dir}: ${d} is a file, not a folder`, dir);
      break;
    } catch (e) {
      if (e instanceof SkepticInputError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(d) === d) throw new SkepticInputError(`cannot create the report folder ${dir}: ${fsReason(e)}`, dir);
      missing.push(d);
      d = dirname(d);
    }
  }
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new SkepticInputError(`cannot create the report folder ${dir}: ${fsReason(e)}`, dir);
    }
  }
}

/**
 * Whether the report folder can be made, without making it (a refused audit leaves no empty
 * folder behind): it is a folder, or its nearest existing ancestor is a writable folder.
 */
export function checkOutDir(dir: string): void {
  let d = dir;
  for (;;) {
    try {
      const st = statSync(d);
      if (!st.isDirectory()) {
        throw new SkepticInputError(d === dir ? `report folder ${dir} is a file, not a folder` : `cannot create the report folder ${dir}: ${d} is a file, not a folder`, dir);
      }
      break;
    } catch (e) {
      if (e instanceof SkepticInputError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(d) === d) throw new SkepticInputError(`report folder ${dir}: ${fsReason(e)}`, dir);
      d = dirname(d);
    }
  }
  try {
    accessSync(d, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new SkepticInputError(d === dir ? `report folder ${dir} is not writable: ${fsReason(e)}` : `cannot create the report folder ${dir}: ${d} is not writable (${fsReason(e)})`, dir);
  }
}

export function ensureOutDir(dir: string): void {
  try {
    const st = statSync(dir);
    if (!st.isDirectory()) throw new SkepticInputError(`report folder ${dir} is a file, not a folder`, dir);
  } catch (e) {
    if (e instanceof SkepticInputError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new SkepticInputError(`report folder ${dir}: ${fsReason(e)}`, dir);
    mkdirs(dir);
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new SkepticInputError(`report folder ${dir} is not writable: ${fsReason(e)}`, dir);
  }
}
