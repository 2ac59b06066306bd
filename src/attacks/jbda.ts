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
import type { Params, Schema } from '../params.js';
import { defineAttack, type AttackUnit } from './define.js';
import { newSurrogate, QueryLog, SURROGATE_PARAMS, trainCurve, checkSurrogateParams } from './surrogate.js';
import { AttackNotApplicable, remaining, type AttackResult, type AttackerKnowledge, type RunOptions } from './types.js';

export type JbdaVariant = 'jbda' | 'jbself' | 'jbtop';

/** What every JBDA variant takes: the surrogate's training, the seed set, and the augmentation schedule. */
const JBDA = {
  ...SURROGATE_PARAMS,
  seedsize: {
    type: 'int',
    min: 1,
    default: 100,
    help: 'in-distribution seed examples (drawn from the victim dataset’s training split)',
  },
  lambda: { type: 'number', min: 0, default: 0.1, help: 'augmentation step λ (L∞)' },
  tau: { type: 'int', min: 1, default: 5, help: 'flip the step’s sign every τ rounds' },
  roundepochs: { type: 'int', min: 1, default: 5, help: 'surrogate epochs in each augmentation round' },
} as const satisfies Schema;

/** jbtop's targeted PGD. */
const JBTOP = {
  ...JBDA,
  topk: { type: 'int', min: 1, default: 3, help: 'target a random class among the top-k other than the prediction' },
  steps: { type: 'int', min: 1, default: 8, help: 'PGD steps' },
  alpha: { type: 'number', min: 0, default: 0.01, help: 'PGD step size' },
} as const satisfies Schema;

type JbdaParams = Params<typeof JBDA>;
type JbtopParams = Params<typeof JBTOP>;

export const jbda = jbdaUnit(
  'jbda',
  'Jacobian-based dataset augmentation from a small seed set (Papernot 2017; Orekondy 2020’s JBDA)',
  JBDA,
  (net, x, y, m, know, step) => jacobianStep(net, x, y, m, know, step),
);
export const jbself = jbdaUnit(
  'jbself',
  'JBDA stepping against the gradient, x − λ·sign(∇) (Orekondy 2020’s JB-self)',
  JBDA,
  (net, x, y, m, know, step) => jacobianStep(net, x, y, m, know, -step),
);
export const jbtop = jbdaUnit(
  'jbtop',
  'JBDA with targeted PGD toward one of the surrogate’s top-k classes (Orekondy 2020’s JB-top-k)',
  JBTOP,
  (net, x, _y, m, know, _step, p, rng) => targetedStep(net, x, m, know, p, rng),
);

/** One augmentation step of a batch (the surrogate, the points, their labels, the round's signed λ): the points to query next. */
type Augment<P> = (
  net: Net,
  x: Float32Array,
  y: Int32Array,
  m: number,
  know: AttackerKnowledge,
  step: number,
  p: P,
  rng: Rng,
) => Promise<Float32Array>;

/** A JBDA variant: the shared rounds of `runJbda`, with the variant's augmentation step. */
function jbdaUnit<const S extends typeof JBDA>(
  variant: JbdaVariant,
  describe: string,
  schema: S,
  augment: Augment<Params<S>>,
): AttackUnit {
  return defineAttack({
    name: variant,
    describe,
    params: schema,
    learningCurve: true,
    requires: (p) => ({ seedSize: p.seedsize }),
    check: checkSurrogateParams,
    run: (p, api, know, rng, opts) =>
      runJbda(variant, p, api, know, rng, opts, (net, x, y, m, step) => augment(net, x, y, m, know, step, p, rng)),
  });
}

async function runJbda(
  variant: JbdaVariant,
  params: JbdaParams,
  api: PredictionApi,
  know: AttackerKnowledge,
  rng: Rng,
  opts: RunOptions,
  augment: (net: Net, x: Float32Array, y: Int32Array, m: number, step: number) => Promise<Float32Array>,
): Promise<AttackResult> {
  const seed = know.seed;
  if (!seed || seed.n === 0) throw new AttackNotApplicable(variant, 'it needs a seed set of in-distribution examples');
  const budget = remaining(api);
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  const k = know.numClasses;
  const lambda = params.lambda;
  const tau = params.tau;
  const notes: string[] = [];
  const trainSeed = rng.nextUint32();
  const log = new QueryLog(budget, d, k, api, know.inputShape, params);
  await log.ask(seed.x, Math.min(seed.n, budget));
  let round = 0;
  while (log.remaining > 0) {
    const net = newSurrogate(know, params, rng.fork());
    try {
      const st = await fit(
        net,
        { x: log.x.subarray(0, log.n * d), targets: log.targets.subarray(0, log.n * k), n: log.n },
        { epochs: params.roundepochs, batchSize: params.batch, optimizer: 'adam', lr: params.lr, rng: rng.fork() },
      );
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
        const out = await augment(net, x, y, m, step);
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
  return log.result(curve, notes);
}

/** x + step·sign(∇_x CE(f̂(x), y)), clipped to the feature box. */
async function jacobianStep(
  net: Net,
  x: Float32Array,
  y: Int32Array,
  m: number,
  know: AttackerKnowledge,
  step: number,
): Promise<Float32Array> {
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
async function targetedStep(
  net: Net,
  x: Float32Array,
  m: number,
  know: AttackerKnowledge,
  params: JbtopParams,
  rng: Rng,
): Promise<Float32Array> {
  const k = know.numClasses;
  const topk = Math.min(params.topk, k - 1);
  const p = await predictAll(net, x, m);
  const target = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => p[i * k + b] - p[i * k + a] || a - b);
    target[i] = order[1 + rng.int(topk)];
  }
  const lambda = params.lambda;
  const alpha = params.alpha;
  const out = tf.tidy(() => {
    const x0 = tf.tensor(x, [m, ...know.inputShape]);
    const yt = tf.oneHot(tf.tensor1d(target, 'int32'), k).toFloat() as tf.Tensor2D;
    const lo = tf.maximum(tf.sub(x0, lambda), know.domain.min);
    const hi = tf.minimum(tf.add(x0, lambda), know.domain.max);
    let xa: tf.Tensor = x0;
    for (let s = 0; s < params.steps; s++) {
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
