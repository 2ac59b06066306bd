/**
 * The defense unit contract (defenses/define.ts): what a defense prepares once per cell is shared,
 * read-only, by every API instance; what an instance keeps (pow's per-client ledger) is its own.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { defineDefense } from '../../src/defenses/define.js';
import type { PowDefense } from '../../src/defenses/pow.js';
import { DEFENSES, parseDefenseSpec } from '../../src/defenses/registry.js';
import { UsageError } from '../../src/errors.js';
import { Net } from '../../src/models/net.js';
import { toyBlobs, trainedSoftmax } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('defense state', () => {
  it('two pow instances prepared once keep separate per-client ledgers', async () => {
    const ds = toyBlobs(600);
    const victim = await trainedSoftmax(ds, 10);
    const { unit, values } = parseDefenseSpec('pow:k=50,calib=60,base=2,unit=0.01,maxbits=32');
    const prepared = await unit.prepare(values, { victim, train: ds.train, heldOut: ds.test, rng: new Rng(0) });
    const a = unit.create(values, prepared) as PowDefense;
    const b = unit.create(values, prepared) as PowDefense;
    // the calibration is prepared once and shared
    expect(a.calibration).toBeDefined();
    expect(a.calibration).toBe(b.calibration);
    const fresh = b.nextBits('c');
    expect(a.nextBits('c')).toBe(fresh);
    // boundary queries (midpoints of points from different classes) through A, as client 'c'
    const r = new Rng(9);
    const n = 256;
    const mid = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      const p = r.int(ds.test.n);
      let q = r.int(ds.test.n);
      while (ds.test.y[q] === ds.test.y[p]) q = r.int(ds.test.n);
      for (let j = 0; j < 4; j++) mid[i * 4 + j] = (ds.test.x[p * 4 + j] + ds.test.x[q * 4 + j]) / 2;
    }
    const spend = async (d: PowDefense, client: string) => {
      const api = new LocalPredictionApi(victim, [d], { rng: new Rng(3), domain: ds.domain, clientId: client });
      const seconds: number[] = [];
      for (let s = 0; s < n; s += 64) {
        const before = api.ledger.powSeconds;
        (await api.query(tf.tensor2d(mid.subarray(s * 4, (s + 64) * 4), [64, 4]))).probs!.dispose();
        seconds.push(api.ledger.powSeconds - before);
      }
      return seconds;
    };
    const viaA = await spend(a, 'c');
    // A's ledger for 'c' moved; B's ledger for the same client id did not
    expect(a.nextBits('c')).toBeGreaterThan(fresh);
    expect(b.nextBits('c')).toBe(fresh);
    // and B, asked the same queries by 'c', charges exactly what A charged a fresh 'c'
    expect(await spend(b, 'c')).toEqual(viaA);
    prepared.dispose();
    victim.dispose();
  });

  it('two mad instances prepared once share the proxy: the same input gets the same answer', async () => {
    const k = 5;
    const victim = new Net(
      {
        kind: 'mlp',
        inputShape: [6],
        numClasses: k,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 8, activation: 'tanh' }, { type: 'dense', units: k }],
        head: 'softmax',
      },
      new Rng(4),
    );
    const x = tf.randomUniform([32, 6], -1, 1, 'float32', 7);
    const y = victim.predict(x);
    const none = { x: new Float32Array(0), y: new Int32Array(0), n: 0 };
    const { unit, values } = parseDefenseSpec('mad:eps=0.8');
    const prepared = await unit.prepare(values, { victim, train: none, heldOut: none, rng: new Rng(9) });
    const answer = (seed: number) => {
      const d = unit.create(values, prepared);
      const r = d.output!(y, { answered: 0, batch: 0, rng: new Rng(seed), clientId: 't', input: x });
      const v = Array.from(r.probs!.dataSync());
      r.probs!.dispose();
      return v;
    };
    const first = answer(1);
    expect(answer(2)).toEqual(first);
    expect(answer(1)).toEqual(first);
    expect(first).not.toEqual(Array.from(y.dataSync()));
    // the proxy belongs to the prepared value, and goes with it
    const before = tf.memory().numTensors;
    prepared.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before);
    // eps = 0 and the ablation oracles need no proxy
    expect(
      (
        await unit.prepare(parseDefenseSpec('mad:eps=0').values, {
          victim,
          train: none,
          heldOut: none,
          rng: new Rng(9),
        })
      ).value,
    ).toBeUndefined();
    expect(
      (
        await unit.prepare(parseDefenseSpec('mad:oracle=random').values, {
          victim,
          train: none,
          heldOut: none,
          rng: new Rng(9),
        })
      ).value,
    ).toBeUndefined();
    tf.dispose([x, y]);
    victim.dispose();
  });

  it('the built-ins are registered in order, and a conflicting mad spec is refused when parsed', () => {
    expect(DEFENSES.names()).toEqual([
      'none',
      'top1',
      'topk',
      'high-confidence',
      'round',
      'noise',
      'input-noise',
      'mad',
      'poison',
      'pow',
      'reverse-sigmoid',
      'am',
      'prada',
      'seat',
      'dawn',
      'ewe',
    ]);
    expect(DEFENSES.get('prada').stagesOf({ delta: 0.9 })).toEqual(['monitor']);
    expect(DEFENSES.get('seat').stagesOf({})).toEqual(['monitor']);
    expect(DEFENSES.get('top1').reveals).toBe('labels');
    expect(
      DEFENSES.all()
        .filter((u) => u.prepares)
        .map((u) => u.name),
    ).toEqual(['mad', 'poison', 'pow', 'am', 'seat', 'dawn', 'ewe']);
    expect(() => parseDefenseSpec('poison:argmax=true,oracle=random')).toThrow(
      new UsageError('poison: argmax=true chooses its own oracle; leave oracle=random out'),
    );
  });
});

describe('defineDefense', () => {
  const bad = (params: unknown) => () =>
    defineDefense({ name: 'bad', describe: 'a broken plugin', params: params as never, create: () => ({}) });

  it('rejects an invalid schema with a one-line UsageError naming the defense and the parameter', () => {
    for (const params of [
      { eps: { type: 'float', help: 'budget' } },
      { eps: { type: 'number', help: '' } },
      { eps: { type: 'number', min: 0, default: -1, help: 'budget' } },
      { eps: { type: 'string', choices: ['a'], default: 'b', help: 'budget' } },
      'eps',
    ]) {
      expect(bad(params)).toThrow(UsageError);
      try {
        bad(params)();
      } catch (e) {
        const msg = (e as Error).message;
        expect(msg).toMatch(/^defense bad: /);
        expect(msg).not.toContain('\n');
        if (typeof params === 'object') expect(msg).toContain("'eps'");
      }
    }
    expect(bad({ eps: { type: 'number', min: 0, default: 0.5, help: 'budget' } })).not.toThrow();
  });
});
