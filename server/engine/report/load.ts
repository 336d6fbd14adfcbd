/**
 * Reading a report.json back: the one loader every reader uses (`skeptic compare`, the CLI's
 * --baseline, the daemon's report store). It checks what the front ends rely on before they
 * touch it, so a bad or foreign file is one error naming the file and what is wrong, and reads a
 * version 2 report's per-image data back from the JSON Lines files beside it (per-image.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { SkepticInputError } from '../errors';
import { fsReason } from '../fs/files';
import { loadPerImage } from './per-image';
import { READABLE_SCHEMA_VERSIONS, type Report } from './schema';

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
/** A per-image file must sit beside report.json: a plain name, never a path (no reading elsewhere). */
const isPlainName = (v: unknown) => typeof v === 'string' && v !== '' && v !== '.' && v !== '..' && !/[/\\]/.test(v);

/** Why report.json's parsed content cannot be used, or undefined when it is a readable report. */
export function reportProblem(raw: unknown): string | undefined {
  if (!isObject(raw) || !isObject(raw.tool) || raw.tool.name !== 'skeptic') return 'not a Skeptic report';
  if (!READABLE_SCHEMA_VERSIONS.includes(raw.schemaVersion as number)) {
    return `report schema version ${JSON.stringify(raw.schemaVersion)}, this Skeptic reads versions ${READABLE_SCHEMA_VERSIONS.join(' and ')}`;
  }
  for (const k of ['probes', 'dataset', 'model', 'config', 'run'] as const) if (!isObject(raw[k])) return `the report has no "${k}"`;
  if (!Array.isArray(raw.findings)) return 'the report has no "findings" list';
  for (const [id, p] of Object.entries(raw.probes as Record<string, unknown>)) {
    if (!isObject(p) || typeof p.status !== 'string') return `probe "${id}" has no status`;
    if (raw.schemaVersion === 1 && !Array.isArray(p.records)) return `probe "${id}" has no "records" list`;
  }
  if (raw.schemaVersion === 1) return Array.isArray(raw.images) ? undefined : 'the report has no "images" list';
  const index = raw.perImage;
  if (!isObject(index)) return 'the report has no "perImage"';
  const { images, records, findings } = index;
  if (!isObject(images) || !isPlainName(images.file) || !isCount(images.count)) return '"perImage.images" must name a file beside report.json and count its lines';
  if (!isObject(records) || !isPlainName(records.file) || !isObject(records.counts) || !Object.values(records.counts).every(isCount)) {
    return '"perImage.records" must name a file beside report.json and count its lines per probe';
  }
  if (!isObject(findings) || !isPlainName(findings.file) || !isCount(findings.count) || !isCount(findings.inReport)) {
    return '"perImage.findings" must name a file beside report.json and count its lines';
  }
  return undefined;
}

/** Reads the report.json `file` (versions 1 and 2) made whole: images, records and all findings.
 *  Throws a SkepticInputError whose message starts with the file that is wrong. */
export function readReport(file: string): Report {
  let text: string;
  try {
    if (!statSync(file).isFile()) throw new SkepticInputError(`${file}: not a file`, file);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof SkepticInputError) throw e;
    throw new SkepticInputError(existsSync(file) ? `${file}: cannot read (${fsReason(e)})` : `${file}: no such report`, file);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SkepticInputError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
  const problem = reportProblem(raw);
  if (problem) throw new SkepticInputError(`${file}: ${problem}`, file);
  return loadPerImage(raw as Report, dirname(file));
}
