/**
 * Conv2DBackpropFilter for the wasm backend, which does not register it (tfjs issue 8474), so no
 * CNN could train on wasm at all. NHWC.
 *
 *   dW[fh, fw, ci, co] = Σ_{n, oh, ow} x[n, oh·s + fh − pad_t, ow·s + fw − pad_l, ci] · dy[n, oh, ow, co]
 *
 * We write the patches transposed, colT [K = FH·FW·CI, M = N·OH·OW], one pass over the heap with
 * the padding handled by range arithmetic rather than per-element branches, then hand
 *   dW [K, CO] = colT [K, M] · dy [M, CO]
 * to the backend's own (XNNPACK) BatchMatMul. (A row-major col [M, K] with dyᵀ·col measured slower:
 * the extra transposes cost more than the longer contiguous runs save.)
 */
import * as tf from '@tensorflow/tfjs';
import { asWasm, callKernel, dispose, f32, reshapeInfo, type KernelArgs, type TensorInfo } from './wasm-util.js';

export function makeConv2DBackpropFilter(batchMatMul: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropFilter,
    backendName: 'wasm',
    kernelFunc: (args) => conv2DBackpropFilter(args as KernelArgs, batchMatMul),
  };
}

function conv2DBackpropFilter(args: KernelArgs, batchMatMul: tf.KernelFunc): TensorInfo {
  const backend = asWasm(args.backend);
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (attrs.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter (wasm, mse): only NHWC is supported');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const padT = info.padInfo.top;
  const padL = info.padInfo.left;
  const K = FH * FW * CI;
  const M = N * OH * OW;

  const colT = backend.makeOutput([1, K, M], 'float32');
  const xs = f32(backend, x);
  const col = f32(backend, colT);
  const xRow = W * CI;
  const xImg = H * xRow;
  for (let fh = 0; fh < FH; fh++) {
    // output rows whose input row oh·SH + fh − padT lies inside [0, H)
    const ohLo = Math.min(OH, Math.max(0, Math.ceil((padT - fh) / SH)));
    const ohHi = Math.max(ohLo, Math.min(OH, Math.floor((H - 1 + padT - fh) / SH) + 1));
    for (let fw = 0; fw < FW; fw++) {
      const owLo = Math.min(OW, Math.max(0, Math.ceil((padL - fw) / SW)));
      const owHi = Math.max(owLo, Math.min(OW, Math.floor((W - 1 + padL - fw) / SW) + 1));
      const step = SW * CI;
      for (let ci = 0; ci < CI; ci++) {
        let o = ((fh * FW + fw) * CI + ci) * M; // row of colT
        for (let n = 0; n < N; n++) {
          if (ohLo > 0) {
            col.fill(0, o, o + ohLo * OW);
            o += ohLo * OW;
          }
          for (let oh = ohLo; oh < ohHi; oh++) {
            const ih = oh * SH + fh - padT;
            if (owLo > 0) {
              col.fill(0, o, o + owLo);
              o += owLo;
            }
            let s = n * xImg + ih * xRow + (owLo * SW + fw - padL) * CI + ci;
            for (let ow = owLo; ow < owHi; ow++, s += step) col[o++] = xs[s];
            if (owHi < OW) {
              col.fill(0, o, o + OW - owHi);
              o += OW - owHi;
            }
          }
          if (ohHi < OH) {
            col.fill(0, o, o + (OH - ohHi) * OW);
            o += (OH - ohHi) * OW;
          }
        }
      }
    }
  }
  const dy3 = reshapeInfo(backend, dy, [1, M, CO]);
  const prod = callKernel(batchMatMul, backend, { a: colT, b: dy3 }, { transposeA: false, transposeB: false }); // [1, K, CO]
  dispose(backend, colT, dy3);
  const out = reshapeInfo(backend, prod, [FH, FW, CI, CO]);
  dispose(backend, prod);
  return out;
}
