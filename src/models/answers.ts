/**
 * Reading a model's raw answers as mse's probabilities, the same way for every model mse does not
 * build itself (TF.js and ONNX files, model servers): a row of k numbers is probabilities when it is a
 * distribution, else logits (softmax); a single column is a binary model's p(class 1), or its logit
 * (sigmoid), and becomes [1 − p, p].
 */
import { tf } from '../compute/backend.js';
import { UsageError } from '../errors.js';
import type { Probs } from './model.js';

export type OutputKind = 'probs' | 'logits';

/** Whether every row of `cols` values is a distribution (one column: a probability in [0, 1]). */
export function isDistribution(v: ArrayLike<number>, cols: number): boolean {
  if (cols === 1) return Array.from(v).every((x) => x >= 0 && x <= 1);
  for (let i = 0; i < v.length; i += cols) {
    let s = 0;
    for (let j = 0; j < cols; j++) {
      if (v[i + j] < 0) return false;
      s += v[i + j];
    }
    if (Math.abs(s - 1) > 1e-3) return false;
  }
  return true;
}

/**
 * What a loaded model outputs, from its answers to a few test examples: they must fit the data's
 * classes and be finite; a declared `probs` must be distributions; `auto` decides.
 */
export function settleOutput(
  file: string,
  values: ArrayLike<number>,
  cols: number,
  k: number,
  asked: 'auto' | OutputKind,
): OutputKind {
  if (!(cols === k || (k === 2 && cols === 1)))
    throw new UsageError(`model ${file} answers ${cols} values per input, the data has ${k} classes`);
  if (!Array.from(values).every(Number.isFinite))
    throw new UsageError(`model ${file} answered values that are not finite numbers`);
  const probs = isDistribution(values, cols);
  if (asked === 'probs' && !probs)
    throw new UsageError(
      `model ${file} was declared output=probs, but its answers are not probabilities (rows must be ≥ 0 and sum to 1)`,
      'give output=logits (or auto)',
    );
  return asked === 'auto' ? (probs ? 'probs' : 'logits') : asked;
}

/** Raw answers [n, k] or [n, 1] as probabilities [n, k]. */
export function toProbs(y: tf.Tensor2D, output: OutputKind): Probs {
  return tf.tidy(() => {
    if (y.shape[1] === 1) {
      const p = output === 'logits' ? tf.sigmoid(y) : y;
      return tf.concat([tf.sub(1, p), p], 1) as Probs;
    }
    return (output === 'logits' ? tf.softmax(y) : y) as Probs;
  });
}
