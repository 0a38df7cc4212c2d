/**
 * Small statistics for benchmarks: medians, nearest-rank percentiles and a
 * summary with spread, for samples taken on a shared, noisy machine (report
 * medians and spread, never a single run; DESIGN.md §7).
 *
 * Conventions:
 * - median: the middle sample, or the mean of the two middle samples;
 * - percentile(p): nearest rank (the smallest sample with at least p % of
 *   the samples at or below it), so p99 of 200 samples is the 2nd largest;
 * - spread: min–max and the inter-quartile range relative to the median.
 * Empty input gives NaN everywhere (never throws), so a failed section can
 * still be tabulated.
 */

export interface Summary {
  n: number;
  min: number;
  max: number;
  mean: number;
  median: number;
  p25: number;
  p75: number;
  p90: number;
  p95: number;
  p99: number;
  /** Sample standard deviation (n − 1). */
  stdev: number;
  /** (p75 − p25) / median: the relative spread of the middle half. */
  relIqr: number;
}

function sorted(xs: readonly number[]): number[] {
  return xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
}

export function median(xs: readonly number[]): number {
  const s = sorted(xs);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(xs: readonly number[], p: number): number {
  const s = sorted(xs);
  if (s.length === 0) return NaN;
  if (p <= 0) return s[0]!;
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length, Math.max(1, rank)) - 1]!;
}

export function p99(xs: readonly number[]): number {
  return percentile(xs, 99);
}

export function mean(xs: readonly number[]): number {
  const s = sorted(xs);
  return s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
}

export function summarize(xs: readonly number[]): Summary {
  const s = sorted(xs);
  const n = s.length;
  const m = mean(s);
  const med = median(s);
  const p25 = percentile(s, 25);
  const p75 = percentile(s, 75);
  const stdev = n > 1 ? Math.sqrt(s.reduce((a, x) => a + (x - m) ** 2, 0) / (n - 1)) : 0;
  return {
    n,
    min: n ? s[0]! : NaN,
    max: n ? s[n - 1]! : NaN,
    mean: m,
    median: med,
    p25,
    p75,
    p90: percentile(s, 90),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    stdev: n ? stdev : NaN,
    relIqr: n && med !== 0 ? (p75 - p25) / med : NaN,
  };
}

/** Round every number of a summary (JSON results stay readable). */
export function roundSummary(s: Summary, digits = 3): Summary {
  const f = 10 ** digits;
  const r = (x: number): number => (Number.isFinite(x) ? Math.round(x * f) / f : x);
  return {
    n: s.n, min: r(s.min), max: r(s.max), mean: r(s.mean), median: r(s.median), p25: r(s.p25), p75: r(s.p75),
    p90: r(s.p90), p95: r(s.p95), p99: r(s.p99), stdev: r(s.stdev), relIqr: r(s.relIqr),
  };
}

/** a / b, NaN when either is not a positive finite number. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN;
}

/** A number with a sensible number of digits for a table (3 significant digits, no exponent). */
export function fmt(x: number, unit = ''): string {
  if (!Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return `${x.toFixed(digits)}${unit}`;
}

/** "median (min–max)" of a summary. */
export function fmtMedianRange(s: Summary, unit = ''): string {
  if (!s.n) return 'n/a';
  return s.n === 1 ? `${fmt(s.median, unit)} (1 run)` : `${fmt(s.median, unit)} (${fmt(s.min)}–${fmt(s.max)})`;
}

/** "12.3×" */
export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}×` : 'n/a';
}
