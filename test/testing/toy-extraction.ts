/**
 * The toy extraction setting the surrogate-attack tests share: an 8-feature, 4-class smooth MLP
 * victim on the box [−1, 1]^8, a Gaussian out-of-distribution pool, and the top-1 defense.
 */
import * as tf from '@tensorflow/tfjs';
import type { Defense, PredictionApi } from '../../src/api/types.js';
import type { Pool } from '../../src/attacks/types.js';
import { Rng } from '../../src/compute/rng.js';
import { DetectedError } from '../../src/errors.js';
import { Net } from '../../src/models/net.js';

export const d = 8;
export const k = 4;
export const domain = { min: -1, max: 1 };

export const top1: Defense = {
  name: 'top1',
  params: {},
  reveals: 'labels',
  output: (p) => ({ labels: tf.argMax(p, 1) as tf.Tensor1D }),
};

/** A smooth, confident MLP victim with zero biases (so its answer at x = 0 is exactly uniform). */
export function victim(seed = 21): Net {
  const r = new Rng(seed);
  const w1 = Float32Array.from({ length: d * 16 }, () => r.normal(0, 1.2));
  const w2 = Float32Array.from({ length: 16 * k }, () => r.normal(0, 0.7));
  return new Net(
    {
      kind: 'mlp',
      inputShape: [d],
      numClasses: k,
      layers: [{ type: 'flatten' }, { type: 'dense', units: 16, activation: 'tanh' }, { type: 'dense', units: k }],
      head: 'softmax',
    },
    [w1, new Float32Array(16), w2, new Float32Array(k)],
  );
}

/** An out-of-distribution pool: Gaussian points clipped to the box, 4 arbitrary pool classes. */
export function gaussianPool(n: number, seed = 5): Pool {
  const r = new Rng(seed);
  const x = Float32Array.from({ length: n * d }, () => Math.max(-1, Math.min(1, r.normal(0, 0.6))));
  const y = Int32Array.from({ length: n }, () => r.int(4));
  return { name: 'gauss', x, y, n, numClasses: 4, classNames: ['a', 'b', 'c', 'd'] };
}

/** An honest client sending rows(i) for i < n through `api`, 100 at a time; the alarm's message, if one rose. */
export async function streamUntilAlarm(
  api: PredictionApi,
  rows: (i: number) => Float32Array,
  n: number,
): Promise<string | undefined> {
  for (let s = 0; s < n; s += 100) {
    const x = new Float32Array(100 * d);
    for (let i = 0; i < 100; i++) x.set(rows(s + i), i * d);
    const xt = tf.tensor2d(x, [100, d]);
    try {
      const r = await api.query(xt);
      tf.dispose([r.probs ?? []]);
    } catch (e) {
      if (e instanceof DetectedError) return e.message;
      throw e;
    } finally {
      xt.dispose();
    }
  }
  return undefined;
}
