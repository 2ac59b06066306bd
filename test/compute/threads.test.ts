import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';

// Without the native BLAS (which keeps wasm single-threaded and threads OpenBLAS instead).
process.env.MSE_NATIVE = '0';
const { initBackend } = await import('../../src/compute/backend.js');

// The default configuration: the threaded wasm build (shared memory, XNNPACK pool) with our
// kernels on top. This file runs in its own process, so it can ask for two threads.
describe('multi-threaded wasm', () => {
  it('starts two threads in Node and trains a conv layer to the same gradients as the cpu backend', async () => {
    const b = await initBackend('wasm', { threads: 2 });
    expect([b.label, b.threads]).toEqual(['wasm', 2]);
    const grads = () =>
      tf.tidy(() => {
        const x = tf.randomNormal([3, 10, 10, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
        const w = tf.randomNormal([3, 3, 2, 5], 0, 1, 'float32', 4) as tf.Tensor4D;
        const d = tf.randomNormal([80, 7], 0, 1, 'float32', 5) as tf.Tensor2D;
        const g = tf.grads((a: tf.Tensor, c: tf.Tensor) => {
          const h = tf.maxPool(tf.relu(tf.conv2d(x, a as tf.Tensor4D, 2, 'same')), 2, 1, 'valid');
          return tf
            .matMul(h.reshape([3, -1]) as tf.Tensor2D, c as tf.Tensor2D)
            .square()
            .mean();
        })([w, tf.slice(d, [0, 0], [-1, -1])]);
        return tf.concat(g.map((t) => t.flatten()));
      });
    const got = await grads().data();
    await tf.setBackend('cpu');
    const want = await grads().data();
    let err = 0;
    let scale = 1e-6;
    for (let i = 0; i < want.length; i++) {
      err = Math.max(err, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    expect(err / scale).toBeLessThan(1e-4);
  });
});
