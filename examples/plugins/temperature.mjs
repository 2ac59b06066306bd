/**
 * A defense plugin: answers re-tempered by a softmax temperature t, ỹ_i = p_i^(1/t) / Σ_j p_j^(1/t)
 * — the victim's logits divided by t (log p is the logits up to a constant), as in distillation.
 * t > 1 flattens an answer toward uniform, hiding how confident the victim is; t < 1 sharpens it
 * toward its top-1 class; t = 1 changes nothing. The top-1 class never changes, so an honest user's
 * accuracy is untouched while an attacker that trains on the soft answers learns the wrong margins.
 * It is not one of mse's built-in defenses.
 *
 *   mse --plugin examples/plugins/temperature.mjs list defenses
 *   mse --plugin examples/plugins/temperature.mjs bench -d mnist --defense temperature:t=0.5,4 --quick
 *
 * A defense is one value built by defineDefense: its name, a typed parameter schema (type, default,
 * range, help — `p.t` below is a number, no cast), and `create`, which returns the stages of one
 * API's instance. This one has a single, stateless output stage.
 */
import { defineDefense, tf } from 'mse';

export default defineDefense({
  name: 'temperature',
  describe: 'sharpen (t < 1) or flatten (t > 1) every answer by a softmax temperature, keeping its top-1',
  params: {
    t: { type: 'number', min: 0.01, max: 100, default: 2, help: 'temperature: answers are p^(1/t), renormalised' },
  },
  create: (p) => ({
    output(probs) {
      const out = tf.tidy(() => {
        // in log space, shifted by each row's maximum: p^(1/t) itself underflows for small t.
        // A probability of 0 stays 0 (log 0 = -Infinity, exp(-Infinity) = 0).
        const z = tf.div(tf.log(probs), p.t);
        const e = tf.exp(tf.sub(z, tf.max(z, 1, true)));
        return tf.div(e, tf.sum(e, 1, true));
      });
      return { probs: out };
    },
  }),
});
