/**
 * `mse repair <run>`: make a damaged results CSV readable again without losing anything. Every
 * good row is kept in place (the file is rewritten atomically: temp + rename); each damaged line
 * and a torn last line go, verbatim, to `<file>.damaged`, to be fixed or dropped by the user.
 */
import chalk from 'chalk';
import { appendFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { realFile, scanResults } from '../runner/csv-writer.js';
import { RESULT_COLUMNS } from '../runner/result-row.js';
import { RunLock } from '../runner/run-lock.js';
import { MseError } from '../errors.js';

export function repair(target: string): void {
  const file = existsSync(target) && statSync(target).isDirectory() ? path.join(target, 'results.csv') : target;
  if (!existsSync(file))
    throw new MseError('repair', `${file} does not exist`, 'give a run directory (results/<run>) or a results CSV');
  if (!statSync(file).isFile()) throw new MseError('repair', `${file} is not a regular file`);
  // the real file (a symlink stays a symlink), under the same lock a running sweep holds
  const real = realFile(file);
  const lock = RunLock.acquire(real); // never rewrite a file a running sweep appends to
  try {
    const text = readFileSync(real, 'utf8');
    const s = scanResults(text);
    if (!s.header.includes('cell_id'))
      throw new MseError('repair', `${file} is not an mse results CSV (no cell_id column in its first line)`);
    const aside = [...s.damaged.map((d) => d.text), ...(s.torn !== undefined ? [s.torn] : [])];
    if (!aside.length) {
      process.stdout.write(`${file}: ${s.rows.length} rows, nothing to repair\n`);
      return;
    }
    const damagedFile = `${file}.damaged`;
    appendFileSync(damagedFile, aside.map((l) => `${l}\n`).join('')); // first, so a crash after this loses nothing
    const columns = s.header.join(',') === RESULT_COLUMNS.join(',') ? [...RESULT_COLUMNS] : s.header;
    const tmp = `${real}.repair-${process.pid}`;
    writeFileSync(tmp, stringify([columns, ...s.rows.map((r) => columns.map((c) => r[c]))]));
    renameSync(tmp, real);
    for (const d of s.damaged) process.stderr.write(chalk.yellow(`line ${d.line}: ${d.why}\n`));
    if (s.torn !== undefined) process.stderr.write(chalk.yellow('last line: torn (no newline)\n'));
    process.stdout.write(
      `${file}: kept ${s.rows.length} rows; moved ${aside.length} damaged line${aside.length === 1 ? '' : 's'} to ${damagedFile}\n`,
    );
  } finally {
    lock.release();
  }
}
