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
  // tree-topdown reads the same trees from the root down with incomplete (⊥) queries
  it.each([
    ['tree-path', 'moons', 2, 6],
    ['tree-path', 'blobs', 4, 5],
    ['tree-topdown', 'moons', 2, 6],
    ['tree-topdown', 'blobs', 4, 5],
  ] as const)('%s recovers every leaf of a CART on %s (%i features, depth %i)', async (attack, name, d, depth) => {
    const ds = makeSynthetic(name, { d, n: 2000 });
    const tree = DecisionTree.fit(ds.train.x, ds.train.y, d, ds.numClasses, { maxDepth: depth });
    const api = new LocalPredictionApi(tree, [], { rng: new Rng(1), domain, revealLeaves: true });
    const res = await parseAttack(attack).run(api, { inputShape: [d], numClasses: ds.numClasses, domain }, new Rng(2));
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

describe('incomplete (⊥) queries and tree-topdown (Tramèr 2016 §4.2, top-down)', () => {
  it("a missing feature stops the descent at the node that tests it, with that node's identifier and distribution", () => {
    const ds = makeSynthetic('blobs', { d: 3, n: 1500 });
    const tree = DecisionTree.fit(ds.train.x, ds.train.y, 3, ds.numClasses, { maxDepth: 4 });
    const root = tree.nodes[0];
    const x = Float32Array.from([NaN, NaN, NaN]);
    // all ⊥: the root (internal ids follow the leaves' 0…L−1)
    expect(Array.from(tree.leafIds(x, 1))).toEqual([tree.numLeaves + 0]);
    expect(Array.from(tree.predictArray(x, 1))).toEqual(root.dist.map((v) => Math.fround(v)));
    // the root's feature set: the query goes on to a child, which answers for itself
    x[root.feature] = root.threshold - 1;
    const child = tree.nodes[root.left];
    const id = tree.leafIds(x, 1)[0];
    expect(id).toBe(child.leaf >= 0 ? child.leaf : tree.numLeaves + root.left);
    // a complete query still ends in a leaf
    expect(tree.leafIds(ds.test.x, 50).every((v) => v < tree.numLeaves)).toBe(true);
  });

  it('re-splits on a feature set higher up (a path that tests x0, then x1, then x0 again)', async () => {
    // root: x0 ≤ 0; its right child: x1 ≤ 0; that node's left child: x0 ≤ 0.5 — four leaves
    const leaf = (id: number, c: number) => ({
      feature: -1,
      threshold: 0,
      left: -1,
      right: -1,
      dist: c ? [0, 1] : [1, 0],
      leaf: id,
    });
    const tree = new DecisionTree([2], 2, [
      { feature: 0, threshold: 0, left: 1, right: 2, dist: [0.5, 0.5], leaf: -1 },
      leaf(0, 0),
      { feature: 1, threshold: 0, left: 3, right: 6, dist: [0.5, 0.5], leaf: -1 },
      { feature: 0, threshold: 0.5, left: 4, right: 5, dist: [0.5, 0.5], leaf: -1 },
      leaf(1, 1),
      leaf(2, 0),
      leaf(3, 1),
    ]);
    const api = new LocalPredictionApi(tree, [], { rng: new Rng(1), domain, revealLeaves: true });
    const res = await parseAttack('tree-topdown').run(api, { inputShape: [2], numClasses: 2, domain }, new Rng(2));
    expect(new Set((res.surrogate as BoxModel).leaves.map((l) => l.id))).toEqual(new Set([0, 1, 2, 3]));
    const u = uniformInputs(new Rng(3), 5000, 2, domain);
    expect((await fidelity(tree, res.surrogate, u, 5000)).agreement).toBeGreaterThan(0.995);
  });
});
