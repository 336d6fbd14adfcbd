/**
 * Findings become diagnostics where the data lives:
 *
 *   subject                               diagnostic
 *   the model (no image)                  the .onnx file, range 0:0 (a binary file has no text)
 *   a manifest row (subject.line)         that row of the .csv/.jsonl, on the text of its path cell
 *   an image of a class-folder dataset    the image file, range 0:0
 *   an item of an idx file                the idx file, range 0:0 (the message names the index)
 *
 * Each carries the probe as `source` and the rule as `code`, linked to the docs. Several sources
 * (reports, skeptic.json validation, audit errors) feed the DiagnosticsHub, which publishes the
 * union per file and clears files nobody reports on any more.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTree, type Node } from 'jsonc-parser';
import { DiagnosticSeverity, type Diagnostic, type Range } from 'vscode-languageserver';
import type { Finding, Report, Severity } from '../engine/report/schema';

export const SEVERITY: Record<Severity, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  info: DiagnosticSeverity.Information,
};

export const ZERO_RANGE: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };

/** The docs anchor of a probe's rules (README: "### <a id="probe-shift"></a>..."). */
export function docsHref(docsUrl: string, probe: string): string {
  return `${docsUrl.replace(/#.*$/, '')}#probe-${probe}`;
}

/** Reads a file's text: the open document's when there is one, else from disk. */
export type TextSource = (uri: string) => string | undefined;

export function diskText(uri: string): string | undefined {
  try {
    return readFileSync(fileURLToPath(uri), 'utf8');
  } catch {
    return undefined;
  }
}

/** Cells of one CSV line with their character offsets (quotes honoured, not included). */
function csvCells(line: string): Array<{ text: string; start: number; end: number }> {
  const cells: Array<{ text: string; start: number; end: number }> = [];
  for (let i = 0; ; ) {
    let j = i;
    while (line[j] === ' ' || line[j] === '\t') j++;
    let text = '';
    let start: number;
    let end: number;
    if (line[j] === '"') {
      start = ++j;
      while (j < line.length && !(line[j] === '"' && line[j + 1] !== '"')) {
        if (line[j] === '"') j++; // "" is an escaped quote
        text += line[j++];
      }
      end = j;
      while (j < line.length && line[j] !== ',') j++;
    } else {
      start = j;
      while (j < line.length && line[j] !== ',') j++;
      text = line.slice(start, j).trimEnd();
      end = start + text.length;
    }
    cells.push({ text, start, end });
    if (j >= line.length) return cells;
    i = j + 1;
  }
}

/** String values of a JSON line with their offsets (inside the quotes). */
function jsonStrings(line: string): Array<{ text: string; start: number; end: number }> {
  const out: Array<{ text: string; start: number; end: number }> = [];
  const walk = (n: Node | undefined) => {
    if (!n) return;
    if (n.type === 'string' && n.parent?.type === 'property' && n.parent.children?.[1] === n) {
      out.push({ text: String(n.value), start: n.offset + 1, end: n.offset + n.length - 1 });
    }
    n.children?.forEach(walk);
  };
  walk(parseTree(line));
  return out;
}

/**
 * The range of a manifest row's path on `line` (0-based) of `text`: the cell that names the
 * image `id` (its path relative to the manifest's folder). Falls back to the row's text.
 */
export function rowPathRange(text: string, line: number, manifestPath: string, id: string): Range {
  const lines = text.split(/\r\n|\n|\r/);
  const row = lines[line] ?? '';
  const wanted = id.replace(/ \(row \d+\)$/, '');
  const root = dirname(manifestPath);
  const rel = (p: string) => relative(root, resolve(root, p.replace(/\\/g, '/'))).split(sep).join('/');
  const cells = row.trimStart().startsWith('{') ? jsonStrings(row) : csvCells(row);
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
  const hit =
    cells.find((c) => c.text && rel(c.text) === wanted) ??
    cells.find((c) => c.text && base(c.text.replace(/\\/g, '/')) === base(wanted));
  if (hit) return { start: { line, character: hit.start }, end: { line, character: hit.end } };
  const lead = row.length - row.trimStart().length;
  return { start: { line, character: lead }, end: { line, character: row.trimEnd().length } };
}

export interface DiagnosticData {
  /** The report folder (file URI) and the finding's id: what a code action or a gallery needs. */
  report: string;
  finding: string;
}

/** Diagnostics for a report's findings, by file URI. */
export function reportDiagnostics(report: Report, folderUri: string, docsUrl: string, readText: TextSource): Map<string, Diagnostic[]> {
  const out = new Map<string, Diagnostic[]>();
  const texts = new Map<string, string | undefined>();
  const textOf = (uri: string) => {
    if (!texts.has(uri)) texts.set(uri, readText(uri));
    return texts.get(uri);
  };
  const dataset = report.dataset.path.split(/[\\/]/).pop();
  for (const f of report.findings) {
    const uri = f.subject.uri;
    let range = ZERO_RANGE;
    if (f.subject.line !== undefined) {
      const text = textOf(uri);
      const image = f.subject.image !== undefined ? report.images[f.subject.image] : undefined;
      range = text !== undefined && image
        ? rowPathRange(text, f.subject.line - 1, fileURLToPath(uri), image.id)
        : { start: { line: f.subject.line - 1, character: 0 }, end: { line: f.subject.line - 1, character: 0 } };
    }
    const message = f.subject.image === undefined ? `${f.message} [${dataset}]` : f.message;
    const d = toDiagnostic(f, range, message, docsUrl);
    d.data = { report: folderUri, finding: f.id } satisfies DiagnosticData;
    let list = out.get(uri);
    if (!list) out.set(uri, (list = []));
    list.push(d);
  }
  return out;
}

export function toDiagnostic(f: Finding, range: Range, message: string, docsUrl: string): Diagnostic {
  return {
    range,
    severity: SEVERITY[f.severity],
    source: f.probe,
    code: f.rule,
    codeDescription: { href: docsHref(docsUrl, f.probe) },
    message,
  };
}

/**
 * Collects diagnostics from several owners (a report folder, a skeptic.json, the last audit's
 * error) and publishes their union per file. A file that no owner reports on any more gets an
 * empty list once, which clears it in the client.
 */
export class DiagnosticsHub {
  private readonly owners = new Map<string, Map<string, Diagnostic[]>>();
  private readonly published = new Set<string>();
  private readonly dirty = new Set<string>();
  private scheduled = false;

  constructor(private readonly publish: (uri: string, diagnostics: Diagnostic[]) => void) {}

  set(owner: string, byUri: Map<string, Diagnostic[]>): void {
    const before = this.owners.get(owner);
    for (const uri of before?.keys() ?? []) this.dirty.add(uri);
    for (const uri of byUri.keys()) this.dirty.add(uri);
    if (byUri.size) this.owners.set(owner, byUri);
    else this.owners.delete(owner);
    this.schedule();
  }

  clear(owner: string): void {
    this.set(owner, new Map());
  }

  /** Everything currently reported on a file (for tests and code lenses). */
  get(uri: string): Diagnostic[] {
    return [...this.owners.values()].flatMap((m) => m.get(uri) ?? []);
  }

  /** Publishes now instead of on the next tick. */
  flush(): void {
    this.scheduled = false;
    for (const uri of this.dirty) {
      const all = this.get(uri);
      if (all.length === 0 && !this.published.has(uri)) continue;
      this.publish(uri, all);
      if (all.length) this.published.add(uri);
      else this.published.delete(uri);
    }
    this.dirty.clear();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }
}
