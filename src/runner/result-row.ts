/**
 * The result row: one per bench cell, keyed by a hash of the cell's spec. Metric columns are
 * deterministic for a seed; timing columns are not (`compare` ignores them by default).
 */
import { createHash } from 'node:crypto';

export const RESULT_COLUMNS = [
  'cell_id',
  'run_id',
  'mse_version',
  'backend',
  'dataset',
  'dataset_variant',
  'victim',
  'victim_variant',
  'victim_acc',
  'defense',
  'defense_params',
  'attack',
  'attack_params',
  'budget',
  'seed',
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
  'honest_slowdown',
  'detected_at',
  'benign_fpr',
  'watermark_acc',
  'ownership_verified',
  'attacker_cpu_s',
  'pow_s',
  // the attacker's PoW per query over the honest user's, over the same number of queries (Dziedzic 2022)
  'pow_ratio',
  'wall_s',
  // where wall_s went, phase by phase (phases.ts)
  'phase_s',
  'status',
] as const;

export type ResultColumn = (typeof RESULT_COLUMNS)[number];
export type ResultRow = Record<ResultColumn, string | number>;

/** Columns that vary run to run for the same seed. */
export const TIMING_COLUMNS: readonly ResultColumn[] = [
  'attacker_cpu_s',
  'pow_s',
  // a price in seconds: puzzle bits are rounded from the measured hash rate and victim latency
  'pow_ratio',
  'honest_slowdown',
  'wall_s',
  'phase_s',
  'run_id',
  'backend',
  'mse_version',
];

export interface CellSpec {
  dataset: string;
  victim: string;
  defense: string;
  defense_params: string;
  attack: string;
  attack_params: string;
  budget: number;
  seed: number;
  /** content hashes of the plugins whose units the cell uses, sorted, joined by '+'; absent for built-ins */
  plugins?: string;
}

/**
 * Stable id of a cell: the same spec always hashes to the same id, whatever the run. A cell that
 * uses a plugin's unit hashes the plugin's content too (a changed plugin is a different cell); a cell
 * of built-ins alone keeps the id it always had.
 */
export function cellId(c: CellSpec): string {
  const fields: unknown[] = [
    c.dataset,
    c.victim,
    c.defense,
    c.defense_params,
    c.attack,
    c.attack_params,
    c.budget,
    c.seed,
  ];
  if (c.plugins) fields.push(c.plugins);
  const canon = JSON.stringify(fields);
  return createHash('sha256').update(canon).digest('hex').slice(0, 16);
}

/** Fill a row from partial values; numbers are written with enough digits to round-trip. */
export function makeRow(values: Partial<Record<ResultColumn, string | number | undefined>>): ResultRow {
  const row = {} as ResultRow;
  for (const c of RESULT_COLUMNS) {
    const v = values[c];
    row[c] = v === undefined || (typeof v === 'number' && Number.isNaN(v)) ? '' : v;
  }
  return row;
}
