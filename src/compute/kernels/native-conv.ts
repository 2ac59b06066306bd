/**
 * Convolutions on the native BLAS: im2col (a native memcpy of NHWC runs) + sgemm, in chunks of the
 * batch so the patch matrix stays within a fixed scratch buffer outside the wasm heap.
 *   forward        out [M, CO]  = col [M, K] · W [K, CO]             (+ bias, ReLU for FusedConv2D)
 *   filter grad    dW  [K, CO]  = Σ_chunks colᵀ · dy                 (sgemm accumulates, β = 1)
 *   input grad     dcol [M, K]  = dy [M, CO] · Wᵀ, then col2im (the adjoint of im2col)
 * with M = N·OH·OW and K = FH·FW·CI. NHWC, dilation 1; anything else goes to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

const SCRATCH_FLOATS = 8 * 1024 * 1024; // 32 MiB of patches per chunk
let scratch = new Float32Array(0);

function buffer(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

type Info = tf.backend_util.Conv2DInfo;

function supported(info: Info, dataFormat?: string): boolean {
  return info.dilationHeight === 1 && info.dilationWidth === 1 && dataFormat !== 'NCHW' && info.dataFormat === 'channelsLast';
}

/** Batch chunks [n0, n1) whose patch matrix fits the scratch buffer. */
function* chunks(info: Info): Generator<[number, number]> {
  const per = info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels;
  const step = Math.max(1, Math.floor(SCRATCH_FLOATS / Math.max(1, per)));
  for (let n0 = 0; n0 < info.batchSize; n0 += step) yield [n0, Math.min(info.batchSize, n0 + step)];
}

function dims(info: Info, n: number): number[] {
  return [n, info.inHeight, info.inWidth, info.inChannels, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left, info.outHeight, info.outWidth];
}

function forward(blas: NativeBlas, args: KernelArgs, act: 'linear' | 'relu', bias?: TensorInfo): TensorInfo {
  const backend = asWasm(args.backend);
  const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
  const a = args.attrs as unknown as tf.Conv2DAttrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  const out = backend.makeOutput(info.outShape, 'float32');
  const xs = f32(backend, x);
  const w = f32(backend, filter);
  const o = f32(backend, out);
  const K = info.filterHeight * info.filterWidth * info.inChannels;
  const CO = info.outChannels;
  const pix = info.outHeight * info.outWidth;
  const inSize = info.inHeight * info.inWidth * info.inChannels;
  for (const [n0, n1] of chunks(info)) {
    const m = (n1 - n0) * pix;
    const col = buffer(m * K);
    blas.im2col(xs.subarray(n0 * inSize, n1 * inSize), col, ...dims(info, n1 - n0));
    blas.sgemm(col, w, o.subarray(n0 * pix * CO, n1 * pix * CO), 1, m, CO, K, 0, 0, 0, 0, 0);
  }
  if (bias || act === 'relu') blas.biasAct(o, bias ? f32(backend, bias) : new Float32Array(0), info.batchSize * pix, CO, act === 'relu' ? 1 : 0);
  return out;
}

export function makeNativeConv2D(blas: NativeBlas, stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.Conv2D,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const a = args.attrs as unknown as tf.Conv2DAttrs;
      const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
      return supported(info, a.dataFormat) ? forward(blas, args as unknown as KernelArgs, 'linear') : (stock(args) as TensorInfo);
    },
  };
}

export function makeNativeFusedConv2D(blas: NativeBlas, stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.FusedConv2D,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const a = args.attrs as unknown as tf.FusedConv2DAttrs;
      const { x, filter, bias, preluActivationWeights } = args.inputs as { x: TensorInfo; filter: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo };
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
      const biasOk = !bias || bias.shape.reduce((p, q) => p * q, 1) === info.outChannels;
      if (!supported(info, a.dataFormat) || (a.activation !== 'linear' && a.activation !== 'relu') || preluActivationWeights || !biasOk) return stock(args) as TensorInfo;
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
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
      const out = backend.makeOutput(a.filterShape, 'float32');
      const xs = f32(backend, x);
      const g = f32(backend, dy);
      const dw = f32(backend, out);
      const K = info.filterHeight * info.filterWidth * info.inChannels;
      const CO = info.outChannels;
      const pix = info.outHeight * info.outWidth;
      const inSize = info.inHeight * info.inWidth * info.inChannels;
      let first = true;
      for (const [n0, n1] of chunks(info)) {
        const m = (n1 - n0) * pix;
        const col = buffer(m * K);
        blas.im2col(xs.subarray(n0 * inSize, n1 * inSize), col, ...dims(info, n1 - n0));
        blas.sgemm(col, g.subarray(n0 * pix * CO, n1 * pix * CO), dw, 1, K, CO, m, 1, 0, 0, 0, first ? 0 : 1);
        first = false;
      }
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
      const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
      const out = backend.makeOutput(a.inputShape, 'float32');
      const g = f32(backend, dy);
      const w = f32(backend, filter);
      const dx = f32(backend, out);
      const K = info.filterHeight * info.filterWidth * info.inChannels;
      const CO = info.outChannels;
      const pix = info.outHeight * info.outWidth;
      const inSize = info.inHeight * info.inWidth * info.inChannels;
      for (const [n0, n1] of chunks(info)) {
        const m = (n1 - n0) * pix;
        const dcol = buffer(m * K);
        blas.sgemm(g.subarray(n0 * pix * CO, n1 * pix * CO), w, dcol, 1, m, K, CO, 0, 1, 0, 0, 0);
        blas.col2im(dcol, dx.subarray(n0 * inSize, n1 * inSize), ...dims(info, n1 - n0));
      }
      return out;
    },
  };
}
