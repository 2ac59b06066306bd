/**
 * Plugins: an ES module (`--plugin ./my-defense.mjs`, or `plugins` in a sweep or paper spec) that
 * exports units built with mse's define* functions (attacks, defenses, network model families, datasets) — as the default export (one unit or a list)
 * or as named exports. Loading one adds its units to the registries, stamped with the file's path
 * and content hash; the hash is part of the id of every cell that uses them, so a changed plugin
 * makes new cells instead of resuming old ones. Anything wrong with the file is one line naming it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ATTACKS } from '../attacks/registry.js';
import type { AttackUnit } from '../attacks/define.js';
import { DEFENSES } from '../defenses/registry.js';
import type { DefenseUnit } from '../defenses/define.js';
import { DATASET_UNITS } from '../data/registry.js';
import type { DatasetUnit } from '../data/define.js';
import { UsageError } from '../errors.js';
import type { ModelUnit } from '../models/define.js';
import { MODELS } from '../models/zoo.js';
import { validateSchema } from '../params.js';
import { parseBudget } from '../runner/budget.js';
import type { Unit, UnitSource } from './registry.js';
import { guardAttack, guardDataset, guardDefense, guardModel } from './guard.js';

/** A loaded plugin, as the manifest and the plan record it. */
export interface PluginRef {
  /** absolute, symlinks resolved */
  path: string;
  /** sha256 of the plugin's files (the entry and what it imports by relative path), first 16 hex digits */
  hash: string;
  /** the units it added, as kind:name */
  units: string[];
}

const loaded = new Map<string, PluginRef>();

let hooked = false;
/** Make `import … from 'mse'` in a plugin resolve to this mse (see plugin-hooks.ts), once per process. */
async function hookMse(): Promise<void> {
  if (hooked) return;
  hooked = true;
  // node:module's register arrived in Node 20.6: imported here, so older Nodes run everything but this
  const { register } = (await import('node:module')) as { register?: (url: string, o: object) => void };
  if (!register) return;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const hooks = path.join(here, 'plugin-hooks.js');
  const index = path.join(here, '..', 'index.js');
  // only from the built package (dist/): under a TypeScript runner the plugin resolves 'mse' itself
  if (!existsSync(hooks) || !existsSync(index)) return;
  register(pathToFileURL(hooks).href, { data: { index: pathToFileURL(index).href } });
}

/**
 * The plugin's own files: the entry and every file it imports by a relative path, transitively
 * (static imports, re-exports, and dynamic imports of string literals). Packages it imports by name
 * are dependencies with versions of their own, not part of the plugin.
 */
export function pluginFiles(entry: string): string[] {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  const specifiers = /(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+)\1/g;
  while (queue.length) {
    const file = queue.shift()!;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // an import that does not resolve fails the import itself, with Node's message
    }
    for (const m of text.matchAll(specifiers)) {
      const dep = path.resolve(path.dirname(file), m[2].split('?')[0]);
      if (seen.has(dep) || !existsSync(dep) || !statSync(dep).isFile()) continue;
      seen.add(dep);
      queue.push(dep);
    }
  }
  return [...seen];
}

/** sha256 over the plugin's files (paths relative to the entry's folder, and their bytes), first 16 hex digits. */
function hashOf(entry: string): string {
  const h = createHash('sha256');
  const dir = path.dirname(entry);
  for (const f of pluginFiles(entry).sort()) {
    h.update(`${path.relative(dir, f)}\0`);
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

class ImportTimeout extends UsageError {}

/** How long a plugin may take to import (its top-level code) before mse gives up on it. */
function importTimeoutMs(): number {
  const s = Number(process.env.MSE_PLUGIN_IMPORT_TIMEOUT_S);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 60_000;
}

/**
 * import(), but a top-level await that never settles is an error instead of a silent exit: Node
 * ends a process whose event loop is empty even while an import is pending, so a timer both keeps
 * it alive and bounds the wait.
 */
async function importWithin(url: string, file: string): Promise<Record<string, unknown>> {
  let timer: NodeJS.Timeout | undefined;
  const ms = importTimeoutMs();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ImportTimeout(
            `plugin ${file} did not finish importing within ${ms / 1000} s (a top-level await that never settles?)`,
          ),
        ),
      ms,
    );
  });
  try {
    return (await Promise.race([import(url), timeout])) as Record<string, unknown>;
  } finally {
    clearTimeout(timer);
  }
}

const KINDS = ['attack', 'defense', 'model', 'dataset'] as const;
const DEFINE = {
  attack: 'defineAttack',
  defense: 'defineDefense',
  model: 'defineModel',
  dataset: 'defineDataset',
} as const;

/** The units a module exports: its default (a unit or a list of units) and its named unit exports. */
function unitsOf(file: string, mod: Record<string, unknown>): Unit[] {
  const candidates: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(mod)) {
    if (k === 'default' && Array.isArray(v)) v.forEach((x, i) => candidates.push([`default[${i}]`, x]));
    else candidates.push([k, v]);
  }
  const units: Unit[] = [];
  const seen = new Set<unknown>();
  for (const [exp, v] of candidates) {
    if (exp.startsWith('default[') && (typeof v !== 'object' || v === null || !('kind' in v)))
      throw new UsageError(
        `plugin ${file}: export '${exp}' is not a unit`,
        'a default-export list holds units built with define* only',
      );
    if (typeof v !== 'object' || v === null || !('kind' in v)) continue;
    if (seen.has(v)) continue; // `export default x` and `export { x }`
    seen.add(v);
    const u = v as Record<string, unknown>;
    const bad = (why: string) =>
      new UsageError(
        `plugin ${file}: export '${exp}' ${why}`,
        'build units with defineAttack / defineDefense / defineModel / defineDataset from mse',
      );
    if (!(KINDS as readonly unknown[]).includes(u.kind))
      throw bad(`has kind '${String(u.kind)}'; expected attack, defense, model or dataset`);
    const kind = u.kind as (typeof KINDS)[number];
    // names go into specs ("name:k=v", '+' stacks) and file names: a small alphabet
    if (typeof u.name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(u.name))
      throw bad(`has no valid name (lower-case letters, digits and dashes: '${String(u.name)}')`);
    // one printable line: `mse list` prints it as it is
    if (typeof u.describe !== 'string' || !u.describe.trim()) throw bad('has no describe line');
    if (/[\u0000-\u001f\u007f]/.test(u.describe))
      throw bad('has a describe line with control characters (newlines, escapes)');
    if (kind !== 'dataset') validateSchema(`plugin ${file}: ${kind} ${u.name}`, u.params);
    const fns = {
      attack: ['requires', 'resolve', 'create'],
      defense: ['resolve', 'prepare', 'create'],
      model: ['resolve', 'train', 'layers', 'budgets'],
      dataset: ['load'],
    }[kind];
    for (const f of fns)
      if (typeof u[f] !== 'function')
        throw bad(
          `is not a unit built by ${DEFINE[kind]} (no ${f}${kind === 'model' && f === 'layers' ? ': plugin models are networks' : ''})`,
        );
    if (kind === 'model') {
      // the family defaults a sweep falls back on: checked now, not when a sweep trips on them
      if (!Array.isArray(u.attacks) || !u.attacks.length || u.attacks.some((a) => typeof a !== 'string' || !a.trim()))
        throw bad('needs attacks: the attack specs a sweep runs against it when none are named (a non-empty list)');
      for (const quick of [false, true]) {
        let b: unknown;
        try {
          b = (u.budgets as (q: boolean) => unknown)(quick);
          if (!Array.isArray(b) || !b.length) throw new Error('not a non-empty list');
          b.forEach((x) => parseBudget(String(x)));
        } catch (e) {
          throw bad(
            `budgets(${quick}) must return a non-empty list of budgets ("5k", "1x"): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
          );
        }
      }
    }
    units.push(v as Unit);
  }
  return units;
}

/**
 * Load a plugin file once per process (again only if its content changed, which is an error: one
 * process, one version). Throws a UsageError naming the file for a missing or unreadable file, an
 * import failure, no units, a bad unit, or a name that is already taken.
 */
export async function loadPlugin(file: string, expectHash?: string): Promise<PluginRef> {
  let real: string;
  if (!file.trim()) throw new UsageError('--plugin needs a file name');
  try {
    if (!statSync(file).isFile()) throw new UsageError(`plugin ${file} is not a file`);
    real = realpathSync(file);
    readFileSync(real);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'ENOENT' ? `plugin ${file} does not exist` : `plugin ${file} cannot be read: ${(e as Error).message}`,
    );
  }
  const hash = hashOf(real);
  if (expectHash !== undefined && expectHash !== hash)
    throw new UsageError(
      `plugin ${file} changed since the plan was made (hash ${hash}, expected ${expectHash})`,
      'a changed plugin is a different experiment: re-plan the sweep',
    );
  const had = loaded.get(real);
  if (had) {
    if (had.hash !== hash) throw new UsageError(`plugin ${file} changed while mse was running`);
    return had;
  }
  if (!/\.(mjs|js)$/.test(real)) throw new UsageError(`plugin ${file} must be an ES module (.mjs or .js)`);
  let mod: Record<string, unknown>;
  await hookMse();
  try {
    // the hash in the URL: a changed file is a new module, never a stale cached one
    mod = await importWithin(`${pathToFileURL(real).href}?sha=${hash}`, file);
    // the hash was taken before Node read the files: an edit in between would run under the old hash
    if (hashOf(real) !== hash)
      throw new UsageError(`plugin ${file} changed while it was being loaded`, 'run the command again');
  } catch (e) {
    if (e instanceof UsageError && /changed while it was being loaded/.test(e.message)) throw e;
    if (e instanceof ImportTimeout) throw e;
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new UsageError(`plugin ${file} failed to import: ${msg}`);
  }
  const source: UnitSource = { plugin: real, hash };
  const units = unitsOf(file, mod);
  const def = mod.default;
  if (
    !units.length &&
    def &&
    typeof def === 'object' &&
    Object.values(def).some((v) => typeof v === 'object' && v !== null && 'kind' in v)
  )
    throw new UsageError(
      `plugin ${file} looks like CommonJS (module.exports)`,
      'write an ES module: export default … or export const …, in a .mjs file',
    );
  if (!units.length)
    throw new UsageError(
      `plugin ${file} exports no attack, defense, model or dataset`,
      'export units built with defineAttack / defineDefense / defineModel / defineDataset from mse (default export or named exports)',
    );
  const added: Array<() => void> = [];
  try {
    for (const u of units) {
      // a copy stamped with its source, every call into its code guarded (guard.ts)
      if (u.kind === 'attack') {
        ATTACKS.add(guardAttack(u as AttackUnit, source));
        added.push(() => ATTACKS.removePlugin(real));
      } else if (u.kind === 'defense') {
        DEFENSES.add(guardDefense(u as DefenseUnit, source));
        added.push(() => DEFENSES.removePlugin(real));
      } else if (u.kind === 'model') {
        MODELS.add(guardModel(u as ModelUnit, source));
        added.push(() => MODELS.removePlugin(real));
      } else {
        DATASET_UNITS.add(guardDataset(u as DatasetUnit, source));
        added.push(() => DATASET_UNITS.removePlugin(real));
      }
    }
  } catch (e) {
    added.forEach((undo) => undo()); // all or nothing
    if (e instanceof UsageError) throw new UsageError(`plugin ${file}: ${e.message}`, e.hint);
    throw e;
  }
  const ref: PluginRef = { path: real, hash, units: units.map((u) => `${u.kind}:${u.name}`) };
  loaded.set(real, ref);
  return ref;
}

export async function loadPlugins(files: readonly string[], baseDir = process.cwd()): Promise<PluginRef[]> {
  const out: PluginRef[] = [];
  if (!Array.isArray(files) || files.some((f) => typeof f !== 'string'))
    throw new UsageError('plugins must be a list of file names');
  if (files.some((f) => !f.trim())) throw new UsageError('--plugin needs a file name');
  for (const f of files) out.push(await loadPlugin(path.resolve(baseDir, f)));
  return out;
}

/** Every plugin loaded in this process. */
export function loadedPlugins(): PluginRef[] {
  return [...loaded.values()];
}
