/**
 * Fidelity metrics (Tramèr et al. 2016 §3): R_test and R_unif are the fractions of inputs, from the
 * victim's test set or uniform over the feature box, on which victim and surrogate disagree on the
 * top-1 class; R^TV is the mean total-variation distance between their probability vectors.
 * Test-set accuracy is Orekondy et al.'s "attacker accuracy". Nothing here counts as a query.
 */
import type { Rng } from '../compute/rng.js';
import type { Model } from '../models/model.js';
import { accuracyOf, argmaxRows, predictAll } from '../models/train.js';
import { DecisionTree } from '../models/decision-tree.js';

export async function probsOf(model: Model, x: Float32Array, n: number): Promise<Float32Array> {
  return model instanceof DecisionTree ? model.predictArray(x, n) : predictAll(model, x, n);
}

export interface Fidelity {
  /** 1 − R: fraction of inputs with the same top-1 class */
  agreement: number;
  /** mean ½‖f(x) − f̂(x)‖₁ */
  tv: number;
  /** mean ‖f(x) − f̂(x)‖₁: top-1 agreement hides how far apart the distributions are */
  l1: number;
  /** mean KL(f(x) ‖ f̂(x)) in nats, the surrogate's probabilities floored at 1e-12 */
  kl: number;
}

/** Below this a surrogate's probability counts as this: a zero where the victim is sure would be an infinite KL. */
const KL_FLOOR = 1e-12;

export function fidelityOf(pv: Float32Array, ps: Float32Array, k: number): Fidelity {
  const n = pv.length / k;
  const av = argmaxRows(pv, k);
  const as = argmaxRows(ps, k);
  let same = 0;
  let l1 = 0;
  let kl = 0;
  for (let i = 0; i < n; i++) {
    if (av[i] === as[i]) same++;
    for (let j = 0; j < k; j++) {
      const p = pv[i * k + j];
      const q = ps[i * k + j];
      l1 += Math.abs(p - q);
      if (p > 0) kl += p * Math.log(p / Math.max(q, KL_FLOOR));
    }
  }
  return n
    ? // float32 rows sum to 1 only within rounding: an identical copy's KL may come out −1e-8, which is 0
      { agreement: same / n, tv: l1 / 2 / n, l1: l1 / n, kl: Math.max(0, kl / n) }
    : { agreement: NaN, tv: NaN, l1: NaN, kl: NaN };
}

export async function fidelity(victim: Model, surrogate: Model, x: Float32Array, n: number): Promise<Fidelity> {
  return fidelityOf(await probsOf(victim, x, n), await probsOf(surrogate, x, n), victim.numClasses);
}

/** n points uniform in the feature box (R_unif's set; Tramèr uses 10,000). */
export function uniformInputs(rng: Rng, n: number, d: number, domain: { min: number; max: number }): Float32Array {
  return rng.fillUniform(new Float32Array(n * d), domain.min, domain.max);
}

export async function testAccuracy(model: Model, x: Float32Array, y: Int32Array): Promise<number> {
  return accuracyOf(argmaxRows(await probsOf(model, x, y.length), model.numClasses), y);
}
