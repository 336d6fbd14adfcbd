/**
 * SARIF 2.1.0 output, for code scanning in CI: one result per finding, located at the model file
 * or at the manifest row (or image file) the finding is about. Rules carry the probe's reference
 * so a reader can look up why it matters.
 *
 * With a baseline report (`skeptic audit --baseline BASE`), each result carries SARIF's
 * `baselineState` (§3.27.24), matched by finding id (also the partial fingerprint): `new` when the
 * baseline has no such finding, `unchanged` when it has, and the baseline's findings that are gone
 * are included as `absent` results, as code-scanning tools expect.
 */
import { isAbsolute } from 'node:path';
import type { Location, Log, Result } from 'sarif';
import type { Finding, Report } from './schema';

const LEVEL: Record<Finding['severity'], Result.level> = { error: 'error', warning: 'warning', info: 'note' };

export function toSarif(report: Report, opts: { baseline?: Report } = {}): Log {
  const base = opts.baseline;
  const baseIds = new Set(base?.findings.map((f) => f.id));
  const ids = new Set(report.findings.map((f) => f.id));
  const absent = base ? base.findings.filter((f) => !ids.has(f.id)) : [];
  const ruleIds = [...new Set([...report.findings, ...absent].map((f) => f.rule))].sort();
  const rules = { ...base?.rules, ...report.rules };
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'Skeptic',
            version: report.tool.version,
            rules: ruleIds.map((id) => {
              const r = rules[id];
              return {
                id,
                name: r?.name ?? id,
                shortDescription: { text: r?.text ?? id },
                help: { text: r?.help ?? '' },
              };
            }),
          },
        },
        results: [
          ...report.findings.map((f) => ({ ...result(f, ruleIds.indexOf(f.rule)), ...(base ? { baselineState: baseIds.has(f.id) ? ('unchanged' as const) : ('new' as const) } : {}) })),
          ...absent.map((f) => ({ ...result(f, ruleIds.indexOf(f.rule)), baselineState: 'absent' as const })),
        ],
        properties: {
          model: report.model.path,
          dataset: report.dataset.path,
          device: report.device.used,
          metrics: Object.fromEntries(Object.entries(report.probes).map(([id, p]) => [id, headline(p.metrics)])),
        },
      },
    ],
  };
}

function result(f: Finding, ruleIndex: number): Result {
  const region = f.subject.line !== undefined ? { region: { startLine: f.subject.line } } : {};
  return {
    ruleId: f.rule,
    ruleIndex,
    level: LEVEL[f.severity],
    message: { text: f.message },
    locations: [{ physicalLocation: { artifactLocation: artifactLocation(f), ...region } }],
    partialFingerprints: { skepticFindingId: f.id },
    ...(f.metrics ? { properties: f.metrics } : {}),
  };
}

/** The scalar metrics of a probe (arrays and nested objects stay in report.json). */
function headline(metrics: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(metrics).filter(([, v]) => typeof v === 'number' || typeof v === 'string'));
}

/** Paths inside the base folder stay relative (to %SRCROOT%, as code scanning expects); others
 *  are absolute file URIs. */
function artifactLocation(f: Finding): NonNullable<Location['physicalLocation']>['artifactLocation'] {
  return isAbsolute(f.subject.path) ? { uri: f.subject.uri } : { uri: f.subject.path, uriBaseId: '%SRCROOT%' };
}
