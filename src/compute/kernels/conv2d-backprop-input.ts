/**
 * Conv2DBackpropInput for the wasm backend. The stock kernel is a plain C++ loop nest. We take one
 * of two XNNPACK routes, whichever does less work:
 *
 * 1. col2im: dcol [M = N·OH·OW, K = FH·FW·CI] = dy [M, CO] · Wᵀ, then scatter-add each row of dcol
 *    into dx (in NHWC a row is FH runs of FW·CI contiguous values). Exactly the useful FLOPs, plus
 *    one pass over dcol.
 * 2. (stride 1) as a forward convolution over the padded gradient:
 *
 *   dx = conv2d(dy, rot180(W)ᵀ)   with padding (FH−1−pad_t, FW−1−pad_l) before, and what makes the
 *                                  output H×W after,
 *
 * where rot180(W)ᵀ[fh, fw, co, ci] = W[FH−1−fh, FW−1−fw, ci, co]. It also multiplies the zero padding:
 *    H·W / (OH·OW) times the useful FLOPs — cheap for 'same' convolutions, wasteful for 'valid' ones
 *    on small maps (LeNet's second layer: 2.25×).
 * We pick col2im when the padding waste, weighted by the output channels, outweighs a pass over dcol.
 * NHWC.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasm, callKernel, dispose, f32, reshapeInfo, type KernelArgs, type TensorInfo } from './wasm-util.js';

export function makeConv2DBackpropInput(conv2d: tf.KernelFunc, batchMatMul: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropInput,
    backendName: 'wasm',
    kernelFunc: (args) => conv2DBackpropInput(args as KernelArgs, conv2d, batchMatMul),
  };
}

function conv2DBackpropInput(args: KernelArgs, conv2d: tf.KernelFunc, batchMatMul: tf.KernelFunc): TensorInfo {
  const backend = asWasm(args.backend);
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (attrs.dataFormat === 'NCHW') throw new Error('Conv2DBackpropInput (wasm, mse): only NHWC is supported');
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const waste = (H * W) / (OH * OW) - 1;
  if (waste * CO > 24 || SH > 1 || SW > 1) return col2im(backend, dy, filter, info, batchMatMul);

  // stride 1 from here: rot180(W)ᵀ [FH, FW, CO, CI]
  const wT = backend.makeOutput([FH, FW, CO, CI], 'float32');
  const w = f32(backend, filter);
  const wt = f32(backend, wT);
  for (let fh = 0; fh < FH; fh++) {
    for (let fw = 0; fw < FW; fw++) {
      const src = ((FH - 1 - fh) * FW + (FW - 1 - fw)) * CI * CO;
      const dst = (fh * FW + fw) * CO * CI;
      for (let ci = 0; ci < CI; ci++) {
        for (let co = 0; co < CO; co++) wt[dst + co * CI + ci] = w[src + ci * CO + co];
      }
    }
  }
  const padT = FH - 1 - info.padInfo.top;
  const padL = FW - 1 - info.padInfo.left;
  const padB = H - OH - padT + FH - 1;
  const padR = W - OW - padL + FW - 1;
  const out = callKernel(conv2d, backend, { x: dy, filter: wT }, {
    strides: [1, 1],
    pad: [
      [0, 0],
      [padT, padB],
      [padL, padR],
      [0, 0],
    ],
    dataFormat: 'NHWC',
    dilations: [1, 1],
    dimRoundingMode: undefined as unknown as string,
  } as unknown as tf.NamedAttrMap);
  dispose(backend, wT);
  return out;
}

function col2im(
  backend: ReturnType<typeof asWasm>,
  dy: TensorInfo,
  filter: TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  batchMatMul: tf.KernelFunc,
): TensorInfo {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const padT = info.padInfo.top;
  const padL = info.padInfo.left;
  const K = FH * FW * CI;
  const M = N * OH * OW;
  const dy3 = reshapeInfo(backend, dy, [1, M, CO]);
  const w3 = reshapeInfo(backend, filter, [1, K, CO]);
  const dcolT = callKernel(batchMatMul, backend, { a: dy3, b: w3 }, { transposeA: false, transposeB: true }); // [1, M, K]
  dispose(backend, dy3, w3);
  const out = backend.makeOutput([N, H, W, CI], 'float32');
  const dx = f32(backend, out);
  const dc = f32(backend, dcolT);
  dx.fill(0);
  const run = FW * CI;
  let o = 0;
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const iw0 = ow * SW - padL;
        const inside = iw0 >= 0 && iw0 + FW <= W;
        for (let fh = 0; fh < FH; fh++) {
          const ih = oh * SH + fh - padT;
          if (ih < 0 || ih >= H) {
            o += run;
            continue;
          }
          const rowBase = (n * H + ih) * W;
          if (inside) {
            let t = (rowBase + iw0) * CI;
            const e = o + run;
            while (o < e) dx[t++] += dc[o++];
          } else {
            for (let fw = 0; fw < FW; fw++) {
              const iw = iw0 + fw;
              if (iw < 0 || iw >= W) {
                o += CI;
                continue;
              }
              let t = (rowBase + iw) * CI;
              const e = o + CI;
              while (o < e) dx[t++] += dc[o++];
            }
          }
        }
      }
    }
  }
  dispose(backend, dcolT);
  return out;
}
