/**
 * Defense registry: the built-in defense units, in the order `mse list` shows them (registry key =
 * file name = CLI value). `--defense name:key=value,…` and sweep specs share `parseSpec`. A new
 * defense is one file (a `defineDefense` unit) plus one entry here; plugins add theirs at run time.
 */
import type { Defense, DefenderEnv } from '../api/types.js';
import { UsageError } from '../errors.js';
import { parseSpec, type ParamValues } from '../params.js';
import { Registry } from '../units/registry.js';
import type { DefenseUnit, Prepared } from './define.js';
import { am } from './am.js';
import { dawn } from './dawn.js';
import { ewe } from './ewe.js';
import { highConfidence } from './high-confidence.js';
import { inputNoise } from './input-noise.js';
import { mad, poison } from './mad.js';
import { noise } from './noise.js';
import { none } from './none.js';
import { pow } from './pow.js';
import { prada } from './prada.js';
import { reverseSigmoid } from './reverse-sigmoid.js';
import { round } from './round.js';
import { seat } from './seat.js';
import { top1 } from './top1.js';
import { topk } from './topk.js';

export const DEFENSES = new Registry<DefenseUnit>('defense', [
  none,
  top1,
  topk,
  highConfidence,
  round,
  noise,
  inputNoise,
  mad,
  poison,
  pow,
  reverseSigmoid,
  am,
  prada,
  seat,
  dawn,
  ewe,
]);

/** The unit a spec names and its validated parameter values (throws a UsageError naming what is wrong). */
export function parseDefenseSpec(text: string): { unit: DefenseUnit; values: ParamValues } {
  const { name, raw } = parseSpec(text);
  const unit = DEFENSES.get(name);
  return { unit, values: unit.resolve(raw) };
}

/** parse and create an instance of a defense that needs no preparation (throws a UsageError naming the defense otherwise) */
export function parseDefense(text: string): Defense {
  const { unit, values } = parseDefenseSpec(text);
  if (unit.prepares)
    throw new UsageError(
      `defense ${unit.name} is prepared from the defender's model and data before use`,
      'build it with prepareDefense(spec, env)',
    );
  return unit.create(values);
}

/** parse, prepare from the defender's env, and create one instance; the caller disposes `prepared` */
export async function prepareDefense(
  text: string,
  env: DefenderEnv,
): Promise<{ defense: Defense; prepared: Prepared }> {
  const { unit, values } = parseDefenseSpec(text);
  const prepared = await unit.prepare(values, env);
  return { defense: unit.create(values, prepared), prepared };
}
