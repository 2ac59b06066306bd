/**
 * What the DNN-era attackers (Knockoff, JBDA) share: their query log, how answers become training
 * targets, and training a fresh surrogate on each budget's prefix of the log, so one pass of queries
 * yields the whole learning curve. A defense-aware attacker (`adapt=reverse-sigmoid`) inverts the
 * defense's probability answers before training on them (./invert-reverse-sigmoid.ts).
 */
import { tf } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import { QueryRefusedError, UsageError } from '../errors.js';
import type { ApiResponse, PredictionApi } from '../api/types.js';
import type { Net } from '../models/net.js';
import { fit } from '../models/train.js';
import { createNet, parseModelSpec } from '../models/zoo.js';
import type { Params, Schema } from '../params.js';
import { EXACT_L1, invertRows, ReverseSigmoidCurve } from './invert-reverse-sigmoid.js';
import { checkRestorable, Restorer } from './restorer.js';
import {
  AttackNotApplicable,
  type AttackerKnowledge,
  type AttackResult,
  type CurvePoint,
  type RunOptions,
} from './types.js';

/** Parameters every surrogate-training attack takes (`knockoff:epochs=20,labels=top1`). */
export const SURROGATE_PARAMS = {
  arch: {
    type: 'string',
    default: 'auto',
    help: "the attacker's model: 'auto' (the victim's family; cnn for images) or a model spec such as mlp or cnn",
  },
  epochs: { type: 'int', min: 1, default: 10, help: 'surrogate training epochs (per checkpoint)' },
  batch: { type: 'int', min: 1, default: 64, help: 'surrogate training batch size' },
  lr: { type: 'number', min: 0, default: 1e-3, help: 'Adam learning rate for the surrogate' },
  labels: {
    type: 'string',
    choices: ['auto', 'soft', 'top1'],
    default: 'auto',
    help: "train on the API's probabilities (soft), on its top-1 only, or soft when revealed (auto)",
  },
  // No defaults: unset, they are left out of the params text, so every existing cell id stays the same.
  adapt: {
    type: 'string',
    choices: ['reverse-sigmoid', 'restorer'],
    help: "a defense-aware attacker: undo the defense on the probability answers before training — reverse-sigmoid: invert Lee et al. 2018 eqs. 3-4 exactly (adapt-beta, adapt-gamma); restorer: a network trained on shadow victims behind the attacker's copy of adapt-defense maps answers back to clean ones (D-DAE, Chen 2023)",
  },
  'adapt-beta': {
    type: 'number',
    min: 0,
    help: "adapt=reverse-sigmoid: the defense's β, required (answers alone do not identify β and γ: a family of pairs explains them exactly)",
  },
  'adapt-gamma': {
    type: 'number',
    min: 1e-9,
    help: "adapt=reverse-sigmoid: the defense's γ, required",
  },
  'adapt-defense': {
    type: 'string',
    help: 'adapt=restorer: the defense stack the API runs, as --defense takes it, bracketed: adapt-defense=[mad:eps=1,argmax=true]',
  },
  'adapt-shadows': {
    type: 'int',
    min: 1,
    help: 'adapt=restorer: shadow victims to train the restorer on (unset: 3; the last is held out to measure the restorer)',
  },
} as const satisfies Schema;

/** The surrogate-training parameters, typed (an attack's own parameters include them). */
export type SurrogateParams = Params<typeof SURROGATE_PARAMS>;

/** What the defense-aware attacker reads, each possibly unset (copycat's parameters have no `labels`). */
export interface AdaptParams {
  readonly adapt?: 'reverse-sigmoid' | 'restorer';
  readonly 'adapt-beta'?: number;
  readonly 'adapt-gamma'?: number;
  readonly 'adapt-defense'?: string;
  readonly 'adapt-shadows'?: number;
  readonly labels?: string;
}

/**
 * Why these surrogate parameters cannot work together, as one line (undefined when they can): an
 * attack's `check`, and run before any adaptation.
 */
export function checkSurrogateParams(p: AdaptParams): string | undefined {
  return inverseFor(p).why;
}

/** The defense's inverse `p` asks for (none when `adapt` is unset), or why there can be none. */
function inverseFor(p: AdaptParams): { curve?: ReverseSigmoidCurve; why?: string } {
  const beta = p['adapt-beta'];
  const gamma = p['adapt-gamma'];
  const restorerOnly = p['adapt-defense'] !== undefined || p['adapt-shadows'] !== undefined;
  if (p.adapt !== 'reverse-sigmoid' && (beta !== undefined || gamma !== undefined))
    return { why: 'adapt-beta and adapt-gamma need adapt=reverse-sigmoid' };
  if (p.adapt !== 'restorer' && restorerOnly) return { why: 'adapt-defense and adapt-shadows need adapt=restorer' };
  if (p.adapt === undefined) return {};
  if (p.adapt === 'restorer') {
    if (p['adapt-defense'] === undefined)
      return { why: 'adapt=restorer needs adapt-defense, the defense the API runs (e.g. adapt-defense=[mad:eps=1])' };
    if (p.labels === 'top1') return { why: 'adapt restores probability answers, labels=top1 trains on labels only' };
    return { why: checkRestorable(p['adapt-defense']) };
  }
  if (beta === undefined || gamma === undefined)
    return {
      why: "adapt=reverse-sigmoid needs adapt-beta and adapt-gamma, the defense's β and γ (they are not estimated)",
    };
  if (p.labels === 'top1') return { why: 'adapt inverts probability answers, labels=top1 trains on labels only' };
  try {
    return { curve: new ReverseSigmoidCurve(beta, gamma) };
  } catch (e) {
    return { why: (e as Error).message };
  }
}

/** Everything the attacker has asked and been told, in query order. */
export class QueryLog {
  readonly x: Float32Array;
  /** soft targets [capacity·k]: the revealed probabilities (inverted when adapting), or one-hot labels */
  readonly targets: Float32Array;
  n = 0;
  /** whether any answer carried probabilities */
  sawProbs = false;
  /** per row: 1 when its target is a probability answer (what adaptation inverts), 0 for one-hot */
  private readonly soft: Uint8Array;
  private readonly labels: string;
  /** the defense-aware attacker's inverse, once `adaptTo` set it; rows below `adapted` are done */
  private inverse?: ReverseSigmoidCurve;
  /** what the last learned restorer (adapt=restorer) reported, for the notes */
  private restored?: string;
  private adapted = 0;
  private inverted = { rows: 0, residual: 0, inexact: 0 };
  /** attacker CPU seconds (API time excluded) when the log reached each length, for per-budget costs */
  private readonly cpuMarks: Array<{ n: number; s: number }> = [{ n: 0, s: 0 }];
  private cpu0 = process.cpuUsage();
  private api0: number;
  /** wall seconds spent in ask() (querying, API time included) */
  askSeconds = 0;
  /** wall seconds spent training surrogates in trainCurve, and the examples they saw */
  trainSeconds = 0;
  trainExamples = 0;

  /**
   * `labels`: the `labels` parameter, or all the surrogate parameters — then a defense-aware attacker
   * inverts each probability answer as it arrives (otherwise `trainCurve` inverts the log before training).
   */
  constructor(
    readonly capacity: number,
    readonly d: number,
    readonly k: number,
    private readonly api: PredictionApi,
    private readonly inputShape: number[],
    labels: string | AdaptParams,
  ) {
    this.x = new Float32Array(capacity * d);
    this.targets = new Float32Array(capacity * k);
    this.soft = new Uint8Array(capacity);
    this.api0 = api.ledger.apiSeconds;
    this.labels = typeof labels === 'string' ? labels : (labels.labels ?? 'auto');
    if (typeof labels !== 'string') this.adaptTo(labels);
  }

  /**
   * Become the defense-aware attacker `p` asks for (nothing when `p.adapt` is unset): invert every
   * probability answer logged so far, and every later one as it arrives. Idempotent.
   */
  adaptTo(p: AdaptParams): void {
    const { curve, why } = inverseFor({ labels: this.labels, ...p });
    if (why) throw new UsageError(why);
    if (!curve || this.inverse) return;
    this.inverse = curve;
    this.invertNew();
  }

  /**
   * The targets of the first `n` rows as a defense-aware attacker with a learned restorer trains on
   * them (adapt=restorer): a restorer trained on those rows alone — shadow victims of `p.arch` behind
   * the attacker's copy of `adapt-defense` — maps each probability answer back. The log itself is not
   * changed, so each budget of a learning curve gets what a run with just that budget would.
   */
  async restoredTargets(
    p: SurrogateParams,
    know: AttackerKnowledge,
    seed: number,
    n: number,
  ): Promise<{ targets: Float32Array; seconds: number }> {
    const { why } = inverseFor(p);
    if (why) throw new UsageError(why);
    const targets = this.targets.slice(0, n * this.k);
    const rows: number[] = [];
    for (let i = 0; i < n; i++) if (this.soft[i]) rows.push(i);
    if (rows.length === 0) {
      this.restored = 'adapt: no probability answers to restore';
      return { targets, seconds: 0 };
    }
    const x = new Float32Array(rows.length * this.d);
    const answers = new Float32Array(rows.length * this.k);
    rows.forEach((r, i) => {
      x.set(this.x.subarray(r * this.d, (r + 1) * this.d), i * this.d);
      answers.set(this.targets.subarray(r * this.k, (r + 1) * this.k), i * this.k);
    });
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const restorer = await Restorer.train({
      x,
      answers,
      n: rows.length,
      know,
      defense: p['adapt-defense']!,
      shadows: p['adapt-shadows'] ?? 3,
      pairs: 10000,
      arch: p.arch,
      epochs: p.epochs,
      batch: p.batch,
      lr: p.lr,
      rng: new Rng((seed ^ 0x5eed5) >>> 0),
    });
    try {
      const restored = restorer.restore(answers);
      rows.forEach((r, i) => targets.set(restored.subarray(i * this.k, (i + 1) * this.k), r * this.k));
    } finally {
      restorer.dispose();
    }
    const c = process.cpuUsage(c0);
    this.restored = `adapt: ${restorer.summary} (${n} queries, ${((performance.now() - w0) / 1000).toFixed(1)} s)`;
    return { targets, seconds: (c.user + c.system) / 1e6 };
  }

  /** Invert (or restore) the probability answers logged since the last call (runs of soft rows at a time). */
  private invertNew(): void {
    const curve = this.inverse;
    if (!curve) return;
    const k = this.k;
    for (let i = this.adapted; i < this.n;) {
      if (!this.soft[i]) {
        i++;
        continue;
      }
      let e = i;
      while (e < this.n && this.soft[e]) e++;
      const rows = this.targets.subarray(i * k, e * k);
      const { y, residuals } = invertRows(curve, rows, k);
      rows.set(y);
      for (const r of residuals) {
        this.inverted.residual += r;
        if (r > EXACT_L1) this.inverted.inexact++;
      }
      this.inverted.rows += e - i;
      i = e;
    }
    this.adapted = this.n;
  }

  /**
   * The server's refusal, when it stopped answering before the attacker's own count ran out (a
   * smaller budget on its side): the log stops there, and the attack trains on what it has.
   */
  refused?: string;

  get remaining(): number {
    if (this.refused !== undefined) return 0;
    return Math.min(this.capacity - this.n, this.api.ledger.budget - this.api.ledger.queries);
  }

  /**
   * What a one-pass surrogate attack returns: the last point's surrogate, its notes with the log's
   * throughput (and the server's early refusal, if any), budget-exhausted when it refused.
   */
  result(curve: CurvePoint[], notes: string[]): AttackResult {
    notes.push(this.throughput());
    const refused = this.refusedNote();
    if (refused) notes.push(refused);
    return {
      surrogate: curve[curve.length - 1].surrogate,
      queries: this.n,
      budgetExhausted: refused !== undefined,
      notes,
      curve,
    };
  }

  /** the note an attack adds when the server refused early, or undefined */
  refusedNote(): string | undefined {
    return this.refused === undefined
      ? undefined
      : `the API stopped answering after ${this.n} queries (${this.refused}); the surrogate is trained on the answers it gave`;
  }

  /** Query rows [n·d] (at most `remaining`, in batches); append them and their targets; returns the targets [n·k]. */
  async ask(x: Float32Array, n: number, batch = 256): Promise<Float32Array> {
    const take = Math.min(n, this.remaining);
    const start = this.n;
    const w0 = performance.now();
    for (let s = 0; s < take; s += batch) {
      const m = Math.min(batch, take - s);
      const rows = x.subarray(s * this.d, (s + m) * this.d);
      const xt = tf.tensor(rows, [m, ...this.inputShape]);
      let r: ApiResponse = {};
      try {
        try {
          r = await this.api.query(xt);
        } catch (e) {
          if (!(e instanceof QueryRefusedError)) throw e;
          this.refused = e.message;
          break;
        }
        const t = await toTargets(r, m, this.k, this.labels);
        if (r.probs) this.sawProbs = true;
        this.x.set(rows, this.n * this.d);
        this.targets.set(t, this.n * this.k);
        this.soft.fill(r.probs && this.labels !== 'top1' ? 1 : 0, this.n, this.n + m);
        this.n += m;
        this.invertNew();
      } finally {
        tf.dispose([xt, r.probs ?? [], r.labels ?? []]);
      }
    }
    this.askSeconds += (performance.now() - w0) / 1000;
    const c = process.cpuUsage(this.cpu0);
    this.cpuMarks.push({
      n: this.n,
      s: Math.max(0, (c.user + c.system) / 1e6 - (this.api.ledger.apiSeconds - this.api0)),
    });
    return this.targets.subarray(start * this.k, this.n * this.k);
  }

  /**
   * "20000 queries at 1234/s; training 200000 examples at 1400/s" for the attack's notes (and, for a
   * defense-aware attacker, how many answers it inverted and how exactly)
   */
  throughput(): string {
    const rate = (n: number, s: number) => (s > 0 ? `${Math.round(n / s)}/s` : '–');
    const inv = this.inverted;
    const adapt = this.restored
      ? `; ${this.restored}`
      : !this.inverse
        ? ''
        : inv.rows
          ? `; adapt: inverted ${inv.rows} reverse-sigmoid answers (β=${this.inverse.beta}, γ=${this.inverse.gamma}), mean re-defense L1 ${(inv.residual / inv.rows).toExponential(1)}, ${inv.inexact} not exact`
          : '; adapt: no probability answers to invert';
    return `throughput: ${this.n} queries at ${rate(this.n, this.askSeconds)}; surrogate training ${this.trainExamples} examples at ${rate(this.trainExamples, this.trainSeconds)}${adapt}`;
  }

  /** attacker CPU seconds spent producing the first `n` entries */
  cpuAt(n: number): number {
    const mark = this.cpuMarks.find((m) => m.n >= n) ?? this.cpuMarks[this.cpuMarks.length - 1];
    return mark.s;
  }
}

/** An answer as training targets: probabilities when revealed (and wanted), else one-hot of the top-1. */
export async function toTargets(r: ApiResponse, m: number, k: number, labels: string): Promise<Float32Array> {
  if (r.probs && labels !== 'top1') return Float32Array.from((await r.probs.data()) as Float32Array);
  const out = new Float32Array(m * k);
  if (r.labels) {
    const l = (await r.labels.data()) as Int32Array;
    for (let i = 0; i < m; i++) out[i * k + l[i]] = 1;
    return out;
  }
  if (!r.probs)
    throw new AttackNotApplicable('surrogate training', 'the API returned neither probabilities nor labels');
  const p = (await r.probs.data()) as Float32Array;
  for (let i = 0; i < m; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + best]) best = j;
    out[i * k + best] = 1;
  }
  return out;
}

/** A fresh, untrained surrogate of the attacker's architecture. */
export function newSurrogate(know: AttackerKnowledge, params: Pick<SurrogateParams, 'arch'>, rng: Rng): Net {
  const arch = params.arch;
  const image = know.inputShape.length === 3;
  const fam = know.family?.kind;
  const text = arch !== 'auto' ? arch : fam === 'cnn' || fam === 'mlp' ? fam : image ? 'cnn' : 'mlp';
  const spec = parseModelSpec(text);
  if (spec.kind === 'tree')
    throw new AttackNotApplicable(
      'surrogate training',
      'the surrogate must be a network (cnn, mlp, softmax, …), not a tree',
    );
  return createNet(
    spec,
    { name: 'queries', inputShape: know.inputShape, numClasses: know.numClasses, kind: image ? 'image' : 'tabular' },
    rng,
  );
}

/**
 * Train a fresh surrogate on each checkpoint's prefix of the log (all from the same seed, so a
 * checkpoint's surrogate is the one a run with exactly that budget would train from the same log).
 */
export async function trainCurve(
  log: QueryLog,
  know: AttackerKnowledge,
  params: SurrogateParams,
  trainSeed: number,
  opts: RunOptions = {},
  epochs = params.epochs,
): Promise<CurvePoint[]> {
  log.adaptTo(params); // a defense-aware attacker trains on the inverted answers (or, below, restored ones)
  const points = [...new Set((opts.checkpoints ?? [log.n]).map((c) => Math.min(c, log.n)))].sort((a, b) => a - b);
  const requested = opts.checkpoints ?? [log.n];
  const out: CurvePoint[] = [];
  for (const n of points) {
    // a learned restorer is trained on this prefix only
    const restored = params.adapt === 'restorer' ? await log.restoredTargets(params, know, trainSeed, n) : undefined;
    const rng = new Rng(trainSeed);
    const net = newSurrogate(know, params, rng.fork());
    const c0 = process.cpuUsage();
    const stats = await fit(
      net,
      { x: log.x.subarray(0, n * log.d), targets: restored?.targets ?? log.targets.subarray(0, n * log.k), n },
      {
        epochs,
        batchSize: params.batch,
        optimizer: 'adam',
        lr: params.lr,
        rng: rng.fork(),
        onBatch: (seen, total) =>
          opts.onProgress?.({
            phase: 'train',
            done: seen,
            total,
            label: `${n} queries, epoch ${Math.min(epochs, Math.floor(seen / n) + 1)}/${epochs}`,
          }),
      },
    );
    log.trainSeconds += stats.seconds;
    log.trainExamples += stats.examples;
    const c = process.cpuUsage(c0);
    const seconds = log.cpuAt(n) + (restored?.seconds ?? 0) + (c.user + c.system) / 1e6;
    // every requested budget this prefix serves: budgets past the log's end share its last surrogate
    // (dispose each distinct surrogate once)
    for (const b of requested.filter((b) => Math.min(b, log.n) === n))
      out.push({ budget: b, queries: n, surrogate: net, attackerSeconds: seconds });
  }
  return out.sort((a, b) => a.budget - b.budget);
}
