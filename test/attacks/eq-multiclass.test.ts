import { beforeAll, describe, expect, it } from 'vitest';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { Float64Mlp } from '../../src/attacks/eq-mlp.js';
import { parseAttack } from '../../src/attacks/registry.js';
import { AttackNotApplicable, type AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { lbfgs } from '../../src/solvers/lbfgs.js';
import { fidelity, uniformInputs } from '../../src/metrics/agreement.js';
import { paramError } from '../../src/metrics/param-error.js';
import { Net, type Head } from '../../src/models/net.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const d = 6;
const c = 4;
const domain = { min: -1, max: 1 };
const unif = uniformInputs(new Rng(77), 4000, d, domain);

function linearVictim(head: Head): Net {
  const r = new Rng(head === 'softmax' ? 5 : 6);
  const w = Float32Array.from({ length: d * c }, () => r.normal(0, 2));
  const b = Float32Array.from({ length: c }, () => r.normal(0, 0.5));
  return new Net(
    {
      kind: head === 'softmax' ? 'softmax' : 'ovr',
      inputShape: [d],
      numClasses: c,
      layers: [{ type: 'dense', units: c }],
      head,
    },
    [w, b],
  );
}

describe('L-BFGS', () => {
  it('minimises the Rosenbrock function to its known minimum (1, 1)', () => {
    const r = lbfgs(
      (x, g) => {
        const [a, b] = x;
        g[0] = -2 * (1 - a) - 400 * a * (b - a * a);
        g[1] = 200 * (b - a * a);
        return (1 - a) ** 2 + 100 * (b - a * a) ** 2;
      },
      Float64Array.of(-1.2, 1),
      { maxIter: 500, gtol: 1e-8 },
    );
    expect(r.x[0]).toBeCloseTo(1, 5);
    expect(r.x[1]).toBeCloseTo(1, 5);
  });
});

describe.each(['softmax', 'ovr'] as const)('eq-%s (Tramèr 2016 §4.1.2)', (head) => {
  const name = head === 'softmax' ? 'eq-softmax' : 'eq-ovr';
  const know: AttackerKnowledge = { inputShape: [d], numClasses: c, domain, family: { kind: head } };

  it('recovers the model from c·(d+1) queries (one multiple of the unknowns)', async () => {
    const v = linearVictim(head);
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: c * (d + 1) });
    const res = await parseAttack(name).run(api, know, new Rng(2));
    expect(res.queries).toBe(c * (d + 1));
    expect((await fidelity(v, res.surrogate, unif, 4000)).agreement).toBeGreaterThan(0.999);
    expect(paramError(v, res.surrogate)!.relL2).toBeLessThan(1e-2);
    res.surrogate.dispose();
    v.dispose();
  });

  it('refuses another family', async () => {
    const v = linearVictim(head);
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 100 });
    await expect(parseAttack(name).run(api, { ...know, family: { kind: 'mlp' } }, new Rng(2))).rejects.toThrow(
      AttackNotApplicable,
    );
    expect(api.ledger.queries).toBe(0);
    v.dispose();
  });
});

/** The victim of the eq-mlp tests: 3 inputs, 6 tanh units, 3 classes (45 unknowns). */
function tanhMlp(seed: number): Net {
  return new Net(
    {
      kind: 'mlp',
      inputShape: [3],
      numClasses: 3,
      layers: [{ type: 'flatten' }, { type: 'dense', units: 6, activation: 'tanh' }, { type: 'dense', units: 3 }],
      head: 'softmax',
    },
    new Rng(seed),
  );
}

describe('eq-mlp', () => {
  it('fits an MLP of the known shape to the soft answers: high agreement at 4× the unknowns', async () => {
    const v = tanhMlp(8);
    const unknowns = 6 * 4 + 3 * 7;
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 4 * unknowns });
    const res = await parseAttack('eq-mlp').run(
      api,
      { inputShape: [3], numClasses: 3, domain, family: { kind: 'mlp', hidden: [6] } },
      new Rng(3),
    );
    const u = uniformInputs(new Rng(5), 4000, 3, domain);
    expect((await fidelity(v, res.surrogate, u, 4000)).agreement).toBeGreaterThan(0.95);
    res.surrogate.dispose();
    v.dispose();
  });

  it("solver=sgd (the paper's code: small-batch momentum SGD in float64) also fits it, and is deterministic", async () => {
    const v = tanhMlp(8);
    const unknowns = 6 * 4 + 3 * 7;
    const steal = async () => {
      const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 4 * unknowns });
      return (
        await parseAttack('eq-mlp:solver=sgd,passes=300').run(
          api,
          { inputShape: [3], numClasses: 3, domain, family: { kind: 'mlp', hidden: [6] } },
          new Rng(3),
        )
      ).surrogate;
    };
    const [a, b] = [await steal(), await steal()];
    const u = uniformInputs(new Rng(5), 4000, 3, domain);
    const fa = await fidelity(v, a, u, 4000);
    expect(fa.agreement).toBeGreaterThan(0.9);
    // the same seed, the same surrogate: every figure equal to the last bit
    expect(await fidelity(v, b, u, 4000)).toEqual(fa);
    a.dispose();
    b.dispose();
    v.dispose();
  });

  it("with L-BFGS (the default at ≥ 1×) matches the victim's probabilities closely, not just its labels", async () => {
    const v = tanhMlp(9);
    const unknowns = 6 * 4 + 3 * 7;
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain, budget: 3 * unknowns });
    const res = await parseAttack('eq-mlp').run(
      api,
      { inputShape: [3], numClasses: 3, domain, family: { kind: 'mlp', hidden: [6], activation: 'tanh' } },
      new Rng(3),
    );
    const u = uniformInputs(new Rng(5), 4000, 3, domain);
    const f = await fidelity(v, res.surrogate, u, 4000);
    expect(f.agreement).toBeGreaterThan(0.99);
    expect(f.tv).toBeLessThan(0.01);
    res.surrogate.dispose();
    v.dispose();
  });
});

describe("Float64Mlp (eq-mlp's objective)", () => {
  it('has the gradient of its loss (central differences)', () => {
    const net = new Float64Mlp([4, 3], ['tanh', 'linear'], 2);
    const rng = new Rng(4);
    const th = Float64Array.from({ length: net.size }, () => rng.normal());
    const m = 5;
    const x = Float32Array.from({ length: m * 2 }, () => rng.normal());
    const y = new Float32Array(m * 3);
    for (let i = 0; i < m; i++) {
      const a = rng.uniform(0, 1);
      y[i * 3] = a;
      y[i * 3 + 1] = (1 - a) / 2;
      y[i * 3 + 2] = (1 - a) / 2;
    }
    const g = new Float64Array(net.size);
    net.lossAndGrad(th, g, x, y, m, 0.01);
    const scratch = new Float64Array(net.size);
    for (let k = 0; k < net.size; k++) {
      const h = 1e-6;
      const p = Float64Array.from(th);
      p[k] += h;
      const fp = net.lossAndGrad(p, scratch, x, y, m, 0.01);
      p[k] -= 2 * h;
      const fm = net.lossAndGrad(p, scratch, x, y, m, 0.01);
      expect(g[k]).toBeCloseTo((fp - fm) / (2 * h), 6);
    }
  });
});
