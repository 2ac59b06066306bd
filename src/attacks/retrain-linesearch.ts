/**
 * Line-search retraining from labels (Tramèr et al. 2016 §6, "adapt-oracle", `line_search_oracle`):
 * uniform points are added in chunks of ⌈(m−1)/4⌉ while the estimated cost of bisecting every
 * cross-label pair, Σ ⌈log₂(dist/ε)⌉, still fits in the remaining budget; then the segment between
 * each point and the first point of every other class (in query order) is bisected on the oracle
 * until its ends are within ε, keeping every midpoint with its label. The midpoints crowd the
 * victim's decision boundary; the assumed family is then fitted to all answers.
 */
import { defineAttack } from './define.js';
import { uniformQueries } from './query.js';
import { queryLabels, RETRAIN_REQUIRES, trainOnLabels } from './retrain-uniform.js';
import { remaining } from './types.js';

export const retrainLinesearch = defineAttack({
  name: 'retrain-linesearch',
  describe: 'line-search retraining: bisect between differently labelled queries on the oracle (Tramèr 2016 §6)',
  params: {
    epsilon: {
      type: 'number',
      min: 1e-9,
      default: 0.1,
      help: 'stop bisecting a segment shorter than this (Euclidean)',
    },
    epochs: { type: 'int', min: 1, default: 200, help: 'training epochs' },
    lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
  },
  requires: { ...RETRAIN_REQUIRES, minBudget: 2 },
  async run(params, api, know, rng) {
    const m = remaining(api);
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const eps = params.epsilon;
    const x = new Float32Array(m * d);
    const y = new Int32Array(m);
    const chunk = Math.max(1, Math.ceil((m - 1) / 4));
    let n0 = 0;
    for (;;) {
      const k = Math.min(chunk, m - n0);
      x.set(uniformQueries(rng, k, know), n0 * d);
      y.set(await queryLabels(api, x.subarray(n0 * d, (n0 + k) * d), k, know.inputShape), n0);
      n0 += k;
      if (n0 >= m || bisectionCost(x, y, n0, d, eps) >= m - n0) break;
    }
    let n = n0;
    const label = async (p: Float32Array): Promise<number> => {
      x.set(p, n * d);
      const l = (await queryLabels(api, p, 1, know.inputShape))[0];
      y[n++] = l;
      return l;
    };
    // pairs (i, first earlier point of each other class), bisected until within ε
    outer: for (let i = 1; i < n0; i++) {
      const seen = new Set<number>([y[i]]);
      for (let j = 0; j < i; j++) {
        if (seen.has(y[j])) continue;
        seen.add(y[j]);
        let a = x.slice(i * d, (i + 1) * d);
        let b = x.slice(j * d, (j + 1) * d);
        const la = y[i];
        for (;;) {
          let dist = 0;
          for (let t = 0; t < d; t++) dist += (a[t] - b[t]) ** 2;
          if (Math.sqrt(dist) <= eps) break;
          if (n >= m) break outer;
          const mid = a.map((v, t) => (v + b[t]) / 2);
          if ((await label(mid)) === la) a = mid;
          else b = mid;
        }
      }
    }
    const surrogate = await trainOnLabels(know, x, y, n, params, rng);
    return {
      surrogate,
      queries: n,
      budgetExhausted: false,
      notes: n < m ? [`${m - n} queries left unused: every cross-class pair was bisected to ε`] : [],
    };
  },
});

/** Σ over (i, first earlier point of each other class) of the bisection steps ⌈log₂(dist/ε)⌉. */
function bisectionCost(x: Float32Array, y: Int32Array, n: number, d: number, eps: number): number {
  let cost = 0;
  for (let i = 1; i < n; i++) {
    const seen = new Set<number>([y[i]]);
    for (let j = 0; j < i; j++) {
      if (seen.has(y[j])) continue;
      seen.add(y[j]);
      let dist = 0;
      for (let t = 0; t < d; t++) dist += (x[i * d + t] - x[j * d + t]) ** 2;
      dist = Math.sqrt(dist);
      if (dist > eps) cost += Math.ceil(Math.log2(dist / eps));
    }
  }
  return cost;
}
