/**
 * Input normalization for a victim the user brings. Most PyTorch image models are trained on
 * `transforms.Normalize(mean, std)` inputs and exported without that step, so their graph expects
 *   z = (x − mean) / std        per channel (the last axis of mse's NHWC input; per feature for a table)
 * and scores badly on raw pixels. mse keeps its own domain everywhere else — pixels in [0, 1], table
 * features in [−1, 1] for the data, the API, the attacker and the metrics — and the victim wrapper
 * normalizes right before its model runs (before any NCHW transpose):
 *   -v onnx:path=model.onnx,mean=0.1307,std=0.3081                          the PyTorch MNIST example
 *   -v onnx:path=model.onnx,mean=0.485/0.456/0.406,std=0.229/0.224/0.225     ImageNet statistics
 * One value stands for every channel; a list (separated by '/', as specs write lists) has one per
 * channel. Unset, mean is 0 and std is 1.
 */
import { tf } from '../compute/backend.js';
import { UsageError } from '../errors.js';

/** Per-channel statistics, each of length `channels` (the input's last axis). */
export interface Normalization {
  readonly mean: Float32Array;
  readonly std: Float32Array;
}

const EXAMPLE = { mean: '0.485/0.456/0.406', std: '0.229/0.224/0.225' } as const;

/** The channels normalization runs over: the last axis of the NHWC input (a table's features). */
export function channelCount(inputShape: readonly number[]): number {
  return inputShape.length ? inputShape[inputShape.length - 1] : 1;
}

/**
 * "0.485/0.456/0.406" or "0.5" → its numbers, each finite in float32 (std > 0 too). Throws a one-line
 * UsageError naming the owner and the parameter.
 */
export function parseValues(owner: string, key: 'mean' | 'std', text: string): number[] {
  const parts = text.split('/');
  const values = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  // checked as float32, what the model gets: 1e-50 would be a std of 0, 1e39 a mean of Infinity
  if (values.some((v) => !Number.isFinite(Math.fround(v))))
    throw new UsageError(
      `${owner}: ${key} must be a finite number, or one per channel separated by '/', got '${text}'`,
      `e.g. ${key}=${EXAMPLE[key]}`,
    );
  if (key === 'std' && values.some((v) => !(Math.fround(v) > 0)))
    throw new UsageError(
      `${owner}: std must be > 0 (it divides), got '${text}'`,
      "give the standard deviations the model was trained with, e.g. PyTorch's Normalize(mean, std)",
    );
  return values;
}

/** The text as resolved specs keep it, so equal values give equal cell ids ("0.50/.5" → "0.5/0.5"). */
export function canonicalValues(owner: string, key: 'mean' | 'std', text: string): string {
  return parseValues(owner, key, text).map(String).join('/');
}

/**
 * The normalization a victim's `mean` and `std` declare for data of this NHWC shape, or undefined when
 * neither is given. A list's length must be 1 or the channel count (for a table: its feature count).
 */
export function parseNormalization(
  owner: string,
  meanText: string | undefined,
  stdText: string | undefined,
  inputShape: readonly number[],
): Normalization | undefined {
  if (meanText === undefined && stdText === undefined) return undefined;
  const c = channelCount(inputShape);
  const what = inputShape.length === 1 ? 'features' : 'channels';
  const has = `the data (${inputShape.join('×')}) has ${c} ${c === 1 ? what.slice(0, -1) : what}`;
  const expand = (key: 'mean' | 'std', text: string | undefined, unset: number): Float32Array => {
    if (text === undefined) return new Float32Array(c).fill(unset);
    const v = parseValues(owner, key, text);
    if (v.length !== 1 && v.length !== c)
      throw new UsageError(
        `${owner}: ${key} has ${v.length} values, but ${has}`,
        c === 1 ? `give one value, e.g. ${key}=${v[0]}` : `give one value for all ${what} or ${c} separated by '/'`,
      );
    return v.length === 1 ? new Float32Array(c).fill(v[0]) : Float32Array.from(v);
  };
  return { mean: expand('mean', meanText, 0), std: expand('std', stdText, 1) };
}

/** (x − mean) / std along the last axis of x [n, …, c]: a new tensor (the caller owns it). */
export function normalize(x: tf.Tensor, norm: Normalization): tf.Tensor {
  return tf.tidy(() => tf.div(tf.sub(x, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std)));
}

/**
 * The same on flat NHWC rows (value i is channel i mod c), into a new array: for code that sends
 * arrays rather than tensors (onnxruntime, a model server). Rounds as float32 tensor ops do.
 */
export function normalizeRows(rows: Float32Array, norm: Normalization): Float32Array {
  const c = norm.mean.length;
  if (rows.length % c !== 0) throw new Error(`normalizeRows: ${rows.length} values are not rows of ${c} channels`);
  const out = new Float32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const k = i % c;
    out[i] = Math.fround(rows[i] - norm.mean[k]) / norm.std[k];
  }
  return out;
}
