import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { issueChallenge, leadingZeroBits, solve, verify } from '../../src/protocol/hashcash.js';
import { logGaussianSurvival, logQ, PknnPrivacyCost, rdpGnmax } from '../../src/defenses/pow/privacy-cost.js';
import { DEFENSES, parseDefense, parseDefenseSpec, prepareDefense } from '../../src/defenses/registry.js';
import { UsageError } from '../../src/errors.js';
import { toyBlobs, trainedSoftmax } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('hashcash (the puzzle itself)', () => {
  it('counts leading zero bits', () => {
    expect(leadingZeroBits(Uint8Array.of(0xff))).toBe(0);
    expect(leadingZeroBits(Uint8Array.of(0x00, 0x10))).toBe(11);
    expect(leadingZeroBits(Uint8Array.of(0x00, 0x00))).toBe(16);
  });

  it('issues, solves and verifies; a wrong, malformed or late answer is refused', () => {
    const ch = issueChallenge(10, 'client-a', { now: 1_000, ttlMs: 60_000, salt: 'fixed' });
    expect(ch.stamp).toMatch(/^1:10:700101:client-a::fixed:$/);
    const { counter } = solve(ch);
    expect(verify(ch, counter, 2_000)).toEqual({ ok: true });
    // a counter that does not reach the difficulty (most do not)
    let wrong = 0;
    while (verify(ch, wrong.toString(36), 2_000).ok) wrong++;
    expect(verify(ch, wrong.toString(36), 2_000)).toEqual({ ok: false, why: 'insufficient' });
    expect(verify(ch, 'NOT A COUNTER', 2_000)).toEqual({ ok: false, why: 'malformed' });
    expect(verify(ch, counter, 62_000)).toEqual({ ok: false, why: 'expired' });
  });

  it('each extra bit doubles the expected work (hashes counted, not timed)', () => {
    const meanHashes = (bits: number) => {
      let total = 0;
      for (let i = 0; i < 60; i++) total += solve(issueChallenge(bits, 'c', { salt: `s${bits}-${i}` })).hashes;
      return total / 60;
    };
    const h6 = meanHashes(6);
    const h8 = meanHashes(8);
    const h10 = meanHashes(10);
    expect(h8 / h6).toBeGreaterThan(2.5);
    expect(h8 / h6).toBeLessThan(6.5);
    expect(h10 / h8).toBeGreaterThan(2.5);
    expect(h10 / h8).toBeLessThan(6.5);
  });
});

describe('PATE-kNN privacy cost (Dziedzic 2022 §pknn, Papernot 2018 Prop. 10)', () => {
  it('log Φ̄ is accurate in both tails', () => {
    expect(Math.exp(logGaussianSurvival(0))).toBeCloseTo(0.5, 6);
    expect(Math.exp(logGaussianSurvival(1.959964))).toBeCloseTo(0.025, 6);
    expect(Math.exp(logGaussianSurvival(-1.959964))).toBeCloseTo(0.975, 6);
    expect(logGaussianSurvival(8)).toBeCloseTo(Math.log(6.22096e-16), 3);
  });

  it('a unanimous vote costs less than a split one; costs compose over queries', () => {
    const sigma = 28;
    const unanimous = rdpGnmax(logQ([300, 0, 0], sigma), sigma);
    const split = rdpGnmax(logQ([150, 140, 10], sigma), sigma);
    expect(unanimous[0]).toBeLessThan(split[0]);
    expect(Math.max(...unanimous)).toBeLessThanOrEqual(Math.max(...split));
    // the tracker: 3 classes, representations = one-hot-ish log probs
    const K = 3;
    const n = 600;
    const rep = new Float32Array(n * K);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % K;
      for (let j = 0; j < K; j++) rep[i * K + j] = Math.log(j === labels[i] ? 0.98 : 0.01);
    }
    const opts = { k: 300, sigma, delta: 1e-5 };
    const confident = new PknnPrivacyCost(rep, labels, K, opts);
    const ambiguous = new PknnPrivacyCost(rep, labels, K, opts);
    const q1 = Float32Array.from([Math.log(0.98), Math.log(0.01), Math.log(0.01)]);
    const q2 = Float32Array.from([Math.log(0.34), Math.log(0.33), Math.log(0.33)]);
    for (let i = 0; i < 20; i++) {
      confident.add(q1, 1);
      ambiguous.add(q2, 1);
    }
    expect(confident.epsilon()).toBeGreaterThan(0);
    expect(ambiguous.epsilon()).toBeGreaterThan(confident.epsilon());
    const e20 = confident.epsilon();
    for (let i = 0; i < 20; i++) confident.add(q1, 1);
    expect(confident.epsilon()).toBeGreaterThan(e20);
  });
});

describe('pow defense (Dziedzic 2022)', () => {
  it('an honest client pays about the victim’s own latency again; out-of-distribution queries pay many times more', async () => {
    const ds = toyBlobs(1200);
    const victim = await trainedSoftmax(ds, 20);
    // base 2 (the paper uses 1.18 per ε-unit on MNIST, where costs run in the hundreds; toy blobs leak far less)
    const { defense: d, prepared } = await prepareDefense('pow:base=2,unit=0.01', {
      victim,
      train: ds.train,
      heldOut: ds.test,
      rng: new Rng(0),
    });
    // the same price capped at 3 units a puzzle (the default cap is the paper's ≈ 400)
    const capped = await prepareDefense('pow:base=2,unit=0.01,cap=3', {
      victim,
      train: ds.train,
      heldOut: ds.test,
      rng: new Rng(0),
    });
    const priceOf = async (x: Float32Array, n: number, client: string, defense = d) => {
      const api = new LocalPredictionApi(victim, [defense], { rng: new Rng(3), domain: ds.domain, clientId: client });
      for (let s = 0; s < n; s += 64) {
        const m = Math.min(64, n - s);
        const r = await api.query(tf.tensor2d(x.subarray(s * 4, (s + m) * 4), [m, 4]));
        r.probs!.dispose();
      }
      return api.ledger.powSeconds / n;
    };
    const n = Math.min(320, ds.test.n);
    const honest = await priceOf(ds.test.x, n, 'honest');
    // an extraction-style stream: boundary queries (midpoints of test points from different classes),
    // where the neighbours' votes split
    const r = new Rng(9);
    const mid = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      let a = r.int(ds.test.n);
      let b = r.int(ds.test.n);
      while (ds.test.y[b] === ds.test.y[a]) b = r.int(ds.test.n);
      for (let j = 0; j < 4; j++) mid[i * 4 + j] = (ds.test.x[a * 4 + j] + ds.test.x[b * 4 + j]) / 2;
      a = b;
    }
    const attacker = await priceOf(mid, n, 'attacker');
    // unit = 0.01 s per 64 queries: an honest client pays about one unit (≈ 2× the victim's latency when unit = latency)
    expect(honest).toBeLessThan((2 * 0.01) / 64);
    expect(attacker).toBeGreaterThan(10 * honest);
    // a puzzle costs at most cap units (2^bits rounds the time to within √2 of it)
    const cappedAttacker = await priceOf(mid, n, 'attacker', capped.defense);
    expect(cappedAttacker).toBeLessThanOrEqual((3 * Math.SQRT2 * 0.01) / 64);
    expect(cappedAttacker).toBeGreaterThan((3 * 0.01) / Math.SQRT2 / 64 / 2);
    expect(cappedAttacker).toBeLessThan(attacker);
    capped.prepared.dispose();
    prepared.dispose();
    victim.dispose();
  });

  it('is built only from a calibration: parseDefense names it, and an unprepared create is refused', () => {
    expect(DEFENSES.get('pow').prepares).toBe(true);
    expect(() => parseDefense('pow')).toThrow(UsageError);
    expect(() => parseDefense('pow')).toThrow(/defense pow/);
    const { unit, values } = parseDefenseSpec('pow');
    expect(() => unit.create(values)).toThrow(/before it was prepared/);
  });
});
