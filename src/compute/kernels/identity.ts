/**
 * Identity for the wasm backend by aliasing (as the cpu backend does) instead of copying the
 * buffer: gradients and optimisers call it dozens of times per training step. The shared buffer
 * is reference-counted, so either tensor can be disposed first.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasm, type KernelArgs, type TensorInfo } from './wasm-util.js';

export function makeIdentity(): tf.KernelConfig {
  return {
    kernelName: tf.Identity,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend } = args as KernelArgs;
      const { x } = inputs as { x: TensorInfo };
      asWasm(backend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  };
}
