/**
 * Conv2DBackpropInput for the wasm backend. The stock kernel is a plain C++ loop nest; we rewrite
 * the transposed convolution as a forward convolution so it runs on XNNPACK:
 *
 *   dx = conv2d(dilate_s(dy), rot180(W)ᵀ)   with padding (FH−1−pad_t, FW−1−pad_l) before, and what
 *                                             makes the output H×W after,
 *
 * where dilate_s inserts s−1 zeros between dy's rows/columns (identity for stride 1) and
 * rot180(W)ᵀ[fh, fw, co, ci] = W[FH−1−fh, FW−1−fw, ci, co]. NHWC.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasm, callKernel, dispose, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

export function makeConv2DBackpropInput(conv2d: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf.Conv2DBackpropInput,
    backendName: 'wasm',
    kernelFunc: (args) => conv2DBackpropInput(args as KernelArgs, conv2d),
  };
}

function conv2DBackpropInput(args: KernelArgs, conv2d: tf.KernelFunc): TensorInfo {
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
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;

  // rot180(W)ᵀ: [FH, FW, CO, CI]
  const wT = backend.makeOutput([FH, FW, CO, CI], 'float32');
  // dilated dy: [N, DH, DW, CO]
  const DH = (OH - 1) * SH + 1;
  const DW = (OW - 1) * SW + 1;
  const dilated = SH > 1 || SW > 1;
  const dyD = dilated ? backend.makeOutput([N, DH, DW, CO], 'float32') : dy;
  {
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
    if (dilated) {
      const g = f32(backend, dy);
      const d = f32(backend, dyD);
      d.fill(0);
      for (let n = 0; n < N; n++) {
        for (let oh = 0; oh < OH; oh++) {
          for (let ow = 0; ow < OW; ow++) {
            const s = ((n * OH + oh) * OW + ow) * CO;
            const t = ((n * DH + oh * SH) * DW + ow * SW) * CO;
            for (let c = 0; c < CO; c++) d[t + c] = g[s + c];
          }
        }
      }
    }
  }
  const padT = FH - 1 - info.padInfo.top;
  const padL = FW - 1 - info.padInfo.left;
  const padB = H - DH - padT + FH - 1;
  const padR = W - DW - padL + FW - 1;
  const out = callKernel(conv2d, backend, { x: dyD, filter: wT }, {
    strides: [1, 1],
    pad: [[0, 0], [padT, padB], [padL, padR], [0, 0]],
    dataFormat: 'NHWC',
    dilations: [1, 1],
    dimRoundingMode: undefined as unknown as string,
  } as unknown as tf.NamedAttrMap);
  dispose(backend, wT);
  if (dilated) dispose(backend, dyD);
  return out;
}
