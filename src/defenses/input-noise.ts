/**
 * `input-noise:sigma=,corr=` (Grana 2020, "Perturbing Inputs to Prevent Model Stealing"): the service
 * evaluates its model on a garbled input x̃ = x + e instead of x. With e independent of x (corr = 0)
 * least-squares extraction stays consistent, so the noise only costs utility (papers.md §6.2); a part
 * correlated with the input, e = c·(x − μ) + u (μ: the centre of the feature box, u ~ N(0, σ²)),
 * "artificially creates endogeneity": the attacker's estimate converges to b·(1 + c), not b, however
 * many queries it makes (plim b̂ = b·(1 + Cov(x, e)/Var(x))). The noise comes from the defense's
 * seeded stream.
 */
import { tf } from '../compute/backend.js';
import { defineDefense } from './define.js';

export const inputNoise = defineDefense({
  name: 'input-noise',
  describe: 'garble each input before the victim sees it: x + c·(x − μ) + N(0, σ²) (Grana 2020)',
  params: {
    sigma: { type: 'number', min: 0, default: 0.1, help: 'σ of the independent part' },
    corr: { type: 'number', default: 0, help: 'c: the part correlated with the input, which biases the attacker' },
  },
  create: ({ sigma, corr: c }) => ({
    input: (x, ctx) => {
      const u = new Float32Array(x.size);
      if (sigma > 0) for (let i = 0; i < u.length; i++) u[i] = ctx.rng.normal(0, sigma);
      return tf.tidy(() => {
        const centre = ctx.domain ? (ctx.domain.min + ctx.domain.max) / 2 : 0;
        return tf.add(tf.add(x, tf.mul(c, tf.sub(x, centre))), tf.tensor(u, x.shape));
      });
    },
  }),
});
