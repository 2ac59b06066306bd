/**
 * `mse compare a.csv b.csv --html page.html`: the comparison as the same kind of page as the
 * report (html.ts): the per-metric deltas as a sortable table with their significance, a figure
 * of each cell's attacker accuracy in run A against run B (the diagonal is "no change"), the cells
 * found in one run only, and both runs' provenance.
 */
import type { Comparison } from '../runner/compare.js';
import { compareSpec, type ComparePoint } from './figures.js';
import type { Report, Section } from './report.js';

/** A compared value as the terminal table and the page print it. */
export const formatValue = (v: number) =>
  !Number.isFinite(v) ? '–' : Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
const f = formatValue;

/** What a delta's significance says, as the terminal table says it. */
export function significance(d: Comparison['cells'][number]['deltas'][number], tolerance: number): string {
  // identical differences in every seed leave no variance: t is then as large as float noise makes it
  const t = Math.abs(d.t) > 1000 ? `|t| > 1000` : `t = ${d.t.toFixed(2)}`;
  if (d.n >= 2) return d.significant ? `${t}, p < 0.05` : `${t}, n.s.`;
  return d.beyondTolerance ? `|Δ| > ${tolerance}` : 'within tolerance';
}

export function compareReport(c: Comparison, a: string, b: string, tolerance: number): Report {
  const changed = c.cells.flatMap((cell) => cell.deltas.filter((d) => d.delta !== 0).map((d) => ({ cell, d })));
  const unchanged = c.cells.filter((cell) => cell.deltas.every((d) => d.delta === 0)).length;
  const sections: Section[] = [
    {
      id: 'deltas',
      title: 'Metrics that moved',
      group: 'deltas',
      text: [
        `${c.cells.length} cells in both runs, ${unchanged} identical (not listed). Δ is B − A; with ≥ 2 shared seeds a paired t-test (95 %) says whether it is significant, with one seed a change beyond the tolerance (${tolerance}) counts.`,
      ],
      table: {
        header: ['cell', 'metric', 'A', 'B', 'Δ', 'seeds', 'significance'],
        rows: changed.map(({ cell, d }) => [
          cell.key,
          d.metric,
          f(d.a),
          f(d.b),
          `${d.delta > 0 ? '+' : ''}${f(d.delta)}`,
          String(d.n),
          significance(d, tolerance),
        ]),
      },
      figures: [],
    },
  ];
  const points: ComparePoint[] = c.cells.flatMap((cell) =>
    cell.deltas
      .filter((d) => d.metric === 'surrogate_acc' && Number.isFinite(d.a) && Number.isFinite(d.b))
      .map((d) => ({
        cell: cell.key,
        a: d.a,
        b: d.b,
        verdict:
          d.n >= 2
            ? d.significant
              ? 'significant'
              : 'not significant'
            : d.beyondTolerance
              ? 'beyond tolerance'
              : 'within tolerance',
        tip: {
          Δ: `${d.delta > 0 ? '+' : ''}${f(d.delta)}`,
          seeds: String(d.n),
          significance: significance(d, tolerance),
        },
      })),
  );
  if (points.length)
    sections[0].figures.push({
      name: 'compare-attacker-acc',
      spec: compareSpec('attacker accuracy: run B against run A, per cell', points),
      caption:
        'Each point is a cell present in both runs; on the diagonal nothing changed, above it the attacker did better in B.',
    });
  if (c.onlyA.length || c.onlyB.length)
    sections.push({
      id: 'only',
      title: 'Cells in one run only',
      group: 'only',
      text: ['A missing cell is a regression for `--fail-on-regression`.'],
      table: {
        header: ['run', 'cell'],
        rows: [...c.onlyA.map((k) => [`A (${a})`, k]), ...c.onlyB.map((k) => [`B (${b})`, k])],
      },
      figures: [],
    });
  return { intro: `Run A: ${a}. Run B: ${b}.`, sections };
}
