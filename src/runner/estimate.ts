/**
 * How long a plan will take, before anything trains (`mse bench --plan`). A cell's cost is modelled
 * as overhead + rate × work, where work is what dominates an attack's time:
 *   - an attack that trains a surrogate trains it on each budget's prefix of one query pass for its
 *     epochs, so work = epochs × Σ budgets (sample-epochs);
 *   - an attack that does not (equation solving, path-finding, exact ReLU) costs per query and
 *     runs each budget as its own pass, so work = Σ budgets.
 * The rate is calibrated from past cells of the same attack, dataset, victim and defenses (then
 * fewer of those) in result CSVs on this machine — each row records its cell's running wall time,
 * so a cell's last row holds its total — and where none exist, from bench:perf's throughput figures
 * on a 2-core machine (CNN training about 5,000 examples/s, MLP 80,000; see README Performance).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ATTACKS } from '../attacks/registry.js';
import { formatModelSpec } from '../models/zoo.js';
import { readResults } from './csv-writer.js';
import { splitTopLevel } from '../params.js';
import { isShardFile, resultsFileName } from './shard.js';
import type { PlanCell } from './plan.js';

/** What a cell's cost depends on, as rows record it. */
export interface CostKey {
  attack: string;
  dataset: string;
  /** the victim's family (cnn, mlp, …) */
  victim: string;
  /** the defense names, in order ("none" undefended) */
  defense: string;
}

export interface CostSample extends CostKey {
  work: number;
  wallS: number;
}

export interface CellEstimate {
  cell: PlanCell;
  seconds: number;
  /** how the rate was found: "12 past cells (knockoff mnist/cnn [mad])" or "bench:perf default" */
  basis: string;
}

export interface PlanEstimate {
  cells: CellEstimate[];
  /** the cells spread over the workers in the plan's order, each to the first one free */
  wallS: number;
  /** the sum over cells: what one worker would take */
  cpuS: number;
  samples: number;
}

/** Seconds a cell spends outside its attack's work: loading, the utility pass, evaluation. */
const OVERHEAD_S = 3;
/** bench:perf on 2 cores: CNN training ≈ 5k examples/s, MLP ≈ 80k; a non-training query ≈ 1 ms. */
const DEFAULT_RATE: Record<string, number> = { cnn: 1 / 5000, train: 1 / 80000, query: 1e-3 };

const epochsOf = (params: Record<string, unknown>): number | undefined =>
  typeof params.epochs === 'number' ? params.epochs : undefined;

/**
 * Work units of a cell: sample-epochs for a training attack (each budget trains on its prefix of
 * the queries), queries for one that does not (each budget is its own pass).
 */
export function cellWork(attack: string, params: Record<string, unknown>, budgets: number[]): number {
  const declared = ATTACKS.has(attack) ? ATTACKS.get(attack).params : undefined;
  const trains = declared !== undefined && 'epochs' in declared;
  const epochs = trains ? (epochsOf(params) ?? Number((declared.epochs as { default?: unknown }).default ?? 1)) : 1;
  return epochs * budgets.reduce((a, b) => a + b, 0);
}

/** "epochs=10,lr=0.001" → { epochs: 10, lr: 0.001 } (numbers where they parse). */
function parseParams(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of splitTopLevel(text, ',')) {
    const i = kv.indexOf('=');
    if (i < 0) continue;
    const v = kv.slice(i + 1);
    out[kv.slice(0, i)] = v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/**
 * Past cells from result CSVs: rows grouped by run and cell (everything but the budget), the wall
 * time of the cell's last row. Unreadable or foreign files are skipped: history only informs.
 */
export function costSamples(files: string[]): CostSample[] {
  const out: CostSample[] = [];
  for (const file of files) {
    let rows: Array<Record<string, string>>;
    try {
      rows = readResults(file);
    } catch {
      continue;
    }
    const cells = new Map<string, Array<Record<string, string>>>();
    for (const r of rows) {
      if (!r.wall_s || !r.status?.startsWith('ok')) continue;
      const k = JSON.stringify([
        r.run_id,
        r.dataset,
        r.victim,
        r.defense,
        r.defense_params,
        r.attack,
        r.attack_params,
        r.seed,
      ]);
      cells.set(k, [...(cells.get(k) ?? []), r]);
    }
    for (const rs of cells.values()) {
      const wallS = Math.max(...rs.map((r) => Number(r.wall_s)));
      const budgets = rs.map((r) => Number(r.budget)).filter(Number.isFinite);
      const work = cellWork(rs[0].attack, parseParams(rs[0].attack_params), budgets);
      if (!(wallS > 0) || !(work > 0)) continue;
      out.push({
        attack: rs[0].attack,
        dataset: rs[0].dataset,
        victim: rs[0].victim.split(':')[0],
        defense: rs[0].defense,
        work,
        wallS,
      });
    }
  }
  return out;
}

/** Result CSVs under a results root (one level of run directories, shards included), newest first, at most `limit`. */
export function historyFiles(root: string, limit = 200): string[] {
  if (!existsSync(root)) return [];
  const files: Array<{ file: string; t: number }> = [];
  // a results root holds run directories; a crowded one (an --out under /tmp) is sampled, not walked
  for (const dir of readdirSync(root).slice(0, 2000)) {
    const d = path.join(root, dir);
    let entries: string[];
    try {
      if (!statSync(d).isDirectory()) continue;
      entries = readdirSync(d);
    } catch {
      continue;
    }
    for (const f of entries)
      if (f === resultsFileName() || isShardFile(f)) {
        const file = path.join(d, f);
        try {
          const st = statSync(file);
          if (st.isFile() && st.size < 64 * 1024 * 1024) files.push({ file, t: st.mtimeMs });
        } catch {
          // a dangling link or an unreadable run: history only informs
        }
      }
  }
  return files
    .sort((a, b) => b.t - a.t)
    .slice(0, limit)
    .map((f) => f.file);
}

/**
 * Past cells for the cost model: the run's own rows (`file`), every run beside `out` and under
 * ./results.
 */
export function pastCells(out: string | undefined, file: string | undefined): CostSample[] {
  const roots = [...new Set([...(out ? [path.dirname(path.resolve(out))] : []), path.resolve('results')])];
  return costSamples([
    ...new Set([...(file && existsSync(file) ? [path.resolve(file)] : []), ...roots.flatMap((r) => historyFiles(r))]),
  ]);
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The key a plan cell's cost is looked up by. */
export function costKey(c: PlanCell): CostKey {
  return {
    attack: c.attack.name,
    dataset: c.dataset,
    victim: formatModelSpec(c.victim).split(':')[0],
    defense: c.defenses.map((d) => d.name).join('+') || 'none',
  };
}

/** Estimate each cell (only the budgets it still has to run) and the plan's wall time over `jobs` workers. */
export function estimatePlan(cells: PlanCell[], samples: CostSample[], jobs: number): PlanEstimate {
  const rate = (k: CostKey, trains: boolean): { rate: number; basis: string } => {
    // the most specific match with history wins: same defenses, then any defense, then the attack anywhere
    const tiers: Array<[string, (s: CostSample) => boolean]> = [
      [
        `${k.attack} ${k.dataset}/${k.victim} [${k.defense}]`,
        (s) => s.attack === k.attack && s.dataset === k.dataset && s.victim === k.victim && s.defense === k.defense,
      ],
      [
        `${k.attack} ${k.dataset}/${k.victim}`,
        (s) => s.attack === k.attack && s.dataset === k.dataset && s.victim === k.victim,
      ],
      [`${k.attack} ${k.victim} victims`, (s) => s.attack === k.attack && s.victim === k.victim],
    ];
    for (const [label, match] of tiers) {
      const m = samples.filter(match);
      if (m.length)
        return {
          rate: median(m.map((s) => Math.max(0, s.wallS - OVERHEAD_S) / s.work)),
          basis: `${m.length} past cell${m.length > 1 ? 's' : ''} (${label})`,
        };
    }
    return {
      rate: trains ? (k.victim === 'cnn' ? DEFAULT_RATE.cnn : DEFAULT_RATE.train) : DEFAULT_RATE.query,
      basis: 'bench:perf default (no past cell of this attack)',
    };
  };
  const out = cells.map((cell) => {
    const work = cellWork(cell.attack.name, cell.attack.params, cell.budgets);
    const declared = ATTACKS.has(cell.attack.name) ? ATTACKS.get(cell.attack.name).params : undefined;
    const r = rate(costKey(cell), declared !== undefined && 'epochs' in declared);
    return { cell, seconds: OVERHEAD_S + r.rate * work, basis: r.basis };
  });
  // in the plan's order, each cell to the worker that frees first: what the sweep's queue does
  const load = new Array<number>(Math.max(1, Math.min(jobs, out.length))).fill(0);
  for (const e of out) {
    const i = load.indexOf(Math.min(...load));
    load[i] += e.seconds;
  }
  return {
    cells: out,
    wallS: Math.max(0, ...load),
    cpuS: out.reduce((a, e) => a + e.seconds, 0),
    samples: samples.length,
  };
}

/** "1 h 05 min", "12 min 30 s", "45 s". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, '0')} min`;
}
