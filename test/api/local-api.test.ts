import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense } from '../../src/api/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { BudgetExhaustedError, UsageError } from '../../src/errors.js';
import { DecisionTree } from '../../src/models/decision-tree.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';
import { parseDefense } from '../../src/defenses/registry.js';
import { toyBlobs } from '../testing/fixtures.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const ds = toyBlobs(200);
const domain = { min: -1, max: 1 };

describe('LocalPredictionApi', () => {
  it('with `none` it answers the victim’s own probabilities and counts every example', async () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const api = new LocalPredictionApi(victim, [parseDefense('none')], { rng: new Rng(2), domain });
    const x = tf.tensor2d(ds.test.x.subarray(0, 10 * 4), [10, 4]);
    const r = await api.query(x);
    const want = victim.predict(x);
    expect(Array.from(r.probs!.dataSync())).toEqual(Array.from(want.dataSync()));
    await api.query(x);
    expect(api.ledger.queries).toBe(20);
    expect(api.ledger.batches).toBe(2);
    expect(api.info.reveals).toBe('probs');
    tf.dispose([x, r.probs!, want]);
    victim.dispose();
  });

  it('refuses a batch that exceeds the budget with a typed error, answering nothing', async () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const api = new LocalPredictionApi(victim, [], { rng: new Rng(2), domain, budget: 15 });
    const x = tf.zeros([10, 4]);
    (await api.query(x)).probs!.dispose();
    await expect(api.query(x)).rejects.toBeInstanceOf(BudgetExhaustedError);
    expect(api.ledger.queries).toBe(10);
    const five = tf.zeros([5, 4]);
    (await api.query(five)).probs!.dispose(); // exactly the remainder is fine
    expect(api.ledger.queries).toBe(15);
    tf.dispose([x, five]);
    victim.dispose();
  });

  it('rejects queries of the wrong shape', async () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const api = new LocalPredictionApi(victim, [], { rng: new Rng(2), domain });
    const bad = tf.zeros([3, 5]);
    await expect(api.query(bad)).rejects.toThrow(UsageError);
    expect(api.ledger.queries).toBe(0);
    bad.dispose();
    victim.dispose();
  });

  it('applies defense stages in order and frees what they replace', async () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const calls: string[] = [];
    const shift: Defense = {
      name: 'shift',
      params: {},
      input: (x) => {
        calls.push('input');
        return tf.add(x, 1);
      },
    };
    const top1: Defense = {
      name: 'top1',
      params: {},
      reveals: 'labels',
      output: (p) => {
        calls.push('output');
        return { labels: tf.argMax(p, 1) as tf.Tensor1D };
      },
    };
    const price: Defense = {
      name: 'pow',
      params: {},
      price: (_x, ctx) => {
        calls.push(`price(${ctx.probs?.shape.join('x')})`);
        return { powSeconds: 0.5 };
      },
    };
    const api = new LocalPredictionApi(victim, [price, shift, top1], { rng: new Rng(2), domain });
    expect(api.info.reveals).toBe('labels');
    const x = tf.zeros([4, 4]);
    const before = tf.memory().numTensors;
    const r = await api.query(x);
    // inputs are transformed first; the price sees the victim's posteriors before any output stage
    expect(calls).toEqual(['input', 'price(4x3)', 'output']);
    expect(r.probs).toBeUndefined();
    const want = tf.tidy(() => tf.argMax(victim.predict(tf.add(x, 1)), 1));
    expect(Array.from(r.labels!.dataSync())).toEqual(Array.from(want.dataSync()));
    expect(api.ledger.powSeconds).toBe(0.5);
    r.labels!.dispose();
    want.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    victim.dispose();
  });

  it('refuses a probability stage placed after a labels-only one', () => {
    const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    const top1: Defense = {
      name: 'top1',
      params: {},
      reveals: 'labels',
      output: (p) => ({ labels: tf.argMax(p, 1) as tf.Tensor1D }),
    };
    const round: Defense = { name: 'round', params: {}, output: (p) => ({ probs: p }) };
    expect(() => new LocalPredictionApi(victim, [top1, round], { rng: new Rng(2), domain })).toThrow(/put it before/);
    victim.dispose();
  });

  it('serves leaf ids for a tree victim, like BigML', async () => {
    const tree = DecisionTree.fit(ds.train.x, ds.train.y, 4, ds.numClasses, { maxDepth: 3 });
    const api = new LocalPredictionApi(tree, [], { rng: new Rng(2), domain, revealLeaves: true });
    const x = tf.tensor2d(ds.test.x.subarray(0, 20 * 4), [20, 4]);
    const r = await api.query(x);
    expect(Array.from(r.leafIds!)).toEqual(Array.from(tree.leafIds(ds.test.x.subarray(0, 80), 20)));
    tf.dispose([x, r.probs!]);
    const net = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    expect(() => new LocalPredictionApi(net, [], { rng: new Rng(2), domain, revealLeaves: true })).toThrow(
      /only tree victims/,
    );
    net.dispose();
  });

  it('a labels-only victim is revealed as labels: its answers, no probabilities, and nothing leaks', async () => {
    const net = createNet(parseModelSpec('softmax'), ds, new Rng(1));
    // what a user's argmax export is to mse: one-hot rows, flagged labels-only
    const victim = {
      kind: 'onnx',
      inputShape: net.inputShape,
      numClasses: net.numClasses,
      labelsOnly: true,
      predict: (x: tf.Tensor) => tf.tidy(() => tf.oneHot(tf.argMax(net.predict(x), 1), 3).toFloat() as tf.Tensor2D),
      serialize: () => net.serialize(),
      dispose: () => undefined,
    };
    const x = tf.tensor2d(ds.test.x.subarray(0, 12 * 4), [12, 4]);
    const want = tf.tidy(() => Array.from(tf.argMax(net.predict(x), 1).dataSync()));
    for (const stack of [[], [parseDefense('none')], [parseDefense('top1')], [parseDefense('input-noise')]]) {
      const api = new LocalPredictionApi(victim, stack, { rng: new Rng(2), domain });
      expect(api.info.reveals).toBe('labels');
      const before = tf.memory().numTensors;
      const r = await api.query(x);
      expect(r.probs).toBeUndefined();
      if (stack[0]?.name !== 'input-noise') expect(Array.from(r.labels!.dataSync())).toEqual(want);
      r.labels!.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    // a defense that reworks probabilities has none to work on
    for (const d of ['round', 'reverse-sigmoid'])
      expect(() => new LocalPredictionApi(victim, [parseDefense(d)], { rng: new Rng(2), domain })).toThrow(
        new RegExp(`defense '${d}' needs probabilities but the victim \\(onnx\\) answers labels only`),
      );
    x.dispose();
    net.dispose();
  });
});
