/**
 * Knockoff Nets, random strategy (Orekondy, Schiele, Fritz, CVPR 2019, §4.1 and the reference
 * `transfer.py`): sample the attacker's natural-image pool P_A uniformly without replacement, label
 * each image with the API's answer (posteriors when revealed, else one-hot top-1), and train a
 * surrogate by soft cross-entropy. The pool is a flag; by default a different dataset of the same
 * image shape as the victim's (MNIST ↔ Fashion-MNIST, KMNIST → MNIST).
 *
 * Training: Adam (lr 1e-3) for a few epochs rather than the paper's SGD for 100 epochs from
 * ImageNet-pretrained weights; on MNIST-class victims this converges in ~10 epochs on a CPU.
 */
import type { PredictionApi } from '../api/types.js';
import type { Schema } from '../params.js';
import { defineAttack } from './define.js';
import { QueryLog, SURROGATE_PARAMS, trainCurve, checkSurrogateParams } from './surrogate.js';
import { AttackNotApplicable, remaining, type AttackerKnowledge, type Pool } from './types.js';

/** Both Knockoff strategies take the pool as a parameter. */
export const POOL = {
  pool: {
    type: 'string',
    default: 'auto',
    help: "the attacker's natural-image pool, a dataset name (auto: the victim dataset's default pool — fashion-mnist for mnist, mnist for fashion-mnist and kmnist); fashion-mnist@test10k is the 10k test split shipped with mse, used when Fashion-MNIST is absent; or your own images, folder:path=DIR (resized to the victim's input), or a file, [csv:path=F,label=y] / npz:path=F",
  },
} as const satisfies Schema;

/** The pool, checked against the victim's input shape. */
export function requirePool(attack: string, know: AttackerKnowledge): Pool {
  const pool = know.pool;
  if (!pool) throw new AttackNotApplicable(attack, 'it needs a transfer pool of natural inputs (pool=<dataset>)');
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  if (pool.x.length !== pool.n * d)
    throw new AttackNotApplicable(
      attack,
      `the pool ${pool.name} has inputs of another shape than the victim's ${know.inputShape.join('×')}`,
    );
  return pool;
}

/** What both Knockoff strategies check and size before spending a query (the requirements are checked already): the pool, the sample size. */
export function knockoffPlan(
  attack: string,
  api: PredictionApi,
  know: AttackerKnowledge,
): { pool: Pool; d: number; k: number; m: number; notes: string[] } {
  const pool = requirePool(attack, know);
  const budget = remaining(api);
  const m = Math.min(budget, pool.n);
  const notes =
    m < budget
      ? [
          `the pool ${pool.name} has ${pool.n} images: ${budget - m} queries of the budget left unused (sampling is without replacement)`,
        ]
      : [];
  return { pool, d: know.inputShape.reduce((a, b) => a * b, 1), k: know.numClasses, m, notes };
}

export const knockoff = defineAttack({
  name: 'knockoff',
  describe:
    'Knockoff Nets, random: label a natural out-of-distribution pool through the API, train a surrogate (Orekondy 2019)',
  params: { ...POOL, ...SURROGATE_PARAMS },
  learningCurve: true,
  requires: (p) => ({ pool: p.pool }),
  check: checkSurrogateParams,
  async run(params, api, know, rng, opts) {
    const { pool, d, k, m, notes } = knockoffPlan('knockoff', api, know);
    // the order depends only on the seed, so a smaller budget's queries are a prefix of a larger one's
    const order = rng.permutation(pool.n);
    const trainSeed = rng.nextUint32();
    const log = new QueryLog(m, d, k, api, know.inputShape, params);
    const chunk = 1024;
    const xb = new Float32Array(chunk * d);
    for (let s = 0; s < m; s += chunk) {
      const n = Math.min(chunk, m - s);
      for (let i = 0; i < n; i++) xb.set(pool.x.subarray(order[s + i] * d, (order[s + i] + 1) * d), i * d);
      await log.ask(xb, n);
      opts.onProgress?.({ phase: 'query', done: log.n, total: m });
    }
    if (params.labels === 'soft' && !log.sawProbs)
      notes.push('the API revealed labels only: trained on one-hot targets');
    const curve = await trainCurve(log, know, params, trainSeed, opts);
    return log.result(curve, notes);
  },
});
