/**
 * An ONNX victim as PyTorch exports it (scripts/make-onnx-fixture.py: a small MNIST CNN, NCHW input,
 * logits out): mse runs it with onnxruntime-node and reproduces PyTorch's own probabilities. And a
 * graph that ends in argmax (scripts/make-onnx-labels-fixture.py: int64 class indices of shape [n])
 * is read as labels.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import { predictProbs } from '../../src/models/model.js';
import { onnxRuntime, OnnxModel } from '../../src/models/onnx.js';
import { HAVE_SHARED } from '../testing/fixtures.js';

const MODEL = 'test/fixtures/onnx/mnist-cnn.onnx';
const want = JSON.parse(readFileSync('test/fixtures/onnx/mnist-cnn.probs.json', 'utf8')) as { probs: number[][] };

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe.skipIf(!HAVE_SHARED)('ONNX victims', () => {
  it("reproduce PyTorch's probabilities for the first 100 test digits within 1e-5 (NCHW read from the graph, softmax on logits)", async () => {
    expect(await onnxRuntime()).toBeDefined();
    const ds = await loadDataset('mnist');
    const m = await OnnxModel.load(MODEL, ds, { layout: 'auto', output: 'auto' });
    const x = tf.tensor(ds.test.x.subarray(0, 100 * 784), [100, 28, 28, 1]);
    const p = await predictProbs(m, x);
    const got = p.arraySync();
    let worst = 0;
    for (let i = 0; i < 100; i++)
      for (let j = 0; j < 10; j++) worst = Math.max(worst, Math.abs(got[i][j] - want.probs[i][j]));
    expect(worst).toBeLessThan(1e-5);
    tf.dispose([x, p]);
    m.dispose();
  });

  it('a model that is not ONNX, or declared to output probabilities it does not, is one line', async () => {
    const ds = await loadDataset('mnist');
    await expect(
      OnnxModel.load('test/fixtures/onnx/mnist-cnn.probs.json', ds, { layout: 'auto', output: 'auto' }),
    ).rejects.toThrow(/is not an ONNX model onnxruntime can load/);
    await expect(OnnxModel.load(MODEL, ds, { layout: 'auto', output: 'probs' })).rejects.toThrow(
      /declared output=probs, but its answers are not probabilities/,
    );
    await expect(
      OnnxModel.load(MODEL, { ...ds, inputShape: [784] }, { layout: 'auto', output: 'auto' }),
    ).rejects.toThrow(/takes inputs of shape \[n, 1, 28, 28\], the data has 784 features/);
  });
});

describe('an ONNX victim that answers labels (an int64 argmax)', () => {
  const LABELS = 'test/fixtures/onnx/iris-labels.onnx';
  // iris-shaped inputs (4 features in [−1, 1], 3 classes): the fixture is nearest-centroid on them
  const n = 64;
  const x = new Float32Array(n * 4).map((_, i) => Math.sin(i * 1.7));
  const ds = { inputShape: [4], numClasses: 3, test: { x, y: new Int32Array(n), n } };
  const centroids = [
    [-0.619, 0.194, -0.847, -0.88],
    [-0.04, -0.338, 0.134, 0.049],
    [0.3, -0.179, 0.572, 0.604],
  ];
  const nearest = (i: number) => {
    const d = centroids.map((c) => c.reduce((s, v, j) => s + (x[i * 4 + j] - v) ** 2, 0));
    return d.indexOf(Math.min(...d));
  };

  it('auto reads it as labels, and its one-hot rows are the classes it answers', async () => {
    expect(await onnxRuntime()).toBeDefined();
    const m = await OnnxModel.load(LABELS, ds, { layout: 'auto', output: 'auto' });
    expect(m.labelsOnly).toBe(true);
    const xt = tf.tensor(x, [n, 4]);
    const p = await predictProbs(m, xt);
    const rows = p.arraySync();
    const classes = rows.map((r) => r.indexOf(1));
    expect(classes).toEqual(Array.from({ length: n }, (_, i) => nearest(i)));
    expect(new Set(classes).size).toBeGreaterThan(1);
    for (const r of rows) expect(r.reduce((a, b) => a + b, 0)).toBe(1);
    tf.dispose([xt, p]);
    m.dispose();
  });

  it('declared output=probs, an argmax export is one line that names output=labels', async () => {
    await expect(OnnxModel.load(LABELS, ds, { layout: 'auto', output: 'probs' })).rejects.toThrow(
      /model .*iris-labels\.onnx answers 1 values per input, the data has 3 classes/,
    );
    await expect(
      OnnxModel.load(LABELS, { ...ds, numClasses: 2 }, { layout: 'auto', output: 'labels' }),
    ).rejects.toThrow(/answered 2, not a class index 0…1/);
  });
});
