/** The readable summary the CLI prints: one table of headline metrics, then the findings. */
import type { Report } from './schema';

export function summaryText(report: Report, opts: { maxFindings?: number } = {}): string {
  const lines: string[] = [];
  lines.push(`Model    ${report.model.path}  (${report.model.outputKind}, ${report.model.layout} ${report.model.inputSize.channels}×${report.model.inputSize.height}×${report.model.inputSize.width}, ${report.device.used})`);
  lines.push(`Dataset  ${report.dataset.path}  (${report.dataset.kind}, ${report.dataset.evaluated} of ${report.dataset.selected} images evaluated${report.dataset.total !== report.dataset.selected ? `, ${report.dataset.total} in all` : ''})`);
  if (report.run.cancelled) lines.push('Cancelled: the figures below cover the images that finished.');
  lines.push('');

  const rows: string[][] = [['probe', 'status', 'headline']];
  for (const [id, p] of Object.entries(report.probes)) {
    rows.push([id, p.status + (p.reason ? ` (${p.reason})` : ''), p.headline ?? '']);
  }
  lines.push(...table(rows), '');

  const counts = { error: 0, warning: 0, info: 0 };
  for (const f of report.findings) counts[f.severity]++;
  lines.push(`Findings: ${counts.error} error(s), ${counts.warning} warning(s), ${counts.info} note(s)`);
  const max = opts.maxFindings ?? 10;
  for (const f of report.findings.slice(0, max)) {
    const where = f.subject.line !== undefined ? `${f.subject.path}:${f.subject.line}` : f.subject.path;
    lines.push(`  ${f.severity.padEnd(7)} ${f.rule.padEnd(22)} ${where}  ${f.message}`);
  }
  if (report.findings.length > max) lines.push(`  … and ${report.findings.length - max} more in the report`);
  for (const w of report.warnings) lines.push(`Warning: ${w}`);
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd());
}
