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
  family?: { kind: ModelKind; hidden?: number[]; activation?: 'relu' | 'tanh' };
  /**
   * natural images from another distribution (Knockoff's transfer set P_A); `y` holds the pool's own
   * labels, which the adaptive attacker uses as bandit actions (never the victim's labels)
   */
  pool?: Pool;
  /** a few in-distribution examples (JBDA's seed set); their labels are not used, the API labels them */
  seed?: Split;
}

export interface Pool extends Split {
  name: string;
  numClasses: number;
  classNames: string[];
}

export interface AttackProgress {
  phase: 'query' | 'train';
  done: number;
  total: number;
  /** e.g. "budget 5000, epoch 3/10" */
  label?: string;
}

export interface RunOptions {
  /**
   * Budgets (ascending, each ≤ the API's budget) at which to report a surrogate trained on that
   * prefix of the query log: a learning curve for the cost of one pass of queries.
   */
  checkpoints?: number[];
  onProgress?: (p: AttackProgress) => void;
}

/** A surrogate trained on the first `queries` answers of the log. */
export interface CurvePoint {
  budget: number;
  queries: number;
  surrogate: Model;
  /** the attacker's CPU seconds for this point: its share of the query phase plus this surrogate's training */
  attackerSeconds: number;
}

export interface AttackResult {
  surrogate: Model;
  /** queries this attack spent (the API ledger is the authority) */
  queries: number;
  /** true when the budget ran out before the attack finished its plan */
  budgetExhausted: boolean;
  notes: string[];
  /** when RunOptions.checkpoints was given and the attack supports it; `surrogate` is the last point's */
  curve?: CurvePoint[];
}

export interface Attack {
  readonly name: string;
  readonly params: ParamValues;
  /** true when `run` honours RunOptions.checkpoints (one query pass, a surrogate per budget) */
  readonly learningCurve?: boolean;
  run(api: PredictionApi, know: AttackerKnowledge, rng: Rng, opts?: RunOptions): Promise<AttackResult>;
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
