/**
 * The phase profile (issue 18.1): each row says where its cell's wall time went, and mse bench sums
 * it into one line.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { makePlan } from '../../src/runner/plan.js';
import { PHASES, PhaseClock, formatPhases, parsePhases, phaseSummary } from '../../src/runner/phases.js';
import { runCell } from '../../src/runner/run-cell.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('PhaseClock', () => {
  it('charges the time between entries to the phase entered, and moves the API time out of training', () => {
    let now = 0;
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const c = new PhaseClock();
      c.enter('load');
      now = 1000;
      c.enter('victim');
      now = 3500;
      c.enter('training');
      now = 7500;
      c.move('training', 'queries', 1.5);
      c.enter('eval');
      now = 8000;
      const s = c.snapshot();
      expect(s).toEqual({ load: 1, victim: 2.5, setup: 0, utility: 0, queries: 1.5, training: 2.5, eval: 0.5 });
      // a move never takes more than the phase holds
      c.move('setup', 'queries', 9);
      expect(c.snapshot().queries).toBe(1.5);
      expect(parsePhases(formatPhases(s))).toEqual(s);
    } finally {
      spy.mockRestore();
    }
  });

  it('parses only what it wrote: unknown keys, negatives and empty values are dropped', () => {
    expect(parsePhases('')).toEqual({});
    expect(parsePhases('load=1;bogus=2;victim=-1;eval=;training=x;queries=0.25')).toEqual({ load: 1, queries: 0.25 });
  });

  it('sums a sweep per cell, counting a learning curve once (its rows are cumulative)', () => {
    const row = (attack: string, budget: string, wall: string, phases: string) => ({
      dataset: 'mnist',
      victim: 'cnn',
      defense: 'none',
      defense_params: '',
      attack,
      attack_params: '',
      seed: '1',
      budget,
      wall_s: wall,
      phase_s: phases,
    });
    const line = phaseSummary([
      row('knockoff', '1000', '10', 'load=2;victim=1;setup=0;utility=2;queries=1;training=2;eval=2'),
      row('knockoff', '10000', '20', 'load=2;victim=1;setup=0;utility=2;queries=3;training=8;eval=4'),
      row('jbda', '1000', '10', 'load=2;victim=1;setup=0;utility=2;queries=1;training=3;eval=1'),
      row('old', '1000', '5', ''), // a row of an older mse: no phases
    ]);
    expect(line).toBe(
      'time by phase over 2 cells (30 s in all): load 4.0 s (13%) · victim 2.0 s (7%) · utility 4.0 s (13%) · queries 4.0 s (13%) · training 11 s (37%) · eval 5.0 s (17%)',
    );
    expect(phaseSummary([row('old', '1000', '5', '')])).toBeUndefined();
  });
});

describe('phase_s in the rows', () => {
  it('a learning curve: every phase recorded, cumulative, summing to the wall time', async () => {
    const plan = await makePlan(
      [
        {
          dataset: 'iris',
          victim: 'mlp:hidden=8,epochs=5',
          defenses: ['noise:sigma=0.05'],
          attack: 'jbda:arch=mlp,seedsize=20,roundepochs=2,epochs=3',
          budgets: ['60', '150'],
          seed: 2,
        },
      ],
      { data: {}, unifSize: 100 },
    );
    const out = await runCell(plan.cells[0], { runId: 't' });
    expect(out.rows).toHaveLength(2);
    const [a, b] = out.rows.map((r) => ({ wall: Number(r.wall_s), s: parsePhases(String(r.phase_s)) }));
    for (const r of [a, b]) {
      expect(Object.keys(r.s).sort()).toEqual([...PHASES].sort());
      const sum = PHASES.reduce((t, p) => t + r.s[p]!, 0);
      // each phase is written to the millisecond (7 roundings), and read a moment after wall_s
      expect(sum).toBeLessThanOrEqual(r.wall + 0.005);
      expect(sum).toBeGreaterThan(0.95 * r.wall - 0.01);
      expect(r.s.queries!).toBeGreaterThan(0);
      expect(r.s.training!).toBeGreaterThan(0);
      expect(r.s.utility!).toBeGreaterThan(0);
    }
    // the rows are cumulative: the second's phases include the first's
    for (const p of PHASES) expect(b.s[p]!).toBeGreaterThanOrEqual(a.s[p]!);
    // one attack run serves both rows: they share its training, and the second is written after
    // the first's evaluation (on iris about a millisecond, below the column's resolution)
    expect(b.s.training).toBe(a.s.training);
    expect(b.wall).toBeGreaterThan(a.wall);
  });
});
