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
}

export function fidelityOf(pv: Float32Array, ps: Float32Array, k: number): Fidelity {
  const n = pv.length / k;
  const av = argmaxRows(pv, k);
  const as = argmaxRows(ps, k);
  let same = 0;
  let tv = 0;
  for (let i = 0; i < n; i++) {
    if (av[i] === as[i]) same++;
    let d = 0;
    for (let j = 0; j < k; j++) d += Math.abs(pv[i * k + j] - ps[i * k + j]);
    tv += d / 2;
  }
  return { agreement: n ? same / n : NaN, tv: n ? tv / n : NaN };
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
