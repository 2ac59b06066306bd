import { describe, expect, it } from 'vitest';
import { DecisionTree } from '../../src/models/decision-tree.js';
import { loadModel } from '../../src/models/zoo.js';
import { Rng } from '../../src/compute/rng.js';

describe('CART decision tree', () => {
  // y = 1 iff x0 > 0.2 and x1 ≤ −0.5: a depth-2 tree recovers it exactly
  const rng = new Rng(9);
  const n = 400;
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    x[2 * i] = rng.uniform(-1, 1);
    x[2 * i + 1] = rng.uniform(-1, 1);
    y[i] = x[2 * i] > 0.2 && x[2 * i + 1] <= -0.5 ? 1 : 0;
  }

  it('recovers an axis-aligned concept exactly, with thresholds between the nearest samples', () => {
    const t = DecisionTree.fit(x, y, 2, 2, { maxDepth: 4 });
    const p = t.predictArray(x, n);
    for (let i = 0; i < n; i++) expect(p[2 * i + y[i]]).toBe(1);
    expect(t.numLeaves).toBe(3);
    const root = t.nodes[0];
    expect([0, 1]).toContain(root.feature);
    expect(Math.abs(root.threshold - (root.feature === 0 ? 0.2 : -0.5))).toBeLessThan(0.05);
  });

  it('reveals distinct leaf ids per leaf and survives serialisation', () => {
    const t = DecisionTree.fit(x, y, 2, 2, { maxDepth: 4 });
    const ids = t.leafIds(x, n);
    expect(new Set(ids).size).toBe(t.numLeaves);
    const back = loadModel(JSON.parse(JSON.stringify(t.serialize()))) as DecisionTree;
    expect(Array.from(back.leafIds(x, n))).toEqual(Array.from(ids));
  });

  it('respects maxDepth', () => {
    expect(DecisionTree.fit(x, y, 2, 2, { maxDepth: 1 }).depth).toBe(1);
  });
});
