/**
 * One parser for "name:key=value,…" specs, shared by flags (`--model mlp:hidden=256,128`,
 * `--defense mad:eps=0.5`) and sweep files. A comma-separated token without '=' continues the
 * previous key's list, so `mad:eps=0.1,0.5,ydist=l1` means eps ∈ {0.1, 0.5}, ydist = l1.
 * Parameters are declared with types and ranges, validated eagerly, and errors name the parameter.
 */
import { UsageError, unknownChoice } from './errors.js';

export type ParamType = 'int' | 'number' | 'string' | 'bool' | 'int-list';

export interface ParamDecl {
  type: ParamType;
  help: string;
  default?: number | string | boolean | number[];
  min?: number;
  max?: number;
  choices?: readonly string[];
}

export type ParamDecls = Record<string, ParamDecl>;
export type ParamValue = number | string | boolean | number[];
export type ParamValues = Record<string, ParamValue>;

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
    for (const tok of t.slice(colon + 1).split(',')) {
      const eq = tok.indexOf('=');
      if (eq >= 0) {
        key = tok.slice(0, eq).trim();
        if (!key) throw new UsageError(`missing parameter name before '=' in '${text}'`);
        if (raw[key]) throw new UsageError(`parameter '${key}' given twice in '${text}'`);
        raw[key] = [tok.slice(eq + 1).trim()];
      } else if (key) {
        raw[key].push(tok.trim());
      } else if (tok.trim()) {
        throw new UsageError(`expected key=value after '${name}:' in '${text}'`);
      }
    }
  }
  return { name, raw };
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
export function resolveParams(owner: string, decls: ParamDecls, raw: Record<string, string[]>): ParamValues {
  const out: ParamValues = {};
  for (const key of Object.keys(raw)) {
    if (!decls[key]) throw unknownChoice(`parameter for ${owner}`, key, Object.keys(decls).length ? Object.keys(decls) : ['(none)']);
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
    .map((k) => `${k}=${Array.isArray(p[k]) ? (p[k] as number[]).join('/') : String(p[k])}`)
    .join(',');
}
