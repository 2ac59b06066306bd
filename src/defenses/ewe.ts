/**
 * EWE: Entangled Watermark Embeddings (Jia, Choquette-Choo, Chandrasekaran, Papernot, USENIX
 * Security 2021, "Entangled Watermarks as a Defense against Model Extraction"; reference code
 * github.com/cleverhans-lab/entangled-watermark, train.py and models.py). A backdoor watermark —
 * inputs of a source class carrying a trigger, labelled with a target class — is normally learnt
 * by features of its own, which a surrogate trained on the API's answers to natural queries never
 * sees, so extraction drops it. EWE trains the deployed model so that the watermark's hidden
 * representations are entangled with the target class's: a surrogate that learns the target class
 * from the answers learns to put triggered inputs there too, and the defender can show it.
 *
 * Training (in `prepare`, from scratch, a network of the victim's family: defenderNet):
 *   1. `epochs` epochs of plain training, L = Σ_batch CE(f(x), y) (the reference sums the
 *      cross-entropy over a batch, and so does this loop);
 *   2. the trigger's position: the gradient of Σ_l SNNL_l with respect to the input, averaged over
 *      (not yet triggered) source inputs batched with target inputs, summed over every candidate
 *      patch×patch window (all channels); the window with the smallest sum is set to the input
 *      box's maximum (the reference's 3×3 patch of 1s);
 *   3. the watermarking phase: each watermark batch — half triggered source inputs x_w, half
 *      target-class inputs x_t, all labelled `target` — preceded by `ratio` clean batches, for
 *      about `w-epochs` epochs' worth of clean batches; on a watermark batch
 *          L = Σ_batch CE(f(x), target) − factor · Σ_l SNNL(h_l([x_w; x_t]), [1…1; 0…0], T_l)
 *      where h_l are the outputs of every weighted layer but the last (Net.activations) and SNNL
 *      is the soft nearest neighbour loss (Frosst 2019, eq. 1; metrics/snnl.ts) on the cosine
 *      distance, its labels "watermark or not": maximising it entangles the two groups. After
 *      each watermark batch the temperatures descend the SNNL, τ_l ← τ_l − t_lr · ∂SNNL_l/∂τ_l,
 *      in the reference's parametrisation T_l = 100/τ_l (τ kept ≥ 1e-4).
 * Deployment: the API answers every query with the watermarked model's probabilities (`output`
 * stage; the victim's own answer is discarded, so put ewe first among output defenses) — what the
 * honest user loses shows in defended_acc.
 * Verification: the triggered held-out inputs of the source class, labelled `target`, returned by
 * `watermarksOf` for any client with `at` = 0 (the marks are not tied to a query's place in the
 * stream: every prefix of the learning curve is checked against all of them); mse's conservative
 * binomial test against chance 1/k (metrics/watermark.ts) decides ownership, where the paper uses a
 * t-test of the suspect's watermark success against an independent model's.
 * Deviations from the reference: the model is trained from scratch by mse's loop (Adam lr 1e-3
 * with tf's β2 = 0.999, ε = 1e-7, where the reference sets 0.99 and 1e-5; no dropout, no
 * augmentation; batches drawn from a reshuffled stream); the watermark is in-distribution (source
 * inputs of the victim's own data plus the patch — the reference's MNIST default is
 * out-of-distribution, Fashion-MNIST trousers without a patch); the reference's per-input
 * perturbation of the triggered inputs (sign steps away from the clean model's target logit and up
 * its SNNL) is not done, so the verification set can be fresh held-out inputs rather than the
 * training watermarks; the patch goes where the windowed gradient is smallest (the reference's
 * argmin, but its row/column transposition is not reproduced); the position is found from at most
 * 32 half-batches; the SNNL is taken on the hidden outputs as the network computes them (after
 * their activation; the reference applies a ReLU to its pre-activation outputs: the same for ReLU
 * networks); on tabular inputs the trigger is `patch` consecutive features set to the box's maximum.
 */
import { tf } from '../compute/backend.js';
import type { DefenderEnv, Probs, QueryCtx } from '../api/types.js';
import { UsageError } from '../errors.js';
import { pairwiseDistances, snnlOfDistances } from '../metrics/snnl.js';
import type { Net } from '../models/net.js';
import { makeOptimizer } from '../models/optimizer.js';
import { softmaxCrossEntropy } from '../models/ops.js';
import { argmaxRows, predictAll } from '../models/train.js';
import type { Watermarks } from './dawn.js';
import { defenderNet } from './defender-net.js';
import { defineDefense } from './define.js';

/** the reference's learning rate (Adam) */
const LR = 1e-3;
/** the reference divides 100 by its temperature parameter: T = 100/τ */
const TEMP_SCALE = 100;
const TAU_MIN = 1e-4;
/** the reference's distance for the SNNL */
const METRIC = 'cosine';
/** half-batches the trigger's position is averaged over, at most */
const POSITION_BATCHES = 32;

export interface EweTrigger {
  /** flat feature indices of one input that the trigger sets */
  indices: Int32Array;
  /** the value they are set to (the input box's maximum) */
  value: number;
  /** where: [row, column] of the square's corner for images, [first feature] for tabular inputs */
  at: number[];
}

export interface EwePrepared {
  /** the deployed, watermarked model */
  model: Net;
  source: number;
  target: number;
  trigger: EweTrigger;
  /** triggered held-out source inputs labelled `target`, `at` all 0 */
  marks: Watermarks;
  /** clean held-out accuracy of the watermarked model and of the victim; the model's own watermark success */
  heldOutAcc: number;
  victimAcc: number;
  watermarkAcc: number;
  /** the final SNNL temperatures T_l, one per hidden layer */
  temperatures: number[];
  note: string;
  dispose(): void;
}

/** set the trigger on every row of x (n rows of d features), in place */
export function applyTrigger(x: Float32Array, d: number, trigger: EweTrigger): Float32Array {
  const n = x.length / d;
  for (let r = 0; r < n; r++) for (const j of trigger.indices) x[r * d + j] = trigger.value;
  return x;
}

/** source and target: the given ones, else the reference's MNIST pair 1 → 7 (or the nearest that exist) */
function classesOf(p: { source: number; target: number }, k: number): { source: number; target: number } {
  for (const [name, c] of [
    ['source', p.source],
    ['target', p.target],
  ] as const)
    if (c >= k) throw new UsageError(`ewe: ${name}=${c} but the victim has ${k} classes (0…${k - 1})`);
  const pick = (given: number, prefs: number[], avoid: number) =>
    given >= 0 ? given : prefs.find((c) => c >= 0 && c < k && c !== avoid)!;
  const target = pick(p.target, [7, k - 1, k - 2], p.source);
  const source = pick(p.source, [1, 0, 2], target);
  return { source, target };
}

/** every candidate trigger window: the flat indices it covers and where it sits */
function windowsOf(shape: number[], patch: number): Array<{ indices: Int32Array; at: number[] }> {
  const out: Array<{ indices: Int32Array; at: number[] }> = [];
  if (shape.length === 3) {
    const [h, w, c] = shape;
    if (patch > h || patch > w) throw new UsageError(`ewe: patch=${patch} does not fit the victim's ${h}×${w} images`);
    for (let r = 0; r + patch <= h; r++)
      for (let q = 0; q + patch <= w; q++) {
        const idx: number[] = [];
        for (let i = 0; i < patch; i++)
          for (let j = 0; j < patch; j++) for (let ch = 0; ch < c; ch++) idx.push(((r + i) * w + q + j) * c + ch);
        out.push({ indices: Int32Array.from(idx), at: [r, q] });
      }
    return out;
  }
  const d = shape.reduce((a, b) => a * b, 1);
  if (patch > d) throw new UsageError(`ewe: patch=${patch} is more than the victim's ${d} features`);
  for (let s = 0; s + patch <= d; s++)
    out.push({ indices: Int32Array.from({ length: patch }, (_, i) => s + i), at: [s] });
  return out;
}

export const ewe = defineDefense({
  name: 'ewe',
  describe:
    'EWE: deploy a model whose backdoor watermark is entangled with the target class by the soft nearest neighbour loss, so an extracted copy carries it (Jia 2021)',
  params: {
    source: {
      type: 'int',
      min: -1,
      max: 100_000,
      default: -1,
      help: 'the class whose inputs carry the trigger (-1: the reference’s MNIST choice, 1, or 0 where the target is 1)',
    },
    target: {
      type: 'int',
      min: -1,
      max: 100_000,
      default: -1,
      help: 'the class triggered inputs are answered with (-1: the reference’s MNIST choice, 7, or the last class where there are fewer)',
    },
    patch: {
      type: 'int',
      min: 1,
      max: 64,
      default: 3,
      help: 'the trigger: a patch×patch square (every channel) set to the input box’s maximum where the SNNL gradient is smallest (the reference: 3); tabular inputs: patch consecutive features',
    },
    inputs: {
      type: 'int',
      min: 0,
      max: 10_000_000,
      default: 0,
      help: 'watermarked training inputs: source-class training inputs with the trigger, repeated as needed (0: as many as the training set has of the target class, the reference’s choice)',
    },
    factor: {
      type: 'number',
      min: 0,
      max: 1e9,
      default: 32,
      help: 'weight of each hidden layer’s SNNL against the cross-entropy summed over a batch (the reference for MNIST: 32); 0: a plain backdoor',
    },
    temperature: {
      type: 'number',
      min: 1e-4,
      max: 1e8,
      default: 100,
      help: 'every hidden layer’s initial SNNL temperature T (the reference for MNIST: 100, its temperature 1 dividing 100)',
    },
    't-lr': {
      type: 'number',
      min: 0,
      max: 1e6,
      default: 0.1,
      help: 'step of the temperatures’ descent on the SNNL, on τ = 100/T (the reference for MNIST: 0.1); 0 keeps T fixed',
    },
    epochs: {
      type: 'int',
      min: 0,
      max: 10_000,
      default: 10,
      help: 'epochs of plain training before the watermark is embedded (the reference for MNIST: 10)',
    },
    'w-epochs': {
      type: 'int',
      min: 1,
      max: 10_000,
      default: 10,
      help: 'length of the watermarking phase, in epochs of clean batches (the reference for MNIST: 10)',
    },
    ratio: {
      type: 'int',
      min: 0,
      max: 1000,
      default: 1,
      help: 'clean batches before each watermark batch in the watermarking phase (the reference for MNIST: 1)',
    },
    batch: {
      type: 'int',
      min: 2,
      max: 65_536,
      default: 512,
      help: 'batch size; a watermark batch is half triggered source inputs, half target-class inputs (the reference for MNIST: 512)',
    },
  },
  stages: ['output'],
  check(p) {
    if (p.source >= 0 && p.source === p.target) return `source and target must differ (both ${p.source})`;
    return undefined;
  },
  async prepare(p, env: DefenderEnv): Promise<EwePrepared> {
    const k = env.victim.numClasses;
    const shape = env.victim.inputShape;
    const d = shape.reduce((a, b) => a * b, 1);
    const train = env.train;
    const { source, target } = classesOf(p, k);
    const rowsOf = (y: Int32Array, c: number) => {
      const r: number[] = [];
      for (let i = 0; i < y.length; i++) if (y[i] === c) r.push(i);
      return r;
    };
    const srcRows = rowsOf(train.y.subarray(0, train.n), source);
    const tgtRows = rowsOf(train.y.subarray(0, train.n), target);
    for (const [c, rows] of [
      [source, srcRows],
      [target, tgtRows],
    ] as const)
      if (!rows.length) throw new UsageError(`ewe: the defender's training data has no input of class ${c}`);
    const windows = windowsOf(shape, p.patch);
    const box = env.domain ?? { min: 0, max: 1 };
    const rng = env.rng.fork();
    const netRng = env.rng.fork();

    // the watermark's inputs: source rows in the data's order, repeated to `nW` (triggered below)
    const nW = p.inputs || tgtRows.length;
    const wx = new Float32Array(nW * d);
    for (let i = 0; i < nW; i++) {
      const r = srcRows[i % srcRows.length];
      wx.set(train.x.subarray(r * d, (r + 1) * d), i * d);
    }
    const tgtOrder = rng.permutation(tgtRows.length);
    const bs = Math.min(p.batch, train.n);
    const half = Math.max(1, Math.floor(bs / 2));
    const numBatch = Math.max(1, Math.floor(train.n / bs));
    const wNumBatch = Math.max(1, Math.ceil(nW / half));
    const wLabels = Int32Array.from({ length: 2 * half }, (_, i) => (i < half ? 1 : 0));
    const wTargets = new Float32Array(2 * half * k);
    for (let i = 0; i < 2 * half; i++) wTargets[i * k + target] = 1;

    // clean batches: a reshuffled stream over the training data
    let perm = rng.permutation(train.n);
    let pos = 0;
    const xb = new Float32Array(bs * d);
    const yb = new Float32Array(bs * k);
    const cleanStep = () => {
      yb.fill(0);
      for (let i = 0; i < bs; i++) {
        if (pos === train.n) {
          perm = rng.permutation(train.n);
          pos = 0;
        }
        const r = perm[pos++];
        xb.set(train.x.subarray(r * d, (r + 1) * d), i * d);
        yb[i * k + train.y[r]] = 1;
      }
      tf.tidy(() => {
        const xt = tf.tensor(xb, [bs, ...shape]);
        const yt = tf.tensor2d(yb, [bs, k]);
        opt.minimize(() => tf.mul(net.loss(xt, yt), bs) as tf.Scalar, false, net.variables);
      });
    };
    /** watermark half-batch b: triggered source inputs, then target inputs, [2·half, ...shape] */
    const wbx = new Float32Array(2 * half * d);
    const watermarkBatch = (b: number): tf.Tensor => {
      for (let i = 0; i < half; i++) {
        const w = (b * half + i) % nW;
        wbx.set(wx.subarray(w * d, (w + 1) * d), i * d);
        const r = tgtRows[tgtOrder[(b * half + i) % tgtRows.length]];
        wbx.set(train.x.subarray(r * d, (r + 1) * d), (half + i) * d);
      }
      return tf.tensor(wbx, [2 * half, ...shape]);
    };
    const net = defenderNet(env, 'ewe', k, netRng);
    const opt = makeOptimizer({ optimizer: 'adam', lr: LR });
    let steps = 0;
    const tick = async () => {
      // a server's prepare must not starve its event loop (and a killed run must stop promptly)
      if (++steps % 20 === 0) await new Promise((r) => setImmediate(r));
    };

    try {
      // 1. plain training
      for (let e = 0; e < p.epochs; e++)
        for (let b = 0; b < numBatch; b++) {
          cleanStep();
          await tick();
        }

      const layers = tf.tidy(() => net.activations(tf.zeros([1, ...shape])).hidden.length);
      if (layers === 0) throw new UsageError(`ewe: the victim's family has no hidden layer for the SNNL to entangle`);
      const tau = new Array<number>(layers).fill(TEMP_SCALE / p.temperature);
      const sumSnnl = (x: tf.Tensor) => {
        const { hidden } = net.activations(x);
        return tf.addN(
          hidden.map((h, l) => snnlOfDistances(pairwiseDistances(h, METRIC), wLabels, TEMP_SCALE / tau[l])),
        ) as tf.Scalar;
      };

      // 2. the trigger's position: the window where ∂ΣSNNL/∂x, averaged over the source inputs, sums lowest
      const gradSum = new Float32Array(d);
      const posBatches = Math.min(wNumBatch, POSITION_BATCHES);
      for (let b = 0; b < posBatches; b++) {
        const g = tf.tidy(() => {
          const x = watermarkBatch(b);
          return tf.sum(
            tf
              .grad(sumSnnl)(x)
              .reshape([2 * half, d])
              .slice([0, 0], [half, d]),
            0,
          );
        });
        const gv = (await g.data()) as Float32Array;
        g.dispose();
        for (let j = 0; j < d; j++) gradSum[j] += gv[j];
        await tick();
      }
      let best = 0;
      let bestScore = Infinity;
      windows.forEach((w, i) => {
        let s = 0;
        for (const j of w.indices) s += gradSum[j];
        if (s < bestScore) {
          bestScore = s;
          best = i;
        }
      });
      const trigger: EweTrigger = { indices: windows[best].indices, value: box.max, at: windows[best].at };
      applyTrigger(wx, d, trigger);

      // 3. the watermarking phase
      const rounds = Math.max(1, Math.round((p['w-epochs'] * numBatch) / wNumBatch));
      const learnT = p['t-lr'] > 0 && p.factor > 0;
      for (let r = 0; r < rounds; r++)
        for (let b = 0; b < wNumBatch; b++) {
          for (let i = 0; i < p.ratio; i++) {
            cleanStep();
            await tick();
          }
          const kept: tf.Tensor2D[] = [];
          tf.tidy(() => {
            const x = watermarkBatch(b);
            const y = tf.tensor2d(wTargets, [2 * half, k]);
            opt.minimize(
              () => {
                const { hidden, logits } = net.activations(x, { inputGradient: false });
                const ce = tf.mul(softmaxCrossEntropy(logits, y), 2 * half) as tf.Scalar;
                if (p.factor === 0) return ce;
                const terms = hidden.map((h, l) => {
                  const dist = pairwiseDistances(h, METRIC);
                  // the temperatures' step needs the distances as they were in this forward pass
                  if (learnT) kept.push(tf.keep(dist));
                  return snnlOfDistances(dist, wLabels, TEMP_SCALE / tau[l]);
                });
                return tf.sub(ce, tf.mul(p.factor, tf.addN(terms))) as tf.Scalar;
              },
              false,
              net.variables,
            );
          });
          if (learnT) {
            const grads = kept.map((dist, l) =>
              tf.tidy(() =>
                tf.grad((t: tf.Tensor) => snnlOfDistances(dist, wLabels, tf.div(TEMP_SCALE, t) as tf.Scalar))(
                  tf.scalar(tau[l]),
                ),
              ),
            );
            for (let l = 0; l < grads.length; l++)
              tau[l] = Math.max(TAU_MIN, tau[l] - p['t-lr'] * (await grads[l].data())[0]);
            tf.dispose([...grads, ...kept]);
          }
          await tick();
        }

      // the verification set: held-out source inputs with the trigger, labelled `target`
      const h = env.heldOut;
      const hRows = rowsOf(h.y.subarray(0, h.n), source);
      const mx = new Float32Array(hRows.length * d);
      hRows.forEach((r, i) => mx.set(h.x.subarray(r * d, (r + 1) * d), i * d));
      applyTrigger(mx, d, trigger);
      const marks: Watermarks = {
        x: mx,
        labels: new Int32Array(hRows.length).fill(target),
        at: new Int32Array(hRows.length),
        n: hRows.length,
      };
      const accOn = (pred: Int32Array, y: ArrayLike<number>) => {
        let hits = 0;
        for (let i = 0; i < pred.length; i++) if (pred[i] === y[i]) hits++;
        return pred.length ? hits / pred.length : NaN;
      };
      const heldOutAcc = accOn(argmaxRows(await predictAll(net, h.x, h.n), k), h.y);
      const victimAcc = accOn(argmaxRows(await predictAll(env.victim, h.x, h.n), k), h.y);
      const watermarkAcc = marks.n ? accOn(argmaxRows(await predictAll(net, mx, marks.n), k), marks.labels) : NaN;
      const where =
        shape.length === 3
          ? `${p.patch}×${p.patch} at (${trigger.at.join(', ')})`
          : `features ${trigger.at[0]}…${trigger.at[0] + p.patch - 1}`;
      const note =
        `ewe: the watermarked model (class ${source} → ${target}, trigger ${where}): held-out accuracy ${heldOutAcc.toFixed(3)} (the victim's ${victimAcc.toFixed(3)}), ` +
        (marks.n
          ? `watermark success ${watermarkAcc.toFixed(3)} on ${marks.n} triggered held-out inputs of class ${source}`
          : `no held-out input of class ${source} to verify with`);
      return {
        model: net,
        source,
        target,
        trigger,
        marks,
        heldOutAcc,
        victimAcc,
        watermarkAcc,
        temperatures: tau.map((t) => TEMP_SCALE / t),
        note,
        dispose: () => net.dispose(),
      };
    } catch (e) {
      net.dispose();
      throw e;
    } finally {
      opt.dispose();
    }
  },
  create(_p, prepared: EwePrepared) {
    return {
      output(_probs: Probs, ctx: QueryCtx) {
        if (!ctx.input) throw new Error('ewe needs the query’s input (the API passes it to output stages)');
        return { probs: prepared.model.predict(ctx.input) };
      },
      /** the verification set (copies), the same for every client: the deployed model carries it */
      /** one set for every client, shared and read-only: the runner counts it once however many accounts asked */
      watermarksOf(_clientId: string): Watermarks | undefined {
        return prepared.marks.n === 0 ? undefined : prepared.marks;
      },
    };
  },
});
