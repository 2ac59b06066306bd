/**
 * A learned restorer (the recovery half of D-DAE: Chen, Guo, Wang, Wang, Xu, Zhang, IEEE S&P 2023,
 * "D-DAE: Defense-Penetrating Model Extraction Attacks", §4.3): the attacker knows which defense the
 * API runs (here: is told, `adapt-defense=[spec]`; D-DAE detects it with a classifier) and learns to
 * undo it from shadow victims of its own.
 *   1. Shadow victims: networks of the attacker's architecture trained on its own queries, labelled
 *      by the API's top-1 (D-DAE trains them on a small labelled in-distribution set; the top-1 of an
 *      argmax-preserving defense is the victim's own label, and costs no query).
 *   2. Each shadow answers the same queries clean (y) and behind the attacker's copy of the defense
 *      (ỹ, the defense prepared from the shadow as a defender prepares it from its victim).
 *   3. A restorer R, a small MLP, learns ỹ → y on those pairs (cross-entropy to the clean answer;
 *      D-DAE fits a generative model of the clean posterior, which its recovery then samples).
 *   4. The API's answers are replaced by R(ỹ) before the surrogate trains on them.
 * Against rounding or noise this is "fit the expectation": R learns E[y | ỹ] for that defense.
 */
import { tf } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import type { Defense, DefenderEnv } from '../api/types.js';
import { LocalPredictionApi } from '../api/local-api.js';
import { UsageError } from '../errors.js';
import { Net } from '../models/net.js';
import { argmaxRows, fit, predictAll } from '../models/train.js';
import { parseDefenseSpec } from '../defenses/registry.js';
import type { Prepared } from '../defenses/define.js';
import { splitTopLevel } from '../params.js';
import { newSurrogate } from './surrogate.js';
import type { AttackerKnowledge } from './types.js';

/** probabilities below this are the same to the restorer's log feature */
const FLOOR = 1e-6;

/**
 * Why a defense stack cannot be restored, or undefined when it can: it must parse, and its answers
 * must carry probabilities (a labels-only defense leaves nothing to restore).
 */
export function checkRestorable(spec: string): string | undefined {
  try {
    for (const part of splitTopLevel(spec, '+')) {
      const { unit } = parseDefenseSpec(part.trim());
      if (unit.reveals === 'labels')
        return `adapt=restorer restores probability answers, and ${unit.name} reveals labels only`;
    }
    return undefined;
  } catch (e) {
    return `adapt-defense=${spec}: ${(e as Error).message}`;
  }
}

/** the restorer's input for one answer row: the probabilities and their scaled logs */
function features(rows: Float32Array, k: number): Float32Array {
  const n = rows.length / k;
  const f = new Float32Array(n * 2 * k);
  const scale = -Math.log(FLOOR);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < k; j++) {
      const v = rows[i * k + j];
      f[i * 2 * k + j] = v;
      f[i * 2 * k + k + j] = Math.log(Math.max(v, FLOOR)) / scale;
    }
  return f;
}

function meanL1(a: Float32Array, b: Float32Array, k: number): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / (a.length / k);
}

export interface RestorerOptions {
  /** the attacker's queries [n·d] and the API's probability answers to them [n·k] */
  x: Float32Array;
  answers: Float32Array;
  n: number;
  know: AttackerKnowledge;
  /** the defense stack the API is believed to run, as `mse --defense` takes it */
  defense: string;
  shadows: number;
  /** inputs the shadows answer, for the restorer's training pairs: the queries, then pool inputs up to this many */
  pairs: number;
  /** the shadows' architecture and training (the surrogate's) */
  arch: string;
  epochs: number;
  batch: number;
  lr: number;
  rng: Rng;
}

export class Restorer {
  /** what training found, for the attack's notes */
  summary = '';

  private constructor(
    private readonly net: Net,
    readonly k: number,
  ) {}

  static async train(o: RestorerOptions): Promise<Restorer> {
    const k = o.know.numClasses;
    const labels = argmaxRows(o.answers, k);
    const stack = splitTopLevel(o.defense, '+').map((s) => parseDefenseSpec(s.trim()));
    // the shadows answer the queries and, free of charge, more of the attacker's own pool
    const d = o.x.length / o.n;
    const pool = o.know.pool;
    const extra = pool && pool.x.length === pool.n * d ? Math.max(0, Math.min(pool.n, o.pairs - o.n)) : 0;
    const px = new Float32Array((o.n + extra) * d);
    px.set(o.x);
    if (extra > 0) {
      const order = o.rng.fork().permutation(pool!.n);
      for (let i = 0; i < extra; i++) px.set(pool!.x.subarray(order[i] * d, (order[i] + 1) * d), (o.n + i) * d);
    }
    const np = o.n + extra;
    const clean: Float32Array[] = [];
    const defended: Float32Array[] = [];
    for (let s = 0; s < o.shadows; s++) {
      const shadow = newSurrogate(o.know, { arch: o.arch }, o.rng.fork());
      const prepared: Prepared[] = [];
      try {
        await fit(
          shadow,
          { x: o.x, y: labels, n: o.n },
          { epochs: o.epochs, batchSize: o.batch, optimizer: 'adam', lr: o.lr, rng: o.rng.fork() },
        );
        clean.push(await predictAll(shadow, px, np));
        // the defense as its defender would set it up around this shadow
        const split = { x: o.x, y: labels, n: o.n };
        const env: DefenderEnv = { victim: shadow, train: split, heldOut: split, rng: o.rng.fork() };
        const defenses: Defense[] = [];
        for (const { unit, values } of stack) {
          const p = await unit.prepare(values, env);
          prepared.push(p);
          defenses.push(unit.create(values, p));
        }
        const api = new LocalPredictionApi(shadow, defenses, { rng: o.rng.fork(), domain: o.know.domain });
        const out = new Float32Array(np * k);
        for (let i = 0; i < np; i += 256) {
          const m = Math.min(256, np - i);
          const xt = tf.tensor(px.subarray(i * d, (i + m) * d), [m, ...o.know.inputShape]);
          const r = await api.query(xt).finally(() => xt.dispose());
          try {
            if (!r.probs)
              throw new UsageError(`adapt=restorer: the defense ${o.defense} answered without probabilities`);
            out.set((await r.probs.data()) as Float32Array, i * k);
          } finally {
            tf.dispose([r.probs ?? [], r.labels ?? []]);
          }
        }
        defended.push(out);
      } finally {
        for (const p of prepared) p.dispose();
        shadow.dispose();
      }
    }
    // hold the last shadow's pairs out to say how well the restorer does on a victim it has not seen
    const held = o.shadows > 1 ? o.shadows - 1 : -1;
    const trainIdx = clean.map((_, i) => i).filter((i) => i !== held);
    const concat = (arrs: Float32Array[]) => {
      const out = new Float32Array(arrs.reduce((a, b) => a + b.length, 0));
      let off = 0;
      for (const a of arrs) {
        out.set(a, off);
        off += a.length;
      }
      return out;
    };
    const tx = features(concat(trainIdx.map((i) => defended[i])), k);
    const ty = concat(trainIdx.map((i) => clean[i]));
    const net = new Net(
      {
        kind: 'mlp',
        inputShape: [2 * k],
        numClasses: k,
        layers: [
          { type: 'dense', units: 64, activation: 'relu' },
          { type: 'dense', units: 64, activation: 'relu' },
          { type: 'dense', units: k },
        ],
        head: 'softmax',
      },
      o.rng.fork(),
    );
    await fit(
      net,
      { x: tx, targets: ty, n: ty.length / k },
      { epochs: 30, batchSize: 128, optimizer: 'adam', lr: 1e-3, rng: o.rng.fork() },
    );
    const r = new Restorer(net, k);
    let summary = `restorer trained on ${trainIdx.length} shadow victim${trainIdx.length > 1 ? 's' : ''} × ${np} answers behind ${o.defense}`;
    if (held >= 0) {
      const before = meanL1(defended[held], clean[held], k);
      const after = meanL1(r.restore(defended[held]), clean[held], k);
      summary += `: mean L1 to the clean answer on a held-out shadow ${before.toFixed(3)} → ${after.toFixed(3)}`;
    }
    r.summary = summary;
    return r;
  }

  /** R(ỹ) for answer rows [n·k] */
  restore(rows: Float32Array): Float32Array {
    const n = rows.length / this.k;
    const f = features(rows, this.k);
    return tf.tidy(() => this.net.predict(tf.tensor2d(f, [n, 2 * this.k])).dataSync() as Float32Array);
  }

  dispose(): void {
    this.net.dispose();
  }
}
