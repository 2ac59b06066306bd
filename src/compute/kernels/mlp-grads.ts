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
 * The arithmetic is compute/dense-native.ts's, run here on views of the wasm heap.
 */
import * as tf from '@tensorflow/tfjs';
import { denseLossAndGrads } from '../dense-native.js';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export const MLP_GRADS_KERNEL = 'MseMlpGrads';

export function makeMlpGrads(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: MLP_GRADS_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend: kb, attrs } = args as KernelArgs;
      const backend = asWasm(kb);
      const relu = (attrs as unknown as { relu: number[] }).relu;
      const x = inputs.x as TensorInfo;
      const y = inputs.y as TensorInfo;
      const ws = relu.map((_, l) => inputs[`w${l}`] as TensorInfo);
      const bs = relu.map((_, l) => inputs[`b${l}`] as TensorInfo);
      const n = x.shape[0];
      const d = x.shape.slice(1).reduce((a, b) => a * b, 1);
      // outputs first: a growing heap detaches older views
      const lossOut = backend.makeOutput([], 'float32');
      const gradOuts = ws.flatMap((w, l) => [
        backend.makeOutput(w.shape, 'float32'),
        backend.makeOutput(bs[l].shape, 'float32'),
      ]);
      const layers = ws.map((w, l) => ({
        w: f32(backend, w),
        b: f32(backend, bs[l]),
        inputs: l === 0 ? d : w.shape[0],
        outputs: w.shape[1],
        relu: relu[l] === 1,
      }));
      const grads = ws.map((_, l) => ({ w: f32(backend, gradOuts[2 * l]), b: f32(backend, gradOuts[2 * l + 1]) }));
      f32(backend, lossOut)[0] = denseLossAndGrads(blas, layers, f32(backend, x), f32(backend, y), n, grads);
      return [lossOut, ...gradOuts];
    },
  };
}
