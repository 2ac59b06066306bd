/**
 * Decision-tree extraction with incomplete queries (Tramèr et al. 2016 §4.2, "top-down"): an API
 * such as BigML's answers a query with a missing feature (⊥, NaN here) from the last node it
 * reaches, with that node's identifier. So the tree can be read from the root down:
 *   1. the all-⊥ query stops at the root;
 *   2. at a node reached by a partial query, the feature it splits on is the one whose setting
 *      changes the identifier (both children differ from the node, so one probe per feature);
 *   3. a line search along that feature (the others as they are) finds every threshold met on the
 *      way down and one query inside each child region, which is explored in turn;
 *   4. a feature set higher up may be tested again below: at each node a line search along every
 *      set feature over the whole domain gives the node's extent along it (deeper thresholds
 *      included) and a query inside every other region the line crosses;
 *   5. a node where no probe changes the identifier is a leaf; its box is the intervals of the
 *      features set on the way to it (the others are unconstrained: no node on its path tests them).
 * It needs an API that answers ⊥ from the node where it stops (mse's tree victim does, as BigML did);
 * against one that sends a missing value down a fixed branch it would read a wrong tree.
 * Categorical features are one-hot columns (mse's tabular encoding), split like any other.
 */
import { QueryRefusedError } from '../errors.js';
import { defineAttack } from './define.js';
import { BoxModel, leafOracle, TREE_PARAMS, type Leaf } from './tree-path.js';

interface Probe {
  v: number;
  id: number;
}

export const treeTopdown = defineAttack({
  name: 'tree-topdown',
  describe: 'decision-tree extraction with incomplete (⊥) queries, from the root down (Tramèr 2016 §4.2, top-down)',
  params: TREE_PARAMS,
  requires: {
    victims: ['tree'],
    victimsWhy: 'it reads the nodes of a decision tree',
    reveals: 'leaf',
    finiteBudget: false,
    minBudget: 0,
  },
  async run(params, api, know) {
    const eps = params.epsilon;
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const k = know.numClasses;
    const { min, max } = know.domain;
    const oracle = leafOracle(api, know.inputShape);
    const leaves = new Map<number, Leaf>();
    const seen = new Set<number>();
    // every threshold along feature f between a and b (x elsewhere): the probes on the line, sorted,
    // with a probe on each side of every threshold, to precision eps
    const line = async (x: Float64Array, f: number, a: Probe, b: Probe): Promise<Probe[]> => {
      const at = (v: number) => {
        const y = Float64Array.from(x);
        y[f] = v;
        return y;
      };
      const out: Probe[] = [a];
      const refine = async (p: Probe, q: Probe): Promise<void> => {
        if (p.id === q.id) return; // a node's extent along one feature is an interval
        if (q.v - p.v <= eps) {
          out.push(p, q);
          return;
        }
        const mid = { v: (p.v + q.v) / 2, id: (await oracle(at((p.v + q.v) / 2))).id };
        await refine(p, mid);
        await refine(mid, q);
      };
      await refine(a, b);
      out.push(b);
      // in-order refinement leaves the probes ascending; a pair's end is the next pair's start
      return out.filter((p, i) => i === 0 || p.v !== out[i - 1].v);
    };
    // the regions a line crosses, one per identifier: [lo, hi] with one probe inside; a cut lies
    // halfway between the closest probes on either side of it
    const regions = (probes: Probe[]) => {
      const out: Array<{ lo: number; hi: number; v: number; id: number }> = [];
      probes.forEach((p, i) => {
        const last = out[out.length - 1];
        if (last && last.id === p.id) return;
        const cut = i > 0 ? (probes[i - 1].v + p.v) / 2 : -Infinity;
        if (last) last.hi = cut;
        out.push({ lo: cut, hi: Infinity, v: p.v, id: p.id });
      });
      return out;
    };

    const explore = async (x: Float64Array, queue: Float64Array[]): Promise<void> => {
      const here = await oracle(x);
      if (seen.has(here.id)) return;
      seen.add(here.id);
      const lo = new Float64Array(d).fill(-Infinity);
      const hi = new Float64Array(d).fill(Infinity);
      // 4. this node's extent along every feature set on the way here, over the whole domain: the
      // cuts met include thresholds below a node that tested the feature before (a re-split), and
      // every other region on the line is another node to explore
      for (let f = 0; f < d; f++) {
        if (Number.isNaN(x[f])) continue;
        const at = (v: number) => {
          const y = Float64Array.from(x);
          y[f] = v;
          return y;
        };
        const probes = await line(
          x,
          f,
          { v: min, id: (await oracle(at(min))).id },
          { v: max, id: (await oracle(at(max))).id },
        );
        for (const r of regions(probes)) {
          if (r.lo < x[f] && x[f] <= r.hi) {
            lo[f] = r.lo;
            hi[f] = r.hi;
          } else if (!seen.has(r.id)) queue.push(at(r.v));
        }
      }
      // 2. the feature this node splits on: the unset one whose setting moves the query on
      let split = -1;
      for (let f = 0; f < d && split < 0; f++) {
        if (!Number.isNaN(x[f])) continue;
        const y = Float64Array.from(x);
        y[f] = min;
        if ((await oracle(y)).id !== here.id) split = f;
      }
      if (split < 0) {
        // 5. a leaf: nothing left to set changes where the query ends
        leaves.set(here.id, { id: here.id, lo: Float64Array.from(lo), hi: Float64Array.from(hi), dist: here.dist });
        return;
      }
      // 3. every threshold on the way down along that feature, and a query inside each region
      const at = (v: number) => {
        const y = Float64Array.from(x);
        y[split] = v;
        return y;
      };
      const probes = await line(
        x,
        split,
        { v: min, id: (await oracle(at(min))).id },
        { v: max, id: (await oracle(at(max))).id },
      );
      for (const r of regions(probes)) if (!seen.has(r.id)) queue.push(at(r.v));
    };

    let exhausted = false;
    // 1. the all-⊥ query stops at the root
    const root = new Float64Array(d).fill(NaN);
    try {
      const queue: Float64Array[] = [root];
      while (queue.length) await explore(queue.pop()!, queue);
    } catch (err) {
      if (!(err instanceof QueryRefusedError)) throw err;
      exhausted = true;
    }
    return {
      surrogate: new BoxModel(know.inputShape, k, [...leaves.values()]),
      queries: api.ledger.queries,
      budgetExhausted: exhausted,
      notes: [`${leaves.size} leaves found top-down (${seen.size} nodes)`],
    };
  },
});
