/**
 * BatchMatMul with transposed operands for the wasm backend. Dense layers' gradients are
 * matMul(dy, W, false, true) and matMul(x, dy, true, false); the stock kernel runs a transposed
 * operand through a naive loop (≈10× slower than its XNNPACK GEMM). We only ever call the stock
 * kernel untransposed, after moving the cheapest set of matrices (a plain O(n) copy):
 *   C = Aᵀ·B   either transpose A, or C = (Bᵀ·A)ᵀ
 *   C = A·Bᵀ   either transpose B, or C = (B·Aᵀ)ᵀ      (dX = dy·Wᵀ: W is big, dy and dX small)
 *   C = Aᵀ·Bᵀ  C = (B·A)ᵀ
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

const size = (t: TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

function batchMatMul(args: KernelArgs, stock: tf.KernelFunc): TensorInfo {
  const backend = asWasm(args.backend);
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
  const mm = (x: TensorInfo, y: TensorInfo) =>
    callKernel(stock, backend, { a: x, b: y }, { transposeA: false, transposeB: false });
  if (!transposeA && !transposeB) return mm(a, b);
  const temps: TensorInfo[] = [];
  const T = (t: TensorInfo): TensorInfo => {
    const r = transposeLast2(backend, t);
    temps.push(r);
    return r;
  };
  try {
    if (transposeA && transposeB) return transposeLast2(backend, mm(b, a), true);
    const batchA = size(a) / (a.shape[a.shape.length - 1] * a.shape[a.shape.length - 2]);
    const batchB = size(b) / (b.shape[b.shape.length - 1] * b.shape[b.shape.length - 2]);
    const m = transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
    const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    const outSize = Math.max(batchA, batchB) * m * n;
    const sameBatch = batchA === batchB;
    if (transposeA) {
      if (!sameBatch || size(a) <= size(b) + outSize) return mm(T(a), b);
      return transposeLast2(backend, mm(T(b), a), true);
    }
    if (!sameBatch || size(b) <= size(a) + outSize) return mm(a, T(b));
    return transposeLast2(backend, mm(b, T(a)), true);
  } finally {
    dispose(backend, ...temps);
  }
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
