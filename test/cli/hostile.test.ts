import { RESULT_COLUMNS } from '../../src/runner/result-row.js';
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Issue 13: every command, driven as a careful user and a hostile one would. A stack trace or an
// "internal error" line for bad input is a bug; so is a lost or duplicated row.
const BIN = path.resolve('bin/mse.js');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function mse(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function mseAsync(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** The user-facing contract for a refused command: one `mse: error:` line, no stack, no internal error. */
function expectOneLineError(r: Run, code: number, what: string): void {
  const lines = r.err.split('\n').filter((l) => l.trim() && !l.startsWith('backend:') && !l.startsWith('note:'));
  expect(r.err, what).not.toMatch(/internal error/);
  expect(r.err, what).not.toMatch(/^\s+at /m);
  expect(r.code, `${what}\n${r.err}`).toBe(code);
  expect(
    lines.filter((l) => l.startsWith('mse: error:')),
    `${what}\n${r.err}`,
  ).toHaveLength(1);
}

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mse-hostile-'));
const grid = ['-d', 'linear', '-a', 'eq-lr', '-b', '1x', '--seeds', '2', '-j', '1'];

describe('hostile inputs to every command: one line, the right exit code, never a stack (issue 13)', () => {
  it('every command refuses bad input cleanly', async () => {
    const dir = tmp();
    const good = path.join(dir, 'good');
    expect(mse(['bench', ...grid, '-o', good]).code).toBe(0);
    const goodCsv = path.join(good, 'results.csv');
    const text = readFileSync(goodCsv, 'utf8');
    const f = (name: string, content: string | Buffer) => {
      const p = path.join(dir, name);
      writeFileSync(p, content);
      return p;
    };
    const damaged = {
      garbage: f('garbage.csv', text + 'garbage\n'),
      extraColumn: f('extra.csv', text.replace(/\n$/, ',x\n')),
      unclosedQuote: f('quote.csv', text + `0123456789abcdef,"oops\n`),
      tornHeader: f('torn-header.csv', 'cell_id,run_id,mse_v'),
      binary: f('binary.csv', Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x22, 0x0a, 0x80])),
      empty: f('empty.csv', ''),
      notCsv: f('not.csv', 'a,b\n1,2\n'),
    };
    const aFile = f('plain.txt', 'x');
    const badJson = f('bad.json', '{"datasets": [');
    const specs = {
      dupSeeds: f('dup.json', JSON.stringify({ datasets: ['linear'], seeds: [1, 1] })),
      negSeed: f('neg.json', JSON.stringify({ datasets: ['linear'], seeds: [-1] })),
      noVictims: f('nov.json', JSON.stringify({ datasets: ['linear'], victims: [] })),
      noAttacks: f('noa.json', JSON.stringify({ datasets: ['linear'], attacks: [] })),
      noBudgets: f('nob.json', JSON.stringify({ datasets: ['linear'], budgets: [] })),
      array: f('arr.json', '[1,2]'),
      paper: f('paper.json', JSON.stringify({ scales: { ci: {} } })),
      paperCells: f('paper2.json', JSON.stringify({ scales: { ci: { seeds: [1], cells: [{ dataset: 'linear' }] } } })),
    };
    const keys = {
      notJson: f('keys1.json', 'nope'),
      badBudget: f('keys2.json', JSON.stringify({ keys: [{ key: 'k', id: 'a', budget: 'abc' }] })),
      dupIds: f(
        'keys3.json',
        JSON.stringify({
          keys: [
            { key: 'k1', id: 'a' },
            { key: 'k2', id: 'a' },
          ],
        }),
      ),
    };
    const shardDir = path.join(dir, 'shards');
    mkdirSync(shardDir);
    copyFileSync(damaged.garbage, path.join(shardDir, 'shard-0-of-1.csv'));
    writeFileSync(path.join(shardDir, 'manifest.json'), '{"spec": ');

    const probes: Array<[string[], number]> = [
      // report
      [['report', damaged.garbage], 1],
      [['report', damaged.extraColumn], 1],
      [['report', damaged.unclosedQuote], 1],
      [['report', damaged.binary], 1],
      [['report', damaged.empty], 1],
      [['report', damaged.notCsv], 1],
      [['report', dir + '/nope'], 1],
      [['report', '/etc'], 1],
      [['report', good, '--out', path.join(aFile, 'sub')], 1],
      [['report', good, '--out', '/proc/mse-nope'], 1],
      // compare
      [['compare', damaged.garbage, goodCsv], 1],
      [['compare', goodCsv, damaged.unclosedQuote], 1],
      [['compare', goodCsv, '/etc'], 1],
      [['compare', goodCsv, damaged.tornHeader], 1],
      [['compare', goodCsv, goodCsv, '--tolerance', '-1'], 2],
      // merge
      [['merge', shardDir], 1],
      [['merge', damaged.garbage], 1],
      [['merge', dir + '/nope'], 1],
      // repair
      [['repair', dir + '/nope'], 1],
      [['repair', damaged.notCsv], 1],
      // bench
      [['bench', '--spec', specs.dupSeeds, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', specs.negSeed, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', specs.noVictims, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', specs.noAttacks, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', specs.noBudgets, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', specs.array, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', badJson, '-o', path.join(dir, 'never')], 2],
      [['bench', '--spec', '/etc'], 1],
      [['bench', '--spec', dir + '/nope.json'], 1],
      [['bench', ...grid, '-o', path.join(aFile, 'run')], 1],
      [['bench', ...grid, '--jobs', '0'], 2],
      [['bench', ...grid, '-o', ''], 2],
      [['merge', path.join(shardDir, 'shard-0-of-1.csv'), '-o', path.join(shardDir, 'shard-0-of-1.csv')], 2],
      [['bench', ...grid, '--shard', '3/2'], 2],
      [['bench', ...grid, '--emit', 'slurm', '--slurm-mem', '8G\necho INJECTED', '-o', path.join(dir, 'emit')], 2],
      [['bench', ...grid, '--emit', 'pbs'], 2],
      // attack, train
      [['attack', '-d', 'linear', '-a', 'eq-lr', '-b', '1x', '--out', path.join(aFile, 'x')], 1],
      [['attack', '-d', 'linear', '-a', 'eq-lr', '-b', '-5'], 2],
      [['attack', '-d', 'linear', '-a', 'eq-lr', '-a', 'retrain-uniform', '-b', '1x'], 2],
      [['attack', '-d', 'linear', '-a', 'eq-lr', '-b', '1x', '--seed', '-1'], 2],
      [['train', '-d', 'linear', '-m', 'logistic', '--save', path.join(aFile, 'm.json')], 1],
      [['train', '-d', 'linear', '-m', 'logistic:epochs=1e99'], 2],
      [['train', '-d', '../../etc/passwd', '-m', 'logistic'], 2],
      [['--data-dir', aFile, 'train', '-d', 'iris', '-m', 'softmax'], 2],
      // reproduce
      [['reproduce', 'tramer-2016', '--scale', 'foo'], 2],
      [['reproduce', badJson], 2],
      [['reproduce', specs.paper], 2],
      [['reproduce', specs.paperCells], 2],
      [['reproduce', 'nope-2099'], 2],
      // serve (refused before listening)
      [['serve', '-d', 'linear', '--port', '70000'], 2],
      [['serve', '-d', 'linear', '--pow', 'maybe'], 2],
      [['serve', '-d', 'linear', '--keys', keys.notJson, '--port', '0'], 1],
      [['serve', '-d', 'linear', '--keys', keys.badBudget, '--port', '0'], 1],
      [['serve', '-d', 'linear', '--keys', keys.dupIds, '--port', '0'], 1],
      [['serve', '-d', 'linear', '--keys', '/etc', '--port', '0'], 1],
      // datasets, list, globals
      [['datasets', 'explode'], 2],
      [['datasets', 'verify', 'nope'], 2],
      [['list', 'everything'], 2],
      [['--backend', 'tpu', 'doctor'], 2],
      [['--threads', '0', 'doctor'], 2],
    ];
    const before = new Map(Object.values(damaged).map((p) => [p, readFileSync(p)]));
    const results: Array<[string[], number, Run]> = [];
    // two at a time: the machine has two cores
    for (let i = 0; i < probes.length; i += 2) {
      const batch = probes.slice(i, i + 2);
      const rs = await Promise.all(batch.map(([args]) => mseAsync(args, {}, 30_000))); // a refusal is quick: a probe still running after 30 s accepted what it should not have
      batch.forEach(([args, code], j) => results.push([args, code, rs[j]]));
    }
    // every probe is judged, so a failure lists all offenders at once
    const bad: string[] = [];
    for (const [args, code, r] of results) {
      try {
        expectOneLineError(r, code, `mse ${args.join(' ')}`);
      } catch {
        bad.push(
          `mse ${args.join(' ')} → exit ${r.code}: ${r.err
            .trim()
            .split('\n')
            .filter((l) => !l.startsWith('backend:'))
            .slice(0, 2)
            .join(' | ')
            .slice(0, 300)}`,
        );
      }
    }
    expect(bad).toEqual([]);
    // nothing the user had was changed by a refused command
    for (const [p, bytes] of before) expect(readFileSync(p).equals(bytes), p).toBe(true);
    expect(existsSync(path.join(dir, 'emit'))).toBe(false);
    expect(existsSync(path.join(dir, 'never'))).toBe(false);
    console.log(`hostile probes: ${results.length}, all refused with one line`);
  }, 300_000);
});

describe('results files under stress (issue 13.1–13.3)', () => {
  it('two mse bench runs on one --out: the second says who holds it and exits 1; every row is written once', async () => {
    const out = path.join(tmp(), 'run');
    const args = [
      'bench',
      '-d',
      'linear',
      '-a',
      'eq-lr',
      '--defense',
      'round:decimals=1,2,3',
      '-b',
      '1x,2x',
      '--seeds',
      '3',
      '-j',
      '1',
      '-o',
      out,
    ];
    const [a, b] = await Promise.all([
      mseAsync(args),
      new Promise<Run>((r) => setTimeout(() => void mseAsync(args).then(r), 300)),
    ]);
    const codes = [a.code, b.code].sort();
    const loser = a.code === 1 ? a : b;
    if (codes[0] === 0 && codes[1] === 1) {
      expect(loser.err).toMatch(/results\.csv is in use by another mse run: pid \d+/);
      expectOneLineError(loser, 1, 'second bench');
    } else {
      // the first finished before the second started: the second found every cell done
      expect(codes).toEqual([0, 0]);
    }
    const rows = readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows).toHaveLength(4 * 2 * 3);
    expect(new Set(rows.map((l) => l.split(',')[0])).size).toBe(rows.length);
    expect(existsSync(path.join(out, 'results.csv.lock'))).toBe(false);
  }, 120_000);

  it('two spellings of one cell (a parameter at its default) run once instead of aborting the sweep', () => {
    const out = path.join(tmp(), 'run');
    const r = mse([
      'bench',
      '-d',
      'linear',
      '-a',
      'eq-lr',
      '-b',
      '1x',
      '--seeds',
      '1',
      '-j',
      '1',
      '--defense',
      'round:decimals=2',
      '--defense',
      'round',
      '-o',
      out,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(path.join(out, 'results.csv'), 'utf8').trim().split('\n')).toHaveLength(3); // header, none, round
  }, 60_000);

  it('a damaged results.csv stops bench, report, compare and merge with the line number; mse repair keeps every good row', () => {
    const out = path.join(tmp(), 'run');
    expect(mse(['bench', ...grid, '-o', out]).code).toBe(0);
    const csv = path.join(out, 'results.csv');
    const good = readFileSync(csv, 'utf8');
    const bad = good.replace(/\n/, '\nthis line is garbage\n');
    writeFileSync(csv, bad);
    for (const args of [
      ['bench', ...grid, '-o', out],
      ['report', out],
      ['compare', csv, csv],
    ]) {
      const r = mse(args);
      expectOneLineError(r, 1, args.join(' '));
      expect(r.err).toContain(`${csv}: line 2 is damaged: expected ${RESULT_COLUMNS.length} fields, found 1`);
      expect(r.err).toContain('mse repair');
      expect(readFileSync(csv, 'utf8')).toBe(bad);
    }
    const fixed = mse(['repair', out]);
    expect(fixed.code).toBe(0);
    expect(fixed.out).toMatch(/kept 2 rows; moved 1 damaged line/);
    expect(readFileSync(csv, 'utf8')).toBe(good);
    expect(readFileSync(`${csv}.damaged`, 'utf8')).toBe('this line is garbage\n');
    expect(mse(['bench', ...grid, '-o', out]).code).toBe(0);
    expect(mse(['report', out]).code).toBe(0);
  }, 120_000);

  const canMount =
    process.platform === 'linux' && process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;
  it.skipIf(!canMount)(
    'a full disk mid-sweep: one line, exit 1, no torn row; with space again the same command finishes',
    (ctx) => {
      const dir = tmp();
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
      } catch {
        ctx.skip(); // not allowed here (a container without CAP_SYS_ADMIN): reported as skipped, not passed
        return;
      }
      try {
        // tmpfs counts 4 KiB pages: leave three (manifest, lock, CSV), so the CSV fills up mid-sweep
        writeFileSync(path.join(dir, 'filler'), Buffer.alloc(52 * 1024));
        const out = path.join(dir, 'run');
        const args = [
          'bench',
          '-d',
          'linear',
          '-a',
          'eq-lr',
          '--defense',
          'round:decimals=1,2,3',
          '-b',
          '1x,2x,3x',
          '--seeds',
          '5',
          '-j',
          '1',
          '-o',
          out,
        ];
        const full = mse(args);
        expectOneLineError(full, 1, 'bench on a full disk');
        expect(full.err).toMatch(/cannot append to .*results\.csv: no space left on device \(ENOSPC/);
        const csv = path.join(out, 'results.csv');
        const text = readFileSync(csv, 'utf8');
        expect(text.endsWith('\n')).toBe(true);
        const kept = text.trim().split('\n').length - 1;
        expect(kept).toBeGreaterThan(0);
        expect(kept).toBeLessThan(60);
        rmSync(path.join(dir, 'filler'));
        expect(mse(args).code).toBe(0);
        const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1);
        expect(rows).toHaveLength(60);
        expect(new Set(rows.map((l) => l.split(',')[0])).size).toBe(60);
      } finally {
        execFileSync('umount', [dir]);
      }
    },
    120_000,
  );
});

/** Processes (other than this one) whose environment carries the marker. */
function marked(marker: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${p}/environ`, 'latin1').includes(`MSE_TEST_MARKER=${marker}`)) out.push(Number(p));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

describe('bench workers die with their parent (issue 13.6)', () => {
  for (const sig of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    it.skipIf(process.platform !== 'linux')(
      `${sig} to mse bench --jobs 2 stops its workers too`,
      async () => {
        const marker = randomUUID();
        const out = path.join(tmp(), 'run');
        // two slow cells (about 30 s each), so the workers are surely still computing when the parent dies
        const parent = spawn(
          process.execPath,
          [
            BIN,
            'bench',
            '-d',
            'moons',
            '-v',
            'mlp',
            '-a',
            'retrain-uniform',
            '-b',
            '300x',
            '--seeds',
            '2',
            '-j',
            '2',
            '--no-baseline',
            '--defense',
            'top1',
            '-o',
            out,
          ],
          {
            env: { ...process.env, NO_COLOR: '1', MSE_TEST_MARKER: marker },
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        let err = '';
        parent.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const exited = new Promise<number | null>((r) => parent.on('close', (code) => r(code)));
        for (let i = 0; i < 600 && marked(marker).length < 3; i++) await new Promise((r) => setTimeout(r, 100));
        expect(marked(marker).length, err).toBe(3); // the parent and two workers
        await new Promise((r) => setTimeout(r, 1500)); // workers are into their cells
        parent.kill(sig);
        const code = await exited;
        if (sig !== 'SIGKILL') {
          expect(code).toBe(sig === 'SIGINT' ? 130 : 143);
          expect(err).toMatch(
            new RegExp(`${sig}: stopped with 0 of 2 cells in .*results\\.csv; re-run the same command to resume`),
          );
          expect(existsSync(path.join(out, 'results.csv.lock'))).toBe(false);
        }
        for (let i = 0; i < 100 && marked(marker).length; i++) await new Promise((r) => setTimeout(r, 100));
        expect(marked(marker)).toEqual([]);
      },
      120_000,
    );
  }
});
