/**
 * The report's per-image data, kept out of report.json (schema version 2).
 *
 * A report on 200,000 images held one image entry and one record per probe for each of them:
 * report.json grew to 90 MB and had to be built as one string. Since version 2 these live in JSON
 * Lines files beside report.json, written line by line and renamed into place (AtomicWriter), so
 * a reader can go through them one line at a time:
 *
 * - images.jsonl: line k is Report.images[k] (an ImageEntry), one line per selected item;
 * - records.jsonl: `{"probe": id, "record": {...}}` per line, the record exactly as the probe
 *   made it (with its `image` index), by probe in report order, then by image;
 * - findings.jsonl: every finding, in report order. report.json holds the first
 *   MAX_FINDINGS_IN_REPORT of them (model-level findings come first), and `perImage.findings`
 *   says how many there are in all.
 *
 * report.json's `perImage` names the files and counts their lines. The engine keeps its in-memory
 * Report whole (images, records and findings filled in), and readers that want that form get it
 * from loadPerImage, which reads version 1 reports (everything inline) unchanged.
 */
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { SkepticInputError } from '../errors';
import { AtomicWriter } from '../fs/atomic';
import { fsReason } from '../fs/files';
import type { Finding, ImageEntry, PerImageIndex, ProbeResult, Report } from './schema';

export const PER_IMAGE_FILES = { images: 'images.jsonl', records: 'records.jsonl', findings: 'findings.jsonl' } as const;

/** Findings kept in report.json itself; all of them are in findings.jsonl. */
export const MAX_FINDINGS_IN_REPORT = 1000;

/** Writes `lines` as JSON Lines to a temporary file beside `file`, synced but not yet in place;
 *  returns the writer (to publish or abort) and the number of lines. */
function writeLines(file: string, lines: Iterable<unknown>, open: AtomicWriter[]): number {
  const w = new AtomicWriter(file);
  open.push(w);
  let n = 0;
  for (const v of lines) {
    w.write(JSON.stringify(v) + '\n');
    n++;
  }
  w.finish();
  return n;
}

function* recordLines(report: Report): Generator<{ probe: string; record: ProbeResult['records'][number] }> {
  for (const [probe, p] of Object.entries(report.probes)) for (const record of p.records) yield { probe, record };
}

/**
 * Writes the per-image files of `report` into `outDir` and returns report.json's content: the
 * report without images and records, with its findings capped and `perImage` naming the files.
 */
export function writePerImage(report: Report, outDir: string): Omit<Report, 'images'> & { perImage: PerImageIndex } {
  // All three are written before any is renamed into place: a full disk leaves the previous
  // report's files as they were, not half replaced.
  const open: AtomicWriter[] = [];
  let images: number;
  let findings: number;
  try {
    images = writeLines(join(outDir, PER_IMAGE_FILES.images), report.images, open);
    writeLines(join(outDir, PER_IMAGE_FILES.records), recordLines(report), open);
    findings = writeLines(join(outDir, PER_IMAGE_FILES.findings), report.findings, open);
  } catch (e) {
    for (const w of open) w.abort();
    throw e;
  }
  for (const w of open) w.publish();
  const counts: Record<string, number> = {};
  for (const [id, p] of Object.entries(report.probes)) counts[id] = p.records.length;
  const perImage: PerImageIndex = {
    images: { file: PER_IMAGE_FILES.images, count: images },
    records: { file: PER_IMAGE_FILES.records, counts },
    findings: { file: PER_IMAGE_FILES.findings, count: findings, inReport: Math.min(findings, MAX_FINDINGS_IN_REPORT) },
  };
  const { images: _images, ...rest } = report;
  const probes: Record<string, Omit<ProbeResult, 'records'>> = {};
  for (const [id, p] of Object.entries(report.probes)) {
    const { records: _records, ...summary } = p;
    probes[id] = summary;
  }
  return { ...rest, probes: probes as Record<string, ProbeResult>, findings: report.findings.slice(0, MAX_FINDINGS_IN_REPORT), perImage };
}

/** The values of a JSON Lines file, one line at a time (64 KB reads), with the file and line in errors. */
export function* readJsonLines(file: string): Generator<unknown> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new SkepticInputError(`cannot read ${file}: ${fsReason(e)}`, file);
  }
  try {
    const buf = Buffer.alloc(1 << 16);
    let rest = '';
    let line = 0;
    const parse = (text: string) => {
      line++;
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        throw new SkepticInputError(`${file}:${line}: not valid JSON (${(e as Error).message})`, file, line);
      }
    };
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const parts = (rest + buf.toString('utf8', 0, n)).split('\n');
      rest = parts.pop()!;
      for (const p of parts) if (p.trim()) yield parse(p);
    }
    if (rest.trim()) yield parse(rest);
  } finally {
    closeSync(fd);
  }
}

/**
 * A report as read from `folder`, made whole: for version 2, images, records and all findings are
 * read back from the files `perImage` names; a version 1 report already holds them.
 */
export function loadPerImage(report: Report, folder: string): Report {
  const index = report.perImage;
  if (report.schemaVersion === 1 || !index) return report;
  const file = (name: string) => {
    const f = join(folder, name);
    if (!existsSync(f)) throw new SkepticInputError(`${f} is missing: report.json keeps its per-image data there`, f);
    return f;
  };
  const images = [...readJsonLines(file(index.images.file))] as ImageEntry[];
  const probes: Record<string, ProbeResult> = {};
  for (const [id, p] of Object.entries(report.probes)) probes[id] = { ...p, records: [] };
  for (const v of readJsonLines(file(index.records.file))) {
    const { probe, record } = v as { probe: string; record: ProbeResult['records'][number] };
    probes[probe]?.records.push(record);
  }
  const findings = index.findings.count > report.findings.length ? ([...readJsonLines(file(index.findings.file))] as Finding[]) : report.findings;
  // The files are renamed into place before report.json: a reader that meets them while a new
  // report is being written sees counts that disagree, and is told so rather than given a mix.
  const disagree = (name: string, lines: number, expected: number) =>
    new SkepticInputError(`${join(folder, name)} has ${lines} lines where report.json expects ${expected} (a new report being written? read it again)`, join(folder, name));
  if (images.length !== index.images.count) throw disagree(index.images.file, images.length, index.images.count);
  const lines = Object.values(probes).reduce((n, p) => n + p.records.length, 0);
  const expected = Object.values(index.records.counts).reduce((n, c) => n + c, 0);
  if (lines !== expected || Object.entries(index.records.counts).some(([id, c]) => probes[id]?.records.length !== c)) throw disagree(index.records.file, lines, expected);
  if (findings.length !== index.findings.count) throw disagree(index.findings.file, findings.length, index.findings.count);
  return { ...report, images, probes, findings };
}

/** Images whose entries and records a standalone page embeds at most (report.json's per-image
 *  files hold all of them): a page for 200,000 images would weigh as much as the old report.json. */
export const MAX_EMBEDDED_IMAGES = 2000;

/** The part of `report` a standalone page embeds: the first `maxImages` images with their records
 *  and findings, findings capped as in report.json, and a warning saying what was left out. */
export function embeddableReport(report: Report, maxImages = MAX_EMBEDDED_IMAGES): Report {
  const n = report.images.length;
  const total = report.findings.length;
  if (n <= maxImages && total <= MAX_FINDINGS_IN_REPORT) return report;
  const keep = Math.min(n, maxImages);
  const probes: Report['probes'] = {};
  for (const [id, p] of Object.entries(report.probes)) probes[id] = { ...p, records: p.records.filter((r) => r.image < keep) };
  const findings = report.findings.filter((f) => f.subject.image === undefined || f.subject.image < keep).slice(0, MAX_FINDINGS_IN_REPORT);
  const note = `this page shows ${keep} of ${n} images and ${findings.length} of ${total} findings; images.jsonl, records.jsonl and findings.jsonl beside report.json hold them all`;
  return { ...report, images: report.images.slice(0, keep), probes, findings, warnings: [...report.warnings, note] };
}
