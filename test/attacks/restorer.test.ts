import { d, domain, gaussianPool, k, victim } from '../testing/toy-extraction.js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { parseAttack, parseAttackSpec } from '../../src/attacks/registry.js';
import { Restorer } from '../../src/attacks/restorer.js';
import type { AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { parseDefense } from '../../src/defenses/registry.js';
import { predictAll } from '../../src/models/train.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const pool = gaussianPool(3000);
const know: AttackerKnowledge = { inputShape: [d], numClasses: k, domain, pool };

/** the victim's clean and defended answers to pool rows [from, to) */
async function answers(defense: string, from: number, to: number) {
  const v = victim();
  const api = new LocalPredictionApi(v, [parseDefense(defense)], { rng: new Rng(7), domain });
  const x = pool.x.slice(from * d, to * d);
  const xt = tf.tensor2d(x, [to - from, d]);
  const r = await api.query(xt);
  xt.dispose();
  const defended = (await r.probs!.data()) as Float32Array;
  const clean = await predictAll(v, x, to - from);
  tf.dispose([r.probs!]);
  v.dispose();
  return { x, clean, defended };
}

const l1 = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / (a.length / k);

describe('the learned restorer (D-DAE recovery)', () => {
  it('learned on shadow victims only, it brings the real victim’s defended answers closer to its clean ones', async () => {
    const before = tf.memory().numTensors;
    for (const defense of ['noise:sigma=0.2', 'reverse-sigmoid:beta=0.8,gamma=0.3']) {
      const seen = await answers(defense, 0, 800);
      const r = await Restorer.train({
        x: seen.x,
        answers: seen.defended,
        n: 800,
        know: { ...know, pool: undefined },
        defense,
        shadows: 3,
        pairs: 800,
        arch: 'mlp',
        epochs: 40,
        batch: 32,
        lr: 0.01,
        rng: new Rng(3),
      });
      // answers the restorer never saw, from the victim it never saw
      const fresh = await answers(defense, 2000, 3000);
      const restored = r.restore(fresh.defended);
      r.dispose();
      const [was, now] = [l1(fresh.defended, fresh.clean), l1(restored, fresh.clean)];
      // measured: noise 0.404 → 0.343 (E[y | ỹ] cannot undo much noise), reverse sigmoid 0.582 → 0.310
      expect(now, `${defense}: L1 ${was} → ${now}`).toBeLessThan((defense.startsWith('noise') ? 0.92 : 0.7) * was);
      expect(r.summary).toMatch(/2 shadow victims × 800 answers .* held-out shadow \d\.\d+ → \d\.\d+/);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is a parameter of the surrogate attacks: exact budget, the restorer in the notes, deterministic', async () => {
    const spec =
      'knockoff:arch=mlp,epochs=20,lr=0.01,batch=32,adapt=restorer,adapt-defense=[noise:sigma=0.2],adapt-shadows=2';
    const run = async () => {
      const v = victim();
      const api = new LocalPredictionApi(v, [parseDefense('noise:sigma=0.2')], {
        rng: new Rng(1),
        domain,
        budget: 500,
      });
      const res = await parseAttack(spec).run(api, know, new Rng(1));
      const w = res.surrogate.params!();
      res.surrogate.dispose();
      v.dispose();
      return { res, w, queries: api.ledger.queries };
    };
    const a = await run();
    const b = await run();
    expect(a.queries).toBe(500);
    expect(a.res.notes.join(' ')).toMatch(
      /adapt: restorer trained on 1 shadow victim × 3500 answers behind noise:sigma=0.2/,
    );
    expect(Array.from(a.w)).toEqual(Array.from(b.w));
  });

  it('each budget of a learning curve restores with a restorer trained on its own prefix', async () => {
    const spec =
      'knockoff:arch=mlp,epochs=10,lr=0.01,batch=32,adapt=restorer,adapt-defense=[noise:sigma=0.2],adapt-shadows=2';
    const run = async (budget: number, checkpoints?: number[]) => {
      const v = victim();
      const api = new LocalPredictionApi(v, [parseDefense('noise:sigma=0.2')], { rng: new Rng(1), domain, budget });
      const res = await parseAttack(spec).run(api, { ...know, pool: gaussianPool(600) }, new Rng(1), { checkpoints });
      const first = res.curve![0].surrogate.params!();
      for (const s of new Set(res.curve!.map((p) => p.surrogate))) s.dispose();
      v.dispose();
      return first;
    };
    expect(Array.from(await run(500, [300, 500]))).toEqual(Array.from(await run(300, [300])));
  });

  it('refuses what cannot work, when the plan is made', () => {
    const bad = [
      ['knockoff:adapt=restorer', /needs adapt-defense/],
      ['knockoff:adapt-defense=[noise]', /need adapt=restorer/],
      ['knockoff:adapt=restorer,adapt-defense=[top1]', /top1 reveals labels only/],
      ['knockoff:adapt=restorer,adapt-defense=[round:decimals=2+top1]', /top1 reveals labels only/],
      ['knockoff:adapt=restorer,adapt-defense=[nonsense]', /adapt-defense=nonsense: .*unknown defense/],
      ['knockoff:adapt=restorer,adapt-defense=[noise],labels=top1', /labels=top1 trains on labels only/],
      ['jbda:adapt=reverse-sigmoid,adapt-beta=1,adapt-gamma=0.1,adapt-shadows=2', /need adapt=restorer/],
    ] as const;
    for (const [spec, why] of bad) expect(() => parseAttackSpec(spec), spec).toThrow(why);
    expect(() => parseAttackSpec('activethief:adapt=restorer,adapt-defense=[mad:eps=1,argmax=true]')).not.toThrow();
  });
});
