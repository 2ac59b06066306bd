import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cellWork, costSamples, estimatePlan, formatDuration, type CostSample } from '../../src/runner/estimate.js';
import type { PlanCell } from '../../src/runner/plan.js';
import { parseModelSpec } from '../../src/models/zoo.js';

const cell = (attack: string, params: Record<string, number>, budgets: number[], defense = 'none'): PlanCell => ({
  dataset: 'mnist',
  victim: parseModelSpec('cnn'),
  defenses: defense === 'none' ? [] : [{ name: defense, params: {} }],
  attack: { name: attack, params },
  seed: 1,
  budgets,
  ids: budgets.map(String),
  plugins: [],
});

describe('the plan cost model (mse bench --plan)', () => {
  it('work: sample-epochs over every budget prefix for a training attack, queries for one that does not train', () => {
    expect(cellWork('knockoff', { epochs: 10 }, [1000, 5000])).toBe(60_000);
    expect(cellWork('knockoff', {}, [1000])).toBeGreaterThan(0); // its declared default epochs
    expect(cellWork('eq-lr', {}, [11, 22])).toBe(33); // each budget its own pass
  });

  it('calibrates from past cells: a cell’s last row holds its wall time; the closest match wins', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-est-'));
    const file = path.join(dir, 'results.csv');
    const head = 'cell_id,run_id,dataset,victim,defense,defense_params,attack,attack_params,budget,seed,wall_s,status';
    writeFileSync(
      file,
      [
        head,
        // one Knockoff cell with two budgets: 60k sample-epochs in 63 s (3 s overhead: 1 ms each)
        '000000000000000a,r,mnist,cnn,mad,eps=1,knockoff,epochs=10,1000,1,20,ok',
        '000000000000000b,r,mnist,cnn,mad,eps=1,knockoff,epochs=10,5000,1,63,ok',
        // undefended, twice as fast
        '000000000000000c,r,mnist,cnn,none,,knockoff,epochs=10,1000,1,33,ok',
        // a failed row teaches nothing
        '000000000000000d,r,mnist,cnn,none,,jbda,,1000,1,999,failed: x',
      ].join('\n') + '\n',
    );
    const samples = costSamples([file, path.join(dir, 'missing.csv')]);
    expect(samples).toEqual([
      { attack: 'knockoff', dataset: 'mnist', victim: 'cnn', defense: 'mad', work: 60_000, wallS: 63 },
      { attack: 'knockoff', dataset: 'mnist', victim: 'cnn', defense: 'none', work: 10_000, wallS: 33 },
    ]);
    const mad = estimatePlan([cell('knockoff', { epochs: 10 }, [1000, 5000], 'mad')], samples, 1);
    expect(mad.cells[0].seconds).toBeCloseTo(63, 6);
    expect(mad.cells[0].basis).toMatch(/1 past cell \(knockoff mnist\/cnn \[mad\]\)/);
    // another defense: the attack on this model, any defense (median of 1 and 3 ms per sample-epoch)
    const other = estimatePlan([cell('knockoff', { epochs: 10 }, [1000], 'noise')], samples, 1);
    expect(other.cells[0].seconds).toBeCloseTo(3 + 0.002 * 10_000, 6);
    // no history of the attack: the bench:perf default, said so
    expect(estimatePlan([cell('jbda', { epochs: 10 }, [1000])], samples, 1).cells[0].basis).toMatch(/default/);
  });

  it('spreads cells over the workers in the plan order, each to the first one free', () => {
    const samples: CostSample[] = [
      { attack: 'knockoff', dataset: 'mnist', victim: 'cnn', defense: 'none', work: 1000, wallS: 4 },
    ];
    // 3 + 1 ms × work: 13, 13, 23 s
    const cells = [
      cell('knockoff', { epochs: 1 }, [10_000]),
      cell('knockoff', { epochs: 1 }, [10_000]),
      cell('knockoff', { epochs: 1 }, [20_000]),
    ];
    expect(estimatePlan(cells, samples, 1).wallS).toBeCloseTo(49, 6);
    expect(estimatePlan(cells, samples, 2).wallS).toBeCloseTo(36, 6); // 13 | 13, then 23 after the first
    expect(estimatePlan(cells, samples, 8).wallS).toBeCloseTo(23, 6);
    expect(formatDuration(49)).toBe('49 s');
    expect(formatDuration(750)).toBe('12 min 30 s');
    expect(formatDuration(3900)).toBe('1 h 05 min');
  });
});
