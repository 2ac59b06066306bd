/**
 * _FusedMatMul for the pure-wasm path. tfjs-wasm 4.22's own kernel returns wrong values when the
 * operands carry a batch dimension > 1 (measured: max error ≈ 1 against the cpu backend; batch 1 is
 * exact), so batched calls run as mse's BatchMatMul followed by bias and activation on the heap.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasm, callKernel, f32, fusedMatMulArgs, type KernelArgs, type TensorInfo } from './wasm-util.js';

const ACTIVATIONS: Record<string, (v: number, alpha: number) => number> = {
  linear: (v) => v,
  relu: (v) => (v > 0 ? v : 0),
  relu6: (v) => Math.min(6, Math.max(0, v)),
  sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  elu: (v) => (v >= 0 ? v : Math.exp(v) - 1),
  leakyrelu: (v, a) => (v >= 0 ? v : a * v),
};

export function makeFusedMatMul(stock: tf.KernelFunc, batchMatMul: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf._FusedMatMul,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = asWasm((args as KernelArgs).backend);
      const { a, b, bias, prelu, transposeA, transposeB, activation, leakyreluAlpha } = fusedMatMulArgs(
        args as KernelArgs,
      );
      const batch = (t: TensorInfo) => t.shape.slice(0, -2).reduce((x, y) => x * y, 1);
      if ((batch(a) === 1 && batch(b) === 1) || prelu || !ACTIVATIONS[activation]) return stock(args) as TensorInfo;
      const out = callKernel(batchMatMul, backend, { a, b }, { transposeA, transposeB });
      const o = f32(backend, out);
      const n = out.shape[out.shape.length - 1];
      const bv = bias ? f32(backend, bias) : undefined;
      const f = ACTIVATIONS[activation];
      const alpha = leakyreluAlpha ?? 0.2;
      for (let i = 0; i < o.length; i++) {
        const v = bv ? o[i] + bv[bv.length === 1 ? 0 : i % n] : o[i];
        o[i] = f(v, alpha);
      }
      return out;
    },
  };
}
