/**
 * `round:decimals=r`: return the probabilities rounded to r decimals and renormalised to sum to 1,
 * the countermeasure Tramèr et al. 2016 §7 evaluate (r = 2…5; `regression.py --rounding`). A row
 * whose every entry rounds to 0 (many classes, small r) is answered with its one-hot top-1.
 */
import { tf } from '../compute/backend.js';
import { defineDefense } from './define.js';
import { renormalise } from './simplex.js';

export const round = defineDefense({
  name: 'round',
  describe: 'round probabilities to r decimals and renormalise (Tramèr 2016 §7)',
  params: { decimals: { type: 'int', min: 0, max: 10, default: 2, help: 'decimals kept' } },
  create: ({ decimals }) => {
    const scale = 10 ** decimals;
    return {
      output: (p) =>
        tf.tidy(() => {
          const r = tf.div(tf.round(tf.mul(p, scale)), scale) as tf.Tensor2D;
          return { probs: renormalise(r, tf.oneHot(tf.argMax(p, 1), p.shape[1]).toFloat() as tf.Tensor2D) };
        }),
    };
  },
});
