import { d, domain, gaussianPool, k, streamUntilAlarm, victim } from '../testing/toy-extraction.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense, DefenderEnv } from '../../src/api/types.js';
import { parseAttack } from '../../src/attacks/registry.js';
import type { AttackerKnowledge } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import type { Prepared } from '../../src/defenses/define.js';
import { parseDefenseSpec } from '../../src/defenses/registry.js';
import type { SeatPrepared } from '../../src/defenses/seat.js';
import type { Net } from '../../src/models/net.js';
import { argmaxRows, predictAll } from '../../src/models/train.js';

// SEAT on the toy setting: an 8-feature victim on [−1, 1]^8. The defender's own data are uniform
// points of the box labelled by the victim; the encoder trains on them in prepare. In 8 dimensions
// 3,000 natural queries lie close together, so the positives' radius is 0.05 of the box here (at
// 0.1, Knockoff's Gaussian pool was alarmed at 1,691 queries).
const SPEC = 'seat:steps=1000,eps=0.05';
let v: Net;
let env: DefenderEnv;
const prepared: Prepared[] = [];

/** n uniform points of the box, labelled by the victim */
async function split(n: number, seed: number) {
  const x = new Rng(seed).fillUniform(new Float32Array(n * d), -1, 1);
  return { x, y: Int32Array.from(argmaxRows(await predictAll(v, x, n), k)), n };
}

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  v = victim();
  env = { victim: v, train: await split(2000, 11), heldOut: await split(500, 12), rng: new Rng(3), domain };
});

afterAll(() => {
  for (const p of prepared) p.dispose();
  v.dispose();
});

async function seatOf(spec = SPEC, rng = new Rng(3)) {
  const { unit, values } = parseDefenseSpec(spec);
  const p = await unit.prepare(values, { ...env, rng });
  prepared.push(p);
  return { defense: unit.create(values, p), prepared: p.value as SeatPrepared };
}

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

async function attackThrough(defense: Defense, spec: string, budget = 3000) {
  const api = new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, budget });
  const res = await parseAttack(spec).run(api, know, new Rng(1));
  res.surrogate.dispose();
  return { ...api.ledger };
}

/** An honest client asking rows(i) for i < n, 100 at a time; the alarm's message, if one rose. */
function honest(defense: Defense, rows: (i: number) => Float32Array, n: number, clientId = 'honest') {
  return streamUntilAlarm(new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, clientId }), rows, n);
}

describe('seat (Zhang 2021)', () => {
  it('trains an encoder that puts held-out PGD positives far closer than other inputs', async () => {
    const { prepared: p } = await seatOf();
    // measured: 0.71 and 23.8; untrained (steps=1), 0.005 and 0.25: every input within δ of every other
    expect(p.heldOut.positive * 10).toBeLessThan(p.heldOut.negative);
    expect(p.heldOut.negative).toBeGreaterThan(10); // past the margin m² = 10
    expect(p.note).toMatch(/^seat: held-out encodings' mean squared distance: 0\.\d+ to their PGD positives/);
    // the runner and mse serve print it from the unit's Prepared
    expect(prepared[prepared.length - 1].note).toBe(p.note);
  });

  it('is deterministic: the same setup stream gives the same encoder', async () => {
    const a = await seatOf('seat:steps=50', new Rng(7));
    const b = await seatOf('seat:steps=50', new Rng(7));
    const c = await seatOf('seat:steps=50', new Rng(8));
    expect(a.prepared.encoder.params()).toEqual(b.prepared.encoder.params());
    expect(a.prepared.encoder.params()).not.toEqual(c.prepared.encoder.params());
  });

  it('catches Jacobian augmentation, whose children are near-duplicates of their parents', async () => {
    const { defense } = await seatOf();
    const ledger = await attackThrough(defense, 'jbda:arch=mlp,seedsize=60,roundepochs=5');
    expect(ledger.detectedAt).toBeDefined();
    // measured: 806 queries; more than N = 200 similar pairs are needed
    expect(ledger.detectedAt!).toBeGreaterThan(200);
    expect(ledger.detectedAt!).toBeLessThan(1500);
    expect(ledger.alarm).toMatch(/^seat: 201 queries within δ = 0\.1 of an earlier query of this account \(N = 200\)$/);
  });

  it('does not catch natural queries or honest streams', async () => {
    const { defense } = await seatOf();
    for (const spec of ['knockoff:arch=mlp,epochs=5', 'retrain-uniform']) {
      const ledger = await attackThrough(defense, spec);
      expect(ledger.detectedAt, spec).toBeUndefined();
      expect(ledger.queries, spec).toBe(3000);
    }
    const uniform = (i: number) => new Rng(1000 + i).fillUniform(new Float32Array(d), -1, 1);
    expect(await honest(defense, uniform, 3000, 'uniform')).toBeUndefined();
    expect(await honest(defense, (i) => pool.x.subarray(i * d, (i + 1) * d), 3000, 'pool')).toBeUndefined();
  });

  it('counts a repeated query as a similar pair, and a stream of repeats is alarmed past N', async () => {
    const { defense } = await seatOf('seat:steps=50,pairs=10');
    const s = defense as Defense & { pairsOf(id: string): number };
    const one = pool.x.subarray(0, d);
    const msg = await honest(defense, () => one, 1000, 'repeats');
    expect(msg).toMatch(/extraction detected after 11 queries/);
    expect(s.pairsOf('repeats')).toBe(11);
  });

  it('keeps bounded state: 10,000 distinct clients through one instance, the least recent evicted', async () => {
    const { defense } = await seatOf('seat:steps=50,clients=32,history=40');
    const s = defense as Defense & { trackedClients(): number; storedOf(id: string): number };
    const x = tf.tensor2d(pool.x.subarray(0, 20 * d), [20, d]);
    const before = tf.memory().numTensors;
    const heap0 = process.memoryUsage().heapUsed;
    for (let c = 0; c < 10_000; c++) {
      const api = new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, clientId: `client-${c}` });
      const r = await api.query(x);
      tf.dispose([r.probs ?? []]);
    }
    expect(s.trackedClients()).toBe(32);
    expect(s.storedOf('client-9999')).toBe(20);
    expect(s.storedOf('client-0')).toBe(0); // evicted
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(64 * 1024 * 1024);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    // one account keeps its newest `history` encodings
    expect(await honest(defense, (i) => pool.x.subarray(i * d, (i + 1) * d), 400, 'long')).toBeUndefined();
    expect(s.storedOf('long')).toBe(40);
  });

  it('refuses parameters out of range when the plan is made', () => {
    for (const [spec, why] of [
      ['seat:delta=11', /delta/],
      ['seat:pairs=0', /pairs/],
      ['seat:eps=2', /eps/],
      ['seat:dim=0', /dim/],
      ['seat:history=0', /history/],
      ['seat:clients=0', /clients/],
      ['seat:pgd-steps=0', /pgd-steps/],
    ] as const)
      expect(() => parseDefenseSpec(spec), spec).toThrow(why);
  });
});
