/** A comparison for people: a terminal table, Markdown for a pull-request comment, and HTML. */
import type { Comparison, FindingChange, ImageChange, MetricComparison } from './compare';
import type { Regression } from './gate';

/** Fractions (accuracies, rates) as percentages and their differences in points; AUROCs and other numbers as numbers. */
const isFraction = (m: MetricComparison) => m.unit === 'fraction';

export function fmtValue(m: MetricComparison, v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '–';
  return isFraction(m) ? `${(v * 100).toFixed(1)}%` : String(+v.toPrecision(4));
}

export function fmtDiff(m: MetricComparison, d: number | null = m.diff): string {
  if (d === null || !Number.isFinite(d)) return '–';
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  return isFraction(m) ? `${sign}${Math.abs(d * 100).toFixed(1)} pts` : `${sign}${+Math.abs(d).toPrecision(3)}`;
}

export function fmtP(p: number | null): string {
  if (p === null) return '–';
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

const TEST_SHORT: Record<MetricComparison['test'], string> = {
  'mcnemar-exact': 'McNemar',
  'paired-bootstrap': 'bootstrap',
  'two-proportion-z': 'z (unpaired)',
  'hanley-mcneil-z': 'AUROC z',
  none: '–',
};

export function verdictOf(m: MetricComparison): string {
  if (!m.comparable) return 'not comparable';
  if (m.change === 'better') return 'better';
  if (m.change === 'worse') return 'WORSE';
  if (m.p === null) return '';
  if (m.significant) return 'changed';
  return 'no sig. change';
}

function rowsOf(c: Comparison): string[][] {
  return c.metrics
    .filter((m) => m.comparable)
    .map((m) => [m.key, fmtValue(m, m.base), fmtValue(m, m.new), fmtDiff(m), m.ci ? `[${fmtDiff(m, m.ci[0])}, ${fmtDiff(m, m.ci[1])}]` : '–', TEST_SHORT[m.test], fmtP(m.pAdjusted), verdictOf(m)]);
}

const HEAD = ['metric', 'BASE', 'NEW', 'Δ', '95% CI', 'test', 'p (Holm)', ''];

function where(x: { path: string; line?: number; index?: number; image?: string; id?: string }): string {
  const loc = x.line !== undefined ? `${x.path}:${x.line}` : x.index !== undefined ? `${x.path}[${x.index}]` : x.path;
  const img = x.image ?? x.id;
  return img && img !== x.path ? `${loc} (${img})` : loc;
}

function headerLines(c: Comparison): string[] {
  return [
    `BASE  ${c.base.model}  on ${c.base.dataset} (${c.base.images} images, seed ${c.base.seed})  [${c.base.source}]`,
    `NEW   ${c.new.model}  on ${c.new.dataset} (${c.new.images} images, seed ${c.new.seed})  [${c.new.source}]`,
    `Images in both: ${c.commonImages}${c.sameDataset ? ' (same dataset)' : ''}`,
  ];
}

export function comparisonText(c: Comparison, regs: Regression[] = [], opts: { maxItems?: number } = {}): string {
  const max = opts.maxItems ?? 10;
  const lines = headerLines(c);
  for (const n of c.notes) lines.push(`Note: ${n}`);
  lines.push('');
  lines.push(...table([HEAD, ...rowsOf(c)]));
  const nc = c.metrics.filter((m) => !m.comparable);
  if (nc.length) {
    lines.push('', `Not comparable (${nc.length}):`);
    for (const m of nc) lines.push(`  ${m.key}: ${m.note}`);
  }
  const notes = c.metrics.filter((m) => m.comparable && m.note);
  if (notes.length) {
    lines.push('');
    for (const m of notes) lines.push(`  ${m.key}: ${m.note}`);
  }
  lines.push('', `Tests (significance: Holm-adjusted p < ${c.alpha}):`);
  for (const t of Object.values(c.tests)) lines.push(`  ${t}`);
  lines.push('');
  lines.push(`Findings: ${c.findings.new.length} new, ${c.findings.absent.length} gone, ${c.findings.unchanged} unchanged`);
  lines.push(`Images that became fragile: ${c.images.fragile.length}`);
  for (const i of c.images.fragile.slice(0, max)) lines.push(`  + ${where(i)}  ${i.rules.join(', ')}`);
  if (c.images.fragile.length > max) lines.push(`  … and ${c.images.fragile.length - max} more`);
  lines.push(`Images that recovered: ${c.images.recovered.length}`);
  for (const i of c.images.recovered.slice(0, max)) lines.push(`  - ${where(i)}  ${i.rules.join(', ')}`);
  if (c.images.recovered.length > max) lines.push(`  … and ${c.images.recovered.length - max} more`);
  const modelLevel = c.findings.new.filter((f) => f.imageIndex === undefined);
  for (const f of modelLevel) lines.push(`New: ${f.severity} ${f.rule}: ${f.message}`);
  if (regs.length) {
    lines.push('', `Regressions (${regs.length}):`);
    for (const r of regs) lines.push(`  ${r.metric.key}: ${fmtDiff(r.metric)} (tolerance ${fmtDiff(r.metric, r.tolerance).replace(/^[+±]/, '')}, p ${fmtP(r.metric.pAdjusted)})`);
  }
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd());
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function comparisonMarkdown(c: Comparison, regs: Regression[] = [], opts: { maxItems?: number } = {}): string {
  const max = opts.maxItems ?? 20;
  const worse = c.metrics.filter((m) => m.change === 'worse').length;
  const better = c.metrics.filter((m) => m.change === 'better').length;
  const out: string[] = [];
  out.push(`### Skeptic: robustness compared`);
  out.push('');
  out.push(
    regs.length
      ? `**${regs.length} regression(s)** beyond tolerance. ${worse} metric(s) significantly worse, ${better} better.`
      : worse
        ? `${worse} metric(s) significantly worse (within tolerance), ${better} better.`
        : `No metric significantly worse; ${better} better.`,
  );
  out.push('');
  out.push(`| | model | dataset | images | seed |`, `|---|---|---|---|---|`);
  out.push(`| BASE | \`${c.base.model}\` | \`${c.base.dataset}\` | ${c.base.images} | ${c.base.seed} |`);
  out.push(`| NEW | \`${c.new.model}\` | \`${c.new.dataset}\` | ${c.new.images} | ${c.new.seed} |`);
  out.push('');
  for (const n of c.notes) out.push(`> ${mdEscape(n)}`);
  if (c.notes.length) out.push('');
  out.push(`| ${HEAD.map((h) => h || 'verdict').join(' | ')} |`, `|${HEAD.map((_, i) => (i >= 1 && i <= 3 ? '---:' : '---')).join('|')}|`);
  for (const r of rowsOf(c)) out.push(`| ${r.map((x, i) => mdEscape(i === 0 ? `\`${x}\`` : x === 'WORSE' ? '**worse**' : x)).join(' | ')} |`);
  out.push('');
  const nc = c.metrics.filter((m) => !m.comparable);
  if (nc.length) {
    out.push(`<details><summary>Not comparable (${nc.length})</summary>`, '');
    for (const m of nc) out.push(`- \`${m.key}\`: ${mdEscape(m.note ?? '')}`);
    out.push('', '</details>', '');
  }
  out.push(`Tests (significance: Holm-adjusted p < ${c.alpha}): ${Object.values(c.tests).join('; ')}.`, '');
  const list = (title: string, items: ImageChange[]) => {
    out.push(`<details><summary>${title} (${items.length})</summary>`, '');
    for (const i of items.slice(0, max)) out.push(`- \`${mdEscape(where(i))}\`: ${i.rules.join(', ')}`);
    if (items.length > max) out.push(`- … and ${items.length - max} more`);
    out.push('', '</details>', '');
  };
  list('Images that became fragile', c.images.fragile);
  list('Images that recovered', c.images.recovered);
  const modelNew = c.findings.new.filter((f: FindingChange) => f.imageIndex === undefined);
  for (const f of modelNew) out.push(`- New ${f.severity} \`${f.rule}\`: ${mdEscape(f.message)}`);
  return out.join('\n') + '\n';
}

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);

/** A self-contained page (no script): the same content as the Markdown, as tables. */
export function comparisonHtml(c: Comparison, regs: Regression[] = []): string {
  const rows = c.metrics
    .map((m) => {
      const cls = !m.comparable ? 'nc' : m.change === 'worse' ? 'worse' : m.change === 'better' ? 'better' : '';
      const cells = m.comparable
        ? [fmtValue(m, m.base), fmtValue(m, m.new), fmtDiff(m), m.ci ? `[${fmtDiff(m, m.ci[0])}, ${fmtDiff(m, m.ci[1])}]` : '–', TEST_SHORT[m.test], fmtP(m.pAdjusted), verdictOf(m)]
        : [fmtValue(m, m.base), fmtValue(m, m.new), '', '', '', '', `not comparable: ${m.note ?? ''}`];
      return `<tr class="${cls}" data-key="${esc(m.key)}"><td><code>${esc(m.key)}</code><br><small>${esc(m.label)}</small></td>${cells.map((x) => `<td>${esc(x)}</td>`).join('')}</tr>`;
    })
    .join('\n');
  const images = (title: string, items: ImageChange[]) =>
    `<h2>${esc(title)} (${items.length})</h2><ul>${items.map((i) => `<li><code>${esc(where(i))}</code> ${esc(i.rules.join(', '))}</li>`).join('')}</ul>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Skeptic comparison</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
tr.worse td{background:#fde2e2}tr.better td{background:#e2f5e4}tr.nc td{color:#888}small{color:#666}
</style></head><body>
<h1>Skeptic: robustness compared</h1>
<p>${regs.length ? `<strong>${regs.length} regression(s)</strong> beyond tolerance: ${regs.map((r) => `<code>${esc(r.metric.key)}</code>`).join(', ')}` : 'No regression beyond tolerance.'}</p>
<table><tr><th></th><th>model</th><th>dataset</th><th>images</th><th>seed</th></tr>
<tr><th>BASE</th><td><code>${esc(c.base.model)}</code></td><td><code>${esc(c.base.dataset)}</code></td><td>${c.base.images}</td><td>${c.base.seed}</td></tr>
<tr><th>NEW</th><td><code>${esc(c.new.model)}</code></td><td><code>${esc(c.new.dataset)}</code></td><td>${c.new.images}</td><td>${c.new.seed}</td></tr></table>
${c.notes.map((n) => `<p>${esc(n)}</p>`).join('\n')}
<h2>Metrics</h2>
<table><tr>${HEAD.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${rows}
</table>
<p>Tests (significance: Holm-adjusted p &lt; ${c.alpha}): ${esc(Object.values(c.tests).join('; '))}.</p>
<p>Findings: ${c.findings.new.length} new, ${c.findings.absent.length} gone, ${c.findings.unchanged} unchanged.</p>
${images('Images that became fragile', c.images.fragile)}
${images('Images that recovered', c.images.recovered)}
</body></html>
`;
}
