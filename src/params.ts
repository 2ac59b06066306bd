/**
 * One parser for "name:key=value,…" specs, shared by flags (`--model mlp:hidden=256,128`,
 * `--defense mad:eps=0.5`) and sweep files. A comma-separated token without '=' continues the
 * previous key's list, so `mad:eps=0.1,0.5,ydist=l1` means eps ∈ {0.1, 0.5}, ydist = l1.
 * Parameters are declared with types and ranges, validated eagerly, and errors name the parameter.
 */
import { UsageError, unknownChoice } from './errors.js';

export type ParamType = 'int' | 'number' | 'string' | 'bool' | 'int-list';

interface DeclBase {
  help: string;
}
export interface IntDecl extends DeclBase {
  type: 'int';
  default?: number;
  min?: number;
  max?: number;
}
export interface NumberDecl extends DeclBase {
  type: 'number';
  default?: number;
  min?: number;
  max?: number;
}
export interface StringDecl extends DeclBase {
  type: 'string';
  default?: string;
  choices?: readonly string[];
}
export interface BoolDecl extends DeclBase {
  type: 'bool';
  default?: boolean;
}
export interface IntListDecl extends DeclBase {
  type: 'int-list';
  default?: readonly number[];
  min?: number;
  max?: number;
}
/** One declared parameter: its type, default, range or choices, and the help `mse list` prints. */
export type ParamDecl = IntDecl | NumberDecl | StringDecl | BoolDecl | IntListDecl;

/** A unit's parameter schema: name → declaration. Declare it `as const` (or inline in a define* call) so values are typed. */
export type Schema = Readonly<Record<string, ParamDecl>>;
/** @deprecated the old name of Schema */
export type ParamDecls = Schema;

type BaseValue<D> = D extends { type: 'int' | 'number' }
  ? number
  : D extends { type: 'bool' }
    ? boolean
    : D extends { type: 'int-list' }
      ? readonly number[]
      : D extends { type: 'string'; choices: readonly (infer C extends string)[] }
        ? C
        : string;

/** The value a declaration stands for: present when it has a default, possibly undefined otherwise. */
export type ValueOf<D> = D extends { default: unknown } ? BaseValue<D> : BaseValue<D> | undefined;

/** The typed, validated parameters a schema describes: what a unit's factory receives (no casts). */
export type Params<S extends Schema> = { readonly [K in keyof S]: ValueOf<S[K]> };

export type ParamValue = number | string | boolean | readonly number[];
/** Parameters as data: for cell ids, CSV columns and the wire (plan cells sent to workers). */
export type ParamValues = Readonly<Record<string, ParamValue>>;

export interface ParsedSpec {
  name: string;
  /** raw values per key (a list when several were given) */
  raw: Record<string, string[]>;
}

export function parseSpec(text: string): ParsedSpec {
  const t = text.trim();
  const colon = t.indexOf(':');
  const name = colon < 0 ? t : t.slice(0, colon);
  const raw: Record<string, string[]> = {};
  if (!name) throw new UsageError(`empty name in '${text}'`);
  if (colon >= 0) {
    let key: string | undefined;
    for (const tok of splitTopLevel(t.slice(colon + 1), ',', text)) {
      const eq = tok.startsWith('[') ? -1 : tok.indexOf('=');
      if (eq >= 0) {
        key = tok.slice(0, eq).trim();
        if (!key) throw new UsageError(`missing parameter name before '=' in '${text}'`);
        if (raw[key]) throw new UsageError(`parameter '${key}' given twice in '${text}'`);
        raw[key] = [unbracket(tok.slice(eq + 1).trim())];
      } else if (key) {
        raw[key].push(unbracket(tok.trim()));
      } else if (tok.trim()) {
        throw new UsageError(`expected key=value after '${name}:' in '${text}'`);
      }
    }
  }
  return { name, raw };
}

/**
 * Split on `sep` outside square brackets: a value that is itself a spec with several parameters is
 * written in brackets (`knockoff:pool=[csv:path=pool.csv,label=y]`), so its commas (and '+') stay
 * inside it.
 */
export function splitTopLevel(text: string, sep: ',' | '+', whole: string = text): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '[') depth++;
    else if (ch === ']') {
      if (--depth < 0) throw new UsageError(`a ']' without its '[' in '${whole}'`);
    } else if (ch === sep && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new UsageError(`a '[' without its ']' in '${whole}'`);
  out.push(text.slice(start));
  return out;
}

const unbracket = (v: string) => (v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1).trim() : v);

/** A value as a spec writes it: in brackets when it holds a separator (a spec of its own, with parameters). */
export function specValue(v: string): string {
  return /[,+]/.test(v) ? `[${v}]` : v;
}

function convert(owner: string, key: string, decl: ParamDecl, v: string): number | string | boolean {
  const bad = (why: string) => new UsageError(`${owner}: ${key} ${why}, got '${v}'`);
  switch (decl.type) {
    case 'int':
    case 'int-list': {
      const n = Number(v);
      // safe integers only: 1e99 is an "integer" to JavaScript and an endless loop to a trainer
      if (v === '' || !Number.isSafeInteger(n)) throw bad('must be an integer');
      if (decl.min !== undefined && n < decl.min) throw bad(`must be ≥ ${decl.min}`);
      if (decl.max !== undefined && n > decl.max) throw bad(`must be ≤ ${decl.max}`);
      return n;
    }
    case 'number': {
      const n = Number(v);
      if (v === '' || !Number.isFinite(n)) throw bad('must be a finite number');
      if (decl.min !== undefined && n < decl.min) throw bad(`must be ≥ ${decl.min}`);
      if (decl.max !== undefined && n > decl.max) throw bad(`must be ≤ ${decl.max}`);
      return n;
    }
    case 'bool':
      if (v === 'true' || v === '1') return true;
      if (v === 'false' || v === '0') return false;
      throw bad('must be true or false');
    case 'string':
      if (decl.choices && !decl.choices.includes(v)) throw bad(`must be one of ${decl.choices.join(', ')}`);
      return v;
  }
}

/** Validate one (non-swept) parameter set against its declarations, filling defaults. */
export function resolveParams(owner: string, decls: Schema, raw: Record<string, string[]>): ParamValues {
  const out: Record<string, ParamValue> = {};
  for (const key of Object.keys(raw)) {
    if (!decls[key])
      throw unknownChoice(`parameter for ${owner}`, key, Object.keys(decls).length ? Object.keys(decls) : ['(none)']);
  }
  for (const [key, decl] of Object.entries(decls)) {
    const vals = raw[key];
    if (!vals) {
      if (decl.default !== undefined) out[key] = decl.default;
      continue;
    }
    if (decl.type === 'int-list') {
      out[key] = vals.map((v) => convert(owner, key, decl, v) as number);
    } else {
      if (vals.length > 1) throw new UsageError(`${owner}: ${key} takes one value here, got ${vals.join(',')}`);
      out[key] = convert(owner, key, decl, vals[0]);
    }
  }
  return out;
}

/** "k=v,k2=v2" in a stable key order, for cell ids and CSV columns. */
export function formatParams(p: ParamValues): string {
  return Object.keys(p)
    .sort()
    .map((k) => `${k}=${Array.isArray(p[k]) ? (p[k] as readonly number[]).join('/') : specValue(String(p[k]))}`)
    .join(',');
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** a value that survives "name:key=value,…+next" parsing: no separators, no spaces, not empty */
const SPEC_SAFE = /^[^,+=:\s]+$/;

/**
 * Check a declared schema (a plugin's, before any of its units is used): every declaration has a
 * known type and help, and its default lies in its own range and choices. Throws a UsageError naming
 * the parameter.
 */
export function validateSchema(owner: string, schema: unknown): asserts schema is Schema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    throw new UsageError(`${owner}: params must be an object of parameter declarations`);
  for (const [key, d] of Object.entries(schema as Record<string, unknown>)) {
    const bad = (why: string) => new UsageError(`${owner}: parameter '${key}' ${why}`);
    if (!/^[a-z][a-z0-9-]*$/i.test(key)) throw bad('must be a name of letters, digits and dashes');
    if (typeof d !== 'object' || d === null) throw bad('must be a declaration object {type, help, default?, …}');
    const decl = d as Record<string, unknown>;
    if (!['int', 'number', 'string', 'bool', 'int-list'].includes(decl.type as string))
      throw bad(`has type '${String(decl.type)}'; use int, number, string, bool or int-list`);
    if (typeof decl.help !== 'string' || !decl.help.trim()) throw bad('needs a help string');
    if (CONTROL.test(decl.help)) throw bad('has help with control characters (newlines, escapes)');
    for (const k of ['min', 'max'] as const)
      if (decl[k] !== undefined && (typeof decl[k] !== 'number' || !Number.isFinite(decl[k])))
        throw bad(`${k} must be a finite number`);
    if (typeof decl.min === 'number' && typeof decl.max === 'number' && decl.min > decl.max)
      throw bad(`has min ${decl.min} above max ${decl.max}: no value could be given`);
    if (
      decl.choices !== undefined &&
      (!Array.isArray(decl.choices) || !decl.choices.length || decl.choices.some((c) => typeof c !== 'string'))
    )
      throw bad('choices must be a non-empty list of strings');
    // every value must be writable in a spec ("name:key=value,…", '+' between defenses)
    if (Array.isArray(decl.choices) && decl.choices.some((c) => !SPEC_SAFE.test(c as string)))
      throw bad("has a choice that cannot be written in a spec (empty, or with ',', '+', '=', ':' or spaces)");
    if (decl.default === undefined) continue;
    const dv = decl.default;
    if (typeof dv === 'string' && !SPEC_SAFE.test(dv))
      throw bad("has a default that cannot be written in a spec (empty, or with ',', '+', '=', ':' or spaces)");
    if (Array.isArray(dv) && !dv.length) throw bad('has an empty list as its default: leave the default out instead');
    const text = Array.isArray(dv) ? dv.map(String) : [String(dv)];
    const typeOk =
      decl.type === 'int-list'
        ? Array.isArray(dv)
        : decl.type === 'bool'
          ? typeof dv === 'boolean'
          : decl.type === 'string'
            ? typeof dv === 'string'
            : typeof dv === 'number';
    if (!typeOk) throw bad(`has a default of the wrong type (${JSON.stringify(dv)} for ${String(decl.type)})`);
    try {
      resolveParams(owner, { [key]: decl as unknown as ParamDecl }, { [key]: text });
    } catch (e) {
      throw bad(`has a default outside its own range: ${(e as Error).message}`);
    }
  }
}

/** Values resolved against a schema, as the schema's typed parameters (the one place this cast lives). */
export function typed<S extends Schema>(_schema: S, values: ParamValues): Params<S> {
  return values as unknown as Params<S>;
}
