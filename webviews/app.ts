/** Renders a whole report into the page. */
import type { ProbeResult, Report } from '../server/engine/report/schema';
import { clear, h } from './lib/dom';
import type { Host } from './lib/host';
import { revealableUris, type ArtifactResolver } from './lib/paths';
import { Plots } from './lib/plot';
import { makeCtx } from './views/common';
import { findingsView } from './views/findings';
import { probeView } from './views/index';
import { header, summary } from './views/summary';

/** Fills in what a partial or older report may lack, so views can rely on the shape. */
function normalise(report: Report): Report {
  const probes: Record<string, ProbeResult> = {};
  for (const [id, p] of Object.entries(report.probes ?? {})) {
    if (!p || typeof p !== 'object') continue;
    probes[id] = { ...p, params: p.params ?? {}, metrics: p.metrics ?? {}, records: Array.isArray(p.records) ? p.records : [], title: p.title ?? id, status: p.status ?? 'ok' };
  }
  return { ...report, probes, findings: Array.isArray(report.findings) ? report.findings : [], images: Array.isArray(report.images) ? report.images : [], warnings: Array.isArray(report.warnings) ? report.warnings : [] };
}

export function isReport(x: unknown): x is Report {
  return !!x && typeof x === 'object' && (x as Report).schemaVersion >= 1 && typeof (x as Report).probes === 'object';
}

export function renderReport(root: HTMLElement, raw: Report, host: Host, art: ArtifactResolver, plots: Plots): void {
  plots.destroyAll();
  clear(root);
  const report = normalise(raw);
  host.allowed = revealableUris(report);
  const ctx = makeCtx(report, host, art, plots);

  const goTo = (id: string) => {
    const target = document.getElementById(id);
    if (!target) return;
    target.scrollIntoView({ block: 'start' });
    const heading = target.querySelector<HTMLElement>('h2');
    (heading ?? target).focus({ preventScroll: true });
  };
  const navItems: Array<[string, string]> = [['summary', 'Summary'], ['findings', `Findings (${report.findings.length})`], ...Object.entries(report.probes).map(([id, p]) => [`probe-${id}`, p.title || id] as [string, string])];
  const nav = h(
    'nav',
    { class: 'toc', 'aria-label': 'Sections' },
    h(
      'ul',
      null,
      ...navItems.map(([id, text]) => {
        const a = h('a', { href: `#${id}` }, text);
        a.addEventListener('click', (e) => {
          e.preventDefault();
          goTo(id);
        });
        return h('li', null, a);
      }),
    ),
  );

  const sections: HTMLElement[] = [summary(ctx, goTo), findingsView(ctx)];
  for (const [id, p] of Object.entries(report.probes)) sections.push(probeView(ctx, id, p));
  root.append(
    header(ctx),
    nav,
    h('main', { id: 'main' }, ...sections),
    h('footer', null, `Skeptic ${report.tool?.version ?? ''} · engine ${report.tool?.engineVersion ?? ''} · report schema ${report.schemaVersion} · model sha256 ${report.model?.sha256?.slice(0, 12) ?? '–'} · dataset sha256 ${report.dataset?.sha256?.slice(0, 12) ?? '–'}`),
  );
  root.dataset.rendered = 'true';
}

export function renderError(root: HTMLElement, message: string): void {
  clear(root);
  root.append(h('div', { class: 'error-page', role: 'alert' }, h('h1', null, 'Skeptic report'), h('p', null, message)));
  root.dataset.rendered = 'error';
}
