import { d, domain, k, victim } from '../testing/toy-extraction.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense } from '../../src/api/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import type { Watermarks } from '../../src/defenses/dawn.js';
import { parseDefenseSpec } from '../../src/defenses/registry.js';
import { binomialTail, verifyWatermarks } from '../../src/metrics/watermark.js';
import { Net } from '../../src/models/net.js';
import { fit } from '../../src/models/train.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

type Dawn = Defense & { watermarksOf(id: string): Watermarks | undefined; trackedClients(): number };

async function dawnOf(spec: string, seed = 1): Promise<Dawn> {
  const { unit, values } = parseDefenseSpec(spec);
  const v = victim();
  const split = { x: new Float32Array(d), y: new Int32Array(1), n: 1 };
  const prepared = await unit.prepare(values, { victim: v, train: split, heldOut: split, rng: new Rng(seed) });
  v.dispose();
  return unit.create(values, prepared) as Dawn;
}

const inputs = (n: number, seed: number) => {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * d }, () => r.uniform(-1, 1));
};

async function ask(defense: Defense, x: Float32Array, clientId = 'c') {
  const v = victim();
  const api = new LocalPredictionApi(v, [defense], { rng: new Rng(1), domain, clientId });
  const n = x.length / d;
  const xt = tf.tensor2d(x, [n, d]);
  const r = await api.query(xt);
  const answered = (await r.probs!.data()) as Float32Array;
  const clean = (await v.predict(xt).data()) as Float32Array;
  tf.dispose([xt, r.probs!]);
  v.dispose();
  return { answered, clean };
}

const top = (p: Float32Array, i: number) => {
  let t = 0;
  for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + t]) t = j;
  return t;
};

describe('dawn (Szyller 2021)', () => {
  it('watermarks about `rate` of the queries: a wrong top-1, the answer a permutation of the true one, recorded per client', async () => {
    const dawn = await dawnOf('dawn:rate=0.02');
    const x = inputs(20000, 3);
    const { answered, clean } = await ask(dawn, x);
    const wrong: number[] = [];
    for (let i = 0; i < 20000; i++) {
      if (top(answered, i) !== top(clean, i)) wrong.push(i);
      const a = Array.from(answered.subarray(i * k, (i + 1) * k)).sort();
      const c = Array.from(clean.subarray(i * k, (i + 1) * k)).sort();
      expect(a).toEqual(c);
    }
    // 2% ± 4 sd of a binomial
    expect(wrong.length).toBeGreaterThan(400 - 4 * 20);
    expect(wrong.length).toBeLessThan(400 + 4 * 20);
    const marks = dawn.watermarksOf('c')!;
    expect(marks.n).toBe(wrong.length);
    expect(Array.from(marks.at)).toEqual(wrong);
    for (let m = 0; m < marks.n; m++) expect(marks.labels[m]).toBe(top(answered, wrong[m]));
    expect(dawn.watermarksOf('someone-else')).toBeUndefined();
  });

  it('the same input always gets the same answer; another key chooses other inputs', async () => {
    const dawn = await dawnOf('dawn:rate=0.05');
    const x = inputs(2000, 4);
    const a = await ask(dawn, x, 'a');
    const b = await ask(dawn, x, 'b');
    expect(Array.from(a.answered)).toEqual(Array.from(b.answered));
    const other = await ask(await dawnOf('dawn:rate=0.05', 2), x, 'a');
    expect(Array.from(other.answered)).not.toEqual(Array.from(a.answered));
  });

  it('keeps bounded records: clients evicted least recently seen first, marks capped per client', async () => {
    const dawn = await dawnOf('dawn:rate=0.5,clients=4,marks=30');
    for (let c = 0; c < 10; c++) await ask(dawn, inputs(100, c), `client-${c}`);
    expect(dawn.trackedClients()).toBe(4);
    expect(dawn.watermarksOf('client-0')).toBeUndefined();
    expect(dawn.watermarksOf('client-9')!.n).toBe(30);
  });

  it('verification: a binomial tail against chance agreement (checked against scipy)', () => {
    // scipy.stats.binom.sf(h - 1, n, p)
    expect(binomialTail(50, 0.1, 13)).toBeCloseTo(0.0010046198617863324, 12);
    expect(binomialTail(50, 0.1, 5)).toBeCloseTo(0.5688015931709377, 12);
    expect(binomialTail(23, 0.1, 19) / 5.940941500000007e-16).toBeCloseTo(1, 8);
    expect(binomialTail(1000, 0.25, 300) / 0.0001935903219490758).toBeCloseTo(1, 8);
    expect(binomialTail(10, 0.5, 10)).toBeCloseTo(0.0009765625, 14);
    expect(binomialTail(10, 0.5, 0)).toBe(1);
    expect(binomialTail(10, 0.5, 11)).toBe(0);
  });

  it('the victim itself is never "verified" (it disagrees with every mark); a model that learnt the marks is', async () => {
    const dawn = await dawnOf('dawn:rate=0.05');
    await ask(dawn, inputs(4000, 5));
    const marks = dawn.watermarksOf('c')!;
    const v = victim();
    const own = await verifyWatermarks(v, marks, k);
    expect(own.acc).toBe(0);
    expect(own.verified).toBe(false);
    // a copy that memorised the marks (as a thief training to convergence does)
    const copy = new Net(
      {
        kind: 'mlp',
        inputShape: [d],
        numClasses: k,
        layers: [
          { type: 'dense', units: 64, activation: 'relu' },
          { type: 'dense', units: k },
        ],
        head: 'softmax',
      },
      new Rng(2),
    );
    await fit(
      copy,
      { x: marks.x, y: marks.labels, n: marks.n },
      { epochs: 300, batchSize: 32, optimizer: 'adam', lr: 0.01, rng: new Rng(3) },
    );
    const stolen = await verifyWatermarks(copy, marks, k);
    expect(stolen.acc).toBeGreaterThan(0.9);
    expect(stolen.verified).toBe(true);
    copy.dispose();
    v.dispose();
  });

  it('through the runner: watermark_acc and ownership_verified, and honest users pay the wrong answers', () => {
    const r = spawnSync(
      process.execPath,
      [
        'bin/mse.js',
        'attack',
        '-d',
        'digits',
        '-v',
        'mlp',
        '--defense',
        'dawn:rate=0.05',
        '-a',
        'retrain-uniform',
        '-b',
        '2000',
        '--json',
      ],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const row = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
    // measured: retrain-uniform fits 200 epochs and learns every mark (1.0), verified; defended accuracy 0.924 vs 0.961
    expect(row.watermark_acc).toBeGreaterThan(0.5);
    expect(row.ownership_verified).toBe(1);
    expect(row.defended_acc).toBeLessThan(row.victim_acc);
    expect(row.defended_acc).toBeGreaterThan(row.victim_acc - 0.1);
  });
});
