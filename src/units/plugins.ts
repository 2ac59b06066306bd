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
import { register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ATTACKS } from '../attacks/registry.js';
import type { AttackUnit } from '../attacks/define.js';
import { DEFENSES } from '../defenses/registry.js';
import type { DefenseUnit } from '../defenses/define.js';
import { DATASET_NAMES, PLUGIN_DATASETS } from '../data/registry.js';
import type { DatasetUnit } from '../data/define.js';
import { UsageError } from '../errors.js';
import type { ModelUnit } from '../models/define.js';
import { MODELS } from '../models/zoo.js';
import { validateSchema } from '../params.js';
import type { Unit, UnitSource } from './registry.js';

/** A loaded plugin, as the manifest and the plan record it. */
export interface PluginRef {
  /** absolute, symlinks resolved */
  path: string;
  /** sha256 of the file's bytes, first 16 hex digits */
  hash: string;
  /** the units it added, as kind:name */
  units: string[];
}

const loaded = new Map<string, PluginRef>();

let hooked = false;
/** Make `import … from 'mse'` in a plugin resolve to this mse (see plugin-hooks.ts), once per process. */
function hookMse(): void {
  if (hooked) return;
  hooked = true;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const hooks = path.join(here, 'plugin-hooks.js');
  const index = path.join(here, '..', 'index.js');
  // only from the built package (dist/): under a TypeScript runner the plugin resolves 'mse' itself
  if (!existsSync(hooks) || !existsSync(index)) return;
  register(pathToFileURL(hooks).href, { data: { index: pathToFileURL(index).href } });
}

function hashOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
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
    if (typeof u.describe !== 'string') throw bad('has no describe line');
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
  let bytes: Buffer;
  try {
    if (!statSync(file).isFile()) throw new UsageError(`plugin ${file} is not a file`);
    real = realpathSync(file);
    bytes = readFileSync(real);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'ENOENT' ? `plugin ${file} does not exist` : `plugin ${file} cannot be read: ${(e as Error).message}`,
    );
  }
  const hash = hashOf(bytes);
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
  hookMse();
  try {
    // the hash in the URL: a changed file is a new module, never a stale cached one
    mod = (await import(`${pathToFileURL(real).href}?sha=${hash}`)) as Record<string, unknown>;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new UsageError(`plugin ${file} failed to import: ${msg}`);
  }
  const source: UnitSource = { plugin: real, hash };
  const units = unitsOf(file, mod);
  if (!units.length)
    throw new UsageError(
      `plugin ${file} exports no attack, defense, model or dataset`,
      'export units built with defineAttack / defineDefense / defineModel / defineDataset from mse (default export or named exports)',
    );
  const added: Array<() => void> = [];
  try {
    for (const u of units) {
      // a copy stamped with its source: the unit's methods are closures and survive the spread
      if (u.kind === 'attack') {
        ATTACKS.add({ ...(u as AttackUnit), source });
        added.push(() => ATTACKS.removePlugin(real));
      } else if (u.kind === 'defense') {
        DEFENSES.add({ ...(u as DefenseUnit), source });
        added.push(() => DEFENSES.removePlugin(real));
      } else if (u.kind === 'model') {
        MODELS.add({ ...(u as ModelUnit), source });
        added.push(() => MODELS.removePlugin(real));
      } else {
        if (DATASET_NAMES.includes(u.name))
          throw new UsageError(
            `dataset '${u.name}' reuses the name of a built-in dataset`,
            'rename the dataset in the plugin',
          );
        PLUGIN_DATASETS.add({ ...(u as DatasetUnit), source });
        added.push(() => PLUGIN_DATASETS.removePlugin(real));
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
  for (const f of files) out.push(await loadPlugin(path.resolve(baseDir, f)));
  return out;
}

/** Every plugin loaded in this process. */
export function loadedPlugins(): PluginRef[] {
  return [...loaded.values()];
}

/** Unload a plugin's units (tests). */
export function unloadPlugin(ref: PluginRef): void {
  ATTACKS.removePlugin(ref.path);
  DEFENSES.removePlugin(ref.path);
  MODELS.removePlugin(ref.path);
  PLUGIN_DATASETS.removePlugin(ref.path);
  loaded.delete(ref.path);
}
