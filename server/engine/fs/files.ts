/**
 * Reading files the user named without trusting them: only regular files of a sane size are
 * read (a FIFO would block the process forever, /dev/zero would fill its memory), and every
 * failure becomes a SkepticInputError that names the file and says why in words, not an errno.
 * Also the symlink rule for datasets: a link must resolve inside the dataset's root.
 */
import { readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';
import { SkepticInputError } from '../errors';

/** protobuf's limit, and so ONNX's for a model in one file. */
export const MAX_MODEL_BYTES = 2 ** 31 - 1;
/** Text files the user writes by hand (skeptic.json, labels, preprocessor_config.json). */
export const MAX_TEXT_BYTES = 64 * 2 ** 20;

/** Why a file system call failed, in words. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT': return 'not found';
    case 'ELOOP': return 'a symbolic link loop (the link points back to itself)';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'ENOTDIR': return 'a part of the path is a file, not a folder';
    case 'EISDIR': return 'is a folder, not a file';
    case 'ENAMETOOLONG': return 'the path is too long';
    case 'ENOSPC': return 'no space left on the device';
    case 'EDQUOT': return 'over the disk quota';
    case 'EROFS': return 'the file system is read-only';
    case 'EEXIST': return 'already exists';
    case 'EMFILE':
    case 'ENFILE': return 'too many open files';
    case 'EIO': return 'an I/O error';
    default: return code ? `${code}: ${(e as Error).message}` : String((e as Error)?.message ?? e);
  }
}

/** What a non-regular file is, in words; undefined for a regular file. */
export function notRegular(st: Stats): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'is a folder, not a file';
  if (st.isFIFO()) return 'is a FIFO (named pipe), not a regular file';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'is a device, not a regular file';
  if (st.isSocket()) return 'is a socket, not a regular file';
  return 'is not a regular file';
}

function sizeText(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${n} bytes`;
}

/**
 * Stats `file` (following links) and checks that it is a regular file of at most `maxBytes`;
 * otherwise throws a SkepticInputError "`what` FILE: why".
 */
export function checkRegularFile(file: string, what: string, maxBytes: number): Stats {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    throw new SkepticInputError(`${what} ${file}: ${fsReason(e)}`, file);
  }
  const bad = notRegular(st);
  if (bad) throw new SkepticInputError(`${what} ${file} ${bad}`, file);
  if (st.size > maxBytes) throw new SkepticInputError(`${what} ${file} is ${sizeText(st.size)}; the limit is ${sizeText(maxBytes)}`, file);
  return st;
}

/** Reads a regular file of sane size (see checkRegularFile). */
export function readRegularFile(file: string, what: string, maxBytes = MAX_TEXT_BYTES): Buffer {
  checkRegularFile(file, what, maxBytes);
  try {
    return readFileSync(file);
  } catch (e) {
    throw new SkepticInputError(`${what} ${file}: ${fsReason(e)}`, file);
  }
}

/** True when `abs` (already resolved) lies inside `root`. */
export function isInsideDir(root: string, abs: string): boolean {
  const rel = relative(root, abs);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Where `file` really is when it resolves outside `root` (both through their links), or
 * undefined when it stays inside (or cannot be resolved: the caller's own checks report that).
 */
export function escapesRoot(root: string, file: string): string | undefined {
  let realRoot: string;
  let real: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(file);
  } catch {
    return undefined;
  }
  return isInsideDir(realRoot, real) ? undefined : real;
}
