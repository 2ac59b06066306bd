/** Back onto the probability simplex: each row divided by its sum; a row that sums to 0 becomes `fallback`'s row. */
import { tf } from '../compute/backend.js';
import type { Probs } from '../api/types.js';

export function renormalise(x: tf.Tensor2D, fallback: tf.Tensor2D): Probs {
  return tf.tidy(() => {
    const s = tf.sum(x, 1, true);
    return tf.where(tf.greater(s, 0).tile([1, x.shape[1]]), tf.div(x, tf.maximum(s, 1e-12)), fallback) as Probs;
  });
}
