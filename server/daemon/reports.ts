/**
 * The reports the daemon knows: report.json files under <base>/.skeptic/reports/<model>--<dataset>/
 * (written by the engine's writeReport, from the editor or the CLI). Read back on start, so
 * diagnostics survive a restart of the editor, and re-read when a file watcher or an audit says
 * one changed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readReport } from '../engine/report/load';
import type { Report } from '../engine/report/schema';
import type { ReportSummary } from '../protocol';

export const REPORTS_DIR = join('.skeptic', 'reports');

export interface StoredReport {
  /** Absolute path of the report's folder. */
  folder: string;
  report: Report;
  summary: ReportSummary;
}

/** The folder an audit of `model` on `dataset` writes to, under `baseDir` (as the CLI does). */
export function reportFolder(baseDir: string, model: string, dataset: string): string {
  return join(baseDir, REPORTS_DIR, `${stem(model)}--${stem(dataset)}`);
}

function stem(p: string): string {
  return basename(p, extname(p)) || 'dataset';
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function summarize(report: Report, folder: string): ReportSummary {
  const findings = { error: 0, warning: 0, info: 0 };
  const fragile = new Set<number>();
  for (const f of report.findings) {
    findings[f.severity]++;
    if (f.probe !== 'data' && f.subject.image !== undefined) fragile.add(f.subject.image);
  }
  const parts: string[] = [];
  if (findings.error) parts.push(plural(findings.error, 'error'));
  if (findings.warning) parts.push(plural(findings.warning, 'warning'));
  if (fragile.size) parts.push(plural(fragile.size, 'fragile image'));
  let verdict = parts.length ? parts.join(', ') : 'no findings';
  if (report.run.cancelled) verdict += ' (cancelled, partial)';
  return {
    folder: pathToFileURL(folder).href,
    reportUri: pathToFileURL(join(folder, 'report.json')).href,
    model: report.model.uri,
    dataset: report.dataset.uri,
    modelName: basename(report.model.path),
    datasetName: basename(report.dataset.path),
    startedAt: report.run.startedAt,
    cancelled: report.run.cancelled,
    device: report.device.used,
    findings,
    fragileImages: fragile.size,
    verdict,
    probes: Object.entries(report.probes).map(([id, p]) => ({ id, status: p.status, ...(p.headline ? { headline: p.headline } : {}) })),
  };
}

export class ReportStore {
  private readonly byFolder = new Map<string, StoredReport>();

  /** Reads (or re-reads) the report in `folder`; a missing or unreadable file removes it.
   *  Returns an error message for a file that exists but cannot be used. */
  load(folder: string): string | undefined {
    const file = join(folder, 'report.json');
    if (!existsSync(file)) {
      this.byFolder.delete(folder);
      return undefined;
    }
    try {
      // the engine's loader, as `skeptic compare` uses it: the same checks, messages naming the file
      const report = readReport(file);
      this.byFolder.set(folder, { folder, report, summary: summarize(report, folder) });
      return undefined;
    } catch (e) {
      this.byFolder.delete(folder);
      const message = (e as Error).message;
      return message.startsWith(folder) ? message : `${file}: ${message}`;
    }
  }

  /** Reads every report under <base>/.skeptic/reports; returns problems met. */
  scan(baseDir: string): string[] {
    const root = join(baseDir, REPORTS_DIR);
    if (!existsSync(root)) return [];
    const problems: string[] = [];
    for (const e of readdirSync(root, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = this.load(join(root, e.name));
      if (p) problems.push(p);
    }
    return problems;
  }

  remove(folder: string): boolean {
    return this.byFolder.delete(folder);
  }

  get(folder: string): StoredReport | undefined {
    return this.byFolder.get(folder);
  }

  has(folder: string): boolean {
    return this.byFolder.has(folder);
  }

  /** Newest first. */
  all(): StoredReport[] {
    return [...this.byFolder.values()].sort((a, b) => b.summary.startedAt.localeCompare(a.summary.startedAt));
  }

  /** The newest report for a model (and dataset), by file URI. */
  latestFor(modelUri?: string, datasetUri?: string): StoredReport | undefined {
    return this.all().find((r) => (!modelUri || r.report.model.uri === modelUri) && (!datasetUri || r.report.dataset.uri === datasetUri));
  }

  /** The report folder a report.json path belongs to (for file-watcher events). */
  static folderOf(reportFile: string): string {
    return dirname(reportFile);
  }
}
