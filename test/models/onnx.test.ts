/**
 * An ONNX victim as PyTorch exports it (scripts/make-onnx-fixture.py: a small MNIST CNN, NCHW input,
 * logits out): mse runs it with onnxruntime-node and reproduces PyTorch's own probabilities.
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
