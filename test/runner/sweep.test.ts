import { describe, expect, it } from 'vitest';
import { describeCellError, runSweep, workerError, type CellOutcome } from '../../src/runner/sweep.js';
import { readGridSpec } from '../../src/runner/grid.js';
import { planSweep, validateGridSpec as validateGrid } from '../../src/runner/plan.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataError, MseError, UsageError } from '../../src/errors.js';

describe('sweep scheduler (issue 13.7)', () => {
  it('a cell that throws anything (not only MseError) is recorded as failed and the sweep goes on', async () => {
    for (const lanes of [1, 2]) {
      const seen: Array<[number, CellOutcome]> = [];
      await runSweep(
        [1, 2, 3, 4],
        lanes,
        async (t) => {
          if (t === 2) throw new TypeError("Cannot read properties of undefined (reading 'shape')");
          if (t === 3) throw new DataError('mnist: train-images not found');
          return { rows: [] };
        },
        (t, o) => seen.push([t, o]),
      );
      expect(seen.map(([t]) => t).sort()).toEqual([1, 2, 3, 4]);
      expect(seen.find(([t]) => t === 2)?.[1].error).toBe(
        "internal error: Cannot read properties of undefined (reading 'shape')",
      );
      expect(seen.find(([t]) => t === 3)?.[1].error).toBe('mnist: train-images not found');
    }
  });

  it('a failure to record stops the sweep, aborts the other lanes and is rethrown', async () => {
    let aborted = 0;
    const finished: number[] = [];
    const full = new MseError('results', 'cannot append to r.csv: no space left on device (ENOSPC in write)');
    await expect(
      runSweep(
        [1, 2, 3, 4, 5, 6],
        2,
        async () => ({ rows: [] }),
        (t) => {
          if (t === 2) throw full;
          finished.push(t);
        },
        () => aborted++,
      ),
    ).rejects.toBe(full);
    expect(aborted).toBe(1);
    expect(finished.length).toBeLessThan(5);
  });

  it("a worker's reason is its error line, never the stack frame after it", () => {
    const stderr = [
      'backend: wasm',
      "mse: internal error: TypeError: Cannot read properties of undefined (reading 'x')",
      '    at runCell (file:///dist/bench/cell.js:10:5)',
      '    at async attack (file:///dist/cli/attack.js:3:1)',
      '',
    ].join('\n');
    expect(workerError(stderr, 1, null)).toBe(
      "internal error: TypeError: Cannot read properties of undefined (reading 'x')",
    );
    expect(workerError('mse: error: pool fashion-mnist not found (set MSE_DATA_DIR)\n', 1, null)).toBe(
      'pool fashion-mnist not found (set MSE_DATA_DIR)',
    );
    expect(workerError('', null, 'SIGKILL')).toBe('worker killed by SIGKILL');
    expect(workerError('Killed\n', 137, null)).toBe('worker exited with code 137: Killed');
    expect(describeCellError(Object.assign(new Error('x'), { code: 'ENOSPC', syscall: 'write' }))).toBe(
      'no space left on device (ENOSPC in write)',
    );
  });
});

describe('spec files and grids (issue 13.5)', () => {
  const spec = (o: object) => {
    const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-spec-')), 'spec.json');
    writeFileSync(f, JSON.stringify(o));
    return f;
  };
  it('a seed listed twice, a negative seed, and empty lists are usage errors', () => {
    const g = (seeds: number[]) => ({ datasets: ['linear'], seeds });
    expect(() => validateGrid(g([1, 1]))).toThrow(/seed 1 is listed twice/);
    expect(() => validateGrid(g([1, -1]))).toThrow(/seed -1 is not allowed/);
    expect(() => validateGrid(g([1.5]))).toThrow(UsageError);
    expect(() => validateGrid({ ...g([1]), budgets: [] })).toThrow(/no budgets/);
    for (const field of ['victims', 'attacks', 'budgets', 'defenses', 'datasets']) {
      expect(() => readGridSpec(spec({ datasets: ['linear'], [field]: [] }))).toThrow(
        new RegExp(`${field} is an empty list`),
      );
    }
    expect(() => readGridSpec(spec({ datasets: ['linear'], seeds: [] }))).toThrow(UsageError);
    expect(() => readGridSpec(spec({ datasets: ['linear'], seeds: 0 }))).toThrow(UsageError);
    expect(() => readGridSpec(spec({ datasets: ['linear'], attacks: [''] }))).toThrow(UsageError);
  });

  it('the same cell named twice is one cell', async () => {
    const { cells } = await planSweep(
      { datasets: ['linear', 'linear'], attacks: ['eq-lr', 'eq-lr'], budgets: ['1x'], seeds: [1] },
      { data: {} },
    );
    expect(cells).toHaveLength(1);
    // two spellings of one cell (a default written out) are one cell too
    const two = await planSweep(
      { datasets: ['linear'], attacks: ['eq-lr', 'eq-lr:multiple=100'], budgets: ['1x'], seeds: [1] },
      { data: {} },
    );
    expect(two.cells).toHaveLength(1);
  });
});
