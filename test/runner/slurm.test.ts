/**
 * A real single-node Slurm: a 4-shard quick sweep submitted with sbatch (array + dependent merge)
 * must merge into the single-process run's metrics. Runs only where a Slurm controller answers
 * (`sinfo` succeeds); elsewhere it is reported as skipped, with the reason in its name.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import path from 'node:path';

const slurmUp = spawnSync('sinfo', ['-h'], { timeout: 5000 }).status === 0;
const mse = (args: string[]) =>
  spawnSync(process.execPath, ['bin/mse.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 300_000,
  });

describe('Slurm job arrays', () => {
  it.skipIf(!slurmUp)(
    `a 4-shard sweep through sbatch merges into the single-process results${slurmUp ? '' : ' — SKIPPED: no running Slurm here (sinfo failed)'}`,
    async () => {
      // inside the checkout: the jobs run on the cluster's (here: this) file system
      mkdirSync(path.join(process.cwd(), '.vitest-cache'), { recursive: true });
      const dir = mkdtempSync(path.join(process.cwd(), '.vitest-cache', 'slurm-'));
      const grid = [
        'bench',
        '-d',
        'linear',
        '-a',
        'eq-lr',
        '--defense',
        'round:decimals=1,2,3',
        '-b',
        '1x',
        '--seeds',
        '2',
      ];
      expect(
        mse([
          ...grid,
          '-o',
          path.join(dir, 'cluster'),
          '--emit',
          'slurm',
          '--shards',
          '4',
          '--slurm-cpus',
          '1',
          '--slurm-time',
          '00:10:00',
        ]).status,
      ).toBe(0);
      expect(spawnSync('bash', [path.join(dir, 'cluster', 'submit.sh')], { encoding: 'utf8' }).status).toBe(0);
      const merged = path.join(dir, 'cluster', 'results.csv');
      for (let i = 0; i < 600 && !existsSync(merged); i++) await new Promise((r) => setTimeout(r, 1000));
      expect(existsSync(merged)).toBe(true);
      expect(mse([...grid, '-j', '1', '-o', path.join(dir, 'single')]).status).toBe(0);
      expect(mse(['compare', path.join(dir, 'single', 'results.csv'), merged, '--fail-on-regression']).status).toBe(0);
    },
    700_000,
  );
});
