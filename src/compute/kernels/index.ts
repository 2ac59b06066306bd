/**
 * Registers mse's extra kernels on the wasm backend. Must run after the wasm backend is
 * initialised: the stock kernels' setup (cwrap of their C++ entry points) runs at backend
 * init, and we keep using them as building blocks after our versions replace them.
 */
import * as tf from '@tensorflow/tfjs';
import { makeActBiasGrad } from './act-bias-grad.js';
import { makeBatchMatMul } from './batch-mat-mul.js';
import { makeConv2DBackpropFilter } from './conv2d-backprop-filter.js';
import { makeConv2DBackpropInput } from './conv2d-backprop-input.js';
import { makeFusedMatMul } from './fused-mat-mul.js';
import { makeIdentity } from './identity.js';
import { makeNativeMaxPool } from './max-pool.js';
import { makeMaxPoolGrad } from './max-pool-grad.js';
import { makeMlpGrads } from './mlp-grads.js';
import { kernelFunc } from './wasm-util.js';
import { nativeBlas } from '../native.js';
import { makeNativeBatchMatMul, makeNativeFusedMatMul } from './native-gemm.js';
import { makeNativeAdam, makeNativeMomentum } from './native-optim.js';
import {
  makeNativeConv2D,
  makeNativeConv2DBackpropFilter,
  makeNativeConv2DBackpropInput,
  makeNativeFusedConv2D,
} from './native-conv.js';

let registered = false;

/**
 * `MSE_WASM_KERNELS=stock` keeps tfjs's own kernels wherever it has one and only adds the missing
 * Conv2DBackpropFilter: the baseline `bench:perf` compares against.
 */
export function registerWasmKernels(): void {
  if (registered) return;
  const stockOnly = process.env.MSE_WASM_KERNELS === 'stock';
  const stockMatMul = kernelFunc(tf.BatchMatMul);
  const stockConv2d = kernelFunc(tf.Conv2D);
  const ourMatMul = makeBatchMatMul(stockMatMul).kernelFunc;
  const blas = stockOnly ? null : nativeBlas();
  const configs = blas
    ? [
        makeNativeConv2DBackpropFilter(blas),
        makeNativeConv2DBackpropInput(blas),
        makeNativeBatchMatMul(blas),
        makeNativeFusedMatMul(blas, kernelFunc(tf._FusedMatMul)),
        makeNativeConv2D(blas, stockConv2d),
        makeNativeFusedConv2D(blas, kernelFunc(tf.FusedConv2D)),
        makeMaxPoolGrad(blas),
        makeNativeMaxPool(blas, kernelFunc(tf.MaxPool)),
        makeIdentity(),
        makeNativeMomentum(blas),
        makeNativeAdam(blas),
        makeActBiasGrad(blas),
        makeMlpGrads(blas),
      ]
    : [
        makeConv2DBackpropFilter(stockMatMul),
        makeConv2DBackpropInput(stockConv2d, ourMatMul),
        makeMaxPoolGrad(),
        makeBatchMatMul(stockMatMul),
        makeFusedMatMul(kernelFunc(tf._FusedMatMul), ourMatMul),
        makeIdentity(),
        makeActBiasGrad(null),
      ];
  for (const cfg of configs) {
    const exists = tf.getKernel(cfg.kernelName, 'wasm') !== undefined;
    if (exists && stockOnly) continue;
    if (exists) tf.unregisterKernel(cfg.kernelName, 'wasm');
    tf.registerKernel(cfg);
  }
  registered = true;
}
