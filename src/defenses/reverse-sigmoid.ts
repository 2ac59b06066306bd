/**
 * `reverse-sigmoid:beta=,gamma=` (Lee, Edwards, Molloy, Su 2018, "Defending Against Machine Learning
 * Model Stealing Attacks Using Deceptive Perturbations"):
 *     r(y_k) = β·[ s(γ·s⁻¹(y_k)) − ½ ]                                   (Lee et al., eq. 3)
 *     ỹ_k    = α·(y_k − r(y_k)),   α = 1 / Σ_j (y_j − r(y_j))            (eq. 4)
 * with s the sigmoid and s⁻¹ the logit. The perturbation flattens the logit curve, so an attacker
 * who trains on ỹ with a cross-entropy loss gets misleading gradients. As in ART's implementation,
 * y is clipped to [1e-9, 1 − 1e-9] before the logit and y − r(y) is clipped to [0, 1] before
 * normalising (it only leaves that range for β > 2). Defaults β = 1, γ = 0.1 (ART's); note that
 * β = γ = 1 returns exactly the uniform distribution.
 */
import { tf } from '../compute/backend.js';
import { defineDefense } from './define.js';
import { renormalise } from './simplex.js';

export const reverseSigmoid = defineDefense({
  name: 'reverse-sigmoid',
  describe: 'reverse sigmoid deceptive perturbation (Lee et al. 2018, eqs. 3–4)',
  params: {
    beta: { type: 'number', min: 0, default: 1, help: 'β: perturbation magnitude' },
    gamma: {
      type: 'number',
      min: 1e-9,
      default: 0.1,
      help: 'γ: convergence parameter (γ = 1 makes it an affine mix toward uniform)',
    },
  },
  create: ({ beta, gamma }) => ({
    output: (p) =>
      tf.tidy(() => {
        const y = tf.clipByValue(p, 1e-9, 1 - 1e-9);
        const logit = tf.log(tf.div(y, tf.sub(1, y)));
        const r = tf.mul(beta, tf.sub(tf.sigmoid(tf.mul(gamma, logit)), 0.5));
        return { probs: renormalise(tf.clipByValue(tf.sub(p, r), 0, 1) as tf.Tensor2D, p) };
      }),
  }),
});
