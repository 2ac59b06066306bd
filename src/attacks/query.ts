/** Helpers every attack uses to talk to the API: uniform queries, probabilities with a clear refusal. */
import { tf } from '../compute/backend.js';
import type { Rng } from '../compute/rng.js';
import type { PredictionApi } from '../api/types.js';
import { AttackNotApplicable, type AttackerKnowledge } from './types.js';

/** m points uniform in the attacker's feature box, [m·d] row-major. */
export function uniformQueries(rng: Rng, m: number, know: AttackerKnowledge): Float32Array {
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  return rng.fillUniform(new Float32Array(m * d), know.domain.min, know.domain.max);
}

/** Query in batches and return the revealed probabilities [m·k]; refuses (before querying) if the API hides them. */
export async function queryProbs(
  attack: string,
  api: PredictionApi,
  x: Float32Array,
  m: number,
  know: AttackerKnowledge,
  batch = 1024,
): Promise<Float32Array> {
  if (api.info.reveals === 'labels')
    throw new AttackNotApplicable(attack, 'it needs probabilities, the API reveals labels only');
  const d = know.inputShape.reduce((a, b) => a * b, 1);
  const k = know.numClasses;
  const out = new Float32Array(m * k);
  for (let s = 0; s < m; s += batch) {
    const n = Math.min(batch, m - s);
    const xt = tf.tensor(x.subarray(s * d, (s + n) * d), [n, ...know.inputShape]);
    try {
      const r = await api.query(xt);
      if (!r.probs) throw new AttackNotApplicable(attack, 'the API returned no probabilities');
      out.set((await r.probs.data()) as Float32Array, s * k);
      tf.dispose([r.probs, r.labels ?? []]);
    } finally {
      xt.dispose();
    }
  }
  return out;
}
