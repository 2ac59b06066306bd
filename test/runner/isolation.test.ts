/**
 * Defense state is explicit: the runner gives the honest-utility API and the attacker's API their
 * own defense instances (what a defense prepared once is shared read-only), so measuring the
 * defender's utility changes no answer the attacker receives. A probe attack digests every answer it
 * gets inside runCell — after the runner has pushed the whole test set through the utility API — and
 * the digest must equal the one from an attacker-only API built by hand from the same streams.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { defineAttack } from '../../src/attacks/define.js';
import { ATTACKS } from '../../src/attacks/registry.js';
import { initBackend, tf } from '../../src/compute/backend.js';
import { stream } from '../../src/compute/streams.js';
import { loadDataset } from '../../src/data/registry.js';
import { DEFENSES } from '../../src/defenses/registry.js';
import { getVictim } from '../../src/models/victim.js';
import { createNet, familyOf, parseModelSpec } from '../../src/models/zoo.js';
import { makePlan } from '../../src/runner/plan.js';
import { runCell } from '../../src/runner/run-cell.js';

const probe = defineAttack({
  name: 'probe-answers',
  describe: 'test only: digest every answer',
  params: {},
  async run(_p, api, know, rng) {
    const h = createHash('sha256');
    const d = know.inputShape.reduce((a, b) => a * b, 1);
    for (let b = 0; b < 3; b++) {
      const xt = tf.tensor(rng.fillUniform(new Float32Array(20 * d), know.domain.min, know.domain.max), [
        20,
        ...know.inputShape,
      ]);
      const r = await api.query(xt);
      h.update(Buffer.from(((await r.probs!.data()) as Float32Array).buffer));
      tf.dispose([xt, r.probs ?? [], r.labels ?? []]);
    }
    const surrogate = createNet(
      parseModelSpec('softmax'),
      { name: 's', inputShape: know.inputShape, numClasses: know.numClasses, kind: 'tabular' },
      rng.fork(),
    );
    return { surrogate, queries: api.ledger.queries, budgetExhausted: false, notes: [`digest ${h.digest('hex')}`] };
  },
});

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  ATTACKS.add(probe);
});
afterAll(() => {
  // the registry is per process: leave it as the other tests expect it
  ATTACKS.remove('probe-answers');
});

describe('measuring the defender does not touch the attacker', () => {
  it('the attacker gets the same answers inside runCell (after the utility pass) as from an API of its own', async () => {
    const defenses = ['noise:sigma=0.05', 'mad:eps=0.5'];
    const plan = await makePlan(
      [
        {
          dataset: 'iris',
          victim: 'mlp:hidden=8,epochs=5',
          defenses,
          attack: 'probe-answers',
          budgets: ['60'],
          seed: 3,
        },
      ],
      { data: {}, unifSize: 100 },
    );
    const cell = plan.cells[0];
    const out = await runCell(cell, { runId: 't' });
    const inside = out.notes.find((n) => n.startsWith('digest '));
    expect(inside).toBeDefined();
    expect(out.row.defended_acc).toBeGreaterThan(0); // the utility pass really ran, through noise and MAD

    // the attacker alone: same victim, same setup streams, fresh instances, no utility queries
    const ds = await loadDataset('iris');
    const v = await getVictim(ds, cell.victim, cell.seed);
    const prepared = await Promise.all(
      cell.defenses.map((d, i) =>
        DEFENSES.get(d.name).prepare(d.params, {
          victim: v.model,
          train: ds.train,
          heldOut: ds.test,
          rng: stream(cell.seed, `defense-setup:${i}`),
        }),
      ),
    );
    const instances = cell.defenses.map((d, i) => DEFENSES.get(d.name).create(d.params, prepared[i]));
    const api = new LocalPredictionApi(v.model, instances, {
      rng: stream(cell.seed, 'api'),
      domain: ds.domain,
      budget: 60,
      clientId: 'attacker-60',
    });
    const alone = await probe
      .create({})
      .run(
        api,
        { inputShape: ds.inputShape, numClasses: ds.numClasses, domain: ds.domain, family: familyOf(cell.victim) },
        stream(cell.seed, 'attack'),
        {},
      );
    expect(alone.notes).toContain(inside);
    alone.surrogate.dispose();
    prepared.forEach((p) => p.dispose());
    v.model.dispose();
  });
});
