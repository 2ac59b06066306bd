import { describe, expect, it } from 'vitest';
import { accuracyDomain, MIN_ACC_SPAN, renderSvg, tradeoffSpec } from '../../src/report/figures.js';

describe('figures that do not mislead', () => {
  it('an accuracy axis never spans less than MIN_ACC_SPAN: 0.0002 of honest accuracy looks like none', () => {
    const [lo, hi] = accuracyDomain([0.97662, 0.9768]);
    expect(hi - lo).toBeGreaterThanOrEqual(MIN_ACC_SPAN - 1e-9);
    expect(lo).toBeLessThanOrEqual(0.97662);
    expect(hi).toBeGreaterThanOrEqual(0.9768);
    expect(hi).toBeLessThanOrEqual(1);
    // a real spread keeps its own span, with a little room
    const [a, b] = accuracyDomain([0.5, 0.9]);
    expect(a).toBeCloseTo(0.48, 6);
    expect(b).toBeCloseTo(0.92, 6);
    // near 0 the span grows upward
    expect(accuracyDomain([0.001, 0.002])).toEqual([0, 0.05]);
  });

  it('the trade-off figure: the victim as a reference line, the frontier as a step, the attacker axis 0–1', async () => {
    const points = [
      { defense: 'none', defendedAcc: 0.9768, attackerAcc: 0.95, pareto: false },
      { defense: 'mad', defendedAcc: 0.97662, attackerAcc: 0.9, pareto: true },
      { defense: 'noise', defendedAcc: 0.95, attackerAcc: 0.6, pareto: true },
    ];
    const spec = tradeoffSpec('t', points, 0.9768) as unknown as {
      layer: Array<{
        mark: { type: string; interpolate?: string };
        encoding?: Record<string, { scale?: { domain?: number[] } }>;
      }>;
    };
    const frontier = spec.layer.find((l) => l.mark.type === 'line');
    expect(frontier?.mark.interpolate).toBe('step-before');
    const marks = spec.layer.find((l) => l.mark.type === 'point');
    const [lo, hi] = marks!.encoding!.x.scale!.domain!;
    expect(hi - lo).toBeGreaterThanOrEqual(MIN_ACC_SPAN - 1e-9);
    expect(marks!.encoding!.y.scale!.domain).toEqual([0, 1]);
    const svg = await renderSvg(tradeoffSpec('t', points, 0.9768));
    expect(svg).toContain('victim 0.977');
    expect(svg).toContain('defender accuracy (what honest users get)');
  });
});
