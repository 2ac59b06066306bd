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
import type { ParamValues } from '../params.js';
import { AttackNotApplicable, remaining, type Attack, type AttackResult, type AttackerKnowledge } from './types.js';

/** Labels for a batch, whatever the API reveals. */
export async function queryLabels(api: PredictionApi, x: Float32Array, n: number, shape: number[]): Promise<Int32Array> {
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
export async function trainOnLabels(attack: string, know: AttackerKnowledge, x: Float32Array, y: Int32Array, n: number, params: ParamValues, rng: Rng): Promise<Net> {
  const kind = know.family?.kind ?? (know.numClasses === 2 ? 'logistic' : 'softmax');
  if (kind === 'tree' || kind === 'cnn') throw new AttackNotApplicable(attack, `it retrains linear models and MLPs, not ${kind}`);
  const spec = parseModelSpec(kind === 'mlp' && know.family?.hidden ? `mlp:hidden=${know.family.hidden.join(',')}` : kind);
  const ds = { name: 'queries', inputShape: know.inputShape, numClasses: know.numClasses, kind: 'tabular' as const };
  const surrogate = createNet(spec, ds, rng.fork());
  await fit(surrogate, { x, y, n }, { epochs: params.epochs as number, batchSize: Math.min(64, n), optimizer: 'adam', lr: params.lr as number, rng: rng.fork() });
  return surrogate;
}

export function retrainUniform(params: ParamValues): Attack {
  return {
    name: 'retrain-uniform',
    params,
    async run(api: PredictionApi, know: AttackerKnowledge, rng: Rng): Promise<AttackResult> {
      if (api.info.reveals === 'leaf') throw new AttackNotApplicable('retrain-uniform', 'tree victims are extracted by path-finding (tree-path)');
      const d = know.inputShape.reduce((a, b) => a * b, 1);
      const m = remaining(api);
      if (!Number.isFinite(m) || m < 1) throw new AttackNotApplicable('retrain-uniform', 'it needs a finite, positive query budget');
      const x = rng.fillUniform(new Float32Array(m * d), know.domain.min, know.domain.max);
      const y = new Int32Array(m);
      const batch = 1024;
      for (let s = 0; s < m; s += batch) {
        const n = Math.min(batch, m - s);
        y.set(await queryLabels(api, x.subarray(s * d, (s + n) * d), n, know.inputShape), s);
      }
      const surrogate = await trainOnLabels('retrain-uniform', know, x, y, m, params, rng);
      return { surrogate, queries: m, budgetExhausted: false, notes: [] };
    },
  };
}
