/**
 * Deterministic, balanced shards of a sweep: the cells are sorted by id and dealt round-robin, so
 * shard sizes differ by at most one and the assignment depends only on the grid, never on timing
 * or the machine.
 */
import { UsageError } from '../errors.js';

export interface Shard {
  index: number;
  count: number;
}

export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new UsageError(`--shard must look like i/n (e.g. 0/4), got '${text}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new UsageError(`--shard ${text}: need 0 ≤ i < n`);
  return { index, count };
}

/** The CSV a run writes in its output directory: `results.csv`, or a shard's own file. */
export const resultsFileName = (s?: Shard): string => (s ? `shard-${s.index}-of-${s.count}.csv` : 'results.csv');

/** Whether a file name is a shard's CSV (what merge and reproduce fold in). */
export const isShardFile = (name: string): boolean => /^shard-\d+-of-\d+\.csv$/.test(name);

/** The items of shard `s`, given a stable key per item. */
export function shardOf<T>(items: T[], key: (t: T) => string, s: Shard): T[] {
  const order = items.map((t, i) => ({ t, k: key(t), i })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i));
  return order.filter((_, j) => j % s.count === s.index).map((o) => o.t);
}
