/**
 * Ownership verification for watermarking defenses (DAWN, Szyller et al. 2021, §4.2): how often a
 * suspect model gives the recorded wrong labels, and whether that is more than chance can explain.
 * A model not derived from the API agrees with a wrong label at most about as often as with any
 * class at random, 1/k (a good classifier far less), so the claim is verified when
 * P(Binomial(n, 1/k) ≥ hits) < `alpha` — a false claim against an independent model then succeeds
 * with probability below alpha.
 */
import type { Model } from '../models/model.js';
import { argmaxRows, predictAll } from '../models/train.js';

/** the false-claim probability a verified claim must stay under */
export const OWNERSHIP_ALPHA = 1e-3;

/** P(X ≥ h) for X ~ Binomial(n, p), summed in log space (exact for the sizes watermarks have). */
export function binomialTail(n: number, p: number, h: number): number {
  if (h <= 0) return 1;
  if (h > n) return 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  // log C(n, i) by the running product, from i = 0
  let logC = 0;
  let total = 0;
  for (let i = 0; i <= n; i++) {
    if (i > 0) logC += Math.log((n - i + 1) / i);
    if (i >= h) total += Math.exp(logC + i * lp + (n - i) * lq);
  }
  return Math.min(1, total);
}

export interface WatermarkVerdict {
  /** the suspect's agreement with the recorded wrong labels */
  acc: number;
  n: number;
  /** P(an independent model matches this many by chance) */
  pValue: number;
  verified: boolean;
}

export async function verifyWatermarks(
  suspect: Model,
  marks: { x: Float32Array; labels: Int32Array; n: number },
  k: number,
): Promise<WatermarkVerdict> {
  const pred = argmaxRows(await predictAll(suspect, marks.x, marks.n), k);
  let hits = 0;
  for (let i = 0; i < marks.n; i++) if (pred[i] === marks.labels[i]) hits++;
  const pValue = binomialTail(marks.n, 1 / k, hits);
  return { acc: hits / marks.n, n: marks.n, pValue, verified: pValue < OWNERSHIP_ALPHA };
}
