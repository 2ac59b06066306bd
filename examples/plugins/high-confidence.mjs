/**
 * A defense plugin: ART's HighConfidence postprocessor (Adversarial Robustness Toolbox,
 * `art.defences.postprocessor.HighConfidence`): probabilities below a cutoff are zeroed, so an
 * answer reveals only the classes the victim is confident about. Unlike ART, the rest is
 * renormalised (mse's answers are distributions), and an answer with nothing above the cutoff
 * reveals its top-1 class alone.
 *
 *   mse --plugin examples/plugins/high-confidence.mjs list defenses
 *   mse --plugin examples/plugins/high-confidence.mjs bench -d mnist --defense high-confidence:cutoff=0.25,0.5 --quick
 *
 * A defense is one value built by defineDefense: its name, a typed parameter schema (type, default,
 * range, help — `p.cutoff` below is a number, no cast), and `create`, which returns the stages of one
 * API's instance. This one has a single, stateless output stage.
 */
import { defineDefense, tf } from 'mse';

export default defineDefense({
  name: 'high-confidence',
  describe: "zero every probability below a cutoff and renormalise (ART's HighConfidence postprocessor)",
  params: {
    cutoff: { type: 'number', min: 0, max: 1, default: 0.25, help: 'probabilities below this are revealed as 0' },
  },
  create: (p) => ({
    output(probs) {
      const out = tf.tidy(() => {
        const kept = tf.where(tf.greaterEqual(probs, p.cutoff), probs, tf.zerosLike(probs));
        // nothing above the cutoff: the top-1 class alone (a one-hot answer)
        const top1 = tf.oneHot(tf.argMax(probs, 1), probs.shape[1]).toFloat();
        const sum = tf.sum(kept, 1, true);
        const answer = tf.where(tf.greater(sum, 0), kept, top1);
        return tf.div(answer, tf.sum(answer, 1, true));
      });
      return { probs: out };
    },
  }),
});
