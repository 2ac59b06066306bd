import { describe, expect, it } from 'vitest';
import { SweepStatus } from '../../src/cli/sweep-status.js';

describe('sweep status (piped stderr and --json)', () => {
  it('names each running cell with its phase, counts cells, and scales the ETA by what finished cells took', () => {
    const cells = ['a', 'b', 'c'];
    const est: Record<string, number> = { a: 10, b: 10, c: 20 };
    const s = new SweepStatus<string>(
      4,
      1,
      (c) => est[c],
      (c) => `cell ${c}`,
      1,
      new Set(cells),
    );
    s.start('a');
    s.progress('a', 'attack', { phase: 'train', done: 300, total: 1000, label: 'budget 5000, epoch 3/10' });
    const e = s.event();
    expect(e).toMatchObject({ event: 'status', cells_done: 1, cells_total: 4 });
    expect(e.running).toEqual([
      { cell: 'cell a', phase: 'training', done: 300, total: 1000, detail: 'budget 5000, epoch 3/10' },
    ]);
    expect(s.line()).toMatch(
      /^\[\d+ s\] 1\/4 cells done; eta \d+ s \| cell a: training 300\/1000 \(budget 5000, epoch 3\/10\)$/,
    );
    // before anything finished: the estimates themselves (≈ 10 + 10 + 20 s on one worker)
    expect(s.eta()).toBeGreaterThan(39);
    expect(s.eta()).toBeLessThanOrEqual(40);
    s.finish('a');
    expect(s.event().cells_done).toBe(2);
    expect(s.event().running).toEqual([]);
  });
});

describe('sweep status ETA', () => {
  it('is bounded below by the longest cell left, and a failed cell does not rescale it', () => {
    const est: Record<string, number> = { a: 10, b: 1000 };
    const s = new SweepStatus<string>(
      2,
      0,
      (c) => est[c],
      (c) => c,
      4,
      new Set(['a', 'b']),
    );
    // four workers but one long cell: it takes its own 1000 s, not a quarter of the total
    expect(s.eta()).toBeCloseTo(1000, 0);
    s.start('a');
    s.finish('a', false); // failed at once: says nothing about the rate
    expect(s.eta()).toBeCloseTo(1000, 0);
  });
});
