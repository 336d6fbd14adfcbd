/**
 * Entry point of the report page, the same bundle in a VS Code webview and in the standalone HTML
 * report. The page carries its data in <script type="application/json" id="skeptic-data">:
 * { report, artifactBase?, artifacts?: { [relative path]: data: URI }, omitted?: number }.
 * In VS Code the extension may also send { type: 'showReport', report, artifactBase } later; the
 * page answers { type: 'ready' } once it listens.
 */
import 'uplot/dist/uPlot.min.css';
import './theme.css';
import type { ExtensionToWebview } from '../server/protocol';
import { isReport, renderError, renderReport } from './app';
import { isComparison, renderComparison } from './compare';
import { createHost } from './lib/host';
import { ArtifactResolver } from './lib/paths';
import { Plots } from './lib/plot';

interface Embedded {
  report?: unknown;
  /** A comparison page (EmbeddedComparison in server/protocol.ts): `report` is NEW. */
  comparison?: unknown;
  baseReport?: unknown;
  baseArtifactBase?: string;
  artifactBase?: string;
  artifacts?: Record<string, string>;
  omitted?: number;
}

function readEmbedded(): Embedded {
  const el = document.getElementById('skeptic-data');
  if (!el?.textContent) return {};
  try {
    const d = JSON.parse(el.textContent) as Embedded;
    return d && typeof d === 'object' ? d : {};
  } catch {
    return {};
  }
}

function boot(): void {
  const root = document.getElementById('app') ?? document.body.appendChild(document.createElement('div'));
  const host = createHost();
  const plots = new Plots();
  document.body.classList.add(host.kind === 'vscode' ? 'in-vscode' : 'standalone');
  const data = readEmbedded();

  const show = (report: unknown, art: ArtifactResolver) => {
    if (!isReport(report)) {
      renderError(root, 'This is not a Skeptic report (schema version 1) that this page can show.');
      return;
    }
    try {
      renderReport(root, report, host, art, plots);
    } catch (e) {
      console.error(e);
      renderError(root, `The report could not be shown: ${(e as Error).message}`);
    }
  };

  if (data.comparison !== undefined) {
    if (isComparison(data.comparison) && isReport(data.report) && isReport(data.baseReport)) {
      const art = (base: unknown) => new ArtifactResolver(typeof base === 'string' ? base : undefined, data.artifacts ?? {});
      try {
        renderComparison(root, { comparison: data.comparison, base: data.baseReport, next: data.report }, host, art(data.baseArtifactBase), art(data.artifactBase), plots);
      } catch (e) {
        console.error(e);
        renderError(root, `The comparison could not be shown: ${(e as Error).message}`);
      }
    } else renderError(root, 'This is not a Skeptic comparison (schema version 1) that this page can show.');
  }

  let report = data.comparison === undefined ? data.report : undefined;
  if (isReport(report) && typeof data.omitted === 'number' && data.omitted > 0) {
    const note = `${data.omitted} image(s) were left out of this file to keep it small; they are in the report folder beside it.`;
    report = { ...report, warnings: [note, ...(Array.isArray(report.warnings) ? report.warnings : [])] };
  }
  if (report !== undefined) show(report, new ArtifactResolver(typeof data.artifactBase === 'string' ? data.artifactBase : undefined, data.artifacts ?? {}));
  else if (host.kind === 'standalone' && data.comparison === undefined) renderError(root, 'No report is embedded in this page.');

  window.addEventListener('message', (e: MessageEvent) => {
    const m = e.data as ExtensionToWebview | undefined;
    if (!m || typeof m !== 'object' || m.type !== 'showReport') return;
    show(m.report, new ArtifactResolver(typeof m.artifactBase === 'string' ? m.artifactBase : undefined));
  });

  // Plots are canvas: redraw them when VS Code changes theme (body class, --vscode-* variables on
  // <html>) or, in a browser, when the colour scheme changes.
  let pending = false;
  const retheme = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      plots.retheme();
    });
  };
  new MutationObserver(retheme).observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-kind'] });
  new MutationObserver(retheme).observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
  window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', retheme);

  // VS Code rebuilds a hidden panel's page when it is shown again: keep the scroll position.
  if (host.kind === 'vscode') {
    const y = host.getState().scrollY;
    if (typeof y === 'number' && y > 0) requestAnimationFrame(() => window.scrollTo(0, y));
    let timer: number | undefined;
    window.addEventListener('scroll', () => {
      clearTimeout(timer);
      timer = window.setTimeout(() => host.setState({ ...host.getState(), scrollY: Math.round(window.scrollY) }), 200);
    });
  }

  host.post({ type: 'ready' });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
