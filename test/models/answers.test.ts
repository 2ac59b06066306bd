/**
 * Reading a loaded model's raw answers: probabilities, logits, or labels — one column of class
 * indices (an exported argmax), or the argmax of k columns declared labels-only — as one-hot rows.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { UsageError } from '../../src/errors.js';
import { checkLabels, settleOutput, toProbs } from '../../src/models/answers.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('what a loaded model outputs', () => {
  it('auto reads one column of integers as labels when there are more than two classes, never as probabilities', () => {
    expect(settleOutput('m.onnx', [0, 2, 1, 2], 1, 3, 'auto')).toBe('labels');
    // an integer-typed output (ONNX int64 argmax) is labels even for two classes
    expect(settleOutput('m.onnx', [0, 1, 1], 1, 2, 'auto', true)).toBe('labels');
    // two classes, one float column: p(class 1), as before
    expect(settleOutput('m.onnx', [0, 1, 1], 1, 2, 'auto')).toBe('probs');
    expect(settleOutput('m.onnx', [0.2, 0.8, 0.5, 0.5], 2, 2, 'auto')).toBe('probs');
    expect(settleOutput('m.onnx', [2, -1, 0.5, 3], 2, 2, 'auto')).toBe('logits');
  });

  it('a declared output=labels takes k columns (their argmax) or one column of class indices 0…k−1', () => {
    expect(settleOutput('m.json', [0.1, 3, -2, 5, 0, 1], 3, 3, 'labels')).toBe('labels');
    expect(settleOutput('m.json', [2, 0, 1], 1, 3, 'labels')).toBe('labels');
    expect(settleOutput('m.json', [1, 0], 1, 2, 'labels')).toBe('labels');
  });

  it('answers that are not class indices are one line naming the file and the fix', () => {
    const declared = () => settleOutput('my/model.json', [0.37, 1, 2], 1, 3, 'labels');
    expect(declared).toThrow(UsageError);
    expect(declared).toThrow(
      /^model my\/model\.json was read as output=labels, but it answered 0\.37, not a class index 0…2$/,
    );
    try {
      declared();
    } catch (e) {
      expect((e as UsageError).hint).toMatch(/one column of class indices .* give output=probs, logits or auto/);
    }
    // auto: integers, but one is no class of the data's
    expect(() => settleOutput('m.onnx', [0, 7, 1], 1, 3, 'auto')).toThrow(/answered 7, not a class index 0…2/);
    expect(() => checkLabels('m.onnx', [0, 1, 3], 3)).toThrow(/answered 3/);
    // one float column for three classes: not labels, not a binary model
    expect(() => settleOutput('m.onnx', [0.3, 0.5], 1, 3, 'auto')).toThrow(
      /answers 1 values per input, the data has 3 classes/,
    );
    // declared probs for an argmax export: the hint names output=labels
    try {
      settleOutput('m.onnx', [0, 2, 1], 1, 3, 'probs');
      expect.unreachable();
    } catch (e) {
      expect((e as UsageError).hint).toMatch(/give output=labels/);
    }
  });

  it('labels become one-hot rows: indices as given, k columns by their argmax', () => {
    const idx = tf.tensor2d([[2], [0], [1]]);
    const scores = tf.tensor2d([
      [0.1, 3, -2],
      [5, 0, 1],
      [0, 0, 9],
    ]);
    const a = toProbs(idx, 'labels', 3);
    const b = toProbs(scores, 'labels', 3);
    expect(a.arraySync()).toEqual([
      [0, 0, 1],
      [1, 0, 0],
      [0, 1, 0],
    ]);
    expect(b.arraySync()).toEqual([
      [0, 1, 0],
      [1, 0, 0],
      [0, 0, 1],
    ]);
    expect(a.dtype).toBe('float32');
    tf.dispose([idx, scores, a, b]);
  });
});
