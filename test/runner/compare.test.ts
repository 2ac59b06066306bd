import { describe, expect, it } from 'vitest';
import { compareResults, regressions } from '../../src/runner/compare.js';

const row = (seed: number, acc: number, extra: Record<string, string> = {}) => ({
  dataset: 'mnist',
  victim: 'cnn',
  defense: 'mad',
  defense_params: 'eps=0.5',
  attack: 'knockoff',
  attack_params: '',
  budget: '1000',
  seed: String(seed),
  surrogate_acc: String(acc),
  agreement_test: String(acc),
  wall_s: String(10 + seed),
  status: 'ok',
  ...extra,
});

describe('compare', () => {
  it('joins on cells, tests shared seeds pairwise, and ignores timing unless asked', () => {
    const a = [row(1, 0.8), row(2, 0.82), row(3, 0.81)];
    const same = compareResults(a, a);
    expect(same.cells).toHaveLength(1);
    expect(same.cells[0].deltas.every((d) => d.delta === 0)).toBe(true);
    expect(same.cells[0].deltas.some((d) => d.metric === 'wall_s')).toBe(false);
    expect(compareResults(a, a, { timing: true }).cells[0].deltas.some((d) => d.metric === 'wall_s')).toBe(true);
    expect(regressions(same)).toEqual([]);

    const up = [row(1, 0.9), row(2, 0.93), row(3, 0.91)];
    const d = compareResults(a, up).cells[0].deltas.find((x) => x.metric === 'surrogate_acc')!;
    expect(d.delta).toBeCloseTo(0.1033, 3);
    expect(d.n).toBe(3);
    expect(d.significant).toBe(true);
    expect(regressions(compareResults(a, up))).toHaveLength(2); // surrogate_acc and agreement_test moved

    // noise around the same mean is not significant
    const noisy = [row(1, 0.83), row(2, 0.79), row(3, 0.82)];
    const n = compareResults(a, noisy).cells[0].deltas.find((x) => x.metric === 'surrogate_acc')!;
    expect(n.significant).toBe(false);
    expect(regressions(compareResults(a, noisy))).toEqual([]);
  });

  it('flags cells present in only one file; with one seed, a change beyond the tolerance counts', () => {
    const a = [row(1, 0.8), { ...row(1, 0.5), budget: '5000' }];
    const b = [row(1, 0.805), { ...row(1, 0.5), defense: 'none', defense_params: '' }];
    const c = compareResults(a, b, { tolerance: 0.01 });
    expect(c.onlyA).toEqual(['mnist/cnn mad:eps=0.5 knockoff @5000']);
    expect(c.onlyB).toEqual(['mnist/cnn none knockoff @1000']);
    expect(regressions(c)).toEqual(['mnist/cnn mad:eps=0.5 knockoff @5000: missing from the new results']);
    expect(regressions(compareResults(a.slice(0, 1), [row(1, 0.85)]))).toHaveLength(2);
  });
});
