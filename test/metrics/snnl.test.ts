import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { snnl } from '../../src/metrics/snnl.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

// six points in 3-D, labels 0,0,1,1,1,0
const X = [
  [0.2, -1.0, 0.5],
  [0.4, -0.7, 0.3],
  [1.5, 0.3, -0.2],
  [1.1, 0.8, 0.0],
  [0.9, 0.1, -0.6],
  [-0.3, -0.4, 1.2],
];
const Y = new Int32Array([0, 0, 1, 1, 1, 0]);

/**
 * Computed independently in float64 with numpy from eq. 1 as written (no shift, no ε), the
 * gradients by central differences (h = 1e-6):
 *   d = ((x[:,None]-x[None])**2).sum(-1)   or   d = 1 - u@u.T, u = x/‖x‖
 *   e = exp(-d/T); num = (e·off·same).sum(1); den = (e·off).sum(1); -log(num/den).mean()
 */
const REFERENCE = {
  euclidean: {
    t: 2,
    loss: 0.32909504585673555,
    dT: 0.16880604766789098,
    dx0: [0.0775222085, 0.0687214876, -0.0766475691],
  },
  cosine: {
    t: 0.5,
    loss: 0.21142584875501289,
    dT: 0.6740563004981048,
    dx0: [0.0738039923, -0.0042337711, -0.0379891391],
  },
} as const;

describe('snnl: the soft nearest neighbour loss (Frosst 2019, eq. 1)', () => {
  for (const metric of ['euclidean', 'cosine'] as const) {
    it(`matches an independent float64 computation, value and gradients (${metric})`, () => {
      const ref = REFERENCE[metric];
      const x = tf.tensor2d(X);
      const t = tf.scalar(ref.t);
      const loss = snnl(x, Y, t, metric);
      expect(loss.dataSync()[0]).toBeCloseTo(ref.loss, 4);
      const [gx, gt] = tf.grads((xi: tf.Tensor, ti: tf.Tensor) => snnl(xi as tf.Tensor2D, Y, ti as tf.Scalar, metric))([
        x,
        t,
      ]);
      expect(gt.dataSync()[0]).toBeCloseTo(ref.dT, 3);
      const row0 = gx.dataSync().slice(0, 3);
      for (let j = 0; j < 3; j++) expect(row0[j]).toBeCloseTo(ref.dx0[j], 3);
      tf.dispose([x, t, loss, gx, gt]);
    });
  }

  it('is near 0 for well-separated classes, even where every exponent would underflow', () => {
    // two tight clusters 100 apart: e^{−d/T} between clusters is e^{−10000}, within them the distance is 0.01²
    const x = tf.tensor2d([
      [0, 0],
      [0.01, 0],
      [0, 0.01],
      [100, 100],
      [100.01, 100],
      [100, 100.01],
    ]);
    const labels = new Int32Array([0, 0, 0, 1, 1, 1]);
    for (const t of [0.001, 1, 10]) {
      const l = snnl(x, labels, t);
      expect(Number.isFinite(l.dataSync()[0])).toBe(true);
      expect(l.dataSync()[0]).toBeLessThan(1e-4);
      l.dispose();
    }
    // cosine: the clusters point in different directions
    const c = snnl(
      tf.tensor2d([
        [1, 0],
        [1, 0.01],
        [0, 1],
        [0.01, 1],
      ]),
      new Int32Array([0, 0, 1, 1]),
      0.01,
      'cosine',
    );
    expect(c.dataSync()[0]).toBeLessThan(1e-4);
    tf.dispose([x, c]);
  });

  it('for identical points is −(1/b) Σ_i log((n_{y_i} − 1)/(b − 1)), whatever the temperature', () => {
    const x = tf.ones([8, 5]) as tf.Tensor2D;
    for (const t of [0.1, 1, 100]) {
      // 4 + 4: −log(3/7) = 0.8472978603872037
      const even = snnl(x, new Int32Array([0, 1, 0, 1, 0, 1, 0, 1]), t);
      expect(even.dataSync()[0]).toBeCloseTo(-Math.log(3 / 7), 4);
      // 3 + 5: −(3 log(2/7) + 5 log(4/7))/8 = 0.8195459806454022
      const uneven = snnl(x, new Int32Array([0, 0, 0, 1, 1, 1, 1, 1]), t, 'cosine');
      expect(uneven.dataSync()[0]).toBeCloseTo(0.8195459806454022, 4);
      tf.dispose([even, uneven]);
    }
    x.dispose();
  });

  it('stays finite where a point has no neighbour of its label (ε = 1e-5 in the log)', () => {
    const x = tf.tensor2d(X);
    const lonely = snnl(x, new Int32Array([0, 0, 1, 1, 1, 2]), 1);
    const v = lonely.dataSync()[0];
    // the lonely point contributes −log(1e-5)/6 = 1.919 on its own
    expect(v).toBeGreaterThan(-Math.log(1e-5) / 6);
    expect(Number.isFinite(v)).toBe(true);
    const g = tf.grad((xi: tf.Tensor) => snnl(xi as tf.Tensor2D, new Int32Array([0, 0, 1, 1, 1, 2]), 1))(x);
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, lonely, g]);
  });
});
