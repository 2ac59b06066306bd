/**
 * The data-free attacker's generator G(z): an MLP from a latent z ~ N(0, I) to one input of the
 * victim's shape, each hidden layer dense → batch-norm (batch statistics, as G is only ever run on a
 * batch) → LeakyReLU(0.2), and a linear output `a` (the pre-activation) squashed into the victim's
 * domain box by x = min + (max − min)·σ(a).
 *
 * DFME's generator (Truong et al. 2021, their `GeneratorA`) is a DCGAN-style up-sampling CNN ending in
 * tanh and a batch-norm; an MLP is used here because it runs on every backend (tfjs-wasm lacks the
 * up-sampling gradient) and serves tabular victims too. Perturbing and differentiating the
 * pre-activation `a` rather than the image keeps every query inside the domain box without clipping
 * (a clipped perturbation would bias the zeroth-order estimate).
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';

const SLOPE = 0.2;
const BN_EPS = 1e-5;

interface Layer {
  w: tf.Variable;
  b: tf.Variable;
  /** batch-norm scale and shift (hidden layers only) */
  gamma?: tf.Variable;
  beta?: tf.Variable;
}

export class Generator {
  private readonly layers: Layer[];

  constructor(
    readonly latent: number,
    hidden: readonly number[],
    readonly outputs: number,
    rng: Rng,
  ) {
    const sizes = [latent, ...hidden, outputs];
    this.layers = sizes.slice(1).map((out, i) => {
      const inp = sizes[i];
      const lim = Math.sqrt(6 / (inp + out));
      const w = variable(tf.tensor2d(rng.fillUniform(new Float32Array(inp * out), -lim, lim), [inp, out]));
      const b = variable(tf.zeros([out]));
      const last = i === sizes.length - 2;
      return last ? { w, b } : { w, b, gamma: variable(tf.ones([out])), beta: variable(tf.zeros([out])) };
    });
  }

  get variables(): tf.Variable[] {
    return this.layers.flatMap((l) => (l.gamma && l.beta ? [l.w, l.b, l.gamma, l.beta] : [l.w, l.b]));
  }

  /** n latent vectors drawn from N(0, I) by `rng`, as a [n, latent] tensor */
  sampleLatent(n: number, rng: Rng): tf.Tensor2D {
    const z = new Float32Array(n * this.latent);
    for (let i = 0; i < z.length; i++) z[i] = rng.normal();
    return tf.tensor2d(z, [n, this.latent]);
  }

  /** z [n, latent] → the pre-activation a [n, outputs] (differentiable in the variables) */
  preactivation(z: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      let h: tf.Tensor2D = z;
      for (const l of this.layers) {
        h = tf.add(tf.matMul(h, l.w as tf.Tensor2D), l.b) as tf.Tensor2D;
        if (l.gamma && l.beta) {
          const { mean, variance } = tf.moments(h, 0);
          h = tf.add(
            tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, BN_EPS))), l.gamma),
            l.beta,
          ) as tf.Tensor2D;
          h = tf.leakyRelu(h, SLOPE);
        }
      }
      return h;
    });
  }

  /** a → x = min + (max − min)·σ(a), inside the domain box */
  static squash(a: tf.Tensor, domain: { min: number; max: number }): tf.Tensor {
    return tf.tidy(() => tf.add(tf.mul(tf.sigmoid(a), domain.max - domain.min), domain.min));
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

/** a variable holding `t`'s values (tf.variable keeps its initial tensor alive apart: freed here) */
function variable(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t);
  t.dispose();
  return v;
}
