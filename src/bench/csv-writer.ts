/**
 * Append-only results CSV. One row per finished cell, written in a single write() and fsynced,
 * so a killed run loses at most the cell in flight. On open, a torn last line (no trailing
 * newline) is cut off and the ids already present are read, so a resumed sweep skips finished
 * cells and writes each cell exactly once.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { MseError } from '../errors.js';
import { RESULT_COLUMNS, type ResultRow } from './result-row.js';

export class ResultsCsv {
  private readonly fd: number;
  private readonly done = new Set<string>();

  constructor(readonly file: string) {
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      this.fd = openSync(file, existsSync(file) ? 'r+' : 'w+');
    } catch (err) {
      throw new MseError('results', `cannot open results file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'choose a writable --out directory');
    }
    const text = readFileSync(file, 'utf8');
    if (text.length === 0) {
      this.append(stringify([RESULT_COLUMNS as unknown as string[]]));
      return;
    }
    const complete = text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
    if (complete.length !== text.length) ftruncateSync(this.fd, Buffer.byteLength(complete)); // torn row from a killed run
    const rows = parse(complete, { columns: true, skip_empty_lines: true }) as Array<Record<string, string>>;
    const header = complete.slice(0, complete.indexOf('\n')).split(',');
    if (header.join(',') !== RESULT_COLUMNS.join(',')) {
      throw new MseError('results', `${file} has a different column layout (written by another mse version?)`, 'write to a new --out directory');
    }
    for (const r of rows) this.done.add(r.cell_id);
  }

  has(cellId: string): boolean {
    return this.done.has(cellId);
  }

  get count(): number {
    return this.done.size;
  }

  /** Append one row atomically; a second row with the same cell id is refused. */
  write(row: ResultRow): void {
    const id = String(row.cell_id);
    if (this.done.has(id)) throw new MseError('results', `cell ${id} is already in ${this.file}`);
    this.append(stringify([RESULT_COLUMNS.map((c) => row[c])]));
    this.done.add(id);
  }

  private append(text: string): void {
    const buf = Buffer.from(text);
    writeSync(this.fd, buf, 0, buf.length, fstatSync(this.fd).size);
    fsyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export function readResults(file: string): Array<Record<string, string>> {
  return parse(readFileSync(file, 'utf8'), { columns: true, skip_empty_lines: true }) as Array<Record<string, string>>;
}
