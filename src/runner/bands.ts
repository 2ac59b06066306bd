/**
 * Bands from measured seeds, never by hand (issue 19): a figure's band is
 * [min − 2·sd, max + 2·sd] over the seeds' values (sd the sample standard deviation), clamped to
 * the metric's range and widened outward to three decimals. `mse reproduce` checks the mean over
 * seeds against it, so a band this wide fails only when a run moves well outside what the seeds
 * showed. `scripts/measure-bands.mjs` writes them into a spec from a run's results.csv.
 */
import type { PaperCell } from './reproduce.js';

/** How many sample standard deviations a band reaches past the extreme seeds. */
export const BAND_SDS = 2;

/** The range a metric's values can take (accuracies and rates in [0, 1], a slowdown ≥ 1, others ≥ 0). */
export function metricRange(metric: string): [number, number] {
  if (metric.endsWith('_acc') || metric.includes('agreement') || metric === 'benign_fpr') return [0, 1];
  if (metric === 'honest_slowdown') return [1, Infinity];
  if (metric === 'perturbation_l1') return [0, 2];
  return [0, Infinity];
}

/** [min − k·sd, max + k·sd] of the values, clamped to `range`, rounded outward to `digits` decimals. */
export function measuredBand(
  values: number[],
  range: [number, number] = [-Infinity, Infinity],
  k = BAND_SDS,
  digits = 3,
): [number, number] {
  if (!values.length || values.some((v) => !Number.isFinite(v))) throw new Error('a band needs finite values');
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const f = 10 ** digits;
  // a hair of slack before rounding so a value already on the grid is not pushed a step out by float error
  const lo = Math.floor((Math.min(...values) - k * sd) * f + 1e-9) / f;
  const hi = Math.ceil((Math.max(...values) + k * sd) * f - 1e-9) / f;
  return [Math.max(range[0], lo), Math.min(range[1], hi)];
}

export interface MeasuredFigure {
  cell: PaperCell;
  metric: string;
  /** per seed, in the scale's seed order */
  values: number[];
  mean: number;
  band: [number, number];
}

/**
 * The band of every figure a spec's cells check (`expect`'s metrics, and `extra` ones where every
 * seed measured them), from the rows of a run: `planned` says which row id each (cell, seed) is.
 * A figure some seed lacks (a missing row, an empty value) is left out and named in `missing`.
 */
export function measureBands(
  planned: { cell: PaperCell; seed: number; id: string }[],
  rows: Map<string, Record<string, string>>,
  extra: string[] = [],
): { figures: MeasuredFigure[]; missing: string[] } {
  const figures: MeasuredFigure[] = [];
  const missing: string[] = [];
  for (const cell of [...new Set(planned.map((p) => p.cell))]) {
    const mine = planned.filter((p) => p.cell === cell);
    for (const metric of [...new Set([...Object.keys(cell.expect), ...extra])]) {
      const raw = mine.map((p) => rows.get(p.id)?.[metric]);
      const values = raw.map((v) => (v === undefined || v === '' ? NaN : Number(v)));
      if (values.some((v) => !Number.isFinite(v))) {
        // an extra metric the cell does not report (no surrogate for a refused attack) is simply not banded
        if (metric in cell.expect) missing.push(`${cell.id ?? cell.attack} ${metric}`);
        continue;
      }
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      figures.push({ cell, metric, values, mean, band: measuredBand(values, metricRange(metric)) });
    }
  }
  return { figures, missing };
}
