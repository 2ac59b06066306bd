/**
 * A Sybil attacker's access (`<attack>:accounts=k`): k client identities, each its own API with its
 * own per-client defense state (a detector's stream, a proof-of-work ledger); each of the attacker's
 * batches is split over the accounts still served, in turn. An account a detector alarms on is
 * dropped and its slice goes to the next;
 * when every account is refused, so is the attacker. One budget counts the queries of all accounts.
 * This is how a per-client defense should be reported: queries until detection as k grows.
 */
import type { Tensor } from '@tensorflow/tfjs';
import { tf } from '../compute/backend.js';
import { BudgetExhaustedError, DetectedError } from '../errors.js';
import { notePow } from './pow-trace.js';
import type { ApiInfo, ApiResponse, Labels, Ledger, PowTrace, PredictionApi, Probs } from './types.js';

export class SybilApi implements PredictionApi {
  private next = 0;
  private readonly refused: boolean[];
  private first?: { at: number; alarm: string };
  private readonly powTrace: PowTrace = [];

  constructor(
    private readonly accounts: readonly PredictionApi[],
    private readonly budget: number,
  ) {
    if (accounts.length < 1) throw new RangeError('a Sybil attacker needs at least one account');
    this.refused = accounts.map(() => false);
  }

  get info(): ApiInfo {
    return this.accounts[0].info;
  }

  /** accounts a detector refused so far */
  get alarmed(): number {
    return this.refused.filter(Boolean).length;
  }

  get ledger(): Readonly<Ledger> {
    const sum = (f: (l: Readonly<Ledger>) => number) => this.accounts.reduce((s, a) => s + f(a.ledger), 0);
    return {
      queries: sum((l) => l.queries),
      budget: this.budget,
      batches: sum((l) => l.batches),
      apiSeconds: sum((l) => l.apiSeconds),
      powSeconds: sum((l) => l.powSeconds),
      powTrace: this.powTrace,
      // the first alarm on any account, counted in the attacker's queries over all accounts
      ...(this.first ? { detectedAt: this.first.at, alarm: this.first.alarm } : {}),
    };
  }

  async query(x: Tensor): Promise<ApiResponse> {
    const n = x.shape[0];
    const answered = this.ledger.queries;
    if (answered + n > this.budget) throw new BudgetExhaustedError(answered, this.budget, n);
    try {
      return await this.spread(x, n);
    } finally {
      // whatever the accounts paid for this batch, at its place in the attacker's whole stream
      notePow(this.powTrace, answered, this.ledger);
    }
  }

  private async spread(x: Tensor, n: number): Promise<ApiResponse> {
    // each batch is split over the accounts still served, so each sees its share of every batch
    const live = this.refused.filter((r) => !r).length;
    const size = Math.max(1, Math.ceil(n / Math.max(1, live)));
    const parts: ApiResponse[] = [];
    try {
      for (let s = 0; s < n; s += size) {
        const m = Math.min(size, n - s);
        const slice = tf.slice(x, s, m);
        try {
          parts.push(await this.ask(slice));
        } finally {
          slice.dispose();
        }
      }
      if (parts.length === 1) return parts.splice(0)[0];
      const probs = parts.every((p) => p.probs) ? (tf.concat(parts.map((p) => p.probs!)) as Probs) : undefined;
      const labels = parts.every((p) => p.labels) ? (tf.concat(parts.map((p) => p.labels!)) as Labels) : undefined;
      const leafIds = parts.every((p) => p.leafIds)
        ? Int32Array.from(parts.flatMap((p) => Array.from(p.leafIds!)))
        : undefined;
      return { ...(probs ? { probs } : {}), ...(labels ? { labels } : {}), ...(leafIds ? { leafIds } : {}) };
    } finally {
      tf.dispose(parts.flatMap((p) => [p.probs ?? [], p.labels ?? []]));
    }
  }

  /** one slice to the next account still served, and on to the next when a detector refuses it */
  private async ask(x: Tensor): Promise<ApiResponse> {
    for (let tries = 0; tries < this.accounts.length; tries++) {
      const i = this.next;
      this.next = (this.next + 1) % this.accounts.length;
      if (this.refused[i]) continue;
      const account = this.accounts[i];
      const answered = this.ledger.queries;
      try {
        return await account.query(x);
      } catch (e) {
        if (!(e instanceof DetectedError)) throw e;
        this.refused[i] = true;
        // the alarm's position in the whole stream: everything answered so far, plus the rows of
        // this slice before the one that raised it
        this.first ??= { at: answered + Math.max(0, e.at - account.ledger.queries), alarm: e.reason };
      }
    }
    const f = this.first;
    throw new DetectedError(
      `every one of the ${this.accounts.length} accounts was refused; the first alarm: ${f?.alarm ?? 'unknown'}`,
      f?.at ?? this.ledger.queries,
    );
  }
}
