/**
 * `topk:k=`: reveal only the k largest probabilities (the others set to 0), renormalised. k = 1 is
 * a one-hot answer in probability form; `top1` reveals the bare label instead.
 */
import { tf } from '../compute/backend.js';
import { defineDefense } from './define.js';

export const topk = defineDefense({
  name: 'topk',
  describe: 'reveal the k largest probabilities, renormalised',
  params: { k: { type: 'int', min: 1, default: 1, help: 'probabilities kept' } },
  create: ({ k }) => ({
    output: (p) =>
      tf.tidy(() => {
        const kk = Math.min(k, p.shape[1]);
        // the k-th largest value per row; ties at the threshold are all kept
        const kth = tf.topk(p, kk).values.slice([0, kk - 1], [-1, 1]);
        const kept = tf.where(tf.greaterEqual(p, kth), p, tf.zerosLike(p));
        return { probs: tf.div(kept, tf.sum(kept, 1, true)) as tf.Tensor2D };
      }),
  }),
});
