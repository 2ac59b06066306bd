/**
 * The model zoo: kind → architecture and the defaults used to train it as a victim. One line per
 * kind in MODELS; every kind is a Net except the tree. Defaults follow the papers: Tramèr's MLP has
 * one tanh hidden layer of 20; the CNN is the LeNet-style MNIST victim of Orekondy et al. 2020
 * (conv20-5 → pool → conv50-5 → pool → fc500 → fc10).
 */
import { UsageError } from '../errors.js';
import { Rng } from '../compute/rng.js';
import type { Dataset } from '../data/types.js';
import { formatParams, parseSpec, typed, type ParamValue, type ParamValues, type Schema } from '../params.js';
import { Registry } from '../units/registry.js';
import { defineModel, type ModelUnit, type TrainDefaults } from './define.js';
import { DecisionTree } from './decision-tree.js';
import type { Model, ModelKind, SerializedModel } from './model.js';
import { Net, type Activation } from './net.js';
import { LoadedModel, modelFiles } from './loaded.js';
import { OnnxModel } from './onnx.js';
import { canonicalValues, parseNormalization, type Normalization } from './normalize.js';
import type { TrainOptions } from './train.js';

const TRAIN = {
  epochs: { type: 'int', min: 1, help: 'training epochs' },
  batch: { type: 'int', min: 1, help: 'mini-batch size' },
  lr: { type: 'number', min: 0, help: 'learning rate' },
  l2: { type: 'number', min: 0, help: 'L2 penalty on weights' },
} as const satisfies Schema;

// at least ~500 Adam steps: tiny tables (iris: 105 rows, 2 batches an epoch) need many epochs
const smallEpochs = (n: number) => (n > 20000 ? 10 : Math.min(300, Math.max(60, Math.ceil(32000 / Math.max(1, n)))));
const linearTrain = (ds: Dataset): TrainDefaults => ({
  epochs: smallEpochs(ds.train.n),
  batchSize: 64,
  optimizer: 'adam',
  lr: 0.01,
  l2: 1 / Math.max(1, ds.train.n),
});
const tabularBudgets = (quick: boolean) => (quick ? ['1x'] : ['1x', '10x', '100x']);

export const logistic = defineModel({
  name: 'logistic',
  describe: 'binary logistic regression, σ(w·x + b)',
  params: TRAIN,
  train: linearTrain,
  layers: (ds) => {
    if (ds.numClasses !== 2)
      throw new UsageError(`logistic is binary but ${ds.name} has ${ds.numClasses} classes; use softmax or ovr`);
    return { layers: [{ type: 'flatten' }, { type: 'dense', units: 1 }], head: 'sigmoid' };
  },
  attacks: ['eq-lr', 'retrain-adaptive'],
  budgets: tabularBudgets,
});

export const softmax = defineModel({
  name: 'softmax',
  describe: 'multinomial logistic (softmax) regression',
  params: TRAIN,
  train: linearTrain,
  layers: (ds) => ({ layers: [{ type: 'flatten' }, { type: 'dense', units: ds.numClasses }], head: 'softmax' }),
  attacks: ['eq-softmax', 'retrain-uniform'],
  budgets: tabularBudgets,
});

export const ovr = defineModel({
  name: 'ovr',
  describe: 'one-vs-rest logistic regression, p_i ∝ σ(w_i·x + b_i)',
  params: TRAIN,
  train: linearTrain,
  layers: (ds) => ({ layers: [{ type: 'flatten' }, { type: 'dense', units: ds.numClasses }], head: 'ovr' }),
  attacks: ['eq-ovr'],
  budgets: tabularBudgets,
});

const MLP_PARAMS = {
  ...TRAIN,
  hidden: { type: 'int-list', min: 1, help: 'hidden layer sizes, e.g. hidden=256,128' },
  activation: { type: 'string', choices: ['relu', 'tanh'], help: 'hidden activation' },
} as const satisfies Schema;

export const mlp = defineModel({
  name: 'mlp',
  describe: 'multi-layer perceptron (tabular default: 1×20 tanh as Tramèr; images: 256,128 relu)',
  params: MLP_PARAMS,
  train: (ds) =>
    ds.kind === 'image'
      ? { epochs: 5, batchSize: 64, optimizer: 'adam', lr: 1e-3 }
      : {
          epochs: ds.train.n > 20000 ? 10 : Math.max(100, smallEpochs(ds.train.n)),
          batchSize: 64,
          optimizer: 'adam',
          lr: 0.01,
        },
  layers: (ds, p) => {
    const hidden = p.hidden ?? (ds.kind === 'image' ? [256, 128] : [20]);
    const act: Activation = p.activation ?? (ds.kind === 'image' ? 'relu' : 'tanh');
    return {
      layers: [
        { type: 'flatten' },
        ...hidden.map((units) => ({ type: 'dense' as const, units, activation: act })),
        { type: 'dense', units: ds.numClasses },
      ],
      head: 'softmax',
    };
  },
  attacks: ['eq-mlp'],
  budgets: tabularBudgets,
});

export const cnn = defineModel({
  name: 'cnn',
  describe: 'LeNet-style CNN: conv20-5, pool, conv50-5, pool, fc500, fc-k (Orekondy et al. 2020 MNIST victim)',
  params: TRAIN,
  train: () => ({ epochs: 4, batchSize: 64, optimizer: 'adam', lr: 1e-3 }),
  layers: (ds) => {
    if (ds.inputShape.length !== 3)
      throw new UsageError(
        `cnn needs image inputs (h×w×c) but ${ds.name} has ${ds.inputShape.join('×')} features; use mlp, softmax or tree`,
      );
    // two valid 5×5 convolutions, each followed by a 2×2 pool: h → ⌊(⌊(h − 4)/2⌋ − 4)/2⌋ must stay ≥ 1
    const [h, w] = ds.inputShape;
    const side = (v: number) => Math.floor((Math.floor((v - 4) / 2) - 4) / 2);
    if (side(h) < 1 || side(w) < 1)
      throw new UsageError(
        `cnn needs images of at least 16×16 (two 5×5 convolutions, each pooled), ${ds.name} has ${h}×${w}`,
        'resize them (folder:…,size=28x28) or use mlp',
      );
    const dense = side(h) * side(w) * 50 * 500;
    if (dense > 5e7)
      throw new UsageError(
        `cnn on ${h}×${w} images would have ${(dense / 1e6).toFixed(0)}M weights in its dense layer (the LeNet-style cnn is for small images)`,
        'resize them (folder:…,size=64x64 or smaller)',
      );
    return {
      layers: [
        { type: 'conv2d', filters: 20, kernel: 5, activation: 'relu' },
        { type: 'maxpool', size: 2 },
        { type: 'conv2d', filters: 50, kernel: 5, activation: 'relu' },
        { type: 'maxpool', size: 2 },
        { type: 'flatten' },
        { type: 'dense', units: 500, activation: 'relu' },
        { type: 'dense', units: ds.numClasses },
      ],
      head: 'softmax',
    };
  },
  attacks: ['knockoff'],
  // 1k and 5k: the headline sweep (3 seeds, none vs poison) stays within 90 s on 2 cores (issue 18);
  // longer curves are one -b away (-b 1k,5k,10k,20k)
  budgets: (quick) => (quick ? ['1k', '2k'] : ['1k', '5k']),
});

export const TREE_PARAMS = {
  depth: { type: 'int', min: 1, max: 64, default: 8, help: 'maximum depth' },
  'min-leaf': { type: 'int', min: 1, default: 1, help: 'minimum samples per leaf' },
} as const satisfies Schema;

export const tree = defineModel({
  name: 'tree',
  describe: 'CART decision tree (Gini), reveals leaf ids like BigML',
  params: TREE_PARAMS,
  train: () => ({ epochs: 1, batchSize: 1, optimizer: 'sgd', lr: 0 }),
  attacks: ['tree-path'],
  budgets: () => ['100k'],
});

/** What a model the user brings outputs (answers.ts reads each kind). */
const USER_OUTPUT = {
  output: {
    type: 'string',
    choices: ['auto', 'probs', 'logits', 'labels'],
    default: 'auto',
    help: 'what the model outputs: probs, logits (softmax applied) or labels (one column of class indices, e.g. an exported argmax, or k scores revealed as their argmax: the API reveals labels only); auto: labels for one column of integers (an integer type, or k > 2 classes), probabilities for distributions, else logits',
  },
} as const satisfies Schema;

/**
 * A model the user brings as files, loaded rather than trained: its path, the image layout it takes,
 * the input normalization it was trained behind (mean, std: normalize.ts) and what it outputs (see
 * loaded.ts). Without a family to assume, its default attacks are the ones that need none: Knockoff
 * (image pools) and JBDA (a seed set).
 */
function userModel(
  name: 'tfjs' | 'onnx',
  describe: string,
  pathHelp: string,
  load: (
    file: string,
    ds: Dataset,
    o: {
      layout: 'auto' | 'nhwc' | 'nchw';
      output: 'auto' | 'probs' | 'logits' | 'labels';
      normalization?: Normalization;
    },
  ) => Promise<Model>,
  files: (file: string) => string[],
): ModelUnit {
  const owner = `model ${name}`;
  const unit = defineModel({
    name,
    describe,
    params: {
      path: { type: 'string', help: pathHelp },
      layout: {
        type: 'string',
        choices: ['auto', 'nhwc', 'nchw'],
        default: 'auto',
        help: "image layout the model takes (auto: from the model's input shape; PyTorch exports take NCHW)",
      },
      mean: {
        type: 'string',
        help: "input normalization the model was trained behind (PyTorch's transforms.Normalize), subtracted before it runs: one number for all channels or one per channel separated by '/', e.g. 0.485/0.456/0.406 (tables: per feature); unset: 0. Data, API and attacks keep the dataset's domain",
      },
      std: {
        type: 'string',
        help: "divides after mean is subtracted: > 0, one number for all channels or one per channel separated by '/', e.g. 0.229/0.224/0.225; unset: 1",
      },
      ...USER_OUTPUT,
    },
    load: (ds, p) => {
      if (!p.path) throw new UsageError(`${name} needs path=<file>`);
      // lengths against the data's channels: known only now
      const normalization = parseNormalization(owner, p.mean, p.std, ds.inputShape);
      return load(p.path, ds, { layout: p.layout, output: p.output, normalization });
    },
    files: (p) => (p.path ? files(p.path) : []),
    attacks: ['knockoff', 'jbda'],
    budgets: (quick) => (quick ? ['1k'] : ['1k', '5k', '10k']),
  });
  // mean and std are checked as numbers when the spec is read, and kept in one form ("0.50" → "0.5"),
  // so equal values give equal cell ids; a spec without them is unchanged
  return {
    ...unit,
    resolve: (raw) => {
      for (const key of ['mean', 'std'] as const)
        if ((raw[key]?.length ?? 0) > 1)
          throw new UsageError(
            `${owner}: ${key} takes one value per channel separated by '/', got ${raw[key].join(',')}`,
            `write ${key}=${raw[key].join('/')}`,
          );
      const values = unit.resolve(raw);
      const out: Record<string, ParamValue> = { ...values };
      for (const key of ['mean', 'std'] as const)
        if (typeof values[key] === 'string') out[key] = canonicalValues(owner, key, values[key]);
      return out;
    },
  };
}

/** A TF.js LayersModel or GraphModel: model.json and its weight files. */
export const tfjsModel = userModel(
  'tfjs',
  "your own TF.js model: a LayersModel or GraphModel's model.json and weight files, loaded as the victim",
  'the model.json (its weight files beside it)',
  (file, ds, o) => LoadedModel.load(file, ds, o),
  modelFiles,
);

/** An ONNX model (as torch.onnx.export writes it), run by onnxruntime-node; see onnx.ts. */
export const onnxModel = userModel(
  'onnx',
  'your own ONNX model (e.g. from torch.onnx.export), run by onnxruntime-node on the CPU',
  'the .onnx file',
  (file, ds, o) => OnnxModel.load(file, ds, o),
  (file) => [file],
);

/**
 * Whether the spec declares a victim that answers labels only (`tfjs:…,output=labels`): known before
 * the model is loaded, so the runner refuses attacks that need probabilities at once. (output=auto
 * may find labels too, when it loads the model: `Model.labelsOnly` says so then.)
 */
export function declaresLabels(spec: ModelSpec): boolean {
  return (spec.kind === 'tfjs' || spec.kind === 'onnx') && typed(USER_OUTPUT, spec.params).output === 'labels';
}

/**
 * The model behind a model server when there is no local copy (`mse attack --target URL --protocol
 * kserve-v2` without -v): measured through the server itself (served.ts). It is not loaded from
 * files; the runner connects to it.
 */
export const servedModel = defineModel({
  name: 'served',
  describe:
    'the model behind --target (tf-serving or kserve-v2) with no local copy: its accuracy and agreement measured through the server',
  params: {},
  load: () => {
    throw new UsageError(
      'the served victim is the model behind --target, measured through a model server',
      'give --target URL --protocol tf-serving|kserve-v2 to mse attack (or name a local victim with -v)',
    );
  },
  attacks: ['knockoff', 'jbda'],
  budgets: (quick) => (quick ? ['1k'] : ['1k', '5k', '10k']),
});

/** Every model family, in the order `mse list` shows them. */
export const MODELS = new Registry<ModelUnit>('model', [
  logistic,
  softmax,
  ovr,
  mlp,
  cnn,
  tree,
  tfjsModel,
  onnxModel,
  servedModel,
]);

export interface ModelSpec {
  kind: ModelKind;
  params: ParamValues;
}

/** "mlp:hidden=64,32,epochs=5" → validated spec. */
export function parseModelSpec(text: string): ModelSpec {
  const { name, raw } = parseSpec(text);
  const unit = MODELS.get(name);
  return { kind: unit.name, params: unit.resolve(raw) };
}

/** The spec as text, in the canonical form cell ids and CSV rows use ("mlp:hidden=64/32"). */
export function formatModelSpec(spec: ModelSpec): string {
  return `${spec.kind}${Object.keys(spec.params).length ? `:${formatParams(spec.params)}` : ''}`;
}

/** An untrained Net of this kind for this dataset (the tree has no untrained form). */
export function createNet(
  spec: ModelSpec,
  ds: Pick<Dataset, 'name' | 'inputShape' | 'numClasses' | 'kind'> & Partial<Dataset>,
  rng: Rng,
): Net {
  const def = MODELS.get(spec.kind);
  if (!def.layers) throw new UsageError(`${spec.kind} is not a network`);
  const { layers, head } = def.layers(ds as Dataset, spec.params);
  return new Net({ kind: spec.kind, inputShape: ds.inputShape, numClasses: ds.numClasses, layers, head }, rng);
}

/** Training options for a spec on a dataset: the kind's defaults, overridden by the spec's params. */
export function trainOptions(spec: ModelSpec, ds: Dataset, rng: Rng): TrainOptions {
  const train = MODELS.get(spec.kind).train;
  if (!train) throw new UsageError(`${spec.kind} models are loaded, not trained by mse`);
  const base = train(ds);
  // every network family takes TRAIN's parameters (the tree has none of them: all undefined)
  const p = typed(TRAIN, spec.params);
  return {
    ...base,
    epochs: p.epochs ?? base.epochs,
    batchSize: p.batch ?? base.batchSize,
    lr: p.lr ?? base.lr,
    l2: p.l2 ?? base.l2,
    rng,
  };
}

export function loadModel(s: SerializedModel): Model {
  if (s.format !== 'mse-model/1') throw new UsageError(`not an mse model file (format ${String(s.format)})`);
  return s.kind === 'tree' ? DecisionTree.deserialize(s) : Net.deserialize(s);
}

/** The tree's fitting options from its spec. */
export function treeOptions(spec: ModelSpec): { maxDepth: number; minSamplesLeaf: number } {
  const p = typed(TREE_PARAMS, spec.params);
  return { maxDepth: p.depth, minSamplesLeaf: p['min-leaf'] };
}

/** What an attacker assuming this victim family knows of it: the kind, and an MLP's shape when the spec names it. */
export function familyOf(spec: ModelSpec): { kind: ModelKind; hidden?: number[]; activation?: 'relu' | 'tanh' } {
  if (spec.kind !== 'mlp') return { kind: spec.kind, hidden: undefined, activation: undefined };
  const p = typed(MLP_PARAMS, spec.params);
  return { kind: spec.kind, hidden: p.hidden ? [...p.hidden] : undefined, activation: p.activation };
}
