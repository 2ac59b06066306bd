/**
 * A sweep's grid: datasets × victims × defense stacks × attacks × seeds, each cell carrying its list
 * of budgets (one query pass per cell for attacks with learning curves). Flags and spec files share
 * one parser: a parameter given several values (`mad:eps=0.1,0.5,1`) is swept, one cell per value;
 * `+` stacks defenses (`round:decimals=2+top1`). plan.ts resolves a grid into plan cells.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFENSES, parseDefenseSpec } from '../defenses/registry.js';
import { MseError, UsageError, unknownChoice } from '../errors.js';
import { parseSpec, specValue, splitTopLevel, type Schema } from '../params.js';

export interface GridSpec {
  datasets: string[];
  /** default: the dataset's usual victim (cnn for images, logistic/softmax for tables) */
  victims?: string[];
  /** each entry one alternative: a defense spec, or several joined by '+'; `none` is added unless baseline is false */
  defenses?: string[];
  baseline?: boolean;
  /** default: Knockoff for image victims, the equation-solving attack for tabular ones */
  attacks?: string[];
  /** counts or multiples, e.g. ["1k", "5k"] or ["1x", "10x"]; default by victim kind */
  budgets?: string[];
  seeds: number[];
  /** plugin files whose units the grid names (absolute, or relative to the spec file) */
  plugins?: string[];
}

/** One spec with swept parameters → every combination, each a plain spec string. */
export function expandSpec(text: string, decls: Schema): string[] {
  const { name, raw } = parseSpec(text);
  let out: string[][] = [[]];
  for (const [key, vals] of Object.entries(raw)) {
    // a list-typed parameter's list is one value (mlp:hidden=256,128); anything else with several values is swept
    const alts = decls[key]?.type === 'int-list' ? [vals.join(',')] : vals.map(specValue);
    out = out.flatMap((prefix) => alts.map((v) => [...prefix, `${key}=${v}`]));
  }
  return out.map((kv) => (kv.length ? `${name}:${kv.join(',')}` : name));
}

/** A defense alternative ("round:decimals=1,2+top1") → every stack it stands for. */
export function expandDefenseStack(text: string): string[][] {
  let stacks: string[][] = [[]];
  for (const part of splitTopLevel(text, '+').map((s) => s.trim())) {
    const alts = expandSpec(part, DEFENSES.get(parseSpec(part).name).params);
    alts.forEach(parseDefenseSpec); // validate every value now, before any slow work
    stacks = stacks.flatMap((s) => alts.map((a) => [...s, a]));
  }
  return stacks;
}

export function readGridSpec(file: string): Partial<GridSpec> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MseError('spec', `cannot read ${file}: ${(e as Error).message}`);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
    throw new UsageError(`${file} must hold a JSON object with datasets, victims, defenses, attacks, budgets, seeds`);
  const o = spec as Record<string, unknown>;
  const known = ['datasets', 'victims', 'defenses', 'attacks', 'budgets', 'seeds', 'baseline', 'plugins'];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw unknownChoice(`field in ${file}`, k, known);
  const strings = (k: string) => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.trim() === ''))
      throw new UsageError(`${file}: ${k} must be a list of non-empty strings`);
    // an empty list would silently mean "no cells": leave the field out for the default instead
    if (!v.length)
      throw new UsageError(`${file}: ${k} is an empty list`, `leave ${k} out for the default, or list at least one`);
    return v as string[];
  };
  let seeds: number[] | undefined;
  if (o.seeds !== undefined) {
    if (typeof o.seeds === 'number' && Number.isInteger(o.seeds) && o.seeds > 0 && o.seeds <= MAX_SEEDS)
      seeds = Array.from({ length: o.seeds }, (_, i) => i + 1);
    else if (Array.isArray(o.seeds) && o.seeds.length && o.seeds.every((s) => Number.isInteger(s)))
      seeds = o.seeds as number[];
    else throw new UsageError(`${file}: seeds must be a count (1–${MAX_SEEDS}) or a non-empty list of integers`);
  }
  if (o.baseline !== undefined && typeof o.baseline !== 'boolean')
    throw new UsageError(`${file}: baseline must be true or false`);
  // plugin paths are relative to the spec file
  const plugins = strings('plugins')?.map((p) => path.resolve(path.dirname(file), p));
  return {
    datasets: strings('datasets'),
    victims: strings('victims'),
    defenses: strings('defenses'),
    attacks: strings('attacks'),
    budgets: strings('budgets'),
    seeds,
    baseline: o.baseline as boolean | undefined,
    plugins,
  };
}

const MAX_SEEDS = 10_000;

/** Seeds are the cells' identity: each must be a non-negative integer (as --seed takes), and none twice. */
export function validateSeeds(seeds: number[]): void {
  if (!seeds.length) throw new UsageError('no seeds');
  if (seeds.length > MAX_SEEDS)
    throw new UsageError(
      `${seeds.length} seeds is more than ${MAX_SEEDS}`,
      'each seed trains its own victim; split the sweep',
    );
  for (const s of seeds)
    if (!Number.isSafeInteger(s) || s < 0) throw new UsageError(`seed ${s} is not allowed: seeds are integers ≥ 0`);
  const dup = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (dup !== undefined) throw new UsageError(`seed ${dup} is listed twice`, 'each seed is one cell; list each once');
}
