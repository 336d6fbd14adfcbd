/**
 * Small helpers the dataset readers share: which files count as images, paths relative to the
 * dataset root, file checks at listing time, and how a record is named in messages.
 */
import { lstat, realpath, stat } from 'node:fs/promises';
import { fsReason, notRegular } from '../fs/files';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import type { DatasetRecord, DecodeSpec, LabelSet, Sample, StreamOptions } from '../types';
import type { DecodeConfig } from './stream';

/**
 * Extensions listed as images. Wider than what the decoder reads (BMP, PNM, HEIC): such files
 * are listed so that each one gets a clear "unsupported format" error instead of silently
 * vanishing from the audit. Everything else in a class folder (README, .DS_Store...) is ignored.
 */
export const IMAGE_EXTENSIONS = new Set([
  '.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.webp', '.gif', '.tif', '.tiff', '.avif',
  '.heic', '.heif', '.bmp', '.ppm', '.pgm', '.pbm', '.pnm',
]);

export function isImageName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return dot > 0 && IMAGE_EXTENSIONS.has(name.slice(dot).toLowerCase());
}

/** Path of `abs` relative to `root`, with forward slashes (record ids are the same on every OS). */
export function relPosix(root: string, abs: string): string {
  return relative(root, abs).split(sep).join('/');
}

/** True when `abs` (already resolved) lies inside `root`. */
export function isInside(root: string, abs: string): boolean {
  const rel = relative(root, abs);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/** How messages name a record: the manifest row when there is one, and the image path. */
export function describe(record: DatasetRecord): string {
  return record.manifest !== undefined && record.line !== undefined
    ? `${basename(record.manifest)} row ${record.line} (${record.id})`
    : record.id;
}

/**
 * Why a listed file cannot be used, or undefined when it looks fine: missing, not a file, or
 * empty. Done at listing time (a stat is cheap) so that such items become findings pointing at
 * their row and count as problems for --limit; anything found later comes back from stream().
 */
export async function fileProblem(
  file: string,
  root?: string,
  followSymlinks = false,
  realRoot?: string,
  /** Real paths of folders, shared by the files of one listing. */
  dirs = new Map<string, Promise<string>>(),
): Promise<string | undefined> {
  try {
    // lstat first: for a plain file (the common case) it is the only call needed
    let st = await lstat(file);
    const isLink = st.isSymbolicLink();
    if (isLink) st = await stat(file);
    if (st.isDirectory()) return 'is a folder, not an image file';
    const bad = notRegular(st);
    if (bad) return bad;
    if (st.size === 0) return 'file is empty (0 bytes)';
    if (st.size > MAX_IMAGE_BYTES) return `file is ${(st.size / 2 ** 30).toFixed(1)} GB; images over ${MAX_IMAGE_BYTES / 2 ** 30} GB are not read`;
    // A link (the file's or a folder's on its way) must stay inside the dataset's root: a
    // dataset from elsewhere must not make the audit read /etc/passwd or a neighbour's files.
    if (root && !followSymlinks) {
      const real = isLink ? await realpath(file) : await realPath(file, dirs);
      if (!isInside(realRoot ?? (await realpath(root)), real)) return `is a symbolic link to ${real}, outside the dataset's folder ${root} (pass --follow-symlinks to read it)`;
    }
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'file not found';
    if (code === 'EACCES' || code === 'EPERM') return 'file is not readable (permission denied)';
    return `file cannot be read (${fsReason(e)})`;
  }
}

/**
 * The real path of a file that is not itself a link: its folder's real path (resolved once per
 * folder) plus its name, so a 200,000-row manifest costs one lstat per file, not a realpath walk.
 */
async function realPath(file: string, realDirs: Map<string, Promise<string>>): Promise<string> {
  const dir = dirname(file);
  let real = realDirs.get(dir);
  if (!real) {
    realDirs.set(dir, (real = realpath(dir)));
  }
  return join(await real, basename(file));
}

/** Larger image files are refused at listing time (the decoder's pixel limit guards the rest). */
export const MAX_IMAGE_BYTES = 2 ** 30;

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Stat concurrency for listing-time file checks: I/O bound, so well above the CPU count. */
export const STAT_CONCURRENCY = 32;

/** Sets `problem` on the records whose file is missing, empty or not a file. */
export async function checkFiles(
  records: DatasetRecord[],
  prefix: (r: DatasetRecord) => string,
  root?: string,
  followSymlinks = false,
  progress?: (done: number, total: number) => void,
): Promise<void> {
  const todo = records.filter((r) => !r.problem);
  const realRoot = root && !followSymlinks ? await realpath(root).catch(() => root) : undefined;
  const dirs = new Map<string, Promise<string>>();
  // A manifest may list one file on many rows: each file is checked once.
  const seen = new Map<string, Promise<string | undefined>>();
  const check = (file: string) => {
    let p = seen.get(file);
    if (!p) seen.set(file, (p = fileProblem(file, root, followSymlinks, realRoot, dirs)));
    return p;
  };
  let checked = 0;
  const problems = await mapLimit(todo, STAT_CONCURRENCY, async (r) => {
    const p = await check(r.file);
    if (++checked % LISTING_PROGRESS_EVERY === 0) progress?.(checked, todo.length);
    return p;
  });
  todo.forEach((r, i) => {
    if (problems[i]) r.problem = `${prefix(r)}: ${problems[i]}`;
  });
}

/** "a, b, c and 4 more": keeps warnings about long lists short. */
export function listSome(values: readonly string[], max = 5): string {
  const shown = values.slice(0, max).map((v) => JSON.stringify(v)).join(', ');
  return values.length > max ? `${shown} and ${values.length - max} more` : shown;
}

/** Sorts strings by code unit, like Python's sorted() on str for the names met in practice (not
 *  localeCompare: class indices must not depend on the user's locale). */
export function sortStrings(values: Iterable<string>): string[] {
  return [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** What a dataset reader returns: everything a Dataset holds except the --limit selection. */
export interface Listing {
  kind: 'folder' | 'csv' | 'jsonl' | 'idx';
  path: string;
  root: string;
  classes?: string[];
  /** Every item, in dataset order (record.index = position here). */
  records: DatasetRecord[];
  warnings: string[];
  /**
   * Marks item `index` unusable after listing (a label the model does not have), dropping its
   * label when asked; for listings whose records are made when read (manifests), where setting
   * `problem` on a record would change nothing. Absent: the records are objects, set them.
   */
  setProblem?(index: number, problem: string, dropLabel?: boolean): void;
  /** Decodes the given records (a subset of `records`, in order), skipping those with a problem. */
  stream(records: readonly DatasetRecord[], spec: DecodeSpec, opts: StreamOptions, cfg: DecodeConfig): AsyncIterable<Sample[]>;
}

/** The options every reader gets (a subset of OpenDatasetOptions). */
export interface ReadOptions {
  labels?: LabelSet;
  pathColumn?: string;
  labelColumn?: string;
  /** Read files whose links resolve outside the dataset's root (default: an error on the item). */
  followSymlinks?: boolean;
  /** Listing a large manifest takes seconds: how far it got ("reading rows", "checking files"). */
  onProgress?: (p: ListingProgress) => void;
}

export interface ListingProgress {
  done: number;
  total: number;
  step: string;
}

/** Rows between two listing progress reports. */
export const LISTING_PROGRESS_EVERY = 8192;
