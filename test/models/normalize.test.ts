/**
 * Input normalization of user victims (mean, std): parsed per channel of the NHWC input, checked
 * with one line per bad value, applied as (x − mean) / std, and kept out of specs that do not use it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/compute/backend.js';
import { UsageError } from '../../src/errors.js';
import {
  canonicalValues,
  normalize,
  normalizeRows,
  parseNormalization,
  type Normalization,
} from '../../src/models/normalize.js';
import { formatModelSpec, parseModelSpec } from '../../src/models/zoo.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const f32 = (v: number[]) => Float32Array.from(v);
/** The error `fn` throws, checked to be a one-line UsageError. */
function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).message).not.toContain('\n');
    return e as UsageError;
  }
  throw new Error('expected a UsageError');
}
const usage = (fn: () => unknown) => usageError(fn).message;

describe('parseNormalization', () => {
  it('is undefined when neither is given; one value stands for every channel, a list has one per channel', () => {
    expect(parseNormalization('m', undefined, undefined, [28, 28, 1])).toBeUndefined();
    expect(parseNormalization('m', '0.1307', '0.3081', [28, 28, 1])).toEqual({
      mean: f32([0.1307]),
      std: f32([0.3081]),
    });
    expect(parseNormalization('m', '0.485/0.456/0.406', '0.229/0.224/0.225', [32, 32, 3])).toEqual({
      mean: f32([0.485, 0.456, 0.406]),
      std: f32([0.229, 0.224, 0.225]),
    });
    // one std for three channels; mean unset is 0
    expect(parseNormalization('m', undefined, '2', [32, 32, 3])).toEqual({ mean: f32([0, 0, 0]), std: f32([2, 2, 2]) });
    // a table: per feature, or one for all
    expect(parseNormalization('m', '1/2/3/4', undefined, [4])).toEqual({
      mean: f32([1, 2, 3, 4]),
      std: f32([1, 1, 1, 1]),
    });
    expect(parseNormalization('m', '-0.5', undefined, [4])?.mean).toEqual(f32([-0.5, -0.5, -0.5, -0.5]));
  });

  it('bad values are one line each, naming the parameter and the fix', () => {
    const p =
      (mean: string | undefined, std: string | undefined, shape = [28, 28, 1]) =>
      () =>
        parseNormalization('model onnx', mean, std, shape);
    expect(usage(p(undefined, '0'))).toBe("model onnx: std must be > 0 (it divides), got '0'");
    expect(usage(p(undefined, '-1'))).toBe("model onnx: std must be > 0 (it divides), got '-1'");
    expect(usage(p(undefined, '0.5/0', [4, 4, 2]))).toMatch(/std must be > 0 \(it divides\), got '0.5\/0'/);
    // a std float32 cannot tell from 0 would divide by 0 just the same
    expect(usage(p(undefined, '1e-50'))).toMatch(/std must be > 0/);
    expect(usage(p('0.5/0.5', undefined))).toBe('model onnx: mean has 2 values, but the data (28×28×1) has 1 channel');
    expect(usage(p(undefined, '1/2/3', [4]))).toBe('model onnx: std has 3 values, but the data (4) has 4 features');
    expect(usage(p('abc', undefined))).toBe(
      "model onnx: mean must be a finite number, or one per channel separated by '/', got 'abc'",
    );
    for (const text of ['', '0.5/', 'Infinity', '1e39', 'NaN', '0.1;0.2'])
      expect(usage(p(text, undefined))).toMatch(/mean must be a finite number/);
    // the hint says what to write
    expect(usageError(p('0.5/0.5', undefined)).hint).toBe('give one value, e.g. mean=0.5');
    expect(usageError(p('0.5/0.5', undefined, [32, 32, 3])).hint).toBe(
      "give one value for all channels or 3 separated by '/'",
    );
  });
});

describe('normalize', () => {
  const norm: Normalization = { mean: f32([0.1, 0.2, 0.3]), std: f32([0.5, 1, 2]) };

  it('is (x − mean) / std along the channel axis (golden values by hand)', () => {
    // two pixels of three channels: [n=1, h=1, w=2, c=3]
    const x = tf.tensor([0.2, 0.4, 0.6, 1, 0, 0.3], [1, 1, 2, 3]);
    const got = normalize(x, norm);
    const want = [0.2, 0.2, 0.15, 1.8, -0.2, 0];
    Array.from(got.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    expect(got.shape).toEqual([1, 1, 2, 3]);
    expect(Array.from(normalizeRows(f32([0.2, 0.4, 0.6, 1, 0, 0.3]), norm))).toEqual(Array.from(got.dataSync()));
    tf.dispose([x, got]);
  });

  it('rows and tensors agree to the bit, the input is left as it was, and no tensor leaks', () => {
    const rows = new Float32Array(5 * 4 * 4 * 3).map((_, i) => Math.abs(Math.sin(i * 0.37)));
    const copy = rows.slice();
    const before = tf.memory().numTensors;
    const x = tf.tensor(rows, [5, 4, 4, 3]);
    const t = normalize(x, norm);
    expect(Array.from(normalizeRows(rows, norm))).toEqual(Array.from(t.dataSync()));
    expect(rows).toEqual(copy);
    tf.dispose([x, t]);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => normalizeRows(new Float32Array(4), norm)).toThrow(/4 values are not rows of 3 channels/);
  });
});

describe('mean and std in a victim spec', () => {
  it('leave specs without them as they were, so existing cell ids keep', () => {
    expect(formatModelSpec(parseModelSpec('onnx:path=m.onnx'))).toBe('onnx:layout=auto,output=auto,path=m.onnx');
    expect(formatModelSpec(parseModelSpec('tfjs:path=m/model.json,output=logits'))).toBe(
      'tfjs:layout=auto,output=logits,path=m/model.json',
    );
  });

  it('are checked when the spec is read and kept in one form: equal values, equal ids', () => {
    expect(formatModelSpec(parseModelSpec('onnx:path=m.onnx,mean=0.1307,std=0.3081'))).toBe(
      'onnx:layout=auto,mean=0.1307,output=auto,path=m.onnx,std=0.3081',
    );
    const a = parseModelSpec('onnx:path=m.onnx,mean=0.50/.5/5e-1,std=2.0');
    const b = parseModelSpec('onnx:path=m.onnx,mean=0.5/0.5/0.5,std=2');
    expect(formatModelSpec(a)).toBe(formatModelSpec(b));
    expect(a.params.mean).toBe('0.5/0.5/0.5');
    expect(canonicalValues('m', 'std', '2.50')).toBe('2.5');
    expect(usage(() => parseModelSpec('onnx:path=m.onnx,std=0'))).toBe(
      "model onnx: std must be > 0 (it divides), got '0'",
    );
    expect(usage(() => parseModelSpec('tfjs:path=m.json,mean=x'))).toMatch(/^model tfjs: mean must be a finite number/);
    // commas are the spec's own separator: a list written with them is pointed at '/'
    expect(usage(() => parseModelSpec('onnx:path=m.onnx,mean=0.485,0.456,0.406'))).toBe(
      "model onnx: mean takes one value per channel separated by '/', got 0.485,0.456,0.406",
    );
  });
});
