/**
 * The training loop for Nets: seeded shuffling, mini-batches copied into one reusable buffer,
 * Adam or SGD-with-momentum, optional L2, soft or hard targets. Every tensor lives inside a tidy
 * or is disposed in `finally`, so memory stays flat across epochs (a test checks it).
 */
import { tf } from '../compute/backend.js';
import { denseLossAndGrads, type DenseLayer } from '../compute/dense-native.js';
import type { Rng } from '../compute/rng.js';
import type { Net } from './net.js';
import { makeOptimizer, type StepOptimizer } from './optimizer.js';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  optimizer: 'adam' | 'sgd';
  lr: number;
  /** SGD momentum */
  momentum?: number;
  /** L2 penalty λ·½‖W‖² added to the mean loss (weights only, not biases) */
  l2?: number;
  rng: Rng;
  /** called after each batch with examples seen so far */
  onBatch?: (seen: number, total: number, loss: number | undefined) => void;
}

export interface TrainData {
  x: Float32Array;
  n: number;
  /** hard labels (one-hot is built per batch) … */
  y?: Int32Array;
  /** … or soft targets [n, k] */
  targets?: Float32Array;
}

export interface TrainStats {
  examples: number;
  seconds: number;
  finalLoss: number;
}

/** how long a training loop may run without yielding to the event loop */
const YIELD_MS = 100;

/** One optimiser step on the first m rows of a batch; the loss when asked (or when it is free). */
type BatchStep = (xb: Float32Array, yb: Float32Array, m: number, wantLoss: boolean) => Promise<number | undefined>;

/**
 * Train `net` on `data`. A dense ReLU net with a softmax head on the native build (and no L2) trains
 * on plain arrays (`denseSteps`); everything else through tensors and autograd (`tensorSteps`). Both
 * give the same weights: the same kernels' arithmetic, in the same order.
 */
export async function fit(net: Net, data: TrainData, opts: TrainOptions): Promise<TrainStats> {
  return fitWith(net, data, opts, opts.l2 ? undefined : denseSteps(net, opts));
}

/** `fit` through tensors always (the kernel suite compares the two paths). */
export async function fitThroughTensors(net: Net, data: TrainData, opts: TrainOptions): Promise<TrainStats> {
  return fitWith(net, data, opts, undefined);
}

async function fitWith(
  net: Net,
  data: TrainData,
  opts: TrainOptions,
  dense: { step: BatchStep; finish(): void } | undefined,
): Promise<TrainStats> {
  const d = net.inputShape.reduce((a, b) => a * b, 1);
  const k = net.numClasses;
  if (data.n === 0) {
    dense?.finish();
    return { examples: 0, seconds: 0, finalLoss: NaN };
  }
  const bs = Math.min(opts.batchSize, data.n);
  const optimizer = dense ? undefined : makeOptimizer(opts);
  const step = dense?.step ?? tensorSteps(net, opts, optimizer!);
  const xb = new Float32Array(bs * d);
  const yb = new Float32Array(bs * k);
  const total = opts.epochs * data.n;
  let seen = 0;
  let lastLoss = NaN;
  let batches = 0;
  const t0 = performance.now();
  let lastYield = t0;
  try {
    for (let e = 0; e < opts.epochs; e++) {
      const perm = opts.rng.permutation(data.n);
      for (let s = 0; s < data.n; s += bs) {
        const m = Math.min(bs, data.n - s);
        yb.fill(0);
        for (let i = 0; i < m; i++) {
          const r = perm[s + i];
          xb.set(data.x.subarray(r * d, (r + 1) * d), i * d);
          if (data.targets) yb.set(data.targets.subarray(r * k, (r + 1) * k), i * k);
          else yb[i * k + data.y![r]] = 1;
        }
        const last = s + bs >= data.n && e === opts.epochs - 1;
        // reading the loss forces a sync: only on the last batch and every 25th when reporting
        const wantLoss = last || (opts.onBatch !== undefined && batches++ % 25 === 0);
        const loss = await step(xb, yb, m, wantLoss);
        if (loss !== undefined) lastLoss = loss;
        seen += m;
        opts.onBatch?.(seen, total, lastLoss);
        // let the event loop turn now and then: a long fit would otherwise hold off Ctrl-C / SIGTERM
        // (and a sweep's clean stop) until it ends
        if (performance.now() - lastYield > YIELD_MS) {
          await new Promise((r) => setImmediate(r));
          lastYield = performance.now();
        }
      }
    }
  } finally {
    optimizer?.dispose();
    dense?.finish();
  }
  return { examples: seen, seconds: (performance.now() - t0) / 1000, finalLoss: lastLoss };
}

/** Steps through tensors: the fused loss-and-gradients kernel where the net has one, else autograd. */
function tensorSteps(net: Net, opts: TrainOptions, optimizer: StepOptimizer): BatchStep {
  const vars = net.variables;
  const weightVars = vars.filter((_, i) => i % 2 === 0);
  const d = net.inputShape.reduce((a, b) => a * b, 1);
  const k = net.numClasses;
  return async (xb, yb, m, wantLoss) => {
    const lossT: tf.Scalar | undefined = tf.tidy(() => {
      const xt = tf.tensor(m * d === xb.length ? xb : xb.subarray(0, m * d), [m, ...net.inputShape]);
      const yt = tf.tensor2d(m * k === yb.length ? yb : yb.subarray(0, m * k), [m, k]);
      // a dense ReLU net on the native build: loss and gradients from one kernel (no L2 there)
      const fused = opts.l2 ? undefined : net.lossAndGrads(xt, yt);
      if (fused) {
        optimizer.apply(fused.grads, vars);
        return wantLoss ? fused.loss : undefined;
      }
      return optimizer.minimize(
        () => {
          const base = net.loss(xt, yt);
          if (!opts.l2) return base;
          const pen = tf.addN(weightVars.map((w) => tf.sum(tf.square(w))));
          return tf.add(base, tf.mul(0.5 * opts.l2, pen)) as tf.Scalar;
        },
        wantLoss,
        vars,
      );
    }) as tf.Scalar | undefined;
    if (!lossT) return undefined;
    const v = (await lossT.data())[0];
    lossT.dispose();
    return v;
  };
}

/**
 * Steps on plain arrays for a dense ReLU softmax net on the native build (compute/dense-native.ts):
 * the loss and gradients, then the optimiser's update (the same C loops as the fused optimiser's
 * kernels) from one set of weight arrays into another, swapping each step. No tensor is made; the
 * weights go back into the net's variables when training ends. A whole MLP step was 1.3 ms through
 * tensors (0.77 of it the gradients' arithmetic); the rest was copies, allocation and dispatch.
 */
function denseSteps(net: Net, opts: TrainOptions): { step: BatchStep; finish(): void } | undefined {
  const blas = net.denseBlas();
  const layers = blas ? net.denseLayers() : undefined;
  if (!blas || !layers) return undefined;
  const like = () => layers.map((l) => ({ w: new Float32Array(l.w.length), b: new Float32Array(l.b.length) }));
  let cur: DenseLayer[] = layers;
  let next: DenseLayer[] = layers.map((l) => ({
    ...l,
    w: new Float32Array(l.w.length),
    b: new Float32Array(l.b.length),
  }));
  const grads = like();
  // optimiser state, also double-buffered: adam keeps [m, v], sgd with momentum [velocity]
  const adam = opts.optimizer === 'adam';
  let st = adam ? [like(), like()] : [like()];
  let stNext = adam ? [like(), like()] : [like()];
  const d = layers[0].inputs;
  const k = layers[layers.length - 1].outputs;
  const b1 = 0.9;
  const b2 = 0.999;
  let t = 0;
  const update = (key: 'w' | 'b', l: number) => {
    if (adam)
      blas.adam(
        cur[l][key],
        st[0][l][key],
        st[1][l][key],
        grads[l][key],
        next[l][key],
        stNext[0][l][key],
        stNext[1][l][key],
        opts.lr,
        b1,
        b2,
        1e-7,
        b1 ** t,
        b2 ** t,
      );
    else
      blas.momentum(
        cur[l][key],
        st[0][l][key],
        grads[l][key],
        next[l][key],
        stNext[0][l][key],
        opts.lr,
        opts.momentum ?? 0.9,
      );
  };
  return {
    step: async (xb, yb, m) => {
      const loss = denseLossAndGrads(blas, cur, xb.subarray(0, m * d), yb.subarray(0, m * k), m, grads);
      t += 1;
      for (let l = 0; l < cur.length; l++) {
        update('w', l);
        update('b', l);
      }
      [cur, next] = [next, cur];
      [st, stNext] = [stNext, st];
      return loss;
    },
    finish: () => net.assignDense(cur),
  };
}

/** Probabilities for every row of `x`, batched; returns [n·k] row-major. */
export async function predictAll(
  model: {
    predict(x: tf.Tensor): tf.Tensor2D;
    predictAsync?(x: tf.Tensor): Promise<tf.Tensor2D>;
    predictRows?(x: Float32Array, n: number, batch: number): Float32Array | undefined;
    inputShape: number[];
    numClasses: number;
  },
  x: Float32Array,
  n: number,
  batch = 1024,
): Promise<Float32Array> {
  const direct = model.predictRows?.(x, n, batch);
  if (direct) return direct;
  const d = model.inputShape.reduce((a, b) => a * b, 1);
  const k = model.numClasses;
  const out = new Float32Array(n * k);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const xt = tf.tensor(x.subarray(s * d, (s + m) * d), [m, ...model.inputShape]);
    let p: tf.Tensor2D;
    try {
      p = model.predictAsync ? await model.predictAsync(xt) : tf.tidy(() => model.predict(xt));
    } finally {
      xt.dispose();
    }
    try {
      out.set((await p.data()) as Float32Array, s * k);
    } finally {
      p.dispose();
    }
  }
  return out;
}

export function argmaxRows(p: Float32Array, k: number): Int32Array {
  const n = p.length / k;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + best]) best = j;
    out[i] = best;
  }
  return out;
}

export function accuracyOf(pred: Int32Array, y: Int32Array): number {
  let c = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) c++;
  return y.length ? c / y.length : NaN;
}
