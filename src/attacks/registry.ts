/**
 * Attack registry: name → typed parameters and a factory (registry key = file name = CLI value).
 * A new attack is one file plus one line here.
 */
import { unknownChoice } from '../errors.js';
import { parseSpec, resolveParams, type ParamDecls, type ParamValues } from '../params.js';
import { eqLr } from './eq-lr.js';
import { eqMlp } from './eq-mlp.js';
import { eqMulticlass } from './eq-softmax.js';
import { jbda } from './jbda.js';
import { knockoff } from './knockoff.js';
import { knockoffAdaptive } from './knockoff-adaptive.js';
import { retrainAdaptive } from './retrain-adaptive.js';
import { retrainLinesearch } from './retrain-linesearch.js';
import { retrainUniform } from './retrain-uniform.js';
import { SURROGATE_PARAMS } from './surrogate.js';
import { treePath } from './tree-path.js';
import type { Attack } from './types.js';

export interface AttackDef {
  describe: string;
  params: ParamDecls;
  create(p: ParamValues): Attack;
}

/** eq-softmax and eq-ovr share their solver's parameters. */
const EQ_MULTICLASS: ParamDecls = {
  multiple: { type: 'int', min: 1, default: 100, help: 'use at most this many times c·(d+1) queries' },
  l2: { type: 'number', min: 0, default: 1e-9, help: 'tiny L2 that picks one of the equivalent solutions' },
  iterations: { type: 'int', min: 1, default: 1000, help: 'L-BFGS iteration cap' },
};

const POOL: ParamDecls = { pool: { type: 'string', default: 'auto', help: "the attacker's natural-image pool, a dataset name (auto: fashion-mnist for mnist, mnist for fashion-mnist and kmnist); fashion-mnist@test10k is the 10k test split shipped with mse, used when Fashion-MNIST is absent" } };
const JBDA: ParamDecls = {
  ...SURROGATE_PARAMS,
  seedsize: { type: 'int', min: 1, default: 100, help: 'in-distribution seed examples (drawn from the victim dataset’s training split)' },
  lambda: { type: 'number', min: 0, default: 0.1, help: 'augmentation step λ (L∞)' },
  tau: { type: 'int', min: 1, default: 5, help: 'flip the step’s sign every τ rounds' },
  roundepochs: { type: 'int', min: 1, default: 5, help: 'surrogate epochs in each augmentation round' },
};

export const ATTACKS: Record<string, AttackDef> = {
  'eq-lr': {
    describe: 'equation solving for binary logistic regression from probabilities (Tramèr 2016 §4.1.1)',
    params: { multiple: { type: 'int', min: 1, default: 100, help: 'use at most this many times d+1 queries (least squares beyond d+1)' } },
    create: eqLr,
  },
  'eq-softmax': {
    describe: 'equation solving for softmax regression: cross-entropy fit to the soft answers by L-BFGS (Tramèr 2016 §4.1.2)',
    params: EQ_MULTICLASS,
    create: eqMulticlass('softmax'),
  },
  'eq-ovr': {
    describe: 'equation solving for one-vs-rest logistic regression, by L-BFGS (Tramèr 2016 §4.1.2)',
    params: EQ_MULTICLASS,
    create: eqMulticlass('ovr'),
  },
  'eq-mlp': {
    describe: 'equation solving for an MLP of known shape: train on the soft answers (Tramèr 2016 §4.1.2)',
    params: {
      solver: { type: 'string', choices: ['auto', 'lbfgs', 'adam'], default: 'auto', help: 'full-batch L-BFGS in float64, minibatch Adam (tfjs), or auto: Adam below 1× the unknowns, L-BFGS from 1×' },
      iterations: { type: 'int', min: 1, default: 1000, help: 'L-BFGS iterations' },
      l2: { type: 'number', min: 0, default: 1e-8, help: 'L2 penalty on the weights (the paper\'s reg_lambda)' },
      epochs: { type: 'int', min: 1, default: 300, help: 'Adam: training epochs over the queries' },
      lr: { type: 'number', min: 0, default: 0.01, help: 'Adam: learning rate' },
    },
    create: eqMlp,
  },
  'retrain-uniform': {
    describe: 'retrain the assumed model family on uniform queries labelled by the API (Tramèr 2016 §6)',
    params: {
      epochs: { type: 'int', min: 1, default: 200, help: 'training epochs over the queries' },
      lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
    },
    create: retrainUniform,
  },
  'retrain-linesearch': {
    describe: 'line-search retraining: bisect between differently labelled queries on the oracle (Tramèr 2016 §6)',
    params: {
      epsilon: { type: 'number', min: 1e-9, default: 0.1, help: 'stop bisecting a segment shorter than this (Euclidean)' },
      epochs: { type: 'int', min: 1, default: 200, help: 'training epochs' },
      lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
    },
    create: retrainLinesearch,
  },
  'retrain-adaptive': {
    describe: 'adaptive retraining: rounds of queries near the local surrogate’s decision boundary (Tramèr 2016 §6)',
    params: {
      rounds: { type: 'int', min: 1, default: 5, help: 'query rounds (the paper: 5)' },
      epochs: { type: 'int', min: 1, default: 200, help: 'training epochs per fit' },
      lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
    },
    create: retrainAdaptive,
  },
  knockoff: {
    describe: 'Knockoff Nets, random: label a natural out-of-distribution pool through the API, train a surrogate (Orekondy 2019)',
    params: { ...POOL, ...SURROGATE_PARAMS },
    create: knockoff,
  },
  'knockoff-adaptive': {
    describe: 'Knockoff Nets, adaptive: a gradient bandit over the pool’s classes with certainty/diversity/loss rewards (Orekondy 2019)',
    params: {
      ...POOL,
      ...SURROGATE_PARAMS,
      step: { type: 'int', min: 1, default: 16, help: 'queries per bandit step (one action, one online update)' },
      alpha: { type: 'number', min: 0, default: 0.1, help: 'bandit step size' },
      window: { type: 'int', min: 1, default: 10, help: 'Δ: steps in the diversity reward’s running mean' },
    },
    create: knockoffAdaptive,
  },
  jbda: {
    describe: 'Jacobian-based dataset augmentation from a small seed set (Papernot 2017; Orekondy 2020’s JBDA)',
    params: JBDA,
    create: jbda('jbda'),
  },
  jbself: {
    describe: 'JBDA stepping against the gradient, x − λ·sign(∇) (Orekondy 2020’s JB-self)',
    params: JBDA,
    create: jbda('jbself'),
  },
  jbtop: {
    describe: 'JBDA with targeted PGD toward one of the surrogate’s top-k classes (Orekondy 2020’s JB-top-k)',
    params: {
      ...JBDA,
      topk: { type: 'int', min: 1, default: 3, help: 'target a random class among the top-k other than the prediction' },
      steps: { type: 'int', min: 1, default: 8, help: 'PGD steps' },
      alpha: { type: 'number', min: 0, default: 0.01, help: 'PGD step size' },
    },
    create: jbda('jbtop'),
  },
  'tree-path': {
    describe: 'decision-tree path-finding with a leaf-id oracle (Tramèr 2016 §4.2, Algorithm 1)',
    params: { epsilon: { type: 'number', min: 1e-9, default: 1e-3, help: 'threshold precision of the line searches' } },
    create: treePath,
  },
};

export function parseAttack(text: string): Attack {
  const { name, raw } = parseSpec(text);
  const def = ATTACKS[name];
  if (!def) throw unknownChoice('attack', name, Object.keys(ATTACKS));
  return def.create(resolveParams(`attack ${name}`, def.params, raw));
}
