/**
 * The page's host: VS Code (a webview, with acquireVsCodeApi) or nothing (the standalone HTML
 * report opened in a browser). Only the VS Code host can reveal files; the standalone page shows
 * locations as plain text.
 */
import type { RevealMessage, WebviewToExtension } from '../../server/protocol';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare const acquireVsCodeApi: undefined | (() => VsCodeApi);

export interface Host {
  readonly kind: 'vscode' | 'standalone';
  readonly canReveal: boolean;
  /** Asks the editor to show a file (and line). Ignored for URIs not in `allowed`. */
  reveal(uri: string, line?: number): boolean;
  post(message: WebviewToExtension): void;
  /** Webview state that survives the panel being hidden and shown again (VS Code only). */
  getState(): Record<string, unknown>;
  setState(state: Record<string, unknown>): void;
  /** The URIs reveal accepts (the report's own subjects); replaced with each report. */
  allowed: Set<string>;
}

export function createHost(): Host {
  // acquireVsCodeApi may be called once per page load.
  const api = typeof acquireVsCodeApi === 'function' ? acquireVsCodeApi() : undefined;
  const host: Host = {
    kind: api ? 'vscode' : 'standalone',
    canReveal: !!api,
    allowed: new Set(),
    post(message) {
      api?.postMessage(message);
    },
    getState() {
      const s = api?.getState();
      return s && typeof s === 'object' ? (s as Record<string, unknown>) : {};
    },
    setState(state) {
      api?.setState(state);
    },
    reveal(uri, line) {
      if (!api || !host.allowed.has(uri)) return false;
      const m: RevealMessage = { type: 'reveal', uri };
      if (typeof line === 'number' && Number.isInteger(line) && line > 0) m.line = line;
      api.postMessage(m);
      return true;
    },
  };
  return host;
}
