/**
 * Every message type that crosses a process or frame boundary in Skeptic, in one place (as
 * rust-analyzer's lsp_ext.ts does): custom LSP requests and notifications between the VS Code
 * client and the daemon, and the messages between the report webview and the extension.
 * The daemon's side lives in server.ts, the client's in client/, the webview's in webviews/.
 */

// ---------------------------------------------------------------------------------------------
// Report webview ⇄ extension (postMessage). The standalone HTML report has no extension: it
// sends nothing and degrades links to plain text.

/** The webview asks the editor to show a file (and line) a finding points at. */
export interface RevealMessage {
  type: 'reveal';
  /** file:// URI from the report (a finding's subject). */
  uri: string;
  /** 1-based line, for manifest rows. */
  line?: number;
}

/** The webview has loaded and can take a report. */
export interface ReadyMessage {
  type: 'ready';
}

export type WebviewToExtension = RevealMessage | ReadyMessage;

/** The extension replaces the report shown (after a new audit finished). */
export interface ShowReportMessage {
  type: 'showReport';
  /** The report, as report.json holds it. */
  report: unknown;
  /** Base URI that artifact paths (relative to the report folder) resolve against. */
  artifactBase: string;
}

export type ExtensionToWebview = ShowReportMessage;
