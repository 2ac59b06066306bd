/**
 * Jacobian-based dataset augmentation (Papernot et al. 2017, as used against prediction poisoning by
 * Orekondy et al. ICLR 2020, `adversary/jacobian.py`), with that paper's variants:
 *   jbda   — each round, train the surrogate from scratch on everything asked so far, then query
 *            x + λ·sign(∇_x CE(f̂(x), argmax y)) for every x asked so far (the set doubles per round);
 *   jbself — the same step in the other direction, x − λ·sign(…) (the reference code stores x + δ
 *            while querying x − δ; we store what was queried);
 *   jbtop  — a targeted 8-step PGD (step α, within the λ box) toward a random class among the
 *            surrogate's top-k other than its prediction.
 * The step's sign flips every τ rounds (λ·(−1)^⌊ρ/τ⌋). Rounds stop when the budget is spent; if the
 * next round does not fit, a seeded random subset of the points is augmented. The seed set is a few
 * in-distribution examples (default 100), labelled by the API (its queries count).
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import type { PredictionApi } from '../api/types.js';
import { softmaxCrossEntropy } from '../models/ops.js';
import type { Net } from '../models/net.js';
import { fit, predictAll } from '../models/train.js';
import type { ParamValues } from '../params.js';
import { newSurrogate, QueryLog, trainCurve } from './surrogate.js';
import { AttackNotApplicable, remaining, type Attack, type AttackResult, type AttackerKnowledge, type RunOptions } from './types.js';

export type JbdaVariant = 'jbda' | 'jbself' | 'jbtop';

export function jbda(variant: JbdaVariant): (params: ParamValues) => Attack {
  return (params) => ({
    name: variant,
    learningCurve: true,
    params,
    needs: () => ({ seedSize: params.seedsize as number }),
    async run(api: PredictionApi, know: AttackerKnowledge, rng: Rng, opts: RunOptions = {}): Promise<AttackResult> {
      if (api.info.reveals === 'leaf') throw new AttackNotApplicable(variant, 'tree victims are extracted by path-finding (tree-path)');
      const seed = know.seed;
      if (!seed || seed.n === 0) throw new AttackNotApplicable(variant, 'it needs a seed set of in-distribution examples');
      const budget = remaining(api);
      if (!Number.isFinite(budget) || budget < 1) throw new AttackNotApplicable(variant, 'it needs a finite, positive query budget');
      const d = know.inputShape.reduce((a, b) => a * b, 1);
      const k = know.numClasses;
      const lambda = params.lambda as number;
      const tau = params.tau as number;
      const notes: string[] = [];
      const trainSeed = rng.nextUint32();
      const log = new QueryLog(budget, d, k, api, know.inputShape, params.labels as string);
      await log.ask(seed.x, Math.min(seed.n, budget));
      let round = 0;
      while (log.remaining > 0) {
        const net = newSurrogate(know, params, rng.fork());
        try {
          const st = await fit(net, { x: log.x.subarray(0, log.n * d), targets: log.targets.subarray(0, log.n * k), n: log.n }, { epochs: params.roundepochs as number, batchSize: params.batch as number, optimizer: 'adam', lr: params.lr as number, rng: rng.fork() });
          log.trainSeconds += st.seconds;
          log.trainExamples += st.examples;
          // augment every point so far, or a random subset when the budget cannot take them all
          const n = Math.min(log.n, log.remaining);
          const idx = n === log.n ? Int32Array.from({ length: n }, (_, i) => i) : rng.permutation(log.n).slice(0, n).sort();
          const step = lambda * (Math.floor(round / tau) % 2 === 0 ? 1 : -1);
          const batch = 256;
          for (let s = 0; s < n; s += batch) {
            const m = Math.min(batch, n - s);
            const x = new Float32Array(m * d);
            const y = new Int32Array(m);
            for (let i = 0; i < m; i++) {
              const r = idx[s + i];
              x.set(log.x.subarray(r * d, (r + 1) * d), i * d);
              let best = 0;
              for (let j = 1; j < k; j++) if (log.targets[r * k + j] > log.targets[r * k + best]) best = j;
              y[i] = best;
            }
            const out = variant === 'jbtop' ? await targetedStep(net, x, m, know, params, rng) : await jacobianStep(net, x, y, m, know, variant === 'jbda' ? step : -step);
            await log.ask(out, m);
          }
        } finally {
          net.dispose();
        }
        round++;
        opts.onProgress?.({ phase: 'query', done: log.n, total: budget, label: `round ${round}` });
      }
      notes.push(`${round} augmentation rounds from ${Math.min(seed.n, budget)} seed examples`);
      const curve = await trainCurve(log, know, params, trainSeed, opts);
      notes.push(log.throughput());
      return { surrogate: curve[curve.length - 1].surrogate, queries: log.n, budgetExhausted: false, notes, curve };
    },
  });
}

/** x + step·sign(∇_x CE(f̂(x), y)), clipped to the feature box. */
async function jacobianStep(net: Net, x: Float32Array, y: Int32Array, m: number, know: AttackerKnowledge, step: number): Promise<Float32Array> {
  const out = tf.tidy(() => {
    const xt = tf.tensor(x, [m, ...know.inputShape]);
    const yt = tf.oneHot(tf.tensor1d(y, 'int32'), know.numClasses).toFloat() as tf.Tensor2D;
    const g = tf.grad((xx: tf.Tensor) => softmaxCrossEntropy(net.logits(xx), yt))(xt);
    return tf.clipByValue(tf.add(xt, tf.mul(tf.sign(g), step)), know.domain.min, know.domain.max);
  });
  try {
    return (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
}

/** jbtop: PGD toward a random class among the surrogate's top-k (other than its top-1), within the λ box. */
async function targetedStep(net: Net, x: Float32Array, m: number, know: AttackerKnowledge, params: ParamValues, rng: Rng): Promise<Float32Array> {
  const k = know.numClasses;
  const topk = Math.min(params.topk as number, k - 1);
  const p = await predictAll(net, x, m);
  const target = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => p[i * k + b] - p[i * k + a] || a - b);
    target[i] = order[1 + rng.int(topk)];
  }
  const lambda = params.lambda as number;
  const alpha = params.alpha as number;
  const out = tf.tidy(() => {
    const x0 = tf.tensor(x, [m, ...know.inputShape]);
    const yt = tf.oneHot(tf.tensor1d(target, 'int32'), k).toFloat() as tf.Tensor2D;
    const lo = tf.maximum(tf.sub(x0, lambda), know.domain.min);
    const hi = tf.minimum(tf.add(x0, lambda), know.domain.max);
    let xa: tf.Tensor = x0;
    for (let s = 0; s < (params.steps as number); s++) {
      const g = tf.grad((xx: tf.Tensor) => softmaxCrossEntropy(net.logits(xx), yt))(xa);
      xa = tf.minimum(tf.maximum(tf.sub(xa, tf.mul(tf.sign(g), alpha)), lo), hi);
    }
    return xa;
  });
  try {
    return (await out.data()) as Float32Array;
  } finally {
    out.dispose();
  }
}
