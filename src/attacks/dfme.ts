/**
 * Data-Free Model Extraction (Truong, Maini, Walls, Papernot, CVPR 2021; reference code
 * github.com/cake-lab/datafree-model-extraction). The attacker has no data at all: a generator G
 * and the student S play a game. G proposes queries where S disagrees most with the victim V; S
 * learns to agree with V on them. The disagreement is the ℓ1 distance between logits (§3.2, eq. 3:
 * L = Σ_i |v_i − s_i|; ℓ1 rather than KL, whose gradient vanishes as S nears V). Per iteration
 * (Algorithm 1):
 *   - n_G generator steps: V is a black box, so ∇ₓL is estimated by forward differences along m
 *     random unit directions u_j (§3.3, eq. 5): ∇ₓL ≈ (d/m) Σ_j [L(x + εu_j) − L(x)]/ε · u_j, and G
 *     ascends it by the chain rule (B(m + 1) queries);
 *   - n_S student steps on fresh samples of G, each labelled by V (B queries each).
 * The victim's logits are recovered from its probabilities (§3.4): v = log p − mean_k log p, the
 * logits up to the constant softmax ignores (the student's are centred the same way).
 * Deviations, for a CPU and for every victim shape: G is an MLP (../models/generator.ts) and the
 * estimate is taken in its pre-activation, so no query leaves the domain box; the student trains by
 * Adam (the paper: SGD at 0.1 with a step schedule); probabilities are floored at 1e-30 before the log.
 * The paper spends millions of queries (2M on SVHN, 20M on CIFAR-10); the learning curve is one
 * pass, the student copied at each checkpoint, the iteration before a checkpoint shrunk to land on it.
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import { Generator } from '../models/generator.js';
import { Net } from '../models/net.js';
import { makeOptimizer } from '../models/optimizer.js';
import type { Schema } from '../params.js';
import type { PredictionApi } from '../api/types.js';
import { BudgetExhaustedError } from '../errors.js';
import { defineAttack } from './define.js';
import { newSurrogate, SURROGATE_PARAMS } from './surrogate.js';
import { AttackNotApplicable, remaining, type CurvePoint } from './types.js';

const PARAMS = {
  arch: SURROGATE_PARAMS.arch,
  lr: { type: 'number', min: 0, default: 1e-3, help: "the student's Adam learning rate" },
  'g-lr': { type: 'number', min: 0, default: 1e-4, help: "the generator's Adam learning rate (the paper's 1e-4)" },
  batch: { type: 'int', min: 1, default: 256, help: 'generated queries per step, B (the paper: 256)' },
  directions: {
    type: 'int',
    min: 1,
    default: 1,
    help: 'random directions m per zeroth-order gradient estimate (the paper: 1)',
  },
  epsilon: { type: 'number', min: 1e-9, default: 1e-3, help: 'forward-difference step ε (the paper: 1e-3)' },
  'g-steps': { type: 'int', min: 0, default: 1, help: 'generator steps per iteration, n_G (the paper: 1)' },
  's-steps': { type: 'int', min: 1, default: 5, help: 'student steps per iteration, n_S (the paper: 5)' },
  latent: { type: 'int', min: 1, default: 100, help: "the generator's latent size" },
  hidden: {
    type: 'int-list',
    min: 1,
    default: [256, 512],
    help: "the generator's hidden layer sizes, e.g. hidden=256,512",
  },
} as const satisfies Schema;

/** log-probability floor: a probability the victim rounds to 0 still has a finite logit */
const FLOOR = 1e-30;
/** rows per API call */
const CHUNK = 256;

/** centred logits from probabilities (Truong 2021 §3.4): log p − mean_k log p */
function centredLogits(p: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const l = tf.log(tf.maximum(p, FLOOR));
    return tf.sub(l, tf.mean(l, 1, true)) as tf.Tensor2D;
  });
}

function centred(z: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.sub(z, tf.mean(z, 1, true)) as tf.Tensor2D);
}

/** per-row ℓ1 between two centred logit matrices, mean over classes: [n] */
function rowL1(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(a, b)), 1) as tf.Tensor1D);
}

/** The victim's centred logits for x (query in chunks of CHUNK rows); the caller disposes. */
async function victimLogits(api: PredictionApi, x: tf.Tensor): Promise<tf.Tensor2D> {
  const n = x.shape[0];
  const parts: tf.Tensor2D[] = [];
  try {
    for (let s = 0; s < n; s += CHUNK) {
      const m = Math.min(CHUNK, n - s);
      const xs = x.slice(s, m);
      const r = await api.query(xs).finally(() => xs.dispose());
      try {
        if (!r.probs) throw new AttackNotApplicable('dfme', 'the API answered without probabilities');
        parts.push(centredLogits(r.probs));
      } finally {
        tf.dispose([r.probs ?? [], r.labels ?? []]);
      }
    }
    return parts.length === 1 ? parts.splice(0)[0] : (tf.concat(parts) as tf.Tensor2D);
  } finally {
    tf.dispose(parts);
  }
}

/** A copy of a student, for one point of the learning curve. */
function snapshot(net: Net): Net {
  return new Net(
    net.config,
    net.variables.map((v) => Float32Array.from(v.dataSync() as Float32Array)),
  );
}

export const dfme = defineAttack({
  name: 'dfme',
  describe:
    'Data-free model extraction: a generator proposes queries where the student disagrees, gradients estimated through the API (Truong 2021)',
  params: PARAMS,
  learningCurve: true,
  requires: { reveals: 'probs' },
  async run(p, api, know, rng, opts) {
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const m = p.directions;
    const budget = remaining(api);
    const checkpoints = [...new Set([...(opts.checkpoints ?? []), budget])]
      .filter((c) => c > 0 && c <= budget)
      .sort((a, b) => a - b);
    const genRng = rng.fork();
    const studentRng = rng.fork();
    const sampleRng = rng.fork();
    const gen = new Generator(p.latent, p.hidden, d, genRng);
    const student = newSurrogate(know, { arch: p.arch }, studentRng);
    const gOpt = makeOptimizer({ optimizer: 'adam', lr: p['g-lr'] });
    const sOpt = makeOptimizer({ optimizer: 'adam', lr: p.lr });
    const shape = (n: number) => [n, ...know.inputShape];
    const q0 = api.ledger.queries;
    const api0 = api.ledger.apiSeconds;
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    const curve: CurvePoint[] = [];
    const stats = { iterations: 0, gSteps: 0, sSteps: 0, gLoss: 0, sLoss: NaN };
    let next = 0; // index of the next checkpoint
    const used = () => api.ledger.queries - q0;
    const left = () => checkpoints[next] - used();
    let refused: string | undefined; // the server's refusal, when it stopped answering before our ledger's budget
    try {
      while (next < checkpoints.length) {
        // generator steps: ascend the estimated disagreement (Algorithm 1, lines 4–9)
        for (let g = 0; g < p['g-steps']; g++) {
          const B = Math.min(p.batch, Math.floor(left() / (m + 1)));
          if (B < 1) break;
          const z = gen.sampleLatent(B, sampleRng);
          const u = new Float32Array(m * B * d);
          for (let i = 0; i < u.length; i++) u[i] = sampleRng.normal();
          const a = gen.preactivation(z);
          // rows: the B points, then m·B perturbed copies a + ε·u (u unit rows)
          const { xs, uT } = tf.tidy(() => {
            const raw = tf.tensor2d(u, [m * B, d]);
            const uT = tf.div(raw, tf.norm(raw, 'euclidean', 1, true)) as tf.Tensor2D;
            const all = tf.concat([a, tf.add(tf.tile(a, [m, 1]), tf.mul(uT, p.epsilon))]);
            return { xs: Generator.squash(all, know.domain).reshape(shape((m + 1) * B)), uT };
          });
          a.dispose();
          let v: tf.Tensor2D | undefined;
          let grad: tf.Tensor2D | undefined;
          try {
            v = await victimLogits(api, xs);
            const vT = v;
            grad = tf.tidy(() => {
              const loss = rowL1(vT, centred(student.logits(xs, { inputGradient: false }))); // [(m+1)·B]
              const base = loss.slice(0, B);
              const diffs = tf.div(tf.sub(loss.slice(B).reshape([m, B]), base.reshape([1, B])), p.epsilon); // [m, B]
              stats.gLoss = (base.mean().dataSync() as Float32Array)[0];
              // Truong 2021 eq. 5: ĝ = (d/m) Σ_j Δ_j u_j
              return tf.mul(tf.sum(tf.mul(diffs.reshape([m, B, 1]), uT.reshape([m, B, d])), 0), d / m) as tf.Tensor2D;
            });
            const g = grad;
            // the chain rule through G: minimise −⟨a, ĝ⟩/B with ĝ held constant, i.e. ascend L
            tf.tidy(() => {
              gOpt.minimize(
                () => tf.neg(tf.div(tf.sum(tf.mul(gen.preactivation(z), g)), B)) as tf.Scalar,
                false,
                gen.variables,
              );
            });
          } finally {
            tf.dispose([z, xs, uT, v ?? [], grad ?? []]);
          }
          stats.gSteps++;
        }
        // student steps on fresh samples labelled by the victim (lines 10–14)
        for (let s = 0; s < p['s-steps']; s++) {
          const B = Math.min(p.batch, left());
          if (B < 1) break;
          const z = gen.sampleLatent(B, sampleRng);
          const x = tf.tidy(() => Generator.squash(gen.preactivation(z), know.domain).reshape(shape(B)));
          z.dispose();
          let v: tf.Tensor2D | undefined;
          try {
            v = await victimLogits(api, x);
            const vT = v;
            const loss = tf.tidy(() =>
              sOpt.minimize(
                () => tf.mean(rowL1(vT, centred(student.logits(x, { inputGradient: false })))) as tf.Scalar,
                s === p['s-steps'] - 1,
                student.variables,
              ),
            );
            if (loss) {
              stats.sLoss = (loss.dataSync() as Float32Array)[0];
              loss.dispose();
            }
          } finally {
            tf.dispose([x, v ?? []]);
          }
          stats.sSteps++;
        }
        stats.iterations++;
        opts.onProgress?.({
          phase: 'query',
          done: used(),
          total: budget,
          label: `iteration ${stats.iterations}, disagreement ${stats.gLoss.toFixed(3)}`,
        });
        while (next < checkpoints.length && left() <= 0) {
          const c = process.cpuUsage(cpu0);
          const seconds = Math.max(0, (c.user + c.system) / 1e6 - (api.ledger.apiSeconds - api0));
          const last = next === checkpoints.length - 1;
          curve.push({
            budget: checkpoints[next],
            queries: used(),
            surrogate: last ? student : snapshot(student),
            attackerSeconds: seconds,
          });
          next++;
        }
      }
    } catch (e) {
      if (e instanceof BudgetExhaustedError) {
        // keep the student trained so far, for every checkpoint not reached
        refused = `budget exhausted after ${used()} of ${budget} queries (${e.message}): the student so far is the surrogate for the budgets not reached`;
        for (; next < checkpoints.length; next++)
          curve.push({
            budget: checkpoints[next],
            queries: used(),
            surrogate: next === checkpoints.length - 1 ? student : snapshot(student),
            attackerSeconds: 0,
          });
      } else {
        for (const pt of curve) pt.surrogate.dispose();
        student.dispose();
        throw e;
      }
    } finally {
      gen.dispose();
      gOpt.dispose();
      sOpt.dispose();
    }
    const wall = (performance.now() - w0) / 1000;
    const rate = wall > 0 ? Math.round(used() / wall) : 0;
    const notes = [
      `throughput: ${used()} queries at ${rate}/s (${stats.iterations} iterations: ${stats.gSteps} generator and ${stats.sSteps} student steps); last disagreement ℓ1 ${stats.gLoss.toFixed(3)} on the generator's batch, ${Number.isFinite(stats.sLoss) ? stats.sLoss.toFixed(3) : '–'} on the student's`,
    ];
    if (refused) notes.push(refused);
    const requested = opts.checkpoints ?? [budget];
    const points = requested.map((b) => {
      const pt = curve.find((c) => c.budget === Math.min(b, budget))!;
      return { ...pt, budget: b };
    });
    return { surrogate: student, queries: used(), budgetExhausted: refused !== undefined, notes, curve: points };
  },
});
