/** Reads a report for comparison: a report.json, or a report folder holding one, through the
 *  engine's one report loader (report/load.ts: versions 1 and 2, per-image files read back). */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SkepticInputError } from '../errors';
import { readReport } from '../report/load';
import type { Report } from '../report/schema';

export function reportFile(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new SkepticInputError(`${p}: no such report (give a report.json or a report folder)`, p);
  return statSync(p).isDirectory() ? join(p, 'report.json') : p;
}

export function loadReport(path: string): Report {
  const file = reportFile(path);
  if (!existsSync(file)) throw new SkepticInputError(`${file}: no report.json in this folder`, file);
  return readReport(file);
}
