/**
 * `skeptic compare BASE NEW`: the CLI face of engine/compare. Reads the two reports, prints the
 * comparison (table, JSON, Markdown or HTML), and with --fail-on-regression exits 1 when a metric
 * got significantly worse beyond its tolerance (flags, then skeptic.json's "compare" section).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { compareReports, comparisonHtml, comparisonMarkdown, comparisonText, loadReport, parseTolerances, regressions, tolerancesFromConfig, type Tolerances } from './engine/compare';
import { findConfig, loadConfig } from './engine/config';
import { SkepticInputError } from './engine/errors';

export const COMPARE_FORMATS = ['table', 'json', 'markdown', 'html'] as const;

export const COMPARE_USAGE = `Compare options:
  --format F             table | json | markdown | html (default table)
  --json                 the same as --format json
  --out FILE             write the output to FILE instead of stdout
  --fail-on-regression   exit 1 when a metric got significantly worse beyond its tolerance
  --tolerance M=V        tolerance of metric M (or of a prefix: "attack", "attack.robustAccuracy",
                         "*"), absolute in the metric's units: 0.02 or 2% (repeatable; also
                         skeptic.json "compare": { "tolerances": { ... } })
  --alpha A              significance level, Holm-adjusted over the metrics (default 0.05)
`;

type Flags = Record<string, string | boolean | string[] | undefined>;

export function compareCommand(positionals: string[], o: Flags, usageError: (m: string) => number): number {
  if (positionals.length !== 2) return usageError('compare takes two reports: BASE NEW (report.json files or report folders)');
  const format = o.json ? 'json' : typeof o.format === 'string' ? o.format : 'table';
  if (!(COMPARE_FORMATS as readonly string[]).includes(format)) return usageError(`compare --format must be one of ${COMPARE_FORMATS.join(', ')}, not '${format}'`);

  const configFile = typeof o.config === 'string' ? resolve(o.config) : findConfig(process.cwd());
  const config = configFile ? loadConfig(configFile) : undefined;
  const section = config?.compare;
  const tolerances: Tolerances = {
    ...(config ? tolerancesFromConfig(section?.tolerances, config.file) : {}),
    ...parseTolerances((o.tolerance as string[] | undefined) ?? []),
  };
  let alpha = section?.alpha ?? 0.05;
  if (typeof o.alpha === 'string') alpha = Number(o.alpha);
  if (!(alpha > 0 && alpha < 1)) throw new SkepticInputError(`--alpha must be a number in (0, 1), not '${o.alpha ?? section?.alpha}'`);

  const [basePath, newPath] = positionals;
  const base = loadReport(basePath);
  const next = loadReport(newPath);
  const c = compareReports(base, next, { alpha, baseSource: basePath, newSource: newPath });
  const regs = regressions(c, tolerances);
  const gate = o['fail-on-regression'] === true;
  const text =
    format === 'json'
      ? JSON.stringify({ ...c, regressions: regs.map((r) => ({ metric: r.metric.key, worseBy: r.worseBy, tolerance: r.tolerance })) }, null, 1) + '\n'
      : format === 'markdown'
        ? comparisonMarkdown(c, regs)
        : format === 'html'
          ? comparisonHtml(c, regs)
          : comparisonText(c, regs) + '\n';
  if (typeof o.out === 'string') {
    writeFileSync(resolve(o.out), text);
    console.error(`Comparison: ${resolve(o.out)}`);
  } else process.stdout.write(text);
  if (gate && regs.length) {
    console.error(`skeptic: ${regs.length} regression(s): ${regs.map((r) => r.metric.key).join(', ')}`);
    return 1;
  }
  return 0;
}
