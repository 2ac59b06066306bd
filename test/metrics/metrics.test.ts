import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { lstsq } from '../../src/solvers/linalg.js';
import { fidelityOf } from '../../src/metrics/agreement.js';
import { paramError } from '../../src/metrics/param-error.js';
import { Net } from '../../src/models/net.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('metrics', () => {
  it('lstsq solves an over-determined system (worked by hand: fit y = a + b·t to (1,1), (2,2), (3,2))', () => {
    const { x, rank } = lstsq(Float64Array.from([1, 1, 1, 2, 1, 3]), Float64Array.from([1, 2, 2]), 3, 2);
    expect(rank).toBe(2);
    expect(x[0]).toBeCloseTo(2 / 3, 12);
    expect(x[1]).toBeCloseTo(0.5, 12);
  });

  it('agreement and total variation (worked by hand)', () => {
    // rows: same argmax (TV 0.1), different argmax (TV 0.6)
    const pv = Float32Array.from([0.7, 0.3, 0.8, 0.2]);
    const ps = Float32Array.from([0.6, 0.4, 0.2, 0.8]);
    const f = fidelityOf(pv, ps, 2);
    expect(f.agreement).toBe(0.5);
    expect(f.tv).toBeCloseTo((0.1 + 0.6) / 2, 6);
  });

  it('parameter error ignores the softmax shift symmetry and sees real differences', () => {
    const cfg = {
      kind: 'softmax' as const,
      inputShape: [2],
      numClasses: 3,
      layers: [{ type: 'dense' as const, units: 3 }],
      head: 'softmax' as const,
    };
    const W = Float32Array.from([1, 2, 3, -1, 0, 1]);
    const b = Float32Array.from([0.5, 0, -0.5]);
    const v = new Net(cfg, [W, b]);
    const shifted = new Net(cfg, [W.map((w, i) => w + [7, -3][Math.floor(i / 3)]), b.map((x) => x + 2)]); // + c per input row, + 2 on bias
    expect(paramError(v, shifted)!.relL2).toBeLessThan(1e-6);
    const off = new Net(cfg, [W.map((w, i) => (i === 4 ? w + 1 : w)), b]);
    expect(paramError(v, off)!.relL2).toBeGreaterThan(0.1);
    for (const m of [v, shifted, off]) m.dispose();
  });
});
