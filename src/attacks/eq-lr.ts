/**
 * Equation-solving extraction of binary logistic regression (Tramèr et al. 2016, §4.1.1).
 * Each returned probability gives one linear equation in the d+1 unknowns:
 *     w·x + β = σ⁻¹(f₁(x)) = ln(p / (1 − p))
 * so d+1 random queries recover (w, β) exactly; with more queries (or noisy/rounded answers) we
 * solve the system by least squares (Householder QR, float64). Queries are x ~ U(domain)^d.
 */
import { tf } from '../compute/backend.js';
import { lstsq } from '../solvers/linalg.js';
import { Net } from '../models/net.js';
import { defineAttack } from './define.js';
import { remaining } from './types.js';

// float32 probabilities: p within 1e-7 of 0 or 1 carries no usable logit information
const P_CLAMP = 1e-7;

export const eqLr = defineAttack({
  name: 'eq-lr',
  describe: 'equation solving for binary logistic regression from probabilities (Tramèr 2016 §4.1.1)',
  params: {
    multiple: {
      type: 'int',
      min: 1,
      default: 100,
      help: 'use at most this many times d+1 queries (least squares beyond d+1)',
    },
  },
  requires: {
    victims: ['logistic'],
    victimsWhy: 'it solves for a binary logistic regression',
    classes: 2,
    reveals: 'probs',
    finiteBudget: false,
  },
  async run(p, api, know, rng) {
    const maxMultiple = p.multiple; // cap on queries, as a multiple of d+1
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const unknowns = d + 1;
    const m = Math.min(remaining(api), maxMultiple * unknowns);
    const x = rng.fillUniform(new Float32Array(m * d), know.domain.min, know.domain.max);
    const xt = tf.tensor(x, [m, ...know.inputShape]);
    let p1: Float32Array;
    try {
      const r = await api.query(xt);
      const probs = r.probs!;
      p1 = (await probs.data()) as Float32Array;
      tf.dispose([probs, r.labels ?? []]);
    } finally {
      xt.dispose();
    }
    // A = [X | 1] (m × (d+1)), y = logit(p₁)
    const A = new Float64Array(m * unknowns);
    const y = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < d; j++) A[i * unknowns + j] = x[i * d + j];
      A[i * unknowns + d] = 1;
      const q = Math.min(1 - P_CLAMP, Math.max(P_CLAMP, p1[i * 2 + 1]));
      y[i] = Math.log(q / (1 - q));
    }
    const notes: string[] = [];
    let theta: Float64Array;
    if (m >= unknowns) {
      const sol = lstsq(A, y, m, unknowns);
      theta = sol.x;
      if (sol.rank < unknowns) notes.push(`rank-deficient system (rank ${sol.rank} of ${unknowns})`);
    } else {
      // under-determined (budget < d+1): minimum-norm solution via the transposed system
      notes.push(`only ${m} of the ${unknowns} queries needed for an exact solve`);
      theta = minNorm(A, y, m, unknowns);
    }
    const w = Float32Array.from(theta.subarray(0, d));
    const b = Float32Array.of(theta[d]);
    const surrogate = new Net(
      {
        kind: 'logistic',
        inputShape: know.inputShape,
        numClasses: 2,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 1 }],
        head: 'sigmoid',
      },
      [w, b],
    );
    return { surrogate, queries: m, budgetExhausted: m < unknowns, notes };
  },
});

/** x = Aᵀ (A Aᵀ)⁻¹ y for m < n, by least squares on A Aᵀ z = y. */
function minNorm(A: Float64Array, y: Float64Array, m: number, n: number): Float64Array {
  const G = new Float64Array(m * m);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += A[i * n + t] * A[j * n + t];
      G[i * m + j] = s;
    }
  const z = lstsq(G, y, m, m).x;
  const x = new Float64Array(n);
  for (let t = 0; t < n; t++) for (let i = 0; i < m; i++) x[t] += A[i * n + t] * z[i];
  return x;
}
