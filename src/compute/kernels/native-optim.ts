/**
 * Fused optimiser updates on the native BLAS build: one kernel per variable instead of four to eight
 * elementwise tfjs ops (the optimiser was a third of an MLP training step). New buffers are
 * written — tensors stay immutable, so XNNPACK's weight caches and aliasing stay safe.
 *   MseMomentum: vel' = μ·vel + g;  w' = w − lr·vel'                       (= tf.train.momentum)
 *   MseAdam:     m' = β1·m + (1−β1)·g;  v' = β2·v + (1−β2)·g²;
 *                w' = w − lr·(m'/(1−β1^t)) / (√(v'/(1−β2^t)) + ε)           (= tf.train.adam)
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export const MOMENTUM_KERNEL = 'MseMomentum';
export const ADAM_KERNEL = 'MseAdam';

export function makeNativeMomentum(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: MOMENTUM_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend: kb, attrs } = args as KernelArgs;
      const backend = asWasm(kb);
      const { w, vel, g } = inputs as { w: TensorInfo; vel: TensorInfo; g: TensorInfo };
      const { lr, mu } = attrs as unknown as { lr: number; mu: number };
      const ow = backend.makeOutput(w.shape, 'float32');
      const ov = backend.makeOutput(w.shape, 'float32');
      blas.momentum(f32(backend, w), f32(backend, vel), f32(backend, g), f32(backend, ow), f32(backend, ov), lr, mu);
      return [ow, ov];
    },
  };
}

export function makeNativeAdam(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: ADAM_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend: kb, attrs } = args as KernelArgs;
      const backend = asWasm(kb);
      const { w, m, v, g } = inputs as { w: TensorInfo; m: TensorInfo; v: TensorInfo; g: TensorInfo };
      const a = attrs as unknown as { lr: number; b1: number; b2: number; eps: number; b1t: number; b2t: number };
      const ow = backend.makeOutput(w.shape, 'float32');
      const om = backend.makeOutput(w.shape, 'float32');
      const ov = backend.makeOutput(w.shape, 'float32');
      blas.adam(
        f32(backend, w),
        f32(backend, m),
        f32(backend, v),
        f32(backend, g),
        f32(backend, ow),
        f32(backend, om),
        f32(backend, ov),
        a.lr,
        a.b1,
        a.b2,
        a.eps,
        a.b1t,
        a.b2t,
      );
      return [ow, om, ov];
    },
  };
}
