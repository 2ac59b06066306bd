import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HAVE_SHARED, SHARED_DATA } from '../testing/fixtures.js';

// Drives the built CLI (npm test builds first) the way a user does.
const BIN = 'bin/mse.js';
function mse(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['bin/mse.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('mse CLI', () => {
  it('--help lists the commands, each command has examples', () => {
    const r = mse(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['doctor', 'train', 'attack', 'bench', 'reproduce', 'datasets', 'list']) expect(r.out).toContain(c);
    for (const c of ['doctor', 'train', 'attack', 'bench', 'datasets', 'list'])
      expect(mse([c, '--help']).out).toContain('Examples:');
  });

  it('doctor prints the backend that is really active and the data directories', () => {
    const r = mse(['doctor'], HAVE_SHARED ? { MSE_DATA_DIR: SHARED_DATA } : {});
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/backend\s+wasm \(tf.getBackend\(\) = wasm/);
    expect(r.out).toContain('@tensorflow/tfjs');
    if (HAVE_SHARED) expect(r.out).toMatch(/fashion-mnist\s+image\s+ok/);
  });

  it('without the native BLAS (not built), doctor and the first run say what it would bring and how to build it', () => {
    // (MSE_NATIVE cleared: the suite also runs under MSE_NATIVE=0)
    const missing = { MSE_NATIVE: '', MSE_NATIVE_ADDON: '/nonexistent/mse_blas.node' };
    const d = mse(['doctor'], missing);
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/native BLAS\s+not built/);
    expect(d.out).toMatch(
      /speed-up\s+native BLAS not built .*3–5× slower .*apt-get install g\+\+ libopenblas0-pthread/,
    );
    const run = mse(['list', 'defenses'], missing);
    expect(run.err).not.toContain('speed-up'); // listing computes nothing
    const train = mse(['train', '-d', 'linear', '-m', 'logistic'], missing);
    expect(train.code).toBe(0);
    expect(train.err.split('\n').filter((l) => l.startsWith('note: native BLAS not built'))).toHaveLength(1);
    // turned off on purpose: no advice
    const off = mse(['doctor'], { MSE_NATIVE: '0' });
    expect(off.out).toMatch(/native BLAS\s+disabled by MSE_NATIVE=0/);
    expect(off.out).not.toContain('speed-up');
  });

  it('usage errors: one line, exit code 2, with the valid choices', () => {
    const unknown = mse(['train', '-d', 'mnst', '-m', 'cnn']);
    expect(unknown.code).toBe(2);
    expect(unknown.err.trim().split('\n')).toHaveLength(1);
    expect(unknown.err).toMatch(/unknown dataset 'mnst'\. Did you mean 'mnist'\?/);
    const badModel = mse(['train', '-d', 'iris', '-m', 'mlp:hidden=0']);
    expect([badModel.code, badModel.err.trim()]).toEqual([2, "mse: error: model mlp: hidden must be ≥ 1, got '0'"]);
    expect(mse(['train', '-d', 'iris', '-m', 'mlp', '--seed', 'x']).code).toBe(2);
    expect(mse(['--backend', 'gpu', 'doctor']).code).toBe(2);
    expect(mse(['frobnicate']).code).toBe(2);
    expect(mse(['train', '-d', 'moons', '-m', 'cnn']).err).toMatch(/cnn needs image inputs/);
  });

  it.skipIf(!HAVE_SHARED)('train prints test accuracy and records the backend; --save writes a loadable model', () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-cli-')), 'iris.json');
    const r = mse(['train', '-d', 'iris', '-m', 'softmax', '--json', '--no-cache', '--save', out], {
      MSE_DATA_DIR: SHARED_DATA,
    });
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out) as { test_acc: number; backend: string; dataset: string };
    expect(res.backend).toMatch(/^wasm(\+openblas)?$/);
    expect(res.test_acc).toBeGreaterThan(0.85);
    expect(JSON.parse(readFileSync(out, 'utf8')).kind).toBe('softmax');
  });

  it('a dataset with a corrupt file fails with one line naming the file and the fix', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-bad-'));
    spawnSync('bash', ['-c', `mkdir -p ${dir}/sklearn && echo 'not iris' > ${dir}/sklearn/iris.csv`]);
    const r = mse(['train', '-d', 'iris', '-m', 'softmax', '--data-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/iris\.csv: checksum mismatch .*delete it/);
  });
});

describe('mse attack', () => {
  it('eq-lr on a synthetic logistic victim: exact extraction, one CSV row per cell, resumable', () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-attack-')), 'run');
    const args = ['attack', '-d', 'linear', '-v', 'logistic', '-a', 'eq-lr', '-b', '1x', '--out', out, '--json'];
    const r = mse(args);
    expect(r.code).toBe(0);
    const row = JSON.parse(r.out) as Record<string, string | number>;
    expect(row.queries).toBe(11); // d + 1 = 11 unknowns
    expect(row.agreement_test).toBe(1);
    expect(row.param_error as number).toBeLessThan(1e-3);
    expect(row.status).toBe('ok');
    expect(String(row.backend)).toMatch(/^wasm/);
    const again = mse(args);
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/already in/);
    expect(mse([...args.slice(0, -1), '--seed', '2']).code).toBe(0);
    const lines = readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3); // header + two cells
    expect(JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')).backend.tf_backend).toBe('wasm');
  });

  it('an attack that cannot run says so in the row instead of producing garbage', () => {
    const r = mse(['attack', '-d', 'blobs', '-v', 'softmax', '-a', 'eq-lr', '-b', '10x', '--json']);
    expect(r.code).toBe(0);
    const row = JSON.parse(r.out) as Record<string, string | number>;
    expect(row.status).toMatch(/^not-applicable: eq-lr cannot run here/);
    expect(row.queries).toBe(0);
    expect(row.agreement_test).toBe('');
  });

  it('a budget list is a learning curve: one query pass, one row per budget, and a resumed run adds only new budgets', () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-curve-')), 'run');
    const args = [
      'attack',
      '-d',
      'moons',
      '-v',
      'mlp',
      '-a',
      'knockoff:pool=circles,epochs=30,lr=0.03',
      '--out',
      out,
      '--json',
    ];
    const r = mse([...args, '-b', '100,300']);
    expect(r.code).toBe(0);
    const rows = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string | number>);
    expect(rows.map((x) => [x.budget, x.queries])).toEqual([
      [100, 100],
      [300, 300],
    ]);
    expect(new Set(rows.map((x) => x.cell_id)).size).toBe(2);
    expect(rows[1].agreement_test as number).toBeGreaterThan(0.7);
    expect(mse([...args, '-b', '300,100']).err).toMatch(/every budget is already in/);
    const more = mse([...args, '-b', '100,300,600']);
    expect(more.out.trim().split('\n')).toHaveLength(1);
    expect(readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n')).toHaveLength(4);
  });

  it('bad budgets and names are usage errors', () => {
    expect(mse(['attack', '-d', 'linear', '-b', 'lots']).code).toBe(2);
    expect(mse(['attack', '-d', 'linear', '-a', 'eq-lrr']).err).toMatch(/Did you mean 'eq-lr'/);
  });
});

describe('mse bench', () => {
  const args = (out: string, jobs: string) => [
    'bench',
    '-d',
    'linear',
    '-a',
    'eq-lr',
    '--defense',
    'round:decimals=1,3',
    '-b',
    '1x,2x',
    '--seeds',
    '2',
    '-j',
    jobs,
    '-o',
    out,
  ];

  it('sweeps the grid with the baseline, summarises over seeds, and a re-run does nothing', () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-bench-')), 'run');
    // --plan: the grid and an estimate, nothing run or written
    const plan = mse([...args(out, '1'), '--plan']);
    expect(plan.code).toBe(0);
    expect(plan.out).toMatch(/6 cells \(12 rows\) in .*results\.csv: 0 rows already there, 12 to run/);
    expect(plan.out).toMatch(/eq-lr linear\/logistic \[round:decimals=1\] seed 2\s+11,22/);
    expect(plan.out).toMatch(/Estimated wall time: \d+ s on 1 worker/);
    expect(existsSync(out)).toBe(false);
    // where the run would fail, the plan does; --plan and --emit are two different things
    const file = path.join(path.dirname(out), 'a-file');
    writeFileSync(file, 'x');
    const onFile = mse([...args(file, '1'), '--plan']);
    expect(onFile.code).toBe(1);
    expect(onFile.err).toMatch(/a-file is a file, not a directory/);
    expect(mse([...args(out, '1'), '--plan', '--emit', 'slurm']).code).toBe(2);
    expect(existsSync(out)).toBe(false);
    const r = mse([...args(out, '1'), '--json']);
    expect(r.code).toBe(0);
    // --json: one event per finished cell on stderr, for tools
    const events = r.err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string; status: string; cells_done: number; cells_total: number });
    expect(events.filter((e) => e.event === 'cell').map((e) => e.cells_done)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(events.every((e) => e.event !== 'cell' || (e.status === 'done' && e.cells_total === 6))).toBe(true);
    const res = JSON.parse(r.out) as {
      cells: number;
      summary: Array<{
        key: Record<string, string>;
        seeds: number;
        metrics: Record<string, { mean: number; ci: number }>;
      }>;
    };
    expect(res.cells).toBe(6); // {none, round 1, round 3} × 2 seeds, each with budgets 11 and 22
    expect(res.summary).toHaveLength(6);
    expect(res.summary.every((g) => g.seeds === 2)).toBe(true);
    const none = res.summary.find((g) => g.key.defense === 'none' && g.key.budget === '11')!;
    const coarse = res.summary.find((g) => g.key.defense_params === 'decimals=1' && g.key.budget === '11')!;
    expect(none.metrics.agreement_test.mean).toBe(1);
    expect(coarse.metrics.agreement_test.mean).toBeLessThan(1); // rounding to 1 decimal hurts equation solving
    expect(Number.isFinite(coarse.metrics.agreement_test.ci)).toBe(true);
    const again = mse(args(out, '1'));
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/6 already in/);
    expect(readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n')).toHaveLength(13);
    const done = mse([...args(out, '1'), '--plan', '--json']);
    expect(JSON.parse(done.out)).toMatchObject({ cells: 6, rows: 12, done_rows: 12, todo: [] });
  });

  it('with workers, a killed sweep resumes and ends with every row exactly once', async () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-bench-')), 'run');
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, ...args(out, '2')], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: 'ignore',
    });
    const csvFile = path.join(out, 'results.csv');
    // kill it as soon as the first rows are on disk
    for (
      let i = 0;
      i < 600 && !(existsSync(csvFile) && readFileSync(csvFile, 'utf8').trim().split('\n').length > 1);
      i++
    )
      await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const r = mse(args(out, '2'));
    expect(r.code).toBe(0);
    const ids = readFileSync(csvFile, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(',')[0]);
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBe(12);
  });

  it('mse compare: identical runs pass --fail-on-regression; a run missing cells fails it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-cmp-'));
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    expect(
      mse([
        'bench',
        '-d',
        'linear',
        '-a',
        'eq-lr',
        '--defense',
        'round:decimals=1',
        '-b',
        '1x',
        '--seeds',
        '2',
        '-j',
        '1',
        '-o',
        a,
      ]).code,
    ).toBe(0);
    expect(mse(['bench', '-d', 'linear', '-a', 'eq-lr', '-b', '1x', '--seeds', '2', '-j', '1', '-o', b]).code).toBe(0);
    const same = mse(['compare', path.join(a, 'results.csv'), path.join(a, 'results.csv'), '--fail-on-regression']);
    expect(same.code).toBe(0);
    expect(same.out).toMatch(/no metric differs/);
    const missing = mse(['compare', path.join(a, 'results.csv'), path.join(b, 'results.csv'), '--fail-on-regression']);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/only in .*a\/results.csv: linear\/logistic round:decimals=1 eq-lr/);
    expect(missing.err).toMatch(/regression: .*missing from the new results/);
    expect(mse(['compare', path.join(dir, 'nope.csv'), path.join(b, 'results.csv')]).code).toBe(1);
  });

  it('mse serve answers over HTTP, an attack targets it, and SIGTERM drains and exits 0', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, 'serve', '-d', 'linear', '-v', 'logistic', '-p', '0'], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let url = '';
    child.stdout.on('data', (d: Buffer) => (url += d.toString()));
    for (let i = 0; i < 400 && !url.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    url = url.trim();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = spawnSync(
      process.execPath,
      [BIN, 'attack', '-d', 'linear', '-v', 'logistic', '-a', 'eq-lr', '-b', '1x', '--target', url, '--json'],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 },
    );
    // spawnSync blocks this process but not the server's
    expect(r.status).toBe(0);
    const row = JSON.parse(r.stdout) as Record<string, number>;
    expect(row.queries).toBe(11);
    expect(row.agreement_test).toBe(1);
    // the row would record a defense the server does not run: refused before anything trains
    const wrong = spawnSync(
      process.execPath,
      [
        BIN,
        'attack',
        '-d',
        'linear',
        '-v',
        'logistic',
        '-a',
        'eq-lr',
        '-b',
        '1x',
        '--target',
        url,
        '--defense',
        'round',
      ],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 },
    );
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(/the server at .* runs \[no defense\] but --defense names \[round\]/);
    // Sybil accounts are identities mse makes itself; a --target would need that many keys
    const sybil = spawnSync(
      process.execPath,
      [BIN, 'attack', '-d', 'linear', '-v', 'logistic', '-a', 'eq-lr:accounts=4', '-b', '1x', '--target', url],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 },
    );
    expect(sybil.status).toBe(2);
    expect(sybil.stderr).toMatch(/^mse: error: eq-lr: accounts=4 .* against --target it would need that many keys$/m);
    const exit = new Promise<number | null>((res) => child.on('close', res));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });

  it('shards run separately and merge into the single run’s results; a missing or duplicated shard fails the merge', async () => {
    const { copyFileSync, rmSync } = await import('node:fs');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-shard-'));
    const grid = [
      'bench',
      '-d',
      'linear',
      '-a',
      'eq-lr',
      '--defense',
      'round:decimals=1,3',
      '-b',
      '1x',
      '--seeds',
      '2',
      '-j',
      '1',
    ];
    for (let i = 0; i < 3; i++)
      expect(mse([...grid, '-o', path.join(dir, 'sharded'), '--shard', `${i}/3`]).code).toBe(0);
    const merged = mse(['merge', path.join(dir, 'sharded')]);
    expect(merged.code).toBe(0);
    expect(merged.out).toMatch(/6 cells from 3 shards, each exactly once/);
    expect(mse([...grid, '-o', path.join(dir, 'single')]).code).toBe(0);
    const cmp = mse([
      'compare',
      path.join(dir, 'single', 'results.csv'),
      path.join(dir, 'sharded', 'results.csv'),
      '--fail-on-regression',
    ]);
    expect(cmp.code).toBe(0);
    expect(cmp.out).toMatch(/no metric differs/);
    // a duplicated shard, then a missing one
    rmSync(path.join(dir, 'sharded', 'results.csv'));
    copyFileSync(path.join(dir, 'sharded', 'shard-0-of-3.csv'), path.join(dir, 'sharded', 'shard-3-of-3.csv'));
    const dup = mse(['merge', path.join(dir, 'sharded')]);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/duplicated: eq-lr linear\/logistic/);
    rmSync(path.join(dir, 'sharded', 'shard-3-of-3.csv'));
    rmSync(path.join(dir, 'sharded', 'shard-1-of-3.csv'));
    const miss = mse(['merge', path.join(dir, 'sharded')]);
    expect(miss.code).toBe(1);
    expect(miss.err).toMatch(/missing: eq-lr linear\/logistic/);
    expect(existsSync(path.join(dir, 'sharded', 'results.csv'))).toBe(false);
  });

  it('bad sweep input is a one-line usage error', () => {
    const r = mse(['bench', '-d', 'linear', '--defense', 'mad:eps=-1']);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(mse(['bench']).code).toBe(2);
  });
});

describe('mse reproduce', () => {
  function spec(band: [number, number]): string {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-spec-')), 'toy.json');
    const body = {
      paper: 'toy',
      title: 'toy',
      mirrors: 'a unit test',
      scales: {
        ci: {
          seeds: [1, 2],
          cells: [
            { dataset: 'linear', victim: 'logistic', attack: 'eq-lr', budget: '1x', expect: { agreement_test: band } },
          ],
        },
      },
    };
    writeFileSync(file, JSON.stringify(body));
    return file;
  }

  it('writes the CSV and table, passes figures inside their bands, and resumes without redoing cells', () => {
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-repro-')), 'run');
    const s = spec([0.999, 1]);
    const r = mse(['reproduce', s, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\| eq-lr \| linear \| logistic \| none \| 1x \| 11 \| 0 \| 0 \| /);
    expect(r.out).toContain('1 passed, 0 failed');
    expect(readFileSync(path.join(out, 'table.md'), 'utf8')).toContain('| eq-lr |');
    const again = mse(['reproduce', s, '--out', out]);
    expect(again.err).not.toMatch(/\[1\/2\]/); // nothing re-run
    expect(readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n')).toHaveLength(3); // header + 2 seeds
  });

  it('fails (exit 1) when a figure leaves its band', () => {
    const r = mse([
      'reproduce',
      spec([0, 0.5]),
      '--out',
      path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-repro-')), 'run'),
    ]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL eq-lr linear\/logistic 1x: agreement_test = 1\.000 \(band 0–0\.5\)/);
  });

  it('checks relations between cells (a paper\'s "A beats B"), failing when the order is wrong', () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-spec-')), 'rel.json');
    const cells = [
      { id: 'eq', dataset: 'linear', victim: 'logistic', attack: 'eq-lr', budget: '1x', expect: {} },
      {
        id: 'labels',
        dataset: 'linear',
        victim: 'logistic',
        attack: 'retrain-uniform:epochs=20',
        budget: '1x',
        expect: {},
      },
    ];
    const body = (greater: string, less: string) => ({
      paper: 'rel',
      title: 'rel',
      mirrors: 'a unit test',
      scales: { ci: { seeds: [1], cells, relations: [{ metric: 'agreement_unif', greater, less, by: 0.01 }] } },
    });
    writeFileSync(file, JSON.stringify(body('eq', 'labels')));
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-repro-')), 'run');
    const ok = mse(['reproduce', file, '--out', out]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/ok +eq > labels \+ 0\.01: agreement_unif/);
    writeFileSync(file, JSON.stringify(body('labels', 'eq')));
    const bad = mse(['reproduce', file, '--out', out]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/FAIL labels > eq/);
  });

  it('an unknown paper is a usage error listing the papers', () => {
    const r = mse(['reproduce', 'tramer-2061']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Did you mean 'tramer-2016'/);
  });
});
