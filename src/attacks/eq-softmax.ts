/**
 * Equation-solving extraction of multiclass logistic regression, softmax or one-vs-rest
 * (Tramèr et al. 2016 §4.1.2). Each query gives c non-linear equations in the k = c(d+1)
 * unknowns; the attack minimises the cross-entropy between its model and the API's soft answers,
 *     L(W) = −Σ_i Σ_c Y_ic log P_W(c | x_i) + ½α‖W‖²        (α tiny: picks one of the equivalent solutions)
 * with the closed-form gradients of the paper:
 *     softmax: ∂L/∂z_ic = P_ic − Y_ic
 *     OvR:     P_ic = σ(z_ic) / Σ_j σ(z_ij),  ∂L/∂z_ic = σ(−z_ic)·(P_ic − Y_ic)   (rows of Y sum to 1)
 * and L-BFGS, from w₀ = 1e-8·N(0, 1) as in the paper's code.
 */
import type { PredictionApi } from '../api/types.js';
import type { Rng } from '../compute/rng.js';
import { lbfgs } from '../solvers/lbfgs.js';
import { Net } from '../models/net.js';
import type { Params, Schema } from '../params.js';
import { defineAttack } from './define.js';
import { queryProbs, uniformQueries } from './query.js';
import { remaining, type AttackResult, type AttackerKnowledge } from './types.js';

type Head = 'softmax' | 'ovr';

/** eq-softmax and eq-ovr share their solver's parameters. */
const EQ_MULTICLASS = {
  multiple: { type: 'int', min: 1, default: 100, help: 'use at most this many times c·(d+1) queries' },
  l2: { type: 'number', min: 0, default: 1e-9, help: 'tiny L2 that picks one of the equivalent solutions' },
  iterations: { type: 'int', min: 1, default: 1000, help: 'L-BFGS iteration cap' },
} as const satisfies Schema;

export const eqSoftmax = defineAttack({
  name: 'eq-softmax',
  describe:
    'equation solving for softmax regression: cross-entropy fit to the soft answers by L-BFGS (Tramèr 2016 §4.1.2)',
  params: EQ_MULTICLASS,
  requires: {
    victims: ['softmax'],
    victimsWhy: 'it solves for softmax regression',
    reveals: 'probs',
    finiteBudget: false,
  },
  run: (p, api, know, rng) => solveMulticlass('softmax', 'eq-softmax', p, api, know, rng),
});

export const eqOvr = defineAttack({
  name: 'eq-ovr',
  describe: 'equation solving for one-vs-rest logistic regression, by L-BFGS (Tramèr 2016 §4.1.2)',
  params: EQ_MULTICLASS,
  requires: { victims: ['ovr'], victimsWhy: 'it solves for ovr regression', reveals: 'probs', finiteBudget: false },
  run: (p, api, know, rng) => solveMulticlass('ovr', 'eq-ovr', p, api, know, rng),
});

async function solveMulticlass(
  head: Head,
  name: string,
  params: Params<typeof EQ_MULTICLASS>,
  api: PredictionApi,
  know: AttackerKnowledge,
  rng: Rng,
): Promise<AttackResult> {
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  const c = know.numClasses;
  const unknowns = c * (d + 1);
  const m = Math.min(remaining(api), params.multiple * unknowns);
  const x = uniformQueries(rng, m, know);
  const y = await queryProbs(name, api, x, m, know);
  const alpha = params.l2;
  const z = new Float64Array(m * c);
  const fg = (theta: Float64Array, grad: Float64Array): number => {
    // theta = [W (d×c) row-major, b (c)]
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < c; j++) {
        let s = theta[d * c + j];
        for (let t = 0; t < d; t++) s += x[i * d + t] * theta[t * c + j];
        z[i * c + j] = s;
      }
    }
    grad.fill(0);
    let loss = 0;
    const dz = new Float64Array(c);
    for (let i = 0; i < m; i++) {
      const zi = z.subarray(i * c, (i + 1) * c);
      if (head === 'softmax') {
        const mx = Math.max(...zi);
        let se = 0;
        for (let j = 0; j < c; j++) se += Math.exp(zi[j] - mx);
        const lse = mx + Math.log(se);
        for (let j = 0; j < c; j++) {
          const lp = zi[j] - lse;
          loss -= y[i * c + j] * lp;
          dz[j] = Math.exp(lp) - y[i * c + j];
        }
      } else {
        let ssum = 0;
        const sg = new Float64Array(c);
        for (let j = 0; j < c; j++) {
          sg[j] = 1 / (1 + Math.exp(-zi[j]));
          ssum += sg[j];
        }
        for (let j = 0; j < c; j++) {
          const p = sg[j] / ssum;
          loss -= y[i * c + j] * Math.log(Math.max(p, 1e-300));
          dz[j] = (1 - sg[j]) * (p - y[i * c + j]);
        }
      }
      for (let j = 0; j < c; j++) {
        grad[d * c + j] += dz[j];
        for (let t = 0; t < d; t++) grad[t * c + j] += x[i * d + t] * dz[j];
      }
    }
    for (let t = 0; t < d * c; t++) {
      loss += 0.5 * alpha * theta[t] * theta[t];
      grad[t] += alpha * theta[t];
    }
    return loss;
  };
  const theta0 = Float64Array.from({ length: unknowns }, () => 1e-8 * rng.normal());
  const sol = lbfgs(fg, theta0, { maxIter: params.iterations, gtol: 1e-6 });
  const notes = sol.converged ? [] : [`L-BFGS stopped after ${sol.iterations} iterations without reaching gtol`];
  const surrogate = new Net(
    {
      kind: head,
      inputShape: know.inputShape,
      numClasses: c,
      layers: [{ type: 'flatten' }, { type: 'dense', units: c }],
      head,
    },
    [Float32Array.from(sol.x.subarray(0, d * c)), Float32Array.from(sol.x.subarray(d * c))],
  );
  return { surrogate, queries: m, budgetExhausted: m < unknowns / c, notes };
}
