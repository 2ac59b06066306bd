/**
 * `round:decimals=r`: return the probabilities rounded to r decimals and renormalised to sum to 1,
 * the countermeasure Tramèr et al. 2016 §7 evaluate (r = 2…5; `regression.py --rounding`). A row
 * whose every entry rounds to 0 (many classes, small r) is answered with its one-hot top-1.
 */
import { tf } from '../compute/backend.js';
import type { Defense } from '../api/types.js';
import type { ParamValues } from '../params.js';

export function round(params: ParamValues): Defense {
  const scale = 10 ** (params.decimals as number);
  return {
    name: 'round',
    params,
    output: (p) =>
      tf.tidy(() => {
        const r = tf.div(tf.round(tf.mul(p, scale)), scale);
        const s = tf.sum(r, 1, true);
        const onehot = tf.oneHot(tf.argMax(p, 1), p.shape[1]).toFloat();
        return { probs: tf.where(tf.greater(s, 0).tile([1, p.shape[1]]), tf.div(r, tf.maximum(s, 1e-12)), onehot) as tf.Tensor2D };
      }),
  };
}
