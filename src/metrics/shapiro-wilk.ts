/**
 * Shapiro–Wilk W test for normality (Shapiro & Wilk 1965, Biometrika 52(3/4)), computed with Royston's
 * approximations: P. Royston, "Remark AS R94: A Remark on Algorithm AS 181: The W-test for Normality",
 * Applied Statistics 44(4), 1995. This is the algorithm behind scipy.stats.shapiro (swilk.f, now a Cython
 * translation), restricted to complete (uncensored) samples. PRADA (Juuti et al., EuroS&P 2019) runs it on
 * the growing set of minimum L2 distances between queries and alarms when W drops below a threshold δ.
 *
 * Numerical helpers: the normal quantile is Wichura's AS241 PPND16 (~1e-16 relative; scipy uses the older
 * AS111 PPND, which moves W by ~1e-10); the normal upper tail is Hill's AS66 ALNORM, as in AS R94 (~4e-11
 * relative, far below the error of Royston's p-value approximation itself).
 */

/** AS R94 step 1: polynomial corrections for the largest coefficient a_n, in powers of u = 1/√n. */
const C1 = [0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
/** AS R94 step 1: polynomial corrections for the second largest coefficient a_{n−1}, in powers of u = 1/√n. */
const C2 = [0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
/** AS R94 p-value, 4 ≤ n ≤ 11: mean and log-sd of −log(γ − log(1 − W)), polynomials in n. */
const C3 = [0.544, -0.39978, 0.025054, -0.0006714];
const C4 = [1.3822, -0.77857, 0.062767, -0.0020322];
/** AS R94 p-value, n ≥ 12: mean and log-sd of log(1 − W), polynomials in log n. */
const C5 = [-1.5861, -0.31082, -0.083751, 0.0038915];
const C6 = [-0.4803, -0.082676, 0.0030302];
/** AS R94 p-value, 4 ≤ n ≤ 11: the upper bound γ(n) = −2.273 + 0.459 n of log(1 − W). */
const G = [-2.273, 0.459];
/** The p-value AS R94 (and scipy) report when log(1 − W) ≥ γ(n), beyond the transformation's range. */
const SMALL_P = 1e-19;

/** W statistic and its p-value (Royston 1995, Algorithm AS R94), for 3 ≤ n ≤ 5000 samples. */
export function shapiroWilk(x: ArrayLike<number>): { w: number; p: number } {
  const n = x.length;
  if (n < 3) throw new RangeError(`shapiroWilk: need at least 3 samples, got ${n}`);
  if (n > 5000) throw new RangeError(`shapiroWilk: at most 5000 samples are supported (AS R94), got ${n}`);
  // Copy (the input is never mutated) and sort: W is computed on the order statistics.
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (!Number.isFinite(v)) throw new RangeError(`shapiroWilk: sample ${i} is not a finite number (${v})`);
    xs[i] = v;
  }
  xs.sort();

  // W is undefined for a zero-range sample (AS R94 reports IFAULT = 6, scipy warns and returns W = 1, p = 1).
  // We return the same so that PRADA never alarms on a degenerate, constant set of distances.
  if (xs[0] === xs[n - 1]) return { w: 1, p: 1 };

  // W is affine-invariant, so rescale by the largest magnitude (the range of finite values near ±MAX_VALUE
  // could overflow), then centre on a middle order statistic as scipy does (gh-15777) to limit cancellation.
  const scale = Math.max(Math.abs(xs[0]), Math.abs(xs[n - 1]));
  const mid = xs[n >> 1] / scale;
  for (let i = 0; i < n; i++) xs[i] = xs[i] / scale - mid;

  const a = coefficients(n);
  const w1 = oneMinusW(xs, a);
  const w = 1 - w1;
  return { w, p: pValue(n, w, w1) };
}

/**
 * AS R94 step 1: the first ⌊n/2⌋ Shapiro–Wilk coefficients a_n, a_{n−1}, … (largest first, all positive); the
 * full vector is antisymmetric (the i-th smallest observation gets −a[i], the i-th largest +a[i]).
 */
function coefficients(n: number): Float64Array {
  const nn2 = n >> 1;
  const a = new Float64Array(nn2);
  // Exact for n = 3: a = (−1/√2, 0, 1/√2).
  if (n === 3) {
    a[0] = Math.SQRT1_2;
    return a;
  }
  // Blom-type approximation of the expected normal order statistics, m_i = Φ⁻¹((i − 3/8)/(n + 1/4)); these
  // are negative for the lower half, which is all we need by symmetry.
  const m = new Float64Array(nn2);
  let summ2 = 0;
  for (let i = 0; i < nn2; i++) {
    m[i] = ppnd16((i + 1 - 0.375) / (n + 0.25));
    summ2 += m[i] * m[i];
  }
  summ2 *= 2;
  const ssumm2 = Math.sqrt(summ2);
  const rsn = 1 / Math.sqrt(n);
  // The largest coefficient(s) get Royston's polynomial correction to the normalised m; the rest are −m_i
  // rescaled so that the whole vector keeps unit length (Σ a_i² = 1).
  const a1 = poly(C1, rsn) - m[0] / ssumm2;
  let first: number;
  let fac: number;
  if (n > 5) {
    const a2 = poly(C2, rsn) - m[1] / ssumm2;
    fac = Math.sqrt((summ2 - 2 * m[0] * m[0] - 2 * m[1] * m[1]) / (1 - 2 * a1 * a1 - 2 * a2 * a2));
    a[1] = a2;
    first = 2;
  } else {
    fac = Math.sqrt((summ2 - 2 * m[0] * m[0]) / (1 - 2 * a1 * a1));
    first = 1;
  }
  a[0] = a1;
  for (let i = first; i < nn2; i++) a[i] = -m[i] / fac;
  return a;
}

/**
 * AS R94 step 2: 1 − W, with W the squared correlation between the sorted sample and the coefficients.
 * Computed as (√(SSA·SSX) − SAX)(√(SSA·SSX) + SAX)/(SSA·SSX) to avoid cancellation when W is close to 1.
 */
function oneMinusW(xs: Float64Array, a: Float64Array): number {
  const n = xs.length;
  const range = xs[n - 1] - xs[0];
  // Coefficient of the i-th order statistic: −a[i] in the lower half, +a[n−1−i] in the upper, 0 in the middle.
  const coef = (i: number): number => {
    const j = n - 1 - i;
    return i < j ? -a[i] : i > j ? a[j] : 0;
  };
  let sa = 0;
  let sx = 0;
  for (let i = 0; i < n; i++) {
    sa += coef(i);
    sx += xs[i] / range;
  }
  sa /= n;
  sx /= n;
  let ssa = 0;
  let ssx = 0;
  let sax = 0;
  for (let i = 0; i < n; i++) {
    const asa = coef(i) - sa;
    const xsx = xs[i] / range - sx;
    ssa += asa * asa;
    ssx += xsx * xsx;
    sax += asa * xsx;
  }
  const ssassx = Math.sqrt(ssa * ssx);
  return ((ssassx - sax) * (ssassx + sax)) / (ssa * ssx);
}

/** AS R94 step 3: the p-value of W through Royston's normalising transformations. */
function pValue(n: number, w: number, w1: number): number {
  if (n === 3) {
    // Exact: P(W ≤ w) = (6/π)(asin √w − π/3) = 1 − (6/π) acos √w on [3/4, 1]. W < 3/4 is rounding only, so
    // clamp it to p = 0 like scipy (gh-18322) instead of returning a negative probability.
    if (w < 0.75) return 0;
    return 1 - (6 / Math.PI) * Math.acos(Math.sqrt(w));
  }
  let y = Math.log(w1);
  let mean: number;
  let sd: number;
  if (n <= 11) {
    // Small samples: −log(γ − log(1 − W)) is approximately normal; beyond γ the approximation has no support.
    const gamma = poly(G, n);
    if (y >= gamma) return SMALL_P;
    y = -Math.log(gamma - y);
    mean = poly(C3, n);
    sd = Math.exp(poly(C4, n));
  } else {
    // n ≥ 12: log(1 − W) is approximately normal with mean and log-sd polynomial in log n.
    const ln = Math.log(n);
    mean = poly(C5, ln);
    sd = Math.exp(poly(C6, ln));
  }
  return alnormUpper((y - mean) / sd);
}

/** c[0] + c[1]·x + c[2]·x² + … by Horner's rule (AS R94's POLY). */
function poly(c: readonly number[], x: number): number {
  let r = 0;
  for (let i = c.length - 1; i >= 0; i--) r = r * x + c[i];
  return r;
}

// AS241 PPND16 coefficients, constant term first: numerator and denominator of the central rational function
// (|p − 1/2| ≤ 0.425, in r = 0.180625 − q²), of the near tail (in r − 1.6) and of the far tail (in r − 5),
// where r = √(−log(min(p, 1 − p))).
const PPND_A = [
  3.387132872796366608, 1.3314166789178437745e2, 1.9715909503065514427e3, 1.3731693765509461125e4,
  4.5921953931549871457e4, 6.7265770927008700853e4, 3.3430575583588128105e4, 2.5090809287301226727e3,
];
const PPND_B = [
  1, 4.2313330701600911252e1, 6.871870074920579083e2, 5.3941960214247511077e3, 2.1213794301586595867e4,
  3.930789580009271061e4, 2.8729085735721942674e4, 5.226495278852854561e3,
];
const PPND_C = [
  1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055, 3.64784832476320460504, 1.27045825245236838258,
  2.4178072517745061177e-1, 2.27238449892691845833e-2, 7.7454501427834140764e-4,
];
const PPND_D = [
  1, 2.05319162663775882187, 1.6763848301838038494, 6.8976733498510000455e-1, 1.4810397642748007459e-1,
  1.51986665636164571966e-2, 5.475938084995344946e-4, 1.05075007164441684324e-9,
];
const PPND_E = [
  6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358, 2.9656057182850489123e-1,
  2.6532189526576123093e-2, 1.2426609473880784386e-3, 2.71155556874348757815e-5, 2.01033439929228813265e-7,
];
const PPND_F = [
  1, 5.9983220655588793769e-1, 1.3692988092273580531e-1, 1.48753612908506148525e-2, 7.868691311456132591e-4,
  1.8463183175100546818e-5, 1.4215117583164458887e-7, 2.04426310338993978564e-15,
];

/** Φ⁻¹(p) for 0 < p < 1: Wichura's AS241 PPND16 (Applied Statistics 37(3), 1988), ~1e-16 relative accuracy. */
function ppnd16(p: number): number {
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (q * poly(PPND_A, r)) / poly(PPND_B, r);
  }
  const r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  const z = r <= 5 ? poly(PPND_C, r - 1.6) / poly(PPND_D, r - 1.6) : poly(PPND_E, r - 5) / poly(PPND_F, r - 5);
  return q < 0 ? -z : z;
}

/**
 * Upper-tail normal probability 1 − Φ(z): Hill's AS66 ALNORM (Applied Statistics 22(3), 1973), the routine
 * AS R94 calls, with the later extension of the upper cut-off from 18.66 to 38 (as in scipy's swilk).
 */
function alnormUpper(z: number): number {
  let upper = true;
  if (!(z > 0)) {
    upper = false;
    z = -z;
  }
  if (z > 7 && (!upper || z > 38)) return upper ? 0 : 1;
  const y = 0.5 * z * z;
  let tail: number;
  if (z <= 1.28) {
    // Rational approximation near the centre.
    tail =
      0.5 -
      z *
        (0.398942280444 -
          (0.399903438504 * y) /
            (y + 5.75885480458 - 29.8213557808 / (y + 2.62433121679 + 48.6959930692 / (y + 5.92885724438))));
  } else {
    // Continued fraction for the tail, evaluated from the innermost term outwards.
    let cf = z + 3.99019417011;
    cf = z + 0.742380924027 + 30.789933034 / cf;
    cf = z + 4.8385912808 - 15.1508972451 / cf;
    cf = z - 0.151679116635 + 5.29330324926 / cf;
    cf = z + 3.98064794e-4 + 1.98615381364 / cf;
    cf = z - 3.8052e-8 + 1.00000615302 / cf;
    tail = (0.398942280385 * Math.exp(-y)) / cf;
  }
  return upper ? tail : 1 - tail;
}
