/** Comparing two audits: the engine side of `skeptic compare`, the CI gate and the editor's side-by-side view. */
export { compareReports, COMPARISON_SCHEMA_VERSION, TEST_NAMES, type Comparison, type CompareOptions, type FindingChange, type ImageChange, type MetricComparison, type TestName } from './compare';
export { comparisonHtml, comparisonMarkdown, comparisonText } from './format';
export { parseTolerances, regressions, toleranceFor, tolerancesFromConfig, type Regression, type Tolerances } from './gate';
export { loadReport, reportFile } from './load';
export { metricDefs, type MetricDef } from './metrics';
