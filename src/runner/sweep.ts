/**
 * The sweep scheduler: runs cells on N lanes (in-process, or one worker process each) and hands
 * every outcome to `finish`, which records it. A failing cell — whatever it threw — is an outcome,
 * not the end of the sweep; only a failure to record (the results file cannot be appended to: a
 * full disk) stops it, after the other lanes are told to stop (`abort`), since nothing they
 * compute could be kept.
 */
import { asUserError } from '../errors.js';
import type { ResultRow } from './result-row.js';

export interface CellOutcome {
  rows?: ResultRow[];
  /** one line: why the cell failed */
  error?: string;
}

/** One line for a cell's failure: a user-facing error's message, or "internal error: …" for a true bug. */
export function describeCellError(e: unknown): string {
  const u = asUserError(e);
  if (u) return u.message.replace(/\s*\n\s*/g, ' ');
  const msg = e instanceof Error ? e.message : String(e);
  return `internal error: ${msg.split('\n')[0]}`;
}

/**
 * The one line a failed `mse run-cell` worker printed about why: its `mse: error:` or
 * `mse: internal error:` line (never a stack frame that follows it), else how it ended.
 */
export function workerError(stderr: string, code: number | null, signal: NodeJS.Signals | null): string {
  const lines = stderr.split('\n');
  const said = lines.filter((l) => /^mse: (internal )?error: /.test(l)).pop();
  if (said) return said.replace(/^mse: (error: )?/, '');
  const last = lines
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('at '))
    .pop();
  const how = signal ? `worker killed by ${signal}` : `worker exited with code ${code}`;
  return last ? `${how}: ${last.slice(0, 300)}` : how;
}

export async function runSweep<T>(
  tasks: T[],
  lanes: number,
  run: (task: T) => Promise<CellOutcome>,
  finish: (task: T, outcome: CellOutcome) => void,
  abort: () => void = () => undefined,
): Promise<void> {
  const queue = [...tasks];
  let fatal: { error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(lanes, queue.length)) }, async () => {
      for (let t = queue.shift(); t !== undefined && !fatal; t = queue.shift()) {
        let outcome: CellOutcome;
        try {
          outcome = await run(t);
        } catch (e) {
          outcome = { error: describeCellError(e) };
        }
        if (fatal) return;
        try {
          finish(t, outcome);
        } catch (e) {
          fatal = { error: e };
          queue.length = 0;
          abort();
        }
      }
    }),
  );
  if (fatal) throw fatal.error;
}
