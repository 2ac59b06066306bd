/**
 * SEAT (Zhang, Chen, Jing, Dou, Wang, AISec 2021, "SEAT: Similarity Encoder by Adversarial Training
 * for Detecting Model Extraction Attack Queries"). Extraction attacks that craft their queries (the
 * Jacobian augmentation of JBDA, a generator's samples) send many near-duplicates of earlier queries;
 * honest users rarely do. So:
 *   - a similarity encoder f is trained in `prepare` so that a query and its adversarial perturbations
 *     map close together and different natural inputs far apart (§3.2): for a training input x₀, the
 *     positive x₊ is a PGD perturbation of x₀ within ε (L∞) that pushes f(x₊) away from f(x₀), the
 *     negative x₋ is another training input, and the loss is
 *         ‖f(x₀) − f(x₊)‖² + max(0, m² − ‖f(x₀) − f(x₋)‖²)       (mean squared over the encoding)
 *     with m² = 10 (the unofficial reference code's m = √10);
 *   - per account, a query whose encoding lies within δ (mean squared distance) of one of the
 *     account's earlier queries is a similar pair; past N similar pairs the account is alarmed
 *     (§3.3; the reference code: δ = 0.1, N = 200) and refused from then on.
 * Deviations: the encoder is trained from scratch by mse (the victim's family, or the image CNN /
 * tabular MLP, with a `dim`-unit last layer) rather than fine-tuned from the victim's feature
 * extractor; the negative is a different training input (the paper's statement) rather than a
 * random transformation of x₀ (the unofficial code).
 * Bounded state: at most `clients` accounts (least recently seen evicted first, starting afresh), each
 * keeping its last `history` encodings.
 */
import { tf } from '../compute/backend.js';
import type { Alarm, DefenderEnv, QueryCtx } from '../api/types.js';
import type { Tensor } from '@tensorflow/tfjs';
import type { Net } from '../models/net.js';
import { makeOptimizer } from '../models/optimizer.js';
import { ClientStates } from './client-states.js';
import { defenderNet } from './defender-net.js';
import { defineDefense } from './define.js';

/** the negative pairs' margin m² (the reference: m = √10) */
const MARGIN_SQ = 10;
/** the encoder's training batch */
const BATCH = 64;

export interface SeatPrepared {
  encoder: Net;
  dim: number;
  /** mean squared encoding distance of held-out positives and of held-out negatives, for the docs and tests */
  heldOut: { positive: number; negative: number };
  /** the held-out distances beside δ, for the run's notes */
  note: string;
  dispose(): void;
}

interface Account {
  /** the last `history` encodings, a ring [history·dim] */
  enc: Float32Array;
  head: number;
  stored: number;
  pairs: number;
}

/** mean squared distance per encoding row between a and b ([n, dim] each) */
function meanSq(a: tf.Tensor, b: tf.Tensor): tf.Tensor1D {
  return tf.mean(tf.square(tf.sub(a, b)), 1) as tf.Tensor1D;
}

/**
 * PGD within the L∞ ball of radius `eps` around x₀ (clipped to the input box), ascending the
 * encoding's squared distance from f(x₀): the hardest positive near x₀ (Madry et al. 2018).
 */
function pgdPositive(
  encoder: Net,
  x0: tf.Tensor,
  anchor: tf.Tensor,
  eps: number,
  steps: number,
  box: { min: number; max: number },
  start: tf.Tensor,
): tf.Tensor {
  return tf.tidy(() => {
    const alpha = (2.5 * eps) / steps;
    let x = tf.clipByValue(tf.add(x0, start), box.min, box.max);
    const g = tf.grad((xi: tf.Tensor) => tf.sum(tf.square(tf.sub(encoder.logits(xi), anchor))));
    for (let s = 0; s < steps; s++) {
      const step = tf.mul(tf.sign(g(x)), alpha);
      const moved = tf.add(x, step);
      x = tf.clipByValue(tf.minimum(tf.maximum(moved, tf.sub(x0, eps)), tf.add(x0, eps)), box.min, box.max);
    }
    return x;
  });
}

export const seat = defineDefense({
  name: 'seat',
  describe:
    'SEAT: a similarity encoder trained adversarially; alarm an account past N queries within δ of one of its earlier queries (Zhang 2021)',
  params: {
    delta: {
      type: 'number',
      min: 0,
      max: MARGIN_SQ,
      default: 0.1,
      help: `similar-pair threshold δ on the encodings' mean squared distance (negatives are trained ≥ ${MARGIN_SQ} apart; the reference: 0.1)`,
    },
    pairs: {
      type: 'int',
      min: 1,
      default: 200,
      help: 'alarm an account past this many similar pairs N (the reference: 200)',
    },
    eps: {
      type: 'number',
      min: 0,
      max: 1,
      default: 0.1,
      help: "the positives' L∞ radius, a fraction of the input box's width (JBDA's augmentation step is 0.1)",
    },
    'pgd-steps': {
      type: 'int',
      min: 1,
      max: 100,
      default: 5,
      help: "PGD steps per positive during the encoder's training",
    },
    steps: { type: 'int', min: 1, default: 400, help: `encoder training steps of ${BATCH} inputs each` },
    dim: { type: 'int', min: 1, max: 1024, default: 32, help: 'the encoding’s size' },
    clients: {
      type: 'int',
      min: 1,
      max: 1_000_000,
      default: 64,
      help: 'accounts tracked at once; the least recently seen is evicted first and starts afresh',
    },
    history: {
      type: 'int',
      min: 1,
      max: 1_000_000,
      default: 5000,
      help: 'encodings kept per account, the newest (memory: clients × history × dim × 4 bytes at most)',
    },
  },
  stages: ['monitor'],
  async prepare(p, env: DefenderEnv): Promise<SeatPrepared> {
    const train = env.train;
    const shape = env.victim.inputShape;
    const d = shape.reduce((a, b) => a * b, 1);
    const box = env.domain ?? { min: 0, max: 1 };
    const eps = p.eps * (box.max - box.min);
    const rng = env.rng.fork();
    const encoder = defenderNet(env, 'seat', p.dim, env.rng.fork());
    const opt = makeOptimizer({ optimizer: 'adam', lr: 1e-3 });
    const batch = (idx: number[]): tf.Tensor => {
      const x = new Float32Array(idx.length * d);
      idx.forEach((r, i) => x.set(train.x.subarray(r * d, (r + 1) * d), i * d));
      return tf.tensor(x, [idx.length, ...shape]);
    };
    /** one anchor / positive / negative batch: anchors and negatives distinct rows */
    const triplet = (): { x0: tf.Tensor; pos: tf.Tensor; neg: tf.Tensor } => {
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < BATCH; i++) {
        const r = rng.int(train.n);
        a.push(r);
        b.push((r + 1 + rng.int(train.n - 1)) % train.n);
      }
      return tf.tidy(() => {
        const x0 = batch(a);
        const start = tf.tensor(rng.fillUniform(new Float32Array(BATCH * d), -eps, eps), x0.shape);
        const anchor = encoder.logits(x0);
        return { x0, pos: pgdPositive(encoder, x0, anchor, eps, p['pgd-steps'], box, start), neg: batch(b) };
      });
    };
    try {
      for (let s = 0; s < p.steps; s++) {
        const { x0, pos, neg } = triplet();
        opt.minimize(
          () =>
            tf.tidy(() => {
              const f0 = encoder.logits(x0);
              const close = meanSq(f0, encoder.logits(pos));
              const far = tf.relu(tf.sub(MARGIN_SQ, meanSq(f0, encoder.logits(neg))));
              return tf.mean(tf.add(close, far)) as tf.Scalar;
            }),
          false,
          encoder.variables,
        );
        tf.dispose([x0, pos, neg]);
        // a server's prepare must not starve its event loop (and a killed run must stop promptly)
        if (s % 20 === 19) await new Promise((r) => setImmediate(r));
      }
      // held out: distances the monitor will compare with δ
      const h = env.heldOut;
      const heldOut = { positive: 0, negative: 0 };
      if (h.n >= 2) {
        const m = Math.min(256, h.n);
        const rows = Array.from({ length: m }, (_, i) => i);
        const hx = new Float32Array(m * d);
        rows.forEach((r) => hx.set(h.x.subarray(r * d, (r + 1) * d), r * d));
        const [pos, neg] = tf.tidy(() => {
          const x0 = tf.tensor(hx, [m, ...shape]);
          const f0 = encoder.logits(x0);
          const start = tf.tensor(rng.fillUniform(new Float32Array(m * d), -eps, eps), x0.shape);
          const xp = pgdPositive(encoder, x0, f0, eps, p['pgd-steps'], box, start);
          const xn = tf.concat([x0.slice(1), x0.slice(0, 1)]);
          return [tf.mean(meanSq(f0, encoder.logits(xp))), tf.mean(meanSq(f0, encoder.logits(xn)))];
        });
        heldOut.positive = (await pos.data())[0];
        heldOut.negative = (await neg.data())[0];
        tf.dispose([pos, neg]);
      }
      opt.dispose();
      const note = `seat: held-out encodings' mean squared distance: ${heldOut.positive.toFixed(3)} to their PGD positives, ${heldOut.negative.toFixed(3)} to other inputs (δ = ${p.delta})`;
      return { encoder, dim: p.dim, heldOut, note, dispose: () => encoder.dispose() };
    } catch (e) {
      opt.dispose();
      encoder.dispose();
      throw e;
    }
  },
  create(p, prepared: SeatPrepared) {
    const dim = prepared.dim;
    const states = new ClientStates<Account>(p.clients);
    const fresh = (): Account => ({
      enc: new Float32Array(Math.min(p.history, 64) * dim),
      head: 0,
      stored: 0,
      pairs: 0,
    });
    /** append one encoding, growing the ring up to `history` rows, then overwriting the oldest */
    const remember = (a: Account, e: Float32Array): void => {
      const rows = a.enc.length / dim;
      if (a.stored === rows && rows < p.history) {
        const grown = new Float32Array(Math.min(p.history, rows * 2) * dim);
        grown.set(a.enc);
        a.enc = grown;
        a.head = rows;
      }
      a.enc.set(e, a.head * dim);
      a.head = (a.head + 1) % (a.enc.length / dim);
      a.stored = Math.min(a.stored + 1, p.history);
    };
    const limit = p.delta * dim; // δ on the mean squared distance, as a sum of squares
    const similar = (a: Account, e: Float32Array): boolean => {
      for (let r = 0; r < a.stored; r++) {
        const o = r * dim;
        let s = 0;
        for (let j = 0; j < dim && s < limit; j++) {
          const t = e[j] - a.enc[o + j];
          s += t * t;
        }
        if (s < limit) return true;
      }
      return false;
    };
    return {
      monitor(x: Tensor, ctx: QueryCtx): Alarm | undefined {
        const n = x.shape[0];
        const t = prepared.encoder.logits(x);
        const enc = t.dataSync() as Float32Array;
        t.dispose();
        const a = states.use(ctx.clientId, fresh);
        for (let i = 0; i < n; i++) {
          const e = enc.subarray(i * dim, (i + 1) * dim);
          if (similar(a, e)) a.pairs++;
          remember(a, e);
          // the reference alarms once the count exceeds N
          if (a.pairs > p.pairs)
            return {
              reason: `${a.pairs} queries within δ = ${p.delta} of an earlier query of this account (N = ${p.pairs})`,
              row: i,
            };
        }
        return undefined;
      },
      /** accounts tracked now (at most `clients`) */
      trackedClients: () => states.size,
      /** encodings kept for an account */
      storedOf: (id: string) => states.peek(id)?.stored ?? 0,
      /** similar pairs counted for an account */
      pairsOf: (id: string) => states.peek(id)?.pairs ?? 0,
    };
  },
});
