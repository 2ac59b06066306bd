/**
 * One shape for every registry (attacks, defenses, models, datasets): a list of units, each a
 * value built by its define* function, looked up by name. Built-ins are the list of imports in
 * each folder's registry.ts; plugins add theirs at run time (`--plugin`, a spec's `plugins`), and
 * may not reuse a name.
 */
import { UsageError, unknownChoice } from '../errors.js';

/** Where a unit came from: built in, or a plugin file with the hash of its content. */
export interface UnitSource {
  plugin: string;
  /** sha256 of the plugin file, first 16 hex digits: part of the id of every cell that uses the unit */
  hash: string;
}

export interface Unit {
  readonly kind: 'attack' | 'defense' | 'model' | 'dataset';
  readonly name: string;
  readonly describe: string;
  /** set when a plugin registered it */
  readonly source?: UnitSource;
}

export class Registry<U extends Unit> {
  private readonly units = new Map<string, U>();

  constructor(
    /** 'attack', 'defense', 'model', 'dataset': for error messages */
    readonly what: U['kind'],
    builtins: readonly U[],
  ) {
    for (const u of builtins) this.add(u);
  }

  add(u: U): void {
    if (u.kind !== this.what) throw new UsageError(`${u.name} is a ${u.kind}, not a ${this.what}`);
    const had = this.units.get(u.name);
    if (had) {
      const from = had.source ? `the plugin ${had.source.plugin}` : 'a built-in';
      throw new UsageError(
        `${this.what} '${u.name}'${u.source ? ` from ${u.source.plugin}` : ''} reuses the name of ${from} ${this.what}`,
        `rename the ${this.what} in the plugin`,
      );
    }
    this.units.set(u.name, u);
  }

  /** Remove one unit (tests that register a probe unit, then leave the registry as it was). */
  remove(name: string): void {
    this.units.delete(name);
  }

  /** Remove the units a plugin added (tests load and unload plugins in one process). */
  removePlugin(plugin: string): void {
    for (const [k, u] of this.units) if (u.source?.plugin === plugin) this.units.delete(k);
  }

  has(name: string): boolean {
    return this.units.has(name);
  }

  /** The unit, or a UsageError listing the names there are. */
  get(name: string): U {
    const u = this.units.get(name);
    if (!u) throw unknownChoice(this.what, name, this.names());
    return u;
  }

  names(): string[] {
    return [...this.units.keys()];
  }

  all(): U[] {
    return [...this.units.values()];
  }
}
