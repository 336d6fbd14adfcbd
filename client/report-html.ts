/**
 * The report page's HTML: renderReportHtml of server/engine/report/html.ts, loaded when the first
 * report is shown rather than at activation. That module also writes standalone reports with
 * sharp (a native module), which the extension host then loads only if a report is shown; esbuild
 * keeps a require()d module's initialisation lazy.
 */
import type { RenderHtmlOptions } from '../server/engine/report/html';

export function renderReportHtml(o: RenderHtmlOptions): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const html = require('../server/engine/report/html') as typeof import('../server/engine/report/html');
  return html.renderReportHtml(o);
}
