/**
 * The soft nearest neighbour loss (Frosst, Papernot, Hinton, ICML 2019, "Analyzing and Improving
 * Representations with the Soft Nearest Neighbor Loss", eq. 1): for a batch of b representations
 * x_i with labels y_i and a temperature T,
 *
 *     SNNL = −(1/b) Σ_i log( Σ_{j≠i, y_j = y_i} e^{−d(x_i, x_j)/T} / Σ_{k≠i} e^{−d(x_i, x_k)/T} )
 *
 * with d the squared Euclidean distance (the paper's) or the cosine distance 1 − cos(x_i, x_j) (what
 * the EWE reference code uses). It is near 0 when every point's neighbours share its label (classes
 * far apart) and largest when the classes are entangled: for identical points it is
 * −(1/b) Σ_i log((n_{y_i} − 1)/(b − 1)), n_c the points labelled c (log 2 for two large equal classes).
 * Numerics: each row's exponents are shifted by their largest off-diagonal value (the ratio is
 * unchanged, so well-separated points do not underflow to 0/0), and log(ε + ratio) with ε = 1e-5
 * (as the reference) keeps a point without any same-label neighbour finite. Differentiable in the
 * representations and in T (a number or a scalar tensor).
 */
import { tf } from '../compute/backend.js';

export type SnnlMetric = 'euclidean' | 'cosine';

const EPS = 1e-5;

/** pairwise distances [b, b] of the rows of x [b, m]: squared Euclidean or cosine */
export function pairwiseDistances(x: tf.Tensor2D, metric: SnnlMetric): tf.Tensor2D {
  return tf.tidy(() => {
    if (metric === 'cosine') {
      // x / max(‖x‖, 1e-6) as tf.nn.l2_normalize does: an all-zero row is at distance 1 from everything
      const norm = tf.sqrt(tf.maximum(tf.sum(tf.square(x), 1, true), 1e-12));
      const u = tf.div(x, norm);
      return tf.sub(1, tf.matMul(u, u, false, true)) as tf.Tensor2D;
    }
    const sq = tf.sum(tf.square(x), 1, true); // [b, 1]
    const d = tf.sub(tf.add(sq, tf.transpose(sq)), tf.mul(2, tf.matMul(x, x, false, true)));
    return tf.relu(d) as tf.Tensor2D; // rounding can make a zero distance slightly negative
  });
}

/**
 * The soft nearest neighbour loss of representations `x` ([b, m], b ≥ 2) labelled `labels`
 * (b integers) at temperature `t`, as a scalar tensor (the caller disposes it).
 */
export function snnl(
  x: tf.Tensor2D,
  labels: Int32Array | tf.Tensor1D,
  t: number | tf.Scalar,
  metric: SnnlMetric = 'euclidean',
): tf.Scalar {
  return tf.tidy(() => snnlOfDistances(pairwiseDistances(x, metric), labels, t));
}

/** The same from the pairwise distances [b, b] (a caller that needs them twice computes them once). */
export function snnlOfDistances(d: tf.Tensor2D, labels: Int32Array | tf.Tensor1D, t: number | tf.Scalar): tf.Scalar {
  return tf.tidy(() => {
    const b = d.shape[0];
    const y = labels instanceof Int32Array ? tf.tensor1d(labels, 'int32') : labels;
    const same = tf.cast(tf.equal(tf.expandDims(y, 1), tf.expandDims(y, 0)), 'float32');
    const self = tf.cast(tf.eye(b), 'bool');
    const z = tf.neg(tf.div(d, t)); // −d/T
    // the diagonal is never a neighbour: e^{−∞} = 0 (and no gradient flows through it)
    const masked = tf.where(self, tf.fill([b, b], -Infinity), z);
    const e = tf.exp(tf.sub(masked, tf.max(masked, 1, true)));
    const ratio = tf.div(tf.sum(tf.mul(e, same), 1), tf.sum(e, 1));
    return tf.neg(tf.mean(tf.log(tf.add(ratio, EPS)))) as tf.Scalar;
  });
}
