/**
 * MseActBiasGrad: the backward pass of a layer's `y = act(z + b)`, in one kernel with two outputs,
 *   dz = dy ⊙ 1[y > 0] (ReLU) or dy (linear);   db = Σ_rows dz   over [rows, C], C the last axis.
 * Through tfjs this is Step, Multiply and a Sum over every axis but the last, which the wasm backend
 * runs by first transposing those axes inward: on the LeNet CNN the three took a quarter of a
 * training step. Native BLAS build: one C loop; pure wasm: the same loop in JavaScript. Backends
 * without it (cpu, tfjs-node) keep the tfjs ops (src/models/ops.ts asks `hasActBiasGrad()`).
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export const ACT_BIAS_GRAD_KERNEL = 'MseActBiasGrad';

/** Whether the active backend has the fused kernel. */
export function hasActBiasGrad(): boolean {
  return tf.getKernel(ACT_BIAS_GRAD_KERNEL, tf.getBackend()) !== undefined;
}

export function makeActBiasGrad(blas: NativeBlas | null): tf.KernelConfig {
  return {
    kernelName: ACT_BIAS_GRAD_KERNEL,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend: kb, attrs } = args as KernelArgs;
      const backend = asWasm(kb);
      const { dy, y } = inputs as { dy: TensorInfo; y: TensorInfo };
      const relu = (attrs as unknown as { relu: boolean }).relu;
      const cols = dy.shape[dy.shape.length - 1] ?? 1;
      const rows = cols ? dy.shape.reduce((a, b) => a * b, 1) / cols : 0;
      const dzOut = backend.makeOutput(dy.shape, 'float32');
      const dbOut = backend.makeOutput([cols], 'float32');
      // views only after the last allocation (a growing heap detaches older ones)
      const [g, a, dz, db] = [f32(backend, dy), f32(backend, y), f32(backend, dzOut), f32(backend, dbOut)];
      if (blas) blas.actBiasGrad(g, a, dz, db, rows, cols, relu ? 1 : 0);
      else {
        db.fill(0);
        for (let r = 0, o = 0; r < rows; r++)
          for (let j = 0; j < cols; j++, o++) {
            const v = relu && !(a[o] > 0) ? 0 : g[o];
            dz[o] = v;
            db[j] += v;
          }
      }
      return [dzOut, dbOut];
    },
  };
}
