/** Writes a report to its folder in the formats asked for; resolves to the files written. */
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic';
import { ensureOutDir } from '../fs/outdir';
import { writeHtmlReport } from './html';
import { writePerImage } from './per-image';
import { toSarif } from './sarif';
import type { Report } from './schema';

export type ReportFormat = 'json' | 'sarif' | 'html';
export const REPORT_FORMATS: ReportFormat[] = ['json', 'sarif', 'html'];

/** Each file is written atomically (temporary file, then rename): a reader never sees half a
 *  report, and a full disk or an unwritable folder is a SkepticInputError naming the path.
 *  report.json keeps the summaries; the per-image data goes, line by line, to the JSON Lines
 *  files beside it (per-image.ts), which are in place before report.json names them. */
export async function writeReport(report: Report, outDir: string, formats: ReportFormat[], opts: { baseline?: Report } = {}): Promise<string[]> {
  ensureOutDir(outDir);
  const written: string[] = [];
  if (formats.includes('json')) {
    const f = join(outDir, 'report.json');
    const onDisk = writePerImage(report, outDir);
    writeFileAtomic(f, JSON.stringify(onDisk, null, 1) + '\n');
    written.push(f); // its per-image files go with it
  }
  if (formats.includes('sarif')) {
    const f = join(outDir, 'report.sarif');
    writeFileAtomic(f, JSON.stringify(toSarif(report, opts), null, 1) + '\n');
    written.push(f);
  }
  if (formats.includes('html')) written.push(await writeHtmlReport(report, outDir));
  return written;
}
