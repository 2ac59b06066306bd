/**
 * BatchMatMul with transposed operands for the wasm backend. Dense layers' gradients are
 * matMul(dy, W, false, true) and matMul(x, dy, true, false); the stock kernel handles a transposed
 * operand on a slow path. We transpose the operand once on the heap (a cheap O(n) copy) and call
 * the stock kernel without transposes, which hits XNNPACK's packed GEMM.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasm, callKernel, dispose, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export function makeBatchMatMul(stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.BatchMatMul,
    backendName: 'wasm',
    kernelFunc: (args) => batchMatMul(args as KernelArgs, stock),
  };
}

function batchMatMul(args: KernelArgs, stock: tf.KernelFunc): TensorInfo {
  const backend = asWasm(args.backend);
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  if (!transposeA && !transposeB) return callKernel(stock, backend, { a, b }, { transposeA: false, transposeB: false });
  const a2 = transposeA ? transposeLast2(backend, a) : a;
  const b2 = transposeB ? transposeLast2(backend, b) : b;
  const out = callKernel(stock, backend, { a: a2, b: b2 }, { transposeA: false, transposeB: false });
  if (transposeA) dispose(backend, a2);
  if (transposeB) dispose(backend, b2);
  return out;
}

/** [..., r, c] → [..., c, r] into a fresh heap buffer; `consume` disposes the input. */
export function transposeLast2(backend: ReturnType<typeof asWasm>, t: TensorInfo, consume = false): TensorInfo {
  const rank = t.shape.length;
  const r = t.shape[rank - 2];
  const c = t.shape[rank - 1];
  const batch = t.shape.slice(0, -2).reduce((p, q) => p * q, 1);
  const out = backend.makeOutput([...t.shape.slice(0, -2), c, r], 'float32');
  const src = f32(backend, t);
  const dst = f32(backend, out);
  const block = 32; // cache-blocked copy
  for (let bi = 0; bi < batch; bi++) {
    const base = bi * r * c;
    for (let i0 = 0; i0 < r; i0 += block) {
      const i1 = Math.min(i0 + block, r);
      for (let j0 = 0; j0 < c; j0 += block) {
        const j1 = Math.min(j0 + block, c);
        for (let i = i0; i < i1; i++) {
          const s = base + i * c;
          for (let j = j0; j < j1; j++) dst[base + j * r + i] = src[s + j];
        }
      }
    }
  }
  if (consume) dispose(backend, t);
  return out;
}
