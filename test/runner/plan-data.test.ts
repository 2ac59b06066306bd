import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkPlanData } from '../../src/runner/plan-data.js';
import { runCell } from '../../src/runner/run-cell.js';
import { cellSpec, makePlan, type PlanCell } from '../../src/runner/plan.js';
import { parseAttackSpec } from '../../src/attacks/registry.js';
import { parseModelSpec } from '../../src/models/zoo.js';
import { reproduce } from '../../src/runner/reproduce.js';
import { cellId } from '../../src/runner/result-row.js';
import { initBackend } from '../../src/compute/backend.js';
import type { ResolveOptions } from '../../src/data/resolve.js';
import { DataError, MseError } from '../../src/errors.js';
import { HAVE_SHARED, SHARED_DATA, restoreEnv } from '../testing/fixtures.js';

const tmp = (p: string) => mkdtempSync(path.join(os.tmpdir(), p));

// A fresh machine: no data dir, nothing in the download cache or under /usr/share/datasets, no network.
let fresh: ResolveOptions;
const saved: Record<string, string | undefined> = {};
beforeEach(() => {
  for (const k of ['MSE_DATA_DIR', 'MSE_OFFLINE', 'MSE_CACHE_DIR']) saved[k] = process.env[k];
  const empty = tmp('mse-plan-empty-');
  process.env.MSE_DATA_DIR = empty;
  process.env.MSE_OFFLINE = '1';
  process.env.MSE_CACHE_DIR = tmp('mse-plan-cache-');
  fresh = { dataDir: empty, systemDirs: [] };
});
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) restoreEnv(k, v);
});

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const ref = (spec: string) => {
  const { unit, values } = parseAttackSpec(spec);
  return { name: unit.name, params: values };
};
const cell = (dataset: string, attack: string, _victim = 'cnn', _defenses: string[] = []) => ({
  dataset,
  attack: ref(attack),
});
/** a plan cell by hand (no plan: the runner chooses the pool itself) */
const handCell = (dataset: string, attack: string, victim: string, budget: number, pool?: string): PlanCell => ({
  dataset,
  attack: ref(attack),
  victim: parseModelSpec(victim),
  defenses: [],
  seed: 1,
  budgets: [budget],
  ids: [],
  pool,
  plugins: [],
  unifSize: 500,
});

describe('checkPlanData: every dataset a plan needs, resolved before any training', () => {
  it('an mnist Knockoff plan on a fresh offline machine uses the embedded Fashion-MNIST test split and says so once', async () => {
    const plan = await checkPlanData(
      [
        cell('mnist', 'knockoff'),
        cell('mnist', 'knockoff', 'cnn', ['poison']),
        cell('mnist', 'knockoff-adaptive', 'cnn', ['poison']),
      ],
      fresh,
    );
    expect(plan.cells.map((c) => c.pool)).toEqual([
      'fashion-mnist@test10k',
      'fashion-mnist@test10k',
      'fashion-mnist@test10k',
    ]);
    expect(plan.datasets['fashion-mnist@test10k']).toMatchObject({ variant: 'test10k', used_as: ['pool'] });
    expect(plan.datasets.mnist).toMatchObject({ variant: 'npm10k-split', used_as: ['victim'] });
    expect(plan.notes.filter((n) => /embedded/.test(n))).toHaveLength(1);
    expect(plan.notes.join('\n')).toMatch(/mse datasets fetch fashion-mnist/);
  });

  it('attacks without a pool need only the victim data; seed sets come from it', async () => {
    const plan = await checkPlanData([cell('mnist', 'jbda'), cell('moons', 'retrain-uniform', 'mlp')], fresh);
    expect(plan.cells).toEqual([{}, {}]);
    expect(plan.datasets.mnist.used_as).toEqual(['victim', 'seed']);
    expect(plan.datasets.moons.used_as).toEqual(['victim']);
  });

  it('missing files with no embedded fallback: ONE DataError naming each file once and every way to get it', async () => {
    let err: unknown;
    try {
      await checkPlanData(
        [
          cell('mnist', 'knockoff:pool=kmnist'),
          cell('mnist', 'knockoff:pool=kmnist', 'cnn', ['poison']),
          cell('adult', 'eq-lr', 'logistic'),
          cell('fashion-mnist', 'jbda'),
        ],
        fresh,
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    const e = err as DataError;
    const text = `${e.message} (${e.hint})`;
    expect(text).not.toContain('\n');
    for (const f of [
      'kmnist-test-imgs.npz',
      'kmnist-test-labels.npz',
      'adult.data',
      'adult.test',
      'train-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
    ])
      expect(e.message).toContain(f);
    expect(e.message.split('kmnist-test-imgs.npz')).toHaveLength(2); // named once, though two cells need it
    expect(e.message).toMatch(/kmnist \(pool of knockoff\)/);
    expect(e.message).toMatch(/adult \(victim data\)/);
    expect(e.hint).toContain('mse datasets fetch kmnist adult fashion-mnist');
    expect(e.hint).toContain('MSE_DATA_DIR');
    expect(e.hint).toContain('--data-dir');
    expect(e.hint).toContain('MSE_OFFLINE');
    expect(e.hint).toMatch(/Debian's dataset-fashion-mnist package \(\/usr\/share\/datasets\/fashion-mnist\)/);
  });

  it('an explicit pool=fashion-mnist@test10k is honoured; an unknown pool variant is a usage error', async () => {
    const plan = await checkPlanData([cell('mnist', 'knockoff:pool=fashion-mnist@test10k')], fresh);
    expect(plan.cells[0].pool).toBe('fashion-mnist@test10k');
    await expect(checkPlanData([cell('mnist', 'knockoff:pool=fashion-mnist@full9')], fresh)).rejects.toThrow(
      /fashion-mnist has no variant 'full9'/,
    );
  });

  describe.skipIf(!HAVE_SHARED)('with the full pool present', () => {
    it('uses the full dataset and leaves the cell id as it was', async () => {
      const plan = await checkPlanData([cell('mnist', 'knockoff')], { dataDir: SHARED_DATA, systemDirs: [] });
      expect(plan.cells[0].pool).toBe('fashion-mnist');
      expect(plan.datasets['fashion-mnist']).toMatchObject({ variant: 'official', used_as: ['pool'] });
      expect(plan.notes.some((n) => /embedded/.test(n))).toBe(false);
      const c = handCell('mnist', 'knockoff', 'cnn', 1000);
      expect(cellSpec({ ...c, pool: plan.cells[0].pool }, 1000).attack_params).toBe(cellSpec(c, 1000).attack_params);
    });
  });
});

describe('a Knockoff cell with the embedded pool', () => {
  it('runs, and its row records the pool variant (in attack_params, so in the cell id)', async () => {
    const plan = await makePlan(
      [
        {
          dataset: 'mnist',
          victim: 'mlp:hidden=16,epochs=1',
          attack: 'knockoff:arch=mlp,epochs=1',
          defenses: [],
          budgets: ['200'],
          seed: 1,
        },
      ],
      { data: fresh, unifSize: 500 },
    );
    const input = plan.cells[0];
    expect(input.pool).toBe('fashion-mnist@test10k');
    const out = await runCell(input, { runId: 't', data: fresh });
    expect(out.row.status).toMatch(/^ok/);
    expect(out.row.queries).toBe(200);
    expect(String(out.row.attack_params)).toContain('pool=fashion-mnist@test10k');
    expect(String(out.row.attack_params)).not.toContain('pool=auto');
    // the id the bench computes from the plan is the id of the row written
    expect(out.row.cell_id).toBe(input.ids[0]);
    expect(out.row.cell_id).toBe(cellId(cellSpec(input, 200)));
    // a cell built by hand, without the plan's choice, makes the same choice
    const again = await runCell({ ...input, pool: undefined }, { runId: 't', data: fresh });
    expect(again.row.cell_id).toBe(out.row.cell_id);
    expect(again.notes.some((n) => /embedded/.test(n))).toBe(true);
  });

  it('a pool that cannot be had fails the cell with one clear DataError, before the victim is trained', async () => {
    const input = handCell('mnist', 'knockoff:pool=kmnist,epochs=1', 'mlp:hidden=16,epochs=1', 100);
    let err: unknown;
    try {
      await runCell(input, { runId: 't', data: fresh });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MseError);
    expect((err as MseError).message).toMatch(
      /^knockoff's transfer pool kmnist: .*kmnist \(pool of knockoff\): kmnist-test-imgs\.npz, kmnist-test-labels\.npz; looked in /,
    );
    expect((err as MseError).hint).toContain('mse datasets fetch kmnist');
    expect((err as MseError).message).not.toContain('\n');
    const victims = path.join(process.env.MSE_CACHE_DIR!, 'victims');
    expect(existsSync(victims) ? readdirSync(victims) : []).toEqual([]);
  });
});

describe('mse reproduce checks its data before its first cell', () => {
  it('a spec with missing data fails with the one DataError, having written no row', async () => {
    const dir = tmp('mse-plan-spec-');
    const spec = path.join(dir, 'toy.json');
    const cells = [
      { dataset: 'moons', victim: 'mlp', attack: 'retrain-uniform', budget: '10', expect: {} },
      { dataset: 'adult', victim: 'logistic', attack: 'eq-lr', budget: '1x', expect: {} },
    ];
    writeFileSync(
      spec,
      JSON.stringify({ paper: 'toy', title: 'toy', mirrors: 'none', scales: { ci: { seeds: [1], cells } } }),
    );
    const out = path.join(dir, 'out');
    await expect(reproduce(spec, 'ci', out, fresh)).rejects.toThrow(/adult \(victim data\): adult\.data, adult\.test/);
    expect(existsSync(path.join(out, 'results.csv'))).toBe(false);
  });
});
