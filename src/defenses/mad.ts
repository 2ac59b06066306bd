/**
 * `mad` / `poison`: prediction poisoning by Maximizing Angular Deviation (Orekondy, Schiele, Fritz,
 * ICLR 2020). Each posterior y is perturbed to ỹ within dist(ỹ, y) ≤ ε on the simplex so that the
 * attacker's gradient step, computed through a surrogate's last layer, turns as far as possible
 * from the one y would give:
 *     max_ỹ ‖ Gᵀỹ/‖Gᵀỹ‖ − Gᵀy/‖Gᵀy‖ ‖²                                        (Orekondy 2020, eq. 5)
 * For a softmax last layer z = Wh + b with surrogate posterior p, row k of G is vec((p − e_k)hᵀ), so
 * for any ỹ on the simplex Gᵀỹ = vec((p − ỹ)hᵀ) and the objective reduces to the K-dimensional
 *     obj(ỹ) = ‖ (p − ỹ)/‖p − ỹ‖ − (p − y)/‖p − y‖ ‖²                    (independent of h)
 * which needs only p: no per-query Jacobian. As in the reference code:
 *   1. the oracle picks a target vertex y*: `extreme` — the one-hot e_k of largest obj; with
 *      argmax=true (MAD-argmax) — the best of the 2^(K−1) uniform distributions over class sets that
 *      contain the top-1 k* (+1e-5 on k*), greedy set growth when K > 10; `random`/`argmin` ablations;
 *   2. the line search ỹ = (1 − α)y + αy*, α = min(1, ε/‖y − y*‖_p) for L1/L2 (closed form), or the
 *      largest α with KL(y‖ỹ) ≤ ε by bisection. A convex combination stays on the simplex; for
 *      MAD-argmax y* shares y's argmax, so ỹ keeps it.
 * Batched: the surrogate runs once per batch and every row's oracle and line search are vectorised
 * loops over K-vectors (the reference perturbs one query at a time with autograd Jacobians).
 * The surrogate is a randomly initialised network of the victim's family ("chance-level", as in the
 * paper's README), drawn from the defender's setup stream once per cell (`prepare`) and shared,
 * read-only, by every API built for the cell.
 */
import { tf } from '../compute/backend.js';
import type { DefenderEnv } from '../api/types.js';
import { nativeBlas } from '../compute/native.js';
import type { Net } from '../models/net.js';
import { createNet, parseModelSpec } from '../models/zoo.js';
import type { Schema } from '../params.js';
import { defineDefense } from './define.js';

/** The parameters mad and its alias poison share. */
const MAD = {
  eps: {
    type: 'number',
    min: 0,
    default: 0.5,
    help: 'ε: the perturbation budget dist(ỹ, y) ≤ ε (default 0.5, the reference README’s; at L1 ε ≥ 1 confident answers flip)',
  },
  ydist: { type: 'string', choices: ['l1', 'l2', 'kl'], default: 'l1', help: 'the distance ε bounds' },
  oracle: {
    type: 'string',
    choices: ['extreme', 'random', 'argmin'],
    default: 'extreme',
    help: 'target vertex: MAD’s (extreme), or the random / least-likely ablations',
  },
  argmax: { type: 'bool', default: false, help: 'MAD-argmax: keep every answer’s top-1 class' },
  proxy: {
    type: 'string',
    default: 'auto',
    help: 'the defender’s randomly initialised surrogate: auto (cnn for images, mlp otherwise) or a model kind',
  },
} as const satisfies Schema;

/** What the defender prepares once per cell: the randomly initialised proxy surrogate (when the extreme oracle needs one). */
export interface MadPrepared {
  proxy: Net;
  dispose(): void;
}

function madUnit(name: 'mad' | 'poison', describe: string) {
  return defineDefense({
    name,
    describe,
    params: MAD,
    check: (p) =>
      p.argmax && p.oracle !== 'extreme'
        ? `argmax=true chooses its own oracle; leave oracle=${p.oracle} out`
        : undefined,
    stages: ['output'],
    prepare(p, env): MadPrepared | undefined {
      // MAD-argmax runs with oracle=extreme (check), so it needs the proxy too
      if (p.oracle !== 'extreme' || p.eps === 0) return undefined;
      const proxy = proxyFor(p.proxy, env);
      return { proxy, dispose: () => proxy.dispose() };
    },
    create({ eps, ydist, oracle, argmax: keepArgmax }, prepared: MadPrepared | undefined) {
      return {
        output: (probs, ctx) => {
          if (eps === 0) return { probs: probs.clone() };
          if (!ctx.input) throw new Error(`${name} needs the query's input (the API passes it to output stages)`);
          const [n, k] = probs.shape;
          const y = probs.dataSync() as Float32Array;
          let p: Float32Array | undefined;
          if (oracle === 'extreme') {
            if (!prepared)
              throw new Error(`${name} was created without its proxy (prepare it from the defender's env first)`);
            const surrogate = prepared.proxy;
            const pt = tf.tidy(() => surrogate.predict(ctx.input!));
            p = pt.dataSync() as Float32Array;
            pt.dispose();
          }
          const out = new Float32Array(n * k);
          const target = new Float64Array(k);
          const yi = new Float64Array(k);
          // MAD-argmax's search for every row at once in C where the addon is built (the same choices)
          const sets = keepArgmax && k <= 10 ? madArgmaxSets(y, p!, n, k, true) : undefined;
          for (let i = 0; i < n; i++) {
            for (let j = 0; j < k; j++) yi[j] = y[i * k + j];
            if (sets) {
              const table = candidates(k, argmaxOf(yi));
              for (let j = 0; j < k; j++) target[j] = table[sets[i] * k + j];
            } else if (keepArgmax) argmaxOracle(yi, p!.subarray(i * k, (i + 1) * k), target);
            else if (oracle === 'extreme') extremeOracle(yi, p!.subarray(i * k, (i + 1) * k), target);
            else {
              target.fill(0);
              if (oracle === 'random') target[ctx.rng.int(k)] = 1;
              else target[argminOf(yi)] = 1;
            }
            const a = mixWeight(yi, target, eps, ydist);
            for (let j = 0; j < k; j++) out[i * k + j] = (1 - a) * yi[j] + a * target[j];
          }
          return { probs: tf.tensor2d(out, [n, k]) };
        },
      };
    },
  });
}

export const mad = madUnit(
  'mad',
  'prediction poisoning: maximise the angular deviation of the attacker’s gradient within ε (Orekondy 2020)',
);
export const poison = madUnit('poison', 'alias of mad (prediction poisoning, Orekondy 2020)');

/** The defender's chance-level surrogate of the victim's family, drawn from one fork of its setup stream. */
function proxyFor(proxy: string, env: DefenderEnv): Net {
  const shape = env.victim.inputShape.slice();
  const kind = proxy === 'auto' ? (shape.length === 3 ? 'cnn' : 'mlp') : proxy;
  return createNet(
    parseModelSpec(kind),
    {
      name: 'proxy',
      inputShape: shape,
      numClasses: env.victim.numClasses,
      kind: shape.length === 3 ? 'image' : 'tabular',
    },
    env.rng.fork(),
  );
}

/** obj(c) = ‖(p − c)/‖p − c‖ − (p − y)/‖p − y‖‖² (Orekondy 2020, eq. 5 in closed form). */
export function madObjective(p: ArrayLike<number>, y: ArrayLike<number>, c: ArrayLike<number>): number {
  const k = p.length;
  let ny = 0;
  let nc = 0;
  for (let j = 0; j < k; j++) {
    ny += (p[j] - y[j]) ** 2;
    nc += (p[j] - c[j]) ** 2;
  }
  ny = Math.sqrt(ny) || 1e-12;
  nc = Math.sqrt(nc) || 1e-12;
  let s = 0;
  for (let j = 0; j < k; j++) s += ((p[j] - c[j]) / nc - (p[j] - y[j]) / ny) ** 2;
  return s;
}

function extremeOracle(y: Float64Array, p: ArrayLike<number>, target: Float64Array): void {
  const k = y.length;
  const u = k <= 10 ? ws.u : new Float64Array(k);
  direction(p, y, u, k);
  let pu = 0;
  let pp = 0;
  for (let j = 0; j < k; j++) {
    pu += p[j] * u[j];
    pp += p[j] * p[j];
  }
  // obj(e_c) = 2 − 2·(p·u − u_c)/‖p − e_c‖, ‖p − e_c‖² = ‖p‖² − 2p_c + 1: O(1) per vertex
  let best = 0;
  let bestObj = -Infinity;
  for (let c = 0; c < k; c++) {
    const o = 2 - (2 * (pu - u[c])) / (Math.sqrt(Math.max(0, pp - 2 * p[c] + 1)) || 1e-12);
    if (o > bestObj) {
      bestObj = o;
      best = c;
    }
  }
  target.fill(0);
  target[best] = 1;
}

/** The unit direction (p − y)/‖p − y‖ against which candidates are scored. */
function direction(p: ArrayLike<number>, y: ArrayLike<number>, u: Float64Array, k = u.length): void {
  let n = 0;
  for (let j = 0; j < k; j++) n += (u[j] = p[j] - y[j]) ** 2;
  n = Math.sqrt(n) || 1e-12;
  for (let j = 0; j < k; j++) u[j] /= n;
}

/** obj(c) = 2 − 2·cos∠(p − c, p − y), the same value as madObjective, from the precomputed direction u. */
function scoreAt(p: ArrayLike<number>, u: Float64Array, c: Float64Array, off: number): number {
  let nc = 0;
  let dot = 0;
  for (let j = 0; j < u.length; j++) {
    const d = p[j] - c[off + j];
    nc += d * d;
    dot += d * u[j];
  }
  return 2 - (2 * dot) / (Math.sqrt(nc) || 1e-12);
}

/** MAD-argmax candidates for K classes and top-1 `top`: every class set containing top, uniform over it, +1e-5 on top. */
const candidateTables = new Map<number, Float64Array>();
function candidates(k: number, top: number): Float64Array {
  const key = k * 1024 + top;
  let t = candidateTables.get(key);
  if (!t) {
    const others = Array.from({ length: k }, (_, j) => j).filter((j) => j !== top);
    const count = 1 << others.length;
    t = new Float64Array(count * k);
    for (let bits = 0; bits < count; bits++) {
      const row = t.subarray(bits * k, (bits + 1) * k);
      let m = 1;
      row[top] = 1;
      others.forEach((j, b) => {
        if (bits & (1 << b)) {
          row[j] = 1;
          m++;
        }
      });
      row[top] += 1e-5;
      for (let j = 0; j < k; j++) row[j] /= m + 1e-5;
    }
    candidateTables.set(key, t);
  }
  return t;
}

/** per-candidate subset sums for the exhaustive MAD-argmax search, grown on demand */
let sumU = new Float64Array(0);
let sumP = new Float64Array(0);
let setSize = new Int32Array(0);
/** per-row workspace of the exhaustive search (K ≤ 10): u, the other classes' u and p, 1/D and c·c per set size */
const ws = {
  u: new Float64Array(10),
  ou: new Float64Array(10),
  op: new Float64Array(10),
  inv: new Float64Array(11),
  ccm: new Float64Array(11),
};

/**
 * MAD-argmax's chosen class set for each of n rows (K ≤ 10): the index into `candidates(k, top)`.
 * `native` uses the addon's loop (native/mse_blas.cc, madArgmax: the same arithmetic in the same
 * order, 1.3 → 0.46 ms per 256 rows of 10 classes) when it is built; otherwise, or with native = false, argmaxOracle's.
 * Undefined for K > 10 (the greedy search).
 */
export function madArgmaxSets(
  y: Float32Array,
  p: Float32Array,
  n: number,
  k: number,
  native: boolean,
): Int32Array | undefined {
  if (k > 10 || k < 2) return undefined;
  const out = new Int32Array(n);
  const blas = native ? nativeBlas() : null;
  if (blas) {
    blas.madArgmax(y, p, out, n, k);
    return out;
  }
  const yi = new Float64Array(k);
  const target = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) yi[j] = y[i * k + j];
    out[i] = argmaxOracle(yi, p.subarray(i * k, (i + 1) * k), target);
  }
  return out;
}

/**
 * MAD-argmax: the best uniform distribution over a class set containing the top-1 (exhaustive for
 * K ≤ 10); returns the chosen set's index into `candidates(k, top)` (−1 for the greedy search).
 */
function argmaxOracle(y: Float64Array, p: ArrayLike<number>, target: Float64Array): number {
  const k = y.length;
  const top = argmaxOf(y);
  if (k <= 10) {
    const u = ws.u;
    direction(p, y, u, k);
    // Candidate S (bits over the other classes, top always in): c_j = (1 + 1e-5·[j = top])/D on S,
    // D = |S| + 1e-5. Its score needs only Σ_S u, Σ_S p and |S|, which grow from the candidate with
    // its lowest bit cleared: O(1) per candidate instead of O(K) (the same order, the same ties).
    const count = 1 << (k - 1);
    if (sumU.length < count) {
      sumU = new Float64Array(count);
      sumP = new Float64Array(count);
      setSize = new Int32Array(count);
    }
    const SU = sumU;
    const SP = sumP;
    const SZ = setSize;
    const { ou, op, inv, ccm } = ws;
    let pu = 0;
    let pp = 0;
    for (let j = 0, b = 0; j < k; j++) {
      pu += p[j] * u[j];
      pp += p[j] * p[j];
      if (j !== top) {
        ou[b] = u[j];
        op[b++] = p[j];
      }
    }
    // per set size m: 1/D and c·c = (m − 1 + (1 + 1e-5)²)/D²
    for (let m = 1; m <= k; m++) {
      inv[m] = 1 / (m + 1e-5);
      ccm[m] = (m - 1 + (1 + 1e-5) ** 2) * inv[m] * inv[m];
    }
    SU[0] = u[top];
    SP[0] = p[top];
    SZ[0] = 1;
    const eu = 1e-5 * u[top];
    const ep = 1e-5 * p[top];
    let best = 0;
    let bestObj = -Infinity;
    for (let bits = 0; bits < count; bits++) {
      if (bits > 0) {
        const rest = bits & (bits - 1);
        const b = 31 - Math.clz32(bits & -bits);
        SU[bits] = SU[rest] + ou[b];
        SP[bits] = SP[rest] + op[b];
        SZ[bits] = SZ[rest] + 1;
      }
      const m = SZ[bits];
      const cu = (SU[bits] + eu) * inv[m];
      const cp = (SP[bits] + ep) * inv[m];
      // obj(c) = 2 − 2·(p − c)·u/‖p − c‖  (scoreAt, expanded)
      const o = 2 - (2 * (pu - cu)) / (Math.sqrt(Math.max(0, pp - 2 * cp + ccm[m])) || 1e-12);
      if (o > bestObj) {
        bestObj = o;
        best = bits;
      }
    }
    const table = candidates(k, top);
    for (let j = 0; j < k; j++) target[j] = table[best * k + j];
    return best;
  }
  const u = new Float64Array(k);
  direction(p, y, u);
  // greedy: grow the set from {top}, adding the class that helps most, while it helps
  const cand = new Float64Array(k);
  const fill = (inSet: Set<number>, extra: number) => {
    let m = 0;
    for (let j = 0; j < k; j++) m += cand[j] = inSet.has(j) || j === extra ? 1 : 0;
    cand[top] += 1e-5;
    for (let j = 0; j < k; j++) cand[j] /= m + 1e-5;
  };
  const inSet = new Set([top]);
  fill(inSet, -1);
  let bestObj = scoreAt(p, u, cand, 0);
  target.set(cand);
  for (let evals = 0; evals < 1024;) {
    let add = -1;
    for (let c = 0; c < k; c++) {
      if (inSet.has(c)) continue;
      fill(inSet, c);
      const o = scoreAt(p, u, cand, 0);
      evals++;
      if (o > bestObj) {
        bestObj = o;
        add = c;
      }
    }
    if (add < 0) break;
    inSet.add(add);
    fill(inSet, -1);
    target.set(cand);
  }
  return -1;
}

/** The line search's α: the largest step toward y* within dist ≤ ε. */
function mixWeight(y: Float64Array, t: Float64Array, eps: number, ydist: 'l1' | 'l2' | 'kl'): number {
  const k = y.length;
  if (ydist !== 'kl') {
    let d = 0;
    for (let j = 0; j < k; j++) d += ydist === 'l1' ? Math.abs(y[j] - t[j]) : (y[j] - t[j]) ** 2;
    d = ydist === 'l1' ? d : Math.sqrt(d);
    return Math.max(0, Math.min(1, eps / (d + 1e-7)));
  }
  const kl = (a: number) => {
    let s = 0;
    for (let j = 0; j < k; j++) if (y[j] > 0) s += y[j] * Math.log(y[j] / Math.max((1 - a) * y[j] + a * t[j], 1e-30));
    return s;
  };
  if (kl(1) <= eps) return 1;
  let lo = 0;
  let hi = 1;
  for (let it = 0; it < 40; it++) {
    const mid = (lo + hi) / 2;
    if (kl(mid) <= eps) lo = mid;
    else hi = mid;
  }
  return lo;
}

function argmaxOf(v: ArrayLike<number>): number {
  let b = 0;
  for (let j = 1; j < v.length; j++) if (v[j] > v[b]) b = j;
  return b;
}

function argminOf(v: ArrayLike<number>): number {
  let b = 0;
  for (let j = 1; j < v.length; j++) if (v[j] < v[b]) b = j;
  return b;
}
