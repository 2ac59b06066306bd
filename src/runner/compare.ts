/**
 * Compare two result CSVs: rows are joined on their cell (everything but the seed), metrics are
 * compared as mean(b) − mean(a), and with ≥ 2 seeds present in both files the difference is tested
 * with a paired t-test over the shared seeds (95%). Timing columns are left out unless asked.
 */
import { RESULT_COLUMNS, TIMING_COLUMNS } from './result-row.js';
import { GROUP_KEYS, t95 } from './summary.js';

export const METRIC_COLUMNS = [
  'victim_acc',
  'queries',
  'surrogate_acc',
  'agreement_test',
  'agreement_unif',
  'param_error',
  'kl_test',
  'l1_test',
  'transfer_fgsm_eps01',
  'transfer_fgsm_eps03',
  'transfer_pgd_eps01',
  'transfer_pgd_eps03',
  'defended_acc',
  'defended_agreement',
  'perturbation_l1',
  'perturbation_kl',
] as const;
const TIMING_METRICS = TIMING_COLUMNS.filter((c) =>
  ['attacker_cpu_s', 'pow_s', 'pow_ratio', 'honest_slowdown', 'wall_s'].includes(c),
);

type Row = Record<string, string>;

export interface MetricDelta {
  metric: string;
  a: number;
  b: number;
  delta: number;
  /** shared seeds the test used */
  n: number;
  /** paired t statistic (NaN with < 2 shared seeds or no variation) */
  t: number;
  significant: boolean;
  /** |Δ| beyond the tolerance (used when seeds cannot decide) */
  beyondTolerance: boolean;
}

export interface CellComparison {
  key: string;
  deltas: MetricDelta[];
}

export interface Comparison {
  cells: CellComparison[];
  onlyA: string[];
  onlyB: string[];
}

function keyOf(r: Row): string {
  return GROUP_KEYS.map((k) => `${k}=${r[k] ?? ''}`).join(' ');
}

function label(r: Row): string {
  return `${r.dataset}/${r.victim} ${r.defense}${r.defense_params ? `:${r.defense_params}` : ''} ${r.attack}${r.attack_params ? `:${r.attack_params}` : ''} @${r.budget}`;
}

export function compareResults(a: Row[], b: Row[], opts: { timing?: boolean; tolerance?: number } = {}): Comparison {
  const tol = opts.tolerance ?? 0.01;
  const metrics = [...METRIC_COLUMNS, ...(opts.timing ? TIMING_METRICS : [])].filter((m) =>
    (RESULT_COLUMNS as readonly string[]).includes(m),
  );
  const group = (rows: Row[]) => {
    const m = new Map<string, { label: string; bySeed: Map<string, Row> }>();
    for (const r of rows) {
      const k = keyOf(r);
      const g = m.get(k) ?? { label: label(r), bySeed: new Map<string, Row>() };
      g.bySeed.set(r.seed, r);
      m.set(k, g);
    }
    return m;
  };
  const ga = group(a);
  const gb = group(b);
  const cells: CellComparison[] = [];
  for (const [k, A] of ga) {
    const B = gb.get(k);
    if (!B) continue;
    const deltas: MetricDelta[] = [];
    for (const metric of metrics) {
      const num = (r: Row | undefined) => (r && r[metric] !== '' && r[metric] !== undefined ? Number(r[metric]) : NaN);
      const va = [...A.bySeed.values()].map(num).filter(Number.isFinite);
      const vb = [...B.bySeed.values()].map(num).filter(Number.isFinite);
      if (!va.length || !vb.length) continue;
      const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
      const diffs = [...A.bySeed.keys()]
        .filter((s) => B.bySeed.has(s))
        .map((s) => num(B.bySeed.get(s)) - num(A.bySeed.get(s)))
        .filter(Number.isFinite);
      const n = diffs.length;
      let t = NaN;
      if (n >= 2) {
        const md = mean(diffs);
        const sd = Math.sqrt(diffs.reduce((s, x) => s + (x - md) ** 2, 0) / (n - 1));
        t = sd > 0 ? md / (sd / Math.sqrt(n)) : md === 0 ? 0 : Infinity * Math.sign(md);
      }
      const delta = mean(vb) - mean(va);
      const scale =
        metric === 'queries' || metric.endsWith('_s') || metric === 'honest_slowdown' || metric === 'kl_test'
          ? Math.max(1, Math.abs(mean(va)))
          : 1;
      deltas.push({
        metric,
        a: mean(va),
        b: mean(vb),
        delta,
        n,
        t,
        significant: n >= 2 && Math.abs(t) > t95(n - 1),
        beyondTolerance: Math.abs(delta) > tol * scale,
      });
    }
    cells.push({ key: A.label, deltas });
  }
  return {
    cells,
    onlyA: [...ga].filter(([k]) => !gb.has(k)).map(([, g]) => g.label),
    onlyB: [...gb].filter(([k]) => !ga.has(k)).map(([, g]) => g.label),
  };
}

/** A change that should fail CI: significant where seeds allow a test, else beyond the tolerance; or a cell that disappeared. */
export function regressions(c: Comparison): string[] {
  const out: string[] = c.onlyA.map((k) => `${k}: missing from the new results`);
  for (const cell of c.cells) {
    for (const d of cell.deltas) {
      const moved = d.n >= 2 ? d.significant && d.beyondTolerance : d.beyondTolerance;
      if (moved) out.push(`${cell.key}: ${d.metric} ${d.a.toPrecision(4)} → ${d.b.toPrecision(4)}`);
    }
  }
  return out;
}
