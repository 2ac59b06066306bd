/**
 * Layer ops with hand-written gradients. tfjs un-fuses `fused.matMul`/`fused.conv2d` whenever a
 * gradient is being recorded, so a dense+ReLU layer costs ~10 kernels per step through autograd;
 * these run the fused kernel forward and exactly the needed kernels backward:
 *   y = act(x·W + b):      dz = dy ⊙ 1[y>0];  dx = dz·Wᵀ;  dW = xᵀ·dz;  db = Σ_rows dz
 *   y = act(conv(x,W)+b):  dz likewise;  dx = conv2dBackpropInput;  dW = conv2dBackpropFilter;  db = Σ dz
 *   L = −mean_i Σ_k y_ik log softmax(z)_ik:   dL/dz = (softmax(z)·Σ_k y_ik − y) / n
 * Training skips the input gradient of the first layer (its input is data, not a weight:
 * `inputGrad: false`); anything that needs ∂/∂x (Jacobian augmentation, MAD) keeps the default.
 */
import { tf } from '../compute/backend.js';
import { ACT_BIAS_GRAD_KERNEL, hasActBiasGrad } from '../compute/kernels/act-bias-grad.js';

type Act = 'linear' | 'relu';

/** dz = dy ⊙ act'(y) and the bias gradient Σ dz over every axis but the last: one kernel where the backend has it. */
function actBiasGrad<T extends tf.Tensor>(dy: tf.Tensor, y: tf.Tensor, act: Act): [T, tf.Tensor1D] {
  if (hasActBiasGrad())
    return tf.engine().runKernel(ACT_BIAS_GRAD_KERNEL, { dy, y }, { relu: act === 'relu' }) as unknown as [
      T,
      tf.Tensor1D,
    ];
  const dz = (act === 'relu' ? tf.mul(dy, tf.step(y)) : dy) as T;
  return [dz, tf.sum(dz, [...Array(dz.rank - 1).keys()]) as tf.Tensor1D];
}

type Body<T extends tf.Tensor> = (
  ins: tf.Tensor[],
  save: tf.GradSaveFunc,
) => { value: T; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/** tf.customGrad over `n` tensor inputs, typed. */
function custom<T extends tf.Tensor>(n: number, body: Body<T>): (...ins: tf.Tensor[]) => T {
  const f = (...args: Array<tf.Tensor | tf.GradSaveFunc>) =>
    body(args.slice(0, n) as tf.Tensor[], args[n] as tf.GradSaveFunc);
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...ins: tf.Tensor[]) => T;
}

const denseCache = new Map<string, (...ins: tf.Tensor[]) => tf.Tensor2D>();

export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D, act: Act, inputGrad: boolean): tf.Tensor2D {
  const key = `${act}:${inputGrad}`;
  let f = denseCache.get(key);
  if (!f) {
    f = custom<tf.Tensor2D>(3, ([xi, wi, bi], save) => {
      // the kernel takes rank-3 operands (as tf.fused.matMul passes them)
      const a3 = tf.reshape(xi, [1, ...xi.shape]);
      const b3 = tf.reshape(wi, [1, ...wi.shape]);
      const y3 = tf
        .engine()
        .runKernel(
          tf._FusedMatMul,
          { a: a3, b: b3, bias: bi },
          { transposeA: false, transposeB: false, activation: act },
        ) as tf.Tensor3D;
      const y = tf.reshape(y3, [xi.shape[0], wi.shape[1] as number]) as tf.Tensor2D;
      tf.dispose([a3, b3, y3]);
      save([xi, wi, y]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw, sy] = saved;
          const [dz, db] = actBiasGrad<tf.Tensor2D>(dy, sy, act);
          return [
            inputGrad ? tf.matMul(dz, sw as tf.Tensor2D, false, true) : tf.zerosLike(sx),
            tf.matMul(sx as tf.Tensor2D, dz, true, false),
            db,
          ];
        },
      };
    });
    denseCache.set(key, f);
  }
  return f(x, w, b);
}

const convCache = new Map<string, (...ins: tf.Tensor[]) => tf.Tensor4D>();

export function conv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  b: tf.Tensor1D,
  stride: number,
  pad: 'same' | 'valid',
  act: Act,
  inputGrad: boolean,
): tf.Tensor4D {
  const key = `${stride}:${pad}:${act}:${inputGrad}`;
  const f =
    convCache.get(key) ??
    custom<tf.Tensor4D>(3, ([xi, wi, bi], save) => {
      const attrs = { strides: [stride, stride], pad, dataFormat: 'NHWC', dilations: [1, 1], activation: act };
      const y = tf
        .engine()
        .runKernel(tf.FusedConv2D, { x: xi, filter: wi, bias: bi }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
      save([xi, wi, y]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, sw, sy] = saved as tf.Tensor4D[];
          const [dz, db] = actBiasGrad<tf.Tensor4D>(dy, sy, act);
          const common = { strides: [stride, stride], pad, dataFormat: 'NHWC', dimRoundingMode: undefined } as const;
          const dx = inputGrad
            ? (tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: dz, filter: sw }, {
                ...common,
                inputShape: sx.shape,
              } as unknown as tf.NamedAttrMap) as tf.Tensor)
            : tf.zerosLike(sx);
          const dw = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: sx, dy: dz }, {
            ...common,
            filterShape: sw.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor;
          return [dx, dw, db];
        },
      };
    });
  convCache.set(key, f);
  return f(x, w, b);
}

const ce = custom<tf.Scalar>(2, ([z, y], save) => {
  const n = z.shape[0];
  const ls = tf.logSoftmax(z as tf.Tensor2D);
  save([ls, y]);
  return {
    value: tf.div(tf.neg(tf.sum(tf.mul(y, ls))), n) as tf.Scalar,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sls, sy] = saved;
      const p = tf.exp(sls);
      const dz = tf.mul(tf.sub(tf.mul(p, tf.sum(sy, 1, true)), sy), tf.div(dy, n));
      return [dz, tf.zerosLike(sy)];
    },
  };
});

/** Mean soft cross-entropy −(1/n) Σ_i Σ_k y_ik log softmax(z_i)_k, with a one-pass gradient. */
export function softmaxCrossEntropy(z: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar {
  return ce(z, y);
}
