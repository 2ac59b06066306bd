/**
 * The attack contract. An attack sees only the PredictionApi and what the attacker is assumed to
 * know — never the victim or the defense. It returns its surrogate (or stolen parameters as a model)
 * and says whether it ran out of budget.
 */
import type { PredictionApi } from '../api/types.js';
import type { Rng } from '../compute/rng.js';
import type { Split } from '../data/types.js';
import type { Model, ModelKind } from '../models/model.js';
import type { ParamValues } from '../params.js';
import { MseError } from '../errors.js';

export interface AttackerKnowledge {
  inputShape: number[];
  numClasses: number;
  /** the feature box uniform queries are drawn from */
  domain: { min: number; max: number };
  /** the model family, for attacks that assume one (equation solving) */
  family?: { kind: ModelKind; hidden?: number[] };
  /** natural out-of-distribution images (Knockoff's transfer set) */
  pool?: Split;
  /** a few in-distribution examples (JBDA's seed set) */
  seed?: Split;
}

export interface AttackResult {
  surrogate: Model;
  /** queries this attack spent (the API ledger is the authority) */
  queries: number;
  /** true when the budget ran out before the attack finished its plan */
  budgetExhausted: boolean;
  notes: string[];
}

export interface Attack {
  readonly name: string;
  readonly params: ParamValues;
  run(api: PredictionApi, know: AttackerKnowledge, rng: Rng): Promise<AttackResult>;
}

/** The attack cannot run in this setting (wrong victim family, labels-only API, …). */
export class AttackNotApplicable extends MseError {
  constructor(attack: string, why: string) {
    super('attack-not-applicable', `${attack} cannot run here: ${why}`);
  }
}

export function remaining(api: PredictionApi): number {
  return api.ledger.budget - api.ledger.queries;
}
