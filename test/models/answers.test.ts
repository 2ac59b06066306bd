/**
 * Reading a loaded model's raw answers: probabilities, logits, or labels — one column of class
 * indices (an exported argmax), or the argmax of k columns declared labels-only — as one-hot rows.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { MseError, UsageError } from '../../src/errors.js';
import { answersProblem, checkAnswers, checkLabels, settleOutput, toProbs } from '../../src/models/answers.js';

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

describe('answers after the first ones', () => {
  const auto = { kind: 'probs' as const, decidedFrom: 64 };
  it('non-finite answers are a problem whatever the reading, and not a usage one', () => {
    for (const kind of ['probs', 'logits', 'labels'] as const)
      expect(answersProblem([0.5, 0.5, NaN, 1], 2, { kind }, 'output=')).toMatchObject({
        why: 'answered NaN/Infinity for some inputs',
        usage: false,
      });
    expect(answersProblem([0.5, 0.5, Infinity, 1], 2, { kind: 'logits' }, 'output=')?.why).toMatch(/NaN\/Infinity/);
  });

  it('rows that are not distributions contradict probs, declared or decided by auto', () => {
    expect(answersProblem([0.2, 0.8, 0.5, 0.5], 2, auto, 'output=')).toBeUndefined();
    expect(answersProblem([0.2, 0.8, 2, -1], 2, auto, '--target-output ')).toEqual({
      why: 'was read as --target-output probs (auto: decided from its answers to the first 64 inputs), but 1 of 2 later rows are not probabilities',
      hint: 'declare what it answers: --target-output logits or --target-output probs',
      usage: true,
    });
    expect(answersProblem([0.2, 0.8, 2, -1], 2, { kind: 'probs' }, 'output=')?.why).toBe(
      'was declared output=probs, but its answers to some inputs are not probabilities (1 of 2 rows)',
    );
    // one column: p(class 1) in [0, 1]
    expect(answersProblem([0.2, 1.5], 1, auto, 'output=')?.why).toMatch(/1 of 2 later rows are not probabilities/);
  });

  it('a batch that is mostly distributions contradicts logits decided by auto, not declared ones; a stray row does not', () => {
    const logits = { kind: 'logits' as const, decidedFrom: 10 };
    const probsRows = [0.2, 0.8, 0.5, 0.5, 0.1, 0.9, 3, -2];
    expect(answersProblem(probsRows, 2, logits, 'output=')?.why).toBe(
      'was read as output=logits (auto: decided from its answers to the first 10 inputs), but 3 of 4 later rows are probabilities',
    );
    expect(answersProblem(probsRows, 2, { kind: 'logits' }, 'output=')).toBeUndefined();
    // one row of logits that happens to sum to 1 among many that do not
    const stray = [0.4, 0.6, ...Array.from({ length: 14 }, (_, i) => i - 7)];
    expect(answersProblem(stray, 2, logits, 'output=')).toBeUndefined();
  });

  it('auto refuses first answers that are probabilities for some inputs and not for others', () => {
    const mixed = [0.2, 0.5, 0.3, 0.1, 0.1, 0.8, 3, -1, 0.2, 0.3, 0.3, 0.4];
    expect(() => settleOutput('m.onnx', mixed, 3, 3, 'auto')).toThrow(
      /^model m\.onnx answers probabilities for some of the first 4 inputs and not for others \(3 of 4 rows are distributions\)$/,
    );
    expect(settleOutput('m.onnx', mixed, 3, 3, 'logits')).toBe('logits');
    expect(() => settleOutput('m.onnx', [0.5, NaN, 0.5, 0.5], 2, 2, 'auto')).toThrow(
      /^model m\.onnx answered NaN\/Infinity for some inputs$/,
    );
  });

  it('checkAnswers throws the problem as one line naming the model, and checks labels', () => {
    expect(() => checkAnswers('m.onnx', [0.5, 0.5, 2, -1], 2, 2, auto)).toThrow(UsageError);
    expect(() => checkAnswers('m.onnx', [0.5, NaN], 2, 2, auto)).toThrow(MseError);
    expect(() => checkAnswers('m.onnx', [0, 3], 1, 3, { kind: 'labels' })).toThrow(/answered 3, not a class index/);
    expect(() => checkAnswers('m.onnx', [0, 2], 1, 3, { kind: 'labels' })).not.toThrow();
  });
});
