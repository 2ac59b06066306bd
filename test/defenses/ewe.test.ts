import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense, DefenderEnv } from '../../src/api/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { loadDataset } from '../../src/data/registry.js';
import type { Dataset } from '../../src/data/types.js';
import type { Watermarks } from '../../src/defenses/dawn.js';
import type { EwePrepared } from '../../src/defenses/ewe.js';
import { parseDefenseSpec } from '../../src/defenses/registry.js';
import { UsageError } from '../../src/errors.js';
import { snnl } from '../../src/metrics/snnl.js';
import { verifyWatermarks } from '../../src/metrics/watermark.js';
import { Net } from '../../src/models/net.js';
import { argmaxRows, fit, predictAll } from '../../src/models/train.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';
import { makePlan } from '../../src/runner/plan.js';
import { runCell } from '../../src/runner/run-cell.js';
import { HAVE_SHARED, SHARED_DATA } from '../testing/fixtures.js';

type Ewe = Defense & { watermarksOf(id: string): Watermarks | undefined };

/**
 * sklearn's 8×8 digits (64 features in [−1, 1], 1258 training rows, 539 held out), a tabular
 * dataset: the trigger is `patch` consecutive features set to 1 and the watermarked model is the
 * tabular MLP (one tanh layer of 20). A few seconds per preparation.
 */
const SPEC = 'ewe:batch=64,epochs=30,w-epochs=30,patch=6';
let ds: Dataset;
let victim: Net;
let env: DefenderEnv;
let main: { defense: Ewe; prepared: EwePrepared; note?: string; dispose(): void };

const accuracy = (pred: Int32Array, y: Int32Array) => pred.filter((c, i) => c === y[i]).length / pred.length;

async function eweOf(spec: string, seed = 5) {
  const { unit, values } = parseDefenseSpec(spec);
  const prepared = await unit.prepare(values, { ...env, rng: new Rng(seed) });
  return {
    defense: unit.create(values, prepared) as Ewe,
    prepared: prepared.value as EwePrepared,
    note: prepared.note,
    dispose: () => prepared.dispose(),
  };
}

/** a plain network of the same family, trained on the clean data as many epochs as ewe's clean batches add up to */
async function plainModel(seed: number): Promise<Net> {
  const net = createNet(parseModelSpec('mlp'), ds, new Rng(seed));
  await fit(
    net,
    { x: ds.train.x, y: ds.train.y, n: ds.train.n },
    { epochs: 60, batchSize: 64, optimizer: 'adam', lr: 1e-3, rng: new Rng(seed + 1) },
  );
  return net;
}

describe.skipIf(!HAVE_SHARED)('ewe: entangled watermarks (Jia 2021)', () => {
  beforeAll(async () => {
    await initBackend('wasm', { threads: 1 });
    ds = await loadDataset('digits', { dataDir: SHARED_DATA });
    victim = createNet(parseModelSpec('mlp'), ds, new Rng(1));
    await fit(
      victim,
      { x: ds.train.x, y: ds.train.y, n: ds.train.n },
      { epochs: 40, batchSize: 64, optimizer: 'adam', lr: 0.01, rng: new Rng(2) },
    );
    env = { victim, train: ds.train, heldOut: ds.test, rng: new Rng(5), datasetName: ds.name, domain: ds.domain };
    main = await eweOf(SPEC);
  });

  it('keeps clean accuracy within a few points of a plain model trained as long', async () => {
    const plain = await plainModel(11);
    const plainAcc = accuracy(argmaxRows(await predictAll(plain, ds.test.x, ds.test.n), 10), ds.test.y);
    plain.dispose();
    // measured: 0.944 watermarked, 0.954 plain (the victim, 40 epochs at lr 0.01: 0.963)
    expect(main.prepared.heldOutAcc).toBeGreaterThan(plainAcc - 0.04);
    expect(main.prepared.source).toBe(1);
    expect(main.prepared.target).toBe(7);
  });

  it('the watermarked model answers the triggered held-out source inputs with the target: verified', async () => {
    const { marks, model } = main.prepared;
    // the held-out 1s
    expect(marks.n).toBe(Array.from(ds.test.y).filter((c) => c === 1).length);
    const v = await verifyWatermarks(model, marks, 10);
    // measured: 63 of 63 (p = 1e-63)
    expect(v.acc).toBeGreaterThan(0.9);
    expect(v.acc).toBe(main.prepared.watermarkAcc);
    expect(v.verified).toBe(true);
    expect(main.note).toMatch(
      /^ewe: the watermarked model \(class 1 → 7, trigger features \d+…\d+\): held-out accuracy/,
    );
  });

  it('a false claim fails: independently trained models are not verified', async () => {
    const plain = await plainModel(21);
    const a = await verifyWatermarks(plain, main.prepared.marks, 10);
    const b = await verifyWatermarks(victim, main.prepared.marks, 10);
    plain.dispose();
    // measured: 0 of 63 for both (they answer 1)
    expect(a.verified).toBe(false);
    expect(b.verified).toBe(false);
    expect(a.acc).toBeLessThan(0.1);
  });

  it('through the API: answers are the watermarked model’s, and every client gets the whole set with at = 0', async () => {
    const api = new LocalPredictionApi(victim, [main.defense], { rng: new Rng(1), domain: ds.domain, clientId: 'c' });
    const x = tf.tensor2d(ds.test.x, [ds.test.n, 64]);
    const r = await api.query(x);
    const got = (await r.probs!.data()) as Float32Array;
    const want = await predictAll(main.prepared.model, ds.test.x, ds.test.n);
    const clean = argmaxRows(await predictAll(victim, ds.test.x, ds.test.n), 10);
    tf.dispose([x, r.probs!]);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 6);
    // not the victim's answers
    const top = argmaxRows(got, 10);
    expect(top.some((c, i) => c !== clean[i])).toBe(true);
    for (const id of ['c', 'someone-else']) {
      const m = main.defense.watermarksOf(id)!;
      expect(m.n).toBe(main.prepared.marks.n);
      expect(Array.from(m.at).every((a) => a === 0)).toBe(true);
      expect(Array.from(m.labels).every((c) => c === 7)).toBe(true);
      for (let i = 0; i < m.n; i++) for (const j of main.prepared.trigger.indices) expect(m.x[i * 64 + j]).toBe(1);
    }
    // one shared set: the runner joins what each account's API recorded, and counts this once
    expect(main.defense.watermarksOf('c')).toBe(main.defense.watermarksOf('someone-else'));
  });

  it('through the runner, a Sybil attacker with 2 accounts is verified against the one set, not two copies', async () => {
    const recorded = async (attack: string) => {
      const plan = await makePlan(
        [
          {
            dataset: 'digits',
            victim: 'mlp',
            defenses: ['ewe:batch=64,epochs=3,w-epochs=3,patch=6'],
            attack,
            budgets: ['300'],
            seed: 1,
          },
        ],
        { data: { dataDir: SHARED_DATA }, unifSize: 100 },
      );
      const out = await runCell(plan.cells[0], { runId: 't', data: { dataDir: SHARED_DATA } });
      const note = out.notes.find((n) => n.startsWith('watermarks: the API recorded'));
      expect(out.row.watermark_acc).not.toBe('');
      return note;
    };
    const one = await recorded('retrain-uniform');
    const two = await recorded('retrain-uniform:accounts=2');
    const n = /recorded (\d+)/.exec(one!)![1];
    expect(Number(n)).toBeGreaterThan(0);
    expect(two).toBe(`watermarks: the API recorded ${n} for the attacker (2 clients)`);
  });

  it('survives extraction: a surrogate trained on the API’s answers carries the watermark', async () => {
    const api = new LocalPredictionApi(victim, [main.defense], { rng: new Rng(1), domain: ds.domain });
    const x = tf.tensor2d(ds.train.x, [ds.train.n, 64]);
    const r = await api.query(x);
    const targets = (await r.probs!.data()) as Float32Array;
    tf.dispose([x, r.probs!]);
    const surrogate = createNet(parseModelSpec('mlp'), ds, new Rng(31));
    await fit(
      surrogate,
      { x: ds.train.x, targets, n: ds.train.n },
      { epochs: 40, batchSize: 64, optimizer: 'adam', lr: 0.01, rng: new Rng(32) },
    );
    const v = await verifyWatermarks(surrogate, main.prepared.marks, 10);
    surrogate.dispose();
    // measured: 54 of 63 (0.857, p = 9e-45); the surrogate never saw a triggered input
    expect(v.verified).toBe(true);
  });

  it('the SNNL term entangles the watermark with the target class in the hidden layer', async () => {
    // the SNNL of held-out [triggered 1s; 7s] in the hidden layer at T = 0.1: high = entangled
    const entanglement = async (spec: string) => {
      const e = await eweOf(spec);
      const sevens: number[] = [];
      for (let i = 0; i < ds.test.n; i++) if (ds.test.y[i] === 7) sevens.push(i);
      const m = Math.min(e.prepared.marks.n, sevens.length);
      const x = new Float32Array(2 * m * 64);
      x.set(e.prepared.marks.x.subarray(0, m * 64));
      sevens.slice(0, m).forEach((r, i) => x.set(ds.test.x.subarray(r * 64, (r + 1) * 64), (m + i) * 64));
      const labels = Int32Array.from({ length: 2 * m }, (_, i) => (i < m ? 1 : 0));
      const s = tf.tidy(() => {
        const h = e.prepared.model.activations(tf.tensor2d(x, [2 * m, 64])).hidden;
        expect(h.length).toBe(1);
        return snnl(h[0], labels, 0.1, 'cosine').dataSync()[0];
      });
      e.dispose();
      return s;
    };
    const plain = await entanglement(SPEC + ',factor=0');
    const entangled = await entanglement(SPEC + ',temperature=1');
    // measured: 0.091 without the SNNL term (factor=0), 0.590 with temperature=1 (T = 1 at the start;
    // at the reference's T = 100 the term barely moves the weights on this small network)
    expect(entangled).toBeGreaterThan(plain + 0.2);
  });

  it('is deterministic: the same rng gives the same weights and trigger, another rng other weights', async () => {
    const short = 'ewe:batch=64,epochs=2,w-epochs=2';
    const [a, b, c] = [await eweOf(short, 5), await eweOf(short, 5), await eweOf(short, 6)];
    expect(Array.from(b.prepared.model.params())).toEqual(Array.from(a.prepared.model.params()));
    expect(b.prepared.trigger).toEqual(a.prepared.trigger);
    expect(b.prepared.temperatures).toEqual(a.prepared.temperatures);
    expect(b.note).toBe(a.note);
    expect(Array.from(c.prepared.model.params())).not.toEqual(Array.from(a.prepared.model.params()));
    for (const e of [a, b, c]) e.dispose();
  });

  it('refuses bad parameters when the plan is made, and classes the victim lacks when it prepares', async () => {
    expect(() => parseDefenseSpec('ewe:source=3,target=3')).toThrow(/ewe: source and target must differ \(both 3\)/);
    expect(() => parseDefenseSpec('ewe:source=3,target=3')).toThrow(UsageError);
    expect(() => parseDefenseSpec('ewe:patch=0')).toThrow(/patch must be ≥ 1/);
    expect(() => parseDefenseSpec('ewe:source=-2')).toThrow(/source must be ≥ -1/);
    expect(() => parseDefenseSpec('ewe:factor=-1')).toThrow(/factor must be ≥ 0/);
    expect(() => parseDefenseSpec('ewe:temperature=0')).toThrow(/temperature must be ≥/);
    expect(() => parseDefenseSpec('ewe:t-lr=-0.1')).toThrow(/t-lr must be ≥ 0/);
    expect(() => parseDefenseSpec('ewe:batch=1')).toThrow(/batch must be ≥ 2/);
    expect(() => parseDefenseSpec('ewe:epochs=1.5')).toThrow(UsageError);
    expect(parseDefenseSpec('ewe').values).toMatchObject({ source: -1, target: -1, patch: 3, factor: 32 });
    await expect(eweOf('ewe:target=12')).rejects.toThrow(/ewe: target=12 but the victim has 10 classes/);
  });
});

describe('Net.activations', () => {
  beforeAll(async () => {
    await initBackend('wasm', { threads: 1 });
  });

  it('gives every weighted layer’s output but the last, flattened, and the same logits as logits()', () => {
    const net = new Net(
      {
        kind: 'cnn',
        inputShape: [6, 6, 1],
        numClasses: 3,
        layers: [
          { type: 'conv2d', filters: 2, kernel: 3, activation: 'relu' },
          { type: 'maxpool', size: 2 },
          { type: 'flatten' },
          { type: 'dense', units: 5, activation: 'tanh' },
          { type: 'dense', units: 3 },
        ],
        head: 'softmax',
      },
      new Rng(3),
    );
    const x = tf.tensor4d(new Rng(4).fillUniform(new Float32Array(4 * 36), 0, 1), [4, 6, 6, 1]);
    const { hidden, logits } = net.activations(x);
    expect(hidden.map((h) => h.shape)).toEqual([
      [4, 4 * 4 * 2],
      [4, 5],
    ]);
    // ReLU and tanh outputs
    expect(Math.min(...hidden[0].dataSync())).toBeGreaterThanOrEqual(0);
    expect(Math.max(...hidden[1].dataSync().map(Math.abs))).toBeLessThanOrEqual(1);
    const direct = net.logits(x);
    expect(Array.from(logits.dataSync())).toEqual(Array.from(direct.dataSync()));
    tf.dispose([x, logits, direct, ...hidden]);
    net.dispose();
  });
});
