/** Writes a report to its folder in the formats asked for; resolves to the files written. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeHtmlReport } from './html';
import { toSarif } from './sarif';
import type { Report } from './schema';

export type ReportFormat = 'json' | 'sarif' | 'html';
export const REPORT_FORMATS: ReportFormat[] = ['json', 'sarif', 'html'];

export async function writeReport(report: Report, outDir: string, formats: ReportFormat[], opts: { baseline?: Report } = {}): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  if (formats.includes('json')) {
    const f = join(outDir, 'report.json');
    writeFileSync(f, JSON.stringify(report, null, 1) + '\n');
    written.push(f);
  }
  if (formats.includes('sarif')) {
    const f = join(outDir, 'report.sarif');
    writeFileSync(f, JSON.stringify(toSarif(report, opts), null, 1) + '\n');
    written.push(f);
  }
  if (formats.includes('html')) written.push(await writeHtmlReport(report, outDir));
  return written;
}
