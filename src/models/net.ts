/**
 * A small feed-forward network over raw tf.Variables: dense, conv2d, max-pool, flatten, with a
 * softmax, binary-sigmoid or one-vs-rest head. Logistic/softmax/OvR regression, the MLP and the
 * CNN are all Nets with different layer lists. Dense and conv layers use tfjs's fused ops (bias +
 * ReLU in the same kernel, XNNPACK on wasm); weights use Glorot-uniform init from a seeded Rng.
 */
import { tf } from '../compute/backend.js';
import { MLP_GRADS_KERNEL } from '../compute/kernels/mlp-grads.js';
import { denseLogits, type DenseLayer } from '../compute/dense-native.js';
import { nativeBlas, type NativeBlas } from '../compute/native.js';
import { Rng } from '../compute/rng.js';
import * as ops from './ops.js';
import type { Logits, Model, ModelKind, Probs, SerializedModel } from './model.js';

export type Activation = 'linear' | 'relu' | 'tanh';
export type LayerSpec =
  | { type: 'dense'; units: number; activation?: Activation }
  | {
      type: 'conv2d';
      filters: number;
      kernel: number;
      stride?: number;
      padding?: 'same' | 'valid';
      activation?: Activation;
    }
  | { type: 'maxpool'; size: number; stride?: number }
  | { type: 'flatten' };

/** softmax: p = softmax(z); sigmoid: binary, z is [n,1], p = [1−σ(z), σ(z)]; ovr: p_i = σ(z_i)/Σ_j σ(z_j) (Tramèr §4.1.2) */
export type Head = 'softmax' | 'sigmoid' | 'ovr';

export interface NetConfig {
  kind: ModelKind;
  inputShape: number[];
  numClasses: number;
  layers: LayerSpec[];
  head: Head;
}

interface Param {
  w: tf.Variable;
  b: tf.Variable;
}

export class Net implements Model {
  readonly kind: ModelKind;
  readonly inputShape: number[];
  readonly numClasses: number;
  readonly layers: LayerSpec[];
  readonly head: Head;
  private readonly weights: Array<Param | undefined>;
  /** for a dense ReLU net with a softmax head: 1/0 per weighted layer, its ReLU (the fused training kernel's attribute) */
  private readonly mlpRelu: number[] | undefined;

  constructor(cfg: NetConfig, init: Rng | Float32Array[]) {
    this.kind = cfg.kind;
    this.inputShape = cfg.inputShape;
    this.numClasses = cfg.numClasses;
    this.layers = cfg.layers;
    this.head = cfg.head;
    const shapes = paramShapes(cfg);
    let k = 0;
    this.weights = shapes.map((s) => {
      if (!s) return undefined;
      const [wv, bv] = Array.isArray(init) ? [init[k++], init[k++]] : [glorot(s.w, init), new Float32Array(s.b[0])];
      return { w: variable(wv, s.w), b: variable(bv, s.b) };
    });
    const dense = cfg.layers.filter((l) => l.type === 'dense');
    const act = (l: LayerSpec) => (l.type === 'dense' ? (l.activation ?? 'linear') : 'linear');
    const fusable =
      cfg.head === 'softmax' &&
      dense.length > 0 &&
      cfg.layers.every((l) => l.type === 'dense' || l.type === 'flatten') &&
      dense.every((l) => act(l) === 'relu' || act(l) === 'linear') &&
      act(dense[dense.length - 1]) === 'linear';
    this.mlpRelu = fusable ? dense.map((l) => (act(l) === 'relu' ? 1 : 0)) : undefined;
  }

  get config(): NetConfig {
    return {
      kind: this.kind,
      inputShape: this.inputShape,
      numClasses: this.numClasses,
      layers: this.layers,
      head: this.head,
    };
  }

  get variables(): tf.Variable[] {
    return this.weights.flatMap((p) => (p ? [p.w, p.b] : []));
  }

  /**
   * [n, ...inputShape] → logits. `inputGradient: false` (training) skips ∂/∂x in the first layer;
   * keep the default wherever a gradient with respect to the input is wanted.
   */
  logits(x: tf.Tensor, opts: { inputGradient?: boolean } = {}): Logits {
    return tf.tidy(() => this.forward(x, opts.inputGradient === false));
  }

  /**
   * One forward pass that also returns the hidden representations: the output of every weighted
   * (dense or conv) layer but the last, after its activation and before any pooling, flattened to
   * [n, features] — what a representation loss such as the soft nearest neighbour loss looks at.
   */
  activations(x: tf.Tensor, opts: { inputGradient?: boolean } = {}): { hidden: tf.Tensor2D[]; logits: Logits } {
    return tf.tidy(() => {
      const outs: tf.Tensor[] = [];
      const logits = this.forward(x, opts.inputGradient === false, outs);
      // the last weighted layer's output is the logits themselves
      const hidden = outs.slice(0, -1).map((h) => (h.rank === 2 ? h : h.reshape([h.shape[0], -1])) as tf.Tensor2D);
      return { hidden, logits };
    });
  }

  /** the layer loop, for callers inside a tidy; `collect` receives each weighted layer's output */
  private forward(x: tf.Tensor, skipInputGrad: boolean, collect?: tf.Tensor[]): Logits {
    let h = x.reshape([-1, ...this.inputShape]);
    let first = skipInputGrad; // while true, the current weighted layer's input is the data
    this.layers.forEach((l, i) => {
      const p = this.weights[i];
      switch (l.type) {
        case 'dense': {
          const act = l.activation ?? 'linear';
          const flat = h.rank === 2 ? (h as tf.Tensor2D) : (h.reshape([h.shape[0], -1]) as tf.Tensor2D);
          h = ops.dense(flat, p!.w as tf.Tensor2D, p!.b as tf.Tensor1D, act === 'tanh' ? 'linear' : act, !first);
          if (act === 'tanh') h = tf.tanh(h);
          first = false;
          collect?.push(h);
          break;
        }
        case 'conv2d': {
          const act = l.activation ?? 'linear';
          h = ops.conv2d(
            h as tf.Tensor4D,
            p!.w as tf.Tensor4D,
            p!.b as tf.Tensor1D,
            l.stride ?? 1,
            l.padding ?? 'valid',
            act === 'tanh' ? 'linear' : act,
            !first,
          );
          if (act === 'tanh') h = tf.tanh(h);
          first = false;
          collect?.push(h);
          break;
        }
        case 'maxpool':
          h = tf.maxPool(h as tf.Tensor4D, l.size, l.stride ?? l.size, 'valid');
          break;
        case 'flatten':
          h = h.reshape([h.shape[0], -1]);
          break;
      }
    });
    return h as Logits;
  }

  /** Probabilities from logits according to the head. */
  probsFromLogits(z: Logits): Probs {
    return tf.tidy(() => {
      switch (this.head) {
        case 'softmax':
          return tf.softmax(z);
        case 'sigmoid': {
          const p = tf.sigmoid(z);
          return tf.concat([tf.sub(1, p), p], 1) as Probs;
        }
        case 'ovr': {
          const s = tf.sigmoid(z);
          return tf.div(s, tf.sum(s, 1, true)) as Probs;
        }
      }
    });
  }

  predict(x: tf.Tensor): Probs {
    return tf.tidy(() => this.probsFromLogits(this.logits(x)));
  }

  /**
   * The native BLAS, where this is a dense ReLU net with a softmax head and the backend runs mse's
   * fused kernels on it (what `denseLayers`, `predictRows` and the training loop's dense path need);
   * null otherwise.
   */
  denseBlas(): NativeBlas | null {
    if (!this.mlpRelu || !tf.getKernel(MLP_GRADS_KERNEL, tf.getBackend())) return null;
    return nativeBlas();
  }

  /** A copy of the weighted layers as plain arrays (compute/dense-native.ts's form); undefined unless `denseBlas()`. */
  denseLayers(): DenseLayer[] | undefined {
    const relu = this.mlpRelu;
    if (!relu) return undefined;
    return this.weights
      .filter((p): p is Param => p !== undefined)
      .map((p, l) => ({
        w: Float32Array.from(p.w.dataSync() as Float32Array),
        b: Float32Array.from(p.b.dataSync() as Float32Array),
        inputs: p.w.size / p.b.size,
        outputs: p.b.size,
        relu: relu[l] === 1,
      }));
  }

  /** Write arrays of `denseLayers()`'s form back into the variables. */
  assignDense(layers: DenseLayer[]): void {
    const params = this.weights.filter((p): p is Param => p !== undefined);
    if (layers.length !== params.length) throw new Error(`assignDense: ${layers.length} layers for ${params.length}`);
    tf.tidy(() =>
      params.forEach((p, l) => {
        p.w.assign(tf.tensor(layers[l].w, p.w.shape));
        p.b.assign(tf.tensor(layers[l].b, p.b.shape));
      }),
    );
  }

  /**
   * Probabilities for the n rows of x (flat, row-major) without copying them into tensors, where
   * `denseBlas()` allows (compute/dense-native.ts): the same values as predict. Undefined otherwise
   * (predict through tensors). Weights are read once per call.
   */
  predictRows(x: Float32Array, n: number, batch: number): Float32Array | undefined {
    const blas = this.denseBlas();
    const layers = blas ? this.denseLayers() : undefined;
    if (!blas || !layers) return undefined;
    const k = this.numClasses;
    const logits = new Float32Array(n * k);
    denseLogits(blas, layers, x, n, batch, (z, start) => logits.set(z, start * k));
    if (n === 0) return logits;
    // the logits are the bits the fused kernels give; the head runs as in predict (tfjs's softmax,
    // row by row), once for all rows
    const p = tf.tidy(() => this.probsFromLogits(tf.tensor2d(logits, [n, k]) as Logits));
    const out = p.dataSync() as Float32Array;
    p.dispose();
    return out;
  }

  /**
   * Mean training loss against targets `y` ([n, k], one-hot or soft):
   * softmax → cross-entropy; sigmoid → binary cross-entropy on y[:,1]; ovr → Σ_k binary CE per class
   * (k independent one-vs-rest classifiers, as LibLinear trains them).
   */
  loss(x: tf.Tensor, y: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      const z = this.logits(x, { inputGradient: false });
      switch (this.head) {
        case 'softmax':
          return ops.softmaxCrossEntropy(z, y);
        case 'sigmoid':
          return tf.losses.sigmoidCrossEntropy(y.slice([0, 1], [-1, 1]), z) as tf.Scalar;
        case 'ovr':
          return tf.mul(tf.losses.sigmoidCrossEntropy(y, z), this.numClasses) as tf.Scalar;
      }
    });
  }

  /**
   * The training loss (as `loss`) and its gradient for every variable (in `variables` order) from
   * one kernel, where the backend has it (wasm with the native BLAS) and this is a dense ReLU net
   * with a softmax head; undefined otherwise (train through `loss` and autograd).
   */
  lossAndGrads(x: tf.Tensor, y: tf.Tensor2D): { loss: tf.Scalar; grads: tf.Tensor[] } | undefined {
    if (!this.mlpRelu || !tf.getKernel(MLP_GRADS_KERNEL, tf.getBackend())) return undefined;
    const flat = x.reshape([x.shape[0], -1]);
    const inputs: tf.NamedTensorMap = { x: flat, y };
    this.weights
      .filter((p): p is Param => p !== undefined)
      .forEach((p, l) => {
        inputs[`w${l}`] = p.w;
        inputs[`b${l}`] = p.b;
      });
    const [loss, ...grads] = tf.engine().runKernel(MLP_GRADS_KERNEL, inputs, {
      relu: this.mlpRelu,
    } as unknown as tf.NamedAttrMap) as tf.Tensor[];
    flat.dispose();
    return { loss: loss as tf.Scalar, grads };
  }

  params(): Float32Array {
    const arrays = this.variables.map((v) => v.dataSync() as Float32Array);
    const out = new Float32Array(arrays.reduce((a, b) => a + b.length, 0));
    let o = 0;
    for (const a of arrays) {
      out.set(a, o);
      o += a.length;
    }
    return out;
  }

  serialize(): SerializedModel {
    return {
      format: 'mse-model/1',
      ...this.config,
      weights: this.variables.map((v) =>
        Buffer.from((v.dataSync() as Float32Array).buffer.slice(0)).toString('base64'),
      ),
    };
  }

  static deserialize(s: SerializedModel): Net {
    const cfg = s as unknown as NetConfig & { weights: string[] };
    const arrays = cfg.weights.map((b64) => {
      const buf = Buffer.from(b64, 'base64');
      return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    });
    return new Net(
      { kind: cfg.kind, inputShape: cfg.inputShape, numClasses: cfg.numClasses, layers: cfg.layers, head: cfg.head },
      arrays,
    );
  }

  numParams(): number {
    return this.variables.reduce((a, v) => a + v.size, 0);
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

/** tf.variable keeps its initial tensor alive as a separate tensor: free it. */
function variable(values: Float32Array, shape: number[]): tf.Variable {
  const t = tf.tensor(values, shape);
  const v = tf.variable(t);
  t.dispose();
  return v;
}

/** Weight and bias shapes per layer (undefined for parameter-free layers). */
export function paramShapes(cfg: NetConfig): Array<{ w: number[]; b: number[] } | undefined> {
  let shape = [...cfg.inputShape];
  return cfg.layers.map((l) => {
    switch (l.type) {
      case 'dense': {
        const fanIn = shape.reduce((a, b) => a * b, 1);
        shape = [l.units];
        return { w: [fanIn, l.units], b: [l.units] };
      }
      case 'conv2d': {
        const [h, w, c] = shape;
        const s = l.stride ?? 1;
        const same = (l.padding ?? 'valid') === 'same';
        const oh = same ? Math.ceil(h / s) : Math.floor((h - l.kernel) / s) + 1;
        const ow = same ? Math.ceil(w / s) : Math.floor((w - l.kernel) / s) + 1;
        shape = [oh, ow, l.filters];
        return { w: [l.kernel, l.kernel, c, l.filters], b: [l.filters] };
      }
      case 'maxpool': {
        const [h, w, c] = shape;
        const s = l.stride ?? l.size;
        shape = [Math.floor((h - l.size) / s) + 1, Math.floor((w - l.size) / s) + 1, c];
        return undefined;
      }
      case 'flatten':
        shape = [shape.reduce((a, b) => a * b, 1)];
        return undefined;
    }
  });
}

/** Glorot/Xavier uniform: U(±√(6 / (fan_in + fan_out))). */
function glorot(shape: number[], rng: Rng): Float32Array {
  const receptive = shape.length === 4 ? shape[0] * shape[1] : 1;
  const fanIn = shape[shape.length - 2] * receptive;
  const fanOut = shape[shape.length - 1] * receptive;
  const lim = Math.sqrt(6 / (fanIn + fanOut));
  return rng.fillUniform(new Float32Array(shape.reduce((a, b) => a * b, 1)), -lim, lim);
}
