/**
 * An in-process prediction API around a victim: applies the defenses in order (ART's
 * postprocessor loop — no defense calls another), counts every answered example, enforces the
 * budget before doing any work, and times itself. One place owns the order of stages. A victim
 * that answers labels only (Model.labelsOnly) is revealed as labels, as if `top1` ended the stack.
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import type { DecisionTree } from '../models/decision-tree.js';
import { predictProbs, type Model } from '../models/model.js';
import { notePow } from './pow-trace.js';
import { BudgetExhaustedError, DetectedError, UsageError } from '../errors.js';
import type { ApiInfo, ApiResponse, Defense, Labels, Ledger, PredictionApi, QueryCtx, Reveal } from './types.js';

export interface LocalApiOptions {
  budget?: number;
  rng: Rng;
  domain: { min: number; max: number };
  /** reveal leaf ids too (tree victims only) */
  revealLeaves?: boolean;
  clientId?: string;
}

export class LocalPredictionApi implements PredictionApi {
  readonly info: ApiInfo;
  private readonly _ledger: Ledger;
  private readonly defenseRngs: Rng[];

  constructor(
    private readonly victim: Model,
    private readonly defenses: readonly Defense[],
    private readonly opts: LocalApiOptions,
  ) {
    // a victim that answers labels only (a user's argmax export) is revealed as labels whatever the defenses
    let reveals: Reveal = victim.labelsOnly ? 'labels' : opts.revealLeaves ? 'leaf' : 'probs';
    if (opts.revealLeaves && victim.kind !== 'tree')
      throw new UsageError(`only tree victims can reveal leaf ids (victim is ${victim.kind})`);
    for (const d of defenses) {
      if (d.output && victim.labelsOnly && d.reveals !== 'labels')
        throw new UsageError(
          `defense '${d.name}' needs probabilities but the victim (${victim.kind}) answers labels only`,
          `drop ${d.name} for this victim: a labels-only victim takes input, price and labels-only defenses`,
        );
      if (d.output && reveals === 'labels' && !victim.labelsOnly)
        throw new UsageError(
          `defense '${d.name}' needs probabilities but an earlier defense reveals labels only; put it before that one`,
        );
      if (d.reveals === 'labels') reveals = 'labels';
    }
    this.info = {
      inputShape: victim.inputShape,
      numClasses: victim.numClasses,
      domain: opts.domain,
      reveals,
      defenses: defenses.map((d) => d.name),
    };
    this._ledger = { queries: 0, budget: opts.budget ?? Infinity, batches: 0, apiSeconds: 0, powSeconds: 0 };
    this.defenseRngs = defenses.map(() => opts.rng.fork());
  }

  get ledger(): Readonly<Ledger> {
    return this._ledger;
  }

  async query(x: tf.Tensor): Promise<ApiResponse> {
    const n = x.shape[0];
    const l = this._ledger;
    if (x.rank < 2 || x.shape.slice(1).join() !== this.info.inputShape.join()) {
      throw new UsageError(
        `query shape [${x.shape.join(', ')}] does not match the API's input shape [n, ${this.info.inputShape.join(', ')}]`,
      );
    }
    // an alarmed client is refused for good (its later queries are not even looked at)
    if (l.alarm !== undefined) throw new DetectedError(l.alarm, l.detectedAt ?? l.queries);
    if (l.queries + n > l.budget) throw new BudgetExhaustedError(l.queries, l.budget, n);
    const t0 = performance.now();
    const ctx = (i: number): QueryCtx => ({
      answered: l.queries,
      batch: l.batches,
      rng: this.defenseRngs[i],
      clientId: this.opts.clientId ?? 'local',
      domain: this.opts.domain,
    });
    let pow = 0;
    let resp: ApiResponse = {};
    let leafIds: Int32Array | undefined;
    const owned: tf.Tensor[] = [];
    try {
      let xin = x;
      this.defenses.forEach((d, i) => {
        if (d.input) {
          xin = d.input(xin, ctx(i));
          owned.push(xin);
        }
      });
      // a labels-only defense after the tree hides its leaf ids too
      if (this.info.reveals === 'leaf')
        leafIds = (this.victim as DecisionTree).leafIds((await xin.data()) as Float32Array, n);
      resp = { probs: await predictProbs(this.victim, xin) };
      // monitors watch the stream as the client sent it, knowing the victim's answer, before anything
      // is priced or revealed: the batch that raises an alarm is refused whole
      for (const [i, d] of this.defenses.entries()) {
        if (!d.monitor) continue;
        const alarm = d.monitor(x, { ...ctx(i), probs: resp.probs });
        if (alarm) {
          l.detectedAt = l.queries + Math.max(0, Math.min(n - 1, Math.floor(alarm.row)));
          l.alarm = `${d.name}: ${alarm.reason}`;
          l.apiSeconds += (performance.now() - t0) / 1000;
          throw new DetectedError(l.alarm, l.detectedAt);
        }
      }
      // the price is set from the victim's answer (Dziedzic 2022: the client pays before reading it)
      this.defenses.forEach((d, i) => {
        if (d.price) pow += d.price(xin, { ...ctx(i), probs: resp.probs }).powSeconds;
      });
      this.defenses.forEach((d, i) => {
        if (!d.output || !resp.probs) return;
        const prev = resp.probs;
        resp = d.output(prev, { ...ctx(i), input: xin });
        if (resp.probs !== prev) prev.dispose(); // a stage hands back new tensors; the input is ours to free
      });
      // a labels-only victim's one-hot rows no defense reduced: its labels, as the model answered them
      if (this.info.reveals === 'labels' && resp.probs) {
        const probs = resp.probs;
        resp = { labels: tf.tidy(() => tf.argMax(probs, 1)) as Labels };
        probs.dispose();
      }
    } catch (e) {
      // a stage failed: what was answered so far is nobody's to free but ours
      tf.dispose([resp.probs ?? [], resp.labels ?? []]);
      throw e;
    } finally {
      tf.dispose(owned.filter((t) => t !== x));
    }
    l.queries += n;
    l.batches += 1;
    l.powSeconds += pow;
    notePow((l.powTrace ??= []), l.queries - n, l);
    l.apiSeconds += (performance.now() - t0) / 1000;
    return leafIds ? { ...resp, leafIds } : resp;
  }
}
