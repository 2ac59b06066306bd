/**
 * The data-free game DFME and MAZE share (Truong et al. 2021, Algorithm 1; Kariyappa et al. 2021,
 * Algorithm 1): a generator G proposes queries where the student S disagrees most with the victim V,
 * and S learns to agree with V on them. Per iteration:
 *   - n_G generator steps: V is a black box, so the gradient of the disagreement L is estimated by
 *     forward differences along m random unit directions u_j (DFME eq. 5; MAZE eq. 6):
 *     ∇L ≈ (d/m) Σ_j [L(a + εu_j) − L(a)]/ε · u_j, taken in G's pre-activation a as MAZE's code does
 *     (so no query leaves the domain box), and G ascends it by the chain rule (B(m + 1) queries);
 *   - n_S student steps on fresh samples of G, each labelled by V (B queries each; MAZE's first one
 *     reuses the generator step's points and answers, free);
 *   - MAZE's experience replay: n_R more student steps on batches drawn from every earlier query.
 * The disagreement is DFME's ℓ1 between logits (v = log p − mean_k log p recovered from the
 * probabilities, §3.4; ℓ1 rather than KL, whose gradient vanishes as S nears V) or MAZE's
 * KL(V ‖ S) between probabilities.
 * Deviations, for a CPU and every victim shape: G is an MLP (../models/generator.ts); the student
 * trains by Adam (the papers: SGD at 0.1 with a step or cosine schedule); probabilities are floored
 * at 1e-30 before a log; the replay memory keeps a seeded uniform sample of `memory` queries
 * (MAZE keeps them all). The learning curve is one pass, the student copied at each checkpoint, the
 * iteration before a checkpoint shrunk to land on it exactly.
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import { Generator } from '../models/generator.js';
import { Net } from '../models/net.js';
import { makeOptimizer } from '../models/optimizer.js';
import type { Params, Schema } from '../params.js';
import type { PredictionApi } from '../api/types.js';
import { QueryRefusedError } from '../errors.js';
import { newSurrogate, SURROGATE_PARAMS } from './surrogate.js';
import {
  AttackNotApplicable,
  remaining,
  type AttackerKnowledge,
  type AttackResult,
  type CurvePoint,
  type RunOptions,
} from './types.js';

/** The defaults that tell the two papers apart. */
export interface DataFreeDefaults {
  batch: number;
  directions: number;
  sSteps: number;
  replay: number;
  loss: 'l1' | 'kl';
  paper: string;
}

/** The data-free attacks' parameters, with one paper's defaults. */
export function dataFreeParams(def: DataFreeDefaults) {
  return {
    arch: SURROGATE_PARAMS.arch,
    lr: { type: 'number', min: 0, default: 1e-3, help: "the student's Adam learning rate" },
    'g-lr': { type: 'number', min: 0, default: 1e-4, help: "the generator's Adam learning rate (both papers: 1e-4)" },
    batch: {
      type: 'int',
      min: 1,
      default: def.batch,
      help: `generated queries per step, B (${def.paper}: ${def.batch})`,
    },
    directions: {
      type: 'int',
      min: 1,
      default: def.directions,
      help: `random directions m per zeroth-order gradient estimate (${def.paper}: ${def.directions})`,
    },
    epsilon: { type: 'number', min: 1e-9, default: 1e-3, help: 'forward-difference step ε (both papers: 1e-3)' },
    'g-steps': { type: 'int', min: 0, default: 1, help: 'generator steps per iteration, n_G (both papers: 1)' },
    's-steps': {
      type: 'int',
      min: 1,
      default: def.sSteps,
      help: `student steps per iteration, n_S (${def.paper}: ${def.sSteps})`,
    },
    replay: {
      type: 'int',
      min: 0,
      default: def.replay,
      help: `experience-replay student steps per iteration on earlier queries, n_R (MAZE: 10; DFME has none)`,
    },
    memory: {
      type: 'int',
      min: 1,
      default: 20000,
      help: 'queries the replay memory keeps, a seeded uniform sample (MAZE keeps every one)',
    },
    loss: {
      type: 'string',
      choices: ['l1', 'kl'] as const,
      default: def.loss,
      help: 'the disagreement: l1 between recovered logits (DFME) or KL(victim ‖ student) between probabilities (MAZE)',
    },
    latent: { type: 'int', min: 1, default: 100, help: "the generator's latent size (both papers: 100 or 256)" },
    hidden: {
      type: 'int-list',
      min: 1,
      default: [256, 512],
      help: "the generator's hidden layer sizes, e.g. hidden=256,512",
    },
  } as const satisfies Schema;
}

export type DataFreeParams = Params<ReturnType<typeof dataFreeParams>>;

/** log-probability floor: a probability the victim rounds to 0 still has a finite logit */
const FLOOR = 1e-30;
/** rows per API call */
const CHUNK = 256;

function centred(z: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.sub(z, tf.mean(z, 1, true)) as tf.Tensor2D);
}

/** What the victim's answer becomes for the loss: centred logits (l1, Truong 2021 §3.4) or the probabilities (kl). */
function victimTarget(p: tf.Tensor2D, loss: 'l1' | 'kl'): tf.Tensor2D {
  return tf.tidy(() => (loss === 'kl' ? p.clone() : centred(tf.log(tf.maximum(p, FLOOR)) as tf.Tensor2D)));
}

/** per-row disagreement between the victim's targets and the student's logits: [n] */
function disagreement(v: tf.Tensor2D, s: tf.Tensor2D, loss: 'l1' | 'kl'): tf.Tensor1D {
  return tf.tidy(() => {
    if (loss === 'l1') return tf.mean(tf.abs(tf.sub(v, centred(s))), 1) as tf.Tensor1D;
    // KL(v ‖ softmax(s)) = Σ_k v_k (log v_k − log softmax(s)_k); a zero v_k adds nothing
    const logV = tf.log(tf.maximum(v, FLOOR));
    return tf.sum(tf.mul(v, tf.sub(logV, tf.logSoftmax(s))), 1) as tf.Tensor1D;
  });
}

/** The victim's targets for x (queried in chunks of CHUNK rows); the caller disposes. */
async function askVictim(api: PredictionApi, x: tf.Tensor, loss: 'l1' | 'kl', attack: string): Promise<tf.Tensor2D> {
  const n = x.shape[0];
  const parts: tf.Tensor2D[] = [];
  try {
    for (let s = 0; s < n; s += CHUNK) {
      const m = Math.min(CHUNK, n - s);
      const xs = x.slice(s, m);
      const r = await api.query(xs).finally(() => xs.dispose());
      try {
        if (!r.probs) throw new AttackNotApplicable(attack, 'the API answered without probabilities');
        parts.push(victimTarget(r.probs, loss));
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

/**
 * MAZE's experience replay: the queries asked so far and the victim's targets, up to `capacity`
 * of them kept as a uniform sample (reservoir sampling from the attack's seeded stream).
 */
class ReplayMemory {
  private readonly x: Float32Array;
  private readonly t: Float32Array;
  n = 0;
  private seen = 0;
  constructor(
    readonly capacity: number,
    private readonly d: number,
    private readonly k: number,
    private readonly rng: Rng,
  ) {
    this.x = new Float32Array(capacity * d);
    this.t = new Float32Array(capacity * k);
  }

  add(x: Float32Array, t: Float32Array, rows: number): void {
    for (let i = 0; i < rows; i++, this.seen++) {
      let slot = this.n;
      if (this.n === this.capacity) {
        slot = this.rng.int(this.seen + 1);
        if (slot >= this.capacity) continue;
      } else this.n++;
      this.x.set(x.subarray(i * this.d, (i + 1) * this.d), slot * this.d);
      this.t.set(t.subarray(i * this.k, (i + 1) * this.k), slot * this.k);
    }
  }

  /** `rows` entries drawn uniformly with replacement, as tensors [rows, ...shape] and [rows, k] */
  sample(rows: number, shape: number[]): { x: tf.Tensor; t: tf.Tensor2D } {
    const xb = new Float32Array(rows * this.d);
    const tb = new Float32Array(rows * this.k);
    for (let i = 0; i < rows; i++) {
      const r = this.rng.int(this.n);
      xb.set(this.x.subarray(r * this.d, (r + 1) * this.d), i * this.d);
      tb.set(this.t.subarray(r * this.k, (r + 1) * this.k), i * this.k);
    }
    return { x: tf.tensor(xb, [rows, ...shape]), t: tf.tensor2d(tb, [rows, this.k]) };
  }
}

/**
 * Play the game for the API's whole budget; `reuse`: the first student step of an iteration trains
 * on the generator step's points and answers (MAZE) rather than fresh ones (DFME).
 */
export async function runDataFree(
  attack: string,
  p: DataFreeParams,
  reuse: boolean,
  api: PredictionApi,
  know: AttackerKnowledge,
  rng: Rng,
  opts: RunOptions,
): Promise<AttackResult> {
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  const k = know.numClasses;
  const m = p.directions;
  const budget = remaining(api);
  const checkpoints = [...new Set([...(opts.checkpoints ?? []), budget])]
    .filter((c) => c > 0 && c <= budget)
    .sort((a, b) => a - b);
  const genRng = rng.fork();
  const studentRng = rng.fork();
  const sampleRng = rng.fork();
  const replayRng = rng.fork();
  const gen = new Generator(p.latent, p.hidden, d, genRng);
  const student = newSurrogate(know, { arch: p.arch }, studentRng);
  const gOpt = makeOptimizer({ optimizer: 'adam', lr: p['g-lr'] });
  const sOpt = makeOptimizer({ optimizer: 'adam', lr: p.lr });
  const memory = p.replay > 0 ? new ReplayMemory(p.memory, d, k, replayRng) : undefined;
  const shape = (n: number) => [n, ...know.inputShape];
  const q0 = api.ledger.queries;
  const api0 = api.ledger.apiSeconds;
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  const curve: CurvePoint[] = [];
  const stats = { iterations: 0, gSteps: 0, sSteps: 0, rSteps: 0, gLoss: NaN, sLoss: NaN };
  let next = 0; // index of the next checkpoint
  const used = () => api.ledger.queries - q0;
  const left = () => checkpoints[next] - used();
  let refused: string | undefined; // the server's refusal, when it stopped answering before our ledger's budget

  /** one student step on x and the victim's targets v; remember them for replay when `fresh` */
  const studentStep = async (x: tf.Tensor, v: tf.Tensor2D, fresh: boolean, report: boolean) => {
    const loss = tf.tidy(() =>
      sOpt.minimize(
        () => tf.mean(disagreement(v, student.logits(x, { inputGradient: false }), p.loss)) as tf.Scalar,
        report,
        student.variables,
      ),
    );
    if (loss) {
      stats.sLoss = (await loss.data())[0];
      loss.dispose();
    }
    if (fresh && memory) memory.add((await x.data()) as Float32Array, (await v.data()) as Float32Array, x.shape[0]);
  };

  try {
    while (next < checkpoints.length) {
      // the generator step's points and answers, kept for MAZE's first student step
      let kept: { x: tf.Tensor; v: tf.Tensor2D } | undefined;
      // generator steps: ascend the estimated disagreement
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
          v = await askVictim(api, xs, p.loss, attack);
          const vT = v;
          grad = tf.tidy(() => {
            const loss = disagreement(vT, student.logits(xs, { inputGradient: false }), p.loss); // [(m+1)·B]
            const base = loss.slice(0, B);
            const diffs = tf.div(tf.sub(loss.slice(B).reshape([m, B]), base.reshape([1, B])), p.epsilon); // [m, B]
            stats.gLoss = (base.mean().dataSync() as Float32Array)[0];
            // Truong 2021 eq. 5: ĝ = (d/m) Σ_j Δ_j u_j
            return tf.mul(tf.sum(tf.mul(diffs.reshape([m, B, 1]), uT.reshape([m, B, d])), 0), d / m) as tf.Tensor2D;
          });
          const gr = grad;
          // the chain rule through G: minimise −⟨a, ĝ⟩/B with ĝ held constant, i.e. ascend L
          tf.tidy(() => {
            gOpt.minimize(
              () => tf.neg(tf.div(tf.sum(tf.mul(gen.preactivation(z), gr)), B)) as tf.Scalar,
              false,
              gen.variables,
            );
          });
          if (reuse && g === p['g-steps'] - 1) {
            tf.dispose(kept ? [kept.x, kept.v] : []);
            kept = { x: xs.slice(0, B), v: vT.slice(0, B) };
          }
        } finally {
          tf.dispose([z, xs, uT, v ?? [], grad ?? []]);
        }
        stats.gSteps++;
      }
      // student steps on samples labelled by the victim
      for (let s = 0; s < p['s-steps']; s++) {
        const report = s === p['s-steps'] - 1;
        if (s === 0 && kept) {
          const { x, v } = kept;
          kept = undefined;
          try {
            await studentStep(x, v, true, report);
          } finally {
            tf.dispose([x, v]);
          }
          stats.sSteps++;
          continue;
        }
        const B = Math.min(p.batch, left());
        if (B < 1) break;
        const z = gen.sampleLatent(B, sampleRng);
        const x = tf.tidy(() => Generator.squash(gen.preactivation(z), know.domain).reshape(shape(B)));
        z.dispose();
        let v: tf.Tensor2D | undefined;
        try {
          v = await askVictim(api, x, p.loss, attack);
          await studentStep(x, v, true, report);
        } finally {
          tf.dispose([x, v ?? []]);
        }
        stats.sSteps++;
      }
      if (kept) tf.dispose([kept.x, kept.v]);
      // MAZE's experience replay on earlier queries (no query spent)
      for (let r = 0; memory && r < p.replay && memory.n > 0; r++) {
        const { x, t } = memory.sample(Math.min(p.batch, memory.n), know.inputShape);
        try {
          await studentStep(x, t, false, false);
        } finally {
          tf.dispose([x, t]);
        }
        stats.rSteps++;
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
    if (e instanceof QueryRefusedError) {
      // keep the student trained so far, for every checkpoint not reached
      refused = `the API stopped answering after ${used()} of ${budget} queries (${e.message}): the student so far is the surrogate for the budgets not reached`;
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
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');
  const notes = [
    `throughput: ${used()} queries at ${rate}/s (${stats.iterations} iterations: ${stats.gSteps} generator, ${stats.sSteps} student${memory ? ` and ${stats.rSteps} replay` : ''} steps); last disagreement (${p.loss}) ${fmt(stats.gLoss)} on the generator's batch, ${fmt(stats.sLoss)} on the student's`,
  ];
  if (refused) notes.push(refused);
  const requested = opts.checkpoints ?? [budget];
  const points = requested.map((b) => {
    const pt = curve.find((c) => c.budget === Math.min(b, budget))!;
    return { ...pt, budget: b };
  });
  return { surrogate: student, queries: used(), budgetExhausted: refused !== undefined, notes, curve: points };
}
