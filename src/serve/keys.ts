/**
 * The API keys of `mse serve --keys`: {"keys": [{"key", "id", "budget"?, "ratePerSec"?, "admin"?}]}.
 * Every field is checked, because a typo here silently weakens the server: `budget: "abc"` used to
 * mean unlimited, and two keys sharing an id shared one ledger whose budget came from whichever key
 * was used first. Errors name the file and the entry, in one line.
 */
import { readFileSync } from 'node:fs';
import { MseError } from '../errors.js';

export interface ClientKey {
  key: string;
  id: string;
  /** queries allowed (default unlimited) */
  budget?: number;
  /** sustained queries per second (default unlimited) */
  ratePerSec?: number;
  /** may read /metrics (every client's counts); an admin key is also an ordinary client */
  admin?: boolean;
}

const FIELDS = new Set(['key', 'id', 'budget', 'ratePerSec', 'admin']);
const SHAPE =
  '{"keys": [{"key": "…", "id": "alice", "budget": 10000, "ratePerSec": 100}, {"key": "…", "id": "ops", "admin": true}]}';

const show = (v: unknown): string =>
  typeof v === 'string'
    ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
    : Array.isArray(v)
      ? 'an array'
      : v === null
        ? 'null'
        : typeof v === 'object'
          ? 'an object'
          : String(v);

/** Validate parsed JSON as a keys file; `source` (the file name) starts every error message. */
export function parseKeys(value: unknown, source: string): ClientKey[] {
  const fail = (where: string, what: string) =>
    new MseError('serve', `${source}: ${where}${what}`, `give a JSON file like ${SHAPE}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw fail('', `must be a JSON object {"keys": [...]}, got ${show(value)}`);
  for (const f of Object.keys(value)) if (f !== 'keys') throw fail('', `unknown field '${f}' (only "keys")`);
  const list = (value as { keys?: unknown }).keys;
  if (!Array.isArray(list)) throw fail('', `"keys" must be an array, got ${show(list)}`);
  if (list.length === 0)
    throw fail('', 'no keys (an empty list would lock everyone out; leave --keys off for an open server)');
  const byKey = new Map<string, number>();
  const byId = new Map<string, number>();
  return list.map((e: unknown, i): ClientKey => {
    const at = `keys[${i}]: `;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw fail(at, `must be an object, got ${show(e)}`);
    const r = e as Record<string, unknown>;
    for (const f of Object.keys(r))
      if (!FIELDS.has(f)) throw fail(at, `unknown field '${f}' (allowed: ${[...FIELDS].join(', ')})`);
    if (typeof r.key !== 'string' || r.key === '') throw fail(at, `key must be a non-empty string, got ${show(r.key)}`);
    if (typeof r.id !== 'string' || r.id === '') throw fail(at, `id must be a non-empty string, got ${show(r.id)}`);
    if ('budget' in r && !(typeof r.budget === 'number' && Number.isSafeInteger(r.budget) && r.budget > 0))
      throw fail(at, `budget must be a positive integer (leave it out for unlimited), got ${show(r.budget)}`);
    if ('ratePerSec' in r && !(typeof r.ratePerSec === 'number' && Number.isFinite(r.ratePerSec) && r.ratePerSec > 0))
      throw fail(
        at,
        `ratePerSec must be a positive finite number (leave it out for unlimited), got ${show(r.ratePerSec)}`,
      );
    if ('admin' in r && typeof r.admin !== 'boolean')
      throw fail(at, `admin must be true or false, got ${show(r.admin)}`);
    // the key itself is a secret: name the other entry, never the key
    const k = byKey.get(r.key);
    if (k !== undefined) throw fail(at, `duplicate key (also keys[${k}])`);
    const d = byId.get(r.id);
    if (d !== undefined)
      throw fail(
        at,
        `duplicate id '${r.id}' (also keys[${d}]): each client needs its own id, or their ledgers would be merged`,
      );
    byKey.set(r.key, i);
    byId.set(r.id, i);
    return {
      key: r.key,
      id: r.id,
      ...('budget' in r ? { budget: r.budget as number } : {}),
      ...('ratePerSec' in r ? { ratePerSec: r.ratePerSec as number } : {}),
      ...('admin' in r ? { admin: r.admin as boolean } : {}),
    };
  });
}

/** Read and validate a keys file (`mse serve --keys`). */
export function readKeysFile(file: string): ClientKey[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MseError(
      'serve',
      `cannot read keys from ${file}${code ? ` (${code})` : ''}`,
      `give a JSON file like ${SHAPE}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new MseError(
      'serve',
      `${file}: not valid JSON (${(e as Error).message.replace(/\s+/g, ' ')})`,
      `give a JSON file like ${SHAPE}`,
    );
  }
  return parseKeys(parsed, file);
}
