/**
 * Equation-solving extraction of an MLP of known shape (Tramèr et al. 2016 §4.1.2, App. A): query
 * uniform points, then train a model of the same architecture on the API's soft answers with the
 * soft cross-entropy −mean Σ_c Y_c log f̂_c(x). Non-convex, so (as the paper warns) it can stop in
 * a local minimum; more queries and epochs help.
 */
import type { Rng } from '../compute/rng.js';
import type { PredictionApi } from '../api/types.js';
import { fit } from '../models/train.js';
import { createNet, parseModelSpec } from '../models/zoo.js';
import type { ParamValues } from '../params.js';
import { queryProbs, uniformQueries } from './query.js';
import { AttackNotApplicable, remaining, type Attack, type AttackResult, type AttackerKnowledge } from './types.js';

export function eqMlp(params: ParamValues): Attack {
  return {
    name: 'eq-mlp',
    params,
    async run(api: PredictionApi, know: AttackerKnowledge, rng: Rng): Promise<AttackResult> {
      if (!know.family || know.family.kind !== 'mlp') throw new AttackNotApplicable('eq-mlp', `it fits an MLP of known shape, the victim is assumed to be ${know.family?.kind ?? 'unknown'}`);
      if (api.info.reveals !== 'probs') throw new AttackNotApplicable('eq-mlp', `it needs probabilities, the API reveals ${api.info.reveals} only`);
      const m = remaining(api);
      if (!Number.isFinite(m) || m < 1) throw new AttackNotApplicable('eq-mlp', 'it needs a finite, positive query budget');
      const x = uniformQueries(rng, m, know);
      const targets = await queryProbs('eq-mlp', api, x, m, know);
      const hidden = know.family.hidden;
      const spec = parseModelSpec(`mlp${hidden ? `:hidden=${hidden.join(',')}` : ''}`);
      const ds = { name: 'queries', inputShape: know.inputShape, numClasses: know.numClasses, kind: 'tabular' as const };
      const surrogate = createNet(spec, ds, rng.fork());
      await fit(surrogate, { x, targets, n: m }, { epochs: params.epochs as number, batchSize: Math.min(64, m), optimizer: 'adam', lr: params.lr as number, rng: rng.fork() });
      return { surrogate, queries: m, budgetExhausted: false, notes: [] };
    },
  };
}
