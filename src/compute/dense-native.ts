/**
 * A dense ReLU network with a softmax head, computed on the native BLAS straight from JavaScript
 * memory — no tensors, no kernel dispatch:
 *   forward   h_{l+1} = act(h_l · W_l + b_l),  z = h_L                  (sgemm + biasAct)
 *   loss      L = −(1/n) Σ_i Σ_k y_ik log softmax(z_i)_k,  dz = (softmax(z)·Σ_k y_ik − y) / n
 *   backward  dW_l = h_lᵀ · dz_l,  dh_l = dz_l · W_lᵀ,  dz_{l−1} = dh_l ⊙ 1[h_l > 0],  db = Σ_rows dz
 * Through tfjs a batch is copied into the wasm heap, runs as a dozen kernels and is read back; for
 * the MLP those copies and dispatches were a quarter of inference and of a training step (issue 18).
 * The MseMlpGrads kernel runs `denseLossAndGrads` on heap views; `Net.predictRows` (which applies
 * its head to `denseLogits`' blocks as predict does, so the probabilities are the same bits) and the
 * training loop's dense path run these functions on their own arrays. The same arithmetic as
 * src/models/ops.ts (the kernel suite checks one against the other).
 */
import type { NativeBlas } from './native.js';

export interface DenseLayer {
  /** [inputs, outputs], row-major */
  w: Float32Array;
  b: Float32Array;
  inputs: number;
  outputs: number;
  relu: boolean;
}

/** activations and the two backward buffers, reused across calls (single-threaded, not re-entrant) */
let scratch = new Float32Array(0);

function ensureScratch(size: number): Float32Array {
  if (scratch.length < size) scratch = new Float32Array(size);
  return scratch;
}

/**
 * The logits of `layers` for the n rows of x, `batch` rows per GEMM: `emit(z, start, m)` receives
 * each block's [m, k] logits (a view of scratch, valid during the call) for rows start … start + m.
 */
export function denseLogits(
  blas: NativeBlas,
  layers: DenseLayer[],
  x: Float32Array,
  n: number,
  batch: number,
  emit: (z: Float32Array, start: number, m: number) => void,
): void {
  const d = layers[0].inputs;
  if (x.length < n * d) throw new RangeError(`denseLogits: ${x.length} values for ${n} rows of ${d}`);
  const widest = Math.max(...layers.map((l) => l.outputs));
  const rows = Math.max(1, Math.min(batch, n));
  const s2 = ensureScratch(2 * rows * widest);
  const bufs = [s2.subarray(0, rows * widest), s2.subarray(rows * widest, 2 * rows * widest)];
  for (let s = 0; s < n; s += rows) {
    const m = Math.min(rows, n - s);
    let h = x.subarray(s * d, (s + m) * d);
    layers.forEach((l, i) => {
      const o = bufs[i % 2].subarray(0, m * l.outputs);
      blas.sgemm(h, l.w, o, 1, m, l.outputs, l.inputs, 0, 0, 0, 0, 0);
      blas.biasAct(o, l.b, m, l.outputs, l.relu ? 1 : 0);
      h = o;
    });
    emit(h, s, m);
  }
}

/**
 * The mean softmax cross-entropy of `layers` on n rows of x against targets y ([n, k], one-hot or
 * soft, not necessarily normalised), and its gradient for every layer into `grads` (same shapes as
 * the layers' w and b). Returns the loss.
 */
export function denseLossAndGrads(
  blas: NativeBlas,
  layers: DenseLayer[],
  x: Float32Array,
  y: Float32Array,
  n: number,
  grads: Array<{ w: Float32Array; b: Float32Array }>,
): number {
  const L = layers.length;
  const dims = [layers[0].inputs, ...layers.map((l) => l.outputs)];
  const k = dims[L];
  // scratch: every layer's output, then two [n, max width] buffers for dz and dh
  const offs: number[] = [];
  let used = 0;
  for (let l = 0; l < L; l++) {
    offs.push(used);
    used += n * dims[l + 1];
  }
  const widest = Math.max(...dims);
  const s = ensureScratch(used + 2 * n * widest);
  const act = (l: number) => s.subarray(offs[l], offs[l] + n * dims[l + 1]);
  const dz = s.subarray(used, used + n * widest);
  const dh = s.subarray(used + n * widest, used + 2 * n * widest);
  let h = x;
  for (let l = 0; l < L; l++) {
    const a = act(l);
    blas.sgemm(h, layers[l].w, a, 1, n, dims[l + 1], dims[l], 0, 0, 0, 0, 0);
    blas.biasAct(a, layers[l].b, n, dims[l + 1], layers[l].relu ? 1 : 0);
    h = a;
  }
  // softmax cross-entropy on z = h, in double precision per row (Orekondy-style soft targets)
  const z = h;
  const dbLast = grads[L - 1].b;
  dbLast.fill(0);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const r = i * k;
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, z[r + j]);
    let se = 0;
    for (let j = 0; j < k; j++) se += Math.exp(z[r + j] - m);
    const lse = m + Math.log(se);
    let ysum = 0;
    for (let j = 0; j < k; j++) {
      ysum += y[r + j];
      loss -= y[r + j] * (z[r + j] - lse);
    }
    for (let j = 0; j < k; j++) {
      const g = (Math.exp(z[r + j] - lse) * ysum - y[r + j]) / n;
      dz[r + j] = g;
      dbLast[j] += g;
    }
  }
  for (let l = L - 1; l >= 0; l--) {
    const hin = l === 0 ? x : act(l - 1);
    const cols = dims[l + 1];
    // dW_l = h_lᵀ · dz   [d_l, d_{l+1}]
    blas.sgemm(hin, dz, grads[l].w, 1, dims[l], cols, n, 1, 0, 0, 0, 0);
    if (l === 0) break;
    // dh = dz · W_lᵀ   [n, d_l]; then the previous layer's dz and its bias gradient in one pass
    blas.sgemm(dz, layers[l].w, dh, 1, n, dims[l], cols, 0, 1, 0, 0, 0);
    blas.actBiasGrad(dh, act(l - 1), dz, grads[l - 1].b, n, dims[l], layers[l - 1].relu ? 1 : 0);
  }
  return loss / n;
}
