/**
 * The tests `skeptic compare` uses to say whether a difference between two audits is larger than
 * chance for the number of images. Pure functions, no randomness except the seeded bootstrap.
 *
 *   - exact McNemar (McNemar 1947; the exact form is the two-sided binomial sign test on the
 *     discordant pairs): per-image correctness of the same images under two models;
 *   - paired bootstrap (Efron & Tibshirani 1993, ch. 16): the difference of means of a per-image
 *     measure, images resampled with replacement, a fixed seed;
 *   - two-proportion z-test (unpaired): proportions over different images;
 *   - Hanley–McNeil z-test (unpaired, Hanley & McNeil 1982): two AUROCs from their sample sizes;
 *   - Holm–Bonferroni (Holm 1979): many metrics are tested at once, so significance is read from
 *     Holm-adjusted p-values, which keeps the chance of any false alarm at α.
 */
import { mulberry32 } from '../random';

/** log(n!) by summing logs (n is a number of images: small enough). */
function logFactorials(n: number): Float64Array {
  const lf = new Float64Array(n + 1);
  for (let i = 2; i <= n; i++) lf[i] = lf[i - 1] + Math.log(i);
  return lf;
}

/**
 * Exact two-sided McNemar test. `b`: pairs right under A and wrong under B; `c`: the reverse.
 * Under H0 the b + c discordant pairs split as Binomial(b + c, ½):
 *   p = min(1, 2 · Σ_{i ≤ min(b,c)} C(b+c, i) / 2^(b+c)).
 * No discordant pair gives p = 1.
 */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  const lf = logFactorials(n);
  let tail = 0;
  for (let i = 0; i <= k; i++) tail += Math.exp(lf[n] - lf[i] - lf[n - i] - n * Math.LN2);
  return Math.min(1, 2 * tail);
}

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 via erf, |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - (((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t) * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

function twoSidedZ(z: number): number {
  return Number.isFinite(z) ? Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) : 0;
}

export interface TestResult {
  /** Difference B − A. */
  diff: number;
  /** 95% interval of the difference. */
  ci: [number, number] | null;
  p: number;
}

/**
 * Paired proportions: the exact McNemar p-value, and the Wald interval of the paired difference
 * (Agresti, Categorical Data Analysis, §10.1): d ± 1.96·sqrt((b + c) − (c − b)²/n)/n.
 */
export function pairedProportions(a: boolean[], bArr: boolean[]): TestResult & { b: number; c: number; n: number } {
  let b = 0;
  let c = 0;
  const n = a.length;
  for (let i = 0; i < n; i++) {
    if (a[i] && !bArr[i]) b++;
    else if (!a[i] && bArr[i]) c++;
  }
  const diff = n ? (c - b) / n : 0;
  const se = n ? Math.sqrt(Math.max(0, b + c - ((c - b) * (c - b)) / n)) / n : 0;
  return { diff, ci: n ? [diff - 1.96 * se, diff + 1.96 * se] : null, p: mcnemarExact(b, c), b, c, n };
}

/**
 * Paired bootstrap of the difference of means of a per-image measure: `resamples` resamples of
 * the n pairs (seeded), a percentile 95% interval, and a two-sided p-value from the bootstrap
 * standard error (z = d̄ / se*). A p-value counted from the resamples could not go below
 * 1/(B + 1), which Holm's correction over dozens of metrics would push above α. All-equal pairs
 * give p = 1 (no change) or 0 (the same nonzero change on every image).
 */
export function pairedBootstrap(a: number[], b: number[], opts: { seed?: number; resamples?: number } = {}): TestResult {
  const n = a.length;
  const d = a.map((x, i) => b[i] - x);
  const diff = n ? d.reduce((s, x) => s + x, 0) / n : 0;
  if (n === 0 || d.every((x) => x === d[0])) return { diff, ci: n ? [diff, diff] : null, p: n && d[0] !== 0 ? 0 : 1 };
  const B = opts.resamples ?? 2000;
  const rng = mulberry32(opts.seed ?? 0);
  const stats = new Float64Array(B);
  let sum = 0;
  let sum2 = 0;
  for (let r = 0; r < B; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += d[Math.floor(rng() * n)];
    const m = s / n;
    stats[r] = m;
    sum += m;
    sum2 += m * m;
  }
  stats.sort();
  const q = (f: number) => stats[Math.min(B - 1, Math.max(0, Math.floor(f * (B - 1))))];
  const se = Math.sqrt(Math.max(0, sum2 / B - (sum / B) ** 2) * (B / (B - 1)));
  return { diff, ci: [q(0.025), q(0.975)], p: se > 0 ? twoSidedZ(diff / se) : 1 };
}

/** Two-proportion z-test (pooled), for proportions over different images; Wald interval. */
export function twoProportionZ(x1: number, n1: number, x2: number, n2: number): TestResult {
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const diff = p2 - p1;
  const pool = (x1 + x2) / (n1 + n2);
  const se0 = Math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2));
  const se = Math.sqrt((p1 * (1 - p1)) / n1 + (p2 * (1 - p2)) / n2);
  return { diff, ci: [diff - 1.96 * se, diff + 1.96 * se], p: se0 > 0 ? twoSidedZ(diff / se0) : diff === 0 ? 1 : 0 };
}

/** Welch's z-test for two means over different images (large samples), from mean, sd and n. */
export function unpairedMeans(m1: number, s1: number, n1: number, m2: number, s2: number, n2: number): TestResult {
  const diff = m2 - m1;
  const se = Math.sqrt((s1 * s1) / n1 + (s2 * s2) / n2);
  return { diff, ci: [diff - 1.96 * se, diff + 1.96 * se], p: se > 0 ? twoSidedZ(diff / se) : diff === 0 ? 1 : 0 };
}

/** Hanley & McNeil (1982) standard error of an AUROC from n positives and n negatives. */
export function aurocSe(auc: number, nPos: number, nNeg: number): number {
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  return Math.sqrt(Math.max(0, (auc * (1 - auc) + (nPos - 1) * (q1 - auc * auc) + (nNeg - 1) * (q2 - auc * auc)) / (nPos * nNeg)));
}

/** Two independent AUROCs (the OOD sets of two audits): z = ΔAUC / sqrt(se₁² + se₂²). */
export function aurocZ(a1: number, pos1: number, neg1: number, a2: number, pos2: number, neg2: number): TestResult {
  const diff = a2 - a1;
  const se = Math.sqrt(aurocSe(a1, pos1, neg1) ** 2 + aurocSe(a2, pos2, neg2) ** 2);
  return { diff, ci: [diff - 1.96 * se, diff + 1.96 * se], p: se > 0 ? twoSidedZ(diff / se) : diff === 0 ? 1 : 0 };
}

/** Holm–Bonferroni adjusted p-values (same order as the input; monotone, capped at 1). */
export function holm(ps: number[]): number[] {
  const order = ps.map((p, i) => [p, i] as const).sort((x, y) => x[0] - y[0]);
  const out = new Array<number>(ps.length);
  let running = 0;
  order.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (ps.length - rank) * p));
    out[i] = running;
  });
  return out;
}
