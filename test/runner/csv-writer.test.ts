import { describe, expect, it } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ResultsCsv, readResults } from '../../src/runner/csv-writer.js';
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

function tmpFile(): string {
  return path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-csv-')), 'run', 'results.csv');
}

describe('results CSV', () => {
  it('cell ids are stable and depend on every spec field', () => {
    expect(cellId(cell(1))).toBe(cellId(cell(1)));
    expect(cellId(cell(1))).not.toBe(cellId(cell(2)));
    expect(cellId({ ...cell(1), budget: 101 })).not.toBe(cellId(cell(1)));
  });

  it('writes the header once, appends rows, and a reopened file knows its finished cells', () => {
    const f = tmpFile();
    const w = new ResultsCsv(f);
    w.write(row(1));
    w.write(row(2));
    w.close();
    const again = new ResultsCsv(f);
    expect(again.has(cellId(cell(1)))).toBe(true);
    expect(again.has(cellId(cell(3)))).toBe(false);
    again.write(row(3));
    again.close();
    const rows = readResults(f);
    expect(rows.map((r) => r.seed)).toEqual(['1', '2', '3']);
    expect(readFileSync(f, 'utf8').split('\n')[0]).toBe(RESULT_COLUMNS.join(','));
  });

  it('refuses to write a cell twice', () => {
    const w = new ResultsCsv(tmpFile());
    w.write(row(1));
    expect(() => w.write(row(1))).toThrow(MseError);
    w.close();
  });

  it('cuts a torn last row left by a killed run, so that cell is redone, not duplicated', () => {
    const f = tmpFile();
    const w = new ResultsCsv(f);
    w.write(row(1));
    w.close();
    appendFileSync(f, `${cellId(cell(2))},run,0.1.0,wasm,iris`); // killed mid-write: no newline
    const again = new ResultsCsv(f);
    expect(again.has(cellId(cell(2)))).toBe(false);
    again.write(row(2));
    again.close();
    const rows = readResults(f);
    expect(rows.map((r) => r.seed)).toEqual(['1', '2']);
  });

  it('a file with another column layout is refused rather than mixed', () => {
    const f = tmpFile();
    new ResultsCsv(f).close();
    writeFileSync(f, 'a,b,c\n1,2,3\n');
    expect(() => new ResultsCsv(f)).toThrow(/different column layout/);
  });

  it('a file of an earlier mse (fewer columns, same order) is upgraded in place, every row kept', () => {
    const f = tmpFile();
    new ResultsCsv(f).close();
    const old = RESULT_COLUMNS.filter((c) => !c.startsWith('transfer_') && c !== 'kl_test' && c !== 'l1_test');
    const r1 = row(1);
    writeFileSync(
      f,
      `${old.join(',')}\n${old.map((c) => r1[c]).join(',')}\n${cellId(cell(9))},torn`, // and a row torn by a kill
    );
    const w = new ResultsCsv(f);
    expect(w.has(cellId(cell(1)))).toBe(true);
    w.write(row(2));
    w.close();
    expect(readFileSync(f, 'utf8').split('\n')[0]).toBe(RESULT_COLUMNS.join(','));
    const rows = readResults(f);
    expect(rows.map((r) => [r.seed, r.surrogate_acc, r.kl_test])).toEqual([
      ['1', '0.51', ''],
      ['2', '0.52', ''],
    ]);
    expect(readFileSync(`${f}.torn`, 'utf8')).toContain(`${cellId(cell(9))},torn`);
    // columns in another order are not an earlier layout
    writeFileSync(f, `${[...old].reverse().join(',')}\n`);
    expect(() => new ResultsCsv(f)).toThrow(/different column layout/);
  });

  it('an unwritable results location is a clear error', () => {
    // a plain file where the run directory should be: fails for every user, root included
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-ro-'));
    writeFileSync(path.join(dir, 'blocker'), '');
    expect(() => new ResultsCsv(path.join(dir, 'blocker', 'run', 'results.csv'))).toThrow(
      /cannot open results file .*ENOTDIR/,
    );
  });
});
