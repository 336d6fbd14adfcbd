/**
 * The daemon's side of comparing two audits: skeptic/compare (engine/compare on two stored
 * reports) and skeptic/problemsBaseline (Problems shows only the findings a report has and its
 * baseline has not).
 */
import { compareReports } from '../engine/compare';
import type { Report } from '../engine/report/schema';
import type { CompareResult } from '../protocol';
import type { StoredReport } from './reports';

export function compareStored(base: StoredReport, next: StoredReport): CompareResult {
  const comparison = compareReports(base.report, next.report, { baseSource: base.summary.folder, newSource: next.summary.folder });
  return { comparison, base: { summary: base.summary, report: base.report }, new: { summary: next.summary, report: next.report } };
}

/** Per report folder, the baseline folder whose findings Problems leaves out. */
export class ProblemsBaselines {
  private readonly map = new Map<string, string>();

  set(folder: string, baseline: string | null): void {
    if (baseline) this.map.set(folder, baseline);
    else this.map.delete(folder);
  }

  baselineOf(folder: string): string | undefined {
    return this.map.get(folder);
  }

  /** The report with only the findings its baseline lacks (the report itself without a baseline). */
  filter(report: Report, baseline: Report | undefined): Report {
    if (!baseline) return report;
    const known = new Set(baseline.findings.map((f) => f.id));
    return { ...report, findings: report.findings.filter((f) => !known.has(f.id)) };
  }
}
