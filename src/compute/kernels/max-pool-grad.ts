/**
 * MaxPoolGrad for the wasm backend, channel-innermost so every read is contiguous (the stock
 * kernel walks channels in the outer loop). Routes each dy value to the first maximum of its
 * window, scanning rows then columns — the same tie rule as the cpu backend. NHWC.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, type KernelArgs, type TensorInfo } from './wasm-util.js';

/** With the native BLAS build, the 2×2 stride-2 case runs in C (the same loop, about 5× faster). */
export function makeMaxPoolGrad(blas: NativeBlas | null = null): tf.KernelConfig {
  return {
    kernelName: tf.MaxPoolGrad,
    backendName: 'wasm',
    kernelFunc: (args) => maxPoolGrad(args as KernelArgs, blas),
  };
}

function maxPoolGrad(args: KernelArgs, blas: NativeBlas | null): TensorInfo {
  const backend = asWasm(args.backend);
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const padT = info.padInfo.top;
  const padL = info.padInfo.left;
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = f32(backend, out);
  const x = f32(backend, input);
  const g = f32(backend, dy);
  const lenet = FH === 2 && FW === 2 && SH === 2 && SW === 2 && padT === 0 && padL === 0 && 2 * OH <= H && 2 * OW <= W;
  if (lenet && blas) {
    blas.maxPoolGrad2(x, g, dx, N, H, W, C, OH, OW);
    return out;
  }
  dx.fill(0);
  if (lenet) {
    // The LeNet case (2×2, stride 2, valid): windows do not overlap, four loads per channel.
    const row = W * C;
    for (let n = 0; n < N; n++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const b0 = ((n * H + 2 * oh) * W + 2 * ow) * C;
          const gb = ((n * OH + oh) * OW + ow) * C;
          for (let c = 0; c < C; c++) {
            let i = b0 + c;
            let m = x[i];
            const i1 = i + C;
            const i2 = i + row;
            const i3 = i2 + C;
            if (x[i1] > m) {
              m = x[i1];
              i = i1;
            }
            if (x[i2] > m) {
              m = x[i2];
              i = i2;
            }
            if (x[i3] > m) i = i3;
            dx[i] = g[gb + c];
          }
        }
      }
    }
    return out;
  }
  const best = new Float32Array(C);
  const arg = new Int32Array(C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        best.fill(-Infinity);
        arg.fill(-1);
        for (let fh = 0; fh < FH; fh++) {
          const ih = oh * SH + fh - padT;
          if (ih < 0 || ih >= H) continue;
          for (let fw = 0; fw < FW; fw++) {
            const iw = ow * SW + fw - padL;
            if (iw < 0 || iw >= W) continue;
            const base = ((n * H + ih) * W + iw) * C;
            for (let c = 0; c < C; c++) {
              const v = x[base + c];
              if (v > best[c] || arg[c] < 0) {
                best[c] = v;
                arg[c] = base + c;
              }
            }
          }
        }
        const gb = ((n * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) if (arg[c] >= 0) dx[arg[c]] += g[gb + c];
      }
    }
  }
  return out;
}
