import { describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ResultsCsv, readResults, scanResults } from '../../src/runner/csv-writer.js';
import { RunLock } from '../../src/runner/run-lock.js';
import { cellId, makeRow, RESULT_COLUMNS, type CellSpec } from '../../src/runner/result-row.js';
import { MseError } from '../../src/errors.js';

const cell = (seed: number): CellSpec => ({
  dataset: 'iris',
  victim: 'softmax',
  defense: 'none',
  defense_params: '',
  attack: 'eq-lr',
  attack_params: '',
  budget: 100,
  seed,
});
const row = (seed: number) =>
  makeRow({ cell_id: cellId(cell(seed)), ...cell(seed), surrogate_acc: 0.5 + seed / 100, status: 'ok' });
const HEADER = RESULT_COLUMNS.join(',');

function tmpFile(): string {
  return path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-integrity-')), 'run', 'results.csv');
}

function writeRows(f: string, seeds: number[]): void {
  const w = new ResultsCsv(f);
  for (const s of seeds) w.write(row(s));
  w.close();
}

describe('run lock (issue 13.1)', () => {
  it('a second writer on the same results file is refused with who holds it; after close the file is free', () => {
    const f = tmpFile();
    const a = new ResultsCsv(f);
    expect(() => new ResultsCsv(f)).toThrow(new RegExp(`in use by another mse run: pid ${process.pid}`));
    a.write(row(1));
    a.close();
    expect(existsSync(`${f}.lock`)).toBe(false);
    const b = new ResultsCsv(f);
    expect(b.has(cellId(cell(1)))).toBe(true);
    b.close();
  });

  it('a lock left by a killed process on this host is taken over', () => {
    const f = tmpFile();
    mkdirSync(path.dirname(f), { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(
      `${f}.lock`,
      JSON.stringify({
        pid: Number(dead.stdout),
        host: os.hostname(),
        command: 'mse bench',
        started: new Date().toISOString(),
      }),
    );
    const w = new ResultsCsv(f);
    w.write(row(1));
    w.close();
    expect(readResults(f)).toHaveLength(1);
  });

  it('a lock held by another host is never broken: the message says how to remove it', () => {
    const f = tmpFile();
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(
      `${f}.lock`,
      JSON.stringify({
        pid: 1,
        host: 'elsewhere.example',
        command: 'mse bench -d mnist',
        started: '2026-01-01T00:00:00Z',
      }),
    );
    expect(() => RunLock.acquire(f)).toThrow(/pid 1 on elsewhere\.example \(mse bench -d mnist\)/);
    try {
      RunLock.acquire(f);
    } catch (e) {
      expect((e as MseError).hint).toContain(`delete ${f}.lock`);
    }
  });

  it('concurrent writers: of 4 processes racing for one file exactly one writes, every row once, no merged lines', async () => {
    const f = tmpFile();
    mkdirSync(path.dirname(f), { recursive: true });
    const script = `
      import { ResultsCsv } from ${JSON.stringify(path.resolve('src/runner/csv-writer.ts'))};
      import { cellId, makeRow } from ${JSON.stringify(path.resolve('src/runner/result-row.ts'))};
      const base = Number(process.argv[2]);
      let w;
      try { w = new ResultsCsv(process.argv[3]); } catch (e) { process.stderr.write(e.message); process.exit(3); }
      for (let i = 0; i < 1500; i++) {
        const c = { dataset: 'iris', victim: 'softmax', defense: 'none', defense_params: '', attack: 'eq-lr', attack_params: '', budget: 100, seed: base + i };
        w.write(makeRow({ cell_id: cellId(c), ...c, status: 'ok' }));
      }
      w.close();`;
    const file = path.join(path.dirname(f), 'writer.mts');
    writeFileSync(file, script);
    const tsx = path.resolve('node_modules/.bin/tsx');
    const runs = await Promise.all(
      [0, 10_000, 20_000, 30_000].map(
        (base) =>
          new Promise<{ code: number | null; err: string }>((resolve) => {
            const p = spawn(tsx, [file, String(base), f], { stdio: ['ignore', 'ignore', 'pipe'] });
            let err = '';
            p.stderr.on('data', (d: Buffer) => (err += d.toString()));
            p.on('close', (code) => resolve({ code, err }));
          }),
      ),
    );
    const winners = runs.filter((r) => r.code === 0);
    const losers = runs.filter((r) => r.code === 3);
    // whoever lost the race said why; a loser may also have started after the winner finished
    for (const l of losers) expect(l.err).toMatch(/in use by another mse run/);
    expect(winners.length + losers.length).toBe(4);
    const text = readFileSync(f, 'utf8');
    const s = scanResults(text);
    expect(s.damaged).toEqual([]);
    expect(s.rows).toHaveLength(1500 * winners.length);
    expect(new Set(s.rows.map((r) => r.cell_id)).size).toBe(s.rows.length);
    expect(text.split('\n').filter((l) => l.startsWith('cell_id'))).toHaveLength(1);
  }, 60_000);
});

const N = RESULT_COLUMNS.length;

describe('damaged results files (issue 13.2)', () => {
  const damages: Array<[string, (good: string) => string, RegExp]> = [
    ['a garbage line', (g) => g + 'garbage\n', new RegExp(`line 4 is damaged: expected ${N} fields, found 1`)],
    [
      'an extra column',
      (g) => g.replace(/\n$/, ',extra\n'),
      new RegExp(`line 3 is damaged: expected ${N} fields, found ${N + 1}`),
    ],
    ['an unclosed quote', (g) => g + `${cellId(cell(9))},"run,x\n`, /line 4 is damaged: unclosed quote/],
    ['a bad cell id', (g) => g + `nothex,${'x,'.repeat(N - 2)}ok\n`, /line 4 is damaged: cell_id 'nothex'/],
  ];
  for (const [what, damage, message] of damages) {
    it(`${what}: writer and readers stop with the file and line number, and the file is left as it was`, () => {
      const f = tmpFile();
      writeRows(f, [1, 2]);
      const bad = damage(readFileSync(f, 'utf8'));
      writeFileSync(f, bad);
      expect(() => new ResultsCsv(f)).toThrow(message);
      expect(() => readResults(f)).toThrow(message);
      expect(() => readResults(f)).toThrow(MseError);
      try {
        readResults(f);
      } catch (e) {
        expect((e as MseError).message).toContain(f);
        expect((e as MseError).hint).toMatch(/mse repair/);
      }
      expect(readFileSync(f, 'utf8')).toBe(bad);
      expect(existsSync(`${f}.lock`)).toBe(false);
    });
  }

  it("a torn header that is a prefix of mse's is rewritten (it holds no rows); anything else is refused, never truncated", () => {
    const f = tmpFile();
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, HEADER.slice(0, 40));
    writeRows(f, [1]);
    expect(readResults(f)).toHaveLength(1);
    writeFileSync(f, 'my precious data without a newline');
    expect(() => new ResultsCsv(f)).toThrow(/not an mse results file/);
    expect(readFileSync(f, 'utf8')).toBe('my precious data without a newline');
  });

  it('a torn last row is kept beside the file (<file>.torn) before it is cut', () => {
    const f = tmpFile();
    writeRows(f, [1]);
    writeFileSync(f, readFileSync(f, 'utf8') + `${cellId(cell(2))},run,0.1.0,wa`);
    expect(readResults(f)).toHaveLength(1); // readers leave out a row still being written
    writeRows(f, [2]);
    expect(readResults(f).map((r) => r.seed)).toEqual(['1', '2']);
    expect(readFileSync(`${f}.torn`, 'utf8')).toBe(`${cellId(cell(2))},run,0.1.0,wa\n`);
  });
});

function mountTmpfs(bytes: number): string | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

describe('full disk (issue 13.3)', () => {
  const dir = mountTmpfs(64 * 1024);
  it.skipIf(!dir)('ENOSPC while appending is one MseError, and no torn row is left behind', () => {
    try {
      const f = path.join(dir!, 'run', 'results.csv');
      const w = new ResultsCsv(f);
      let err: unknown;
      let n = 0;
      try {
        for (; n < 10_000; n++) w.write(row(n));
      } catch (e) {
        err = e;
      }
      w.close();
      expect(err).toBeInstanceOf(MseError);
      expect((err as MseError).message).toMatch(/cannot append to .*results\.csv: no space left on device \(ENOSPC/);
      const text = readFileSync(f, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      expect(readResults(f)).toHaveLength(n);
      // the run resumes where it stopped once there is room again
      const again = new ResultsCsv(f);
      expect(again.count).toBe(n);
      again.close();
    } finally {
      execFileSync('umount', [dir!]);
    }
  });
});

describe('second round of probes (issue 13): what a hostile tester found after the first fixes', () => {
  it('a damaged record spanning lines, NUL bytes and a row written twice are damage, each reported on its first line', () => {
    const f = tmpFile();
    writeRows(f, [1, 2, 3]);
    const lines = readFileSync(f, 'utf8').split('\n');
    const id2 = cellId(cell(2));
    // a stray quote that closes on the next line merges two rows into one bogus record
    const merged = [lines[0], lines[1], lines[2].replace(`${id2},`, `${id2},"`), lines[3].replace(',', '",'), ''].join(
      '\n',
    );
    writeFileSync(f, merged);
    expect(() => readResults(f)).toThrow(/line 3 is damaged/);
    expect(scanResults(merged).damaged[0].text).toContain('\n'); // both physical lines travel together
    writeFileSync(f, [lines[0], lines[1], lines[2].replace(',ok', ',o\u0000k'), ''].join('\n'));
    expect(() => readResults(f)).toThrow(/line 3 is damaged: a field holds a control character/);
    writeFileSync(f, [lines[0], lines[1], lines[2], lines[1], ''].join('\n'));
    expect(() => readResults(f)).toThrow(/line 4 is damaged: cell \w+ is already on line 2/);
  });

  it('a CRLF file (saved on Windows) resumes with LF rows and stays readable; a byte-order mark is ignored', () => {
    const f = tmpFile();
    writeRows(f, [1, 2]);
    writeFileSync(f, readFileSync(f, 'utf8').replace(/\n/g, '\r\n'));
    writeRows(f, [3]);
    expect(readResults(f).map((r) => r.seed)).toEqual(['1', '2', '3']);
    writeFileSync(f, '\ufeff' + readFileSync(f, 'utf8'));
    writeRows(f, [4]);
    expect(readResults(f).map((r) => r.seed)).toEqual(['1', '2', '3', '4']);
  });

  it('two paths to one file (a symlink) share one lock', () => {
    const f = tmpFile();
    writeRows(f, [1]);
    const link = path.join(path.dirname(path.dirname(f)), 'link.csv');
    execFileSync('ln', ['-s', f, link]);
    const a = new ResultsCsv(f);
    expect(() => new ResultsCsv(link)).toThrow(/in use by another mse run/);
    a.close();
  });

  it('racers breaking one stale lock: exactly one wins', async () => {
    const f = tmpFile();
    mkdirSync(path.dirname(f), { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const script = path.join(path.dirname(f), 'racer.mts');
    writeFileSync(
      script,
      `import { RunLock } from ${JSON.stringify(path.resolve('src/runner/run-lock.ts'))};
      const start = Number(process.argv[3]); while (Date.now() < start) {}
      try { RunLock.acquire(process.argv[2]); process.stdout.write('GOT'); setTimeout(() => process.exit(0), 1500); } catch { process.exit(3); }`,
    );
    const tsx = path.resolve('node_modules/.bin/tsx');
    for (let trial = 0; trial < 3; trial++) {
      writeFileSync(
        `${f}.lock`,
        JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), command: 'mse bench', started: '' }),
      );
      const start = Date.now() + 2500;
      const outs = await Promise.all(
        [0, 1, 2].map(
          () =>
            new Promise<string>((resolve) => {
              const p = spawn(tsx, [script, f, String(start)], { stdio: ['ignore', 'pipe', 'ignore'] });
              let out = '';
              p.stdout.on('data', (d: Buffer) => (out += d.toString()));
              p.on('close', () => resolve(out));
            }),
        ),
      );
      expect(outs.filter((o) => o === 'GOT')).toHaveLength(1);
    }
  }, 60_000);

  it('a FIFO is refused, not read forever; a lock with pid 0 or terminal escapes names no holder', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-fifo-'));
    const fifo = path.join(dir, 'results.csv');
    execFileSync('mkfifo', [fifo]);
    expect(() => readResults(fifo)).toThrow(/is not a regular file/);
    const f = tmpFile();
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(`${f}.lock`, JSON.stringify({ pid: 0, host: os.hostname() }));
    expect(() => RunLock.acquire(f)).toThrow(/an unknown process/); // fresh and unreadable: refused, not "held by pid 0"
    writeFileSync(`${f}.lock`, JSON.stringify({ pid: 1, host: 'evil\u001b[31m.example' }));
    expect(() => RunLock.acquire(f)).toThrow(/on evil\?\[31m\.example/);
  });
});
