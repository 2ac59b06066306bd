/**
 * An attack plugin: retrain a surrogate on uniform random queries — the "random inputs" baseline of
 * Knockoff Nets and of Tramèr et al. 2016 §6, for any network victim. The attacker draws `budget`
 * inputs uniformly from the API's feature box, asks the API, and trains a network of the victim's
 * assumed family (or `arch`) on the answers: the soft probabilities when the API reveals them,
 * one-hot labels otherwise.
 *
 *   mse --plugin examples/plugins/uniform-retrain.mjs list attacks
 *   mse --plugin examples/plugins/uniform-retrain.mjs attack -d iris -a uniform-retrain:epochs=50 -b 2k
 *
 * An attack is one value built by defineAttack: its typed parameters, what it requires of the setting
 * (checked by mse before any query: here, any network victim and a finite budget), and `run`, which
 * sees only the PredictionApi and what the attacker knows — never the victim or the defense. Every
 * random choice comes from the `rng` it is handed, so the same seed gives the same rows.
 */
import { createNet, defineAttack, fit, parseModelSpec, tf } from 'mse';

export default defineAttack({
  name: 'uniform-retrain',
  describe: 'retrain a network on uniform random queries labelled by the API (the random-inputs baseline)',
  params: {
    arch: { type: 'string', default: 'auto', help: "the surrogate's model spec; auto: the victim's assumed family" },
    epochs: { type: 'int', min: 1, default: 20, help: 'surrogate training epochs' },
    lr: { type: 'number', min: 0, default: 0.01, help: 'Adam learning rate' },
  },
  requires: { minBudget: 1 },
  // checked when the plan is made, before anything trains or a query is spent
  check(p) {
    if (p.arch === 'auto') return undefined;
    try {
      parseModelSpec(p.arch);
    } catch (e) {
      return `arch: ${e.message}`;
    }
    return undefined;
  },
  async run(p, api, know, rng, opts) {
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    const k = know.numClasses;
    const n = api.ledger.budget - api.ledger.queries;
    const x = rng.fillUniform(new Float32Array(n * d), know.domain.min, know.domain.max);
    const targets = new Float32Array(n * k);
    for (let s = 0; s < n; s += 512) {
      const m = Math.min(512, n - s);
      const xt = tf.tensor(x.subarray(s * d, (s + m) * d), [m, ...know.inputShape]);
      try {
        const r = await api.query(xt);
        const soft = r.probs ? await r.probs.data() : undefined;
        const labels = r.labels ? await r.labels.data() : undefined;
        for (let i = 0; i < m; i++) {
          if (soft) for (let j = 0; j < k; j++) targets[(s + i) * k + j] = soft[i * k + j];
          else targets[(s + i) * k + labels[i]] = 1;
        }
        tf.dispose([r.probs ?? [], r.labels ?? []]);
      } finally {
        xt.dispose();
      }
      opts.onProgress?.({ phase: 'query', done: s + m, total: n });
    }
    const kind = p.arch === 'auto' ? (know.family?.kind ?? 'mlp') : p.arch;
    const shape = {
      name: 'surrogate',
      inputShape: know.inputShape,
      numClasses: k,
      kind: know.inputShape.length === 3 ? 'image' : 'tabular',
    };
    const surrogate = createNet(parseModelSpec(kind), shape, rng.fork());
    await fit(
      surrogate,
      { x, targets, n },
      { epochs: p.epochs, batchSize: 64, optimizer: 'adam', lr: p.lr, rng: rng.fork() },
    );
    return { surrogate, queries: n, budgetExhausted: false, notes: [] };
  },
});
