import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import * as ops from '../../src/models/ops.js';
import { Net } from '../../src/models/net.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-4): void {
  expect(a.length).toBe(b.length);
  let scale = 1e-6;
  let err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    err = Math.max(err, Math.abs(a[i] - b[i]));
  }
  expect(err / scale).toBeLessThan(tol);
}

const g = (seed: number, shape: number[]) => tf.randomNormal(shape, 0, 1, 'float32', seed);

describe('layer ops with hand-written gradients equal autograd of the plain composition', () => {
  it.each(['linear', 'relu'] as const)('dense (%s): value and gradients for x, W, b', async (act) => {
    const [x, w, b, up] = [g(1, [5, 7]), g(2, [7, 4]), g(3, [4]), g(4, [5, 4])];
    const ref = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
      const z = tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi);
      return tf.sum(tf.mul(act === 'relu' ? tf.relu(z) : z, up));
    };
    const ours = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      tf.sum(tf.mul(ops.dense(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D, act, true), up));
    const want = tf.grads(ref)([x, w, b]);
    const got = tf.grads(ours)([x, w, b]);
    for (let i = 0; i < 3; i++) close(await got[i].data(), await want[i].data());
    close(await ours(x, w, b).data(), await ref(x, w, b).data());
  });

  it.each([
    [1, 'valid', 'relu'],
    [2, 'same', 'linear'],
  ] as const)('conv2d (stride %i, %s, %s): value and gradients for x, W, b', async (s, pad, act) => {
    const [x, w, b] = [g(5, [2, 9, 8, 3]), g(6, [3, 3, 3, 4]), g(7, [4])];
    const ref = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
      const z = tf.add(tf.conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, s, pad), bi);
      return tf.sum(tf.square(act === 'relu' ? tf.relu(z) : z));
    };
    const ours = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
      tf.sum(tf.square(ops.conv2d(xi as tf.Tensor4D, wi as tf.Tensor4D, bi as tf.Tensor1D, s, pad, act, true)));
    const want = tf.grads(ref)([x, w, b]);
    const got = tf.grads(ours)([x, w, b]);
    for (let i = 0; i < 3; i++) close(await got[i].data(), await want[i].data());
  });

  it('soft cross-entropy: value and gradient, also for targets that do not sum to 1', async () => {
    const z = g(8, [6, 5]);
    const y = tf.softmax(g(9, [6, 5])).mul(tf.tensor2d([[1], [1], [1], [0.5], [2], [1]]));
    const ref = (zi: tf.Tensor) => tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(zi as tf.Tensor2D)), 1)));
    close(await ops.softmaxCrossEntropy(z as tf.Tensor2D, y as tf.Tensor2D).data(), await ref(z).data());
    close(
      await tf
        .grad((zi: tf.Tensor) => ops.softmaxCrossEntropy(zi as tf.Tensor2D, y as tf.Tensor2D))(z)
        .data(),
      await tf.grad(ref)(z).data(),
    );
  });

  it('a Net keeps ∂logits/∂x by default (what Jacobian attacks need) and skips it only for training', async () => {
    const net = new Net(
      {
        kind: 'mlp',
        inputShape: [4],
        numClasses: 3,
        layers: [
          { type: 'dense', units: 5, activation: 'relu' },
          { type: 'dense', units: 3 },
        ],
        head: 'softmax',
      },
      new Rng(3),
    );
    const x = g(10, [2, 4]);
    const dx = await tf
      .grad((xi: tf.Tensor) => tf.sum(net.logits(xi)))(x)
      .data();
    expect(Array.from(dx).some((v) => v !== 0)).toBe(true);
    const dxTrain = await tf
      .grad((xi: tf.Tensor) => tf.sum(net.logits(xi, { inputGradient: false })))(x)
      .data();
    expect(Array.from(dxTrain).every((v) => v === 0)).toBe(true);
    net.dispose();
  });
});
