/**
 * `noise:sigma=`: add Gaussian noise N(0, σ²) to each probability, clip at 0 and renormalise (the
 * random-noise baseline of Orekondy et al. 2020 and Lee et al. 2018). The noise comes from the
 * defense's own seeded stream, so the same seed gives the same answers.
 */
import { tf } from '../compute/backend.js';
import { defineDefense } from './define.js';
import { renormalise } from './simplex.js';

export const noise = defineDefense({
  name: 'noise',
  describe: 'Gaussian noise on the probabilities, clipped and renormalised',
  params: { sigma: { type: 'number', min: 0, default: 0.1, help: 'noise standard deviation' } },
  create: ({ sigma }) => ({
    output: (p, ctx) => {
      const e = new Float32Array(p.size);
      for (let i = 0; i < e.length; i++) e[i] = ctx.rng.normal(0, sigma);
      return tf.tidy(() => {
        const noisy = tf.relu(tf.add(p, tf.tensor(e, p.shape))) as tf.Tensor2D;
        // a row pushed entirely to 0 keeps its true posterior rather than becoming NaN
        return { probs: renormalise(noisy, p) };
      });
    },
  }),
});
