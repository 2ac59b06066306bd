/**
 * What the first q queries of a stream cost in proof-of-work. A calibrated PoW price (Dziedzic 2022)
 * grows with the privacy cost a client has already spent, so the first 1k of 10k queries may cost far
 * less than a tenth of the total: a learning curve's 1k row is priced from the ledger as it stood
 * after 1k queries, not as that share of the whole pass (issue 19). Each API notes every batch that
 * paid PoW as [first query, end, PoW seconds so far]; `powWithin` reads a prefix off the trace.
 */
import type { Ledger, PowTrace } from './types.js';

/** After a batch that began at query `start`: note it when it paid any PoW. */
export function notePow(trace: PowTrace, start: number, l: Readonly<Ledger>): void {
  const before = trace.length ? trace[trace.length - 1][2] : 0;
  if (l.powSeconds > before) trace.push([start, l.queries, l.powSeconds]);
}

/**
 * PoW seconds paid for the first q queries: exact at a batch boundary; inside a batch that paid,
 * its price shared over its rows (a batch pays one puzzle).
 */
export function powWithin(l: Readonly<Ledger>, q: number): number {
  if (q >= l.queries) return l.powSeconds;
  let before = 0;
  for (const [s, e, after] of l.powTrace ?? []) {
    if (e <= q) {
      before = after;
      continue;
    }
    return q <= s ? before : before + ((after - before) * (q - s)) / (e - s);
  }
  return before;
}
