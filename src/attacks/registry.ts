/**
 * Attack registry: the built-in attacks, each a unit from its own file (registry key = file name =
 * CLI value). A new attack is one file plus one entry here; plugins add theirs at run time.
 */
import { parseSpec, type ParamValues } from '../params.js';
import { Registry } from '../units/registry.js';
import type { AttackUnit } from './define.js';
import { activethief } from './activethief.js';
import { copycat } from './copycat.js';
import { dfme } from './dfme.js';
import { eqLr } from './eq-lr.js';
import { eqMlp } from './eq-mlp.js';
import { eqOvr, eqSoftmax } from './eq-softmax.js';
import { jbda, jbself, jbtop } from './jbda.js';
import { knockoff } from './knockoff.js';
import { knockoffAdaptive } from './knockoff-adaptive.js';
import { maze } from './maze.js';
import { reluExact } from './relu-exact.js';
import { retrainAdaptive } from './retrain-adaptive.js';
import { retrainLinesearch } from './retrain-linesearch.js';
import { retrainUniform } from './retrain-uniform.js';
import { treePath } from './tree-path.js';
import { treeTopdown } from './tree-topdown.js';
import type { Attack } from './types.js';

export const ATTACKS = new Registry<AttackUnit>('attack', [
  eqLr,
  eqSoftmax,
  eqOvr,
  eqMlp,
  reluExact,
  retrainUniform,
  retrainLinesearch,
  retrainAdaptive,
  knockoff,
  knockoffAdaptive,
  activethief,
  copycat,
  jbda,
  jbself,
  jbtop,
  dfme,
  maze,
  treePath,
  treeTopdown,
]);

/** "name:key=value,…" → its unit and validated values (defaults filled) */
export function parseAttackSpec(text: string): { unit: AttackUnit; values: ParamValues } {
  const { name, raw } = parseSpec(text);
  const unit = ATTACKS.get(name);
  return { unit, values: unit.resolve(raw) };
}

/** convenience: parse and create */
export function parseAttack(text: string): Attack {
  const { unit, values } = parseAttackSpec(text);
  return unit.create(values);
}
