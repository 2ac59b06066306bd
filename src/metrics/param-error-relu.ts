/**
 * Parameter error for one-hidden-layer ReLU networks (what relu-exact.ts steals), where param-error.ts (linear
 * models only) has none: a one-hidden-layer ReLU network is identifiable only up to a permutation of
 * its hidden units, a positive scale per unit and a constant on the logits (Jagielski et al., USENIX
 * Security 2020, §5; Carlini et al., CRYPTO 2020, §2), so the units are matched before comparing.
 */
import type { Net } from '../models/net.js';

/** Per victim unit, its best match among the stolen units, and the parameter error after matching. */
export interface UnitMatch {
  /** cosine between the victim's (w_j, b_j) and its match's, per victim unit (NaN: not compared) */
  cosines: number[];
  /** relative L2 of the compared parameters after permuting and rescaling the stolen units (logits less class 0's) */
  relL2: number;
  /** victim units left out: their pre-activation keeps one sign on the domain (dead or linear there) */
  skipped: number;
}

/**
 * Compare two one-hidden-layer ReLU Nets up to the symmetries of the function: a permutation of the
 * hidden units, a positive scale per unit (relu(λu) = λ relu(u), λ > 0, moved into the output
 * weights), and a constant added to every logit. Units are matched greedily by cosine. Given the
 * domain, victim units that never cross 0 on it are left out: no query there can tell them apart
 * from a constant or a linear term. undefined when either is not such a Net, or the shapes differ.
 */
export function matchUnits(victim: Net, stolen: Net, domain?: { min: number; max: number }): UnitMatch | undefined {
  const read = (n: Net) => {
    const dense = n.layers.filter((l) => l.type === 'dense');
    if (dense.length !== 2 || dense[0].activation !== 'relu' || n.head !== 'softmax') return undefined;
    return n.variables.map((t) => Float64Array.from(t.dataSync() as Float32Array));
  };
  const a = read(victim);
  const b = read(stolen);
  if (!a || !b || a.some((t, i) => t.length !== b[i].length)) return undefined;
  const h = a[1].length;
  const k = a[3].length;
  const d = a[0].length / h;
  const row = (p: Float64Array[], j: number) =>
    Float64Array.from({ length: d + 1 }, (_, t) => (t < d ? p[0][t * h + j] : p[1][j]));
  const norm = (x: Float64Array) => Math.hypot(...x);
  const cos = (x: Float64Array, y: Float64Array) => x.reduce((s, v, i) => s + v * y[i], 0) / (norm(x) * norm(y) || 1);
  const crosses = (r: Float64Array) => {
    if (!domain) return true;
    let lo = r[d];
    let hi = r[d];
    for (let t = 0; t < d; t++) {
      lo += Math.min(r[t] * domain.min, r[t] * domain.max);
      hi += Math.max(r[t] * domain.min, r[t] * domain.max);
    }
    return lo < 0 && hi > 0;
  };
  const live = Array.from({ length: h }, (_, j) => j).filter((j) => crosses(row(a, j)));
  const pairs: Array<[number, number, number]> = [];
  for (const j of live) for (let l = 0; l < h; l++) pairs.push([cos(row(a, j), row(b, l)), j, l]);
  pairs.sort((x, y) => y[0] - x[0]);
  const match = new Array<number>(h).fill(-1);
  const cosines = new Array<number>(h).fill(NaN);
  const taken = new Set<number>();
  for (const [c, j, l] of pairs) {
    if (match[j] >= 0 || taken.has(l)) continue;
    match[j] = l;
    cosines[j] = c;
    taken.add(l);
  }
  let num = 0;
  let den = 0;
  for (const j of live) {
    const rv = row(a, j);
    const rs = row(b, match[j]);
    const lambda = norm(rs) > 0 ? norm(rv) / norm(rs) : 0; // the stolen unit, rescaled to the victim's norm
    for (let t = 0; t <= d; t++) [num, den] = [num + (rv[t] - lambda * rs[t]) ** 2, den + rv[t] ** 2];
    for (let r = 1; r < k; r++) {
      const av = a[2][j * k + r] - a[2][j * k];
      const as = lambda > 0 ? (b[2][match[j] * k + r] - b[2][match[j] * k]) / lambda : 0;
      [num, den] = [num + (av - as) ** 2, den + av ** 2];
    }
  }
  if (live.length === h)
    for (let r = 1; r < k; r++) {
      const cv = a[3][r] - a[3][0];
      [num, den] = [num + (cv - (b[3][r] - b[3][0])) ** 2, den + cv ** 2];
    }
  return { cosines, relL2: Math.sqrt(num / Math.max(den, 1e-300)), skipped: h - live.length };
}
