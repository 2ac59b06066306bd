/**
 * Transferability and distribution fidelity: adversarial examples crafted on a surrogate fool the
 * victim more the closer the surrogate is to it (the victim itself is the upper bound), PGD does at
 * least as well as FGSM on the model it is crafted on, and KL/L1 are what their formulas say.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { fidelityOf, probsOf } from '../../src/metrics/agreement.js';
import { correctlyClassified, transferability } from '../../src/metrics/transfer.js';
import { Net } from '../../src/models/net.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const d = 12;
const k = 3;
const box = { min: 0, max: 1 };

/** A ReLU MLP on [0,1]^12 with weights drawn from `seed`; `noise` > 0 perturbs another net's weights instead. */
function net(seed: number, base?: Net, noise = 0): Net {
  const r = new Rng(seed);
  const cfg = {
    kind: 'mlp',
    inputShape: [d],
    numClasses: k,
    layers: [
      { type: 'flatten' as const },
      { type: 'dense' as const, units: 24, activation: 'relu' as const },
      { type: 'dense' as const, units: k },
    ],
    head: 'softmax' as const,
  };
  const shapes = [d * 24, 24, 24 * k, k];
  const from = base?.variables.map((v) => v.dataSync() as Float32Array);
  const weights = shapes.map((n, i) =>
    Float32Array.from({ length: n }, (_, j) =>
      from ? from[i][j] + r.normal(0, noise) : r.normal(0, i % 2 ? 0.3 : 1.5),
    ),
  );
  // hidden units centred on the box (b = −W·½): the decision boundaries cross [0,1]^12, every class occurs
  if (!from)
    for (let u = 0; u < 24; u++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += weights[0][j * 24 + u];
      weights[1][u] = -0.5 * s + weights[1][u];
    }
  return new Net(cfg, weights);
}

describe('transferability', () => {
  it('the victim as its own surrogate is the upper bound; a close copy transfers more than a stranger', async () => {
    const victim = net(1);
    const n = 400;
    const x = new Rng(7).fillUniform(new Float32Array(n * d), 0, 1);
    const pv = await probsOf(victim, x, n);
    // labels = the victim's own answers: every image is "correctly classified"
    const pred = Int32Array.from({ length: n }, (_, i) => {
      const row = Array.from(pv.subarray(i * k, (i + 1) * k));
      return row.indexOf(Math.max(...row));
    });
    const idx = correctlyClassified(pv, pred, k, 300);
    expect(idx).toEqual(Array.from({ length: 300 }, (_, i) => i));
    const copy = net(2, victim, 0.15);
    const other = net(3);
    const before = tf.memory().numTensors;
    const self = (await transferability(victim, victim, x, pred, idx, box))!;
    const close = (await transferability(victim, copy, x, pred, idx, box))!;
    const stranger = (await transferability(victim, other, x, pred, idx, box))!;
    expect(tf.memory().numTensors).toBe(before);
    expect(self.n).toBe(300);
    // white-box: PGD (20 projected steps) is at least FGSM (one step), and ε = 0.3 beats ε = 0.1
    for (const t of [self]) {
      expect(t.pgd[0]).toBeGreaterThanOrEqual(t.fgsm[0]);
      expect(t.pgd[1]).toBeGreaterThanOrEqual(t.fgsm[1]);
      expect(t.pgd[1]).toBeGreaterThan(t.pgd[0]);
    }
    expect(self.pgd[1]).toBeGreaterThan(0.9);
    // the closer the copy, the more its examples fool the victim
    expect(self.pgd[1]).toBeGreaterThanOrEqual(close.pgd[1]);
    expect(close.pgd[1]).toBeGreaterThan(stranger.pgd[1] + 0.1);
    expect(close.fgsm[1]).toBeGreaterThan(stranger.fgsm[1]);
    for (const t of [self, close, stranger]) for (const v of [...t.fgsm, ...t.pgd]) expect(v).toBeGreaterThanOrEqual(0);
    for (const m of [victim, copy, other]) m.dispose();
  });

  it('is skipped for surrogates it cannot differentiate, and for an empty set', async () => {
    const victim = net(1);
    const x = new Float32Array(d);
    const notNet = {
      kind: 'onnx',
      inputShape: [d],
      numClasses: k,
      predict: (t: tf.Tensor) => victim.predict(t),
      serialize: () => victim.serialize(),
      dispose: () => {},
    };
    expect(await transferability(victim, notNet, x, new Int32Array(1), [0], box)).toBeUndefined();
    expect(await transferability(victim, victim, x, new Int32Array(1), [], box)).toBeUndefined();
  });
});

describe('distribution fidelity', () => {
  it('mean L1 and KL(victim ‖ surrogate) per row, the surrogate floored where it says zero', () => {
    const pv = Float32Array.from([0.5, 0.5, 1, 0]);
    const ps = Float32Array.from([0.25, 0.75, 0, 1]);
    const f = fidelityOf(pv, ps, 2);
    expect(f.l1).toBeCloseTo((0.5 + 2) / 2, 6);
    expect(f.tv).toBeCloseTo(f.l1 / 2, 12);
    const kl0 = 0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75);
    const kl1 = Math.log(1 / 1e-12);
    expect(f.kl).toBeCloseTo((kl0 + kl1) / 2, 5);
    expect(f.agreement).toBe(0); // both rows' top classes differ
    const same = fidelityOf(pv, pv, 2);
    expect([same.l1, same.kl, same.agreement]).toEqual([0, 0, 1]);
  });
});
