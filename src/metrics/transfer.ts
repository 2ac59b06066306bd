/**
 * Adversarial transferability: why attackers steal a model. Adversarial examples are crafted on the
 * surrogate, against the surrogate (white-box, untargeted), and the metric is how often they fool
 * the victim — on test images the victim classifies correctly, so every success is one the stolen
 * copy bought (Papernot et al. 2017 §5; PRADA, Juuti et al. 2019 §5, reports the same measure).
 *   FGSM (Goodfellow et al. 2015): x' = clip(x + ε·sign ∇ₓ L(f̂(x), y)).
 *   PGD (Madry et al. 2018): 20 steps of size α = 2.5ε/20 from x (no random start: deterministic),
 *   each projected back to the ε-ball around x and to the image box.
 * ε is on [0, 1] images (0.1 and 0.3, as the issue and the papers use for MNIST). The surrogate must
 * be differentiable (a Net); the victim is only ever asked for its answers.
 */
import { tf } from '../compute/backend.js';
import type { Model } from '../models/model.js';
import { Net } from '../models/net.js';
import * as ops from '../models/ops.js';
import { argmaxRows, predictAll } from '../models/train.js';

export const TRANSFER_EPS = [0.1, 0.3] as const;
export const PGD_STEPS = 20;

export interface Transfer {
  /** success rate on the victim per ε in TRANSFER_EPS */
  fgsm: number[];
  pgd: number[];
  /** images attacked (correctly classified by the victim, at most the n asked) */
  n: number;
}

/**
 * Which test images to attack: the first `n` the victim classifies correctly, in test-set order (the
 * same for every surrogate of a cell, so rows compare).
 */
export function correctlyClassified(victimProbs: Float32Array, y: Int32Array, k: number, n: number): number[] {
  const pred = argmaxRows(victimProbs, k);
  const out: number[] = [];
  for (let i = 0; i < y.length && out.length < n; i++) if (pred[i] === y[i]) out.push(i);
  return out;
}

/** One gradient-sign step on the surrogate's cross-entropy at x (true labels y), clipped to the box and the ε-ball around x0. */
function step(
  net: Net,
  x: tf.Tensor,
  x0: tf.Tensor,
  y: tf.Tensor2D,
  size: number,
  eps: number,
  box: { min: number; max: number },
): tf.Tensor {
  return tf.tidy(() => {
    const g = tf.grad((xi: tf.Tensor) => ops.softmaxCrossEntropy(net.logits(xi), y))(x);
    const moved = tf.add(x, tf.mul(tf.sign(g), size));
    const inBall = tf.minimum(tf.maximum(moved, tf.sub(x0, eps)), tf.add(x0, eps));
    return tf.clipByValue(inBall, box.min, box.max);
  });
}

/**
 * FGSM and PGD success rates on the victim for examples crafted on `surrogate`, or undefined when
 * the surrogate is not differentiable here (a tree, a loaded model) or its head is not softmax.
 */
export async function transferability(
  victim: Model,
  surrogate: Model,
  x: Float32Array,
  y: Int32Array,
  idx: readonly number[],
  box: { min: number; max: number },
): Promise<Transfer | undefined> {
  if (!(surrogate instanceof Net) || surrogate.head !== 'softmax' || !idx.length) return undefined;
  const shape = surrogate.inputShape;
  const d = shape.reduce((a, b) => a * b, 1);
  const k = victim.numClasses;
  const n = idx.length;
  const xs = new Float32Array(n * d);
  const ys = new Int32Array(n);
  idx.forEach((r, i) => {
    xs.set(x.subarray(r * d, (r + 1) * d), i * d);
    ys[i] = y[r];
  });
  const fooled = async (adv: Float32Array) => {
    const pred = argmaxRows(await predictAll(victim, adv, n), k);
    let wrong = 0;
    for (let i = 0; i < n; i++) if (pred[i] !== ys[i]) wrong++;
    return wrong / n;
  };
  const batch = 250;
  const craft = async (eps: number, steps: number, size: number): Promise<Float32Array> => {
    const out = new Float32Array(n * d);
    for (let s = 0; s < n; s += batch) {
      const m = Math.min(batch, n - s);
      const x0 = tf.tensor(xs.subarray(s * d, (s + m) * d), [m, ...shape]);
      const yt = tf.tidy(() => tf.oneHot(tf.tensor1d(ys.subarray(s, s + m), 'int32'), k).toFloat() as tf.Tensor2D);
      let cur: tf.Tensor = x0.clone();
      try {
        for (let t = 0; t < steps; t++) {
          const next = step(surrogate, cur, x0, yt, size, eps, box);
          cur.dispose();
          cur = next;
        }
        out.set((await cur.data()) as Float32Array, s * d);
      } finally {
        tf.dispose([x0, yt, cur]);
      }
    }
    return out;
  };
  const fgsm: number[] = [];
  const pgd: number[] = [];
  for (const eps of TRANSFER_EPS) {
    fgsm.push(await fooled(await craft(eps, 1, eps)));
    pgd.push(await fooled(await craft(eps, PGD_STEPS, (2.5 * eps) / PGD_STEPS)));
  }
  return { fgsm, pgd, n };
}
