/**
 * mse as a library: the same pieces the CLI composes, and the contract plugins are written against.
 *
 *   // a plugin (my-defense.mjs), loaded with `mse --plugin ./my-defense.mjs …`
 *   import { defineDefense } from 'mse';
 *   export default defineDefense({ name: 'my-defense', describe: '…', params: {…}, create: (p) => ({ output: … }) });
 *
 *   // a cell from code: plan it (defaults filled, data checked, ids computed), then run it
 *   await initBackend();
 *   const plan = await makePlan([{ dataset: 'adult', victim: 'logistic', defenses: [], attack: 'eq-lr', budgets: ['1x'], seed: 1 }], { data: {} });
 *   const { rows } = await runCell(plan.cells[0], { runId: 'lib' });
 */
export * from './compute/index.js';
export * from './data/index.js';
export * from './models/index.js';
export * from './api/index.js';
export { DEFENSES, parseDefense, parseDefenseSpec, prepareDefense } from './defenses/registry.js';
export { ATTACKS, parseAttack, parseAttackSpec } from './attacks/registry.js';
export { defineAttack, notApplicable } from './attacks/define.js';
export type { AttackDefinition, AttackRequirements, AttackUnit } from './attacks/define.js';
export { defineDefense } from './defenses/define.js';
export type { DefenseDefinition, DefenseStages, DefenseUnit, Prepared } from './defenses/define.js';
export { defineModel } from './models/define.js';
export { defineDataset } from './data/define.js';
export type { DatasetDefinition, DatasetData, DatasetUnit } from './data/define.js';
export type { ModelDefinition, ModelUnit } from './models/define.js';
export { MODELS } from './models/zoo.js';
export { Registry } from './units/registry.js';
export type { Unit, UnitSource } from './units/registry.js';
export { loadPlugin, loadPlugins, loadedPlugins } from './units/plugins.js';
export type { PluginRef } from './units/plugins.js';
export { stream } from './compute/streams.js';
export { AttackNotApplicable } from './attacks/types.js';
export type { Attack, AttackResult, AttackerKnowledge } from './attacks/types.js';
export { fidelity, fidelityOf, testAccuracy, uniformInputs } from './metrics/agreement.js';
export { paramError } from './metrics/param-error.js';
export { runCell } from './runner/run-cell.js';
export type { CellOutput, RunContext } from './runner/run-cell.js';
export { makePlan, planSweep, cellSpec, cellLabel, withBudgets } from './runner/plan.js';
export type { Plan, PlanCell, CellRequest, UnitRef } from './runner/plan.js';
export { ResultsCsv, readResults } from './runner/csv-writer.js';
export { RESULT_COLUMNS, TIMING_COLUMNS, cellId, makeRow } from './runner/result-row.js';
export type { ResultRow, CellSpec } from './runner/result-row.js';
export { parseBudget, resolveBudget } from './runner/budget.js';
export { reproduce, loadPaper, listPapers } from './runner/reproduce.js';
export { MseError, UsageError, DataError, BudgetExhaustedError, DetectedError, QueryRefusedError } from './errors.js';
export { Rng } from './compute/rng.js';
export { parseSpec, resolveParams, formatParams } from './params.js';
export type { Schema, Params, ParamDecl, ParamValues } from './params.js';
