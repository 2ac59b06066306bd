/**
 * BatchMatMul and _FusedMatMul (dense layers: bias + ReLU) on the native BLAS. Transposes are
 * handled by sgemm's own flags, so no operand is copied; broadcasting of batch dimensions uses a
 * zero stride. Activations other than linear/relu (and PReLU weights) go to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from '../native.js';
import { asWasm, f32, fusedMatMulArgs, type KernelArgs, type TensorInfo } from './wasm-util.js';

interface MatMulPlan {
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA: number;
  strideB: number;
  outShape: number[];
}

function plan(a: TensorInfo, b: TensorInfo, ta: boolean, tb: boolean): MatMulPlan {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = tb ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb)
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} must match.`,
    );
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batch = Math.max(batchA, batchB);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1))
    throw new Error('matMul (native): only a batch of 1 broadcasts');
  return {
    batch,
    m,
    n,
    k,
    strideA: batchA === 1 ? 0 : m * k,
    strideB: batchB === 1 ? 0 : k * n,
    outShape: [...outer, m, n],
  };
}

export function makeNativeBatchMatMul(blas: NativeBlas): tf.KernelConfig {
  return {
    kernelName: tf.BatchMatMul,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { inputs, backend: kb, attrs } = args as KernelArgs;
      const backend = asWasm(kb);
      const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
      const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
      const p = plan(a, b, transposeA, transposeB);
      const out = backend.makeOutput(p.outShape, 'float32');
      blas.sgemm(
        f32(backend, a),
        f32(backend, b),
        f32(backend, out),
        p.batch,
        p.m,
        p.n,
        p.k,
        transposeA ? 1 : 0,
        transposeB ? 1 : 0,
        p.strideA,
        p.strideB,
        0,
      );
      return out;
    },
  };
}

export function makeNativeFusedMatMul(blas: NativeBlas, stock: tf.KernelFunc): tf.KernelConfig {
  return {
    kernelName: tf._FusedMatMul,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const backend = asWasm((args as KernelArgs).backend);
      const { a, b, bias, prelu, transposeA, transposeB, activation } = fusedMatMulArgs(args as KernelArgs);
      const p = plan(a, b, transposeA, transposeB);
      const biasOk = !bias || bias.shape.reduce((x, y) => x * y, 1) === p.n;
      if ((activation !== 'linear' && activation !== 'relu') || prelu || !biasOk) return stock(args) as TensorInfo;
      const out = backend.makeOutput(p.outShape, 'float32');
      const c = f32(backend, out);
      blas.sgemm(
        f32(backend, a),
        f32(backend, b),
        c,
        p.batch,
        p.m,
        p.n,
        p.k,
        transposeA ? 1 : 0,
        transposeB ? 1 : 0,
        p.strideA,
        p.strideB,
        0,
      );
      if (bias || activation === 'relu')
        blas.biasAct(
          c,
          bias ? f32(backend, bias) : new Float32Array(0),
          p.batch * p.m,
          p.n,
          activation === 'relu' ? 1 : 0,
        );
      return out;
    },
  };
}
