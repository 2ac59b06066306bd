import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { makeOptimizer } from '../../src/models/optimizer.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

// Whichever implementation makeOptimizer picks here (fused native kernels, or tfjs's), its steps
// must equal tfjs's own optimiser on the same problem.
describe('optimisers', () => {
  it.each([
    ['adam', () => tf.train.adam(0.05)],
    ['sgd', () => tf.train.momentum(0.05, 0.9)],
  ] as const)('%s: five steps match tf.train', async (name, reference) => {
    const target = tf.tensor2d([
      [1, -2, 3],
      [0.5, 0, -1],
    ]);
    const run = async (opt: {
      minimize(f: () => tf.Scalar, r: boolean, v: tf.Variable[]): unknown;
      dispose(): void;
    }) => {
      const variable = (t: tf.Tensor) => {
        const v = tf.variable(t);
        t.dispose(); // tf.variable keeps its initial tensor alive otherwise
        return v;
      };
      const w = variable(
        tf.tensor2d([
          [0.1, 0.2, 0.3],
          [-0.1, 0, 0.4],
        ]),
      );
      const b = variable(tf.tensor1d([0.5, -0.5, 0]));
      for (let i = 0; i < 5; i++) {
        tf.tidy(() => {
          const r = opt.minimize(() => tf.sum(tf.square(tf.sub(tf.add(w, b), target))) as tf.Scalar, false, [w, b]);
          return r as tf.Tensor | undefined;
        });
      }
      opt.dispose();
      const out = [...(await w.data()), ...(await b.data())];
      w.dispose();
      b.dispose();
      return out;
    };
    const before = tf.memory().numTensors;
    const ours = await run(makeOptimizer({ optimizer: name, lr: 0.05, momentum: 0.9 }));
    expect(tf.memory().numTensors).toBe(before); // no optimiser state left behind
    const ref = await run(reference());
    for (let i = 0; i < ref.length; i++) expect(ours[i]).toBeCloseTo(ref[i], 5);
    expect(ours).not.toEqual([0.1, 0.2, 0.3, -0.1, 0, 0.4, 0.5, -0.5, 0]); // it moved
  });
});
