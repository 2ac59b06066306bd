/**
 * Decision-tree path-finding (Tramèr et al. 2016 §4.2, Algorithm 1) against an API that reveals a
 * leaf identifier with each answer (as BigML did). With the other features fixed, the inputs that
 * reach one leaf form an interval along any feature (a leaf's region is a box), so:
 *   1. take an unexplored input x, query its leaf id;
 *   2. for every feature i, query both ends of the domain along i and bisect (to precision ε)
 *      between any two points with different ids: this finds every threshold on the line, the
 *      leaf's extent along i, and one input inside each neighbouring leaf, which joins the queue.
 * Every leaf is then known as a box with its class distribution; the stolen model predicts with the
 * box that contains x (the nearest box where none does, e.g. after the budget ran out).
 */
import type { Schema } from '../params.js';
import { tf } from '../compute/backend.js';
import type { Model, Probs, SerializedModel } from '../models/model.js';
import { QueryRefusedError } from '../errors.js';
import { defineAttack } from './define.js';
import type { PredictionApi } from '../api/types.js';

export interface Leaf {
  id: number;
  lo: Float64Array; // exclusive lower bounds (−∞ at the domain edge)
  hi: Float64Array; // inclusive upper bounds
  dist: Float32Array;
}

/** The reconstructed tree: one box per discovered leaf. */
export class BoxModel implements Model {
  readonly kind = 'tree' as const;
  constructor(
    readonly inputShape: number[],
    readonly numClasses: number,
    readonly leaves: Leaf[],
  ) {}

  predictArray(x: Float32Array, n: number): Float32Array {
    const d = this.inputShape[0];
    const k = this.numClasses;
    const out = new Float32Array(n * k);
    for (let r = 0; r < n; r++) {
      let best: Leaf | undefined;
      let bestGap = Infinity;
      for (const leaf of this.leaves) {
        let gap = 0; // distance outside the box (0 = inside)
        for (let i = 0; i < d && gap < bestGap; i++) {
          const v = x[r * d + i];
          if (v <= leaf.lo[i]) gap += leaf.lo[i] - v + 1e-12;
          else if (v > leaf.hi[i]) gap += v - leaf.hi[i];
        }
        if (gap < bestGap) {
          bestGap = gap;
          best = leaf;
          if (gap === 0) break;
        }
      }
      if (best) out.set(best.dist, r * k);
      else out.fill(1 / k, r * k, (r + 1) * k);
    }
    return out;
  }

  predict(x: tf.Tensor): Probs {
    return tf.tensor2d(this.predictArray(x.dataSync() as Float32Array, x.shape[0]), [x.shape[0], this.numClasses]);
  }

  serialize(): SerializedModel {
    return {
      format: 'mse-model/1',
      kind: 'tree',
      inputShape: this.inputShape,
      numClasses: this.numClasses,
      boxes: this.leaves.map((l) => ({
        id: l.id,
        lo: Array.from(l.lo),
        hi: Array.from(l.hi),
        dist: Array.from(l.dist),
      })),
    };
  }

  dispose(): void {}
}

/**
 * One query at a time, each input asked once: the node identifier and class distribution the API
 * answers for x (both tree attacks probe the same points again and again along their line searches).
 */
export function leafOracle(
  api: PredictionApi,
  inputShape: number[],
): (x: Float64Array) => Promise<{ id: number; dist: Float32Array }> {
  const cache = new Map<string, { id: number; dist: Float32Array }>();
  return async (x) => {
    const key = Array.from(x).join(',');
    const hit = cache.get(key);
    if (hit) return hit;
    const xt = tf.tensor(Float32Array.from(x), [1, ...inputShape]);
    try {
      const r = await api.query(xt);
      const dist = Float32Array.from((await r.probs!.data()) as Float32Array);
      r.probs!.dispose();
      const out = { id: r.leafIds![0], dist };
      cache.set(key, out);
      return out;
    } finally {
      xt.dispose();
    }
  };
}

/**
 * The line searches' precision, shared by both tree attacks: a region narrower than ε between two
 * thresholds can be missed (Adult's capital-gain has one 7.5e-4 wide on the [−1, 1] scale).
 */
export const TREE_PARAMS = {
  epsilon: { type: 'number', min: 1e-9, default: 1e-3, help: 'threshold precision of the line searches' },
} as const satisfies Schema;

export const treePath = defineAttack({
  name: 'tree-path',
  describe: 'decision-tree path-finding with a leaf-id oracle (Tramèr 2016 §4.2, Algorithm 1)',
  params: TREE_PARAMS,
  // it stops by itself when every leaf is found, and keeps what it found when the budget runs out
  requires: {
    victims: ['tree'],
    victimsWhy: 'it finds the leaves of a decision tree',
    reveals: 'leaf',
    finiteBudget: false,
    minBudget: 0,
  },
  async run(params, api, know, rng) {
    const eps = params.epsilon;
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const k = know.numClasses;
    const { min, max } = know.domain;
    const oracle = leafOracle(api, know.inputShape);
    const leaves = new Map<number, Leaf>();
    const queue: Float64Array[] = [Float64Array.from({ length: d }, () => rng.uniform(min, max))];
    let exhausted = false;
    try {
      while (queue.length) {
        const x = queue.pop()!;
        const here = await oracle(x);
        if (leaves.has(here.id)) continue;
        const leaf: Leaf = {
          id: here.id,
          lo: new Float64Array(d).fill(-Infinity),
          hi: new Float64Array(d).fill(Infinity),
          dist: here.dist,
        };
        for (let i = 0; i < d; i++) {
          const at = (v: number) => {
            const y = Float64Array.from(x);
            y[i] = v;
            return y;
          };
          // points along feature i with their ids, refined by bisection where ids differ
          const pts: Array<{ v: number; id: number }> = [
            { v: min, id: (await oracle(at(min))).id },
            { v: x[i], id: here.id },
            { v: max, id: (await oracle(at(max))).id },
          ].sort((a, b) => a.v - b.v);
          // cuts: for each threshold on the line, its estimate t and the first probe past it
          const cuts: Array<{ t: number; v: number; id: number }> = [];
          const refine = async (a: { v: number; id: number }, b: { v: number; id: number }): Promise<void> => {
            if (a.id === b.id) return; // one leaf's extent is an interval: no threshold in between
            if (b.v - a.v <= eps) {
              cuts.push({ t: (a.v + b.v) / 2, v: b.v, id: b.id });
              return;
            }
            const mid = { v: (a.v + b.v) / 2, id: 0 };
            mid.id = (await oracle(at(mid.v))).id;
            await refine(a, mid);
            await refine(mid, b);
          };
          for (let j = 0; j + 1 < pts.length; j++) await refine(pts[j], pts[j + 1]);
          // the leaf's extent along i (left when x ≤ t), and one input inside every other leaf on the line
          for (const c of cuts) {
            if (c.t < x[i]) leaf.lo[i] = Math.max(leaf.lo[i], c.t);
            else leaf.hi[i] = Math.min(leaf.hi[i], c.t);
            if (!leaves.has(c.id) && c.id !== here.id) queue.push(at(c.v));
          }
          if (pts[0].id !== here.id && !leaves.has(pts[0].id)) queue.push(at(min));
        }
        leaves.set(here.id, leaf);
      }
    } catch (err) {
      if (!(err instanceof QueryRefusedError)) throw err;
      exhausted = true;
    }
    const surrogate = new BoxModel(know.inputShape, k, [...leaves.values()]);
    return {
      surrogate,
      queries: api.ledger.queries,
      budgetExhausted: exhausted,
      notes: [`${leaves.size} leaves found`],
    };
  },
});
