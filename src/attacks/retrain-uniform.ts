/**
 * Uniform retraining from labels (Tramèr et al. 2016 §6, "passive" retraining): query m points
 * uniform in the feature box, keep only the top-1 label of each answer (so it works when the API
 * reveals labels only), and fit a model of the assumed family to them. Tramèr fits logistic models
 * essentially unregularised (C = 1e40); we use Adam with no L2 for many epochs.
 */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import type { PredictionApi } from '../api/types.js';
import type { Net } from '../models/net.js';
import { argmaxRows, fit } from '../models/train.js';
import { createNet, parseModelSpec } from '../models/zoo.js';
import { defineAttack, type AttackRequirements } from './define.js';
import { remaining, type AttackerKnowledge } from './types.js';

/** The label-only retraining attacks fit a model of the assumed family: these are the families they can fit. */
export const RETRAIN_REQUIRES = {
  victims: ['logistic', 'softmax', 'ovr', 'mlp'],
  victimsWhy: 'it retrains linear models and MLPs',
} as const satisfies AttackRequirements;

/** The training parameters every retraining attack takes. */
export interface RetrainParams {
  readonly epochs: number;
  readonly lr: number;
}

/** Labels for a batch, whatever the API reveals. */
export async function queryLabels(
  api: PredictionApi,
  x: Float32Array,
  n: number,
  shape: number[],
): Promise<Int32Array> {
  const xt = tf.tensor(x, [n, ...shape]);
  try {
    const r = await api.query(xt);
    try {
      if (r.labels) return Int32Array.from((await r.labels.data()) as Int32Array);
      return argmaxRows((await r.probs!.data()) as Float32Array, r.probs!.shape[1]);
    } finally {
      tf.dispose([r.probs ?? [], r.labels ?? []]);
    }
  } finally {
    xt.dispose();
  }
}

/** A fresh surrogate of the assumed family (logistic/softmax/OvR/MLP), trained on hard labels. */
export async function trainOnLabels(
  know: AttackerKnowledge,
  x: Float32Array,
  y: Int32Array,
  n: number,
  params: RetrainParams,
  rng: Rng,
): Promise<Net> {
  // the requirements refused tree and cnn families before any query
  const kind = know.family?.kind ?? (know.numClasses === 2 ? 'logistic' : 'softmax');
  const spec = parseModelSpec(
    kind === 'mlp' && know.family?.hidden ? `mlp:hidden=${know.family.hidden.join(',')}` : kind,
  );
  const ds = { name: 'queries', inputShape: know.inputShape, numClasses: know.numClasses, kind: 'tabular' as const };
  const surrogate = createNet(spec, ds, rng.fork());
  await fit(
    surrogate,
    { x, y, n },
    { epochs: params.epochs, batchSize: Math.min(64, n), optimizer: 'adam', lr: params.lr, rng: rng.fork() },
  );
  return surrogate;
}

export const retrainUniform = defineAttack({
  name: 'retrain-uniform',
  describe: 'retrain the assumed model family on uniform queries labelled by the API (Tramèr 2016 §6)',
  params: {
    epochs: { type: 'int', min: 1, default: 200, help: 'training epochs over the queries' },
    lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
  },
  requires: RETRAIN_REQUIRES,
  async run(params, api, know, rng) {
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const m = remaining(api);
    const x = rng.fillUniform(new Float32Array(m * d), know.domain.min, know.domain.max);
    const y = new Int32Array(m);
    const batch = 1024;
    for (let s = 0; s < m; s += batch) {
      const n = Math.min(batch, m - s);
      y.set(await queryLabels(api, x.subarray(s * d, (s + n) * d), n, know.inputShape), s);
    }
    const surrogate = await trainOnLabels(know, x, y, m, params, rng);
    return { surrogate, queries: m, budgetExhausted: false, notes: [] };
  },
});
