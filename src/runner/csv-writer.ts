/**
 * Append-only results CSV. One row per finished cell, written in a single append and fsynced, so
 * a killed run loses at most the cell in flight. The writer holds an exclusive lock on the file
 * (`run-lock.ts`): a second process refuses to start rather than interleave rows. On open, a torn
 * last line (no trailing newline: a run killed mid-write, or a full disk) is moved to
 * `<file>.torn` and cut, and the ids already present are read, so a resumed sweep skips finished
 * cells and writes each cell exactly once.
 *
 * The user's rows are never rewritten or dropped: a damaged line (wrong number of fields, an
 * unclosed quote) stops every reader with one line naming the file and line; `mse repair` moves
 * such lines aside.
 */
import { ensureDir } from '../fs-util.js';
import {
  appendFileSync,
  closeSync,
  existsSync,
  fstatSync,
  realpathSync,
  statSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  truncateSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { asUserError, MseError } from '../errors.js';
import { RESULT_COLUMNS, type ResultRow } from './result-row.js';
import { RunLock } from './run-lock.js';

const HEADER = `${RESULT_COLUMNS.join(',')}\n`;

/** A line that does not parse as a row of its file's header. */
export interface DamagedLine {
  /** 1-based line number in the file */
  line: number;
  why: string;
  text: string;
}

export interface ScannedResults {
  header: string[];
  rows: Array<Record<string, string>>;
  damaged: DamagedLine[];
  /** bytes of the complete lines (everything up to the last newline) */
  completeBytes: number;
  /** an unterminated last line: a row still being written, or torn by a kill */
  torn?: string;
}

/** Parse a results CSV without throwing on damage: every bad record is reported with its (first) line number. */
export function scanResults(input: string): ScannedResults {
  // a byte-order mark (an editor's) is not part of the header; its bytes still count for truncation
  const bom = input.startsWith('\ufeff') ? 3 : 0;
  const text = bom ? input.slice(1) : input;
  const cut = text.lastIndexOf('\n') + 1;
  const complete = text.slice(0, cut);
  const torn = cut < text.length ? text.slice(cut) : undefined;
  const damaged: DamagedLine[] = [];
  // CRLF (a file saved on Windows) or mixed endings read as LF; rows mse appends are LF
  const unix = complete.replace(/\r\n/g, '\n');
  const lines = unix.split('\n');
  let tail: Array<Record<string, string>> = [];
  type Rec = { record: string[]; raw: string; info: { lines: number } };
  let records: Rec[] = [];
  const opts = { relax_column_count: true, skip_empty_lines: true, info: true, raw: true } as const;
  try {
    records = parse(unix, { ...opts, relax_quotes: false }) as unknown as Rec[];
  } catch (e) {
    // an unclosed quote swallows the rest of the file: report where the damage starts and parse what comes before it
    const err = e as Error & { lines?: number; code?: string };
    const bad = findUnclosedQuote(lines) ?? err.lines ?? 1;
    damaged.push({
      line: bad,
      why: err.code === 'CSV_QUOTE_NOT_CLOSED' ? 'unclosed quote' : `unparseable (${err.message.split('\n')[0]})`,
      text: lines[bad - 1] ?? '',
    });
    const before = lines.slice(0, bad - 1).join('\n') + (bad > 1 ? '\n' : '');
    try {
      records = parse(before, opts) as unknown as Rec[];
    } catch {
      records = [];
    }
    // the lines after the damaged one are scanned on their own, under the same header
    if (records.length && bad < lines.length) {
      const rest = scanResults(`${lines[0]}\n${lines.slice(bad).join('\n')}`);
      for (const d of rest.damaged) damaged.push({ ...d, line: d.line - 1 + bad });
      tail = rest.rows;
    }
  }
  const header = records.length ? records[0].record : [];
  const rows: Array<Record<string, string>> = [];
  const seen = new Map<string, number>();
  for (const { record, raw, info } of records.slice(1)) {
    const body = raw.replace(/\n$/, '');
    const spans = (body.match(/\n/g) ?? []).length;
    // the record's first line: info.lines is where it ends
    const line = info.lines - spans;
    const bad = (why: string) => damaged.push({ line, why, text: body });
    if (record.length !== header.length) {
      bad(`expected ${header.length} fields, found ${record.length}`);
      continue;
    }
    // mse never writes a line break or a control character into a field: one there is damage (a stray quote, NUL bytes)
    if (spans > 0) {
      bad(`a field spans ${spans + 1} lines (a stray quote?)`);
      continue;
    }
    if (record.some((f) => /[\u0000-\u0008\u000b-\u001f\u007f]/.test(f))) {
      bad('a field holds a control character (NUL bytes?)');
      continue;
    }
    const r = Object.fromEntries(header.map((h, i) => [h, record[i]]));
    if (header.includes('cell_id') && !/^[0-9a-f]{16}$/.test(r.cell_id)) {
      bad(`cell_id '${r.cell_id.slice(0, 20)}' is not a 16-digit hex id`);
      continue;
    }
    if (header.includes('cell_id')) {
      const first = seen.get(r.cell_id);
      if (first !== undefined) {
        bad(`cell ${r.cell_id} is already on line ${first} (a row written twice)`);
        continue;
      }
      seen.set(r.cell_id, line);
    }
    rows.push(r);
  }
  rows.push(...tail);
  damaged.sort((a, b) => a.line - b.line);
  return { header, rows, damaged, completeBytes: bom + Buffer.byteLength(complete), torn };
}

function findUnclosedQuote(lines: string[]): number | undefined {
  let open = false;
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const quotes = (lines[i].match(/"/g) ?? []).length;
    if (!open && quotes % 2 === 1) {
      open = true;
      start = i + 1;
    } else if (open && quotes % 2 === 1) {
      open = false;
    }
  }
  return open ? start : undefined;
}

function damageError(file: string, d: DamagedLine[]): MseError {
  const first = d[0];
  const more = d.length > 1 ? ` (and ${d.length - 1} more damaged line${d.length > 2 ? 's' : ''})` : '';
  return new MseError(
    'csv',
    `${file}: line ${first.line} is damaged: ${first.why}${more}`,
    `run \`mse repair ${file}\` to move damaged lines to ${path.basename(file)}.damaged and keep every good row, or move the line away by hand`,
  );
}

function readText(file: string): string {
  try {
    // a FIFO or device would block or never end: only regular files are results
    if (!statSync(file).isFile())
      throw new MseError(
        'csv',
        `${file} is not a regular file`,
        'give a results.csv written by mse bench, attack or reproduce',
      );
    return readFileSync(file, 'utf8');
  } catch (e) {
    const u = asUserError(e);
    throw u && !(e instanceof MseError)
      ? new MseError(u.code, `${file}: ${u.message.replace(`${file}: `, '')}`, u.hint)
      : (u ?? e);
  }
}

export class ResultsCsv {
  private readonly fd: number;
  private readonly lock: RunLock;
  private readonly done = new Set<string>();

  constructor(readonly file: string) {
    try {
      ensureDir(path.dirname(file));
      // the lock names the real file, so two paths to it (a symlink) share one lock
      this.lock = RunLock.acquire(realFile(file));
    } catch (err) {
      if (err instanceof MseError) throw err;
      throw new MseError(
        'results',
        `cannot open results file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        'choose a writable --out directory',
      );
    }
    try {
      this.fd = this.open();
    } catch (e) {
      this.lock.release();
      throw e;
    }
  }

  private open(): number {
    const text = existsSync(this.file) ? readText(this.file) : '';
    const s = scanResults(text);
    let fresh = text.length === 0;
    if (s.completeBytes === 0 && s.torn !== undefined) {
      // no complete line: a header torn by a kill (a prefix of ours carries no data and is rewritten), or not our file
      if (!HEADER.startsWith(s.torn))
        throw new MseError(
          'results',
          `${this.file} is not an mse results file (its first line is incomplete and not mse's header)`,
          'write to a new --out directory',
        );
      truncateSync(this.file, 0);
      fresh = true;
    } else if (!fresh) {
      if (s.damaged.length) throw damageError(this.file, s.damaged);
      if (s.header.join(',') !== RESULT_COLUMNS.join(',')) {
        if (!isOlderLayout(s.header))
          throw new MseError(
            'results',
            `${this.file} has a different column layout (written by another mse version?)`,
            'write to a new --out directory',
          );
        upgradeLayout(this.file, s);
        return this.open();
      }
      if (s.torn !== undefined) {
        // a row cut by a kill or a full disk: keep its bytes beside the file, then cut it so the cell is redone
        appendFileSync(`${this.file}.torn`, `${s.torn}\n`);
        truncateSync(this.file, s.completeBytes);
      }
      for (const r of s.rows) this.done.add(r.cell_id);
    }
    let fd: number;
    try {
      fd = openSync(this.file, 'a'); // O_APPEND: every write lands at the end, never over another
    } catch (err) {
      throw new MseError(
        'results',
        `cannot open results file ${this.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        'choose a writable --out directory',
      );
    }
    if (fresh) {
      try {
        appendAll(fd, this.file, HEADER);
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    }
    return fd;
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
    // a line break or control character in a value (a multi-line error message) would read back as damage
    const clean = (v: string | number) => (typeof v === 'string' ? v.replace(/[\u0000-\u001f\u007f]+/g, ' ') : v);
    appendAll(this.fd, this.file, stringify([RESULT_COLUMNS.map((c) => clean(row[c]))]));
    this.done.add(id);
  }

  close(): void {
    try {
      closeSync(this.fd);
    } finally {
      this.lock.release();
    }
  }
}

/**
 * A header of an earlier mse: every column one of ours, in our order, fewer of them (columns are
 * only ever added). Such a file is upgraded in place, not refused.
 */
function isOlderLayout(header: string[]): boolean {
  let at = -1;
  for (const h of header) {
    const i = (RESULT_COLUMNS as readonly string[]).indexOf(h);
    if (i <= at) return false;
    at = i;
  }
  return header.includes('cell_id') && header.length < RESULT_COLUMNS.length;
}

/**
 * Rewrite a results file of an older layout under the current header, every row kept and the new
 * columns empty (metrics that run did not measure): written beside it, fsynced, then renamed over
 * it, so a kill leaves either file whole. A torn last line is kept in `<file>.torn` as on open.
 */
function upgradeLayout(file: string, s: ScannedResults): void {
  if (s.torn !== undefined) appendFileSync(`${file}.torn`, `${s.torn}\n`);
  const tmp = `${file}.upgrade-${process.pid}`;
  const body = HEADER + stringify(s.rows.map((r) => RESULT_COLUMNS.map((c) => r[c] ?? '')));
  try {
    const fd = openSync(tmp, 'w');
    try {
      appendAll(fd, tmp, body);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written
    }
    if (err instanceof MseError) throw err;
    throw new MseError(
      'results',
      `cannot upgrade ${file} to this mse's columns: ${(err as Error).message}`,
      'check the disk, or write to a new --out directory',
    );
  }
}

/** Write all of `text` at the end of the file and fsync; on failure cut what was written, so no torn row stays. */
function appendAll(fd: number, file: string, text: string): void {
  const buf = Buffer.from(text);
  const before = fstatSync(fd).size;
  try {
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    try {
      ftruncateSync(fd, before);
    } catch {
      // the next open cuts the torn row instead
    }
    const u = asUserError(err);
    throw new MseError(
      'results',
      `cannot append to ${file}: ${u ? u.message : (err as Error).message}`,
      u?.hint ?? 'check the disk and re-run the same command to resume',
    );
  }
}

/**
 * Every row of a results CSV, for readers (report, compare, merge, summaries). A damaged line
 * stops with one line naming the file and line number; an unterminated last line is a row still
 * being written (or torn by a kill) and is left out.
 */
export function readResults(file: string): Array<Record<string, string>> {
  const s = scanResults(readText(file));
  // a file that is not a results CSV at all (a manifest, a spec) is said as such, not as damage to repair
  if (s.header.length && !s.header.includes('cell_id'))
    throw new MseError(
      'csv',
      `${file} is not an mse results CSV (no cell_id column)`,
      'give a results.csv written by mse bench, attack or reproduce',
    );
  if (s.damaged.length) throw damageError(file, s.damaged);
  if (!s.header.length)
    throw new MseError(
      'csv',
      `${file} has no complete header line (empty, or torn by a kill)`,
      'give a results.csv written by mse bench, attack or reproduce',
    );
  if (!s.header.includes('cell_id'))
    throw new MseError(
      'csv',
      `${file} is not an mse results CSV (no cell_id column)`,
      'give a results.csv written by mse bench, attack or reproduce',
    );
  return s.rows;
}

/** The file's real path (symlinks resolved), or its real directory joined with its name when it does not exist yet. */
export function realFile(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    try {
      return path.join(realpathSync(path.dirname(file)), path.basename(file));
    } catch {
      return path.resolve(file);
    }
  }
}
