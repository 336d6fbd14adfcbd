/**
 * Where the webview's images come from. Artifact paths in the report are relative to the report
 * folder; they are resolved only against `artifactBase` (the folder as a webview resource URI) or
 * looked up among the images the HTML writer embedded as data: URIs. A path that is absolute,
 * carries a scheme, or contains '..' is rejected, so the page never asks for a file outside the
 * report folder whatever the report says. Pure functions: the node-side writer and the unit tests
 * use them too.
 */

/** The path itself when it is a safe relative artifact path, else undefined. */
export function safeArtifactPath(p: unknown): string | undefined {
  if (typeof p !== 'string' || p.length === 0 || p.length > 1024) return undefined;
  // Control characters, backslashes (Windows separators, escapes), '..' anywhere, absolute
  // paths, schemes (file:, http:, data:, javascript:) and drive letters (C:) are all refused.
  if (/[\u0000-\u001f\u007f\\]/.test(p) || p.includes('..') || p.startsWith('/') || /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(p)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(p);
  } catch {
    return undefined;
  }
  if (decoded !== p && safeArtifactPath(decoded) === undefined) return undefined; // %2e%2e, %2f…
  if (p.split('/').some((s) => s === '' || s === '.')) return undefined;
  return p;
}

/** The URL of a (safe) relative path under a base URL; each segment is percent-encoded. */
export function joinArtifactUrl(base: string, rel: string): string {
  const b = base.endsWith('/') ? base : `${base}/`;
  return b + rel.split('/').map(encodeURIComponent).join('/');
}

const DATA_IMAGE = /^data:image\/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/]+=*$/;

/** Whether a string is an embedded image the page may show (base64 PNG, JPEG, WebP or GIF). */
export function isDataImage(s: unknown): s is string {
  return typeof s === 'string' && DATA_IMAGE.test(s);
}

/** Resolves artifact paths to image URLs: embedded data first, then the base, else nothing. */
export class ArtifactResolver {
  constructor(
    readonly base?: string,
    private readonly embedded: Record<string, string> = {},
  ) {}

  url(path: unknown): string | undefined {
    const p = safeArtifactPath(path);
    if (p === undefined) return undefined;
    const e = Object.prototype.hasOwnProperty.call(this.embedded, p) ? this.embedded[p] : undefined;
    if (isDataImage(e)) return e;
    if (this.base) return joinArtifactUrl(this.base, p);
    return undefined;
  }
}

/** URIs the page may ask the editor to reveal: file: URIs that the report itself names as
 *  subjects (findings, images, the model and the dataset). */
export function revealableUris(report: {
  findings?: Array<{ subject?: { uri?: unknown } }>;
  images?: Array<{ uri?: unknown }>;
  model?: { uri?: unknown };
  dataset?: { uri?: unknown };
}): Set<string> {
  const out = new Set<string>();
  const add = (u: unknown) => {
    if (typeof u === 'string' && /^file:\/\//i.test(u) && !/[\u0000-\u001f]/.test(u)) out.add(u);
  };
  for (const f of report.findings ?? []) add(f.subject?.uri);
  for (const i of report.images ?? []) add(i.uri);
  add(report.model?.uri);
  add(report.dataset?.uri);
  return out;
}
