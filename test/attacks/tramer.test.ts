import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense } from '../../src/api/types.js';
import { parseAttack } from '../../src/attacks/registry.js';
import { AttackNotApplicable, type AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { fidelity, uniformInputs } from '../../src/metrics/agreement.js';
import { paramError } from '../../src/metrics/param-error.js';
import { Net } from '../../src/models/net.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const d = 10;
const domain = { min: -1, max: 1 };
const know: AttackerKnowledge = { inputShape: [d], numClasses: 2, domain, family: { kind: 'logistic' } };

/** A logistic victim with known weights (so recovery can be checked exactly). */
function victim(): Net {
  const r = new Rng(21);
  const w = Float32Array.from({ length: d }, () => r.normal(0, 2));
  return new Net(
    {
      kind: 'logistic',
      inputShape: [d],
      numClasses: 2,
      layers: [{ type: 'flatten' }, { type: 'dense', units: 1 }],
      head: 'sigmoid',
    },
    [w, Float32Array.of(0.3)],
  );
}

const top1: Defense = {
  name: 'top1',
  params: {},
  reveals: 'labels',
  output: (p) => ({ labels: tf.argMax(p, 1) as tf.Tensor1D }),
};
const unif = uniformInputs(new Rng(99), 5000, d, domain);

describe('eq-lr (Tramèr 2016 §4.1.1)', () => {
  it('recovers w and b from exactly d+1 queries', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: d + 1 });
    const res = await parseAttack('eq-lr').run(api, know, new Rng(2));
    expect(res.queries).toBe(d + 1);
    expect(api.ledger.queries).toBe(d + 1);
    expect(res.budgetExhausted).toBe(false);
    expect(paramError(v, res.surrogate)!.relL2).toBeLessThan(1e-3); // float32 answers bound the precision
    expect((await fidelity(v, res.surrogate, unif, 5000)).agreement).toBeGreaterThan(0.999);
    res.surrogate.dispose();
    v.dispose();
  });

  it('more queries (least squares) do not hurt', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 20 * (d + 1) });
    const res = await parseAttack('eq-lr:multiple=20').run(api, know, new Rng(3));
    expect(res.queries).toBe(20 * (d + 1));
    expect(paramError(v, res.surrogate)!.relL2).toBeLessThan(1e-3);
    res.surrogate.dispose();
    v.dispose();
  });

  it('stops cleanly with a partial model when the budget is below d+1', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 5 });
    const res = await parseAttack('eq-lr').run(api, know, new Rng(2));
    expect([res.queries, res.budgetExhausted, api.ledger.queries]).toEqual([5, true, 5]);
    expect(res.notes.join()).toMatch(/only 5 of the 11 queries/);
    expect(paramError(v, res.surrogate)!.relL2).toBeGreaterThan(1e-2); // under-determined: not exact
    res.surrogate.dispose();
    v.dispose();
  });

  it('refuses a victim family it cannot solve and a labels-only API, spending nothing', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 100 });
    await expect(parseAttack('eq-lr').run(api, { ...know, family: { kind: 'cnn' } }, new Rng(2))).rejects.toThrow(
      AttackNotApplicable,
    );
    const labelsOnly = new LocalPredictionApi(v, [top1], { rng: new Rng(1), domain, budget: 100 });
    await expect(parseAttack('eq-lr').run(labelsOnly, know, new Rng(2))).rejects.toThrow(
      /needs probabilities, the API reveals labels only/,
    );
    expect(api.ledger.queries + labelsOnly.ledger.queries).toBe(0);
    v.dispose();
  });
});

describe('retrain-uniform (Tramèr 2016 §6)', () => {
  it('works from labels only, and needs many more queries than equation solving for the same fidelity', async () => {
    const v = victim();
    const many = new LocalPredictionApi(v, [top1], { rng: new Rng(1), domain, budget: 50 * (d + 1) });
    const big = await parseAttack('retrain-uniform').run(many, know, new Rng(4));
    const aBig = (await fidelity(v, big.surrogate, unif, 5000)).agreement;
    expect(aBig).toBeGreaterThan(0.95);
    const few = new LocalPredictionApi(v, [top1], { rng: new Rng(1), domain, budget: d + 1 });
    const small = await parseAttack('retrain-uniform').run(few, know, new Rng(4));
    const aSmall = (await fidelity(v, small.surrogate, unif, 5000)).agreement;
    expect(aSmall).toBeLessThan(0.99); // eq-lr gets > 0.999 from these d+1 queries
    expect(aSmall).toBeLessThan(aBig);
    for (const m of [big.surrogate, small.surrogate, v]) m.dispose();
  });
});

describe('retrain-adaptive (Tramèr 2016 §6, adapt-local)', () => {
  it('beats uniform retraining at the same label-only budget (mean over seeds) and spends exactly the budget', async () => {
    const v = victim();
    const budget = 10 * (d + 1);
    const mean = async (attack: string) => {
      let s = 0;
      for (const seed of [1, 2, 3]) {
        const api = new LocalPredictionApi(v, [top1], { rng: new Rng(seed), domain, budget });
        const res = await parseAttack(attack).run(api, know, new Rng(seed + 10));
        expect(api.ledger.queries).toBe(budget);
        s += (await fidelity(v, res.surrogate, unif, 5000)).agreement;
        res.surrogate.dispose();
      }
      return s / 3;
    };
    const uniform = await mean('retrain-uniform');
    const adaptive = await mean('retrain-adaptive');
    expect(adaptive).toBeGreaterThan(uniform);
    v.dispose();
  });
});

describe('retrain-linesearch (Tramèr 2016 §6, adapt-oracle)', () => {
  it('spends its label-only budget on boundary bisections and learns the boundary', async () => {
    const v = victim();
    const budget = 20 * (d + 1);
    const api = new LocalPredictionApi(v, [top1], { rng: new Rng(1), domain, budget });
    const res = await parseAttack('retrain-linesearch').run(api, know, new Rng(5));
    expect(api.ledger.queries).toBe(res.queries);
    expect(res.queries).toBeGreaterThan(budget / 2); // more than the uniform half: bisections happened
    expect((await fidelity(v, res.surrogate, unif, 5000)).agreement).toBeGreaterThan(0.9);
    res.surrogate.dispose();
    v.dispose();
  });
});
