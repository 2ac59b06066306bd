/**
 * Parameter error between victim and stolen model, after matching parameterisations (Tramèr et al.
 * 2016, `evaluate_model`): softmax is invariant to adding one vector to every class's weights, so
 * both weight sets are shifted to make class 0 the reference (w_k − w_0, b_k − b_0) before comparing.
 * Reported as relative L2, ‖θ̂ − θ‖₂ / ‖θ‖₂ (and the paper's absolute L1).
 */
import { Net } from '../models/net.js';
import type { Model } from '../models/model.js';
import { matchUnits } from './param-error-relu.js';

export interface ParamError {
  relL2: number;
  l1: number;
}

/** Flat, comparable parameters of a linear model: [W (d×k) row-major, b (k)], shifted for softmax. */
function canonical(m: Net): Float64Array | undefined {
  const ws = m.variables.map((v) => v.dataSync() as Float32Array);
  if (ws.length !== 2) return undefined; // only single-layer (linear) models have an identifiable parameterisation
  const [w, b] = ws;
  const k = b.length;
  const d = w.length / k;
  const out = new Float64Array(w.length + k);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < k; j++) out[i * k + j] = w[i * k + j] - (m.head === 'softmax' ? w[i * k] : 0);
  for (let j = 0; j < k; j++) out[d * k + j] = b[j] - (m.head === 'softmax' ? b[0] : 0);
  return out;
}

/**
 * undefined when the two models are not comparable: linear models of the same shape and head, or
 * one-hidden-layer ReLU networks (compared after matching their units: param-error-relu.ts).
 */
export function paramError(
  victim: Model,
  stolen: Model,
  domain?: { min: number; max: number },
): ParamError | undefined {
  if (!(victim instanceof Net) || !(stolen instanceof Net) || victim.head !== stolen.head) return undefined;
  const a = canonical(victim);
  const b = canonical(stolen);
  if (!a && !b) {
    const m = matchUnits(victim, stolen, domain);
    return m && Number.isFinite(m.relL2) ? { relL2: m.relL2, l1: NaN } : undefined;
  }
  if (!a || !b || a.length !== b.length) return undefined;
  let num = 0;
  let den = 0;
  let l1 = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
    l1 += Math.abs(a[i] - b[i]);
  }
  return { relL2: Math.sqrt(num / Math.max(den, 1e-300)), l1 };
}
