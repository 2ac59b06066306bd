/**
 * Query budgets: absolute counts with k/m suffixes ("500", "5k", "1.5m"), or multiples of the
 * victim's unknown parameters ("1x", "0.5x"), as Tramèr et al. 2016 state them:
 * unknowns = (c − [c = 2])·(d + 1) for logistic models, and the parameter count of other networks.
 */
import { UsageError } from '../errors.js';
import { Rng } from '../compute/rng.js';
import type { Dataset } from '../data/types.js';
import { createNet, MODELS, type ModelSpec } from '../models/zoo.js';

export type BudgetSpec = { absolute: number } | { multiple: number };

export function parseBudget(text: string): BudgetSpec {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMxX]?)\s*$/.exec(text);
  if (!m)
    throw new UsageError(
      `budget must be a count like 500, 5k, 1.5m or a multiple of the victim's parameters like 1x, got '${text}'`,
    );
  const v = Number(m[1]);
  const unit = m[2].toLowerCase();
  if (unit === 'x') {
    if (!(v > 0)) throw new UsageError(`budget multiple must be positive, got '${text}'`);
    return { multiple: v };
  }
  const n = Math.round(v * (unit === 'k' ? 1e3 : unit === 'm' ? 1e6 : 1));
  if (n < 1) throw new UsageError(`budget must be at least 1 query, got '${text}'`);
  return { absolute: n };
}

export function unknowns(ds: Pick<Dataset, 'name' | 'inputShape' | 'numClasses' | 'kind'>, victim: ModelSpec): number {
  const d = ds.inputShape.reduce((a, b) => a * b, 1);
  const k = ds.numClasses;
  if (victim.kind === 'logistic' || victim.kind === 'softmax' || victim.kind === 'ovr')
    return (k - (k === 2 ? 1 : 0)) * (d + 1);
  if (victim.kind === 'tree')
    throw new UsageError('a tree has no fixed parameter count: give its budget as a number of queries');
  if (MODELS.get(victim.kind).load)
    throw new UsageError(
      `a ${victim.kind} victim is loaded from its files: give its budget as a number of queries (500, 5k), not a multiple`,
    );
  const net = createNet(victim, ds, new Rng(0));
  const n = net.numParams();
  net.dispose();
  return n;
}

export function resolveBudget(
  b: BudgetSpec,
  ds: Pick<Dataset, 'name' | 'inputShape' | 'numClasses' | 'kind'>,
  victim: ModelSpec,
): number {
  return 'absolute' in b ? b.absolute : Math.max(1, Math.round(b.multiple * unknowns(ds, victim)));
}
