/**
 * A victim the user brings as TF.js files: loaded, laid out (NHWC, NCHW, flat) and read (probabilities,
 * logits or labels) as it was exported, and its answers are the model's own.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import { chooseLayout, LoadedModel } from '../../src/models/loaded.js';
import { parseNormalization } from '../../src/models/normalize.js';
import { MODELS, parseModelSpec } from '../../src/models/zoo.js';
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

  it('mean and std per channel: the model gets (x − mean) / std, taken in NHWC before the NCHW transpose', async () => {
    const shape = [4, 4, 3];
    const n = 20;
    const x = new Float32Array(n * 48).map((_, i) => Math.abs(Math.sin(i)));
    const ds = { inputShape: shape, numClasses: 3, test: { x, y: new Int32Array(n), n } };
    const model = dense([3, 4, 4], 3, 'softmax');
    const file = await saveLayersModel(model, tmp());
    const normalization = parseNormalization('model tfjs', '0.1/0.2/0.3', '0.5/1/2', shape);
    const m = await LoadedModel.load(file, ds, { layout: 'auto', output: 'auto', normalization });
    // by hand: value i of an NHWC row is channel i mod 3
    const mean = [0.1, 0.2, 0.3];
    const std = [0.5, 1, 2];
    const z = Float32Array.from(x, (v, i) => (v - mean[i % 3]) / std[i % 3]);
    const xt = tf.tensor(x, [n, ...shape]);
    const want = tf.tidy(() => model.predict(tf.transpose(tf.tensor(z, [n, ...shape]), [0, 3, 1, 2])) as tf.Tensor2D);
    const plain = tf.tidy(() => model.predict(tf.transpose(xt, [0, 3, 1, 2])) as tf.Tensor2D);
    const before = tf.memory().numTensors;
    const got = m.predict(xt);
    expect(tf.memory().numTensors).toBe(before + 1); // its answer, nothing else
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0])).toBeLessThan(1e-6);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(got, plain))).dataSync()[0])).toBeGreaterThan(1e-3);
    tf.dispose([xt, want, plain, got]);
    m.dispose();
    model.dispose();
  });

  it('a table is normalized per feature (tfjs:…,mean=a/b/c/d,std=s), and mean=0,std=1 is no change', async () => {
    const ds = await loadDataset('iris');
    const model = dense(ds.inputShape, ds.numClasses, 'softmax');
    const file = await saveLayersModel(model, tmp());
    const load = async (extra: string) => {
      const spec = parseModelSpec(`tfjs:path=${file}${extra}`);
      const unit = MODELS.get('tfjs');
      if (!unit.load) throw new Error('tfjs is not a loaded model');
      return unit.load(ds, spec.params);
    };
    const x = tf.tensor(ds.test.x, [ds.test.n, ...ds.inputShape]);
    const m = await load(',mean=0.1/-0.2/0.3/0,std=2');
    const want = tf.tidy(() => model.predict(tf.div(tf.sub(x, tf.tensor1d([0.1, -0.2, 0.3, 0])), 2)) as tf.Tensor2D);
    const got = m.predict(x);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0])).toBeLessThan(1e-6);
    const identity = await load(',mean=0,std=1');
    const plain = await load('');
    const a = identity.predict(x);
    const b = plain.predict(x);
    expect(a.arraySync()).toEqual(b.arraySync());
    await expect(load(',mean=0.1/0.2')).rejects.toThrow(
      /^model tfjs: mean has 2 values, but the data \(4\) has 4 features$/,
    );
    tf.dispose([x, want, got, a, b]);
    [m, identity, plain].forEach((v) => v.dispose());
    model.dispose();
  });

  it('declared output=labels, a k-column model answers one-hot rows of its argmax and is labels-only', async () => {
    const ds = await loadDataset('iris');
    const model = dense(ds.inputShape, ds.numClasses, 'softmax');
    const file = await saveLayersModel(model, tmp());
    const m = await LoadedModel.load(file, ds, { layout: 'auto', output: 'labels' });
    expect(m.labelsOnly).toBe(true);
    const x = tf.tensor(ds.test.x, [ds.test.n, ...ds.inputShape]);
    const want = tf.tidy(() => tf.argMax(model.predict(x) as tf.Tensor2D, 1).arraySync() as number[]);
    const got = m.predict(x);
    const rows = got.arraySync();
    rows.forEach((r, i) => expect(r).toEqual(r.map((_, j) => (j === want[i] ? 1 : 0))));
    tf.dispose([x, got]);
    m.dispose();
    const probs = await LoadedModel.load(file, ds, { layout: 'auto', output: 'auto' });
    expect(probs.labelsOnly).toBe(false);
    probs.dispose();
    model.dispose();
  });

  it('one column of integers is read as labels by auto; a column that is not class indices is one line', async () => {
    const ds = await loadDataset('iris');
    // answers the constant c for every input: a class index when c is 0…2
    const constant = async (c: number) => {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({
            inputShape: ds.inputShape,
            units: 1,
            kernelInitializer: 'zeros',
            biasInitializer: tf.initializers.constant({ value: c }),
          }),
        ],
      });
      const file = await saveLayersModel(model, tmp());
      model.dispose();
      return file;
    };
    const two = await constant(2);
    const m = await LoadedModel.load(two, ds, { layout: 'auto', output: 'auto' });
    expect(m.labelsOnly).toBe(true);
    const x = tf.tensor(ds.test.x.subarray(0, 3 * 4), [3, 4]);
    const got = m.predict(x);
    expect(got.arraySync()).toEqual([
      [0, 0, 1],
      [0, 0, 1],
      [0, 0, 1],
    ]);
    tf.dispose([x, got]);
    m.dispose();
    const half = await constant(0.5);
    await expect(LoadedModel.load(half, ds, { layout: 'auto', output: 'labels' })).rejects.toThrow(
      `model ${half} was read as output=labels, but it answered 0.5, not a class index 0…2`,
    );
    await expect(LoadedModel.load(await constant(5), ds, { layout: 'auto', output: 'auto' })).rejects.toThrow(
      /answered 5, not a class index 0…2/,
    );
  });
});

describe('TF.js victims whose later answers are not what the first ones said', () => {
  const n = 64;
  /** 4 features; the first is > 0.5 from row `farFrom` on */
  const rows = (m: number, farFrom = m) =>
    new Float32Array(m * 4).map((_, i) => (i % 4 === 0 ? (Math.floor(i / 4) >= farFrom ? 0.8 : -0.5) : Math.sin(i)));
  const ds = { inputShape: [4], numClasses: 3, test: { x: rows(n), y: new Int32Array(n), n } };
  /** one dense layer: kernel row 0 (the first feature's weights) and a bias, the other features ignored */
  async function linear(w0: number[], bias: number[], activation: 'linear' | 'softmax' = 'linear'): Promise<string> {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 3, activation, useBias: true })],
    });
    const kernel = tf.tensor2d([w0, [0, 0, 0], [0, 0, 0], [0, 0, 0]]);
    const b = tf.tensor1d(bias);
    model.layers[0].setWeights([kernel, b]);
    tf.dispose([kernel, b]);
    const file = await saveLayersModel(model, tmp());
    model.dispose();
    return file;
  }
  const ask = (m: LoadedModel, x: Float32Array) => () => {
    const xt = tf.tensor(x, [x.length / 4, 4]);
    try {
      m.predict(xt).dispose();
    } finally {
      xt.dispose();
    }
  };

  it('Infinity for some later inputs is one line naming the model, and leaks no tensor', async () => {
    // relu(x0 · ∞) in a softmax: ∞ where x0 > 0, NaN after the softmax
    const file = await linear([Infinity, 0, 0], [0, 0, 0], 'softmax');
    const m = await LoadedModel.load(file, ds, { layout: 'auto', output: 'auto' });
    ask(m, rows(5))();
    const before = tf.memory().numTensors;
    expect(ask(m, rows(5, 3))).toThrow(new RegExp(`^model ${file} answered NaN/Infinity for some inputs$`));
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('logits that looked like probabilities on the first test examples are refused once they do not', async () => {
    // [0.2 + x0, 0.3 − x0, 0.5]: rows sum to 1, ≥ 0 only while |x0| ≤ 0.2 … so the first rows use x0 = 0
    const file = await linear([1, -1, 0], [0.2, 0.3, 0.5]);
    const flat = { ...ds, test: { ...ds.test, x: rows(n).map((v, i) => (i % 4 === 0 ? 0 : v)) } };
    const m = await LoadedModel.load(file, flat, { layout: 'auto', output: 'auto' });
    expect(m.labelsOnly).toBe(false);
    expect(ask(m, rows(4))).toThrow(
      `model ${file} was read as output=probs (auto: decided from its answers to the first 64 inputs), but 4 of 4 later rows are not probabilities`,
    );
    m.dispose();
    const declared = await LoadedModel.load(file, flat, { layout: 'auto', output: 'logits' });
    ask(declared, rows(4))();
    declared.dispose();
  });

  it('a model with two outputs uses the first, and its notes say which', async () => {
    const input = tf.input({ shape: [4] });
    const a = tf.layers.dense({ units: 3, name: 'scores' }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 3, activation: 'softmax', name: 'probs' }).apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: [a, b] });
    const file = await saveLayersModel(model, tmp());
    const m = await LoadedModel.load(file, ds, { layout: 'auto', output: 'auto' });
    expect(m.notes).toEqual([`model ${file} has outputs scores, probs: using scores`]);
    const x = tf.tensor(rows(6), [6, 4]);
    const want = tf.tidy(() => tf.softmax((model.predict(x) as tf.Tensor[])[0] as tf.Tensor2D));
    const got = m.predict(x);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0])).toBeLessThan(1e-6);
    tf.dispose([x, want, got]);
    m.dispose();
    model.dispose();
  });
});
