import { d, domain, gaussianPool, k, streamUntilAlarm, victim } from '../testing/toy-extraction.js';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense } from '../../src/api/types.js';
import { parseAttack, parseAttackSpec } from '../../src/attacks/registry.js';
import { SybilApi } from '../../src/api/sybil-api.js';
import type { AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { parseDefense, parseDefenseSpec } from '../../src/defenses/registry.js';
import { DetectedError } from '../../src/errors.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const pool = gaussianPool(4000);
const seedX = Float32Array.from({ length: 60 * d }, (_, i) => Math.max(-1, Math.min(1, new Rng(i).normal(0, 0.5))));
const know: AttackerKnowledge = {
  inputShape: [d],
  numClasses: k,
  domain,
  pool,
  seed: { x: seedX, y: new Int32Array(60), n: 60 },
  family: { kind: 'mlp' },
};

async function attackThrough(spec: string, budget = 3000) {
  const v = victim();
  const api = new LocalPredictionApi(v, [parseDefense('prada')], { rng: new Rng(1), domain, budget });
  try {
    const res = await parseAttack(spec).run(api, know, new Rng(1));
    res.surrogate.dispose();
    return { res, ledger: { ...api.ledger } };
  } finally {
    v.dispose();
  }
}

/** An honest client asking `rows(i)` for i < n, 100 at a time; the alarm's message, if one rose. */
async function honest(defense: Defense, rows: (i: number) => Float32Array, n: number, clientId = 'honest') {
  const v = victim();
  try {
    return await streamUntilAlarm(new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, clientId }), rows, n);
  } finally {
    v.dispose();
  }
}

describe('prada (Juuti 2019)', () => {
  it('catches Jacobian augmentation within a few hundred queries; the attack ends with what it had', async () => {
    for (const spec of ['jbda:arch=mlp,seedsize=60,roundepochs=5', 'jbtop:arch=mlp,seedsize=60,roundepochs=5']) {
      const { res, ledger } = await attackThrough(spec);
      // measured: both at 110 queries, W ≈ 0.85 on 107 distances (the second round's synthetic points)
      expect(ledger.detectedAt, spec).toBeGreaterThan(60);
      expect(ledger.detectedAt, spec).toBeLessThan(300);
      expect(ledger.alarm).toMatch(/^prada: Shapiro–Wilk W = 0\.\d+ < δ = 0\.9 on \d+ minimum distances$/);
      expect(res.budgetExhausted).toBe(true);
      expect(res.notes.join(' ')).toMatch(/the API stopped answering after \d+ queries \(refused: extraction detected/);
    }
  });

  it('does not catch natural queries: Knockoff, uniform retraining, ActiveThief spend 3000 unseen', async () => {
    for (const spec of ['knockoff:arch=mlp,epochs=5', 'retrain-uniform', 'activethief:arch=mlp,rounds=3']) {
      const { ledger } = await attackThrough(spec);
      expect(ledger.detectedAt, spec).toBeUndefined();
      expect(ledger.queries, spec).toBe(3000);
    }
  });

  it('leaves honest streams alone (Gaussian and uniform inputs, 3000 queries each)', async () => {
    const uniform = (i: number) => {
      const r = new Rng(1000 + i);
      return Float32Array.from({ length: d }, () => r.uniform(-1, 1));
    };
    expect(await honest(parseDefense('prada'), (i) => pool.x.subarray(i * d, (i + 1) * d), 3000)).toBeUndefined();
    expect(await honest(parseDefense('prada'), uniform, 3000)).toBeUndefined();
  });

  it('the alarm is final: the client is refused from then on, at the same count', async () => {
    // a stream of near-duplicates of a few points: its distances are far from normal
    const dup = (i: number) =>
      Float32Array.from({ length: d }, (_, j) => ((i % 3) - 1) * 0.5 + (j === 0 ? (i % 7) * 1e-3 : 0));
    const v = victim();
    const api = new LocalPredictionApi(v, [parseDefense('prada')], { rng: new Rng(1), domain });
    let first: DetectedError | undefined;
    for (let s = 0; s < 1000 && !first; s += 50) {
      const x = new Float32Array(50 * d);
      for (let i = 0; i < 50; i++) x.set(dup(s + i), i * d);
      const xt = tf.tensor2d(x, [50, d]);
      await api.query(xt).then(
        (r) => tf.dispose([r.probs ?? []]),
        (e) => (first = e as DetectedError),
      );
      xt.dispose();
    }
    expect(first).toBeInstanceOf(DetectedError);
    const answered = api.ledger.queries;
    const xt = tf.tensor2d(pool.x.subarray(0, 2 * d), [2, d]);
    await expect(api.query(xt)).rejects.toThrow(`extraction detected after ${first!.at} queries`);
    xt.dispose();
    expect(api.ledger.queries).toBe(answered);
    expect(api.ledger.detectedAt).toBe(first!.at);
    v.dispose();
  });

  it('keeps bounded state: 10,000 distinct clients through one instance, the least recent evicted', async () => {
    const defense = parseDefense('prada:clients=32,set-size=50') as Defense & {
      trackedClients(): number;
      membersOf(id: string): number;
    };
    const v = victim();
    const x = tf.tensor2d(pool.x.subarray(0, 20 * d), [20, d]);
    const before = tf.memory().numTensors;
    const heap0 = process.memoryUsage().heapUsed;
    for (let c = 0; c < 10_000; c++) {
      const api = new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, clientId: `client-${c}` });
      const r = await api.query(x);
      tf.dispose([r.probs ?? []]);
      expect(defense.trackedClients()).toBeLessThanOrEqual(32);
    }
    expect(defense.trackedClients()).toBe(32);
    expect(defense.membersOf('client-9999')).toBeGreaterThan(0);
    expect(defense.membersOf('client-0')).toBe(0); // evicted
    // 32 clients × (50 members × 8 floats + 5,000 distances) is well under 10 MB
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(64 * 1024 * 1024);
    expect(tf.memory().numTensors).toBe(before);
    // one client's growing set stops at set-size
    const one = new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, clientId: 'big' });
    for (let s = 0; s < 2000; s += 100) {
      const xt = tf.tensor2d(pool.x.subarray(s * d, (s + 100) * d), [100, d]);
      await one.query(xt).then(
        (r) => tf.dispose([r.probs ?? []]),
        () => undefined,
      );
      xt.dispose();
    }
    expect(defense.membersOf('big')).toBe(50);
    x.dispose();
    v.dispose();
  });

  it('refuses parameters out of range when the plan is made', () => {
    for (const [spec, why] of [
      ['prada:delta=1.5', /delta/],
      ['prada:min=2', /min/],
      ['prada:clients=0', /clients/],
      ['prada:every=0', /every/],
      ['prada:set-size=0', /set-size/],
    ] as const)
      expect(() => parseDefenseSpec(spec), spec).toThrow(why);
    expect(parseDefenseSpec('prada').values).toEqual({
      delta: 0.9,
      every: 10,
      min: 100,
      'class-min': 10,
      clients: 64,
      'set-size': 2000,
    });
  });
});

describe('Sybil attackers (accounts=k) against a per-client detector', () => {
  const sybil = (k: number, budget: number) => {
    const v = victim();
    const defense = parseDefense('prada');
    const api = new SybilApi(
      Array.from(
        { length: k },
        (_, i) => new LocalPredictionApi(v, [defense], { rng: new Rng(i), domain, clientId: `acct-${i}` }),
      ),
      budget,
    );
    return { v, api };
  };

  it('spreading JBDA over more accounts delays the first alarm; one budget counts every account', async () => {
    const at: number[] = [];
    for (const k of [1, 4, 16]) {
      const { v, api } = sybil(k, 3000);
      const res = await parseAttack('jbda:arch=mlp,seedsize=60,roundepochs=5').run(api, know, new Rng(1));
      res.surrogate.dispose();
      expect(api.ledger.queries).toBeLessThanOrEqual(3000);
      // (slices answered before every account was refused in the same batch are paid but never seen)
      expect(res.queries).toBeLessThanOrEqual(api.ledger.queries);
      at.push(api.ledger.detectedAt ?? Infinity);
      v.dispose();
    }
    // measured 110 / 291 / 1196
    expect(at[0]).toBeLessThan(at[1]);
    expect(at[1]).toBeLessThan(at[2]);
  });

  it('each batch is split over the accounts still served; refused when every account is', async () => {
    const { v, api } = sybil(3, Infinity);
    const x = tf.tensor2d(pool.x.subarray(0, 30 * d), [30, d]);
    const r = await api.query(x);
    expect(r.probs!.shape).toEqual([30, k]);
    // the same answers as one account would give (the victim, undefended by prada's answers)
    const direct = v.predict(x);
    expect(Array.from(r.probs!.dataSync())).toEqual(Array.from(direct.dataSync()));
    expect(api.ledger.queries).toBe(30);
    expect(api.ledger.batches).toBe(3);
    tf.dispose([r.probs!, direct, x]);
    // near-duplicates: every account alarms in turn, and then the attacker is refused
    const dup = (i: number) =>
      Float32Array.from({ length: d }, (_, j) => ((i % 3) - 1) * 0.5 + (j === 0 ? (i % 7) * 1e-3 : 0));
    let err: unknown;
    for (let s = 0; s < 5000 && !err; s += 60) {
      const xs = new Float32Array(60 * d);
      for (let i = 0; i < 60; i++) xs.set(dup(s + i), i * d);
      const xt = tf.tensor2d(xs, [60, d]);
      await api.query(xt).then(
        (a) => tf.dispose([a.probs ?? []]),
        (e) => (err = e),
      );
      xt.dispose();
    }
    expect(err).toBeInstanceOf(DetectedError);
    expect((err as Error).message).toMatch(/every one of the 3 accounts was refused; the first alarm: prada: /);
    expect(api.alarmed).toBe(3);
    expect(api.ledger.detectedAt).toBeGreaterThan(30);
    v.dispose();
  });

  it('accounts is a parameter of every attack, without a default (cell ids unchanged)', () => {
    expect(parseAttackSpec('knockoff:accounts=8').values.accounts).toBe(8);
    expect(parseAttackSpec('eq-lr').values).toEqual({ multiple: 100 });
    expect(() => parseAttackSpec('jbda:accounts=0')).toThrow(/accounts/);
  });
});
