/**
 * Typed errors. Library code throws these with a hint; only `cli/index.ts` prints and exits
 * (exit 2 for usage errors, 1 for everything else), so expected failures read as one clear line.
 */
export class MseError extends Error {
  readonly code: string;
  readonly hint?: string;
  readonly exitCode: number = 1;
  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
  }
}

/** Bad flag, unknown name, malformed value: the user can fix the command line. Exit code 2. */
export class UsageError extends MseError {
  override readonly exitCode = 2;
  constructor(message: string, hint?: string) {
    super('usage', message, hint);
  }
}

/** A dataset file is missing, corrupt, truncated or has the wrong checksum. */
export class DataError extends MseError {
  constructor(message: string, hint?: string) {
    super('data', message, hint);
  }
}

/**
 * The API refuses this client any further answer — its budget is spent, or a detector raised an
 * alarm on its query stream. Attacks catch it and stop with what they have.
 */
export class QueryRefusedError extends MseError {}

/** The API refused a query because the client's budget is spent; attacks catch it and stop cleanly. */
export class BudgetExhaustedError extends QueryRefusedError {
  readonly used: number;
  readonly budget: number;
  constructor(used: number, budget: number, requested: number) {
    super('budget', `query budget exhausted: ${used} of ${budget} used, ${requested} more requested`);
    this.used = used;
    this.budget = budget;
  }
}

/**
 * A detector watching the client's query stream raised an alarm: the API refuses this client from
 * now on. `at`: the client's queries before the one that raised it (the alarm's batch is refused whole).
 */
export class DetectedError extends QueryRefusedError {
  constructor(
    readonly reason: string,
    readonly at: number,
  ) {
    super('detected', `refused: extraction detected after ${at} queries (${reason})`);
  }
}

/** "Did you mean …? Available: …" for an unknown registry key (lm-eval-harness habit). */
export function unknownChoice(kind: string, got: string, choices: readonly string[]): UsageError {
  const near = choices
    .map((c) => ({ c, d: editDistance(c, got) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(got.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  const dym = near ? ` Did you mean '${near.c}'?` : '';
  return new UsageError(`unknown ${kind} '${got}'.${dym} Available: ${choices.join(', ')}`);
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}

/** What a system error code means to a user, for the one-line message. */
const SYSTEM_CODES: Record<string, { what: string; hint?: string }> = {
  ENOENT: { what: 'no such file or directory' },
  EACCES: { what: 'permission denied', hint: 'check the file and directory permissions' },
  EPERM: { what: 'operation not permitted', hint: 'check the file and directory permissions' },
  EISDIR: { what: 'is a directory, not a file' },
  ENOTDIR: { what: 'a part of the path is not a directory' },
  ENOSPC: {
    what: 'no space left on device',
    hint: 'free some space and re-run the same command: finished rows are kept and the run resumes',
  },
  EDQUOT: {
    what: 'disk quota exceeded',
    hint: 'free some space and re-run the same command: finished rows are kept and the run resumes',
  },
  EROFS: { what: 'read-only file system', hint: 'choose a writable location' },
  EMFILE: { what: 'too many open files' },
  ENAMETOOLONG: { what: 'file name too long' },
  EEXIST: { what: 'already exists' },
  EADDRINUSE: { what: 'address already in use', hint: 'choose another --port, or stop the process that holds it' },
  EADDRNOTAVAIL: {
    what: 'address not available on this machine',
    hint: 'give an address of one of its interfaces, e.g. 127.0.0.1',
  },
  EIO: { what: 'input/output error' },
};

/**
 * The one place where errors from the file system, the network stack and the CSV parser become
 * one-line MseErrors. Returns undefined for anything else: that is a true bug, and the CLI prints
 * "internal error" with its stack.
 */
export function asUserError(err: unknown): MseError | undefined {
  if (err instanceof MseError) return err;
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as NodeJS.ErrnoException & { lines?: number; column?: number };
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code && SYSTEM_CODES[code]) {
    const c = SYSTEM_CODES[code];
    const where = e.path
      ? `${e.path}: `
      : (e as { address?: string }).address
        ? `${(e as { address?: string }).address}:${(e as { port?: number }).port ?? ''}: `
        : '';
    return new MseError('system', `${where}${c.what} (${code}${e.syscall ? ` in ${e.syscall}` : ''})`, c.hint);
  }
  // csv-parse's CsvError: code CSV_*, message names the line
  if (code?.startsWith('CSV_') || (e as Error).name === 'CsvError') {
    return new MseError(
      'csv',
      `malformed CSV: ${(e as Error).message.replace(/\s+/g, ' ').trim()}`,
      'move the damaged line away, or restore the file from a backup',
    );
  }
  return undefined;
}
