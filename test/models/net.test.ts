import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { Net } from '../../src/models/net.js';
import { fit, predictAll, argmaxRows, accuracyOf } from '../../src/models/train.js';
import { createNet, loadModel, parseModelSpec, trainOptions } from '../../src/models/zoo.js';
import { toyBlobs } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('Net heads compute the probabilities the papers define', () => {
  // one dense layer with hand-set weights, so the expected values can be worked out by hand
  const W = new Float32Array([1, -1, 0, 2]); // [2 features, 2 outputs]
  const b = new Float32Array([0, 0.5]);
  const x = () => tf.tensor2d([[1, 0.5]]); // z = [1·1 + 0.5·0, 1·(−1) + 0.5·2 + 0.5] = [1, 0.5]
  const sig = (v: number) => 1 / (1 + Math.exp(-v));

  it('softmax: e^z / Σ e^z', () => {
    const net = new Net(
      { kind: 'softmax', inputShape: [2], numClasses: 2, layers: [{ type: 'dense', units: 2 }], head: 'softmax' },
      [W, b],
    );
    const p = net.predict(x()).dataSync();
    const e = [Math.exp(1), Math.exp(0.5)];
    expect(p[0]).toBeCloseTo(e[0] / (e[0] + e[1]), 6);
    net.dispose();
  });

  it('one-vs-rest: σ(z_i) / Σ_j σ(z_j) (Tramèr §4.1.2)', () => {
    const net = new Net(
      { kind: 'ovr', inputShape: [2], numClasses: 2, layers: [{ type: 'dense', units: 2 }], head: 'ovr' },
      [W, b],
    );
    const p = net.predict(x()).dataSync();
    expect(p[0]).toBeCloseTo(sig(1) / (sig(1) + sig(0.5)), 6);
    net.dispose();
  });

  it('binary logistic: [1 − σ(w·x + b), σ(w·x + b)]', () => {
    const net = new Net(
      { kind: 'logistic', inputShape: [2], numClasses: 2, layers: [{ type: 'dense', units: 1 }], head: 'sigmoid' },
      [new Float32Array([2, -4]), new Float32Array([0.25])],
    );
    const p = net.predict(x()).dataSync(); // z = 2 − 2 + 0.25
    expect(p[1]).toBeCloseTo(sig(0.25), 6);
    expect(p[0] + p[1]).toBeCloseTo(1, 6);
    net.dispose();
  });
});

describe('training', () => {
  it('an MLP learns separable blobs, deterministically for a seed, without leaking tensors', async () => {
    const ds = toyBlobs();
    const spec = parseModelSpec('mlp:hidden=16,epochs=20');
    const run = async () => {
      const rng = new Rng(11);
      const net = createNet(spec, ds, rng.fork());
      await fit(net, { x: ds.train.x, y: ds.train.y, n: ds.train.n }, trainOptions(spec, ds, rng.fork()));
      return net;
    };
    const before = tf.memory().numTensors;
    const a = await run();
    const afterOne = tf.memory().numTensors;
    const bnet = await run();
    const acc = accuracyOf(argmaxRows(await predictAll(a, ds.test.x, ds.test.n), ds.numClasses), ds.test.y);
    expect(acc).toBeGreaterThan(0.95);
    expect(Array.from(a.params())).toEqual(Array.from(bnet.params()));
    expect(afterOne - before).toBe(a.variables.length); // only the weights remain
    a.dispose();
    bnet.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a small CNN trains on wasm (needs the registered backprop kernels) and its loss falls', async () => {
    const rng = new Rng(2);
    const n = 128;
    const x = new Float32Array(n * 8 * 8);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = i % 2;
      // class 1 has a bright left half, class 0 a bright right half
      for (let r = 0; r < 8; r++)
        for (let c = 0; c < 8; c++) x[i * 64 + r * 8 + c] = (c < 4 === (y[i] === 1) ? 0.8 : 0.1) + 0.1 * rng.next();
    }
    const net = new Net(
      {
        kind: 'cnn',
        inputShape: [8, 8, 1],
        numClasses: 2,
        layers: [
          { type: 'conv2d', filters: 4, kernel: 3, activation: 'relu' },
          { type: 'maxpool', size: 2 },
          { type: 'flatten' },
          { type: 'dense', units: 2 },
        ],
        head: 'softmax',
      },
      rng.fork(),
    );
    const first = await fit(
      net,
      { x, y, n },
      { epochs: 1, batchSize: 16, optimizer: 'adam', lr: 0.01, rng: rng.fork() },
    );
    const later = await fit(
      net,
      { x, y, n },
      { epochs: 10, batchSize: 16, optimizer: 'adam', lr: 0.01, rng: rng.fork() },
    );
    expect(later.finalLoss).toBeLessThan(first.finalLoss);
    expect(accuracyOf(argmaxRows(await predictAll(net, x, n), 2), y)).toBeGreaterThan(0.95);
    net.dispose();
  });

  it('save → load restores identical predictions', async () => {
    const ds = toyBlobs(200);
    const net = createNet(parseModelSpec('mlp:hidden=8'), ds, new Rng(4));
    const back = loadModel(JSON.parse(JSON.stringify(net.serialize())));
    const p1 = await predictAll(net, ds.test.x, ds.test.n);
    const p2 = await predictAll(back, ds.test.x, ds.test.n);
    expect(Array.from(p2)).toEqual(Array.from(p1));
    net.dispose();
    back.dispose();
  });

  it('the LeNet-style cnn refuses images too small for its convolutions or too large for its dense layer, in one line', () => {
    const img = (h: number, w: number) => ({
      name: 'imgs',
      inputShape: [h, w, 1],
      numClasses: 3,
      kind: 'image' as const,
    });
    expect(() => createNet(parseModelSpec('cnn'), img(8, 8), new Rng(1))).toThrow(
      /cnn needs images of at least 16×16.*imgs has 8×8/,
    );
    expect(() => createNet(parseModelSpec('cnn'), img(28, 12), new Rng(1))).toThrow(/at least 16×16/);
    expect(() => createNet(parseModelSpec('cnn'), img(512, 512), new Rng(1))).toThrow(/M weights in its dense layer/);
    const ok = createNet(parseModelSpec('cnn'), img(16, 16), new Rng(1));
    ok.dispose();
  });
});
