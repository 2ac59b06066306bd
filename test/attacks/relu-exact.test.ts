import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense } from '../../src/api/types.js';
import { parseAttack } from '../../src/attacks/registry.js';
import { binarySigns } from '../../src/attacks/relu-exact-fit.js';
import { lstsqMulti } from '../../src/solvers/linalg.js';
import { matchUnits } from '../../src/metrics/param-error-relu.js';
import { AttackNotApplicable, type AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { loadDataset } from '../../src/data/registry.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import type { Dataset } from '../../src/data/types.js';
import { fidelity, uniformInputs } from '../../src/metrics/agreement.js';
import { Net } from '../../src/models/net.js';
import { fit } from '../../src/models/train.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';
import { HAVE_SHARED, SHARED_DATA } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

/** A 1-hidden-layer ReLU MLP trained on ds (Adam, as the zoo trains tabular MLPs). */
async function victim(ds: Dataset, hidden: number): Promise<Net> {
  const v = createNet(parseModelSpec(`mlp:hidden=${hidden},activation=relu`), ds, new Rng(1));
  await fit(
    v,
    { x: ds.train.x, y: ds.train.y, n: ds.train.n },
    { epochs: 100, batchSize: 64, optimizer: 'adam', lr: 0.01, rng: new Rng(2) },
  );
  return v;
}

function knowOf(ds: Dataset, family: AttackerKnowledge['family']): AttackerKnowledge {
  return { inputShape: ds.inputShape, numClasses: ds.numClasses, domain: ds.domain, family };
}
const relu = (h: number): AttackerKnowledge['family'] => ({ kind: 'mlp', hidden: [h], activation: 'relu' });

/** Extract v; check the bar: fidelity ≥ 0.999 (uniform, test inputs), units up to permutation and scale. */
async function extractAndCheck(ds: Dataset, v: Net, h: number, spec = 'relu-exact') {
  const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain: ds.domain });
  const res = await parseAttack(spec).run(api, knowOf(ds, relu(h)), new Rng(5));
  const d = ds.inputShape.reduce((a, b) => a * b, 1);
  const unif = uniformInputs(new Rng(9), 5000, d, ds.domain);
  const agreeUnif = (await fidelity(v, res.surrogate, unif, 5000)).agreement;
  const agreeTest = (await fidelity(v, res.surrogate, ds.test.x, ds.test.n)).agreement;
  const match = matchUnits(v, res.surrogate as Net, ds.domain)!;
  expect(res.queries).toBe(api.ledger.queries);
  expect(res.budgetExhausted).toBe(false);
  expect(agreeUnif).toBeGreaterThanOrEqual(0.999);
  expect(agreeTest).toBeGreaterThanOrEqual(0.999);
  // every unit that crosses the domain is recovered up to permutation and positive scale
  for (const c of match.cosines.filter((c) => !Number.isNaN(c))) expect(c).toBeGreaterThanOrEqual(0.999);
  expect(match.relL2).toBeLessThan(1e-2);
  res.surrogate.dispose();
  return { queries: res.queries, agreeUnif, agreeTest, match, notes: res.notes };
}

describe('relu-exact (Jagielski et al. 2020 §5, Carlini et al. 2020)', () => {
  it('recovers a 3-class ReLU MLP on blobs: fidelity ≥ 0.999, every unit up to permutation and scale', async () => {
    const ds = makeSynthetic('blobs', { n: 600, classes: 3, d: 4, seed: 3 });
    const v = await victim(ds, 8);
    const r = await extractAndCheck(ds, v, 8);
    expect(r.match.skipped).toBe(0);
    expect(r.notes.join('\n')).toMatch(/found 8 of 8 hidden units/);
    expect(r.queries).toBeLessThan(2000); // measured: 590
    v.dispose();
  });

  it('handles a binary victim (one logit difference) and more units than inputs (h > d, signs by fit)', async () => {
    const binary = makeSynthetic('blobs', { n: 600, classes: 2, d: 4, seed: 3 });
    const v2 = await victim(binary, 8);
    await extractAndCheck(binary, v2, 8);
    v2.dispose();
    // 2 inputs, 16 units: three of them never cross the domain (dead there) and are left out
    const wide = makeSynthetic('blobs', { n: 600, classes: 3, d: 2, seed: 3 });
    const v16 = await victim(wide, 16);
    const r = await extractAndCheck(wide, v16, 16);
    expect(r.match.skipped).toBeGreaterThan(0);
    expect(r.notes.join('\n')).toMatch(/never crossed the lines searched/);
    v16.dispose();
  });

  it.skipIf(!HAVE_SHARED)('recovers a ReLU MLP trained on iris', async () => {
    process.env.MSE_DATA_DIR ??= SHARED_DATA;
    const ds = await loadDataset('iris');
    const v = await victim(ds, 8);
    await extractAndCheck(ds, v, 8);
    v.dispose();
  });

  it('is deterministic for a seed and frees every tensor it makes but the surrogate', async () => {
    const ds = makeSynthetic('blobs', { n: 300, classes: 3, d: 3, seed: 4 });
    const v = await victim(ds, 6);
    const know = knowOf(ds, relu(6));
    const before = tf.memory().numTensors;
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain: ds.domain });
      runs.push(await parseAttack('relu-exact').run(api, know, new Rng(7)));
    }
    expect(tf.memory().numTensors).toBe(before + 2 * 4); // W0, b0, W1, b1 of each surrogate
    expect(runs[0].queries).toBe(runs[1].queries);
    expect(Array.from((runs[0].surrogate as Net).params())).toEqual(Array.from((runs[1].surrogate as Net).params()));
    for (const r of runs) r.surrogate.dispose();
    v.dispose();
  });

  it('stops at the budget with the units found so far, marked as such', async () => {
    const ds = makeSynthetic('blobs', { n: 600, classes: 3, d: 4, seed: 3 });
    const v = await victim(ds, 8);
    const api = new LocalPredictionApi(v, [], { rng: new Rng(1), domain: ds.domain, budget: 150 });
    const res = await parseAttack('relu-exact').run(api, knowOf(ds, relu(8)), new Rng(5));
    expect(res.budgetExhausted).toBe(true);
    expect(api.ledger.queries).toBeLessThanOrEqual(150);
    expect(res.queries).toBe(api.ledger.queries);
    expect(res.notes.join('\n')).toMatch(/budget exhausted during the search/);
    const p = res.surrogate.predict(tf.tensor2d(ds.test.x.subarray(0, 8), [2, 4]));
    expect(p.shape).toEqual([2, 3]);
    p.dispose();
    res.surrogate.dispose();
    v.dispose();
  });

  it('is not applicable to tanh, deep, convolutional or unknown victims, or labels only, before a query', async () => {
    const ds = makeSynthetic('blobs', { n: 300, classes: 3, d: 4, seed: 3 });
    const v = await victim(ds, 4);
    const top1: Defense = {
      name: 'top1',
      params: {},
      reveals: 'labels',
      output: (p) => ({ labels: tf.argMax(p, 1) as tf.Tensor1D }),
    };
    const cases: Array<[AttackerKnowledge['family'], Defense[], RegExp]> = [
      [{ kind: 'mlp', hidden: [4], activation: 'tanh' }, [], /needs ReLU hidden units, the victim's are tanh/],
      [{ kind: 'mlp', hidden: [4] }, [], /needs ReLU hidden units, the victim's are tanh/], // the tabular default
      [{ kind: 'mlp', hidden: [4, 4], activation: 'relu' }, [], /one hidden layer, the victim has 2/],
      [{ kind: 'cnn' }, [], /one-hidden-layer ReLU MLP, the victim is assumed to be cnn/],
      [undefined, [], /the victim is assumed to be unknown/],
      [relu(4), [top1], /needs probabilities, the API reveals labels only/],
    ];
    for (const [family, defenses, why] of cases) {
      const api = new LocalPredictionApi(v, defenses, { rng: new Rng(1), domain: ds.domain });
      const run = parseAttack('relu-exact').run(api, knowOf(ds, family), new Rng(2));
      await expect(run).rejects.toThrow(AttackNotApplicable);
      await expect(run).rejects.toThrow(why);
      expect(api.ledger.queries).toBe(0);
    }
    v.dispose();
  });
});

describe('relu-exact: the pieces', () => {
  it('least squares with several right-hand sides solves an exact system', () => {
    // x = [1, 2], y = [−1, 0.5]: A = [[1,0],[0,1],[1,1]], B = A·[x y]
    const A = Float64Array.of(1, 0, 0, 1, 1, 1);
    const B = Float64Array.of(1, -1, 2, 0.5, 3, -0.5);
    const X = lstsqMulti(A, B, 3, 2, 2);
    expect(Array.from(X).map((v) => Math.round(v * 1e9) / 1e9)).toEqual([1, -1, 2, 0.5]);
  });

  it('finds the sign flips that cancel the linear part (by hand: unit 1 flipped)', () => {
    // α₁ = α₂ = 1, w₁ = e₁, w₂ = e₂, B = −α₁w₁ᵀ: Q = I, q = (α_jᵀ B w_j) = (−1, 0); σ = (1, 0) gives 0
    const [best, next] = binarySigns(Float64Array.of(1, 0, 0, 1), Float64Array.of(-1, 0), 2, 2);
    expect(best).toEqual([true, false]);
    expect(next).toEqual([false, false]); // objective 0 vs 1 for the other two
  });

  it('matches units up to permutation and positive scale, not sign', () => {
    const cfg = {
      kind: 'mlp',
      inputShape: [2],
      numClasses: 2,
      layers: [
        { type: 'dense' as const, units: 2, activation: 'relu' as const },
        { type: 'dense' as const, units: 2 },
      ],
      head: 'softmax' as const,
    };
    const a = new Net(cfg, [
      Float32Array.of(1, 3, 2, 4), // W0 [d × h]: unit 0 = (1, 2), unit 1 = (3, 4)
      Float32Array.of(0.5, -1),
      Float32Array.of(0, 1, 0, 2), // W1 [h × k]
      Float32Array.of(0, 0.25),
    ]);
    // units swapped; unit (1,2,.5) doubled (its output weight halved); logits shifted by 1
    const b = new Net(cfg, [
      Float32Array.of(3, 2, 4, 4),
      Float32Array.of(-1, 1),
      Float32Array.of(1, 3, 1, 1.5),
      Float32Array.of(1, 1.25),
    ]);
    const m = matchUnits(a, b)!;
    expect(m.cosines.map((c) => Math.round(c * 1e6) / 1e6)).toEqual([1, 1]);
    expect(m.relL2).toBeLessThan(1e-6);
    const flipped = new Net(cfg, [
      Float32Array.of(-1, 3, -2, 4),
      Float32Array.of(-0.5, -1),
      Float32Array.of(0, 1, 0, 2),
      Float32Array.of(0, 0.25),
    ]);
    expect(matchUnits(a, flipped)!.relL2).toBeGreaterThan(0.5);
    for (const n of [a, b, flipped]) n.dispose();
  });
});
