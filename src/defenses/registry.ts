/**
 * Defense registry: name → typed parameters and a factory. Registry key = file name = CLI value.
 * `--defense name:key=value,…` and sweep specs share `parseSpec`. A new defense is one file plus
 * one line here.
 */
import type { Defense } from '../api/types.js';
import { unknownChoice } from '../errors.js';
import { parseSpec, resolveParams, type ParamDecls, type ParamValues } from '../params.js';
import { none } from './none.js';
import { top1 } from './top1.js';

export interface DefenseDef {
  describe: string;
  params: ParamDecls;
  create(p: ParamValues): Defense;
}

export const DEFENSES: Record<string, DefenseDef> = {
  none: { describe: 'undefended: the victim’s probabilities as they are', params: {}, create: () => none() },
  top1: { describe: 'labels only: reveal the predicted class, not the probabilities', params: {}, create: () => top1() },
};

export function parseDefense(text: string): Defense {
  const { name, raw } = parseSpec(text);
  const def = DEFENSES[name];
  if (!def) throw unknownChoice('defense', name, Object.keys(DEFENSES));
  return def.create(resolveParams(`defense ${name}`, def.params, raw));
}
