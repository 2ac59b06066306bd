/**
 * Summaries over seeds: rows that differ only in seed form a group; each metric is reported as
 * mean ± the half-width of a 95% confidence interval (Student's t, n − 1 degrees of freedom).
 */

/** Two-sided 95% Student-t critical values for 1…30 degrees of freedom; 1.96 beyond. */
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function t95(df: number): number {
  return df < 1 ? NaN : df <= 30 ? T95[df - 1] : 1.96;
}

export interface Stat {
  n: number;
  mean: number;
  /** half-width of the 95% CI; NaN with fewer than 2 values */
  ci: number;
  sd: number;
}

export function stat(values: number[]): Stat {
  const v = values.filter((x) => Number.isFinite(x));
  const n = v.length;
  if (!n) return { n: 0, mean: NaN, ci: NaN, sd: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  return { n, mean, sd, ci: n > 1 ? (t95(n - 1) * sd) / Math.sqrt(n) : NaN };
}

export const GROUP_KEYS = [
  'dataset',
  // other data or another model file under the same name is another experiment, not another seed
  'dataset_variant',
  'victim',
  'victim_variant',
  'defense',
  'defense_params',
  'attack',
  'attack_params',
  'budget',
] as const;

export interface Group {
  key: Record<(typeof GROUP_KEYS)[number], string>;
  seeds: number;
  metrics: Record<string, Stat>;
  statuses: string[];
}

/** Group CSV rows (as strings) over seeds. */
export function summarise(rows: Array<Record<string, string | number>>, metrics: string[]): Group[] {
  const groups = new Map<string, Array<Record<string, string | number>>>();
  for (const r of rows) {
    const k = JSON.stringify(GROUP_KEYS.map((g) => String(r[g] ?? '')));
    const list = groups.get(k) ?? [];
    list.push(r);
    groups.set(k, list);
  }
  return [...groups.values()].map((list) => ({
    key: Object.fromEntries(GROUP_KEYS.map((g) => [g, String(list[0][g] ?? '')])) as Group['key'],
    seeds: list.length,
    metrics: Object.fromEntries(
      metrics.map((m) => [m, stat(list.map((r) => (r[m] === '' || r[m] === undefined ? NaN : Number(r[m]))))]),
    ),
    statuses: [...new Set(list.map((r) => String(r.status)))],
  }));
}

export function formatStat(s: Stat, digits = 3): string {
  if (!s.n || !Number.isFinite(s.mean)) return '–';
  const m = Math.abs(s.mean) >= 100 ? s.mean.toFixed(0) : s.mean.toFixed(digits);
  return Number.isFinite(s.ci) ? `${m} ± ${s.ci.toFixed(digits)}` : m;
}
