/**
 * ActiveThief (Pal, Gupta, Shukla, Kanade, Shevade, Ganapathy, AAAI 2020; reference code
 * github.com/shukla-aditya-csa/activethief): pool-based active learning for model extraction. The
 * attacker labels a random seed S₀ of its unannotated public pool through the API and trains a
 * substitute; then, for each of R rounds, it picks the next k pool examples with a subset-selection
 * strategy run on the substitute, queries them, and retrains the substitute from scratch on
 * everything labelled so far (§3, Algorithm 1; the reference re-initialises every iteration).
 * Strategies (§3.2):
 *   random        — uniform without replacement (the queries, and the final surrogate, are then
 *                   Knockoff's for the same seed: no per-round surrogate is needed);
 *   uncertainty   — the k candidates of highest entropy H(ỹ) = −Σ_j ỹ_j log ỹ_j of the substitute's ỹ;
 *   k-center      — greedy core-set (Sener & Savarese 2018): take the candidate farthest from its nearest
 *                   centre, k times, the centres being the labelled set and the picks so far; distances
 *                   ‖ỹ(x) − ỹ(x_m)‖₂ between the substitute's probability vectors, as in the paper and its
 *                   code (space=penultimate: its penultimate-layer activations, Sener & Savarese's space);
 *   dfal          — DeepFool Active Learning (Ducoffe & Precioso 2018): the k candidates with the
 *                   smallest DeepFool perturbation ‖r‖₂ that changes the substitute's label;
 *   dfal-k-center — DFAL shortlists as many candidates as the whole budget (here at most half the round's
 *                   candidates); k-center picks from the shortlist.
 * Deviations, for a CPU: no validation split or early stopping (the paper holds a labelled validation
 * set out of the budget to pick each round's best epoch; here rounds train `roundepochs` epochs and the
 * final surrogate `epochs`, from the same seed for every strategy); each round scores a seeded random
 * subset of `candidates` unlabelled examples, not the whole pool; DeepFool (Moosavi-Dezfooli 2016,
 * Alg. 2) runs on logits toward the substitute's `dfal-classes` most likely other classes (default 2:
 * each class costs a backward pass), overshoot 0.02, stopping per example at the first label flip (the
 * reference tries every class for a fixed number of batch iterations, on probabilities).
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import { QueryRefusedError } from '../errors.js';
import { Net } from '../models/net.js';
import { argmaxRows, fit, predictAll } from '../models/train.js';
import type { Params } from '../params.js';
import { defineAttack } from './define.js';
import { knockoffPlan, POOL } from './knockoff.js';
import { newSurrogate, QueryLog, SURROGATE_PARAMS, trainCurve, checkSurrogateParams } from './surrogate.js';
import { AttackNotApplicable, type AttackerKnowledge, type Pool } from './types.js';

export const STRATEGIES = ['random', 'uncertainty', 'k-center', 'dfal', 'dfal-k-center'] as const;
export type Strategy = (typeof STRATEGIES)[number];

const PARAMS = {
  ...POOL,
  ...SURROGATE_PARAMS,
  strategy: { type: 'string', choices: STRATEGIES, default: 'k-center', help: 'subset selection each round (§3.2)' },
  initial: { type: 'int', min: 0, default: 0, help: 'random seed queries S₀ (0: 10% of the budget)' },
  rounds: { type: 'int', min: 1, default: 10, help: 'selection rounds after the seed (the reference’s example: 10)' },
  'per-round': { type: 'int', min: 0, default: 0, help: 'queries per round (0: the rest of the budget split evenly)' },
  candidates: {
    type: 'int',
    min: 0,
    default: 2000,
    help: 'unlabelled pool examples each round scores, a seeded random subset (0: the whole pool, as the paper); DFAL costs ~8 ms each on the MNIST CNN',
  },
  space: {
    type: 'string',
    choices: ['probs', 'penultimate'],
    default: 'probs',
    help: "k-center's space: the substitute's probabilities (the paper) or its penultimate-layer activations",
  },
  'dfal-steps': { type: 'int', min: 1, default: 5, help: 'DeepFool iterations at most per candidate' },
  'dfal-classes': {
    type: 'int',
    min: 1,
    default: 2,
    help: 'DeepFool: the most likely other classes whose boundaries it tries (each costs a backward pass)',
  },
  roundepochs: { type: 'int', min: 0, default: 0, help: 'substitute epochs each round (0: epochs)' },
} as const;
type ActiveThiefParams = Params<typeof PARAMS>;

/** DeepFool's overshoot η (Moosavi-Dezfooli 2016 §3). */
const OVERSHOOT = 0.02;

/** What a selection reads rows of: the substitute's probabilities, or its penultimate activations. */
type FeatureModel = { predict(x: tf.Tensor): tf.Tensor2D; inputShape: number[]; numClasses: number };

export const activethief = defineAttack({
  name: 'activethief',
  describe:
    'ActiveThief: rounds of pool selection (random, uncertainty, k-center, DFAL) with the substitute retrained each round (Pal 2020)',
  params: PARAMS,
  requires: (p) => ({ pool: p.pool }),
  check: checkSurrogateParams,
  async run(params, api, know, rng, opts) {
    const { pool, d, k, m, notes } = knockoffPlan('activethief', api, know);
    // Knockoff's draws first, in its order: random selection is then Knockoff, seed for seed
    const order = rng.permutation(pool.n);
    const trainSeed = rng.nextUint32();
    const roundRng = rng.fork();
    const selectRng = rng.fork();
    const initial = Math.min(m, params.initial || Math.max(1, Math.round(0.1 * m)));
    const sizes = schedule(m - initial, params.rounds, params['per-round']);
    const planned = initial + sizes.reduce((a, b) => a + b, 0);
    const log = new QueryLog(m, d, k, api, know.inputShape, params);
    const taken = new Uint8Array(pool.n);
    let next = 0; // the random strategy's place in `order`
    const ask = async (idx: ArrayLike<number>) => {
      const chunk = 1024;
      const xb = new Float32Array(Math.min(chunk, idx.length) * d);
      for (let s = 0; s < idx.length; s += chunk) {
        const n = Math.min(chunk, idx.length - s);
        for (let i = 0; i < n; i++) {
          taken[idx[s + i]] = 1;
          xb.set(pool.x.subarray(idx[s + i] * d, (idx[s + i] + 1) * d), i * d);
        }
        await log.ask(xb, n);
      }
    };
    let stoppedIn: string | undefined; // where the budget ran out, if it did
    let phase = 'the seed queries';
    const t0 = performance.now();
    try {
      if (initial > log.remaining) stoppedIn = phase;
      await ask(order.subarray(0, initial));
      next = initial;
      for (let round = 0; round < sizes.length; round++) {
        phase = `round ${round + 1} of ${sizes.length}`;
        const b = Math.min(sizes[round], log.remaining);
        if (b < sizes[round]) stoppedIn ??= phase;
        if (b === 0) break;
        let picks: number[];
        if (params.strategy === 'random') {
          picks = [];
          for (; picks.length < b && next < pool.n; next++) if (!taken[order[next]]) picks.push(order[next]);
        } else {
          const net = await trainRound(log, know, params, roundRng);
          try {
            picks = await select(params, net, pool, taken, b, log, know, m, selectRng);
          } finally {
            net.dispose();
          }
        }
        await ask(picks);
        opts.onProgress?.({ phase: 'query', done: log.n, total: m, label: `round ${round + 1}/${sizes.length}` });
      }
    } catch (err) {
      // a server that refuses before our ledger says so: keep what was answered
      if (!(err instanceof QueryRefusedError)) throw err;
      stoppedIn ??= phase;
    }
    const selectSeconds = (performance.now() - t0) / 1000;
    notes.push(
      `${params.strategy}: ${initial} random seed queries, then ${sizes.length} rounds of ${[...new Set(sizes)].join('/')}` +
        (params.strategy === 'random' ? '' : ` (rounds and selection ${selectSeconds.toFixed(1)} s)`),
    );
    const refused = log.refusedNote();
    if (refused) notes.push(refused);
    if (stoppedIn)
      notes.push(
        `budget exhausted in ${stoppedIn}: ${log.n} of the ${planned} planned queries asked; the surrogate is trained on them`,
      );
    else if (planned < m) notes.push(`the plan asks ${planned} queries: ${m - planned} of the budget left unused`);
    if (params.labels === 'soft' && !log.sawProbs)
      notes.push('the API revealed labels only: trained on one-hot targets');
    // the final surrogate: trained like Knockoff's on every answer, the same seed for every strategy
    const curve = await trainCurve(log, know, params, trainSeed, { onProgress: opts.onProgress });
    notes.push(log.throughput());
    return {
      surrogate: curve[curve.length - 1].surrogate,
      queries: log.n,
      budgetExhausted: stoppedIn !== undefined,
      notes,
    };
  },
});

/** Round sizes: `perRound` each (0: `rest` split evenly, the remainder to the first rounds). */
function schedule(rest: number, rounds: number, perRound: number): number[] {
  if (perRound > 0) return new Array<number>(rounds).fill(perRound);
  return Array.from({ length: rounds }, (_, r) => Math.floor(rest / rounds) + (r < rest % rounds ? 1 : 0));
}

/** A fresh substitute trained on everything labelled so far (§3: re-initialised every round). */
async function trainRound(log: QueryLog, know: AttackerKnowledge, params: ActiveThiefParams, rng: Rng): Promise<Net> {
  const net = newSurrogate(know, params, rng.fork());
  const stats = await fit(
    net,
    { x: log.x.subarray(0, log.n * log.d), targets: log.targets.subarray(0, log.n * log.k), n: log.n },
    { epochs: params.roundepochs || params.epochs, batchSize: params.batch, optimizer: 'adam', lr: params.lr, rng },
  );
  log.trainSeconds += stats.seconds;
  log.trainExamples += stats.examples;
  return net;
}

/** The round's `b` picks (pool indices) by the strategy, from a seeded random subset of the untaken pool. */
async function select(
  params: ActiveThiefParams,
  net: Net,
  pool: Pool,
  taken: Uint8Array,
  b: number,
  log: QueryLog,
  know: AttackerKnowledge,
  budget: number,
  rng: Rng,
): Promise<number[]> {
  const d = log.d;
  const free: number[] = [];
  for (let i = 0; i < pool.n; i++) if (!taken[i]) free.push(i);
  const c = params.candidates > 0 ? Math.min(Math.max(b, params.candidates), free.length) : free.length;
  for (let i = 0; i < c; i++) {
    // partial Fisher–Yates: the first c entries are a uniform sample
    const j = i + rng.int(free.length - i);
    [free[i], free[j]] = [free[j], free[i]];
  }
  const cand = free.slice(0, c);
  const x = new Float32Array(c * d);
  cand.forEach((p, i) => x.set(pool.x.subarray(p * d, (p + 1) * d), i * d));
  if (params.strategy === 'uncertainty')
    return highestEntropy(await predictAll(net, x, c), log.k, b).map((i) => cand[i]);
  const kCenter = async (rows: number[]) => {
    const space = params.space === 'penultimate' ? await penultimate(net) : undefined;
    try {
      const model: FeatureModel = space?.model ?? net;
      let sub = x;
      if (rows.length < c) {
        sub = new Float32Array(rows.length * d);
        rows.forEach((r, i) => sub.set(x.subarray(r * d, (r + 1) * d), i * d));
      }
      const f = await predictAll(model, sub, rows.length); // [rows, dim]
      const centers = await predictAll(model, log.x, log.n); // [labelled, dim]
      const dim = model.numClasses;
      return kCenterGreedy(f, dim, await minSqDistances(f, centers, dim), b).map((i) => rows[i]);
    } finally {
      space?.dispose();
    }
  };
  const all = Array.from({ length: c }, (_, i) => i);
  if (params.strategy === 'k-center') return (await kCenter(all)).map((i) => cand[i]);
  const dist = await deepfoolDistances(net, x, c, know, params['dfal-steps'], params['dfal-classes']);
  const closest = all.sort((u, v) => dist[u] - dist[v] || u - v);
  if (params.strategy === 'dfal') return closest.slice(0, b).map((i) => cand[i]);
  // dfal-k-center: the reference shortlists as many as the whole budget from the whole pool, then k-center
  // picks; from a subset, at most half of it, so that DFAL still narrows the choice
  return (await kCenter(closest.slice(0, Math.max(b, Math.min(budget, Math.ceil(c / 2)))))).map((i) => cand[i]);
}

/** Rows [n·k] of probabilities → the `b` rows of highest entropy, highest first (ties: lower row). */
export function highestEntropy(probs: Float32Array, k: number, b: number): number[] {
  const n = probs.length / k;
  const h = new Float64Array(n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < k; j++) {
      const p = probs[i * k + j];
      if (p > 0) h[i] -= p * Math.log(p);
    }
  return Array.from({ length: n }, (_, i) => i)
    .sort((u, v) => h[v] - h[u] || u - v)
    .slice(0, b);
}

/** Squared distance from each point [n·dim] to its nearest centre [m·dim] (Infinity when there are none). */
export async function minSqDistances(points: Float32Array, centers: Float32Array, dim: number): Promise<Float64Array> {
  const n = points.length / dim;
  const m = centers.length / dim;
  const out = new Float64Array(n).fill(Infinity);
  if (m === 0) return out;
  const c = tf.tensor2d(centers, [m, dim]);
  try {
    const cc = tf.tidy(() => tf.sum(tf.square(c), 1)); // [m]
    try {
      // ‖a − c‖² = ‖a‖² − 2a·c + ‖c‖², in row chunks so [chunk, m] stays small
      const chunk = Math.max(1, Math.floor(4_000_000 / m));
      for (let s = 0; s < n; s += chunk) {
        const r = Math.min(chunk, n - s);
        const t = tf.tidy(() => {
          const a = tf.tensor2d(points.subarray(s * dim, (s + r) * dim), [r, dim]);
          const d2 = tf.add(tf.sub(tf.sum(tf.square(a), 1, true), tf.mul(2, tf.matMul(a, c, false, true))), cc);
          return tf.relu(tf.min(d2, 1)); // [r]
        });
        try {
          out.set(await t.data(), s);
        } finally {
          t.dispose();
        }
      }
    } finally {
      cc.dispose();
    }
  } finally {
    c.dispose();
  }
  return out;
}

/**
 * Greedy k-center (Sener & Savarese 2018, Alg. 1): `b` times, take the point farthest from its
 * nearest centre (`minSq`, squared; updated in place) and make it a centre. Ties go to the lower row.
 */
export function kCenterGreedy(points: Float32Array, dim: number, minSq: Float64Array, b: number): number[] {
  const n = minSq.length;
  const picks: number[] = [];
  for (let t = 0; t < Math.min(b, n); t++) {
    let best = -1;
    for (let i = 0; i < n; i++) if (minSq[i] >= 0 && (best < 0 || minSq[i] > minSq[best])) best = i;
    picks.push(best);
    minSq[best] = -1; // a centre now: never picked again
    const o = best * dim;
    for (let i = 0; i < n; i++) {
      if (minSq[i] < 0) continue;
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const v = points[i * dim + j] - points[o + j];
        s += v * v;
      }
      if (s < minSq[i]) minSq[i] = s;
    }
  }
  return picks;
}

/** The network without its output layer, as a model whose `predict` gives the penultimate activations [n, dim]. */
async function penultimate(net: Net): Promise<{ model: FeatureModel; dispose(): void }> {
  if (net.layers[net.layers.length - 1]?.type !== 'dense')
    throw new AttackNotApplicable('activethief', 'space=penultimate needs a surrogate whose last layer is dense');
  const vars = net.variables;
  const weights = await Promise.all(vars.slice(0, -2).map(async (v) => (await v.data()) as Float32Array));
  const body = new Net({ ...net.config, layers: net.layers.slice(0, -1) }, weights);
  const model: FeatureModel = {
    inputShape: net.inputShape,
    numClasses: vars[vars.length - 2].shape[0], // the output layer's fan-in
    predict: (x) => tf.tidy(() => body.logits(x).reshape([x.shape[0], -1]) as tf.Tensor2D),
  };
  return { model, dispose: () => body.dispose() };
}

/**
 * DeepFool's ‖r‖₂ (Moosavi-Dezfooli 2016, Alg. 2) per row of x [n·d]: step toward the nearest linearised
 * boundary r = (|f_j| + 10⁻⁴)/‖w_j‖² · w_j, f_j = z_j − z_ŷ, w_j = ∇_x f_j, over the top classes, until the
 * label flips (x clipped to the feature box, overshoot η). A row that has not flipped after `steps`
 * scores its distance so far plus the remaining linearised distance |f_j|/‖w_j‖.
 */
export async function deepfoolDistances(
  net: Net,
  x: Float32Array,
  n: number,
  know: AttackerKnowledge,
  steps: number,
  classes: number,
  batch = 128,
): Promise<Float64Array> {
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  const k = know.numClasses;
  const q = Math.min(classes, k - 1);
  const out = new Float64Array(n);
  const { min, max } = know.domain;
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const x0 = x.subarray(s * d, (s + m) * d);
    const p0 = await predictAll(net, x0, m);
    const label = argmaxRows(p0, k);
    // the q most likely other classes per row
    const others = Array.from({ length: m }, (_, i) =>
      Array.from({ length: k }, (_, j) => j)
        .filter((j) => j !== label[i])
        .sort((u, v) => p0[i * k + v] - p0[i * k + u] || u - v)
        .slice(0, q),
    );
    const r = new Float32Array(m * d); // accumulated perturbation
    let active = Array.from({ length: m }, (_, i) => i);
    for (let it = 0; it <= steps && active.length; it++) {
      const a = active.length;
      const xa = new Float32Array(a * d);
      active.forEach((row, i) => {
        for (let t = 0; t < d; t++)
          xa[i * d + t] = Math.min(max, Math.max(min, x0[row * d + t] + (1 + OVERSHOOT) * r[row * d + t]));
      });
      const masks = Array.from({ length: q }, (_, c) => {
        const mk = new Float32Array(a * k);
        active.forEach((row, i) => {
          mk[i * k + others[row][c]] = 1;
          mk[i * k + label[row]] = -1;
        });
        return mk;
      });
      const [predT, fT, wT] = tf.tidy(() => {
        const xt = tf.tensor(xa, [a, ...know.inputShape]);
        const z = net.logits(xt); // [a, k]
        const ms = masks.map((mk) => tf.tensor2d(mk, [a, k]));
        const f = tf.stack(ms.map((mk) => tf.sum(tf.mul(z, mk), 1))); // [q, a]
        const w = tf.stack(ms.map((mk) => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(net.logits(xx), mk)))(xt))); // [q, a, …]
        return [tf.argMax(z, 1), f, w.reshape([q, a, d])];
      });
      let pred: Int32Array, f: Float32Array, w: Float32Array;
      try {
        [pred, f, w] = [
          (await predT.data()) as Int32Array,
          (await fT.data()) as Float32Array,
          (await wT.data()) as Float32Array,
        ];
      } finally {
        tf.dispose([predT, fT, wT]);
      }
      const still: number[] = [];
      active.forEach((row, i) => {
        let moved = 0;
        for (let t = 0; t < d; t++) moved += (xa[i * d + t] - x0[row * d + t]) ** 2;
        moved = Math.sqrt(moved);
        if (pred[i] !== label[row]) {
          out[s + row] = moved;
          return;
        }
        // the nearest linearised boundary among the top classes
        let best = -1;
        let bestDist = Infinity;
        const norms = new Float64Array(q);
        for (let c = 0; c < q; c++) {
          let nn = 0;
          for (let t = 0; t < d; t++) nn += w[(c * a + i) * d + t] ** 2;
          norms[c] = nn;
          const dist = nn > 0 ? Math.abs(f[c * a + i]) / Math.sqrt(nn) : Infinity;
          if (dist < bestDist) [best, bestDist] = [c, dist];
        }
        if (it === steps || best < 0) {
          out[s + row] = moved + bestDist;
          return;
        }
        const coef = (Math.abs(f[best * a + i]) + 1e-4) / norms[best];
        for (let t = 0; t < d; t++) r[row * d + t] += coef * w[(best * a + i) * d + t];
        still.push(row);
      });
      active = still;
    }
  }
  return out;
}
