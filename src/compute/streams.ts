/**
 * Named random streams: every random choice in a cell draws from a stream derived from the cell's
 * seed and a name, by this one function. A stream depends on (seed, name) alone, never on which other
 * streams were taken or in what order, so adding a stream never shifts another.
 *
 * The streams mse had before this function (victim, api, utility, attack, seed-set, uniform,
 * defense-setup) keep the derivations they had then — sequential forks of Rng(seed) and fixed
 * xor constants — so every result recorded since stays reproducible bit for bit; those derivations
 * are closed forms here (each recomputes its forks from scratch), so they are order-free too. A
 * stream added later is seeded from sha256(seed, name).
 */
import { createHash } from 'node:crypto';
import { Rng } from './rng.js';

export const CELL_STREAMS = ['victim', 'api', 'utility', 'attack', 'seed-set', 'uniform'] as const;
export type CellStream = (typeof CELL_STREAMS)[number];

/** The i-th fork of Rng(seed) (1-based), recomputed from scratch. */
function nthFork(seed: number, n: number): Rng {
  const root = new Rng(seed);
  let r = root;
  for (let i = 0; i < n; i++) r = root.fork();
  return r;
}

/**
 * A stream of a cell by name:
 *   victim        the victim's initial weights and training order
 *   api           the attacker's API (its defenses' per-query draws)
 *   utility       the honest user's API, which measures the defender's utility
 *   attack        the attack's own choices
 *   seed-set      which in-distribution examples form an attack's seed set
 *   uniform       the uniform inputs of R_unif
 *   defense-setup:<i>  what the i-th defense of the stack prepares (MAD's proxy)
 * and any other name, for streams added later.
 */
export function stream(seed: number, name: CellStream | `defense-setup:${number}` | (string & {})): Rng {
  switch (name) {
    case 'victim':
      return new Rng(seed);
    case 'api':
      return nthFork(seed, 1);
    case 'utility':
      return nthFork(seed, 2);
    case 'attack':
      return nthFork(seed, 3);
    case 'seed-set':
      return new Rng((seed ^ 0x5eedc0de) >>> 0);
    case 'uniform':
      return new Rng(seed ^ 0x5eed);
  }
  const setup = /^defense-setup:(\d+)$/.exec(name);
  if (setup) {
    // the state the utility API's i-th defense stream had before its first draw (where MAD drew its proxy)
    const u = stream(seed, 'utility');
    let r = u;
    for (let i = 0; i <= Number(setup[1]); i++) r = u.fork();
    return r;
  }
  const h = createHash('sha256').update(`mse-stream/1\0${seed}\0${name}`).digest();
  return new Rng(h.readUInt32LE(0));
}
