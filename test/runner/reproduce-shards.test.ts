/**
 * `mse reproduce` over several papers, split into tasks (`--shard i/n`) and folded back: the same
 * rows as one process, checked and tabled once every pass is in; `--emit slurm` writes that as one
 * array (a task per query pass) and a dependent check + report job, run for real on a single-node
 * Slurm where one answers (`sinfo`).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readResults } from '../../src/runner/csv-writer.js';
import { TIMING_COLUMNS } from '../../src/runner/result-row.js';

const mse = (args: string[]) =>
  spawnSync(process.execPath, ['bin/mse.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', MSE_THREADS: '1' },
    timeout: 300_000,
  });

function specs(dir: string): string[] {
  const cell = (budget: string, defenses: string[] = []) => ({
    dataset: 'linear',
    victim: 'logistic',
    attack: 'eq-lr',
    budget,
    defenses,
    expect: { agreement_test: [0.9, 1] },
  });
  const a = {
    paper: 'toy-a',
    title: 'toy A',
    mirrors: 'eq-lr on a linear toy',
    scales: {
      ci: {
        seeds: [1, 2],
        cells: [
          { id: 'one', ...cell('1x') },
          { id: 'two', ...cell('2x') },
        ],
      },
    },
  };
  const b = {
    paper: 'toy-b',
    title: 'toy B',
    mirrors: 'eq-lr against rounding',
    scales: { ci: { seeds: [1], cells: [cell('2x', ['round:decimals=3'])] } },
  };
  const files = [path.join(dir, 'toy-a.json'), path.join(dir, 'toy-b.json')];
  writeFileSync(files[0], JSON.stringify(a));
  writeFileSync(files[1], JSON.stringify(b));
  return files;
}

/** metric columns of a results file, keyed by cell id */
function metrics(file: string): Map<string, string> {
  const skip = new Set<string>([...TIMING_COLUMNS, 'run_id']);
  return new Map(
    readResults(file).map((r) => [
      r.cell_id,
      JSON.stringify(Object.entries(r).filter(([k]) => !skip.has(k as (typeof TIMING_COLUMNS)[number]))),
    ]),
  );
}

function scratch(): string {
  mkdirSync(path.join(process.cwd(), '.vitest-cache'), { recursive: true });
  return mkdtempSync(path.join(process.cwd(), '.vitest-cache', 'repro-'));
}

describe('mse reproduce across papers and tasks', () => {
  it('shards run only their passes and check nothing; the run after folds them in and equals one process', () => {
    const dir = scratch();
    const files = specs(dir);
    const one = mse(['reproduce', ...files, '-o', path.join(dir, 'one')]);
    expect(one.status, one.stderr).toBe(0);
    expect(one.stdout).toContain('2 of 2 papers passed every check');
    // 5 rows in 3 query passes (toy-a: budgets 1x and 2x share a pass per seed; toy-b: 1) dealt to 2 tasks
    const split = path.join(dir, 'split');
    for (const i of [0, 1]) {
      const r = mse(['reproduce', ...files, '-o', split, '--shard', `${i}/2`]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).not.toMatch(/passed/);
    }
    const shardRows = (p: string) =>
      readdirSync(path.join(split, p))
        .filter((f) => f.startsWith('shard-'))
        .reduce((a, f) => a + readResults(path.join(split, p, f)).length, 0);
    expect(shardRows('toy-a') + shardRows('toy-b')).toBe(5);
    expect(existsSync(path.join(split, 'toy-a', 'table.md'))).toBe(false);
    const after = mse(['reproduce', ...files, '-o', split]);
    expect(after.status, after.stderr).toBe(0);
    // nothing left to run: every pass came from the shards
    expect(after.stderr).not.toMatch(/\[\d+\/\d+\]/);
    for (const p of ['toy-a', 'toy-b']) {
      expect(metrics(path.join(split, p, 'results.csv'))).toEqual(metrics(path.join(dir, 'one', p, 'results.csv')));
      expect(readFileSync(path.join(split, p, 'table.md'), 'utf8')).toContain('| eq-lr | linear | logistic |');
    }
  }, 300_000);

  it('--emit slurm: one array task per query pass, then a job that checks and reports each paper', () => {
    const dir = scratch();
    const files = specs(dir);
    const out = path.join(dir, 'cluster');
    const r = mse(['reproduce', ...files, '-o', out, '--emit', 'slurm', '--slurm-cpus', '1']);
    expect(r.status, r.stderr).toBe(0);
    const array = readFileSync(path.join(out, 'sbatch-array.sh'), 'utf8');
    expect(array).toContain('#SBATCH --array=0-2');
    expect(array).toContain(`--shard "\${SLURM_ARRAY_TASK_ID}/3"`);
    const merge = readFileSync(path.join(out, 'sbatch-merge.sh'), 'utf8');
    expect(merge).toContain(`npx mse reproduce ${files.join(' ')} --scale ci --out ${out} || status=$?`);
    expect(merge).toMatch(/exit "\$status"\n$/);
    expect(merge).toContain(`npx mse report ${path.join(out, 'toy-b')}`);
    // nothing ran
    expect(existsSync(path.join(out, 'toy-a'))).toBe(false);
    // refused: a bad flag, both names and --all, a second paper of the same name
    expect(mse(['reproduce', '--all', files[0]]).stderr).toMatch(/not both/);
    expect(mse(['reproduce', files[0], '--emit', 'github']).stderr).toMatch(/--emit must be slurm/);
    expect(mse(['reproduce', files[0], files[0]]).stderr).toMatch(/named twice/);
    expect(mse(['reproduce']).stderr).toMatch(/name a paper/);
  });

  const slurmUp = spawnSync('sinfo', ['-h'], { timeout: 5000 }).status === 0;
  it.skipIf(!slurmUp)(
    `through a real Slurm: the array's tasks and the dependent job give the single-process tables${slurmUp ? '' : ' — SKIPPED: no running Slurm here (sinfo failed)'}`,
    async () => {
      const dir = scratch();
      const files = specs(dir);
      const out = path.join(dir, 'cluster');
      const r = mse([
        'reproduce',
        ...files,
        '-o',
        out,
        '--emit',
        'slurm',
        '--slurm-cpus',
        '1',
        '--slurm-time',
        '00:10:00',
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(spawnSync('bash', [path.join(out, 'submit.sh')], { encoding: 'utf8' }).status).toBe(0);
      // the report job writes each paper's report last
      const done = path.join(out, 'toy-b', 'report');
      for (let i = 0; i < 600 && !existsSync(done); i++) await new Promise((res) => setTimeout(res, 1000));
      expect(existsSync(done)).toBe(true);
      expect(mse(['reproduce', ...files, '-o', path.join(dir, 'one')]).status).toBe(0);
      for (const p of ['toy-a', 'toy-b'])
        expect(metrics(path.join(out, p, 'results.csv'))).toEqual(metrics(path.join(dir, 'one', p, 'results.csv')));
    },
    700_000,
  );
});
