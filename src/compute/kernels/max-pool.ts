/**
 * MaxPool on the native build for the LeNet case (2×2 windows, stride 2, valid, NHWC): one C loop,
 * channel-innermost. tfjs-wasm's own kernel took 2.6 of the MNIST CNN's 13.8 ms forward pass per 256
 * images; everything else (other windows, padding, dilation) goes to it.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export function makeNativeMaxPool(blas: NativeBlas, stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.MaxPool,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = asWasm((args as KernelArgs).backend);
      const x = (args as KernelArgs).inputs.x as TensorInfo;
      const attrs = (args as KernelArgs).attrs as unknown as tf.MaxPoolAttrs;
      if (x.shape.length !== 4) return stock(args) as TensorInfo;
      const info = tf.backend_util.computePool2DInfo(
        x.shape as [number, number, number, number],
        attrs.filterSize,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
      );
      const lenet =
        info.filterHeight === 2 &&
        info.filterWidth === 2 &&
        info.strideHeight === 2 &&
        info.strideWidth === 2 &&
        info.padInfo.top === 0 &&
        info.padInfo.left === 0 &&
        2 * info.outHeight <= info.inHeight &&
        2 * info.outWidth <= info.inWidth;
      if (!lenet) return stock(args) as TensorInfo;
      const out = backend.makeOutput(info.outShape, 'float32');
      blas.maxPool2(
        f32(backend, x),
        f32(backend, out),
        info.batchSize,
        info.inHeight,
        info.inWidth,
        info.inChannels,
        info.outHeight,
        info.outWidth,
      );
      return out;
    },
  };
}
