/**
 * SARIF 2.1.0 output, for code scanning in CI: one result per finding, located at the model file
 * or at the manifest row (or image file) the finding is about. Rules carry the probe's reference
 * so a reader can look up why it matters.
 */
import { isAbsolute } from 'node:path';
import type { Location, Log, Result } from 'sarif';
import type { Finding, Report } from './schema';

const LEVEL: Record<Finding['severity'], Result.level> = { error: 'error', warning: 'warning', info: 'note' };

export function toSarif(report: Report): Log {
  const ruleIds = [...new Set(report.findings.map((f) => f.rule))].sort();
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
              const r = report.rules[id];
              return {
                id,
                name: r?.name ?? id,
                shortDescription: { text: r?.text ?? id },
                help: { text: r?.help ?? '' },
              };
            }),
          },
        },
        results: report.findings.map((f) => result(f, ruleIds.indexOf(f.rule))),
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
