/**
 * The top of the report: what was audited (model, dataset, device), each probe's key number against
 * the threshold that raises its finding, and the findings by severity.
 */
import type { ProbeResult, Report, Severity } from '../../server/engine/report/schema';
import { h } from '../lib/dom';
import { duration, eps, int, isNum, num, pct, plural } from '../lib/format';
import { pick, type Ctx } from './common';

export interface KeyMetric {
  label: string;
  value: string;
  /** "≤ 5.0%": the threshold, as it reads. */
  threshold?: string;
  /** true: passes; false: the probe's finding fires; undefined: no verdict. */
  ok?: boolean;
}

function num0(x: unknown): number | undefined {
  return isNum(x) ? x : undefined;
}

/** The probe's key metric against its threshold. Unknown probes: their finding count decides. */
export function keyMetric(id: string, p: ProbeResult, report: Report): KeyMetric | undefined {
  const m = (p.metrics ?? {}) as Record<string, unknown>;
  const par = (p.params ?? {}) as Record<string, unknown>;
  const fired = (report.findings ?? []).filter((f) => f.probe === id && f.severity !== 'info').length;
  switch (id) {
    case 'clean': {
      const acc = num0(m.accuracy);
      const k = report.model?.numClasses ?? 0;
      const floor = k > 0 ? (1 / k) * (num0(par.nearChanceFactor) ?? 1.5) : undefined;
      return { label: 'accuracy', value: pct(acc), threshold: floor !== undefined ? `≥ ${pct(floor)} (near chance below)` : undefined, ok: acc !== undefined && floor !== undefined ? acc >= floor : undefined };
    }
    case 'shift': {
      const r = num0(m.oneFlipRate);
      const t = num0(par.maxFlipRate);
      return { label: '1-px shift flips', value: pct(r), threshold: t !== undefined ? `≤ ${pct(t)}` : undefined, ok: r !== undefined && t !== undefined ? r <= t : undefined };
    }
    case 'patches': {
      const g = num0(par.findingGrid) ?? 4;
      const grids = Array.isArray(m.grids) ? (m.grids as Array<Record<string, unknown>>) : [];
      const at = grids.find((x) => x.grid === g);
      const r = num0(at?.retained);
      const t = num0(par.minRetained);
      return { label: `accuracy retained at ${g}×${g}`, value: pct(r), threshold: t !== undefined ? `< ${pct(t)}` : undefined, ok: r !== undefined && t !== undefined ? r < t : undefined };
    }
    case 'ood': {
      const sets = m.sets && typeof m.sets === 'object' ? Object.keys(m.sets) : [];
      const beat = Array.isArray(m.setsMoreConfidentThanData) ? m.setsMoreConfidentThanData.length : 0;
      return { label: `OOD sets more confident than the data (of ${sets.length})`, value: String(beat), threshold: '= 0', ok: beat === 0 };
    }
    case 'corruptions': {
      const d = num0(m.relativeDegradation);
      const t = num0(par.maxRelativeDrop);
      return { label: 'relative accuracy drop', value: pct(d), threshold: t !== undefined ? `≤ ${pct(t)}` : undefined, ok: d !== undefined && t !== undefined ? d <= t : undefined };
    }
    case 'attack': {
      const med = num0(pick(m, 'medianMinEps', 'medianMinimalEps', 'medianMinEpsilon', 'medianMinimalEpsilon'));
      const t = num0(pick(par, 'invisibleEps', 'minEps', 'findingEps')) ?? 1 / 255;
      const f = m.domain === 'digits' ? (v: number) => num(v, 4) : eps;
      // The finding is per image (an invisible change flips it): the verdict follows the findings.
      if (med !== undefined) return { label: 'median minimal ε', value: f(med), threshold: `≤ ${f(t)} per image`, ok: fired === 0 };
      const ra = (p.plots as Record<string, unknown> | undefined)?.robustAccuracy as Record<string, unknown> | undefined;
      const any = Array.isArray(ra?.any) ? (ra!.any as unknown[]).filter(isNum) : [];
      if (any.length) return { label: 'robust accuracy at the largest ε', value: pct(any[any.length - 1]), ok: fired === 0 };
      break;
    }
    case 'cue-conflict': {
      const sb = num0(pick(m, 'shapeBias'));
      const t = num0(pick(par, 'minShapeBias', 'threshold', 'shapeBiasThreshold')) ?? 0.5;
      return { label: 'shape bias', value: sb === undefined ? '–' : num(sb, 2), threshold: `≥ ${num(t, 2)}`, ok: sb !== undefined ? sb >= t : undefined };
    }
    case 'prior': {
      const probes = m.probes as Record<string, Record<string, unknown>> | undefined;
      const lr = probes?.logreg ?? (probes ? Object.values(probes)[0] : undefined);
      const share = num0(lr?.randomShare) ?? num0(pick(m, 'randomShare', 'untrainedShare'));
      if (share !== undefined) return { label: 'of the trained accuracy without training', value: pct(share), ok: fired === 0 };
      break;
    }
  }
  if (p.status !== 'ok') return undefined;
  return { label: 'findings', value: String(fired), threshold: '= 0', ok: fired === 0 };
}

const SEVERITIES: Severity[] = ['error', 'warning', 'info'];
export const SEVERITY_TEXT: Record<Severity, [string, string]> = { error: ['error', 'errors'], warning: ['warning', 'warnings'], info: ['note', 'notes'] };

export function header(ctx: Ctx): HTMLElement {
  const r = ctx.report;
  const ds = r.dataset;
  const rows: Array<[string, string, string?]> = [
    ['Model', r.model?.path ?? '–', `${r.model?.layout ?? ''} ${r.model?.inputSize ? `${r.model.inputSize.channels}×${r.model.inputSize.height}×${r.model.inputSize.width}` : ''}, ${plural(r.model?.numClasses ?? 0, 'class', 'classes')}, ${r.model?.outputKind ?? ''}`],
    ['Dataset', ds?.path ?? '–', ds ? `${ds.kind}, ${int(ds.evaluated)} of ${int(ds.selected)} selected evaluated (${int(ds.total)} in all)` : ''],
    ['Device', r.device?.used ?? '–', r.device ? `requested ${r.device.requested}${r.device.fallbacks?.length ? `; ${r.device.fallbacks.length} fallback(s)` : ''}` : ''],
    ['Run', r.run?.startedAt ? new Date(r.run.startedAt).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '–', `${duration(r.run?.durationMs)}, seed ${r.config?.seed ?? '–'}${r.run?.cancelled ? ', cancelled' : ''}; Skeptic ${r.tool?.version ?? ''}`],
  ];
  return h(
    'header',
    { class: 'report-header' },
    h('h1', null, 'Skeptic report'),
    h('dl', { class: 'meta' }, ...rows.flatMap(([k, v, d]) => [h('dt', null, k), h('dd', { 'data-meta': k.toLowerCase() }, h('span', { class: 'meta-main' }, v), d ? h('span', { class: 'meta-sub' }, d) : null)])),
    r.device?.fallbacks?.length ? h('details', { class: 'more' }, h('summary', null, 'Device fallbacks'), h('ul', null, ...r.device.fallbacks.map((f) => h('li', null, f)))) : null,
    preprocessingDetails(r),
    r.warnings?.length ? h('div', { class: 'warnings', role: 'note' }, h('strong', null, 'Notes: '), h('ul', null, ...r.warnings.map((w) => h('li', null, w)))) : null,
  );
}

/** The preprocessing the model was audited with, and which file or option gave each value. */
function preprocessingDetails(r: Report): HTMLElement | null {
  const p = r.model?.preprocessing;
  if (!p) return null;
  const resize = p.resizeShortSide ? `short side ${p.resizeShortSide}, centre crop` : 'straight to the input size';
  const by = p.resampler && p.resampler !== 'pil' ? `torchvision ${p.resampler}` : 'PIL';
  const line = `${resize}, ${p.interpolation ?? 'bilinear'} (${by}); source ${p.source}`;
  const origins = Object.entries(p.origins ?? {});
  return h(
    'details',
    { class: 'more', 'data-preprocessing': '' },
    h('summary', null, `Preprocessing: ${line}`),
    origins.length ? h('ul', null, ...origins.map(([k, v]) => h('li', null, `${k}: ${v}`))) : null,
  );
}

export function summary(ctx: Ctx, goTo: (id: string) => void): HTMLElement {
  const r = ctx.report;
  const counts: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  for (const f of r.findings ?? []) counts[f.severity] = (counts[f.severity] ?? 0) + 1;
  const cards = Object.entries(r.probes ?? {}).map(([id, p]) => {
    const k = keyMetric(id, p, r);
    const n = ctx.findingsOf(id).length;
    const verdict = k?.ok === undefined ? 'none' : k.ok ? 'pass' : 'fail';
    const link = h('a', { href: `#probe-${id}`, class: 'card-link' }, p.title || id);
    link.addEventListener('click', (e) => {
      e.preventDefault();
      goTo(`probe-${id}`);
    });
    return h(
      'li',
      { class: `probe-card verdict-${verdict}`, 'data-probe': id },
      h('div', { class: 'probe-card-head' }, link, h('span', { class: `status status-${p.status}` }, p.status)),
      k
        ? h(
            'div',
            { class: 'key' },
            h('span', { class: 'key-value' }, k.value),
            h('span', { class: 'key-label' }, k.label),
            k.threshold ? h('span', { class: 'key-threshold' }, `threshold ${k.threshold}`) : null,
            verdict !== 'none' ? h('span', { class: `verdict ${verdict}`, 'aria-label': verdict === 'pass' ? 'passes' : 'fails' }, verdict === 'pass' ? '✓ pass' : '✗ fail') : null,
          )
        : h('div', { class: 'key' }, h('span', { class: 'key-label' }, p.reason ?? p.status)),
      p.headline ? h('p', { class: 'probe-card-headline' }, p.headline) : null,
      h('div', { class: 'probe-card-findings' }, n ? plural(n, 'finding') : 'no findings'),
    );
  });
  return h(
    'section',
    { id: 'summary', class: 'summary', 'aria-labelledby': 'summary-title' },
    h('h2', { id: 'summary-title', tabindex: -1 }, 'Summary'),
    h(
      'p',
      { class: 'severity-counts', 'data-counts': JSON.stringify(counts) },
      ...SEVERITIES.map((s) => h('span', { class: `sev sev-${s}`, 'data-severity': s }, h('span', { class: 'sev-icon', 'aria-hidden': 'true' }, sevIcon(s)), `${counts[s]} ${SEVERITY_TEXT[s][counts[s] === 1 ? 0 : 1]}`)),
    ),
    h('ul', { class: 'probe-cards' }, ...cards),
  );
}

export function sevIcon(s: Severity): string {
  return s === 'error' ? '✖' : s === 'warning' ? '▲' : 'ℹ';
}
