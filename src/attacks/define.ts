/**
 * `defineAttack`: an attack as one value — its name, its typed parameter schema, what it requires
 * of the setting, and its code. The factory's parameter type is inferred from the schema, so the
 * code reads `p.epochs` as a number without a cast. Built-in attacks and plugins are written the
 * same way; the registry is a list of them.
 *
 *     export default defineAttack({
 *       name: 'my-attack',
 *       describe: 'one line for mse list',
 *       params: { rounds: { type: 'int', min: 1, default: 5, help: 'query rounds' } },
 *       requires: { reveals: 'probs' },
 *       async run(p, api, know, rng) { … p.rounds … },
 *     });
 */
import type { PredictionApi, Reveal } from '../api/types.js';
import type { Rng } from '../compute/rng.js';
import { UsageError } from '../errors.js';
import type { ModelKind } from '../models/model.js';
import { resolveParams, typed, validateSchema, type ParamValues, type Params, type Schema } from '../params.js';
import type { Unit, UnitSource } from '../units/registry.js';
import {
  AttackNotApplicable,
  type Attack,
  type AttackerKnowledge,
  type AttackResult,
  type RunOptions,
} from './types.js';

/**
 * What an attack needs from the setting. The runner checks it once, before any query, and records
 * `not-applicable: <why>` instead of running the attack.
 */
export interface AttackRequirements {
  /** what each answer must carry: probabilities, or tree leaf identifiers; absent: labels are enough */
  reveals?: 'probs' | 'leaf';
  /**
   * the victim families it assumes (equation solving knows the family); default: every network
   * family (tree victims are extracted by path-finding)
   */
  victims?: readonly ModelKind[] | 'any';
  /** why it needs those families, for the not-applicable line (default: "it assumes a … victim") */
  victimsWhy?: string;
  /** exactly this many classes (binary logistic regression: 2) */
  classes?: number;
  /** a transfer pool of natural inputs: a dataset name, or 'auto' for the victim dataset's default pool */
  pool?: string;
  /** this many in-distribution seed examples, from the victim dataset's training split */
  seedSize?: number;
  /** the smallest finite budget it can work with (default 1) */
  minBudget?: number;
  /**
   * false: it caps its own queries (equation solving, path-finding), so an unlimited budget is fine
   * (default true: it spends the whole budget and needs it finite)
   */
  finiteBudget?: boolean;
}

export interface AttackDefinition<S extends Schema> {
  name: string;
  /** one line for `mse list`, citing the paper */
  describe: string;
  params: S;
  /** true when `run` honours RunOptions.checkpoints: one pass of queries, a surrogate per budget */
  learningCurve?: boolean;
  requires?: AttackRequirements | ((p: Params<S>) => AttackRequirements);
  /** a combination of values that cannot work, as one line; checked when the plan is made */
  check?(p: Params<S>): string | undefined;
  run(p: Params<S>, api: PredictionApi, know: AttackerKnowledge, rng: Rng, opts: RunOptions): Promise<AttackResult>;
}

/** An attack as the registry and the runner see it: parameters as data. */
export interface AttackUnit extends Unit {
  readonly kind: 'attack';
  readonly params: Schema;
  readonly learningCurve: boolean;
  requires(values: ParamValues): AttackRequirements;
  /** resolve "key=value" strings against the schema, defaults filled, cross-checks run */
  resolve(raw: Record<string, string[]>): ParamValues;
  create(values: ParamValues): Attack;
}

/**
 * The parameter every attack takes: a Sybil attacker spreads its queries over k client identities
 * (the runner deals its batches to k APIs in turn, src/api/sybil-api.ts). No default, so a cell
 * without it keeps its id.
 */
export const ACCOUNTS = {
  accounts: {
    type: 'int',
    min: 1,
    max: 10_000,
    help: 'Sybil accounts: deal the queries to k client identities in turn, each with its own per-client defense state (unset: one)',
  },
} as const satisfies Schema;

export function defineAttack<const S extends Schema>(def: AttackDefinition<S>, source?: UnitSource): AttackUnit {
  const owner = `attack ${def.name}`;
  if ('accounts' in def.params)
    throw new UsageError(`${owner}: 'accounts' is a parameter every attack has (Sybil accounts); name yours otherwise`);
  const params: Schema = { ...def.params, ...ACCOUNTS };
  validateSchema(owner, params);
  const requires = (values: ParamValues): AttackRequirements =>
    checkRequirements(
      owner,
      typeof def.requires === 'function' ? def.requires(typed(def.params, values)) : (def.requires ?? {}),
    );
  return {
    kind: 'attack',
    name: def.name,
    describe: def.describe,
    params,
    learningCurve: def.learningCurve === true,
    source,
    requires,
    resolve(raw) {
      const values = resolveParams(owner, params, raw);
      const why = def.check?.(typed(def.params, values));
      if (why) throw new UsageError(`${def.name}: ${why}`);
      return values;
    },
    create(values) {
      const p = typed(def.params, values);
      const req = requires(values);
      return {
        name: def.name,
        params: values,
        learningCurve: def.learningCurve === true,
        run: async (api, know, rng, opts) => {
          // the requirements, before any query (as the runner checks them): an API that reveals
          // leaf ids answers for a tree; an unknown family (know.family unset) skips the victims check
          const victim = know.family?.kind ?? (api.info.reveals === 'leaf' ? 'tree' : undefined);
          const why = notApplicable(req, {
            victim,
            numClasses: know.numClasses,
            reveals: api.info.reveals,
            budget: api.ledger.budget - api.ledger.queries,
          });
          if (why) throw new AttackNotApplicable(def.name, why);
          return def.run(p, api, know, rng, opts ?? {});
        },
      };
    },
  };
}

const REQUIREMENT_KEYS = [
  'reveals',
  'victims',
  'victimsWhy',
  'classes',
  'pool',
  'seedSize',
  'minBudget',
  'finiteBudget',
];

/**
 * Requirements are the attack's word to the runner, which acts on them before any query: a typo or
 * a nonsense value would silently switch a check off, so each is checked (one line naming the attack).
 */
export function checkRequirements(owner: string, req: unknown): AttackRequirements {
  const bad = (why: string) => new UsageError(`${owner}: requires ${why}`);
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw bad('must be an object');
  const r = req as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (!REQUIREMENT_KEYS.includes(k)) throw bad(`has an unknown field '${k}' (known: ${REQUIREMENT_KEYS.join(', ')})`);
  const int = (k: string, min: number) => {
    if (r[k] !== undefined && (!Number.isSafeInteger(r[k]) || (r[k] as number) < min))
      throw bad(`.${k} must be an integer ≥ ${min}, got ${JSON.stringify(r[k])}`);
  };
  if (r.reveals !== undefined && r.reveals !== 'probs' && r.reveals !== 'leaf')
    throw bad(`.reveals must be 'probs' or 'leaf', got ${JSON.stringify(r.reveals)}`);
  if (
    r.victims !== undefined &&
    r.victims !== 'any' &&
    (!Array.isArray(r.victims) || !r.victims.length || r.victims.some((v) => typeof v !== 'string' || !v))
  )
    throw bad(".victims must be 'any' or a non-empty list of model family names");
  if (r.victimsWhy !== undefined && typeof r.victimsWhy !== 'string') throw bad('.victimsWhy must be a string');
  int('classes', 2);
  int('seedSize', 1);
  int('minBudget', 0);
  if (r.pool !== undefined && (typeof r.pool !== 'string' || !r.pool.trim())) throw bad('.pool must be a dataset name');
  if (r.finiteBudget !== undefined && typeof r.finiteBudget !== 'boolean')
    throw bad('.finiteBudget must be true or false');
  return r as AttackRequirements;
}

/** The setting an attack is about to face, as the runner knows it before any query. */
export interface AttackSetting {
  /** the victim's family as the attacker knows it; undefined: unknown, the victims check is skipped */
  victim: ModelKind | undefined;
  numClasses: number;
  reveals: Reveal;
  budget: number;
}

/** Why the attack cannot run in this setting (one line), or undefined when it can. */
export function notApplicable(req: AttackRequirements, s: AttackSetting): string | undefined {
  // by default every network family, a plugin's too; only the tree is not one
  if (!req.victims && s.victim === 'tree') return 'tree victims are extracted by path-finding (tree-path)';
  const victims = req.victims === 'any' ? undefined : req.victims;
  if (victims && s.victim !== undefined && !victims.includes(s.victim)) {
    return `${req.victimsWhy ?? `it assumes a ${victims.join(' or ')} victim`}, the victim is assumed to be ${s.victim}`;
  }
  if (req.classes !== undefined && s.numClasses !== req.classes)
    return `it needs ${req.classes} classes, the API has ${s.numClasses}`;
  if (req.reveals === 'probs' && s.reveals === 'labels') return 'it needs probabilities, the API reveals labels only';
  if (req.reveals === 'leaf' && s.reveals !== 'leaf') return `it needs leaf identifiers, the API reveals ${s.reveals}`;
  const min = req.minBudget ?? 1;
  if (req.finiteBudget === false) {
    if (s.budget < min) return min > 1 ? `it needs a query budget of at least ${min}` : 'no query budget';
  } else if (!Number.isFinite(s.budget) || s.budget < min)
    return min > 1 ? `it needs a finite query budget of at least ${min}` : 'it needs a finite, positive query budget';
  return undefined;
}
