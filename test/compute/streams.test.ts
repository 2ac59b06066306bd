import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/compute/rng.js';
import { CELL_STREAMS, stream } from '../../src/compute/streams.js';

const draws = (r: Rng, n = 4) => Array.from({ length: n }, () => r.nextUint32());

describe('named random streams', () => {
  it('the streams mse had keep their derivations, so recorded results stay reproducible', () => {
    for (const seed of [0, 1, 7, 123456]) {
      const root = new Rng(seed);
      const api = root.fork();
      const utility = root.fork();
      const attack = root.fork();
      expect(draws(stream(seed, 'victim'))).toEqual(draws(new Rng(seed)));
      expect(draws(stream(seed, 'api'))).toEqual(draws(api));
      expect(draws(stream(seed, 'utility'))).toEqual(draws(utility));
      expect(draws(stream(seed, 'attack'))).toEqual(draws(attack));
      expect(draws(stream(seed, 'seed-set'))).toEqual(draws(new Rng((seed ^ 0x5eedc0de) >>> 0)));
      expect(draws(stream(seed, 'uniform'))).toEqual(draws(new Rng(seed ^ 0x5eed)));
      // the i-th defense's setup stream is the state the utility API's i-th defense stream starts in
      const util = new Rng(seed);
      util.fork();
      const utilityApi = util.fork();
      const perDefense = [utilityApi.fork(), utilityApi.fork(), utilityApi.fork()];
      for (let i = 0; i < 3; i++) expect(draws(stream(seed, `defense-setup:${i}`))).toEqual(draws(perDefense[i]));
    }
  });

  it('a stream depends on (seed, name) alone: not on which streams were taken before, or in what order', () => {
    const first = Object.fromEntries(CELL_STREAMS.map((n) => [n, draws(stream(5, n))]));
    const reversed = Object.fromEntries([...CELL_STREAMS].reverse().map((n) => [n, draws(stream(5, n))]));
    expect(reversed).toEqual(first);
    // drawing heavily from one stream leaves every other as it was
    const api = stream(5, 'api');
    for (let i = 0; i < 1000; i++) api.nextUint32();
    expect(draws(stream(5, 'attack'))).toEqual(first.attack);
  });

  it('adding a stream never shifts another: a new name gets its own stream, and the old ones are unchanged', () => {
    const before = Object.fromEntries(CELL_STREAMS.map((n) => [n, draws(stream(9, n))]));
    const added = draws(stream(9, 'my-new-stream'));
    const after = Object.fromEntries(CELL_STREAMS.map((n) => [n, draws(stream(9, n))]));
    expect(after).toEqual(before);
    // and it is its own: equal to none of the others, different per seed and per name, the same every time
    for (const v of Object.values(before)) expect(added).not.toEqual(v);
    expect(draws(stream(10, 'my-new-stream'))).not.toEqual(added);
    expect(draws(stream(9, 'my-other-stream'))).not.toEqual(added);
    expect(draws(stream(9, 'my-new-stream'))).toEqual(added);
  });
});
