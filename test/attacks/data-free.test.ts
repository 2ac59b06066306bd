import { d, domain, gaussianPool, k, top1, victim } from '../testing/toy-extraction.js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense, PredictionApi } from '../../src/api/types.js';
import { BudgetExhaustedError } from '../../src/errors.js';
import { parseAttack } from '../../src/attacks/registry.js';
import type { AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { fidelity, uniformInputs } from '../../src/metrics/agreement.js';
import { Generator } from '../../src/models/generator.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const unif = uniformInputs(new Rng(99), 4000, d, domain);
// data-free: the attacker knows the input box and the class count, nothing else
const know: AttackerKnowledge = { inputShape: [d], numClasses: k, domain };
const spec = 'dfme:arch=mlp,batch=64,lr=0.01,g-lr=0.001';

async function steal(text: string, budget: number, checkpoints?: number[], defenses: Defense[] = [], seed = 1) {
  const v = victim();
  const api = new LocalPredictionApi(v, defenses, { rng: new Rng(1), domain, budget });
  const kn = text.startsWith('knockoff') ? { ...know, pool: gaussianPool(budget) } : know;
  try {
    const res = await parseAttack(text).run(api, kn, new Rng(seed), { checkpoints });
    const points = res.curve ?? [{ budget, queries: res.queries, surrogate: res.surrogate, attackerSeconds: 0 }];
    const agreement: number[] = [];
    for (const p of points) agreement.push((await fidelity(v, p.surrogate, unif, 4000)).agreement);
    const params = res.surrogate.params!();
    for (const s of new Set(points.map((p) => p.surrogate))) s.dispose();
    return { res, points, agreement, params, queries: api.ledger.queries };
  } finally {
    v.dispose();
  }
}

describe('data-free extraction: dfme (Truong 2021), maze (Kariyappa 2021)', () => {
  it.each([
    // measured 0.315 / 0.546 / 0.784 (seed 1), 0.441 / 0.701 / 0.787 (seed 2); chance is ~1/4
    [spec, /56 iterations: 56 generator, 266 student steps/],
    // measured 0.471 / 0.716 / 0.783 (seed 1), 0.622 / 0.771 / 0.789 (seed 2)
    ['maze:arch=mlp,batch=64,lr=0.01,g-lr=0.001', /27 iterations: 27 generator, 123 student and 270 replay steps/],
  ])(
    '%s learns the victim with no data at all: agreement rises with the budget, exactly the budget is spent',
    async (text, steps) => {
      const before = tf.memory().numTensors;
      const { points, agreement, queries, res } = await steal(text, 24000, [600, 3000, 12000, 24000]);
      expect(queries).toBe(24000);
      expect(points.map((p) => [p.budget, p.queries])).toEqual([
        [600, 600],
        [3000, 3000],
        [12000, 12000],
        [24000, 24000],
      ]);
      expect(agreement[1]).toBeGreaterThan(agreement[0]);
      expect(agreement[2]).toBeGreaterThan(agreement[1]);
      expect(agreement[3]).toBeGreaterThan(0.75);
      expect(res.notes.join(' ')).toMatch(/24000 queries at \d+\/s/);
      expect(res.notes.join(' ')).toMatch(steps);
      // the generator, the optimisers' state, the replay memory's tensors and every intermediate are freed
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('stays below Knockoff with a natural pool at equal budget', async () => {
    const free = await steal(spec, 3000);
    const pooled = await steal('knockoff:arch=mlp,epochs=30,lr=0.01,batch=32', 3000);
    expect(pooled.agreement[0]).toBeGreaterThan(free.agreement[0]);
  });

  it.each([spec, 'maze:arch=mlp,batch=64,memory=300'])(
    '%s is deterministic for a seed, and the seed matters',
    async (text) => {
      // (memory=300: the replay memory fills and samples its reservoir from the seeded stream)
      const a = await steal(text, 3000);
      const b = await steal(text, 3000);
      const c = await steal(text, 3000, undefined, [], 2);
      expect(Array.from(a.params)).toEqual(Array.from(b.params));
      expect(Array.from(a.params)).not.toEqual(Array.from(c.params));
    },
  );

  it('a learning-curve point is the run with that budget when it is the first checkpoint', async () => {
    const curve = await steal(spec, 3000, [1000, 3000]);
    const alone = await steal(spec, 1000);
    expect(curve.agreement[0]).toBe(alone.agreement[0]);
  });

  it('a server that stops answering early: the student so far, marked as budget-exhausted', async () => {
    const v = victim();
    const inner = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 5000 });
    // a server whose own count runs out at 2000, before the attacker's ledger says so
    const api: PredictionApi = {
      info: inner.info,
      ledger: inner.ledger,
      query: async (x) => {
        if (inner.ledger.queries + x.shape[0] > 2000)
          throw new BudgetExhaustedError(inner.ledger.queries, 2000, x.shape[0]);
        return inner.query(x);
      },
    };
    const res = await parseAttack(spec).run(api, know, new Rng(1), { checkpoints: [1000, 5000] });
    expect(res.budgetExhausted).toBe(true);
    expect(res.curve!.map((p) => [p.budget, p.queries])).toEqual([
      [1000, 1000],
      [5000, res.queries],
    ]);
    expect(res.queries).toBeLessThanOrEqual(2000);
    expect(res.notes.join(' ')).toMatch(/the API stopped answering after \d+ of 5000 queries/);
    expect((await fidelity(v, res.surrogate, unif, 4000)).agreement).toBeGreaterThan(0.3);
    for (const s of new Set(res.curve!.map((p) => p.surrogate))) s.dispose();
    v.dispose();
  });

  it('needs probabilities: against a labels-only API it is not applicable before any query', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [top1], { rng: new Rng(1), domain, budget: 1000 });
    await expect(parseAttack(spec).run(api, know, new Rng(1))).rejects.toThrow(/dfme cannot run here/);
    expect(api.ledger.queries).toBe(0);
    v.dispose();
  });

  it('the generator keeps every query inside the domain box', () => {
    const g = new Generator(8, [16], 5, new Rng(3));
    const x = tf.tidy(() => {
      const z = tf.mul(g.sampleLatent(64, new Rng(4)), 50); // extreme latents
      return Generator.squash(g.preactivation(z as tf.Tensor2D), { min: -2, max: 3 }).dataSync() as Float32Array;
    });
    expect(Math.min(...x)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...x)).toBeLessThanOrEqual(3);
    expect(new Set(Array.from(x)).size).toBeGreaterThan(100); // not collapsed to one point
    g.dispose();
  });
});
