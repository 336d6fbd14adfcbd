/**
 * CSV and JSONL manifests: one row per image, `path,label`, paths relative to the manifest's
 * folder. Every record keeps its manifest and 1-based line so a finding can point at the row.
 *
 * Columns (names compared case-insensitively, with spaces and hyphens read as underscores):
 * - path: pathColumn, else the first present of PATH_COLUMNS. A CSV whose first row has no such
 *   name but starts with an image file name is read as headerless `path,label,...`.
 * - label: labelColumn, else among the present LABEL_COLUMNS the first whose values are all
 *   integers (an index column, e.g. class_index or label), else the first present one (a name
 *   column). So with `label,class_name` (CIFAR) or `file,class_index,wnid` the index wins; with
 *   only `class_name`, names are used. Index columns are unambiguous and never depend on how a
 *   labels file spells a class, which is why they are preferred.
 * - a name column (NAME_COLUMNS, not all integers, other than the label column) supplies
 *   labelName and Dataset.classes.
 * A manifest without any label column is read as unlabelled, with a warning.
 *
 * Labels: an integer label column holds class indices (checked against the model's class count);
 * names are matched against the model's LabelSet, or, without one, numbered in sorted order
 * with a warning. A row with an empty or unknown label gets a `problem`.
 *
 * Rows that cannot be used (no path, a path leaving the manifest's folder, a missing or empty
 * file, invalid JSON, a CSV syntax error) become records with a `problem`, never a crash.
 */
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { parse } from 'csv-parse/sync';
import { SkepticInputError } from '../errors';
import { fileProblem, isImageName, isInside, LISTING_PROGRESS_EVERY, listSome, relPosix, sortStrings, STAT_CONCURRENCY, type Listing, type ReadOptions } from './common';
import { ManifestRecords } from './manifest-records';
import { indexLabel, isIntegerString, LabelMatcher, labelText, type LabelResult } from './labels';
import { streamFiles } from './stream';

export const PATH_COLUMNS = [
  'path', 'file', 'filename', 'image', 'image_path', 'img', 'filepath', 'file_path', 'file_name',
  'img_path', 'image_file', 'image_name', 'relative_path', 'relpath',
];
export const LABEL_COLUMNS = [
  'label', 'class_index', 'target', 'y', 'class_id', 'class_idx', 'label_index', 'label_id',
  'class', 'class_name', 'label_name', 'category',
];
const NAME_COLUMNS = ['class_name', 'label_name', 'class', 'category', 'label', 'name', 'target', 'y'];

const normColumn = (s: string) => s.trim().toLowerCase().replace(/[\s-]+/g, '_');

/** A manifest row: values aligned with the columns, or why the row could not be read. */
interface Row {
  line: number;
  values?: unknown[];
  error?: string;
}

/** Rows to go through, once or a few times, in order. */
interface Rows extends Iterable<Row> {
  readonly length: number;
}

interface Table {
  columns: string[];
  rows: Rows;
  warnings: string[];
}

/** Start offsets of every line in `buf`; a line ends at \n, \r\n or a lone \r. */
function lineStarts(buf: Buffer): number[] {
  const starts = [0];
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === 0x0a || (c === 0x0d && buf[i + 1] !== 0x0a)) starts.push(i + 1);
  }
  return starts;
}

/** 1-based line holding byte `offset`. */
function lineAt(starts: number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}

const isBlank = (cells: unknown[]): boolean => cells.every((c) => labelText(c) === undefined);

/**
 * The rows of a CSV file with the 1-based line each starts on, blank rows dropped. A file
 * without a double quote (most manifests) is split by lines and commas directly, which is what
 * csv-parse does with such a file and about 3× faster without its per-record info objects (a
 * 200,000-row manifest: ~2.5 s less); a file with quotes goes through csv-parse. `viaParser`
 * forces the parser (for the test that both agree).
 */
export function csvRows(buf: Buffer, starts = lineStarts(buf), viaParser = false): Row[] {
  return [...csvRowSource(buf, starts, viaParser)];
}

/** csvRows, but a file without quotes is split again on each pass instead of held as row objects
 *  (a 200,000-row manifest held so was about 50 MB at the peak of listing it). */
function csvRowSource(buf: Buffer, starts: number[], viaParser = false): Rows {
  if (!viaParser && !buf.includes(0x22)) return new SplitRows(buf, starts, 0);
  return parsedRows(buf, starts);
}

/** The non-blank rows of a quote-free CSV from line index `first` on, split by commas when read. */
class SplitRows implements Rows {
  readonly length: number;
  constructor(
    private readonly buf: Buffer,
    private readonly starts: number[],
    private readonly first: number,
  ) {
    let n = 0;
    for (const _ of this) n++;
    this.length = n;
  }

  /** The rows after `row` (one of these). */
  after(row: Row): SplitRows {
    return new SplitRows(this.buf, this.starts, row.line);
  }

  *[Symbol.iterator](): Iterator<Row> {
    const { buf, starts } = this;
    const bom = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
    for (let i = this.first; i < starts.length; i++) {
      let end = i + 1 < starts.length ? starts[i + 1] : buf.length;
      while (end > starts[i] && (buf[end - 1] === 0x0a || buf[end - 1] === 0x0d)) end--;
      const from = i === 0 ? Math.min(bom, end) : starts[i];
      if (end === from) continue; // skip_empty_lines
      const values = buf.toString('utf8', from, end).split(',');
      if (!isBlank(values)) yield { line: i + 1, values };
    }
  }
}

function parsedRows(buf: Buffer, starts: number[]): Row[] {
  const skipped: Row[] = [];
  // csv-parse counts a \r\n inside a quoted field as two lines, so its info.lines drifts after
  // such a row. The row's first line is taken from byte offsets instead: info.bytes is where the
  // record ends, and the raw record text (less the blank lines before it) gives its length.
  const parsed = parse(buf, {
    info: true,
    raw: true,
    bom: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (err) => {
      const line = (err as { lines?: number } | undefined)?.lines;
      skipped.push({ line: line ?? 0, error: `CSV syntax error: ${err?.message ?? 'unreadable row'}` });
    },
  }) as unknown as Array<{ record: string[]; raw: string; info: { bytes: number } }>;
  const rows: Row[] = [];
  for (const r of parsed) {
    const body = Buffer.byteLength(r.raw.replace(/^[\r\n]+/, ''));
    rows.push({ line: lineAt(starts, Math.max(0, r.info.bytes - body)), values: r.record });
  }
  return [...rows, ...skipped].sort((a, b) => a.line - b.line).filter((r) => r.error || !isBlank(r.values!));
}

async function readCsv(file: string, opts: ReadOptions): Promise<Table> {
  const buf = await readFile(file);
  const starts = lineStarts(buf);
  const all = csvRowSource(buf, starts);
  let first: Row | undefined;
  for (const r of all) if (!r.error) {
    first = r;
    break;
  }
  if (!first) throw new SkepticInputError(`manifest ${file} is empty`, file);
  const header = (first.values as string[]).map((c) => c.trim());
  const warnings: string[] = [];
  const known = new Set(PATH_COLUMNS);
  const named = header.some((h) => known.has(normColumn(h)));
  if (!opts.pathColumn && !named && isImageName(header[0] ?? '')) {
    // Headerless: the first row is data.
    warnings.push(`${basename(file)} has no header row; reading its columns as path, label`);
    const columns = header.map((_, i) => (i === 0 ? 'path' : i === 1 ? 'label' : `column${i + 1}`));
    return { columns, rows: all, warnings };
  }
  return { columns: header, rows: all instanceof SplitRows ? all.after(first) : (all as Row[]).filter((r) => r !== first), warnings };
}

async function readJsonl(file: string): Promise<Table> {
  const rows = new JsonlRows(await readFile(file));
  if (rows.length === 0) throw new SkepticInputError(`manifest ${file} is empty`, file);
  return { columns: rows.columns, rows, warnings: [] };
}

/**
 * The non-blank lines of a JSON Lines manifest, parsed again on each pass (like SplitRows) so
 * that a large manifest is not held as one object per row; the first pass finds the columns
 * (every key, in order of first appearance) and counts the rows.
 */
class JsonlRows implements Rows {
  readonly length: number;
  readonly columns: string[] = [];
  private readonly starts: number[];
  constructor(private readonly buf: Buffer) {
    this.starts = lineStarts(buf);
    const seen = new Set<string>();
    let n = 0;
    for (const { obj } of this.objects()) {
      n++;
      if (obj) for (const k of Object.keys(obj)) if (!seen.has(k)) {
        seen.add(k);
        this.columns.push(k);
      }
    }
    this.length = n;
  }

  private *objects(): Generator<{ line: number; obj?: Record<string, unknown>; error?: string }> {
    const { buf, starts } = this;
    for (let i = 0; i < starts.length; i++) {
      const raw = buf.toString('utf8', starts[i], i + 1 < starts.length ? starts[i + 1] : buf.length);
      const line = i + 1;
      const t = i === 0 ? raw.replace(/^\uFEFF/, '').trim() : raw.trim();
      if (t === '') continue;
      let obj: unknown;
      try {
        obj = JSON.parse(t);
      } catch (e) {
        yield { line, error: `invalid JSON (${(e as Error).message})` };
        continue;
      }
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) yield { line, error: 'not a JSON object' };
      else yield { line, obj: obj as Record<string, unknown> };
    }
  }

  *[Symbol.iterator](): Iterator<Row> {
    for (const o of this.objects()) yield o.obj ? { line: o.line, values: this.columns.map((c) => o.obj![c]) } : { line: o.line, error: o.error };
  }
}

/** Index of the column named `wanted`, or undefined. */
function findColumn(columns: string[], wanted: string): number | undefined {
  const w = normColumn(wanted);
  const i = columns.findIndex((c) => normColumn(c) === w);
  return i < 0 ? undefined : i;
}

function chooseColumns(file: string, table: Table, opts: ReadOptions) {
  const { columns, rows } = table;
  const found = `columns found: ${columns.length ? listSome(columns, 12) : 'none'}`;
  const named = (flag: string, name: string) => {
    const i = findColumn(columns, name);
    if (i === undefined) throw new SkepticInputError(`manifest ${file} has no column ${JSON.stringify(name)} (given as ${flag}; ${found})`, file, 1);
    return i;
  };
  const allIntegers = (i: number) => {
    let any = false;
    for (const r of rows) {
      const v = r.values ? labelText(r.values[i]) : undefined;
      if (v === undefined) continue;
      if (!isIntegerString(v)) return false;
      any = true;
    }
    return any;
  };
  const present = (names: string[]) => names.map((n) => findColumn(columns, n)).filter((i): i is number => i !== undefined);

  let path: number | undefined;
  if (opts.pathColumn) path = named('pathColumn', opts.pathColumn);
  else path = present(PATH_COLUMNS)[0];
  if (path === undefined) {
    throw new SkepticInputError(
      `manifest ${file} has no image path column: expected one of ${PATH_COLUMNS.slice(0, 7).join(', ')} (${found}); name it with the path column option`,
      file,
      1,
    );
  }
  let label: number | undefined;
  if (opts.labelColumn) label = named('labelColumn', opts.labelColumn);
  else {
    const candidates = present(LABEL_COLUMNS).filter((i) => i !== path);
    label = candidates.find(allIntegers) ?? candidates[0];
  }
  const name = present(NAME_COLUMNS).find((i) => i !== path && i !== label && !allIntegers(i));
  return { path, label, name, labelIsIndex: label !== undefined && allIntegers(label) };
}

export async function listManifest(file: string, kind: 'csv' | 'jsonl', opts: ReadOptions): Promise<Listing> {
  // said at once: parsing 200,000 rows takes a second before the first count
  opts.onProgress?.({ done: 0, total: 0, step: `reading ${basename(file)}` });
  const table = kind === 'csv' ? await readCsv(file, opts) : await readJsonl(file);
  const root = dirname(file);
  const base = basename(file);
  const warnings = [...table.warnings];
  const cols = chooseColumns(file, table, opts);
  const matcher = opts.labels ? new LabelMatcher(opts.labels) : undefined;
  const at = (line: number) => `${base} row ${line}`;

  if (cols.label === undefined) {
    warnings.push(`${base} has no label column (expected one of ${LABEL_COLUMNS.slice(0, 6).join(', ')}; columns: ${listSome(table.columns, 12)}): its images are unlabelled`);
  }

  // Class names as the dataset writes them, and how a label value becomes a class index.
  let classes: string[] | undefined;
  let toLabel: (v: string) => LabelResult;
  if (cols.label === undefined) {
    toLabel = () => ({ error: 'no label' });
  } else if (cols.labelIsIndex) {
    toLabel = (v) => indexLabel(v, matcher?.numClasses);
    if (cols.name !== undefined) classes = denseNames(table.rows, cols.label, cols.name);
  } else {
    const names = new Set<string>();
    for (const r of table.rows) {
      const v = r.values ? labelText(r.values[cols.label]) : undefined;
      if (v !== undefined) names.add(v);
    }
    classes = sortStrings(names);
    if (matcher) {
      toLabel = (v) => {
        const m = matcher.match(v);
        if (m !== undefined) return { label: m };
        if (isIntegerString(v)) return indexLabel(v, matcher.numClasses);
        return { error: `label ${JSON.stringify(v)} is not one of the model's classes` };
      };
    } else {
      const order = new Map(classes.map((c, i) => [c, i]));
      toLabel = (v) => ({ label: order.get(v)! });
      warnings.push(`${base} labels are class names and the model has no class list: classes are numbered in sorted name order (${listSome(classes, 4)})`);
    }
  }

  // The listing is kept by column (manifest-records.ts): records are made when read.
  const records = new ManifestRecords(file, root, base);
  let duplicates = 0;
  const unknownLabels = new Set<string>();
  for (const row of table.rows) {
    if (records.length % LISTING_PROGRESS_EVERY === 0) opts.onProgress?.({ done: records.length, total: table.rows.length, step: `reading ${base}` });
    const i = records.add(row.line);
    if (row.error || !row.values) {
      records.setProblem(i, `${at(row.line)}: ${row.error ?? 'unreadable row'}`);
      continue;
    }
    const problems: string[] = [];
    const rawPath = row.values[cols.path];
    const p = typeof rawPath === 'string' ? rawPath.trim() : typeof rawPath === 'number' ? String(rawPath) : '';
    if (!p) {
      problems.push(`no image path (column ${JSON.stringify(table.columns[cols.path])} is empty)`);
    } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
      problems.push(`image path ${JSON.stringify(p)} is a URL; only local files are supported`);
    } else {
      // Manifests written on Windows use backslashes; they are separators here too.
      const abs = resolve(root, sep === '/' ? p.replace(/\\/g, '/') : p);
      if (!isInside(root, abs)) {
        problems.push(`image path ${JSON.stringify(p)} points outside the manifest's folder ${root}`);
      } else if (records.setPath(i, relPosix(root, abs))) {
        duplicates++; // its id gets " (row N)"
      }
    }
    if (cols.label !== undefined) {
      const v = labelText(row.values[cols.label]);
      const name = cols.name !== undefined ? labelText(row.values[cols.name]) : undefined;
      if (v === undefined) {
        const raw = row.values[cols.label];
        problems.push(raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')
          ? `no label (column ${JSON.stringify(table.columns[cols.label])} is empty)`
          : `label ${JSON.stringify(raw)} is not a class index or name`);
      } else {
        records.setLabelName(i, name ?? v);
        const r = toLabel(v);
        if ('label' in r) records.setLabel(i, r.label);
        else {
          problems.push(r.error);
          if (!cols.labelIsIndex) unknownLabels.add(v);
        }
      }
    }
    if (problems.length) records.setProblem(i, `${at(row.line)}: ${problems.join('; ')}`);
  }
  records.finish();
  if (records.length === 0) throw new SkepticInputError(`manifest ${file} has a header but no rows`, file);
  if (unknownLabels.size) {
    warnings.push(`${base}: ${unknownLabels.size} label names are not among the model's classes (${listSome(sortStrings(unknownLabels))}); those rows are not evaluated`);
  }
  if (duplicates) warnings.push(`${base} lists ${duplicates} images more than once`);
  const progress = opts.onProgress && ((done: number, total: number) => opts.onProgress!({ done, total, step: `checking the files of ${base}` }));
  await checkRows(records, (i) => `${at(records.line(i))}: ${records.get(i).id}`, opts.followSymlinks, progress);
  return {
    kind,
    path: file,
    root,
    classes,
    records: records.view,
    warnings,
    stream: streamFiles,
    setProblem: (i, problem, dropLabel) => {
      records.setProblem(i, problem);
      if (dropLabel) records.setLabel(i, undefined);
    },
  };
}

/**
 * Sets the problem of the rows whose file is missing, empty, not a file or a link out of the
 * root (common.ts fileProblem), checking each distinct file once, in row order, with progress
 * counted in rows as checkFiles does.
 */
async function checkRows(
  records: ManifestRecords,
  prefix: (i: number) => string,
  followSymlinks = false,
  progress?: (done: number, total: number) => void,
): Promise<void> {
  const { root } = records;
  const realRoot = followSymlinks ? undefined : await realpath(root).catch(() => root);
  const dirs = new Map<string, Promise<string>>();
  const checks = new Array<Promise<string | undefined> | undefined>(records.paths.length);
  let total = 0;
  for (let i = 0; i < records.length; i++) if (!records.hasProblem(i)) total++;
  let next = 0;
  let checked = 0;
  const worker = async () => {
    while (next < records.length) {
      const i = next++;
      if (records.hasProblem(i)) continue;
      const slot = records.slot(i);
      const p = (checks[slot] ??= fileProblem(join(root, records.paths[slot]), root, followSymlinks, realRoot, dirs));
      const problem = await p;
      if (problem) records.setProblem(i, `${prefix(i)}: ${problem}`);
      if (++checked % LISTING_PROGRESS_EVERY === 0) progress?.(checked, total);
    }
  };
  await Promise.all(Array.from({ length: STAT_CONCURRENCY }, worker));
}

/** classes[i] = the name written beside index i, when every index 0..max has exactly one name. */
function denseNames(rows: Rows, labelCol: number, nameCol: number): string[] | undefined {
  const names = new Map<number, string>();
  for (const r of rows) {
    if (!r.values) continue;
    const v = labelText(r.values[labelCol]);
    const n = labelText(r.values[nameCol]);
    if (v === undefined || n === undefined || !isIntegerString(v)) continue;
    const i = Number(v);
    if (names.has(i) && names.get(i) !== n) return undefined;
    names.set(i, n);
  }
  const max = Math.max(-1, ...names.keys());
  if (max < 0 || names.size !== max + 1 || [...names.keys()].some((k) => k < 0)) return undefined;
  return Array.from({ length: max + 1 }, (_, i) => names.get(i)!);
}
