/**
 * MseMlpGrads: the loss and every gradient of a dense ReLU network with a softmax cross-entropy
 * head, in one kernel (native BLAS build only):
 *   forward   h_{l+1} = act(h_l · W_l + b_l),  z = h_L                  (sgemm + biasAct)
 *   loss      L = −(1/n) Σ_i Σ_k y_ik log softmax(z_i)_k,  dz = (softmax(z)·Σ_k y_ik − y) / n
 *   backward  dW_l = h_lᵀ · dz_l,  dh_l = dz_l · W_lᵀ,  dz_{l−1} = dh_l ⊙ 1[h_l > 0],  db = Σ_rows dz
 * Through tfjs autograd an MLP step is about forty kernel calls whose dispatch, not arithmetic, was
 * a third of the step (issue 18); here it is one, and the activations live in a scratch buffer
 * outside the wasm heap. Inputs x [n, d], y [n, k], then w0, b0, w1, b1, …; attrs.relu[l] says
 * whether layer l has a ReLU (the last is linear). Outputs: the loss (a scalar), dW0, db0, dW1, ….
 * The same arithmetic as src/models/ops.ts (the kernel suite checks one against the other).
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export const MLP_GRADS_KERNEL = 'MseMlpGrads';

let scratch = new Float32Array(0);

export function makeMlpGrads(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: MLP_GRADS_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend: kb, attrs } = args as KernelArgs;
      const backend = asWasm(kb);
      const relu = (attrs as unknown as { relu: number[] }).relu;
      const L = relu.length;
      const x = inputs.x as TensorInfo;
      const y = inputs.y as TensorInfo;
      const ws = relu.map((_, l) => inputs[`w${l}`] as TensorInfo);
      const bs = relu.map((_, l) => inputs[`b${l}`] as TensorInfo);
      const n = x.shape[0];
      const dims = [x.shape.slice(1).reduce((a, b) => a * b, 1), ...ws.map((w) => w.shape[1])];
      const k = dims[L];
      // outputs first: a growing heap detaches older views
      const lossOut = backend.makeOutput([], 'float32');
      const gradOuts = ws.flatMap((w, l) => [
        backend.makeOutput(w.shape, 'float32'),
        backend.makeOutput(bs[l].shape, 'float32'),
      ]);
      // scratch: every layer's output, then two [n, max width] buffers for dz and dh
      const offs: number[] = [];
      let used = 0;
      for (let l = 0; l < L; l++) {
        offs.push(used);
        used += n * dims[l + 1];
      }
      const widest = Math.max(...dims);
      if (scratch.length < used + 2 * n * widest) scratch = new Float32Array(used + 2 * n * widest);
      const act = (l: number) => scratch.subarray(offs[l], offs[l] + n * dims[l + 1]);
      let dz = scratch.subarray(used, used + n * widest);
      let dh = scratch.subarray(used + n * widest, used + 2 * n * widest);

      const xs = f32(backend, x);
      const ys = f32(backend, y);
      const W = ws.map((w) => f32(backend, w));
      const B = bs.map((b) => f32(backend, b));
      const G = gradOuts.map((g) => f32(backend, g));
      let h = xs;
      for (let l = 0; l < L; l++) {
        const a = act(l);
        blas.sgemm(h, W[l], a, 1, n, dims[l + 1], dims[l], 0, 0, 0, 0, 0);
        blas.biasAct(a, B[l], n, dims[l + 1], relu[l]);
        h = a;
      }
      // softmax cross-entropy on z = h, in double precision per row (Orekondy-style soft targets)
      const z = h;
      const dbLast = G[2 * L - 1];
      dbLast.fill(0);
      let loss = 0;
      for (let i = 0; i < n; i++) {
        const r = i * k;
        let m = -Infinity;
        for (let j = 0; j < k; j++) m = Math.max(m, z[r + j]);
        let s = 0;
        for (let j = 0; j < k; j++) s += Math.exp(z[r + j] - m);
        const lse = m + Math.log(s);
        let ysum = 0;
        for (let j = 0; j < k; j++) {
          ysum += ys[r + j];
          loss -= ys[r + j] * (z[r + j] - lse);
        }
        for (let j = 0; j < k; j++) {
          const g = (Math.exp(z[r + j] - lse) * ysum - ys[r + j]) / n;
          dz[r + j] = g;
          dbLast[j] += g;
        }
      }
      f32(backend, lossOut)[0] = loss / n;
      for (let l = L - 1; l >= 0; l--) {
        const hin = l === 0 ? xs : act(l - 1);
        const cols = dims[l + 1];
        // dW_l = h_lᵀ · dz   [d_l, d_{l+1}]
        blas.sgemm(hin, dz, G[2 * l], 1, dims[l], cols, n, 1, 0, 0, 0, 0);
        if (l === 0) break;
        // dh = dz · W_lᵀ   [n, d_l]; then the previous layer's dz and its bias gradient in one pass
        blas.sgemm(dz, W[l], dh, 1, n, dims[l], cols, 0, 1, 0, 0, 0);
        blas.actBiasGrad(dh, act(l - 1), dz, G[2 * (l - 1) + 1], n, dims[l], relu[l - 1]);
      }
      return [lossOut, ...gradOuts];
    },
  };
}
