/**
 * The second half of exact ReLU extraction (relu-exact.ts): given the hidden units' hyperplanes,
 * recovered up to sign and scale, fix their signs and solve the output layer by least squares
 * (Jagielski et al., USENIX Security 2020, §5; Carlini, Jagielski, Mironov, CRYPTO 2020, §4.3–4.4).
 *
 * On logit differences G(x) = z_r(x) − z_0(x) the victim is G(x) = Σ_j a_j relu(u_j(x)) + c with
 * u_j(x) = λ_j (ŵ_j·x + b̂_j), λ_j ≠ 0 unknown. A positive λ_j folds into a_j; a negative one does
 * not, because relu(−u) = relu(u) − u. So fit G on the features [relu(ũ_j), x, 1]: the coefficient
 * B of the linear part is −Σ_{j: λ_j<0} α_j ŵ_jᵀ, and the signs are the 0/1 vector σ that makes
 * B + Σ_j σ_j α_j ŵ_jᵀ vanish — a binary least-squares problem, solved exactly for ≤ 20 units (any
 * exact solution gives the same function on ℝᵈ). This needs no queries beyond the fit's, and works
 * for expansive layers (h > d) where the null-space sign test of ART (and Carlini §4.3) cannot.
 * Units the search did not find (dead on the box, or never crossing it, hence linear there) leave a
 * linear remainder, represented by spare units that are active on the whole box.
 */
import { lstsqMulti } from '../solvers/linalg.js';

/** A hidden unit as relu(w·x + b). */
export interface Unit {
  w: Float64Array;
  b: number;
}

/** The fit sample: m inputs (d each) and their logit differences (k1 = k − 1 each). */
export interface FitSample {
  x: Float32Array;
  g: Float64Array;
  m: number;
}

/** Design matrix [relu(units), x (when linear), 1] for the sample, m × (units + d? + 1). */
function design(units: Unit[], s: FitSample, d: number, linear: boolean): { A: Float64Array; n: number } {
  const n = units.length + (linear ? d : 0) + 1;
  const A = new Float64Array(s.m * n);
  for (let i = 0; i < s.m; i++) {
    const row = i * n;
    units.forEach((u, j) => {
      let z = u.b;
      for (let t = 0; t < d; t++) z += u.w[t] * s.x[i * d + t];
      A[row + j] = z > 0 ? z : 0;
    });
    if (linear) for (let t = 0; t < d; t++) A[row + units.length + t] = s.x[i * d + t];
    A[row + n - 1] = 1;
  }
  return { A, n };
}

/**
 * The `keep` best σ ∈ {0,1}ⁿ for ‖B + Σ_j σ_j α_j w_jᵀ‖²_F, i.e. for 2qᵀσ + σᵀQσ with
 * Q_jl = (α_j·α_l)(w_j·w_l) and q_j = α_jᵀ B w_j, best first: exhaustively (Gray code) for n ≤ 20,
 * else a rounded relaxation improved by single flips (one candidate).
 */
export function binarySigns(Q: Float64Array, q: Float64Array, n: number, keep = 8): boolean[][] {
  if (n <= 20) {
    const s = new Array<boolean>(n).fill(false);
    const r = new Float64Array(n); // Qσ
    let f = 0;
    const best: Array<{ f: number; s: boolean[] }> = [{ f: 0, s: [...s] }];
    for (let g = 1; g < 2 ** n; g++) {
      const j = 31 - Math.clz32(g & -g);
      const step = s[j] ? -1 : 1;
      f += step * (2 * q[j] + 2 * r[j]) + Q[j * n + j];
      for (let l = 0; l < n; l++) r[l] += step * Q[l * n + j];
      s[j] = !s[j];
      if (best.length < keep || f < best[best.length - 1].f) {
        best.push({ f, s: [...s] });
        best.sort((a, b) => a.f - b.f);
        if (best.length > keep) best.pop();
      }
    }
    return best.map((b) => b.s);
  }
  const value = (s: boolean[]) => {
    let f = 0;
    for (let j = 0; j < n; j++) {
      if (!s[j]) continue;
      f += 2 * q[j];
      for (let l = 0; l < n; l++) if (s[l]) f += Q[j * n + l];
    }
    return f;
  };
  const relaxed = lstsqMulti(
    Q,
    Float64Array.from(q, (v) => -v),
    n,
    n,
    1,
  );
  const best = Array.from(relaxed, (v) => v > 0.5);
  for (let improved = true; improved;) {
    improved = false;
    const f0 = value(best);
    for (let j = 0; j < n && !improved; j++) {
      best[j] = !best[j];
      improved = value(best) < f0 - 1e-12 * Math.abs(f0);
      if (!improved) best[j] = !best[j];
    }
  }
  return [best];
}

/** Least squares of G on [relu(units), 1]: the coefficients and the largest |G − Ĝ| over the sample. */
function fitUnits(units: Unit[], s: FitSample, d: number, k1: number): { X: Float64Array; residual: number } {
  const { A, n } = design(units, s, d, false);
  const X = lstsqMulti(A, s.g, s.m, n, k1);
  let residual = 0;
  for (let i = 0; i < s.m; i++)
    for (let r = 0; r < k1; r++) {
      let z = 0;
      for (let j = 0; j < n; j++) z += A[i * n + j] * X[j * k1 + r];
      residual = Math.max(residual, Math.abs(z - s.g[i * k1 + r]));
    }
  return { X, residual };
}

/** B's top singular triplets (B: k1×d, row-major) above `floor`, at most `count`: power iteration, deflation. */
export function topSingular(
  B: Float64Array,
  k1: number,
  d: number,
  count: number,
  floor: number,
): Array<{ s: number; u: Float64Array; v: Float64Array }> {
  const M = Float64Array.from(B);
  const out: Array<{ s: number; u: Float64Array; v: Float64Array }> = [];
  for (let c = 0; c < Math.min(count, k1, d); c++) {
    let r0 = 0;
    let best = -1;
    for (let r = 0; r < k1; r++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += M[r * d + i] ** 2;
      if (s > best) [best, r0] = [s, r];
    }
    if (!(best > 0)) break;
    let v = M.slice(r0 * d, r0 * d + d);
    const u = new Float64Array(k1);
    let s = 0;
    for (let it = 0; it < 100; it++) {
      for (let r = 0; r < k1; r++) {
        let t = 0;
        for (let i = 0; i < d; i++) t += M[r * d + i] * v[i];
        u[r] = t;
      }
      const next = new Float64Array(d);
      for (let r = 0; r < k1; r++) for (let i = 0; i < d; i++) next[i] += M[r * d + i] * u[r];
      const norm = Math.hypot(...next);
      if (!(norm > 0)) break;
      for (let i = 0; i < d; i++) next[i] /= norm;
      v = next;
    }
    for (let r = 0; r < k1; r++) {
      let t = 0;
      for (let i = 0; i < d; i++) t += M[r * d + i] * v[i];
      u[r] = t;
    }
    s = Math.hypot(...u);
    if (!(s > floor)) break;
    for (let r = 0; r < k1; r++) u[r] /= s;
    for (let r = 0; r < k1; r++) for (let i = 0; i < d; i++) M[r * d + i] -= s * u[r] * v[i];
    out.push({ s, u, v });
  }
  return out;
}

export interface OutputLayer {
  /** the hidden units, signs fixed, then the always-active units standing for the linear remainder */
  units: Unit[];
  /** [units.length × k1] output weights on logit differences, and their offsets [k1] */
  a: Float64Array;
  c: Float64Array;
  /** units whose sign was flipped */
  flipped: number;
  /** largest |G − Ĝ| over the fit sample */
  residual: number;
  notes: string[];
}

/**
 * Fix the signs of `found` (at most `h` units) and solve the output layer on the sample (see the header).
 * `box` is the input domain: a spare unit must be active on all of it.
 */
export function solveOutputLayer(
  found: Unit[],
  s: FitSample,
  d: number,
  k1: number,
  h: number,
  box: { min: number; max: number },
): OutputLayer {
  const notes: string[] = [];
  let units: Unit[] = found.map((u) => ({ w: Float64Array.from(u.w), b: u.b }));
  let flipped = 0;
  const withLinear = design(units, s, d, true);
  if (s.m >= withLinear.n) {
    const X = lstsqMulti(withLinear.A, s.g, s.m, withLinear.n, k1);
    const n = units.length;
    const alpha = units.map((_, j) => Float64Array.from({ length: k1 }, (_, r) => X[j * k1 + r]));
    const B = new Float64Array(k1 * d); // the linear part's coefficients, row r = output r
    for (let t = 0; t < d; t++) for (let r = 0; r < k1; r++) B[r * d + t] = X[(n + t) * k1 + r];
    const Q = new Float64Array(n * n);
    const q = new Float64Array(n);
    const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, v, i) => acc + v * b[i], 0);
    for (let j = 0; j < n; j++) {
      for (let l = 0; l < n; l++) Q[j * n + l] = dot(alpha[j], alpha[l]) * dot(units[j].w, units[l].w);
      for (let r = 0; r < k1; r++) for (let t = 0; t < d; t++) q[j] += B[r * d + t] * alpha[j][r] * units[j].w[t];
    }
    // the few best sign vectors, judged by the fit without a linear part when every unit was found
    const spare = h - units.length;
    const flips = binarySigns(Q, q, n, spare > 0 ? 1 : 64);
    const signed = (flip: boolean[]) => units.map((u, j) => (flip[j] ? { w: u.w.map((v) => -v), b: -u.b } : u));
    const scores = flips.map((f) => (flips.length > 1 ? fitUnits(signed(f), s, d, k1).residual : 0));
    const flip = flips[scores.indexOf(Math.min(...scores))];
    units = signed(flip);
    flipped = flip.filter(Boolean).length;
    // what is left linear after the flips: units the search never found, active on the whole box
    if (spare > 0) {
      const again = design(units, s, d, true);
      const X2 = lstsqMulti(again.A, s.g, s.m, again.n, k1);
      const B2 = new Float64Array(k1 * d);
      for (let t = 0; t < d; t++) for (let r = 0; r < k1; r++) B2[r * d + t] = X2[(n + t) * k1 + r];
      const scale = Math.max(1e-12, ...alpha.map((a) => Math.hypot(...a)));
      const parts = topSingular(B2, k1, d, spare, 1e-3 * scale); // above the float32 noise of B2
      for (const p of parts) {
        let lowest = 0; // min over the box of v·x
        for (const vi of p.v) lowest += Math.min(vi * box.min, vi * box.max);
        units.push({ w: p.v, b: -lowest + 0.01 * (box.max - box.min) });
      }
      if (parts.length)
        notes.push(`${parts.length} spare unit(s) stand for the linear remainder of units active on the whole domain`);
    }
  } else {
    notes.push(`only ${s.m} usable fit queries for ${withLinear.n} unknowns: signs left as found`);
  }
  const n = units.length + 1;
  if (s.m < n) {
    notes.push(`too few fit queries (${s.m}) to solve the output layer (${n} unknowns): it is left at zero`);
    return { units, a: new Float64Array(units.length * k1), c: new Float64Array(k1), flipped, residual: NaN, notes };
  }
  const { X, residual } = fitUnits(units, s, d, k1);
  return {
    units,
    a: X.slice(0, units.length * k1),
    c: X.slice(units.length * k1, (units.length + 1) * k1),
    flipped,
    residual,
    notes,
  };
}

/**
 * The Net's weight arrays [W0 (d×h), b0 (h), W1 (h×k), b1 (k)] for an output layer on logit
 * differences: class 0's logit is the reference (zero column), slots beyond the units are zero.
 */
export function netWeights(layer: OutputLayer, d: number, h: number, k: number): Float32Array[] {
  const W0 = new Float32Array(d * h);
  const b0 = new Float32Array(h);
  const W1 = new Float32Array(h * k);
  const b1 = new Float32Array(k);
  const k1 = k - 1;
  layer.units.slice(0, h).forEach((u, j) => {
    for (let t = 0; t < d; t++) W0[t * h + j] = u.w[t];
    b0[j] = u.b;
    for (let r = 0; r < k1; r++) W1[j * k + r + 1] = layer.a[j * k1 + r];
  });
  for (let r = 0; r < k1; r++) b1[r + 1] = layer.c[r];
  return [W0, b0, W1, b1];
}
