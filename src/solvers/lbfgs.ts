/**
 * L-BFGS (Nocedal & Wright, Alg. 7.4/7.5) with a backtracking Armijo line search, in float64.
 * Tramèr et al. 2016 solve the softmax/OvR equation systems as convex loss minimisation with
 * scipy's BFGS (gtol 1e-6); for these smooth convex problems this is sufficient and deterministic.
 */

export interface LbfgsOptions {
  maxIter: number;
  /** stop when ‖∇f‖∞ ≤ gtol */
  gtol: number;
  /** history pairs kept */
  memory: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  iterations: number;
  converged: boolean;
}

/** Minimise f from x0; `fg(x, g)` returns f(x) and writes ∇f(x) into g. */
export function lbfgs(
  fg: (x: Float64Array, g: Float64Array) => number,
  x0: Float64Array,
  opts: Partial<LbfgsOptions> = {},
): LbfgsResult {
  const { maxIter = 500, gtol = 1e-6, memory = 10 } = opts;
  const n = x0.length;
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let f = fg(x, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const dot = (a: Float64Array, b: Float64Array) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[i] * b[i];
    return s;
  };
  const infNorm = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let it = 0;
  for (; it < maxIter; it++) {
    if (infNorm(g) <= gtol) return { x, f, iterations: it, converged: true };
    // two-loop recursion: d = −H·g
    const q = Float64Array.from(g);
    const alpha = new Array<number>(S.length);
    for (let i = S.length - 1; i >= 0; i--) {
      alpha[i] = rho[i] * dot(S[i], q);
      for (let j = 0; j < n; j++) q[j] -= alpha[i] * Y[i][j];
    }
    const gamma = S.length
      ? dot(S[S.length - 1], Y[Y.length - 1]) / dot(Y[Y.length - 1], Y[Y.length - 1])
      : 1 / Math.max(1, infNorm(g));
    for (let j = 0; j < n; j++) q[j] *= gamma;
    for (let i = 0; i < S.length; i++) {
      const beta = rho[i] * dot(Y[i], q);
      for (let j = 0; j < n; j++) q[j] += S[i][j] * (alpha[i] - beta);
    }
    const dir = q.map((v) => -v);
    let slope = dot(g, dir);
    if (slope >= 0) {
      // not a descent direction (numerical trouble): restart from steepest descent
      S.length = Y.length = rho.length = 0;
      for (let j = 0; j < n; j++) dir[j] = -g[j];
      slope = dot(g, dir);
    }
    // backtracking Armijo line search
    let step = 1;
    const xn = new Float64Array(n);
    const gn = new Float64Array(n);
    let fn = Infinity;
    for (let k = 0; k < 40; k++) {
      for (let j = 0; j < n; j++) xn[j] = x[j] + step * dir[j];
      fn = fg(xn, gn);
      if (fn <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fn <= f)) return { x, f, iterations: it, converged: false }; // no progress possible
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      s[j] = xn[j] - x[j];
      y[j] = gn[j] - g[j];
    }
    const sy = dot(s, y);
    if (sy > 1e-12) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > memory) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    const converged = Math.abs(f - fn) <= 1e-15 * Math.max(1, Math.abs(f));
    x = Float64Array.from(xn);
    g = Float64Array.from(gn);
    f = fn;
    if (converged) return { x, f, iterations: it + 1, converged: true };
  }
  return { x, f, iterations: it, converged: infNorm(g) <= gtol };
}
