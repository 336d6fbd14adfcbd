/**
 * Opening a dataset: detects its kind from the path, lists its records (with labels mapped to the
 * model's classes and unusable items flagged), applies --limit, and streams decoded batches.
 *
 * Kinds, from the path:
 * - a folder holding an idx3 images file (*idx3-ubyte[.gz]), or such a file: MNIST IDX (idx.ts);
 * - a .csv file: CSV manifest; a .jsonl or .ndjson file: JSON Lines manifest (manifest.ts);
 * - a folder with fewer than two sub-folders and a manifest at its top (labels.csv,
 *   manifest.jsonl, ...): that manifest, with a warning. This is the common "labels.csv +
 *   images/" layout, which read as an ImageFolder would be a single class named "images";
 * - any other folder: torchvision ImageFolder, root/<class>/<image> (folder.ts).
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { SkepticInputError } from '../errors';
import type { Dataset, LabelSet } from '../types';
import { fsReason, notRegular } from '../fs/files';
import { describe, isImageName, type Listing, type ListingProgress } from './common';
export type { ListingProgress } from './common';
import { DEFAULT_MAX_PIXELS } from './decode';
import { listFolder } from './folder';
import { isIdxImages, listIdx } from './idx';
import { stratifiedSample } from './limit';
import { listManifest } from './manifest';

export { decodeGrayPixels, decodeImage, DecodeError, DEFAULT_MAX_PIXELS } from './decode';
export { stratifiedSample } from './limit';

export interface OpenDatasetOptions {
  /** The model's classes, to map label values to class indices. */
  labels?: LabelSet;
  /** Manifest column overrides (names, case-insensitive). */
  pathColumn?: string;
  labelColumn?: string;
  /** --limit: a class-stratified deterministic sample of this many items, drawn with `seed`. */
  limit?: number;
  seed?: number;
  /** Decompression-bomb guard (sharp's limitInputPixels); default 100,000,000. */
  maxPixels?: number;
  /** Images decoded at once; default 4. */
  concurrency?: number;
  /** The model's class count: a label at or past it is an error on its row (not a crash later). */
  numClasses?: number;
  /** Follow symbolic links that resolve outside the dataset's root (default: an error on the item). */
  followSymlinks?: boolean;
  /** How far listing a manifest got, every few thousand rows (it takes seconds for 200,000). */
  onProgress?: (p: ListingProgress) => void;
}

const MANIFEST_EXTENSIONS: Record<string, 'csv' | 'jsonl'> = { '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };
/** Preferred manifest names when a folder holds several. */
const MANIFEST_NAMES = ['labels', 'manifest', 'annotations', 'dataset', 'data', 'test'];

/** The manifest a folder stands for (see the module comment), or undefined. */
async function folderManifest(dir: string): Promise<string | undefined> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  const subfolders = entries.filter((e) => e.isDirectory() || e.isSymbolicLink()).length;
  if (subfolders >= 2) return undefined;
  const manifests = entries.filter((e) => e.isFile() && MANIFEST_EXTENSIONS[extname(e.name).toLowerCase()]).map((e) => e.name).sort();
  if (manifests.length === 1) return join(dir, manifests[0]);
  for (const n of MANIFEST_NAMES) {
    const m = manifests.find((f) => f.slice(0, -extname(f).length).toLowerCase() === n);
    if (m) return join(dir, m);
  }
  return undefined;
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new SkepticInputError(`${name} must be a positive integer, not ${v}`);
  return v;
}

/** Marks the records whose label is not one of the model's `k` classes (e.g. 42 for 10 classes). */
function outOfRange(listing: Listing, k: number): void {
  const mark =
    listing.setProblem ??
    ((i: number, problem: string) => {
      listing.records[i].problem = problem;
      listing.records[i].label = undefined;
    });
  listing.records.forEach((r, i) => {
    if (r.problem || r.label === undefined || (r.label >= 0 && r.label < k)) return;
    mark(i, `${describe(r)}: label ${r.label} is not a class of the model (it has ${k} classes, 0 to ${k - 1})`, true);
  });
}

export async function openDataset(path: string, opts: OpenDatasetOptions = {}): Promise<Dataset> {
  try {
    return await open(path, opts);
  } catch (e) {
    // A manifest or folder that cannot be read (permission denied, a link loop...): one line
    // naming it, not an internal error. Problems with single items are findings instead.
    const code = (e as NodeJS.ErrnoException).code;
    if (e instanceof SkepticInputError || typeof code !== 'string') throw e;
    const abs = resolve(path);
    const what = (e as NodeJS.ErrnoException).path ?? abs;
    throw new SkepticInputError(`cannot read ${what === abs ? 'dataset ' : ''}${what}: ${fsReason(e)}`, what);
  }
}

async function open(path: string, opts: OpenDatasetOptions): Promise<Dataset> {
  const abs = resolve(path);
  const concurrency = positiveInt('concurrency', opts.concurrency, 4);
  const maxPixels = positiveInt('maxPixels', opts.maxPixels, DEFAULT_MAX_PIXELS);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SkepticInputError(code === 'ENOENT' ? `dataset not found: ${abs}` : `cannot open dataset ${abs}: ${fsReason(e)}`, abs);
  }
  // A FIFO or a device would block or never end; only folders and regular files are datasets.
  if (!st.isDirectory() && !st.isFile()) throw new SkepticInputError(`dataset ${abs} ${notRegular(st)}`, abs);

  let listing: Listing;
  const warnings: string[] = [];
  if (st.isDirectory()) {
    const idx = (await readdir(abs)).some(isIdxImages);
    const manifest = idx ? undefined : await folderManifest(abs);
    if (idx) listing = await listIdx(abs, true, opts);
    else if (manifest) {
      warnings.push(`${abs} is read through its manifest ${basename(manifest)}`);
      listing = await listManifest(manifest, MANIFEST_EXTENSIONS[extname(manifest).toLowerCase()], opts);
    } else listing = await listFolder(abs, opts);
  } else {
    const kind = MANIFEST_EXTENSIONS[extname(abs).toLowerCase()];
    if (kind) listing = await listManifest(abs, kind, opts);
    else if (isIdxImages(basename(abs))) listing = await listIdx(abs, false, opts);
    else {
      const what = isImageName(abs) ? 'a single image' : 'not a dataset';
      throw new SkepticInputError(
        `${abs} is ${what}: give a folder of class folders (root/<class>/<image>), a .csv or .jsonl manifest, or a folder with MNIST IDX files`,
        abs,
      );
    }
  }

  if (opts.numClasses !== undefined) outOfRange(listing, opts.numClasses);
  const records = stratifiedSample(listing.records, opts.limit, opts.seed ?? 0);
  const cfg = { concurrency, maxPixels };
  return {
    path: listing.path,
    kind: listing.kind,
    root: listing.root,
    classes: listing.classes,
    total: listing.records.length,
    records,
    warnings: [...warnings, ...listing.warnings],
    stream: (spec, so) => listing.stream(so.only ? records.filter(so.only) : records, spec, so, cfg),
  };
}
