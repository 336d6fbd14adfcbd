/**
 * The report page: the webview bundle (webviews/report.ts, built to dist/webviews/) around a report.
 *
 * renderReportHtml makes the page for both front ends. VS Code passes the bundle as webview resource
 * URIs (`kind: 'uri'`, with the webview's cspSource) and an artifactBase (the report folder as a
 * webview URI); the standalone file inlines the bundle and embeds the images as data: URIs. The
 * Content-Security-Policy allows nothing but the page's own nonce'd script and style (or the
 * webview's resources) and images from data: (or the webview's resources): no network, no eval,
 * no inline handlers. The report travels as JSON in a non-executed <script type="application/json">
 * with '<', '>', '&', U+2028 and U+2029 escaped, so no string in a report can close the element.
 *
 * writeHtmlReport writes <outDir>/report.html: one self-contained file. Artifact images (paths
 * relative to the report folder) are embedded at a bounded size: an image that is an exact
 * nearest-neighbour enlargement of the model input (how the probes draw small images) is stored at
 * its native size as PNG and enlarged again by the page (image-rendering: pixelated); other images
 * stay PNG when small and otherwise become WebP of at most 192 px. Past a total budget, further
 * images are left out and the page says so.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync, mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../fs/atomic';
import { dirname, join, resolve, sep } from 'node:path';
import { safeArtifactPath } from '../../../webviews/lib/paths';
import { embeddableReport } from './per-image';
import type { Report } from './schema';

export type HtmlAssets =
  | { kind: 'inline'; js: string; css: string }
  | { kind: 'uri'; js: string; css: string; cspSource: string };

export interface RenderHtmlOptions {
  report: Report;
  assets: HtmlAssets;
  /** Base URI that artifact paths resolve against (VS Code: asWebviewUri of the report folder). */
  artifactBase?: string;
  nonce: string;
  /** Embedded artifact images: relative path → data: URI (the standalone file). */
  artifacts?: Record<string, string>;
  /** How many artifact images were left out of `artifacts` (the page says so). */
  omitted?: number;
  /** A comparison page: `report` is NEW; this adds the comparison and BASE (engine/compare). */
  comparison?: { comparison: unknown; baseReport: Report; baseArtifactBase?: string };
}

const NONCE = /^[A-Za-z0-9+/=_-]{16,}$/;

/** A fresh nonce for a page (128 random bits, base64). */
export function makeNonce(): string {
  return randomBytes(16).toString('base64');
}

/** Text for an HTML attribute value or element content. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** JSON that is safe inside a <script> element: nothing in it can end the element or open a comment. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A CSP source expression must not smuggle in other directives. VS Code's webview.cspSource is
 *  "'self' https://*.vscode-cdn.net": hosts and schemes, and of the quoted keywords only 'self'. */
function checkSource(s: string): string {
  if (!s.split(' ').every((t) => t === "'self'" || /^[A-Za-z0-9*:/.\-_+]+$/.test(t))) throw new Error(`not a CSP source list: ${JSON.stringify(s)}`);
  return s;
}

export function contentSecurityPolicy(nonce: string, cspSource?: string): string {
  const src = cspSource ? ` ${checkSource(cspSource)}` : '';
  return [
    "default-src 'none'",
    `img-src data:${src}`,
    `style-src 'nonce-${nonce}'${src}`,
    `script-src 'nonce-${nonce}'`,
    `font-src${src || " 'none'"}`,
    "connect-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "object-src 'none'",
  ].join('; ');
}

export function renderReportHtml(o: RenderHtmlOptions): string {
  if (!NONCE.test(o.nonce)) throw new Error('renderReportHtml: the nonce must be at least 16 characters of base64');
  const { assets, nonce } = o;
  const csp = contentSecurityPolicy(nonce, assets.kind === 'uri' ? assets.cspSource : undefined);
  const title = o.comparison
    ? `Skeptic comparison: ${o.comparison.baseReport.model?.path ?? 'BASE'} → ${o.report.model?.path ?? 'NEW'}`
    : `Skeptic report: ${o.report.model?.path ?? 'model'} on ${o.report.dataset?.path ?? 'data'}`;
  const data: Record<string, unknown> = { report: o.report };
  if (o.artifactBase) data.artifactBase = o.artifactBase;
  if (o.artifacts && Object.keys(o.artifacts).length) data.artifacts = o.artifacts;
  if (o.omitted) data.omitted = o.omitted;
  if (o.comparison) Object.assign(data, o.comparison);
  const n = escapeHtml(nonce);
  const style =
    assets.kind === 'inline'
      ? `<style nonce="${n}">${assets.css.replace(/<\/(style)/gi, '<\\/$1')}</style>`
      : `<link rel="stylesheet" nonce="${n}" href="${escapeHtml(assets.css)}">`;
  const script =
    assets.kind === 'inline'
      ? `<script nonce="${n}">${assets.js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--')}</script>`
      : `<script nonce="${n}" src="${escapeHtml(assets.js)}"></script>`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="referrer" content="no-referrer">',
    `<title>${escapeHtml(title)}</title>`,
    style,
    '</head>',
    '<body>',
    '<div id="app" aria-live="off"><noscript>This report needs JavaScript to show its plots and galleries; report.json beside it holds the same data.</noscript></div>',
    `<script type="application/json" id="skeptic-data">${jsonForScript(data)}</script>`,
    script,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The standalone file

/** Finds the built webview bundle: beside the running bundle (dist/), or from the source tree. */
export function findWebviewBundle(): { js: string; css: string } {
  const candidates = [join(__dirname, 'webviews'), join(__dirname, '..', 'webviews'), join(__dirname, '..', '..', '..', 'dist', 'webviews')];
  for (const dir of candidates) {
    const js = join(dir, 'report.js');
    const css = join(dir, 'report.css');
    if (existsSync(js) && existsSync(css)) return { js, css };
  }
  throw new Error(`the report webview is not built (looked in ${candidates.join(', ')}): run 'node scripts/build.mjs'`);
}

export interface EmbedOptions {
  /** Largest side of a re-encoded (WebP) image. */
  maxSide?: number;
  /** A PNG up to this many bytes is kept as it is. */
  keepPngBytes?: number;
  /** Total bytes of embedded images; beyond it images are left out. */
  budgetBytes?: number;
  /** WebP quality, 1..100. */
  quality?: number;
}

export interface EmbedResult {
  artifacts: Record<string, string>;
  embedded: number;
  omitted: number;
  bytes: number;
}

const IMAGE = /\.(png|jpe?g|webp|gif)$/i;

/** Every artifact image path the report names, findings first, in a stable order. */
export function artifactPaths(report: Report): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (list: unknown) => {
    if (!Array.isArray(list)) return;
    for (const p of list) {
      if (typeof p === 'string' && IMAGE.test(p) && !seen.has(p) && safeArtifactPath(p)) {
        seen.add(p);
        out.push(p);
      }
    }
  };
  for (const f of report.findings ?? []) add(f.artifacts);
  for (const p of Object.values(report.probes ?? {})) for (const r of p.records ?? []) add(r.artifacts);
  return out;
}

/** If the image is an exact k×k nearest-neighbour enlargement (k > 1), returns k. */
function upscaleFactor(raw: Buffer, width: number, height: number, channels: number, hint?: { width: number; height: number }): number {
  const candidates: number[] = [];
  if (hint && hint.width > 0 && width % hint.width === 0 && height % hint.height === 0 && width / hint.width === height / hint.height) candidates.push(width / hint.width);
  for (const k of [8, 7, 6, 5, 4, 3, 2]) if (!candidates.includes(k)) candidates.push(k);
  for (const k of candidates) {
    if (k <= 1 || width % k || height % k) continue;
    let exact = true;
    for (let y = 0; y < height && exact; y++) {
      const by = y - (y % k);
      for (let x = 0; x < width; x++) {
        const bx = x - (x % k);
        if (bx === x && by === y) continue;
        const a = (y * width + x) * channels;
        const b = (by * width + bx) * channels;
        for (let c = 0; c < channels; c++) {
          if (raw[a + c] !== raw[b + c]) {
            exact = false;
            break;
          }
        }
        if (!exact) break;
      }
    }
    if (exact) return k;
  }
  return 1;
}

// sharp loads only when images are embedded: the VS Code client imports renderReportHtml alone.
type Sharp = (typeof import('sharp'))['default'];
let sharpModule: Promise<Sharp> | undefined;
const loadSharp = (): Promise<Sharp> => (sharpModule ??= import('sharp').then((m) => (m.default ?? (m as unknown as Sharp))));

/** One image as a small data: URI. */
export async function embedImage(bytes: Buffer, o: Required<EmbedOptions>, hint?: { width: number; height: number }): Promise<string> {
  const sharp = await loadSharp();
  const img = sharp(bytes, { failOn: 'error' });
  const meta = await img.metadata();
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  let buf = bytes;
  let mime = meta.format === 'jpeg' ? 'image/jpeg' : meta.format === 'webp' ? 'image/webp' : meta.format === 'gif' ? 'image/gif' : 'image/png';
  if (width && height && width * height <= 4096 * 4096) {
    const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    const k = upscaleFactor(data, info.width, info.height, info.channels, hint);
    if (k > 1) {
      // Back to the native pixels, losslessly: the page enlarges them again without smoothing.
      const w = info.width / k;
      const hgt = info.height / k;
      const native = Buffer.alloc(w * hgt * info.channels);
      for (let y = 0; y < hgt; y++) {
        for (let x = 0; x < w; x++) {
          const s = (y * k * info.width + x * k) * info.channels;
          data.copy(native, (y * w + x) * info.channels, s, s + info.channels);
        }
      }
      buf = await sharp(native, { raw: { width: w, height: hgt, channels: info.channels } }).png({ compressionLevel: 9, palette: false }).toBuffer();
      mime = 'image/png';
    }
    if (buf.length > o.keepPngBytes) {
      const webp = await sharp(buf).resize({ width: o.maxSide, height: o.maxSide, fit: 'inside', withoutEnlargement: true }).webp({ quality: o.quality }).toBuffer();
      if (webp.length < buf.length) {
        buf = webp;
        mime = 'image/webp';
      }
    }
  }
  return `data:${mime};base64,${buf.toString('base64')}`;
}

/** Embeds the report's artifact images from its folder, within the budget. */
export async function embedArtifacts(report: Report, outDir: string, opts: EmbedOptions = {}): Promise<EmbedResult> {
  const o: Required<EmbedOptions> = { maxSide: 192, keepPngBytes: 12 * 1024, budgetBytes: 48 * 1024 * 1024, quality: 78, ...opts };
  const root = realpathSync(outDir);
  const hint = report.model?.inputSize ? { width: report.model.inputSize.width, height: report.model.inputSize.height } : undefined;
  const paths = artifactPaths(report);
  const artifacts: Record<string, string> = {};
  let bytes = 0;
  let omitted = 0;
  let embedded = 0;
  const CHUNK = 16;
  for (let i = 0; i < paths.length; i += CHUNK) {
    const chunk = paths.slice(i, i + CHUNK);
    const uris = await Promise.all(
      chunk.map(async (p) => {
        if (bytes >= o.budgetBytes) return undefined;
        const file = resolve(root, p);
        let real: string;
        try {
          real = realpathSync(file);
        } catch {
          return undefined; // missing: the page shows "not embedded"
        }
        if (!real.startsWith(root + sep) || !statSync(real).isFile()) return undefined;
        try {
          return await embedImage(readFileSync(real), o, hint);
        } catch {
          return undefined;
        }
      }),
    );
    chunk.forEach((p, k) => {
      const uri = uris[k];
      if (uri === undefined) {
        omitted++;
        return;
      }
      if (bytes + uri.length > o.budgetBytes) {
        omitted++;
        return;
      }
      artifacts[p] = uri;
      bytes += uri.length;
      embedded++;
    });
  }
  return { artifacts, embedded, omitted, bytes };
}

/** Writes <outDir>/report.html, a single file that needs no network and no other file. Large
 *  reports are embedded in part (embeddableReport). */
export async function writeHtmlReport(whole: Report, outDir: string, opts: EmbedOptions & { bundle?: { js: string; css: string } } = {}): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const bundle = opts.bundle ?? findWebviewBundle();
  const js = readFileSync(bundle.js, 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
  const css = readFileSync(bundle.css, 'utf8').replace(/\/\*# sourceMappingURL=\S+ \*\/\s*$/, '');
  const report = embeddableReport(whole);
  const { artifacts, omitted } = await embedArtifacts(report, outDir, opts);
  const html = renderReportHtml({ report, assets: { kind: 'inline', js, css }, nonce: makeNonce(), artifacts, omitted });
  const file = join(outDir, 'report.html');
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, html);
  return file;
}
