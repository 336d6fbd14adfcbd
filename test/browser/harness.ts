/**
 * Helpers for the report webview's browser tests (test/unit/webview-browser.test.ts): headless
 * Chromium through playwright-core, a VS Code-like webview host served from a fake origin with
 * every other request refused, VS Code's theme variables, and checks that compare what the page
 * shows with the report JSON.
 *
 * Needs Debian's chromium (apt-get install -y chromium) or SKEPTIC_CHROMIUM=/path/to/chrome.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { makeNonce, renderReportHtml } from '../../server/engine/report/html';
import type { Report } from '../../server/engine/report/schema';

// The page's globals, for callbacks that run in the browser (this project compiles without DOM types).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;

export const CHROMIUM = process.env.SKEPTIC_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'];

/** Why the browser tests cannot run here, or false. */
export function browserSkipReason(): string | false {
  return existsSync(CHROMIUM) ? false : `headless Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set SKEPTIC_CHROMIUM)`;
}

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** What VS Code puts on a webview: --vscode-* variables on <html>, a theme class on <body>. */
export const VSCODE_THEMES = {
  light: {
    kind: 'vscode-light',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", monospace',
      '--vscode-editor-background': '#ffffff',
      '--vscode-editor-foreground': '#3b3b3b',
      '--vscode-descriptionForeground': '#5d5d5d',
      '--vscode-focusBorder': '#005fb8',
      '--vscode-textLink-foreground': '#005fb8',
      '--vscode-panel-border': '#e5e5e5',
      '--vscode-editorWidget-background': '#f8f8f8',
      '--vscode-editorError-foreground': '#e51400',
      '--vscode-editorWarning-foreground': '#bf8803',
      '--vscode-editorInfo-foreground': '#1a85ff',
      '--vscode-testing-iconPassed': '#388a34',
      '--vscode-charts-foreground': '#616161',
      '--vscode-charts-lines': 'rgba(97, 97, 97, 0.5)',
      '--vscode-charts-red': '#e51400',
      '--vscode-charts-blue': '#1a85ff',
      '--vscode-charts-yellow': '#bf8803',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-green': '#388a34',
      '--vscode-charts-purple': '#652d90',
      '--vscode-button-secondaryBackground': '#e5e5e5',
      '--vscode-button-secondaryForeground': '#3b3b3b',
      '--vscode-input-background': '#ffffff',
      '--vscode-input-foreground': '#3b3b3b',
      '--vscode-input-border': '#cecece',
    },
  },
  dark: {
    kind: 'vscode-dark',
    vars: {
      '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
      '--vscode-font-size': '13px',
      '--vscode-editor-font-family': '"Droid Sans Mono", monospace',
      '--vscode-editor-background': '#1f1f1f',
      '--vscode-editor-foreground': '#cccccc',
      '--vscode-descriptionForeground': '#9d9d9d',
      '--vscode-focusBorder': '#0078d4',
      '--vscode-textLink-foreground': '#4daafc',
      '--vscode-panel-border': '#2b2b2b',
      '--vscode-editorWidget-background': '#202020',
      '--vscode-editorError-foreground': '#f14c4c',
      '--vscode-editorWarning-foreground': '#cca700',
      '--vscode-editorInfo-foreground': '#3794ff',
      '--vscode-testing-iconPassed': '#73c991',
      '--vscode-charts-foreground': '#cccccc',
      '--vscode-charts-lines': 'rgba(204, 204, 204, 0.5)',
      '--vscode-charts-red': '#f14c4c',
      '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-yellow': '#cca700',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-green': '#89d185',
      '--vscode-charts-purple': '#b180d7',
      '--vscode-button-secondaryBackground': '#313131',
      '--vscode-button-secondaryForeground': '#cccccc',
      '--vscode-input-background': '#313131',
      '--vscode-input-foreground': '#cccccc',
      '--vscode-input-border': '#3c3c3c',
    },
  },
} as const;
export type ThemeName = keyof typeof VSCODE_THEMES;

/** Records what a page did that a test asserts on. */
export interface Watch {
  /** Requests the route refused (anything outside the allowed origin, file: and data:). */
  refused: string[];
  console: string[];
  errors: string[];
}

/** Refuses every request except file:, data: and (when given) one origin served by `serve`. */
export async function guardNetwork(context: BrowserContext, watch: Watch, origin?: string, serve?: (path: string) => { body: Buffer; type: string } | undefined): Promise<void> {
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || url.startsWith('file:')) return route.continue();
    if (origin && serve && url.startsWith(origin + '/')) {
      const got = serve(decodeURIComponent(new URL(url).pathname));
      if (got) return route.fulfill({ status: 200, body: got.body, contentType: got.type });
      return route.fulfill({ status: 404, body: 'not found' });
    }
    watch.refused.push(url);
    return route.abort('blockedbyclient');
  });
}

export function watchPage(page: Page, watch: Watch): void {
  page.on('console', (m) => watch.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => watch.errors.push(e.message));
}

/** Chromium's CSP complaints: the securitypolicyviolation events and the console lines. */
export async function cspViolations(page: Page, watch: Watch): Promise<string[]> {
  const events: string[] = await page.evaluate(() => window.__cspViolations ?? []);
  return [...events, ...watch.console.filter((l) => /Content Security Policy/i.test(l))];
}

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png', '.html': 'text/html', '.webp': 'image/webp', '.jpg': 'image/jpeg' };

export const WEBVIEW_ORIGIN = 'https://skeptic-webview.test';

/**
 * Opens the report the way the VS Code panel does: renderReportHtml with the bundle and the
 * artifacts as resource URIs under one origin (the webview's cspSource), acquireVsCodeApi stubbed
 * so posted messages land in window.__posted, and the theme's variables on <html>.
 */
export async function openWebview(
  browser: Browser,
  o: {
    report: Report;
    reportDir: string;
    bundleDir: string;
    theme: ThemeName;
    watch: Watch;
    viewport?: { width: number; height: number };
    /** A comparison page: `report` is NEW; BASE's artifacts are served from baseDir under /base/. */
    comparison?: { comparison: unknown; baseReport: Report; baseDir: string };
  },
): Promise<{ page: Page; context: BrowserContext }> {
  const context = await browser.newContext({ viewport: o.viewport ?? { width: 1200, height: 900 }, colorScheme: o.theme });
  const root = realpathSync(o.reportDir);
  const baseRoot = o.comparison ? realpathSync(o.comparison.baseDir) : undefined;
  const html = renderReportHtml({
    report: o.report,
    assets: { kind: 'uri', js: `${WEBVIEW_ORIGIN}/dist/report.js`, css: `${WEBVIEW_ORIGIN}/dist/report.css`, cspSource: WEBVIEW_ORIGIN },
    artifactBase: `${WEBVIEW_ORIGIN}/report/`,
    nonce: makeNonce(),
    ...(o.comparison ? { comparison: { comparison: o.comparison.comparison, baseReport: o.comparison.baseReport, baseArtifactBase: `${WEBVIEW_ORIGIN}/base/` } } : {}),
  });
  await guardNetwork(context, o.watch, WEBVIEW_ORIGIN, (path) => {
    if (path === '/index.html') return { body: Buffer.from(html), type: 'text/html' };
    if (path === '/dist/report.js' || path === '/dist/report.css') return { body: readFileSync(join(o.bundleDir, path.slice(6))), type: TYPES[extname(path)] };
    if (baseRoot && path.startsWith('/base/')) {
      const file = resolve(baseRoot, path.slice('/base/'.length));
      if (!file.startsWith(baseRoot + sep) || !existsSync(file)) return undefined;
      return { body: readFileSync(file), type: TYPES[extname(file)] ?? 'application/octet-stream' };
    }
    if (path.startsWith('/report/')) {
      const file = resolve(root, path.slice('/report/'.length));
      if (!file.startsWith(root + sep) || !existsSync(file)) return undefined;
      return { body: readFileSync(file), type: TYPES[extname(file)] ?? 'application/octet-stream' };
    }
    return undefined;
  });
  const theme = VSCODE_THEMES[o.theme];
  // A string, not a function: the test runner's transpiler would wrap named functions in a helper
  // that does not exist in the page.
  await context.addInitScript(`(() => {
    const vars = ${JSON.stringify(theme.vars)};
    const kind = ${JSON.stringify(theme.kind)};
    window.__posted = [];
    window.__cspViolations = [];
    let state;
    window.acquireVsCodeApi = () => ({
      postMessage: (m) => window.__posted.push(JSON.parse(JSON.stringify(m))),
      getState: () => state,
      setState: (s) => { state = s; },
    });
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
    let htmlDone = false;
    const apply = () => {
      if (!htmlDone && document.documentElement) {
        for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
        htmlDone = true;
      }
      if (document.body) {
        document.body.classList.add(kind);
        document.body.dataset.vscodeThemeKind = kind;
        return true;
      }
      return false;
    };
    if (!apply()) {
      const obs = new MutationObserver(() => { if (apply()) obs.disconnect(); });
      obs.observe(document, { childList: true, subtree: true });
    }
  })();`);
  const page = await context.newPage();
  watchPage(page, o.watch);
  await page.goto(`${WEBVIEW_ORIGIN}/index.html`);
  await page.waitForSelector('#app[data-rendered="true"]', { timeout: 15_000 });
  return { page, context };
}

/** Opens the standalone report.html from file:// with the network refused. */
export async function openStandalone(browser: Browser, o: { file: string; scheme: ThemeName; watch: Watch }): Promise<{ page: Page; context: BrowserContext }> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, colorScheme: o.scheme });
  await guardNetwork(context, o.watch);
  await context.addInitScript(`window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`);
  const page = await context.newPage();
  watchPage(page, o.watch);
  await page.goto(`file://${o.file}`);
  await page.waitForSelector('#app[data-rendered="true"]', { timeout: 15_000 });
  return { page, context };
}

/** Loads every lazy image, then takes a (full-page) screenshot. */
export async function screenshot(page: Page, file: string, o: { fullPage?: boolean } = {}): Promise<void> {
  // From the top, so the sticky section bar sits where it belongs in a full-page capture.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.evaluate(() => document.querySelectorAll('img[loading="lazy"]').forEach((i: any) => (i.loading = 'eager')));
  await page.waitForFunction(() => [...document.images].every((i: any) => i.complete), null, { timeout: 10_000 });
  await page.screenshot({ path: file, fullPage: o.fullPage ?? true });
}
