/**
 * The defense-aware attacker's inverse of reverse sigmoid (Lee, Edwards, Molloy, Su 2018, "Defending
 * Against Machine Learning Model Stealing Attacks Using Deceptive Perturbations"). The defense answers
 *     r(y_j) = β·[ s(γ·s⁻¹(y_j)) − ½ ]                            (Lee et al., eq. 3)
 *     ỹ_j    = α·(y_j − r(y_j)),   α = 1 / Σ_i (y_i − r(y_i))      (eq. 4)
 * (src/defenses/reverse-sigmoid.ts: y clipped to [1e-9, 1 − 1e-9] before the logit, y − r(y) to
 * [0, 1]). Write g(y) = y − r(y) and c = 1/α. An answer row then says
 *     g(y_j) = c·ỹ_j  for every class j,   Σ_j y_j = 1,
 * so y is known once the one unknown c per row is. In the logit u = s⁻¹(y),
 *     g = s(u) − β·s(γu) + β/2,   g'(u) = s'(u) − βγ·s'(γu),   g(−u) = 1 − g(u),
 * and s'(u)/s'(γu) falls monotonically in |u| for γ < 1: when βγ < 1, g falls from β/2 (y → 0) to a
 * minimum at y_lo, rises to a maximum at y_hi = 1 − y_lo, and falls again to 1 − β/2 (y → 1). Three
 * monotone pieces, A = (0, y_lo], B = [y_lo, y_hi], C = [y_hi, 1): tiny probabilities on A are
 * answered large (the deception), and one value c·ỹ_j has up to three preimages, one per piece. (For
 * γ ≥ 1 and βγ ≤ 1, g is monotone: one piece, and the inverse is unique.)
 *
 * Design. Given a piece for every class, y_j(c) = g_piece⁻¹(c·ỹ_j) and Σ_j y_j(c) = 1 is one equation
 * in c: we take the interval of c on which every c·ỹ_j lies in its piece's range, scan it and refine
 * each sign change (Illinois regula falsi). Which pieces? Natural classifiers put their mass on one
 * or a few classes and leave the rest tiny, i.e. on A. So assignments are tried in order of sparsity:
 * ℓ classes off A (each on B, or the top answer on C — only a class with y ≥ ½ can be on C, and it
 * is then the largest answer): every ℓ-subset of the 12 largest answers for ℓ = 0…3, then the ℓ
 * largest for ℓ = 4…k (flat rows). Every solution is checked by re-applying eqs. 3–4 (the L1 distance
 * between its re-defended row and ỹ); the first level with an exact solution (L1 ≤ 1e-5, the float32
 * answer's precision) wins, and within a level the least confident one (smallest max y: both explain
 * ỹ exactly, and the flatter target is the safer one to train on). If no level is exact, the candidate
 * with the smallest L1 (after renormalising y) is returned. All arithmetic is float64.
 *
 * What it cannot do. (1) A row with a class other than the top near the fold y_lo (at γ = 0.1: 0.005
 * for β = 0.2, 0.012 for 0.5, 0.020 for 0.8, 0.025 for 1; 0.035 at β = γ = 0.5) usually has another
 * exact preimage, often sparser, which it then returns: the answer cannot tell them apart. With every
 * class but the top below y_lo/2 the preimage is unique and recovered (the tests). (2) (β, γ) are not
 * estimated from answers: whole families of pairs invert every answer exactly — answers made with
 * β = 0.8, γ = 0.1 are inverted exactly by every β ≤ 0.8 at γ = 0.1 and β ≤ 1.2 at γ = 0.05 (sampled
 * on 150 natural rows), the stronger pairs into sharper posteriors — so neither the re-defense L1 nor
 * sharpness singles them out; the attacker must know them (ART's defaults: β = 1, γ = 0.1).
 */

/** The defense's clip of y before the logit (src/defenses/reverse-sigmoid.ts). */
const CLIP = 1e-9;
/** s⁻¹(1 − 1e-9): logits range over [−U_MAX, U_MAX] */
const U_MAX = Math.log((1 - CLIP) / CLIP);
/** a solution re-defends to within this L1 of the answer: exact (float32 answers carry ~1e-7 per entry) */
export const EXACT_L1 = 1e-5;
/** classes tried off piece A: the largest answers of a row */
const MAX_OFF_A = 12;
/** classes off piece A at most (the sparsity levels) */
const MAX_LEVEL = 3;
/** points scanned across an assignment's interval of c */
const SCAN = 24;

const sigmoid = (u: number) => 1 / (1 + Math.exp(-u));

/** One monotone piece of g over the logit u ∈ [u0, u1], tabulated for a quick bracket. */
interface Piece {
  rising: boolean;
  us: Float64Array;
  vs: Float64Array;
  /** the piece's range of g */
  vmin: number;
  vmax: number;
}

/** g = y − r(y) of eq. 3–4 (before α) as a function of the logit, its derivative, and its monotone pieces. */
export class ReverseSigmoidCurve {
  readonly pieces: Piece[];

  constructor(
    readonly beta: number,
    readonly gamma: number,
  ) {
    if (!(beta >= 0) || !Number.isFinite(beta)) throw new RangeError(`reverse sigmoid: beta must be ≥ 0, got ${beta}`);
    if (!(gamma > 0) || !Number.isFinite(gamma))
      throw new RangeError(`reverse sigmoid: gamma must be > 0, got ${gamma}`);
    // g' changes sign at most once on u < 0 (and symmetrically on u > 0): find it on a grid, then bisect
    let crit: number | undefined;
    const grid = 4096;
    let prev = this.dg(-U_MAX);
    for (let i = 1; i <= grid && crit === undefined; i++) {
      const u = -U_MAX + (U_MAX * i) / grid;
      const d = this.dg(u);
      if (d > 0 !== prev > 0 && i < grid) crit = this.bisect(u - U_MAX / grid, u, prev);
      prev = d;
    }
    const bounds = crit === undefined ? [-U_MAX, U_MAX] : [-U_MAX, crit, -crit, U_MAX];
    this.pieces = [];
    for (let p = 0; p + 1 < bounds.length; p++) this.pieces.push(this.tabulate(bounds[p], bounds[p + 1]));
    if (this.pieces.every((p) => p.vmax - p.vmin < 1e-9))
      throw new RangeError(`reverse sigmoid: β=${beta}, γ=${gamma} answers the uniform row whatever y is: no inverse`);
  }

  /** y_lo, where piece A (g falling from y = 0) meets B; undefined when g is monotone */
  get fold(): number | undefined {
    const a = this.pieces[0];
    return this.pieces.length > 1 ? sigmoid(a.us[a.us.length - 1]) : undefined;
  }

  /** g(u) = s(u) − β·s(γu) + β/2 */
  g(u: number): number {
    return sigmoid(u) - this.beta * (sigmoid(this.gamma * u) - 0.5);
  }

  /** g'(u) = s'(u) − βγ·s'(γu) */
  dg(u: number): number {
    const s = sigmoid(u);
    const t = sigmoid(this.gamma * u);
    return s * (1 - s) - this.beta * this.gamma * t * (1 - t);
  }

  /** y on `piece` with g(y) = v (the piece's end nearest in value when v lies outside its range) */
  invert(piece: Piece, v: number): number {
    const { us, vs, rising } = piece;
    const n = us.length;
    const first = vs[0];
    const last = vs[n - 1];
    if (rising ? v <= first : v >= first) return sigmoid(us[0]);
    if (rising ? v >= last : v <= last) return sigmoid(us[n - 1]);
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (vs[mid] < v === rising) lo = mid;
      else hi = mid;
    }
    // safeguarded Newton inside the table's bracket [a, b], from the linear interpolation
    let a = us[lo];
    let b = us[hi];
    let u = a + ((b - a) * (v - vs[lo])) / (vs[hi] - vs[lo]);
    for (let it = 0; it < 40; it++) {
      const f = this.g(u) - v;
      if (f < 0 === rising) a = u;
      else b = u;
      let next = u - f / this.dg(u);
      if (!(next > a && next < b)) next = 0.5 * (a + b);
      const done = Math.abs(next - u) < 1e-12;
      u = next;
      if (done) break;
    }
    return sigmoid(u);
  }

  private bisect(a: number, b: number, da: number): number {
    for (let i = 0; i < 80; i++) {
      const m = 0.5 * (a + b);
      if (this.dg(m) > 0 === da > 0) a = m;
      else b = m;
    }
    return 0.5 * (a + b);
  }

  private tabulate(u0: number, u1: number): Piece {
    const n = 512;
    const us = new Float64Array(n);
    const vs = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      us[i] = u0 + ((u1 - u0) * i) / (n - 1);
      vs[i] = this.g(us[i]);
    }
    const rising = vs[n - 1] > vs[0];
    return { rising, us, vs, vmin: Math.min(vs[0], vs[n - 1]), vmax: Math.max(vs[0], vs[n - 1]) };
  }
}

/** Eqs. 3–4 in float64, as the defense applies them: y [k] → ỹ written to `out` (the row itself if g sums to 0). */
export function redefend(curve: ReverseSigmoidCurve, y: ArrayLike<number>, out: Float64Array): Float64Array {
  const k = out.length;
  let sum = 0;
  for (let j = 0; j < k; j++) {
    const yc = Math.min(1 - CLIP, Math.max(CLIP, y[j]));
    const r = curve.beta * (sigmoid(curve.gamma * Math.log(yc / (1 - yc))) - 0.5);
    out[j] = Math.min(1, Math.max(0, y[j] - r));
    sum += out[j];
  }
  for (let j = 0; j < k; j++) out[j] = sum > 0 ? out[j] / sum : y[j];
  return out;
}

/** One row's inverse: y, and the L1 between its re-defended row and the answer. */
export interface RowInverse {
  y: Float64Array;
  residual: number;
}

/** A solution candidate's quality, for the choice between them. */
interface Candidate extends RowInverse {
  level: number;
}

/**
 * Recover a posterior y from one answer row ỹ [k] (float64), with its re-defense residual. See the
 * module header for the choice among preimages.
 */
export function invertRow(curve: ReverseSigmoidCurve, answer: ArrayLike<number>): RowInverse {
  const k = answer.length;
  const t = new Float64Array(k);
  let sum = 0;
  for (let j = 0; j < k; j++) sum += Math.max(0, answer[j]);
  for (let j = 0; j < k; j++) t[j] = sum > 0 ? Math.max(0, answer[j]) / sum : 1 / k;
  const P = curve.pieces;
  const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => t[b] - t[a] || a - b);
  const assign = new Int8Array(k);
  const scratch = new Float64Array(k);
  let best: Candidate | undefined;
  const consider = (c: Candidate) => {
    if (
      !best ||
      (c.residual <= EXACT_L1
        ? best.residual > EXACT_L1 || c.level < best.level || (c.level === best.level && maxOf(c.y) < maxOf(best.y))
        : best.residual > EXACT_L1 && c.residual < best.residual)
    )
      best = c;
  };
  if (P.length === 1) {
    for (const c of solve(curve, t, assign, 0, scratch)) consider(c);
    return best ?? { y: t, residual: Infinity };
  }
  // sparsity levels: ℓ classes off A — on B, or the largest answer on C and the others on B. Up to
  // MAX_LEVEL, every ℓ-subset of the largest answers; beyond, the ℓ largest answers only (flat rows)
  const offA = order.slice(0, Math.min(k, MAX_OFF_A));
  for (let level = 0; level <= k; level++) {
    const sets = level <= MAX_LEVEL ? subsets(offA, level) : [order.slice(0, level)];
    for (const set of sets) {
      for (const topOnC of level > 0 && set.includes(order[0]) ? [false, true] : [false]) {
        assign.fill(0);
        for (const j of set) assign[j] = 1;
        if (topOnC) assign[order[0]] = 2;
        for (const c of solve(curve, t, assign, level, scratch)) consider(c);
      }
    }
    if (best && best.residual <= EXACT_L1) break;
  }
  return best ?? { y: t, residual: Infinity };
}

/**
 * The solutions of Σ_j g_{piece(j)}⁻¹(c·ỹ_j) = 1 for one assignment of classes to pieces: every root
 * on the interval of c where each c·ỹ_j lies in its piece's range, or the closest point of a scan
 * when there is none (an approximate candidate, judged by its residual).
 */
function solve(
  curve: ReverseSigmoidCurve,
  t: Float64Array,
  assign: Int8Array,
  level: number,
  scratch: Float64Array,
): Candidate[] {
  const k = t.length;
  const P = curve.pieces;
  let lo = 0;
  let hi = Infinity;
  for (let j = 0; j < k; j++) {
    if (t[j] <= 0) continue;
    const p = P[assign[j]];
    lo = Math.max(lo, p.vmin / t[j]);
    hi = Math.min(hi, p.vmax / t[j]);
  }
  const feasible = lo < hi;
  if (!feasible) {
    // no c puts every answer in its piece's range: only the sparsest assignments offer a fallback
    if (level > 1) return [];
    lo = 1e-3;
    hi = k;
  }
  const y = (c: number, out: Float64Array) => {
    let s = 0;
    for (let j = 0; j < k; j++) {
      out[j] = curve.invert(P[assign[j]], c * t[j]);
      s += out[j];
    }
    return s - 1;
  };
  const cs = new Float64Array(SCAN);
  const fs = new Float64Array(SCAN);
  for (let i = 0; i < SCAN; i++) {
    cs[i] = lo + ((hi - lo) * i) / (SCAN - 1);
    fs[i] = y(cs[i], scratch);
  }
  const out: Candidate[] = [];
  const candidate = (c: number) => {
    const yy = new Float64Array(k);
    const f = y(c, yy);
    for (let j = 0; j < k; j++) yy[j] /= f + 1;
    const re = redefend(curve, yy, scratch);
    let residual = 0;
    for (let j = 0; j < k; j++) residual += Math.abs(re[j] - t[j]);
    out.push({ y: yy, residual, level });
  };
  for (let i = 0; i + 1 < SCAN; i++) {
    if (fs[i] === 0) candidate(cs[i]);
    else if (fs[i] > 0 !== fs[i + 1] > 0 && fs[i + 1] !== 0)
      candidate(illinois(y, cs[i], cs[i + 1], fs[i], fs[i + 1], scratch));
  }
  if (fs[SCAN - 1] === 0) candidate(cs[SCAN - 1]);
  if (!out.length && level <= 1) {
    let i0 = 0;
    for (let i = 1; i < SCAN; i++) if (Math.abs(fs[i]) < Math.abs(fs[i0])) i0 = i;
    candidate(cs[i0]);
  }
  return out;
}

/** A root of f in [a, b] (f(a), f(b) of opposite signs) by the Illinois variant of regula falsi. */
function illinois(
  f: (c: number, out: Float64Array) => number,
  a: number,
  b: number,
  fa: number,
  fb: number,
  scratch: Float64Array,
): number {
  let side = 0;
  let c = a;
  for (let it = 0; it < 100; it++) {
    c = (a * fb - b * fa) / (fb - fa);
    const fc = f(c, scratch);
    if (Math.abs(fc) < 1e-13 || Math.abs(b - a) < 1e-14 * Math.abs(c)) break;
    if (fc > 0 === fb > 0) {
      b = c;
      fb = fc;
      if (side === -1) fa /= 2;
      side = -1;
    } else {
      a = c;
      fa = fc;
      if (side === 1) fb /= 2;
      side = 1;
    }
  }
  return c;
}

/** Every `size`-subset of `items`, in lexicographic order. */
function* subsets(items: number[], size: number, from = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === size) {
    yield acc;
    return;
  }
  for (let i = from; i <= items.length - (size - acc.length); i++) {
    acc.push(items[i]);
    yield* subsets(items, size, i + 1, acc);
    acc.pop();
  }
}

function maxOf(y: Float64Array): number {
  let m = -Infinity;
  for (const v of y) m = Math.max(m, v);
  return m;
}

/**
 * Invert reverse-sigmoid answers: rows [n·k] of ỹ (Lee et al. eq. 4) → rows [n·k] of recovered
 * posteriors y, on the simplex, for known β, γ.
 *
 *     invertReverseSigmoid(answers, 10, 0.8, 0.1) // what the victim said before the defense
 */
export function invertReverseSigmoid(rows: Float32Array, k: number, beta: number, gamma: number): Float32Array {
  return invertRows(new ReverseSigmoidCurve(beta, gamma), rows, k).y;
}

/** The inverse of every row [n·k], and each row's residual (the L1 between its re-defended row and the answer). */
export function invertRows(
  curve: ReverseSigmoidCurve,
  rows: Float32Array,
  k: number,
): { y: Float32Array; residuals: Float64Array } {
  if (!Number.isInteger(k) || k < 2 || rows.length % k !== 0)
    throw new RangeError(`invertReverseSigmoid: ${rows.length} values are not rows of k=${k} classes`);
  const n = rows.length / k;
  const y = new Float32Array(rows.length);
  const residuals = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = invertRow(curve, rows.subarray(i * k, (i + 1) * k));
    y.set(r.y, i * k);
    residuals[i] = r.residual;
  }
  return { y, residuals };
}
