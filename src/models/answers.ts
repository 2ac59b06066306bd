/**
 * Reading a model's raw answers as mse's probabilities, the same way for every model mse does not
 * build itself (TF.js and ONNX files, model servers): a row of k numbers is probabilities when it is a
 * distribution, else logits (softmax); a single column is a binary model's p(class 1), or its logit
 * (sigmoid), and becomes [1 − p, p]; a single column of class indices 0…k−1 (an exported argmax) is
 * labels, as is any k-column answer declared labels-only (its argmax): one-hot rows, and an API
 * around such a model reveals labels only.
 */
import { tf } from '../compute/backend.js';
import { UsageError } from '../errors.js';
import type { Probs } from './model.js';

export type OutputKind = 'probs' | 'logits' | 'labels';

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

/** The first answer that is not a class index 0…k−1, or undefined when all are. */
function notALabel(values: ArrayLike<number>, k: number): number | undefined {
  return Array.from(values).find((c) => !(Number.isInteger(c) && c >= 0 && c < k));
}

/**
 * A labels model's single column of answers must be class indices 0…k−1 (checked on every batch:
 * an index out of range would otherwise become an all-zero row).
 */
export function checkLabels(file: string, values: ArrayLike<number>, k: number): void {
  const bad = notALabel(values, k);
  if (bad !== undefined)
    throw new UsageError(
      `model ${file} was read as output=labels, but it answered ${bad}, not a class index 0…${k - 1}`,
      'a labels model answers one column of class indices (an exported argmax); for scores give output=probs, logits or auto',
    );
}

/**
 * What a loaded model outputs, from its answers to a few test examples: they must fit the data's
 * classes and be finite; a declared `probs` must be distributions and a declared `labels` (one
 * column) class indices; `auto` decides — one column of integers for k > 2 classes, or of an
 * integer type (`integerType`: an ONNX int64 argmax), is labels, never probabilities.
 */
export function settleOutput(
  file: string,
  values: ArrayLike<number>,
  cols: number,
  k: number,
  asked: 'auto' | OutputKind,
  integerType = false,
): OutputKind {
  if (!Array.from(values).every(Number.isFinite))
    throw new UsageError(`model ${file} answered values that are not finite numbers`);
  const indices = cols === 1 && (integerType || (k > 2 && notALabel(values, Number.MAX_SAFE_INTEGER) === undefined));
  const kind = asked === 'auto' && indices ? 'labels' : asked;
  if (!(cols === k || (cols === 1 && (k === 2 || kind === 'labels'))))
    throw new UsageError(
      `model ${file} answers ${cols} values per input, the data has ${k} classes`,
      cols === 1 ? 'if it answers class indices (an argmax), give output=labels' : undefined,
    );
  if (kind === 'labels') {
    if (cols === 1) checkLabels(file, values, k);
    return 'labels';
  }
  const probs = isDistribution(values, cols);
  if (kind === 'probs' && !probs)
    throw new UsageError(
      `model ${file} was declared output=probs, but its answers are not probabilities (rows must be ≥ 0 and sum to 1)`,
      'give output=logits (or auto)',
    );
  return kind === 'auto' ? (probs ? 'probs' : 'logits') : kind;
}

/** Raw answers [n, k] or [n, 1] as probabilities [n, k]; labels (indices [n, 1], or the argmax of [n, k]) one-hot. */
export function toProbs(y: tf.Tensor2D, output: OutputKind, k: number): Probs {
  return tf.tidy(() => {
    if (output === 'labels') {
      const idx = y.shape[1] === 1 ? tf.cast(tf.reshape(y, [-1]), 'int32') : tf.argMax(y, 1); // [n]
      return tf.cast(tf.oneHot(idx as tf.Tensor1D, k), 'float32') as Probs;
    }
    if (y.shape[1] === 1) {
      const p = output === 'logits' ? tf.sigmoid(y) : y;
      return tf.concat([tf.sub(1, p), p], 1) as Probs;
    }
    return (output === 'logits' ? tf.softmax(y) : y) as Probs;
  });
}
