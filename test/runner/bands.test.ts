import { describe, expect, it } from 'vitest';
import { measureBands, measuredBand, metricRange } from '../../src/runner/bands.js';
import type { PaperCell } from '../../src/runner/reproduce.js';

describe('bands from measured seeds', () => {
  it('reaches 2 sd past the extreme seeds, rounded outward to three decimals', () => {
    // mean 0.8, sd 0.1: [0.7 − 0.2, 0.9 + 0.2]
    expect(measuredBand([0.7, 0.8, 0.9])).toEqual([0.5, 1.1]);
    const b = measuredBand([0.81234, 0.8201, 0.8177]);
    expect(b[0]).toBeLessThan(0.81234);
    expect(b[1]).toBeGreaterThan(0.8201);
    expect(Math.round(b[0] * 1000)).toBe(b[0] * 1000);
  });

  it('clamps to the metric range and keeps a single seed as a point band', () => {
    expect(measuredBand([0.95, 0.99, 0.999], metricRange('surrogate_acc'))[1]).toBe(1);
    expect(measuredBand([1.1, 1.12, 1.3], metricRange('honest_slowdown'))[0]).toBe(1);
    expect(measuredBand([0.5])).toEqual([0.5, 0.5]);
    expect(() => measuredBand([0.5, NaN])).toThrow(/finite/);
  });

  it('bands every checked metric per cell from its seeds, and names a seed that lacks one', () => {
    const a: PaperCell = {
      id: 'a',
      dataset: 'd',
      victim: 'v',
      attack: 'x',
      budget: '1k',
      expect: { surrogate_acc: [0, 1] },
    };
    const b: PaperCell = {
      id: 'b',
      dataset: 'd',
      victim: 'v',
      attack: 'x',
      budget: '5k',
      expect: { defended_acc: [0, 1] },
    };
    const planned = [
      { cell: a, seed: 1, id: 'a1' },
      { cell: a, seed: 2, id: 'a2' },
      { cell: b, seed: 1, id: 'b1' },
      { cell: b, seed: 2, id: 'b2' },
    ];
    const rows = new Map<string, Record<string, string>>([
      ['a1', { surrogate_acc: '0.6', pow_ratio: '3' }],
      ['a2', { surrogate_acc: '0.7', pow_ratio: '5' }],
      ['b1', { defended_acc: '0.97', surrogate_acc: '' }],
    ]);
    const { figures, missing } = measureBands(planned, rows, ['pow_ratio', 'surrogate_acc']);
    const got = Object.fromEntries(figures.map((f) => [`${f.cell.id} ${f.metric}`, f.band]));
    // sd of 0.6, 0.7 is 0.0707: 0.6 − 0.1414 and 0.7 + 0.1414, outward
    expect(got['a surrogate_acc']).toEqual([0.458, 0.842]);
    expect(got['a pow_ratio']).toEqual([0.171, 7.829]);
    expect(Object.keys(got)).toEqual(['a surrogate_acc', 'a pow_ratio']);
    expect(missing).toEqual(['b defended_acc']);
  });
});
