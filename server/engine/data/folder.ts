/**
 * torchvision ImageFolder datasets: root/<class>/<image>, classes = sorted subfolder names.
 *
 * Listing follows torchvision: class folders sorted by name; inside each, sub-folders are walked
 * too (following links), folders in sorted path order and files sorted within each. Hidden
 * entries (".git", macOS "._x.jpg") are skipped, which torchvision does not do. Files without an
 * image extension are ignored, and counted in a warning.
 *
 * Class indices (first rule that applies):
 * 1. the model has labels and every folder name matches one of its classes: those classes;
 * 2. every folder name is an integer (and within the model's classes): that integer;
 * 3. otherwise the position in the sorted folder list (torchvision's rule), with a warning.
 * A folder with images but no class folders is read as an unlabelled set (e.g. an OOD folder).
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SkepticInputError } from '../errors';
import type { DatasetRecord, LabelSet } from '../types';
import { checkFiles, isImageName, listSome, relPosix, sortStrings, type Listing, type ReadOptions } from './common';
import { isIntegerString, LabelMatcher } from './labels';
import { streamFiles } from './stream';

interface Entries {
  dirs: string[];
  files: string[];
}

/** Visible sub-folders and files of `dir`, each sorted; links are followed. */
async function entries(dir: string): Promise<Entries> {
  const out: Entries = { dirs: [], files: [] };
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) {
      // a broken link is listed as a file, and reported as a missing one
      const st = await stat(join(dir, e.name)).catch(() => undefined);
      isDir = !!st?.isDirectory();
    }
    // FIFOs, devices and sockets (or links to them) with an image name are listed too, so that
    // each becomes an error on the item ("is a FIFO") instead of vanishing from the audit.
    if (isDir) out.dirs.push(e.name);
    else out.files.push(e.name);
  }
  out.dirs = sortStrings(out.dirs);
  out.files = sortStrings(out.files);
  return out;
}

/** Image files under `dir`, in torchvision's order (sorted(os.walk(dir)), files sorted). */
async function walk(dir: string, seen: Set<string>, ignored: string[]): Promise<string[]> {
  const folders: Array<[string, string[]]> = [];
  const visit = async (d: string) => {
    const real = await realpath(d);
    if (seen.has(real)) return; // a link cycle
    seen.add(real);
    const { dirs, files } = await entries(d);
    const images: string[] = [];
    for (const f of files) (isImageName(f) ? images : ignored).push(join(d, f));
    folders.push([d, images]);
    for (const sub of dirs) await visit(join(d, sub));
  };
  await visit(dir);
  folders.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return folders.flatMap(([, images]) => images);
}

/** Class index per folder (see the module comment), and what the user should be told. */
export function folderLabels(names: readonly string[], labels?: LabelSet): { indices: number[]; warnings: string[] } {
  const warnings: string[] = [];
  if (labels) {
    const m = new LabelMatcher(labels);
    const matched = names.map((n) => m.match(n));
    if (matched.every((i) => i !== undefined)) return { indices: matched as number[], warnings };
  }
  const n = labels?.names.length;
  if (names.every(isIntegerString) && names.every((s) => Number(s) >= 0 && (n === undefined || Number(s) < n))) {
    const indices = names.map(Number);
    const numeric = [...indices].sort((a, b) => a - b);
    if (!labels && indices.some((v, i) => v !== numeric[i])) {
      warnings.push(
        'class folders have integer names and are read as class indices; torchvision\'s ImageFolder would number them in sorted ' +
          `string order instead (${listSome(names, 4)}...), so check which one the model was trained with`,
      );
    }
    return { indices, warnings };
  }
  if (labels) {
    const m = new LabelMatcher(labels);
    const unmatched = names.filter((s) => m.match(s) === undefined);
    warnings.push(
      `class folders ${listSome(unmatched)} do not match the model's classes (${labels.source}); classes are numbered by sorted ` +
        `folder name instead (torchvision's ImageFolder rule): ${names.length} folders for ${labels.names.length} model classes`,
    );
  } else {
    warnings.push('the model has no class names to match the folders against; classes are numbered by sorted folder name (torchvision\'s ImageFolder rule)');
  }
  return { indices: names.map((_, i) => i), warnings };
}

export async function listFolder(root: string, opts: ReadOptions): Promise<Listing> {
  const top = await entries(root);
  const rootImages = top.files.filter(isImageName);
  const warnings: string[] = [];
  const ignored: string[] = [];
  const records: DatasetRecord[] = [];
  let classes: string[] | undefined;

  if (top.dirs.length === 0) {
    if (rootImages.length === 0) {
      throw new SkepticInputError(`dataset folder ${root} holds no images and no class folders (expected root/<class>/<image>)`, root);
    }
    warnings.push(`${root} has no class folders: its ${rootImages.length} images are read as an unlabelled set`);
    for (const f of rootImages) {
      const file = join(root, f);
      records.push({ index: records.length, id: relPosix(root, file), file });
    }
  } else {
    if (rootImages.length) {
      warnings.push(`${rootImages.length} images directly in ${root} are ignored (${listSome(rootImages, 3)}): ImageFolder expects root/<class>/<image>`);
    }
    classes = top.dirs;
    const { indices, warnings: w } = folderLabels(classes, opts.labels);
    warnings.push(...w);
    const seen = new Set<string>();
    const empty: string[] = [];
    for (let c = 0; c < classes.length; c++) {
      const files = await walk(join(root, classes[c]), seen, ignored);
      if (files.length === 0) empty.push(classes[c]);
      for (const file of files) {
        records.push({ index: records.length, id: relPosix(root, file), file, label: indices[c], labelName: classes[c] });
      }
    }
    if (empty.length) warnings.push(`class folders without images: ${listSome(empty)}`);
    if (classes.length === 1) warnings.push(`${root} has a single class folder (${JSON.stringify(classes[0])}): every image gets the same label`);
  }
  if (records.length === 0) {
    throw new SkepticInputError(`dataset folder ${root} holds no images (looked for .png, .jpg, .jpeg, .webp, .gif, .tif, .tiff and .avif files in its class folders)`, root);
  }
  if (ignored.length) {
    warnings.push(`${ignored.length} file(s) without an image extension were ignored (${listSome(ignored.map((f) => relPosix(root, f)), 3)})`);
  }
  await checkFiles(records, (r) => r.id, root, opts.followSymlinks);
  return { kind: 'folder', path: root, root, classes, records, warnings, stream: streamFiles };
}
