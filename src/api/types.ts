/**
 * The prediction API's contract. Attacks see only this: they query, and read the ledger.
 * Defenses are pure stages the API applies in order (input → model → output → price).
 */
import type { Tensor, Tensor1D } from '@tensorflow/tfjs';
import type { Rng } from '../compute/rng.js';
import type { ParamValues } from '../params.js';

import type { Probs } from '../models/model.js';

export type { Probs }; // [n, k], rows sum to 1
export type Labels = Tensor1D; // [n] int32 class indices

/** What the API chose to reveal for a batch. The caller owns (and disposes) the tensors. */
export interface ApiResponse {
  probs?: Probs;
  labels?: Labels;
  /** leaf identifiers, for tree victims served like BigML */
  leafIds?: Int32Array;
}

export type QueryBudget = number;

/** [first query, end, PoW seconds paid so far] per batch that paid any */
export type PowTrace = Array<[number, number, number]>;

export interface Ledger {
  /** examples answered */
  queries: number;
  /** examples allowed (Infinity when unlimited) */
  budget: QueryBudget;
  /** query() calls */
  batches: number;
  /** wall seconds spent answering (victim + defenses) */
  apiSeconds: number;
  /** proof-of-work seconds the client paid (measured or priced) */
  powSeconds: number;
  /** every batch that paid PoW, as [first query, end, PoW seconds so far] (pow-trace.ts) */
  powTrace?: PowTrace;
  /** set when a monitor stage raised an alarm: the client's queries before the one that raised it */
  detectedAt?: number;
  /** the alarm's reason */
  alarm?: string;
}

export type Reveal = 'probs' | 'labels' | 'leaf';

export interface ApiInfo {
  inputShape: number[];
  numClasses: number;
  domain: { min: number; max: number };
  /** what a response carries after the defenses */
  reveals: Reveal;
  defenses: string[];
}

export interface PredictionApi {
  readonly info: ApiInfo;
  readonly ledger: Readonly<Ledger>;
  /** [n, ...inputShape] → response; throws BudgetExhaustedError when n exceeds what is left */
  query(x: Tensor): Promise<ApiResponse>;
}

/** Per-query context handed to every defense stage. */
export interface QueryCtx {
  /** examples answered before this batch */
  answered: number;
  /** index of this batch */
  batch: number;
  /** the defense's own seeded generator (no Math.random anywhere) */
  rng: Rng;
  clientId: string;
  /** the API's feature box */
  domain?: { min: number; max: number };
  /** for price stages: the victim's posteriors for this batch */
  probs?: Probs;
  /** for output stages: the batch's input as the victim saw it (MAD evaluates its surrogate on it) */
  input?: Tensor;
}

/**
 * A defense instance: up to three stages, applied in order by one API. It never sees the attacker.
 * `output` receives probabilities and returns what to reveal; it may reveal less (labels only).
 * Instances are built by a DefenseUnit (defenses/define.ts): one per API, so any state a stage keeps
 * belongs to that API alone; what the defender prepared once (calibration, a proxy) is shared read-only.
 */
export interface Defense {
  readonly name: string;
  readonly params: ParamValues;
  /** what the defense leaves visible: 'probs' keeps probabilities, 'labels' reduces to labels */
  readonly reveals?: 'probs' | 'labels';
  input?(x: Tensor, ctx: QueryCtx): Tensor;
  output?(probs: Probs, ctx: QueryCtx): ApiResponse;
  /** the price of this batch, paid before its answers are revealed; `ctx.probs` holds the victim's posteriors */
  price?(x: Tensor, ctx: QueryCtx): { powSeconds: number };
  /**
   * Watch the client's query stream (the inputs as the client sent them; `ctx.probs` holds the
   * victim's posteriors): an alarm, with the batch row that raised it, makes the API refuse this
   * client from then on (PRADA). State is per `ctx.clientId` and must stay bounded.
   */
  monitor?(x: Tensor, ctx: QueryCtx): Alarm | undefined;
}

/** A monitor's verdict on a batch: why, and the row of the batch that raised it. */
export interface Alarm {
  reason: string;
  row: number;
}

/** What a defender has: its model and its own data (never the attacker's). */
export interface DefenderEnv {
  victim: import('../models/model.js').Model;
  /** the victim's training data */
  train: import('../data/types.js').Split;
  /** held-out in-distribution data: the model of an honest user */
  heldOut: import('../data/types.js').Split;
  /** the defender's own setup stream for this defense (a proxy model's initial weights) */
  rng: Rng;
  /** the victim dataset's name and input box, for defenses that bring data of their own (an outlier set) */
  datasetName?: string;
  domain?: { min: number; max: number };
  /** where datasets are found (--data-dir), for loading such data */
  data?: import('../data/resolve.js').ResolveOptions;
}
