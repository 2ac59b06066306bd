/**
 * Adaptive Misinformation (Kariyappa & Qureshi, CVPR 2020, "Defending Against Model Stealing Attacks
 * with Adaptive Misinformation"; reference code github.com/sanjaykariyappa/adaptive-misinformation).
 * Extraction queries are mostly out of the victim's distribution; honest ones are not. So:
 *   - an out-of-distribution detector: a model trained with outlier exposure (Hendrycks et al. 2019)
 *     — cross-entropy on the defender's training data plus cross-entropy to the uniform distribution
 *     on an outlier set (`outliers`: KMNIST for an MNIST victim, as in the paper) — whose top
 *     probability S(x) is high in distribution and low outside it (§4.1);
 *   - a misinformation model f̂ trained to give the true class little probability (§4.2);
 *   - the answer y = (1 − α)·f(x) + α·f̂(x) with α = 1/(1 + e^{ν(S(x) − τ)}) (eq. 4): the victim's
 *     answer where the query looks in-distribution (S > τ), misinformation where it does not.
 * Deviations: the detector and f̂ are trained from scratch by mse (the victim's family, or the
 * image CNN / tabular MLP), `epochs` each; f̂ is trained toward the uniform distribution over the
 * wrong classes rather than by the paper's reverse cross-entropy −log(1 − f̂_y(x)) (both drive
 * f̂_y → 0); outliers=noise uses uniform noise in the input box where no outlier dataset fits.
 */
import { tf } from '../compute/backend.js';
import type { DefenderEnv, Probs, QueryCtx } from '../api/types.js';
import { assertDatasetName, loadDataset } from '../data/registry.js';
import { UsageError } from '../errors.js';
import type { Net } from '../models/net.js';
import { fit } from '../models/train.js';
import { defenderNet } from './defender-net.js';
import { defineDefense } from './define.js';

/** the outlier set an MNIST-like victim's detector is exposed to by default */
const DEFAULT_OUTLIERS: Record<string, string> = {
  mnist: 'kmnist',
  'fashion-mnist': 'kmnist',
  kmnist: 'mnist',
};

export interface AmPrepared {
  detector: Net;
  misinformation: Net;
  outliers: string;
  dispose(): void;
}

async function outlierInputs(
  name: string,
  env: DefenderEnv,
  n: number,
): Promise<{ x: Float32Array; n: number; name: string }> {
  const shape = env.victim.inputShape;
  const d = shape.reduce((a, b) => a * b, 1);
  const wanted = name === 'auto' ? (DEFAULT_OUTLIERS[env.datasetName ?? ''] ?? 'noise') : name;
  if (wanted === 'noise') {
    const lo = env.domain?.min ?? 0;
    const hi = env.domain?.max ?? 1;
    const r = env.rng.fork();
    return { x: r.fillUniform(new Float32Array(n * d), lo, hi), n, name: 'noise' };
  }
  const ds = await loadDataset(wanted, env.data ?? {});
  if (ds.inputShape.join() !== shape.join())
    throw new UsageError(
      `am: outliers=${wanted} has inputs of shape ${ds.inputShape.join('×')}, the victim takes ${shape.join('×')}`,
      'name an outlier dataset of the victim’s input shape, or outliers=noise',
    );
  const m = Math.min(n, ds.train.n);
  return { x: ds.train.x.subarray(0, m * d), n: m, name: wanted };
}

export const am = defineDefense({
  name: 'am',
  describe:
    'Adaptive Misinformation: answer out-of-distribution queries (an outlier-exposed detector below τ) from a misinformation model (Kariyappa 2020)',
  params: {
    tau: {
      type: 'number',
      min: 0,
      max: 1,
      default: 0.99,
      help: "the detector's top-probability threshold τ: below it a query is answered with misinformation (the reference README: 0.99)",
    },
    nu: { type: 'number', min: 0, default: 1000, help: 'steepness ν of the switch α = 1/(1 + e^{ν(S − τ)})' },
    outliers: {
      type: 'string',
      default: 'auto',
      help: "the detector's outlier set: a dataset of the victim's input shape (auto: kmnist for mnist and fashion-mnist, mnist for kmnist, else noise), or noise",
    },
    epochs: {
      type: 'int',
      min: 1,
      default: 5,
      help: 'training epochs of the detector and of the misinformation model',
    },
  },
  stages: ['output'],
  check(p) {
    // an unknown outlier set is a usage error when the plan is made, not when the cell prepares
    if (p.outliers === 'auto' || p.outliers === 'noise') return undefined;
    try {
      assertDatasetName(p.outliers);
    } catch (e) {
      return `outliers: ${e instanceof Error ? e.message : String(e)}`;
    }
    return undefined;
  },
  async prepare(p, env): Promise<AmPrepared> {
    const k = env.victim.numClasses;
    const d = env.victim.inputShape.reduce((a, b) => a * b, 1);
    const train = env.train;
    const out = await outlierInputs(p.outliers, env, train.n);
    // outlier exposure: in-distribution rows with one-hot targets, outliers with the uniform target
    const n = train.n + out.n;
    const x = new Float32Array(n * d);
    x.set(train.x.subarray(0, train.n * d));
    x.set(out.x.subarray(0, out.n * d), train.n * d);
    const oe = new Float32Array(n * k);
    const mis = new Float32Array(train.n * k);
    for (let i = 0; i < train.n; i++) {
      oe[i * k + train.y[i]] = 1;
      for (let j = 0; j < k; j++) mis[i * k + j] = j === train.y[i] ? 0 : 1 / (k - 1);
    }
    oe.fill(1 / k, train.n * k);
    const detector = defenderNet(env, 'am', k, env.rng.fork());
    const misinformation = defenderNet(env, 'am', k, env.rng.fork());
    try {
      const opts = { epochs: p.epochs, batchSize: 128, optimizer: 'adam' as const, lr: 1e-3 };
      await fit(detector, { x, targets: oe, n }, { ...opts, rng: env.rng.fork() });
      await fit(misinformation, { x: train.x, targets: mis, n: train.n }, { ...opts, rng: env.rng.fork() });
    } catch (e) {
      detector.dispose();
      misinformation.dispose();
      throw e;
    }
    return {
      detector,
      misinformation,
      outliers: out.name,
      dispose() {
        detector.dispose();
        misinformation.dispose();
      },
    };
  },
  create(p, prepared: AmPrepared) {
    return {
      output(probs: Probs, ctx: QueryCtx) {
        if (!ctx.input) throw new Error('am needs the query’s input (the API passes it to output stages)');
        const input = ctx.input;
        return {
          probs: tf.tidy(() => {
            const s = tf.max(prepared.detector.predict(input), 1, true); // S(x), [n, 1]
            const alpha = tf.sigmoid(tf.mul(tf.sub(p.tau, s), p.nu)); // 1/(1 + e^{ν(S − τ)})
            const mis = prepared.misinformation.predict(input);
            return tf.add(tf.mul(tf.sub(1, alpha), probs), tf.mul(alpha, mis)) as Probs;
          }),
        };
      },
    };
  },
});
