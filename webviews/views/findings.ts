/**
 * The findings: counts by rule, and every finding in a paged list that filters by severity and
 * probe. In VS Code a finding is a button: click, Enter or Space reveals its file or manifest row
 * (a RevealMessage with the finding's own subject URI). The standalone report shows the location
 * as plain text.
 */
import type { Finding, Severity } from '../../server/engine/report/schema';
import { h, select } from '../lib/dom';
import { gallery } from '../lib/gallery';
import { artifactsOf, table, thumb, type Ctx } from './common';
import { SEVERITY_TEXT, sevIcon } from './summary';

const ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

export function where(f: Finding): string {
  const s = f.subject;
  if (!s) return '';
  return s.line !== undefined ? `${s.path}:${s.line}` : s.index !== undefined ? `${s.path}#${s.index}` : s.path;
}

export function findingsView(ctx: Ctx): HTMLElement {
  const r = ctx.report;
  const all = [...(r.findings ?? [])].sort((a, b) => ORDER[a.severity] - ORDER[b.severity]);
  let sev = 'all';
  let probe = 'all';
  const filtered = () => all.filter((f) => (sev === 'all' || f.severity === sev) && (probe === 'all' || f.probe === probe));
  const probes = [...new Set(all.map((f) => f.probe))];

  const canReveal = ctx.host.canReveal;
  const g = gallery<Finding>({
    id: 'findings',
    label: 'Findings',
    items: filtered(),
    pageSize: 25,
    layout: 'rows',
    empty: all.length ? 'No findings match the filter.' : 'No findings: every probe stayed within its thresholds.',
    card: (f) => findingCard(ctx, f, canReveal),
    activate: canReveal ? (f) => ctx.host.reveal(f.subject.uri, f.subject.line) : undefined,
    controls: [
      select('Severity', [['all', 'all'], ...(['error', 'warning', 'info'] as Severity[]).map((s) => [s, SEVERITY_TEXT[s][1]] as [string, string])], sev, (v) => {
        sev = v;
        g.setItems(filtered());
      }),
      select('Probe', [['all', 'all'], ...probes.map((p) => [p, r.probes?.[p]?.title ?? p] as [string, string])], probe, (v) => {
        probe = v;
        g.setItems(filtered());
      }),
    ],
  });

  // Counts by rule, with what the rule means.
  const byRule = new Map<string, { n: number; severity: Severity }>();
  for (const f of all) {
    const e = byRule.get(f.rule) ?? { n: 0, severity: f.severity };
    e.n++;
    if (ORDER[f.severity] < ORDER[e.severity]) e.severity = f.severity;
    byRule.set(f.rule, e);
  }
  const rules = byRule.size
    ? table(
        ['rule', 'severity', 'findings', 'what it means'],
        [...byRule.entries()].map(([rule, e]) => [
          h('code', null, rule),
          h('span', { class: `sev sev-${e.severity}` }, h('span', { class: 'sev-icon', 'aria-hidden': 'true' }, sevIcon(e.severity)), e.severity),
          String(e.n),
          h('span', { title: r.rules?.[rule]?.help ?? '' }, r.rules?.[rule]?.text ?? ''),
        ]),
        'data rules',
      )
    : null;

  return h(
    'section',
    { id: 'findings', class: 'findings', 'aria-labelledby': 'findings-title' },
    h('h2', { id: 'findings-title', tabindex: -1 }, 'Findings'),
    canReveal ? h('p', { class: 'note' }, 'Click a finding (or press Enter) to show its file or manifest row in the editor. Arrow keys move between findings.') : null,
    rules,
    g.el,
  );
}

function findingCard(ctx: Ctx, f: Finding, canReveal: boolean): HTMLElement {
  const img = artifactsOf(f).find((a) => /\.(png|jpe?g|webp|gif)$/i.test(a));
  const loc = where(f);
  const el = h(
    'div',
    { class: `finding sev-${f.severity}`, 'data-finding': f.id, 'data-rule': f.rule },
    h('span', { class: `sev-icon sev-${f.severity}`, 'aria-label': f.severity, title: f.severity }, sevIcon(f.severity)),
    h(
      'div',
      { class: 'finding-body' },
      h('div', { class: 'finding-head' }, h('code', { class: 'rule', title: ctx.report.rules?.[f.rule]?.name ?? '' }, f.rule), loc ? h('span', { class: canReveal ? 'loc link' : 'loc' }, loc) : null),
      h('div', { class: 'finding-message' }, f.message),
    ),
    img ? thumb(ctx, img, `${f.rule} artifact`) : null,
  );
  if (canReveal) {
    el.setAttribute('role', 'button');
    el.setAttribute('aria-label', `${f.severity}: ${f.message} — reveal ${loc}`);
  }
  return el;
}
