import { beforeAll, describe, expect, it } from 'vitest';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { parseAttack } from '../../src/attacks/registry.js';
import { BoxModel } from '../../src/attacks/tree-path.js';
import { AttackNotApplicable } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { fidelity, uniformInputs } from '../../src/metrics/agreement.js';
import { DecisionTree } from '../../src/models/decision-tree.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const domain = { min: -1, max: 1 };

describe('tree-path (Tramèr 2016 §4.2)', () => {
  it.each([
    ['moons', 2, 6],
    ['blobs', 4, 5],
  ] as const)('recovers every leaf of a CART on %s (%i features, depth %i)', async (name, d, depth) => {
    const ds = makeSynthetic(name, { d, n: 2000 });
    const tree = DecisionTree.fit(ds.train.x, ds.train.y, d, ds.numClasses, { maxDepth: depth });
    const api = new LocalPredictionApi(tree, [], { rng: new Rng(1), domain, revealLeaves: true });
    const res = await parseAttack('tree-path').run(
      api,
      { inputShape: [d], numClasses: ds.numClasses, domain },
      new Rng(2),
    );
    const boxes = res.surrogate as BoxModel;
    expect(new Set(boxes.leaves.map((l) => l.id))).toEqual(
      new Set(Array.from({ length: tree.numLeaves }, (_, i) => i)),
    );
    const u = uniformInputs(new Rng(3), 5000, d, domain);
    expect((await fidelity(tree, res.surrogate, u, 5000)).agreement).toBeGreaterThan(0.995); // only inputs within ε of a threshold can differ
    expect((await fidelity(tree, res.surrogate, ds.test.x, ds.test.n)).agreement).toBeGreaterThan(0.99);
    expect(res.queries).toBe(api.ledger.queries);
    expect(res.budgetExhausted).toBe(false);
  });

  it('stops cleanly with the leaves found so far when the budget runs out', async () => {
    const ds = makeSynthetic('moons', { n: 2000 });
    const tree = DecisionTree.fit(ds.train.x, ds.train.y, 2, 2, { maxDepth: 6 });
    const api = new LocalPredictionApi(tree, [], { rng: new Rng(1), domain, revealLeaves: true, budget: 40 });
    const res = await parseAttack('tree-path').run(api, { inputShape: [2], numClasses: 2, domain }, new Rng(2));
    expect(res.budgetExhausted).toBe(true);
    expect(api.ledger.queries).toBeLessThanOrEqual(40);
    expect((res.surrogate as BoxModel).leaves.length).toBeLessThan(tree.numLeaves);
  });

  it('needs leaf ids', async () => {
    const ds = makeSynthetic('moons');
    const net = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const api = new LocalPredictionApi(net, [], { rng: new Rng(1), domain });
    await expect(
      parseAttack('tree-path').run(api, { inputShape: [2], numClasses: 2, domain }, new Rng(2)),
    ).rejects.toThrow(AttackNotApplicable);
    net.dispose();
  });
});
