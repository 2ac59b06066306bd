/**
 * Adaptive retraining from labels (Tramèr et al. 2016 §6, "adapt-local"): r rounds of
 * step = ⌈m / r⌉ queries. Round 0 queries uniform points; each later round trains the local
 * surrogate, scores a pool of uniform candidates with it (no oracle queries), and spends ¾ of the
 * round on the candidates the surrogate is least sure about (smallest top-1 − top-2 margin, i.e.
 * nearest its decision boundary) and ¼ on fresh uniform points. A final fit uses every answer.
 */
import { predictAll } from '../models/train.js';
import { defineAttack } from './define.js';
import { uniformQueries } from './query.js';
import { queryLabels, RETRAIN_REQUIRES, trainOnLabels } from './retrain-uniform.js';
import { remaining } from './types.js';

export const retrainAdaptive = defineAttack({
  name: 'retrain-adaptive',
  describe: 'adaptive retraining: rounds of queries near the local surrogate’s decision boundary (Tramèr 2016 §6)',
  params: {
    rounds: { type: 'int', min: 1, default: 5, help: 'query rounds (the paper: 5)' },
    epochs: { type: 'int', min: 1, default: 200, help: 'training epochs per fit' },
    lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
  },
  requires: { ...RETRAIN_REQUIRES, minBudget: 2 },
  async run(params, api, know, rng) {
    const m = remaining(api);
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const k = know.numClasses;
    const rounds = Math.min(params.rounds, m);
    const step = Math.ceil(m / rounds);
    const x = new Float32Array(m * d);
    const y = new Int32Array(m);
    let n = 0;
    const ask = async (pts: Float32Array, count: number) => {
      x.set(pts.subarray(0, count * d), n * d);
      y.set(await queryLabels(api, pts.subarray(0, count * d), count, know.inputShape), n);
      n += count;
    };
    await ask(uniformQueries(rng, Math.min(step, m), know), Math.min(step, m));
    for (let r = 1; r < rounds && n < m; r++) {
      const local = await trainOnLabels(know, x, y, n, params, rng);
      const want = Math.min(step, m - n);
      const nBoundary = Math.min(want, Math.ceil(0.75 * want));
      const poolSize = Math.max(nBoundary * 10, 100);
      const pool = uniformQueries(rng, poolSize, know);
      const p = await predictAll(local, pool, poolSize);
      local.dispose();
      // margin = top-1 − top-2 probability under the local surrogate
      const margin = new Float64Array(poolSize);
      for (let i = 0; i < poolSize; i++) {
        let a = -1;
        let b = -1;
        for (let j = 0; j < k; j++) {
          const v = p[i * k + j];
          if (v > a) [a, b] = [v, a];
          else if (v > b) b = v;
        }
        margin[i] = a - b;
      }
      const order = Array.from({ length: poolSize }, (_, i) => i).sort((i, j) => margin[i] - margin[j] || i - j);
      const pts = new Float32Array(want * d);
      order.slice(0, nBoundary).forEach((src, i) => pts.set(pool.subarray(src * d, (src + 1) * d), i * d));
      pts.set(uniformQueries(rng, want - nBoundary, know), nBoundary * d);
      await ask(pts, want);
    }
    const surrogate = await trainOnLabels(know, x, y, n, params, rng);
    return { surrogate, queries: n, budgetExhausted: false, notes: [] };
  },
});
