/**
 * The model zoo: kind → architecture and the defaults used to train it as a victim. One line per
 * kind in MODELS; every kind is a Net except the tree. Defaults follow the papers: Tramèr's MLP has
 * one tanh hidden layer of 20; the CNN is the LeNet-style MNIST victim of Orekondy et al. 2020
 * (conv20-5 → pool → conv50-5 → pool → fc500 → fc10).
 */
import { UsageError, unknownChoice } from '../errors.js';
import { Rng } from '../compute/rng.js';
import type { Dataset } from '../data/types.js';
import { parseSpec, resolveParams, type ParamDecls, type ParamValues } from '../params.js';
import { DecisionTree } from './decision-tree.js';
import { MODEL_KINDS, type Model, type ModelKind, type SerializedModel } from './model.js';
import { Net, type Activation, type LayerSpec, type NetConfig } from './net.js';
import type { TrainOptions } from './train.js';

const TRAIN: ParamDecls = {
  epochs: { type: 'int', min: 1, help: 'training epochs' },
  batch: { type: 'int', min: 1, help: 'mini-batch size' },
  lr: { type: 'number', min: 0, help: 'learning rate' },
  l2: { type: 'number', min: 0, help: 'L2 penalty on weights' },
};

interface ModelDef {
  describe: string;
  params: ParamDecls;
  /** training defaults for this kind on this dataset */
  train(ds: Dataset): Omit<TrainOptions, 'rng' | 'onBatch'>;
  layers?(ds: Dataset, p: ParamValues): { layers: LayerSpec[]; head: NetConfig['head'] };
}

// at least ~500 Adam steps: tiny tables (iris: 105 rows, 2 batches an epoch) need many epochs
const smallEpochs = (n: number) => (n > 20000 ? 10 : Math.min(300, Math.max(60, Math.ceil(32000 / Math.max(1, n)))));
const linearTrain = (ds: Dataset) => ({ epochs: smallEpochs(ds.train.n), batchSize: 64, optimizer: 'adam' as const, lr: 0.01, l2: 1 / Math.max(1, ds.train.n) });

export const MODELS: Record<ModelKind, ModelDef> = {
  logistic: {
    describe: 'binary logistic regression, σ(w·x + b)',
    params: { ...TRAIN },
    train: linearTrain,
    layers: (ds) => {
      if (ds.numClasses !== 2) throw new UsageError(`logistic is binary but ${ds.name} has ${ds.numClasses} classes; use softmax or ovr`);
      return { layers: [{ type: 'flatten' }, { type: 'dense', units: 1 }], head: 'sigmoid' };
    },
  },
  softmax: {
    describe: 'multinomial logistic (softmax) regression',
    params: { ...TRAIN },
    train: linearTrain,
    layers: (ds) => ({ layers: [{ type: 'flatten' }, { type: 'dense', units: ds.numClasses }], head: 'softmax' }),
  },
  ovr: {
    describe: 'one-vs-rest logistic regression, p_i ∝ σ(w_i·x + b_i)',
    params: { ...TRAIN },
    train: linearTrain,
    layers: (ds) => ({ layers: [{ type: 'flatten' }, { type: 'dense', units: ds.numClasses }], head: 'ovr' }),
  },
  mlp: {
    describe: 'multi-layer perceptron (tabular default: 1×20 tanh as Tramèr; images: 256,128 relu)',
    params: {
      ...TRAIN,
      hidden: { type: 'int-list', min: 1, help: 'hidden layer sizes, e.g. hidden=256,128' },
      activation: { type: 'string', choices: ['relu', 'tanh'], help: 'hidden activation' },
    },
    train: (ds) => (ds.kind === 'image' ? { epochs: 5, batchSize: 64, optimizer: 'adam', lr: 1e-3 } : { epochs: ds.train.n > 20000 ? 10 : Math.max(100, smallEpochs(ds.train.n)), batchSize: 64, optimizer: 'adam', lr: 0.01 }),
    layers: (ds, p) => {
      const hidden = (p.hidden as number[] | undefined) ?? (ds.kind === 'image' ? [256, 128] : [20]);
      const act = ((p.activation as string | undefined) ?? (ds.kind === 'image' ? 'relu' : 'tanh')) as Activation;
      return {
        layers: [{ type: 'flatten' }, ...hidden.map((units) => ({ type: 'dense' as const, units, activation: act })), { type: 'dense', units: ds.numClasses }],
        head: 'softmax',
      };
    },
  },
  cnn: {
    describe: 'LeNet-style CNN: conv20-5, pool, conv50-5, pool, fc500, fc-k (Orekondy et al. 2020 MNIST victim)',
    params: { ...TRAIN },
    train: () => ({ epochs: 4, batchSize: 64, optimizer: 'adam', lr: 1e-3 }),
    layers: (ds) => {
      if (ds.inputShape.length !== 3) throw new UsageError(`cnn needs image inputs (h×w×c) but ${ds.name} has ${ds.inputShape.join('×')} features; use mlp, softmax or tree`);
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
  },
  tree: {
    describe: 'CART decision tree (Gini), reveals leaf ids like BigML',
    params: {
      depth: { type: 'int', min: 1, max: 64, default: 8, help: 'maximum depth' },
      'min-leaf': { type: 'int', min: 1, default: 1, help: 'minimum samples per leaf' },
    },
    train: () => ({ epochs: 1, batchSize: 1, optimizer: 'sgd', lr: 0 }),
  },
};

export interface ModelSpec {
  kind: ModelKind;
  params: ParamValues;
}

/** "mlp:hidden=64,32,epochs=5" → validated spec. */
export function parseModelSpec(text: string): ModelSpec {
  const { name, raw } = parseSpec(text);
  if (!(MODEL_KINDS as readonly string[]).includes(name)) throw unknownChoice('model', name, MODEL_KINDS);
  const kind = name as ModelKind;
  return { kind, params: resolveParams(`model ${kind}`, MODELS[kind].params, raw) };
}

/** An untrained Net of this kind for this dataset (the tree has no untrained form). */
export function createNet(spec: ModelSpec, ds: Pick<Dataset, 'name' | 'inputShape' | 'numClasses' | 'kind'> & Partial<Dataset>, rng: Rng): Net {
  const def = MODELS[spec.kind];
  if (!def.layers) throw new UsageError(`${spec.kind} is not a network`);
  const { layers, head } = def.layers(ds as Dataset, spec.params);
  return new Net({ kind: spec.kind, inputShape: ds.inputShape, numClasses: ds.numClasses, layers, head }, rng);
}

/** Training options for a spec on a dataset: the kind's defaults, overridden by the spec's params. */
export function trainOptions(spec: ModelSpec, ds: Dataset, rng: Rng): TrainOptions {
  const base = MODELS[spec.kind].train(ds);
  const p = spec.params;
  return {
    ...base,
    epochs: (p.epochs as number | undefined) ?? base.epochs,
    batchSize: (p.batch as number | undefined) ?? base.batchSize,
    lr: (p.lr as number | undefined) ?? base.lr,
    l2: (p.l2 as number | undefined) ?? base.l2,
    rng,
  };
}

export function loadModel(s: SerializedModel): Model {
  if (s.format !== 'mse-model/1') throw new UsageError(`not an mse model file (format ${String(s.format)})`);
  return s.kind === 'tree' ? DecisionTree.deserialize(s) : Net.deserialize(s);
}
