/**
 * `topk:k=`: reveal only the k largest probabilities (the others set to 0), renormalised. k = 1 is
 * a one-hot answer in probability form; `top1` reveals the bare label instead.
 */
import { tf } from '../compute/backend.js';
import type { Defense } from '../api/types.js';
import type { ParamValues } from '../params.js';

export function topk(params: ParamValues): Defense {
  const k = params.k as number;
  return {
    name: 'topk',
    params,
    output: (p) =>
      tf.tidy(() => {
        const kk = Math.min(k, p.shape[1]);
        // the k-th largest value per row; ties at the threshold are all kept
        const kth = tf.topk(p, kk).values.slice([0, kk - 1], [-1, 1]);
        const kept = tf.where(tf.greaterEqual(p, kth), p, tf.zerosLike(p));
        return { probs: tf.div(kept, tf.sum(kept, 1, true)) as tf.Tensor2D };
      }),
  };
}
