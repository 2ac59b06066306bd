/**
 * `defineDefense`: a defense as one value — its name, its typed parameter schema, and its stages.
 * A defense is a small transformation of a query's input, answer or price, applied in order by the
 * API (ART's postprocessors). Its state is explicit:
 *   - `prepare` runs once per cell (once per server) from what the defender owns — calibration,
 *     a proxy model — and what it returns is shared, read-only, by every API built for the cell;
 *   - `create` builds one API's stages; whatever they keep (a per-client ledger) belongs to that API
 *     alone, so measuring the honest user's utility never changes an answer the attacker receives.
 *
 *     export default defineDefense({
 *       name: 'temperature',
 *       describe: 'sharpen or flatten answers by a softmax temperature',
 *       params: { t: { type: 'number', min: 0.01, max: 100, default: 2, help: 'temperature' } },
 *       create: (p) => ({ output: (probs) => … p.t … }),
 *     });
 */
import type { Alarm, ApiResponse, Defense, DefenderEnv, Probs, QueryCtx } from '../api/types.js';
import type { Tensor } from '@tensorflow/tfjs';
import { UsageError } from '../errors.js';
import { resolveParams, typed, validateSchema, type ParamValues, type Params, type Schema } from '../params.js';
import type { Unit, UnitSource } from '../units/registry.js';

export type Stage = 'input' | 'output' | 'price' | 'monitor';
const STAGES: readonly Stage[] = ['input', 'output', 'price', 'monitor'];

/** The stages of one API's instance (any may be absent), plus whatever else the defense offers (pow's nextBits). */
export interface DefenseStages {
  input?(x: Tensor, ctx: QueryCtx): Tensor;
  output?(probs: Probs, ctx: QueryCtx): ApiResponse;
  price?(x: Tensor, ctx: QueryCtx): { powSeconds: number };
  monitor?(x: Tensor, ctx: QueryCtx): Alarm | undefined;
}

export interface DefenseDefinition<S extends Schema, P, St extends DefenseStages> {
  name: string;
  describe: string;
  params: S;
  /** what the defense leaves visible: 'labels' reduces answers to labels */
  reveals?: 'probs' | 'labels';
  /**
   * the stages its instances have, for a defense with `prepare` (the plan checks the stack's order
   * before anything is prepared); without `prepare` mse looks at an instance
   */
  stages?: readonly Stage[];
  /** a combination of values that cannot work, as one line; checked when the plan is made */
  check?(p: Params<S>): string | undefined;
  /** once per cell, from the defender's model and data; the result is shared by every instance and never changed */
  prepare?(p: Params<S>, env: DefenderEnv): Promise<P> | P;
  /** one API's stages */
  create(p: Params<S>, prepared: P): St;
}

/** What `prepare` returned, kept by the runner for the cell's lifetime (disposed at its end). */
export type Prepared = {
  readonly value: unknown;
  /** what the setup has to tell the user (a `note` string on what `prepare` returned) */
  readonly note?: string;
  dispose(): void;
};

export interface DefenseUnit<St extends DefenseStages = DefenseStages> extends Unit {
  readonly kind: 'defense';
  readonly params: Schema;
  readonly reveals?: 'probs' | 'labels';
  /** the stages an instance with these values has (undefined: not known before it is prepared) */
  stagesOf(values: ParamValues): readonly Stage[] | undefined;
  /** whether `prepare` does anything (the runner skips the defender's setup otherwise) */
  readonly prepares: boolean;
  resolve(raw: Record<string, string[]>): ParamValues;
  prepare(values: ParamValues, env: DefenderEnv): Promise<Prepared>;
  /** a fresh instance for one API */
  create(values: ParamValues, prepared?: Prepared): Defense & St;
}

export function defineDefense<const S extends Schema, P = undefined, St extends DefenseStages = DefenseStages>(
  def: DefenseDefinition<S, P, St>,
  source?: UnitSource,
): DefenseUnit<St> {
  const owner = `defense ${def.name}`;
  validateSchema(owner, def.params);
  return {
    kind: 'defense',
    name: def.name,
    describe: def.describe,
    params: def.params,
    reveals: def.reveals,
    prepares: def.prepare !== undefined,
    stagesOf(values) {
      if (def.stages) return def.stages;
      if (def.prepare) return undefined;
      const d = def.create(typed(def.params, values), undefined as P);
      return STAGES.filter((s) => typeof d[s] === 'function');
    },
    source,
    resolve(raw) {
      const values = resolveParams(owner, def.params, raw);
      const why = def.check?.(typed(def.params, values));
      if (why) throw new UsageError(`${def.name}: ${why}`);
      return values;
    },
    async prepare(values, env) {
      const value = def.prepare ? await def.prepare(typed(def.params, values), env) : undefined;
      const note = (value as { note?: unknown } | undefined)?.note;
      return {
        value,
        note: typeof note === 'string' ? note : undefined,
        dispose() {
          const d = (value as { dispose?: unknown } | undefined)?.dispose;
          if (typeof d === 'function') d.call(value);
        },
      };
    },
    create(values, prepared) {
      if (def.prepare && !prepared) throw new Error(`defense ${def.name} was created before it was prepared`);
      const stages = def.create(typed(def.params, values), prepared?.value as P);
      return Object.assign(stages, { name: def.name, params: values, reveals: def.reveals });
    },
  };
}
