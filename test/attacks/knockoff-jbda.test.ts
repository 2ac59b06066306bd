import { d, domain, gaussianPool, k, top1, victim } from '../testing/toy-extraction.js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { ApiResponse, Defense, PredictionApi } from '../../src/api/types.js';
import { poolWanted } from '../../src/runner/plan-data.js';
import { parseAttack, parseAttackSpec } from '../../src/attacks/registry.js';
import { AttackNotApplicable, type AttackerKnowledge, type Pool } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { fidelity, probsOf, uniformInputs } from '../../src/metrics/agreement.js';
import { BudgetExhaustedError } from '../../src/errors.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const unif = uniformInputs(new Rng(99), 4000, d, domain);

/** Records every input it forwards. */
class RecordingApi implements PredictionApi {
  readonly asked: Float32Array[] = [];
  constructor(private readonly inner: PredictionApi) {}
  get info() {
    return this.inner.info;
  }
  get ledger() {
    return this.inner.ledger;
  }
  async query(x: tf.Tensor): Promise<ApiResponse> {
    const v = (await x.data()) as Float32Array;
    for (let i = 0; i < x.shape[0]; i++) this.asked.push(v.slice(i * d, (i + 1) * d));
    return this.inner.query(x);
  }
}

const surrogateParams = 'arch=mlp,epochs=100,lr=0.03,batch=32';

describe('knockoff (Orekondy 2019, random)', () => {
  it('steals a victim from an out-of-distribution pool; soft labels beat top-1 labels at the same budget', async () => {
    const v = victim();
    const know: AttackerKnowledge = { inputShape: [d], numClasses: k, domain, pool: gaussianPool(3000) };
    const agree = async (defenses: Defense[], seed: number) => {
      const api = new LocalPredictionApi(v, defenses, { rng: new Rng(1), domain, budget: 300 });
      const res = await parseAttack(`knockoff:${surrogateParams}`).run(api, know, new Rng(seed));
      expect(res.queries).toBe(300);
      expect(api.ledger.queries).toBe(300);
      const a = (await fidelity(v, res.surrogate, unif, 4000)).agreement;
      res.surrogate.dispose();
      return a;
    };
    const soft = [await agree([], 1), await agree([], 2)];
    const hard = [await agree([top1], 1), await agree([top1], 2)];
    const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
    expect(mean(soft)).toBeGreaterThan(0.88);
    expect(mean(soft)).toBeGreaterThan(mean(hard) + 0.08);
    v.dispose();
  });

  it('trains each budget of a curve on a prefix of one query pass, exactly as a run with that budget would', async () => {
    const v = victim();
    const know: AttackerKnowledge = { inputShape: [d], numClasses: k, domain, pool: gaussianPool(1000) };
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 250 });
    const res = await parseAttack('knockoff:arch=mlp,epochs=5').run(api, know, new Rng(7), { checkpoints: [100, 250] });
    expect(api.ledger.queries).toBe(250);
    expect(res.curve?.map((p) => [p.budget, p.queries])).toEqual([
      [100, 100],
      [250, 250],
    ]);
    const alone = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 100 });
    const single = await parseAttack('knockoff:arch=mlp,epochs=5').run(alone, know, new Rng(7));
    expect(Array.from(await probsOf(single.surrogate, unif, 500))).toEqual(
      Array.from(await probsOf(res.curve![0].surrogate, unif, 500)),
    );
    // more queries, a better copy
    const f100 = (await fidelity(v, res.curve![0].surrogate, unif, 4000)).agreement;
    const f250 = (await fidelity(v, res.curve![1].surrogate, unif, 4000)).agreement;
    expect(f250).toBeGreaterThan(f100);
    for (const s of [single.surrogate, ...res.curve!.map((p) => p.surrogate)]) s.dispose();
    v.dispose();
  });

  it('refuses without a pool, or with a pool of another input shape, before spending a query', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 100 });
    await expect(
      parseAttack('knockoff').run(api, { inputShape: [d], numClasses: k, domain }, new Rng(1)),
    ).rejects.toThrow(AttackNotApplicable);
    const wrong: Pool = { ...gaussianPool(10), x: new Float32Array(10 * 3) };
    await expect(
      parseAttack('knockoff').run(api, { inputShape: [d], numClasses: k, domain, pool: wrong }, new Rng(1)),
    ).rejects.toThrow(/shape/);
    expect(api.ledger.queries).toBe(0);
    // the pool is a declared requirement; the runner resolves 'auto' against the victim's dataset
    const { unit, values } = parseAttackSpec('knockoff');
    expect(unit.requires(values)).toEqual({ pool: 'auto' });
    // 'auto' is the victim dataset's default pool (on the dataset's definition); tables have none
    expect(poolWanted({ name: 'knockoff', params: { pool: 'auto' } }, 'adult')).toBeUndefined();
    expect(poolWanted({ name: 'knockoff', params: { pool: 'auto' } }, 'mnist')).toBe('fashion-mnist');
    expect(poolWanted({ name: 'knockoff', params: { pool: 'kmnist' } }, 'mnist')).toBe('kmnist');
    expect(
      parseAttackSpec('knockoff-adaptive:pool=kmnist').unit.requires(
        parseAttackSpec('knockoff-adaptive:pool=kmnist').values,
      ),
    ).toEqual({ pool: 'kmnist' });
    v.dispose();
  });
});

describe('knockoff-adaptive (Orekondy 2019, gradient bandit)', () => {
  it('shifts its sampling toward the informative pool class', async () => {
    const v = victim();
    // pool classes 0–2: copies of x = 0, where the victim answers exactly uniformly (nothing to learn);
    // class 3: varied points with confident, varied answers
    const n = 2400;
    const r = new Rng(3);
    const x = new Float32Array(n * d);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = i % 4;
      if (y[i] === 3) for (let t = 0; t < d; t++) x[i * d + t] = r.uniform(-1, 1);
    }
    const pool: Pool = { name: 'mixed', x, y, n, numClasses: 4, classNames: ['blank0', 'blank1', 'blank2', 'varied'] };
    const api = new RecordingApi(new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 640 }));
    const res = await parseAttack(`knockoff-adaptive:arch=mlp,epochs=2,lr=0.03,step=8,alpha=0.3`).run(
      api,
      { inputShape: [d], numClasses: k, domain, pool },
      new Rng(4),
    );
    expect(api.ledger.queries).toBe(640);
    const informative = (rows: Float32Array[]) => rows.filter((row) => row.some((v) => v !== 0)).length / rows.length;
    const firstHalf = informative(api.asked.slice(0, 320));
    const secondHalf = informative(api.asked.slice(320));
    // uniform sampling would give 25%
    expect(secondHalf).toBeGreaterThan(0.6);
    expect(secondHalf).toBeGreaterThan(firstHalf);
    expect(res.notes.join(' ')).toMatch(/favours varied/);
    res.surrogate.dispose();
    v.dispose();
  });
});

describe('jbda / jbself / jbtop (Papernot 2017; Orekondy 2020)', () => {
  const seedSet = () => {
    const r = new Rng(11);
    const n = 20;
    return { x: Float32Array.from({ length: n * d }, () => r.uniform(-0.8, 0.8)), y: new Int32Array(n), n };
  };

  it('grows the seed set by Jacobian steps of size λ and spends exactly the budget', async () => {
    const v = victim();
    const api = new RecordingApi(new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 300 }));
    const res = await parseAttack('jbda:arch=mlp,epochs=20,roundepochs=10,lr=0.01,lambda=0.1').run(
      api,
      { inputShape: [d], numClasses: k, domain, seed: seedSet() },
      new Rng(2),
    );
    expect(res.queries).toBe(300);
    expect(api.ledger.queries).toBe(300);
    // every query after the seed set is an earlier query moved by exactly λ in each coordinate (unless clipped)
    const asked = api.asked;
    for (let i = 20; i < 40; i++) {
      const src = asked[i - 20];
      for (let t = 0; t < d; t++) {
        const step = Math.abs(asked[i][t] - src[t]);
        if (Math.abs(asked[i][t]) < 1) expect(step).toBeCloseTo(0.1, 5);
      }
    }
    expect((await fidelity(v, res.surrogate, unif, 4000)).agreement).toBeGreaterThan(0.5);
    expect(res.notes.join(' ')).toMatch(/4 augmentation rounds/);
    res.surrogate.dispose();
    v.dispose();
  });

  it('jbself steps the other way, jbtop stays within the λ box', async () => {
    const v = victim();
    const seed = seedSet();
    const runOf = async (name: string) => {
      const api = new RecordingApi(new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 40 }));
      const res = await parseAttack(`${name}:arch=mlp,epochs=2,roundepochs=10,lr=0.01`).run(
        api,
        { inputShape: [d], numClasses: k, domain, seed },
        new Rng(2),
      );
      res.surrogate.dispose();
      return api.asked.slice(20);
    };
    const a = await runOf('jbda');
    const s = await runOf('jbself');
    const t = await runOf('jbtop');
    for (let i = 0; i < 20; i++) {
      for (let j = 0; j < d; j++) {
        const x0 = seed.x[i * d + j];
        // the two variants take opposite steps from the same surrogate
        if (Math.abs(a[i][j]) < 1 && Math.abs(s[i][j]) < 1) expect(a[i][j] - x0).toBeCloseTo(-(s[i][j] - x0), 5);
        expect(Math.abs(t[i][j] - x0)).toBeLessThanOrEqual(0.1 + 1e-6);
      }
    }
    v.dispose();
  });

  it('refuses without a seed set', async () => {
    const v = victim();
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 100 });
    await expect(parseAttack('jbda').run(api, { inputShape: [d], numClasses: k, domain }, new Rng(1))).rejects.toThrow(
      AttackNotApplicable,
    );
    expect(api.ledger.queries).toBe(0);
    v.dispose();
  });

  it('declares its seed set size as a requirement', () => {
    for (const name of ['jbda', 'jbself', 'jbtop']) {
      const { unit, values } = parseAttackSpec(`${name}:seedsize=40`);
      expect(unit.requires(values)).toEqual({ seedSize: 40 });
      expect(unit.learningCurve).toBe(true);
    }
  });
});

describe('a server that refuses before the attacker’s own count runs out', () => {
  /** answers until its own count reaches `limit`, then refuses as a server with a smaller budget does */
  class StingyApi implements PredictionApi {
    constructor(
      private readonly inner: PredictionApi,
      private readonly limit: number,
    ) {}
    get info() {
      return this.inner.info;
    }
    get ledger() {
      return this.inner.ledger;
    }
    async query(x: tf.Tensor): Promise<ApiResponse> {
      const used = this.inner.ledger.queries;
      if (used + x.shape[0] > this.limit) throw new BudgetExhaustedError(used, this.limit, x.shape[0]);
      return this.inner.query(x);
    }
  }

  it.each(['knockoff', 'knockoff-adaptive', 'jbda:seedsize=40,roundepochs=5', 'activethief:rounds=2'])(
    '%s trains on the answers it got and says so',
    async (name) => {
      const v = victim();
      const seedX = Float32Array.from({ length: 40 * d }, (_, i) => Math.sin(i) * 0.8);
      const know: AttackerKnowledge = {
        inputShape: [d],
        numClasses: k,
        domain,
        pool: gaussianPool(3000),
        seed: { x: seedX, y: new Int32Array(40), n: 40 },
      };
      const inner = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 1000 });
      const [attack, params] = name.split(':');
      const spec = `${attack}:${surrogateParams}${params ? `,${params}` : ''}`;
      const res = await parseAttack(spec).run(new StingyApi(inner, 300), know, new Rng(1));
      expect(res.budgetExhausted).toBe(true);
      expect(res.queries).toBeLessThanOrEqual(300);
      expect(res.queries).toBeGreaterThan(0);
      expect(res.notes.join(' ')).toMatch(/the API stopped answering after \d+ queries \(query budget exhausted/);
      // trained on what it got: well above chance (1/4)
      expect((await fidelity(v, res.surrogate, unif, 4000)).agreement).toBeGreaterThan(0.6);
      res.surrogate.dispose();
      v.dispose();
    },
  );
});
