import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { powWithin } from '../../src/api/pow-trace.js';
import { SybilApi } from '../../src/api/sybil-api.js';
import type { Defense, Ledger } from '../../src/api/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';
import { toyBlobs } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const ds = toyBlobs(200);
const domain = { min: -1, max: 1 };

/** A price that grows with what the client has already asked, as a calibrated PoW's does: batch b costs b + 1 s. */
const growing: Defense = {
  name: 'growing-price',
  params: {},
  price: (_x, ctx) => ({ powSeconds: ctx.batch + 1 }),
};

describe('PoW per prefix of the stream (a learning curve row prices its own queries)', () => {
  it('reads exact totals at batch ends, shares a batch’s price over its rows, and skips batches that paid none', () => {
    const l: Ledger = {
      queries: 256,
      budget: Infinity,
      batches: 4,
      apiSeconds: 1,
      powSeconds: 10,
      powTrace: [
        [0, 64, 1],
        [64, 128, 3],
        // 128…192 paid nothing
        [192, 256, 10],
      ],
    };
    expect(powWithin(l, 0)).toBe(0);
    expect(powWithin(l, 64)).toBe(1);
    expect(powWithin(l, 96)).toBe(2);
    expect(powWithin(l, 128)).toBe(3);
    expect(powWithin(l, 160)).toBe(3);
    expect(powWithin(l, 224)).toBe(6.5);
    expect(powWithin(l, 256)).toBe(10);
    expect(powWithin(l, 1000)).toBe(10);
    expect(powWithin({ ...l, powSeconds: 0, powTrace: undefined }, 100)).toBe(0);
  });

  it('the local API notes every paid batch: under a growing price the first half costs far less than half', async () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const api = new LocalPredictionApi(victim, [growing], { rng: new Rng(2), domain });
    const x = tf.tensor2d(ds.test.x.subarray(0, 10 * 4), [10, 4]);
    for (let b = 0; b < 10; b++) tf.dispose(Object.values(await api.query(x)));
    expect(api.ledger.powSeconds).toBe(55); // 1 + 2 + … + 10
    expect(powWithin(api.ledger, 50)).toBe(15); // the first five batches
    expect(powWithin(api.ledger, 100)).toBe(55);
    // the old share-of-the-total estimate would have said 27.5
    expect(powWithin(api.ledger, 50)).toBeLessThan((55 * 50) / 100);
    x.dispose();
    victim.dispose();
  });

  it('Sybil accounts: the trace follows the attacker’s whole stream, whichever account paid', async () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const accounts = [0, 1].map(
      (i) => new LocalPredictionApi(victim, [growing], { rng: new Rng(10 + i), domain, clientId: `a${i}` }),
    );
    const api = new SybilApi(accounts, 1000);
    const x = tf.tensor2d(ds.test.x.subarray(0, 8 * 4), [8, 4]);
    for (let b = 0; b < 3; b++) tf.dispose(Object.values(await api.query(x)));
    // each batch of 8 is split 4 + 4 over the two accounts; account batch b costs b + 1 on each
    expect(api.ledger.powSeconds).toBe(2 * (1 + 2 + 3));
    expect(powWithin(api.ledger, 8)).toBe(2);
    expect(powWithin(api.ledger, 16)).toBe(6);
    expect(powWithin(api.ledger, 12)).toBe(4); // half of the second batch's 4 s
    x.dispose();
    victim.dispose();
  });
});
