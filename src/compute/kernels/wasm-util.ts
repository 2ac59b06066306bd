/**
 * Small helpers for kernels that run on the wasm backend: allocate outputs on the wasm heap,
 * view inputs without copying, and call the backend's own fast kernels (XNNPACK conv/matmul)
 * as building blocks. A view of the heap is invalidated when the heap grows, so callers take
 * views only after their last allocation.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };
export type TensorInfo = tf.TensorInfo;

export function asWasm(backend: tf.KernelBackend): BackendWasm {
  return backend as unknown as BackendWasm;
}

/** Float32 view onto a tensor's storage in the wasm heap (no copy). */
export function f32(backend: BackendWasm, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/** Look up the kernel function another backend kernel provides (captured before we override). */
export function kernelFunc(name: string, backendName = 'wasm'): tf.KernelFunc {
  const k = tf.getKernel(name, backendName);
  if (!k) throw new Error(`kernel ${name} is not registered for ${backendName}`);
  return k.kernelFunc;
}

export function callKernel(
  fn: tf.KernelFunc,
  backend: tf.KernelBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): TensorInfo {
  return fn({ inputs, backend, attrs }) as TensorInfo;
}

export function dispose(backend: BackendWasm, ...ts: TensorInfo[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}

/** Reshape by aliasing: the wasm backend shares the buffer and bumps its refCount. */
export function reshapeInfo(backend: BackendWasm, t: TensorInfo, shape: number[]): TensorInfo {
  backend.incRef(t.dataId);
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

/** _FusedMatMul's inputs and attributes, as both of mse's versions of it read them. */
export function fusedMatMulArgs(args: KernelArgs): {
  a: TensorInfo;
  b: TensorInfo;
  bias?: TensorInfo;
  prelu?: TensorInfo;
  transposeA: boolean;
  transposeB: boolean;
  activation: string;
  leakyreluAlpha?: number;
} {
  const { a, b, bias, preluActivationWeights } = args.inputs as {
    a: TensorInfo;
    b: TensorInfo;
    bias?: TensorInfo;
    preluActivationWeights?: TensorInfo;
  };
  const at = args.attrs as unknown as {
    transposeA: boolean;
    transposeB: boolean;
    activation: string;
    leakyreluAlpha?: number;
  };
  return { a, b, bias, prelu: preluActivationWeights, ...at };
}
