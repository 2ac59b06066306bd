/**
 * `defineModel`: a model family as one value — its typed parameters, its architecture for a
 * dataset, its training defaults, and the family defaults a sweep uses when the user names none
 * (which attacks to run against it, at which budgets).
 */
import type { Dataset } from '../data/types.js';
import { resolveParams, typed, validateSchema, type ParamValues, type Params, type Schema } from '../params.js';
import type { Unit, UnitSource } from '../units/registry.js';
import type { Model, ModelKind } from './model.js';
import type { LayerSpec, NetConfig } from './net.js';
import type { TrainOptions } from './train.js';

export type TrainDefaults = Omit<TrainOptions, 'rng' | 'onBatch'>;
export type Architecture = { layers: LayerSpec[]; head: NetConfig['head'] };

export interface ModelDefinition<S extends Schema> {
  name: ModelKind;
  describe: string;
  params: S;
  /** training defaults for this family on this dataset (the spec's epochs/batch/lr/l2 override them) */
  train?(ds: Dataset): TrainDefaults;
  /** a model the user brings: loaded (from the files `files` names), not trained */
  load?(ds: Dataset, p: Params<S>): Promise<Model>;
  /** the files a loaded model is read from: their content is part of the id of every cell using it */
  files?(p: Params<S>): string[];
  /** the network for this dataset (absent for the tree, which is not a network) */
  layers?(ds: Dataset, p: Params<S>): Architecture;
  /** the attacks a sweep runs against this family when none are named (the first is `mse attack`'s default) */
  attacks: readonly string[];
  /** the budgets a sweep uses when none are named; `quick` for --quick */
  budgets(quick: boolean): string[];
}

export interface ModelUnit extends Unit {
  readonly kind: 'model';
  readonly name: ModelKind;
  readonly params: Schema;
  readonly attacks: readonly string[];
  budgets(quick: boolean): string[];
  train?(ds: Dataset): TrainDefaults;
  /** undefined for families that are not networks */
  layers?(ds: Dataset, values: ParamValues): Architecture;
  load?(ds: Dataset, values: ParamValues): Promise<Model>;
  files?(values: ParamValues): string[];
  resolve(raw: Record<string, string[]>): ParamValues;
}

export function defineModel<const S extends Schema>(def: ModelDefinition<S>, source?: UnitSource): ModelUnit {
  const owner = `model ${def.name}`;
  validateSchema(owner, def.params);
  const layers = def.layers;
  const load = def.load;
  const files = def.files;
  return {
    kind: 'model',
    name: def.name,
    describe: def.describe,
    params: def.params,
    attacks: def.attacks,
    budgets: def.budgets,
    train: def.train,
    layers: layers ? (ds, values) => layers(ds, typed(def.params, values)) : undefined,
    load: load ? (ds, values) => load(ds, typed(def.params, values)) : undefined,
    files: files ? (values) => files(typed(def.params, values)) : undefined,
    resolve: (raw) => resolveParams(owner, def.params, raw),
    source,
  };
}
