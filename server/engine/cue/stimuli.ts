/**
 * Cue-conflict stimulus sets in the layout of Geirhos et al. (ICLR 2019; rgeirhos/texture-vs-shape,
 * stimuli/style-transfer-preprocessed-512/<shape>/<shape>N-<texture>M.png):
 *
 *  - a folder: every image below it named `<shape><i>-<texture><j>.<ext>` (e.g.
 *    `airplane1-bicycle2.png`). The shape category is the name before the first number, the
 *    texture category the name after the hyphen; a parent folder named otherwise than the shape
 *    gets a warning (the file name wins). A manifest at the folder's top (labels.csv,
 *    conflict.csv, ...) with shape and texture columns is read instead when there is one.
 *  - a CSV or JSONL manifest with a path column (path, file, image, filename) and shape and
 *    texture columns (shape | shape_category | shape_class, texture | texture_category |
 *    texture_class); paths are relative to the manifest's folder. The demo's conflict.csv
 *    (`path,shape,texture`) and the fixture's labels.csv (`file,shape_category,texture_category,
 *    is_cue_conflict`) are both read this way.
 *
 * Stimuli are decoded with the model's input size, resized straight to it (a stimulus already at
 * that size, like the 224×224 Geirhos images, is used as is), unless `crop` asks for the model's
 * own resize-and-centre-crop: the paper shows the whole stimulus.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { isImageName, isInside, mapLimit, relPosix, sortStrings } from '../data/common';
import { decodeImage } from '../data/decode';
import { SkepticInputError } from '../errors';
import type { DecodeSpec, PixelImage } from '../types';

export interface Stimulus {
  /** Path relative to the set's root, forward slashes. */
  id: string;
  file: string;
  shape: string;
  texture: string;
  /** The manifest row, when listed by one. */
  manifest?: string;
  line?: number;
}

export interface StimulusSet {
  path: string;
  root: string;
  stimuli: Stimulus[];
  warnings: string[];
}

/** `<shape><i>-<texture><j>.<ext>` */
const GEIRHOS_NAME = /^([^\d/\\]+?)\d+-([^\d/\\]+?)\d+\.[a-z0-9]+$/i;

const norm = (s: string) => s.trim().toLowerCase().replace(/[\s-]+/g, '_');
const PATH_COLS = ['path', 'file', 'filename', 'file_name', 'image', 'image_path', 'img', 'filepath'];
const SHAPE_COLS = ['shape', 'shape_category', 'shape_class', 'shape_label'];
const TEXTURE_COLS = ['texture', 'texture_category', 'texture_class', 'texture_label', 'style'];

/** Parses a stimulus file name; undefined when it is not in the Geirhos form. */
export function parseStimulusName(name: string): { shape: string; texture: string } | undefined {
  const m = GEIRHOS_NAME.exec(name);
  return m ? { shape: m[1], texture: m[2] } : undefined;
}

export async function listStimuli(path: string): Promise<StimulusSet> {
  const abs = resolve(path);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new SkepticInputError(`cue-conflict stimuli not found: ${abs}`, abs);
  }
  if (st.isDirectory()) {
    const manifest = await topManifest(abs);
    if (manifest) return readManifest(manifest);
    return walk(abs);
  }
  const ext = extname(abs).toLowerCase();
  if (ext === '.csv' || ext === '.jsonl' || ext === '.ndjson') return readManifest(abs);
  throw new SkepticInputError(
    `${abs}: give a folder of cue-conflict stimuli (<shape>/<shape>N-<texture>M.png) or a CSV/JSONL manifest with path, shape and texture columns`,
    abs,
  );
}

/** A manifest at the folder's top with shape and texture columns, or undefined. */
async function topManifest(dir: string): Promise<string | undefined> {
  const names = sortStrings((await readdir(dir)).filter((f) => /\.(csv|jsonl|ndjson)$/i.test(f)));
  for (const f of names) {
    const file = join(dir, f);
    try {
      const head = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0];
      const cols = f.toLowerCase().endsWith('.csv') ? head.split(',').map(norm) : Object.keys(JSON.parse(head)).map(norm);
      if (cols.some((c) => SHAPE_COLS.includes(c)) && cols.some((c) => TEXTURE_COLS.includes(c))) return file;
    } catch {
      // not a stimulus manifest
    }
  }
  return undefined;
}

async function readManifest(file: string): Promise<StimulusSet> {
  const root = dirname(file);
  const text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  let rows: Array<{ line: number; row: Record<string, unknown> }>;
  try {
    if (file.toLowerCase().endsWith('.csv')) {
      const recs = parse(text, { columns: (h: string[]) => h.map(norm), skip_empty_lines: true, info: true, relax_column_count: true }) as Array<{
        record: Record<string, unknown>;
        info: { lines: number };
      }>;
      rows = recs.map((r) => ({ line: r.info.lines, row: r.record }));
    } else {
      rows = [];
      text.split(/\r?\n/).forEach((l, i) => {
        if (!l.trim()) return;
        const o = JSON.parse(l) as Record<string, unknown>;
        rows.push({ line: i + 1, row: Object.fromEntries(Object.entries(o).map(([k, v]) => [norm(k), v])) });
      });
    }
  } catch (e) {
    throw new SkepticInputError(`${file}: cannot read the stimulus manifest (${(e as Error).message.split('\n')[0]})`, file);
  }
  const cols = new Set(rows.flatMap((r) => Object.keys(r.row)));
  const pick = (list: string[]) => list.find((c) => cols.has(c));
  const pc = pick(PATH_COLS);
  const sc = pick(SHAPE_COLS);
  const tc = pick(TEXTURE_COLS);
  if (!pc || !sc || !tc) {
    throw new SkepticInputError(`${file}: a stimulus manifest needs a path column (${PATH_COLS.join('|')}), a shape column (${SHAPE_COLS.join('|')}) and a texture column (${TEXTURE_COLS.join('|')})`, file);
  }
  const stimuli: Stimulus[] = [];
  const warnings: string[] = [];
  let bad = 0;
  for (const { line, row } of rows) {
    const p = String(row[pc] ?? '').trim();
    const shape = String(row[sc] ?? '').trim();
    const texture = String(row[tc] ?? '').trim();
    const abs = resolve(root, p);
    if (!p || !shape || !texture || !isInside(root, abs)) {
      bad++;
      continue;
    }
    stimuli.push({ id: relPosix(root, abs), file: abs, shape, texture, manifest: file, line });
  }
  if (bad) warnings.push(`${file}: ${bad} rows without a usable path, shape and texture were skipped`);
  if (!stimuli.length) throw new SkepticInputError(`${file}: no stimuli listed`, file);
  return { path: file, root, stimuli, warnings };
}

async function walk(root: string): Promise<StimulusSet> {
  const stimuli: Stimulus[] = [];
  const warnings: string[] = [];
  let unnamed = 0;
  let mismatched = 0;
  const visit = async (dir: string, depth: number): Promise<void> => {
    if (depth > 8) return;
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) await visit(p, depth + 1);
      else if (isImageName(e.name)) {
        const parsed = parseStimulusName(e.name);
        if (!parsed) {
          unnamed++;
          continue;
        }
        const folder = dir === root ? undefined : dir.slice(dirname(dir).length + 1);
        if (folder !== undefined && folder.toLowerCase() !== parsed.shape.toLowerCase()) mismatched++;
        stimuli.push({ id: relPosix(root, p), file: p, ...parsed });
      }
    }
  };
  await visit(root, 0);
  if (unnamed) warnings.push(`${root}: ${unnamed} images not named <shape>N-<texture>M were skipped`);
  if (mismatched) warnings.push(`${root}: ${mismatched} stimuli lie in a folder not named after their shape category (the file name was used)`);
  if (!stimuli.length) {
    throw new SkepticInputError(`${root}: no cue-conflict stimuli found (expected <shape>/<shape>N-<texture>M.png files or a manifest with shape and texture columns)`, root);
  }
  return { path: root, root, stimuli, warnings };
}

/** The decode spec for stimuli: the model's size, resized straight to it unless `crop`. */
export function stimulusSpec(spec: DecodeSpec, crop: boolean): DecodeSpec {
  const out: DecodeSpec = { channels: spec.channels, height: spec.height, width: spec.width, margin: 0 };
  if (crop && spec.resizeShortSide !== undefined) out.resizeShortSide = spec.resizeShortSide;
  if (spec.interpolation !== undefined) out.interpolation = spec.interpolation;
  if (spec.resampler !== undefined) out.resampler = spec.resampler;
  if (crop && spec.cropRounding !== undefined) out.cropRounding = spec.cropRounding;
  return out;
}

/** Decodes stimuli in order, in batches; an unreadable one comes back with its error. */
export async function* decodeStimuli(
  stimuli: readonly Stimulus[], spec: DecodeSpec, batchSize: number, concurrency = 4, signal?: AbortSignal,
): AsyncGenerator<Array<{ stimulus: Stimulus; image?: PixelImage; error?: string }>> {
  for (let i = 0; i < stimuli.length; i += batchSize) {
    if (signal?.aborted) return;
    const part = stimuli.slice(i, i + batchSize);
    yield await mapLimit(part, concurrency, async (s) => {
      try {
        return { stimulus: s, image: await decodeImage(await readFile(s.file), spec) };
      } catch (e) {
        return { stimulus: s, error: (e as Error).message };
      }
    });
  }
}
