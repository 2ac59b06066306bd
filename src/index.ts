/**
 * mse as a library: the same pieces the CLI composes. Start with `initBackend()`, load a dataset,
 * get a victim, wrap it in a `LocalPredictionApi` with defenses, run an attack, measure.
 *
 *   const b = await initBackend();
 *   const ds = await loadDataset('adult');
 *   const { row } = await runCell({ dataset: 'adult', victim: 'logistic', defenses: [], attack: 'eq-lr', budget: 105, seed: 1, runId: 'lib' });
 */
export * from './compute/index.js';
export * from './data/index.js';
export * from './models/index.js';
export * from './api/index.js';
export { DEFENSES, parseDefense } from './defenses/registry.js';
export { ATTACKS, parseAttack } from './attacks/registry.js';
export { AttackNotApplicable } from './attacks/types.js';
export type { Attack, AttackResult, AttackerKnowledge } from './attacks/types.js';
export { fidelity, fidelityOf, testAccuracy, uniformInputs } from './metrics/agreement.js';
export { paramError } from './metrics/param-error.js';
export { runCell, cellSpecOf } from './bench/cell.js';
export type { CellInput, CellOutput } from './bench/cell.js';
export { ResultsCsv, readResults } from './bench/csv-writer.js';
export { RESULT_COLUMNS, TIMING_COLUMNS, cellId, makeRow } from './bench/result-row.js';
export type { ResultRow, CellSpec } from './bench/result-row.js';
export { parseBudget, resolveBudget } from './bench/budget.js';
export { reproduce, loadPaper, listPapers } from './bench/reproduce.js';
export { MseError, UsageError, DataError, BudgetExhaustedError } from './errors.js';
export { Rng } from './compute/rng.js';
export { parseSpec, resolveParams, formatParams } from './params.js';
