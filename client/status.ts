/**
 * The status bar item: the execution provider and the last audit's verdict when idle
 * ("$(shield) Skeptic cpu · 2 warnings, 5 fragile images"), the probe and count while an audit
 * runs. Clicking it shows the report (or, while running, offers to cancel).
 */
import * as vscode from 'vscode';
import type { ReportSummary } from '../server/protocol';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('skeptic.status', vscode.StatusBarAlignment.Left, 10);
  private last?: ReportSummary;
  private running = false;

  constructor() {
    this.item.name = 'Skeptic';
    this.idle();
  }

  /** The newest report changed (an audit ended, reports were read on start). */
  setLast(summary: ReportSummary | undefined): void {
    this.last = summary;
    if (!this.running) this.idle();
  }

  auditing(message: string): void {
    this.running = true;
    this.item.text = `$(sync~spin) Skeptic: ${message}`;
    this.item.tooltip = 'Skeptic is auditing: click to cancel';
    this.item.command = 'skeptic.cancelAudit';
    this.item.backgroundColor = undefined;
    this.item.show();
  }

  idle(): void {
    this.running = false;
    const s = this.last;
    if (!s) {
      this.item.text = '$(shield) Skeptic';
      this.item.tooltip = 'Skeptic: no audit yet. Right-click an .onnx file: Audit Robustness';
      this.item.command = 'skeptic.auditModel';
      this.item.backgroundColor = undefined;
    } else {
      this.item.text = `$(shield) Skeptic ${s.device} · ${s.verdict}`;
      const md = new vscode.MarkdownString(
        `**Skeptic**: ${s.modelName} on ${s.datasetName}\n\n` +
          `Ran on **${s.device}**, ${s.startedAt.slice(0, 16).replace('T', ' ')}\n\n` +
          s.probes.map((p) => `- \`${p.id}\` ${p.status}${p.headline ? `: ${p.headline}` : ''}`).join('\n') +
          '\n\nClick to show the report.',
      );
      this.item.tooltip = md;
      this.item.command = { command: 'skeptic.showReport', title: 'Show Report', arguments: [s.folder] };
      this.item.backgroundColor = s.findings.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : s.findings.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    }
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
