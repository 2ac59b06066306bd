/**
 * `round:decimals=r`: return the probabilities rounded to r decimals and renormalised to sum to 1,
 * the countermeasure Tramèr et al. 2016 §7 evaluate (r = 2…5; `regression.py --rounding`). A row
 * whose every entry rounds to 0 (many classes, small r) is answered with its one-hot top-1.
 */
import { tf } from '../compute/backend.js';
import type { Defense } from '../api/types.js';
import type { ParamValues } from '../params.js';
import { renormalise } from './simplex.js';

export function round(params: ParamValues): Defense {
  const scale = 10 ** (params.decimals as number);
  return {
    name: 'round',
    params,
    output: (p) =>
      tf.tidy(() => {
        const r = tf.div(tf.round(tf.mul(p, scale)), scale) as tf.Tensor2D;
        return { probs: renormalise(r, tf.oneHot(tf.argMax(p, 1), p.shape[1]).toFloat() as tf.Tensor2D) };
      }),
  };
}
