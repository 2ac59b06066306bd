import { d, domain, gaussianPool, k, top1, victim } from '../testing/toy-extraction.js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { ApiResponse, Defense, PredictionApi } from '../../src/api/types.js';
import { deepfoolDistances, highestEntropy, kCenterGreedy, minSqDistances } from '../../src/attacks/activethief.js';
import { parseAttack, parseAttackSpec } from '../../src/attacks/registry.js';
import type { AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { fidelity, probsOf, uniformInputs } from '../../src/metrics/agreement.js';
import { Net } from '../../src/models/net.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const unif = uniformInputs(new Rng(99), 4000, d, domain);

/** Records every input it forwards. */
class RecordingApi implements PredictionApi {
  readonly asked: string[] = [];
  constructor(private readonly inner: PredictionApi) {}
  get info() {
    return this.inner.info;
  }
  get ledger() {
    return this.inner.ledger;
  }
  async query(x: tf.Tensor): Promise<ApiResponse> {
    const v = (await x.data()) as Float32Array;
    for (let i = 0; i < x.shape[0]; i++) this.asked.push(Array.from(v.slice(i * d, (i + 1) * d)).join(','));
    return this.inner.query(x);
  }
}

const pool = gaussianPool(1500);
const know: AttackerKnowledge = { inputShape: [d], numClasses: k, domain, pool };
const poolRows = new Set(
  Array.from({ length: pool.n }, (_, i) => Array.from(pool.x.slice(i * d, (i + 1) * d)).join(',')),
);
const train = 'arch=mlp,epochs=60,roundepochs=15,lr=0.03,batch=32,initial=60,rounds=4,candidates=600';

async function steal(spec: string, defenses: Defense[] = [], budget = 300, seed = 1) {
  const v = victim();
  const api = new RecordingApi(new LocalPredictionApi(v, defenses, { rng: new Rng(1), domain, budget }));
  const res = await parseAttack(spec).run(api, know, new Rng(seed));
  const agreement = (await fidelity(v, res.surrogate, unif, 4000)).agreement;
  const probs = await probsOf(res.surrogate, unif, 200);
  res.surrogate.dispose();
  v.dispose();
  return { res, api, agreement, probs };
}

describe('activethief (Pal 2020)', () => {
  const strategies = ['random', 'uncertainty', 'k-center', 'k-center,space=penultimate', 'dfal', 'dfal-k-center'];

  it('every strategy spends exactly the budget, asks no pool example twice, and copies the victim', async () => {
    const before = tf.memory().numTensors;
    for (const s of strategies) {
      const { res, api, agreement } = await steal(`activethief:${train},strategy=${s}`);
      expect(res.queries).toBe(300);
      expect(api.ledger.queries).toBe(300);
      expect(res.budgetExhausted).toBe(false);
      expect(new Set(api.asked).size).toBe(300);
      expect(api.asked.every((row) => poolRows.has(row))).toBe(true);
      // chance is about 0.25–0.4 on this victim; Knockoff's soft copy reaches ~0.9 at 300
      expect(agreement, s).toBeGreaterThan(0.75);
      expect(res.notes.join(' ')).toMatch(/60 random seed queries, then 4 rounds of 60/);
    }
    // rounds, selection and DeepFool free every tensor they make
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is deterministic for a seed, and random selection is Knockoff seed for seed', async () => {
    for (const s of ['k-center', 'dfal-k-center']) {
      const a = await steal(`activethief:${train},strategy=${s}`, [], 200, 3);
      const b = await steal(`activethief:${train},strategy=${s}`, [], 200, 3);
      expect(b.api.asked).toEqual(a.api.asked);
      expect(Array.from(b.probs)).toEqual(Array.from(a.probs));
    }
    const rand = await steal(`activethief:${train},strategy=random`, [], 200, 4);
    const ko = await steal('knockoff:arch=mlp,epochs=60,lr=0.03,batch=32', [], 200, 4);
    expect(rand.api.asked).toEqual(ko.api.asked);
    expect(Array.from(rand.probs)).toEqual(Array.from(ko.probs));
  });

  it('works against a labels-only API with labels=top1 and auto', async () => {
    for (const labels of ['top1', 'auto', 'soft']) {
      const { res, api, agreement } = await steal(`activethief:${train},strategy=dfal-k-center,labels=${labels}`, [
        top1,
      ]);
      expect(api.ledger.queries).toBe(300);
      expect(agreement).toBeGreaterThan(0.6);
      expect(res.notes.some((n) => /revealed labels only/.test(n))).toBe(labels === 'soft');
    }
  });

  it('stops where the budget runs out mid-round, marks it, and returns the surrogate of what it asked', async () => {
    const { res, api, agreement } = await steal(
      'activethief:arch=mlp,epochs=40,roundepochs=5,lr=0.03,initial=50,rounds=4,per-round=100,strategy=uncertainty',
    );
    expect(api.ledger.queries).toBe(300);
    expect(res.queries).toBe(300);
    expect(res.budgetExhausted).toBe(true);
    expect(res.notes.join(' ')).toMatch(/budget exhausted in round 3 of 4: 300 of the 450 planned/);
    expect(agreement).toBeGreaterThan(0.6);
    // a plan smaller than the budget says what it leaves
    const small = await steal('activethief:arch=mlp,epochs=5,roundepochs=2,initial=20,rounds=2,per-round=30');
    expect(small.api.ledger.queries).toBe(80);
    expect(small.res.budgetExhausted).toBe(false);
    expect(small.res.notes.join(' ')).toMatch(/220 of the budget left unused/);
  });

  it('declares the pool, and refuses an unknown strategy with a suggestion', () => {
    const { unit, values } = parseAttackSpec('activethief:pool=kmnist');
    expect(unit.requires(values)).toEqual({ pool: 'kmnist' });
    expect(unit.learningCurve).toBe(false);
    expect(() => parseAttackSpec('activethief:strategy=kcenter')).toThrow(/k-center/);
  });
});

describe('activethief selection functions', () => {
  it('k-center takes, each step, the point farthest from the labelled set and the picks so far', async () => {
    // 2-D points; the labelled set is the origin
    const pts = Float32Array.from([1, 0, 0, 3, 4, 4, 5, 5, -2, 0, 0, -1]);
    const minSq = await minSqDistances(pts, Float32Array.from([0, 0]), 2);
    expect(Array.from(minSq)).toEqual([1, 9, 32, 50, 4, 1]);
    // by hand: (5,5) at 50; then (0,3): 9 from the origin, beats (4,4) at 2 from (5,5) and (−2,0) at 4;
    // then (−2,0) at 4 from the origin; then (4,4) at 2 from (5,5); then (1,0) and (0,−1) tie at 1: the lower row
    expect(kCenterGreedy(pts, 2, minSq, 5)).toEqual([3, 1, 4, 2, 0]);
  });

  it('k-center agrees with a brute-force farthest-point search on random points', async () => {
    const r = new Rng(8);
    const dim = 3;
    const n = 60;
    const pts = Float32Array.from({ length: n * dim }, () => r.uniform(-1, 1));
    const centers = Float32Array.from({ length: 4 * dim }, () => r.uniform(-1, 1));
    const picks = kCenterGreedy(pts, dim, await minSqDistances(pts, centers, dim), 10);
    const all = [...Array.from({ length: 4 }, (_, i) => centers.slice(i * dim, (i + 1) * dim))];
    const dist = (a: Float32Array, b: Float32Array) => a.reduce((s, v, j) => s + (v - b[j]) ** 2, 0);
    for (const p of picks) {
      // the pick's distance to its nearest centre is the largest among the points not yet picked
      const row = (i: number) => pts.slice(i * dim, (i + 1) * dim);
      const gap = (i: number) => Math.min(...all.map((c) => dist(row(i), c)));
      const best = Math.max(
        ...Array.from({ length: n }, (_, i) => (picks.slice(0, picks.indexOf(p)).includes(i) ? -1 : gap(i))),
      );
      expect(gap(p)).toBeCloseTo(best, 4);
      all.push(row(p));
    }
    expect(new Set(picks).size).toBe(10);
  });

  it('uncertainty takes the rows of highest entropy', () => {
    const p = Float32Array.from([1, 0, 0, 1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 0, 0.8, 0.1, 0.1, 0.5, 0, 0.5]);
    // entropies: 0, ln 3, ln 2, 0.639, ln 2
    expect(highestEntropy(p, 3, 1)).toEqual([1]);
    expect(highestEntropy(p, 3, 4)).toEqual([1, 2, 4, 3]);
  });

  it('DeepFool finds the distance to a linear boundary in one step (overshoot included)', async () => {
    // z = (x₁, −x₁, −5): the boundary between classes 0 and 1 is x₁ = 0, class 2 is far away
    const net = new Net(
      { kind: 'softmax', inputShape: [2], numClasses: 3, layers: [{ type: 'dense', units: 3 }], head: 'softmax' },
      [Float32Array.from([1, -1, 0, 0, 0, 0]), Float32Array.from([0, 0, -5])],
    );
    const x = Float32Array.from([0.3, 0.7, -0.1, 0.2, 0.05, -0.9]);
    const before = tf.memory().numTensors;
    const dist = await deepfoolDistances(
      net,
      x,
      3,
      { inputShape: [2], numClasses: 3, domain: { min: -10, max: 10 } },
      5,
      2,
    );
    expect(tf.memory().numTensors).toBe(before);
    // one step of (|f| + 10⁻⁴)/‖w‖² · w, f = −2|x₁|, ‖w‖ = 2, times (1 + η)
    [0.3, 0.1, 0.05].forEach((x1, i) => expect(dist[i]).toBeCloseTo(1.02 * (x1 + 5e-5), 5));
    net.dispose();
  });
});

describe('copycat (Correia-Silva 2018)', () => {
  it('is knockoff:labels=top1, query for query', async () => {
    const a = await steal('copycat:arch=mlp,epochs=20,lr=0.03,batch=32', [], 150, 2);
    const b = await steal('knockoff:arch=mlp,epochs=20,lr=0.03,batch=32,labels=top1', [], 150, 2);
    expect(a.api.asked).toEqual(b.api.asked);
    expect(Array.from(a.probs)).toEqual(Array.from(b.probs));
    const { unit, values } = parseAttackSpec('copycat');
    expect(unit.describe).toMatch(/knockoff:labels=top1/);
    expect(unit.requires(values)).toEqual({ pool: 'auto' });
    expect(() => parseAttackSpec('copycat:labels=soft')).toThrow();
  });
});
