/**
 * Convolutions on the native BLAS: im2col (native copies of NHWC runs) + sgemm, in chunks of the
 * batch so the patch matrix stays within a small scratch buffer outside the wasm heap (one example's
 * patches when they alone exceed it).
 *   forward        out [M, CO]  = col [M, K] · W [K, CO]             (+ bias, ReLU for FusedConv2D)
 *   filter grad    dW  [K, CO]  = Σ_chunks colᵀ · dy                 (sgemm accumulates, β = 1)
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
let scratch = new Float32Array(0);

function buffer(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

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

interface Chunk {
  /** examples in the chunk */
  n: number;
  /** patch rows: n·OH·OW */
  m: number;
  /** element range of the chunk in the input [N, H, W, CI] */
  inRange: [number, number];
  /** element range of the chunk in the output [N, OH, OW, CO] */
  outRange: [number, number];
}

/** K = FH·FW·CI, the patch length. */
const patch = (info: Info) => info.filterHeight * info.filterWidth * info.inChannels;

/** Batch chunks whose patch matrix [m, K] fits the scratch buffer. */
function* chunks(info: Info): Generator<Chunk> {
  const pix = info.outHeight * info.outWidth;
  const inSize = info.inHeight * info.inWidth * info.inChannels;
  const step = Math.max(1, Math.floor(SCRATCH_FLOATS / Math.max(1, pix * patch(info))));
  for (let n0 = 0; n0 < info.batchSize; n0 += step) {
    const n1 = Math.min(info.batchSize, n0 + step);
    yield {
      n: n1 - n0,
      m: (n1 - n0) * pix,
      inRange: [n0 * inSize, n1 * inSize],
      outRange: [n0 * pix * info.outChannels, n1 * pix * info.outChannels],
    };
  }
}

/** The shape arguments of the native im2col/col2im, for a chunk of n examples. */
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
      const K = patch(info);
      let beta = 0; // the first chunk overwrites, later ones accumulate
      for (const c of chunks(info)) {
        const col = buffer(c.m * K);
        blas.im2col(xs.subarray(...c.inRange), col, ...dims(info, c.n));
        blas.sgemm(col, g.subarray(...c.outRange), dw, 1, K, info.outChannels, c.m, 1, 0, 0, 0, beta);
        beta = 1;
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
      const info = convInfo(a.inputShape, filter.shape, a.strides, 1, a.pad, a.dimRoundingMode);
      const out = backend.makeOutput(a.inputShape, 'float32');
      const [g, w, dx] = [f32(backend, dy), f32(backend, filter), f32(backend, out)];
      const K = patch(info);
      for (const c of chunks(info)) {
        const dcol = buffer(c.m * K);
        blas.sgemm(g.subarray(...c.outRange), w, dcol, 1, c.m, K, info.outChannels, 0, 1, 0, 0, 0);
        blas.col2im(dcol, dx.subarray(...c.inRange), ...dims(info, c.n));
      }
      return out;
    },
  };
}
