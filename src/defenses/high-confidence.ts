/**
 * `high-confidence:cutoff=`: ART's HighConfidence postprocessor (Adversarial Robustness Toolbox,
 * `art.defences.postprocessor.HighConfidence`, default cutoff 0.25): every probability below the
 * cutoff is revealed as 0, so an answer shows only the classes the victim is confident about.
 * ART leaves the rest as it is; here it is renormalised, because an mse answer is a distribution
 * (the API, the utility metrics and the attackers' soft-label losses all take rows that sum to 1),
 * and a row with nothing at or above the cutoff reveals its top-1 class alone (a one-hot answer).
 * cutoff = 0 changes nothing; a cutoff above 1/2 answers one-hot everywhere.
 */
import { tf } from '../compute/backend.js';
import type { Probs } from '../api/types.js';
import { defineDefense } from './define.js';
import { renormalise } from './simplex.js';

export const highConfidence = defineDefense({
  name: 'high-confidence',
  describe: "zero every probability below a cutoff and renormalise (ART's HighConfidence)",
  params: {
    cutoff: { type: 'number', min: 0, max: 1, default: 0.25, help: 'probabilities below this are revealed as 0' },
  },
  create: ({ cutoff }) => ({
    output: (p: Probs) =>
      tf.tidy(() => {
        const kept = tf.where(tf.greaterEqual(p, cutoff), p, tf.zerosLike(p)) as tf.Tensor2D;
        // nothing at or above the cutoff: the top-1 class alone
        const top1 = tf.oneHot(tf.argMax(p, 1), p.shape[1]).toFloat() as tf.Tensor2D;
        return { probs: renormalise(kept, top1) };
      }),
  }),
});
