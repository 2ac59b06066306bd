import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { getVictim } from '../../src/models/victim.js';
import { parseModelSpec } from '../../src/models/zoo.js';
import { toyBlobs } from '../testing/fixtures.js';
import { makeSynthetic } from '../../src/data/synthetic.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('victim cache', () => {
  it('trains once per (dataset, model, params, seed) and loads it the second time', async () => {
    const ds = toyBlobs(300);
    const spec = parseModelSpec('softmax:epochs=30');
    const a = await getVictim(ds, spec, 5);
    expect(a.cached).toBe(false);
    expect(a.testAcc).toBeGreaterThan(0.9);
    const b = await getVictim(ds, spec, 5);
    expect(b.cached).toBe(true);
    expect(b.testAcc).toBe(a.testAcc);
    expect(Array.from(b.model.params!())).toEqual(Array.from(a.model.params!()));
    const c = await getVictim(ds, spec, 6);
    expect(c.cached).toBe(false);
    for (const v of [a, b, c]) v.model.dispose();
  });

  it('each model kind trains on a tabular dataset and beats chance clearly', async () => {
    for (const [d, m] of [['linear', 'logistic'], ['linear', 'ovr'], ['moons', 'tree:depth=6'], ['moons', 'mlp']] as const) {
      const v = await getVictim(makeSynthetic(d), parseModelSpec(m), 1, { noCache: true });
      expect([m, v.testAcc > 0.8]).toEqual([m, true]);
      v.model.dispose();
    }
  });
});
