/** The plan and the runner together: budgets refused one pass at a time, not all for the smallest. */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { makePlan } from '../../src/runner/plan.js';
import { runCell } from '../../src/runner/run-cell.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('requirements are checked per budget', () => {
  it('a budget too small for the attack is not-applicable; a larger one in the same cell still runs', async () => {
    const plan = await makePlan(
      [
        {
          dataset: 'moons',
          victim: 'logistic',
          attack: 'retrain-adaptive:epochs=20',
          defenses: [],
          budgets: ['1', '50'],
          seed: 1,
        },
      ],
      { data: {}, unifSize: 200 },
    );
    const { rows } = await runCell(plan.cells[0], { runId: 't' });
    expect(rows.map((r) => r.budget)).toEqual([1, 50]);
    expect(rows[0].status).toMatch(
      /^not-applicable: retrain-adaptive cannot run here: it needs a finite query budget of at least 2/,
    );
    expect(rows[0].queries).toBe(0);
    expect(rows[1].status).toMatch(/^ok/);
    expect(rows[1].queries).toBe(50);
    expect(Number(rows[1].agreement_test)).toBeGreaterThan(0.8);
  });
});
