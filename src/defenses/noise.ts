/**
 * `noise:sigma=`: add Gaussian noise N(0, σ²) to each probability, clip at 0 and renormalise (the
 * random-noise baseline of Orekondy et al. 2020 and Lee et al. 2018). The noise comes from the
 * defense's own seeded stream, so the same seed gives the same answers.
 */
import { tf } from '../compute/backend.js';
import type { Defense } from '../api/types.js';
import type { ParamValues } from '../params.js';
import { renormalise } from './simplex.js';

export function noise(params: ParamValues): Defense {
  const sigma = params.sigma as number;
  return {
    name: 'noise',
    params,
    output: (p, ctx) => {
      const e = new Float32Array(p.size);
      for (let i = 0; i < e.length; i++) e[i] = ctx.rng.normal(0, sigma);
      return tf.tidy(() => {
        const noisy = tf.relu(tf.add(p, tf.tensor(e, p.shape))) as tf.Tensor2D;
        // a row pushed entirely to 0 keeps its true posterior rather than becoming NaN
        return { probs: renormalise(noisy, p) };
      });
    },
  };
}
