import { describe, expect, it } from 'vitest';
import { expandDefenseStack, expandSpec } from '../../src/runner/grid.js';
import { planSweep, refText } from '../../src/runner/plan.js';
import { stat, summarise, t95 } from '../../src/runner/summary.js';
import { MODELS } from '../../src/models/zoo.js';
import { DEFENSES } from '../../src/defenses/registry.js';
import { UsageError } from '../../src/errors.js';

describe('sweep grids', () => {
  it('a parameter with several values is swept; a list-typed parameter stays one value', () => {
    expect(expandSpec('mad:eps=0.1,0.5,ydist=l1,l2', DEFENSES.get('mad').params)).toEqual([
      'mad:eps=0.1,ydist=l1',
      'mad:eps=0.1,ydist=l2',
      'mad:eps=0.5,ydist=l1',
      'mad:eps=0.5,ydist=l2',
    ]);
    expect(expandSpec('mlp:hidden=256,128,activation=relu', MODELS.get('mlp').params)).toEqual([
      'mlp:hidden=256,128,activation=relu',
    ]);
    expect(expandSpec('top1', {})).toEqual(['top1']);
  });

  it("'+' stacks defenses, and every value is validated up front", () => {
    expect(expandDefenseStack('round:decimals=2,3+top1')).toEqual([
      ['round:decimals=2', 'top1'],
      ['round:decimals=3', 'top1'],
    ]);
    expect(() => expandDefenseStack('mad:eps=0.1,-1')).toThrow(UsageError);
    expect(() => expandDefenseStack('madd:eps=1')).toThrow(/Did you mean 'mad'/);
  });

  it('plans dataset × victim × defense × attack × seed cells with resolved budgets and typed parameters, the baseline first', async () => {
    const { cells } = await planSweep(
      {
        datasets: ['linear'],
        defenses: ['round:decimals=2,3'],
        attacks: ['eq-lr'],
        budgets: ['1x', '2x'],
        seeds: [1, 2],
      },
      { data: {} },
    );
    expect(cells).toHaveLength(6);
    expect(cells[0]).toMatchObject({
      dataset: 'linear',
      victim: { kind: 'logistic', params: {} },
      defenses: [{ name: 'none', params: {} }],
      attack: { name: 'eq-lr', params: { multiple: 100 } },
      seed: 1,
      budgets: [11, 22],
    });
    expect(cells[0].ids).toHaveLength(2);
    expect(cells.map((c) => c.defenses.map(refText).join('+'))).toEqual([
      'none',
      'none',
      'round:decimals=2',
      'round:decimals=2',
      'round:decimals=3',
      'round:decimals=3',
    ]);
    const noBase = await planSweep(
      { datasets: ['linear'], defenses: ['top1'], seeds: [1], baseline: false },
      { quick: true, data: {} },
    );
    expect(noBase.cells.every((c) => c.defenses[0].name === 'top1')).toBe(true);
    expect(noBase.cells.map((c) => c.attack.name)).toEqual(['eq-lr', 'retrain-adaptive']); // the defaults for a logistic victim
    await expect(planSweep({ datasets: ['mnsit'], seeds: [1] }, { quick: true, data: {} })).rejects.toThrow(
      /Did you mean 'mnist'/,
    );
  });
});

describe('summaries over seeds', () => {
  it('mean ± a Student-t 95% interval', () => {
    expect(t95(1)).toBeCloseTo(12.706, 3);
    expect(t95(100)).toBe(1.96);
    const s = stat([0.9, 0.92, 0.94]);
    expect(s.mean).toBeCloseTo(0.92, 12);
    expect(s.sd).toBeCloseTo(0.02, 12);
    expect(s.ci).toBeCloseTo((4.303 * 0.02) / Math.sqrt(3), 12);
    expect(Number.isNaN(stat([0.5]).ci)).toBe(true);
  });

  it('groups rows that differ only in seed', () => {
    const row = (seed: number, acc: number, budget = 100) => ({
      dataset: 'd',
      victim: 'v',
      defense: 'none',
      defense_params: '',
      attack: 'a',
      attack_params: '',
      budget,
      seed,
      surrogate_acc: acc,
      status: 'ok',
    });
    const g = summarise([row(1, 0.8), row(2, 0.9), row(1, 0.5, 200)], ['surrogate_acc']);
    expect(g).toHaveLength(2);
    expect(g[0].seeds).toBe(2);
    expect(g[0].metrics.surrogate_acc.mean).toBeCloseTo(0.85, 12);
    // the same names over other data or another model file are other experiments, not seeds of one
    const other = summarise(
      [
        { ...row(1, 0.8), victim_variant: 'file-aaaa' },
        { ...row(1, 0.6), victim_variant: 'file-bbbb' },
        { ...row(2, 0.7), dataset_variant: 'file-cccc' },
        row(2, 0.9), // an older file's row: no victim_variant column at all
        { ...row(3, 0.9), victim_variant: '' },
      ],
      ['surrogate_acc'],
    );
    expect(other.map((x) => x.seeds)).toEqual([1, 1, 1, 2]);
  });
});
