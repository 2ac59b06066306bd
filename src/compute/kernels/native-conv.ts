/**
 * Convolutions on the native BLAS (native/mse_blas.cc): im2col (native copies of NHWC runs) + sgemm,
 * in chunks of the batch whose patch matrix fits a small buffer (one example's patches when they
 * alone exceed it), the chunks split between OpenBLAS's thread count of threads:
 *   forward        out [M, CO]  = col [M, K] · W [K, CO]             (+ bias, ReLU for FusedConv2D)
 *   filter grad    dW  [K, CO]  = Σ_chunks colᵀ · dy                 (one partial per chunk, summed in
 *                                                                     chunk order: the same for any thread count)
 *   input grad     dcol [M, K]  = dy [M, CO] · Wᵀ, then col2im (the adjoint of im2col)
 * with M = N·OH·OW and K = FH·FW·CI. NHWC, dilation 1; anything else goes to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

// 1 MiB of patches per chunk: the patch matrix is written, multiplied and (forward) the chunk's
// output biased while they are still in L2. Whole-batch chunks (32 MiB) went through memory:
// the MNIST CNN's forward pass took 29 ms per 256 images on one thread, 23.6 ms in 1 MiB chunks.
const SCRATCH_FLOATS = 256 * 1024;

type Info = tf.backend_util.Conv2DInfo;

function supported(info: Info, dataFormat?: string): boolean {
  return (
    info.dilationHeight === 1 && info.dilationWidth === 1 && dataFormat !== 'NCHW' && info.dataFormat === 'channelsLast'
  );
}

type Shape4 = [number, number, number, number];

function convInfo(
  xShape: number[],
  filterShape: number[],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: tf.Conv2DAttrs['pad'],
  rounding: tf.Conv2DAttrs['dimRoundingMode'],
): Info {
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    strides,
    dilations,
    pad,
    rounding,
    false,
    'channelsLast',
  );
}

/** The shape arguments of the native convolution calls, for n examples. */
function dims(info: Info, n: number): number[] {
  return [
    n,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
    info.outHeight,
    info.outWidth,
  ];
}

function forward(blas: NativeBlas, args: KernelArgs, act: 'linear' | 'relu', bias?: TensorInfo): TensorInfo {
  const backend = asWasm(args.backend);
  const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
  const a = args.attrs as unknown as tf.Conv2DAttrs;
  const info = convInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode);
  const out = backend.makeOutput(info.outShape, 'float32');
  const [xs, w, o] = [f32(backend, x), f32(backend, filter), f32(backend, out)];
  const bv = bias ? f32(backend, bias) : new Float32Array(0);
  blas.convForward(
    xs,
    w,
    bv,
    o,
    ...dims(info, info.batchSize),
    info.outChannels,
    act === 'relu' ? 1 : 0,
    SCRATCH_FLOATS,
  );
  return out;
}

export function makeNativeConv2D(blas: NativeBlas, stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.Conv2D,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const a = args.attrs as unknown as tf.Conv2DAttrs;
      const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
      const info = convInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode);
      return supported(info, a.dataFormat)
        ? forward(blas, args as unknown as KernelArgs, 'linear')
        : (stock(args) as TensorInfo);
    },
  };
}

export function makeNativeFusedConv2D(blas: NativeBlas, stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.FusedConv2D,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const a = args.attrs as unknown as tf.FusedConv2DAttrs;
      const { x, filter, bias, preluActivationWeights } = args.inputs as {
        x: TensorInfo;
        filter: TensorInfo;
        bias?: TensorInfo;
        preluActivationWeights?: TensorInfo;
      };
      const info = convInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode);
      const biasOk = !bias || bias.shape.reduce((p, q) => p * q, 1) === info.outChannels;
      if (
        !supported(info, a.dataFormat) ||
        (a.activation !== 'linear' && a.activation !== 'relu') ||
        preluActivationWeights ||
        !biasOk
      )
        return stock(args) as TensorInfo;
      return forward(blas, args as unknown as KernelArgs, a.activation, bias);
    },
  };
}

export function makeNativeConv2DBackpropFilter(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropFilter,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = asWasm(args.backend as tf.KernelBackend);
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const a = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      if (a.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter (wasm, mse): only NHWC is supported');
      const info = convInfo(x.shape, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
      const out = backend.makeOutput(a.filterShape, 'float32');
      const [xs, g, dw] = [f32(backend, x), f32(backend, dy), f32(backend, out)];
      blas.convBackpropFilter(xs, g, dw, ...dims(info, info.batchSize), info.outChannels, SCRATCH_FLOATS);
      return out;
    },
  };
}

export function makeNativeConv2DBackpropInput(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropInput,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = asWasm(args.backend as tf.KernelBackend);
      const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
      const a = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
      if (a.dataFormat === 'NCHW') throw new Error('Conv2DBackpropInput (wasm, mse): only NHWC is supported');
      const info = convInfo(a.inputShape, filter.shape, a.strides, 1, a.pad, a.dimRoundingMode);
      const out = backend.makeOutput(a.inputShape, 'float32');
      const [g, w, dx] = [f32(backend, dy), f32(backend, filter), f32(backend, out)];
      blas.convBackpropInput(g, w, dx, ...dims(info, info.batchSize), info.outChannels, SCRATCH_FLOATS);
      return out;
    },
  };
}
