/** Reads a report for comparison: a report.json, or a report folder holding one. A version 2
 *  report's per-image data is read back from the JSON Lines files beside it (per-image.ts). */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SkepticInputError } from '../errors';
import { loadPerImage } from '../report/per-image';
import { READABLE_SCHEMA_VERSIONS, type Report } from '../report/schema';

export function reportFile(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new SkepticInputError(`${p}: no such report (give a report.json or a report folder)`, p);
  return statSync(p).isDirectory() ? join(p, 'report.json') : p;
}

export function loadReport(path: string): Report {
  const file = reportFile(path);
  if (!existsSync(file)) throw new SkepticInputError(`${file}: no report.json in this folder`, file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SkepticInputError(`${file}: not valid JSON (${(e as Error).message})`, file);
  }
  const r = raw as Partial<Report>;
  if (!r || typeof r !== 'object' || r.tool?.name !== 'skeptic') throw new SkepticInputError(`${file}: not a Skeptic report`, file);
  if (!READABLE_SCHEMA_VERSIONS.includes(r.schemaVersion as number)) {
    throw new SkepticInputError(`${file}: report schema version ${r.schemaVersion}, this Skeptic reads versions ${READABLE_SCHEMA_VERSIONS.join(' and ')}`, file);
  }
  for (const k of ['probes', 'findings', 'dataset', 'model', 'config'] as const) {
    if (!r[k] || typeof r[k] !== 'object') throw new SkepticInputError(`${file}: the report has no "${k}"`, file);
  }
  if (r.schemaVersion === 1 && (!r.images || typeof r.images !== 'object')) throw new SkepticInputError(`${file}: the report has no "images"`, file);
  if (r.schemaVersion !== 1 && (!r.perImage || typeof r.perImage !== 'object')) throw new SkepticInputError(`${file}: the report has no "perImage"`, file);
  return loadPerImage(r as Report, dirname(file));
}
