import { describe, expect, it } from 'vitest';
import { githubWorkflow, slurmScripts } from '../../src/runner/emit.js';
import { parseShard, shardOf } from '../../src/runner/shard.js';
import { UsageError } from '../../src/errors.js';

describe('shards', () => {
  const items = Array.from({ length: 23 }, (_, i) => `cell-${(i * 7919) % 1000}`);

  it('partition the grid: every cell in exactly one shard, sizes within one, independent of input order', () => {
    const n = 4;
    const shards = Array.from({ length: n }, (_, i) => shardOf(items, (x) => x, { index: i, count: n }));
    expect(shards.flat().sort()).toEqual([...items].sort());
    const sizes = shards.map((s) => s.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    const shuffled = [...items].reverse();
    expect(shardOf(shuffled, (x) => x, { index: 2, count: n })).toEqual(shards[2]);
  });

  it('parse i/n and refuse nonsense', () => {
    expect(parseShard('3/8')).toEqual({ index: 3, count: 8 });
    expect(() => parseShard('8/8')).toThrow(UsageError);
    expect(() => parseShard('a/b')).toThrow(/i\/n/);
  });

  it('emit a Slurm array with a dependent merge, and a GitHub matrix, running the same bench with --shard', () => {
    const o = {
      args: ['-d', 'mnist', '--defense', 'mad:eps=0.1,0.5'],
      shards: 4,
      out: 'results/big',
      cwd: '/work/proj',
      mem: '8G',
    };
    const s = slurmScripts(o);
    expect(s.array).toContain('#SBATCH --array=0-3');
    expect(s.array).toContain('#SBATCH --mem=8G');
    expect(s.array).toContain('#SBATCH --chdir=/work/proj');
    expect(s.array).toContain('npx mse bench -d mnist --defense mad:eps=0.1,0.5 --out results/big');
    expect(s.array).toContain('--shard "${SLURM_ARRAY_TASK_ID}/4"');
    expect(s.merge).toContain('npx mse merge results/big');
    expect(s.submit).toMatch(
      /jid=\$\(sbatch --parsable results\/big\/sbatch-array\.sh\)\nsbatch --dependency=afterok:\$jid results\/big\/sbatch-merge\.sh/,
    );
    const gh = githubWorkflow(o);
    expect(gh).toContain('shard: [0, 1, 2, 3]');
    expect(gh).toContain('--shard ${{ matrix.shard }}/4');
    expect(gh).toContain('needs: shard');
  });
});
