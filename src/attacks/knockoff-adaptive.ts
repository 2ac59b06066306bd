/**
 * Knockoff Nets, adaptive strategy (Orekondy et al. CVPR 2019 §4.1.2; ART's `knockoff_nets.py` is the
 * reference implementation, the authors' `adaptive.py` is a stub): a gradient bandit over the pool's
 * own classes (actions z). Each step samples z ~ π = softmax(H), draws `step` unseen images of class
 * z, queries them, scores them with the paper's rewards against the online surrogate, updates H
 * (Sutton & Barto §2.8)
 *     H(z_t) += α (r_t − r̄_t)(1 − π(z_t)),   H(z') −= α (r_t − r̄_t) π(z')  for z' ≠ z_t,
 * and takes one training step of the online surrogate on the new answers. Rewards (paper's definitions):
 *     certainty  R_cert = y_(1) − y_(2)
 *     diversity  R_div  = Σ_k max(0, y_k − ȳ_k)     (ȳ: mean victim output over the last Δ steps)
 *     loss       R_L    = CE(y, ŷ)                  (ŷ: the online surrogate's output, before its update)
 * Each is standardised by its own running mean and variance (Welford) and clipped to ±3 before they
 * are averaged: the raw scales differ by orders of magnitude and the loss reward drifts as the
 * surrogate learns, which is what makes unnormalised bandits collapse onto one arm or oscillate.
 * An exhausted action is masked out of π. After the budget is spent, a fresh surrogate is trained on
 * every answer (per checkpoint prefix), as for the random strategy.
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import { makeOptimizer } from '../models/optimizer.js';
import { predictAll } from '../models/train.js';
import { defineAttack } from './define.js';
import { knockoffPlan, POOL } from './knockoff.js';
import { newSurrogate, QueryLog, SURROGATE_PARAMS, trainCurve, checkSurrogateParams } from './surrogate.js';

/** Running mean and variance (Welford). */
class RunningStat {
  n = 0;
  mean = 0;
  private m2 = 0;
  push(v: number): void {
    this.n++;
    const d = v - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (v - this.mean);
  }
  get std(): number {
    return this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
  }
  standardise(v: number): number {
    const s = this.std;
    return s > 1e-12 ? Math.max(-3, Math.min(3, (v - this.mean) / s)) : 0;
  }
}

export const knockoffAdaptive = defineAttack({
  name: 'knockoff-adaptive',
  describe:
    'Knockoff Nets, adaptive: a gradient bandit over the pool’s classes with certainty/diversity/loss rewards (Orekondy 2019)',
  params: {
    ...POOL,
    ...SURROGATE_PARAMS,
    step: { type: 'int', min: 1, default: 16, help: 'queries per bandit step (one action, one online update)' },
    alpha: { type: 'number', min: 0, default: 0.1, help: 'bandit step size' },
    window: { type: 'int', min: 1, default: 10, help: 'Δ: steps in the diversity reward’s running mean' },
  },
  learningCurve: true,
  requires: (p) => ({ pool: p.pool }),
  check: checkSurrogateParams,
  async run(params, api, know, rng, opts) {
    const { pool, d, k, m, notes } = knockoffPlan('knockoff-adaptive', api, know);
    const A = pool.numClasses;
    // each action's images, in a seeded order, consumed without replacement
    const groups: number[][] = Array.from({ length: A }, () => []);
    for (const i of rng.permutation(pool.n)) groups[pool.y[i]].push(i);
    const next = new Array<number>(A).fill(0);
    const trainSeed = rng.nextUint32();
    const log = new QueryLog(m, d, k, api, know.inputShape, params);
    const step = params.step;
    const alpha = params.alpha;
    const delta = params.window;
    const H = new Float64Array(A);
    const stats = [new RunningStat(), new RunningStat(), new RunningStat()];
    const baseline = new RunningStat();
    const recent: Float64Array[] = []; // mean victim output of the last Δ steps
    const actions: number[] = [];
    const online = newSurrogate(know, params, rng.fork());
    const optimizer = makeOptimizer({ optimizer: 'adam', lr: params.lr });
    const xb = new Float32Array(step * d);
    try {
      while (log.remaining > 0) {
        const pi = policy(
          H,
          groups.map((g, a) => next[a] < g.length),
        );
        if (pi.every((p) => p === 0)) break;
        const z = sample(pi, rng);
        const n = Math.min(step, groups[z].length - next[z], log.remaining);
        for (let i = 0; i < n; i++) {
          const src = groups[z][next[z]++];
          xb.set(pool.x.subarray(src * d, (src + 1) * d), i * d);
        }
        const y = await log.ask(xb, n);
        if (y.length < n * k) break; // the server refused (log.refused): train on what there is
        const yhat = await predictAll(online, xb, n);
        // rewards, averaged over the step's images
        const ybar = new Float64Array(k);
        for (const r of recent) for (let j = 0; j < k; j++) ybar[j] += r[j] / recent.length;
        let cert = 0;
        let div = 0;
        let loss = 0;
        const meanY = new Float64Array(k);
        for (let i = 0; i < n; i++) {
          let a = 0;
          let b = 0;
          for (let j = 0; j < k; j++) {
            const v = y[i * k + j];
            if (v > a) [a, b] = [v, a];
            else if (v > b) b = v;
            if (recent.length) div += Math.max(0, v - ybar[j]);
            if (v > 0) loss -= v * Math.log(Math.max(yhat[i * k + j], 1e-12));
            meanY[j] += v / n;
          }
          cert += a - b;
        }
        const raw = [cert / n, div / n, loss / n];
        raw.forEach((v, i) => stats[i].push(v));
        const r = raw.reduce((s, v, i) => s + stats[i].standardise(v), 0) / 3;
        recent.push(meanY);
        if (recent.length > delta) recent.shift();
        // gradient-bandit update against the running-mean baseline
        baseline.push(r);
        const adv = r - baseline.mean;
        for (let a = 0; a < A; a++) H[a] += a === z ? alpha * adv * (1 - pi[a]) : -alpha * adv * pi[a];
        actions.push(z);
        // one online step of the surrogate on the new answers
        tf.tidy(() => {
          const xt = tf.tensor(xb.subarray(0, n * d), [n, ...know.inputShape]);
          const yt = tf.tensor2d(y, [n, k]);
          optimizer.minimize(() => online.loss(xt, yt), false, online.variables);
        });
        opts.onProgress?.({ phase: 'query', done: log.n, total: m, label: `step ${actions.length}` });
      }
    } finally {
      optimizer.dispose();
      online.dispose();
    }
    const pi = policy(
      H,
      groups.map(() => true),
    );
    const top = pi
      .map((p, a) => [p, a] as const)
      .sort((u, v) => v[0] - u[0])
      .slice(0, 3);
    notes.push(
      `bandit after ${actions.length} steps favours ${top.map(([p, a]) => `${pool.classNames[a] ?? a} (${(100 * p).toFixed(0)}%)`).join(', ')}`,
    );
    const curve = await trainCurve(log, know, params, trainSeed, opts);
    return log.result(curve, notes);
  },
});

/** softmax(H) over the available actions (0 for exhausted ones). */
function policy(H: Float64Array, available: boolean[]): number[] {
  let mx = -Infinity;
  H.forEach((h, a) => {
    if (available[a]) mx = Math.max(mx, h);
  });
  const e = Array.from(H, (h, a) => (available[a] ? Math.exp(h - mx) : 0));
  const s = e.reduce((a, b) => a + b, 0);
  return s > 0 ? e.map((v) => v / s) : e;
}

function sample(p: number[], rng: Rng): number {
  let u = rng.next();
  for (let a = 0; a < p.length; a++) {
    u -= p[a];
    if (u < 0 && p[a] > 0) return a;
  }
  for (let a = p.length - 1; a >= 0; a--) if (p[a] > 0) return a;
  return 0;
}
