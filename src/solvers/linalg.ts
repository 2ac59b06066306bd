/**
 * Small dense linear algebra in float64 for equation-solving attacks (Tramèr et al. 2016 solve
 * d+1 … 100·(d+1) equations in d+1 unknowns): least squares by Householder QR, which stays
 * accurate where the normal equations would square the condition number.
 */

/** Least-squares solution of A x ≈ b; A is m×n row-major (m ≥ n), returns x (n) and the rank used. */
export function lstsq(
  A: Float64Array,
  b: Float64Array,
  m: number,
  n: number,
  rcond = 1e-10,
): { x: Float64Array; rank: number } {
  if (m < n) throw new RangeError(`lstsq: need at least ${n} equations, got ${m}`);
  const { x, rank } = solveQr(A, b, m, n, 1, rcond);
  return { x, rank };
}

/**
 * Least squares A X ≈ B for c right-hand sides at once (B m×c, row-major; X n×c): one factorisation
 * for all of them (exact ReLU extraction fits every logit difference on the same features).
 */
export function lstsqMulti(A: Float64Array, B: Float64Array, m: number, n: number, c: number): Float64Array {
  if (m < n) throw new RangeError(`lstsqMulti: need at least ${n} equations, got ${m}`);
  return solveQr(A, B, m, n, c, 1e-10).x;
}

/** Householder QR of A applied to the c columns of Y, then back substitution, dropping directions below rcond. */
function solveQr(
  A: Float64Array,
  B: Float64Array,
  m: number,
  n: number,
  c: number,
  rcond: number,
): { x: Float64Array; rank: number } {
  const R = Float64Array.from(A);
  const Y = Float64Array.from(B);
  const diag = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    // Householder vector for column k, rows k..m-1
    let norm = 0;
    for (let i = k; i < m; i++) norm += R[i * n + k] ** 2;
    norm = Math.sqrt(norm);
    const alpha = R[k * n + k] > 0 ? -norm : norm;
    diag[k] = alpha;
    if (norm === 0) continue;
    R[k * n + k] -= alpha;
    let vnorm = 0;
    for (let i = k; i < m; i++) vnorm += R[i * n + k] ** 2;
    if (vnorm === 0) continue;
    // apply H = I − 2 v vᵀ / (vᵀ v) to the remaining columns and to Y
    for (let j = k + 1; j < n; j++) {
      let s = 0;
      for (let i = k; i < m; i++) s += R[i * n + k] * R[i * n + j];
      const f = (2 * s) / vnorm;
      for (let i = k; i < m; i++) R[i * n + j] -= f * R[i * n + k];
    }
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let i = k; i < m; i++) s += R[i * n + k] * Y[i * c + j];
      const f = (2 * s) / vnorm;
      for (let i = k; i < m; i++) Y[i * c + j] -= f * R[i * n + k];
    }
  }
  // back substitution on R (diagonal in `diag`)
  const maxDiag = Math.max(...Array.from(diag, Math.abs));
  const x = new Float64Array(n * c);
  let rank = 0;
  for (let k = n - 1; k >= 0; k--) {
    if (Math.abs(diag[k]) <= rcond * maxDiag) continue; // a direction the sample does not determine
    rank++;
    for (let j = 0; j < c; j++) {
      let s = Y[k * c + j];
      for (let l = k + 1; l < n; l++) s -= R[k * n + l] * x[l * c + j];
      x[k * c + j] = s / diag[k];
    }
  }
  return { x, rank };
}
