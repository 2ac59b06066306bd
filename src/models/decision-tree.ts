/**
 * CART decision tree (Gini impurity, axis-aligned thresholds), the victim of Tramèr et al.'s
 * path-finding attack (§4.2). Like BigML's API it can reveal a node identifier with each
 * prediction (`leafIds`), and its probabilities are the class frequencies in that node.
 * A missing feature (NaN, Tramèr's ⊥) stops the descent where a node splits on it, as BigML's
 * "last prediction" strategy does: the answer is that internal node's distribution and identifier
 * (leaves are numbered 0…L−1, internal node i answers L + i). A categorical feature is its one-hot
 * columns, so a categorical split is a split on one of them ("is c" vs "is not c").
 * Deterministic: ties between equally good splits go to the lowest feature, then threshold.
 */
import { tf } from '../compute/backend.js';
import type { Model, Probs, SerializedModel } from './model.js';

export interface TreeOptions {
  maxDepth: number;
  minSamplesSplit: number;
  minSamplesLeaf: number;
}

export const TREE_DEFAULTS: TreeOptions = { maxDepth: 8, minSamplesSplit: 2, minSamplesLeaf: 1 };

/** Internal nodes have feature ≥ 0 and go left when x[feature] ≤ threshold. */
export interface TreeNode {
  feature: number;
  threshold: number;
  left: number;
  right: number;
  /** class distribution at the node (leaves: the prediction) */
  dist: number[];
  /** leaf identifier (−1 for internal nodes) */
  leaf: number;
}

export class DecisionTree implements Model {
  readonly kind = 'tree' as const;
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly nodes: TreeNode[];

  constructor(inputShape: number[], numClasses: number, nodes: TreeNode[]) {
    this.inputShape = inputShape;
    this.numClasses = numClasses;
    this.nodes = nodes;
  }

  static fit(
    x: Float32Array,
    y: Int32Array,
    d: number,
    numClasses: number,
    opts: Partial<TreeOptions> = {},
  ): DecisionTree {
    const o = { ...TREE_DEFAULTS, ...opts };
    const nodes: TreeNode[] = [];
    let leaves = 0;
    const build = (idx: Int32Array, depth: number): number => {
      const dist = new Array<number>(numClasses).fill(0);
      for (const i of idx) dist[y[i]]++;
      const id = nodes.length;
      nodes.push({ feature: -1, threshold: 0, left: -1, right: -1, dist: dist.map((c) => c / idx.length), leaf: -1 });
      const pure = dist.some((c) => c === idx.length);
      const split =
        depth < o.maxDepth && idx.length >= o.minSamplesSplit && !pure
          ? bestSplit(x, y, d, numClasses, idx, o.minSamplesLeaf)
          : undefined;
      if (!split) {
        nodes[id].leaf = leaves++;
        return id;
      }
      const left = idx.filter((i) => x[i * d + split.feature] <= split.threshold);
      const right = idx.filter((i) => x[i * d + split.feature] > split.threshold);
      nodes[id].feature = split.feature;
      nodes[id].threshold = split.threshold;
      nodes[id].left = build(left, depth + 1);
      nodes[id].right = build(right, depth + 1);
      return id;
    };
    build(
      Int32Array.from({ length: y.length }, (_, i) => i),
      0,
    );
    return new DecisionTree([d], numClasses, nodes);
  }

  private leafCount?: number;

  get numLeaves(): number {
    return (this.leafCount ??= this.nodes.filter((n) => n.leaf >= 0).length);
  }

  get depth(): number {
    const walk = (i: number): number =>
      this.nodes[i].leaf >= 0 ? 0 : 1 + Math.max(walk(this.nodes[i].left), walk(this.nodes[i].right));
    return walk(0);
  }

  /** Index of the node where row `r` of `x` stops: its leaf, or the first node that splits on a missing (NaN) feature. */
  private route(x: ArrayLike<number>, off: number): number {
    let i = 0;
    while (this.nodes[i].leaf < 0) {
      const nd = this.nodes[i];
      const v = x[off + nd.feature];
      if (Number.isNaN(v)) return i;
      i = v <= nd.threshold ? nd.left : nd.right;
    }
    return i;
  }

  /** The identifier of the node each row stops at: its leaf's number, or L + index for an internal node (a missing feature). */
  leafIds(x: Float32Array, n: number): Int32Array {
    const d = this.inputShape[0];
    const leaves = this.numLeaves;
    const out = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const i = this.route(x, r * d);
      out[r] = this.nodes[i].leaf >= 0 ? this.nodes[i].leaf : leaves + i;
    }
    return out;
  }

  predictArray(x: Float32Array, n: number): Float32Array {
    const d = this.inputShape[0];
    const k = this.numClasses;
    const out = new Float32Array(n * k);
    for (let r = 0; r < n; r++) out.set(this.nodes[this.route(x, r * d)].dist, r * k);
    return out;
  }

  predict(x: tf.Tensor): Probs {
    const n = x.shape[0];
    const data = x.dataSync() as Float32Array;
    return tf.tensor2d(this.predictArray(data, n), [n, this.numClasses]);
  }

  serialize(): SerializedModel {
    return {
      format: 'mse-model/1',
      kind: 'tree',
      inputShape: this.inputShape,
      numClasses: this.numClasses,
      nodes: this.nodes,
    };
  }

  static deserialize(s: SerializedModel): DecisionTree {
    return new DecisionTree(s.inputShape, s.numClasses, s.nodes as TreeNode[]);
  }

  dispose(): void {}
}

function gini(counts: Float64Array, total: number): number {
  if (total === 0) return 0;
  let s = 0;
  for (const c of counts) s += (c / total) ** 2;
  return 1 - s;
}

function bestSplit(
  x: Float32Array,
  y: Int32Array,
  d: number,
  k: number,
  idx: Int32Array,
  minLeaf: number,
): { feature: number; threshold: number } | undefined {
  const n = idx.length;
  const total = new Float64Array(k);
  for (const i of idx) total[y[i]]++;
  let best = gini(total, n) - 1e-12; // a split must reduce impurity
  let out: { feature: number; threshold: number } | undefined;
  const order = Array.from(idx);
  const left = new Float64Array(k);
  const right = new Float64Array(k);
  for (let f = 0; f < d; f++) {
    order.sort((a, b) => x[a * d + f] - x[b * d + f] || a - b);
    left.fill(0);
    right.set(total);
    for (let j = 0; j < n - 1; j++) {
      const c = y[order[j]];
      left[c]++;
      right[c]--;
      const v = x[order[j] * d + f];
      const next = x[order[j + 1] * d + f];
      if (v === next || j + 1 < minLeaf || n - j - 1 < minLeaf) continue;
      const nl = j + 1;
      const score = (nl / n) * gini(left, nl) + ((n - nl) / n) * gini(right, n - nl);
      if (score < best) {
        best = score;
        out = { feature: f, threshold: (v + next) / 2 };
      }
    }
  }
  return out;
}
