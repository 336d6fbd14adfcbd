/**
 * The shape of a comparison of two audits (engine/compare): what `skeptic compare --json` prints
 * and what the editor's side-by-side view reads. Types only, so the webview bundle can import them.
 * Version 1; comparisonSchemaVersion says which.
 */
import type { Finding } from '../report/schema';

/** Which direction of a metric is an improvement; null: neither. */
export type Better = 'higher' | 'lower' | null;

export type TestName = 'mcnemar-exact' | 'paired-bootstrap' | 'two-proportion-z' | 'hanley-mcneil-z' | 'none';

export interface ReportRef {
  /** Where the report was read from, as given. */
  source: string;
  model: string;
  modelSha256: string;
  dataset: string;
  datasetSha256: string;
  images: number;
  seed: number;
  startedAt: string;
  toolVersion: string;
}

export interface MetricComparison {
  key: string;
  probe: string;
  label: string;
  better: Better;
  /** fraction: a share in [0, 1] (shown as %); number: anything else. */
  unit: 'fraction' | 'number';
  base: number | null;
  new: number | null;
  /** NEW − BASE. */
  diff: number | null;
  /** 95% interval of the difference (for the test used). */
  ci: [number, number] | null;
  test: TestName;
  /** Images the test used: pairs for a paired test, [BASE, NEW] for an unpaired one. */
  n?: number | [number, number];
  /** McNemar's discordant pairs: b = right in BASE only, c = right in NEW only. */
  discordant?: { b: number; c: number };
  p: number | null;
  /** Holm-adjusted over the tested metrics of this comparison. */
  pAdjusted: number | null;
  significant: boolean;
  /** better / worse (significant changes only), same (not significant), n/a. */
  change: 'better' | 'worse' | 'same' | 'n/a';
  comparable: boolean;
  /** Why not comparable, or a caveat (paired on part of the images, unpaired). */
  note?: string;
}

export interface FindingChange {
  id: string;
  rule: string;
  probe: string;
  severity: Finding['severity'];
  message: string;
  /** Image id (file or manifest path), and for manifest rows the line. */
  image?: string;
  path: string;
  uri: string;
  line?: number;
  index?: number;
  /** Index into the report's images (NEW for new findings, BASE for absent ones). */
  imageIndex?: number;
  artifacts?: string[];
}

export interface ImageChange {
  id: string;
  path: string;
  uri: string;
  line?: number;
  index?: number;
  label?: string;
  /** Indices into each report's images. */
  baseImage: number;
  newImage: number;
  /** The rules that fired on the image in NEW (became fragile) or in BASE (recovered). */
  rules: string[];
}

export interface Comparison {
  comparisonSchemaVersion: 1;
  base: ReportRef;
  new: ReportRef;
  /** Images of BASE and NEW with the same id and content. */
  commonImages: number;
  sameDataset: boolean;
  alpha: number;
  /** Facts about the pair that the numbers depend on (different seeds, datasets, models). */
  notes: string[];
  metrics: MetricComparison[];
  findings: { new: FindingChange[]; absent: FindingChange[]; unchanged: number };
  images: { fragile: ImageChange[]; recovered: ImageChange[] };
  /** The tests used, in words. */
  tests: Partial<Record<TestName, string>>;
}

