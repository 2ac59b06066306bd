/**
 * A victim the user brings as TF.js files: loaded, laid out (NHWC, NCHW, flat) and read (probabilities
 * or logits) as it was exported, and its answers are the model's own.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import { chooseLayout, LoadedModel } from '../../src/models/loaded.js';
import { saveLayersModel } from '../testing/tfjs-files.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'mse-tfjs-'));

function dense(inputShape: number[], k: number, activation: 'softmax' | 'linear', seed = 1): tf.Sequential {
  const m = tf.sequential();
  if (inputShape.length > 1) m.add(tf.layers.flatten({ inputShape }));
  m.add(
    tf.layers.dense({
      units: 8,
      activation: 'relu',
      ...(inputShape.length > 1 ? {} : { inputShape }),
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
    }),
  );
  m.add(
    tf.layers.dense({ units: k, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
  );
  return m;
}

describe('TF.js model files as victims', () => {
  it('a softmax model is read as probabilities, a logits model gets softmax: both equal the model’s own answers', async () => {
    const ds = await loadDataset('iris');
    const x = tf.tensor(ds.test.x, [ds.test.n, ...ds.inputShape]);
    for (const act of ['softmax', 'linear'] as const) {
      const model = dense(ds.inputShape, ds.numClasses, act);
      const file = await saveLayersModel(model, tmp());
      const m = await LoadedModel.load(file, ds, { layout: 'auto', output: 'auto' });
      const want = tf.tidy(() =>
        act === 'linear' ? tf.softmax(model.predict(x) as tf.Tensor2D) : (model.predict(x) as tf.Tensor2D),
      );
      const got = m.predict(x);
      expect(got.shape).toEqual([ds.test.n, ds.numClasses]);
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]);
      expect(d).toBeLessThan(1e-6);
      tf.dispose([want, got]);
      m.dispose();
      model.dispose();
    }
    x.dispose();
  });

  it('declaring output=probs for a logits model is refused with one line', async () => {
    const ds = await loadDataset('iris');
    const model = dense(ds.inputShape, ds.numClasses, 'linear');
    const file = await saveLayersModel(model, tmp());
    await expect(LoadedModel.load(file, ds, { layout: 'auto', output: 'probs' })).rejects.toThrow(
      /declared output=probs, but its answers are not probabilities/,
    );
    model.dispose();
  });

  it('layout from the model’s input shape: NHWC as is, NCHW (PyTorch) transposed, flat reshaped; ambiguous asks', () => {
    expect(chooseLayout([null, 28, 28, 1], [28, 28, 1], 'auto', 'm')).toBe('nhwc');
    expect(chooseLayout([null, 1, 28, 28], [28, 28, 1], 'auto', 'm')).toBe('nchw');
    expect(chooseLayout([null, 3, 32, 32], [32, 32, 3], 'auto', 'm')).toBe('nchw');
    expect(chooseLayout([null, 784], [28, 28, 1], 'auto', 'm')).toBe('flat');
    expect(() => chooseLayout([null, 3, 3, 3], [3, 3, 3], 'auto', 'm')).toThrow(/NHWC or NCHW cannot be told apart/);
    expect(chooseLayout([null, 3, 3, 3], [3, 3, 3], 'nchw', 'm')).toBe('nchw');
    expect(() => chooseLayout([null, 10], [28, 28, 1], 'auto', 'm')).toThrow(
      /takes inputs of shape \[n, 10\], the data has 28×28×1/,
    );
  });

  it('an NCHW model (as PyTorch exports) answers NHWC data as the model does on transposed inputs', async () => {
    const shape = [4, 4, 3];
    const ds = {
      inputShape: shape,
      numClasses: 3,
      test: { x: new Float32Array(20 * 48).map((_, i) => Math.sin(i)), y: new Int32Array(20), n: 20 },
    };
    const model = dense([3, 4, 4], 3, 'softmax');
    const file = await saveLayersModel(model, tmp());
    const m = await LoadedModel.load(file, ds, { layout: 'auto', output: 'auto' });
    const x = tf.tensor(ds.test.x, [20, ...shape]);
    const want = tf.tidy(() => model.predict(tf.transpose(x, [0, 3, 1, 2])) as tf.Tensor2D);
    const got = m.predict(x);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0])).toBeLessThan(1e-6);
    tf.dispose([x, want, got]);
    m.dispose();
    model.dispose();
  });
});
