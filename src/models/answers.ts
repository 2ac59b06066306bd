/**
 * Reading a model's raw answers as mse's probabilities, the same way for every model mse does not
 * build itself (TF.js and ONNX files, model servers): a row of k numbers is probabilities when it is a
 * distribution, else logits (softmax); a single column is a binary model's p(class 1), or its logit
 * (sigmoid), and becomes [1 − p, p]; a single column of class indices 0…k−1 (an exported argmax) is
 * labels, as is any k-column answer declared labels-only (its argmax): one-hot rows, and an API
 * around such a model reveals labels only. The kind is settled once, from the first answers; every
 * later batch is checked against it (answersProblem): finite, and not contradicting the kind.
 */
import { tf } from '../compute/backend.js';
import { MseError, UsageError } from '../errors.js';
import type { Probs } from './model.js';

export type OutputKind = 'probs' | 'logits' | 'labels';

/** How a model's answers are read: the kind, and when output=auto decided it, from how many first answers. */
export interface Reading {
  kind: OutputKind;
  decidedFrom?: number;
}

/** How many rows of `cols` values are distributions (one column: a probability in [0, 1]). */
export function distributionRows(v: ArrayLike<number>, cols: number): number {
  let rows = 0;
  for (let i = 0; i < v.length; i += cols) {
    let s = 0;
    let ok = true;
    for (let j = 0; j < cols && ok; j++) {
      ok = v[i + j] >= 0; // false for NaN too
      s += v[i + j];
    }
    if (ok && (cols === 1 ? s <= 1 : Math.abs(s - 1) <= 1e-3)) rows++;
  }
  return rows;
}

/** Whether every row of `cols` values is a distribution (one column: a probability in [0, 1]). */
export function isDistribution(v: ArrayLike<number>, cols: number): boolean {
  return distributionRows(v, cols) === v.length / cols;
}

/**
 * Whether rows read as logits look like probabilities instead: at least two, and a quarter of the
 * batch, are distributions (a row of k logits that happens to be one is rare; two in a batch, rarer).
 */
const probsAmong = (dist: number, rows: number, cols: number) => cols > 1 && dist >= 2 && dist >= rows / 4;

/**
 * What is wrong with a batch of answers read as `r`: numbers that are not finite, or a kind they
 * contradict (rows that are not distributions for probs; mostly distributions for logits that auto
 * decided). A message to follow the model's name, a hint, and whether declaring the kind (`flag`:
 * 'output=' for a model file, '--target-output ' for a server) is the fix; undefined when they fit.
 */
export function answersProblem(
  values: ArrayLike<number>,
  cols: number,
  r: Reading,
  flag: string,
): { why: string; hint?: string; usage: boolean } | undefined {
  if (!Array.from(values).every(Number.isFinite))
    return {
      why: 'answered NaN/Infinity for some inputs',
      hint: "mse reads finite answers only: check the model on inputs in the data's domain",
      usage: false,
    };
  if (r.kind === 'labels') return undefined;
  const rows = values.length / cols;
  const dist = distributionRows(values, cols);
  const decided = `was read as ${flag}${r.kind} (auto: decided from its answers to the first ${r.decidedFrom} inputs)`;
  const declare = `declare what it answers: ${flag}logits or ${flag}probs`;
  if (r.kind === 'probs' && dist < rows)
    return r.decidedFrom === undefined
      ? {
          why: `was declared ${flag}probs, but its answers to some inputs are not probabilities (${rows - dist} of ${rows} rows)`,
          hint: `give ${flag}logits (or auto)`,
          usage: true,
        }
      : {
          why: `${decided}, but ${rows - dist} of ${rows} later rows are not probabilities`,
          hint: declare,
          usage: true,
        };
  if (r.kind === 'logits' && r.decidedFrom !== undefined && probsAmong(dist, rows, cols))
    return { why: `${decided}, but ${dist} of ${rows} later rows are probabilities`, hint: declare, usage: true };
  return undefined;
}

/**
 * A later batch of a model file's answers against how it is read: one line naming the model when
 * they are not finite or contradict the kind, and class indices 0…k−1 for a labels column.
 */
export function checkAnswers(file: string, values: ArrayLike<number>, cols: number, k: number, r: Reading): void {
  const p = answersProblem(values, cols, r, 'output=');
  if (p)
    throw p.usage
      ? new UsageError(`model ${file} ${p.why}`, p.hint)
      : new MseError('model', `model ${file} ${p.why}`, p.hint);
  if (r.kind === 'labels' && cols === 1) checkLabels(file, values, k);
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
 * integer type (`integerType`: an ONNX int64 argmax), is labels, never probabilities; rows that are
 * distributions for some inputs and not for others are refused (no kind reads both).
 */
export function settleOutput(
  file: string,
  values: ArrayLike<number>,
  cols: number,
  k: number,
  asked: 'auto' | OutputKind,
  integerType = false,
): OutputKind {
  if (!Array.from(values).every(Number.isFinite)) {
    const p = answersProblem(values, cols, { kind: 'logits' }, 'output=')!;
    throw new MseError('model', `model ${file} ${p.why}`, p.hint);
  }
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
  const auto = autoKind(values, cols);
  if (kind === 'auto' && 'mixed' in auto)
    throw new UsageError(`model ${file} ${auto.mixed}`, 'declare what it answers: output=logits or output=probs');
  const probs = 'kind' in auto && auto.kind === 'probs';
  if (kind === 'probs' && !probs)
    throw new UsageError(
      `model ${file} was declared output=probs, but its answers are not probabilities (rows must be ≥ 0 and sum to 1)`,
      'give output=logits (or auto)',
    );
  return kind === 'auto' ? (probs ? 'probs' : 'logits') : kind;
}

/**
 * What output=auto reads k columns (or one) of first answers as: probabilities when every row is a
 * distribution, else logits — or, when some rows are and others are not, why no kind reads them.
 */
export function autoKind(values: ArrayLike<number>, cols: number): { kind: 'probs' | 'logits' } | { mixed: string } {
  const rows = values.length / cols;
  const dist = distributionRows(values, cols);
  if (dist === rows) return { kind: 'probs' };
  return probsAmong(dist, rows, cols)
    ? {
        mixed: `answers probabilities for some of the first ${rows} inputs and not for others (${dist} of ${rows} rows are distributions)`,
      }
    : { kind: 'logits' };
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
