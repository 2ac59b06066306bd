/**
 * The per-query information leakage that calibrates proof-of-work in Dziedzic et al. 2022
 * ("pknn" tracker): PATE-kNN with the GNMax mechanism's data-dependent Rényi-DP bound
 * (Papernot et al. 2018, Prop. 10). For each query, the k nearest training points in the victim's
 * log-softmax space vote with their true labels; a unanimous vote leaks little, a split vote (an
 * out-of-distribution or boundary query) leaks a lot. RDP composes additively over queries and is
 * converted to ε at δ:  ε(δ) = min_λ [ Σ ε_λ − ln δ / (λ − 1) ].
 */

/** Orders λ ∈ {2, 2.5, …, 99.5} ∪ 200 geometric points from 100 to 1000 (the paper's code). */
export const RDP_ORDERS: number[] = [
  ...Array.from({ length: 196 }, (_, i) => 2 + i * 0.5),
  ...Array.from({ length: 200 }, (_, i) => 100 * 10 ** (i / 199)),
];

/** ln Φ̄(x) = ln P(N(0,1) > x), stable in both tails (erfc in log form, Numerical Recipes §6.2, |rel err| < 1.2e-7). */
export function logGaussianSurvival(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const logErfc = Math.log(t) - z * z + poly; // ln erfc(z), z ≥ 0
  if (x >= 0) return Math.log(0.5) + logErfc;
  return Math.log1p(-0.5 * Math.exp(logErfc));
}

function logAddExp(a: number, b: number): number {
  const m = Math.max(a, b);
  return m === -Infinity ? -Infinity : m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/** ln q: a bound on the probability that GNMax with noise σ does not return the plurality class of `votes`. */
export function logQ(votes: ArrayLike<number>, sigma: number): number {
  const k = votes.length;
  let top = 0;
  for (let c = 1; c < k; c++) if (votes[c] > votes[top]) top = c;
  let lq = -Infinity;
  for (let c = 0; c < k; c++)
    if (c !== top) lq = logAddExp(lq, logGaussianSurvival((votes[top] - votes[c]) / (Math.SQRT2 * sigma)));
  return Math.min(lq, Math.log(1 - 1 / k));
}

/** Data-dependent RDP of one GNMax answer at each order (Papernot et al. 2018, Prop. 10), data-independent λ/σ² elsewhere. */
export function rdpGnmax(lq: number, sigma: number, orders: number[] = RDP_ORDERS): Float64Array {
  const v = sigma * sigma;
  const out = Float64Array.from(orders, (l) => l / v);
  if (!(lq < 0) || !Number.isFinite(lq)) return out;
  const mu2 = sigma * Math.sqrt(-lq);
  const mu1 = mu2 + 1;
  const eps1 = mu1 / v;
  const eps2 = mu2 / v;
  if (!(mu2 > 1) || !(-lq > eps2)) return out;
  if (!(lq <= (mu2 - 1) * eps2 - mu2 * (Math.log1p(1 / (mu1 - 1)) + Math.log1p(1 / (mu2 - 1))))) return out;
  const log1q = Math.log1p(-Math.exp(lq));
  const inner = Math.log1p(-Math.exp((lq + eps2) * (1 - 1 / mu2)));
  orders.forEach((l, i) => {
    if (!(mu1 > l)) return;
    const a = (l - 1) * (log1q - inner);
    const b = (l - 1) * (eps1 - lq / (mu1 - 1));
    out[i] = logAddExp(log1q + a, lq + b) / (l - 1); // the "no upper bound" variant: no min with λ/σ²
  });
  return out;
}

export interface PknnOptions {
  /** neighbours that vote (the paper: 300) */
  k: number;
  /** GNMax noise (the paper: 28) */
  sigma: number;
  /** δ of the reported (ε, δ) (the paper: 1e-5 for MNIST-class data) */
  delta: number;
}

/** Tracks one client's cumulative privacy cost. Training representations: the victim's log-probabilities. */
export class PknnPrivacyCost {
  private readonly total = new Float64Array(RDP_ORDERS.length);
  private readonly kk: number;
  queries = 0;

  constructor(
    private readonly trainRep: Float32Array,
    private readonly trainLabels: Int32Array,
    private readonly numClasses: number,
    private readonly opts: PknnOptions,
  ) {
    this.kk = Math.min(opts.k, trainLabels.length);
  }

  /** Votes of the k nearest training points for one query representation. */
  votes(rep: ArrayLike<number>): Float64Array {
    const K = this.numClasses;
    const n = this.trainLabels.length;
    const dist = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < K; j++) {
        const d = this.trainRep[i * K + j] - rep[j];
        s += d * d;
      }
      dist[i] = s;
    }
    const idx = Array.from({ length: n }, (_, i) => i);
    quickselect(dist, idx, this.kk);
    const v = new Float64Array(K);
    for (let i = 0; i < this.kk; i++) v[this.trainLabels[idx[i]]]++;
    return v;
  }

  /** Add queries given as the victim's log-probabilities [m·K]. */
  add(reps: Float32Array, m: number): void {
    const K = this.numClasses;
    for (let i = 0; i < m; i++) {
      const rdp = rdpGnmax(logQ(this.votes(reps.subarray(i * K, (i + 1) * K)), this.opts.sigma), this.opts.sigma);
      for (let o = 0; o < rdp.length; o++) this.total[o] += rdp[o];
    }
    this.queries += m;
  }

  /** ε at δ of everything added so far. */
  epsilon(): number {
    if (this.queries === 0) return 0;
    let best = Infinity;
    RDP_ORDERS.forEach((l, o) => {
      best = Math.min(best, this.total[o] - Math.log(this.opts.delta) / (l - 1));
    });
    return best;
  }
}

/** Reorder idx so that its first k entries index the k smallest values of a (Hoare selection). */
function quickselect(a: Float64Array, idx: number[], k: number): void {
  let lo = 0;
  let hi = idx.length - 1;
  while (lo < hi) {
    const pivot = a[idx[(lo + hi) >> 1]];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[idx[i]] < pivot) i++;
      while (a[idx[j]] > pivot) j--;
      if (i <= j) {
        [idx[i], idx[j]] = [idx[j], idx[i]];
        i++;
        j--;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
}
