import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { Defense } from '../../src/api/types.js';
import { invertReverseSigmoid, ReverseSigmoidCurve } from '../../src/attacks/invert-reverse-sigmoid.js';
import { parseAttackSpec } from '../../src/attacks/registry.js';
import { checkSurrogateParams, QueryLog, SURROGATE_PARAMS, trainCurve } from '../../src/attacks/surrogate.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { DEFENSES } from '../../src/defenses/registry.js';
import { UsageError } from '../../src/errors.js';
import { Net } from '../../src/models/net.js';
import { formatParams, resolveParams, typed } from '../../src/params.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const k = 10;
const SETTINGS = [
  [0.2, 0.1],
  [0.5, 0.1],
  [0.8, 0.1],
  [1, 0.1],
  [0.5, 0.5],
] as const;

/** The registered defense unit itself, not a re-implementation. */
function defense(beta: number, gamma: number): Defense {
  const unit = DEFENSES.get('reverse-sigmoid');
  return unit.create(unit.resolve({ beta: [String(beta)], gamma: [String(gamma)] }));
}

/** Rows [n·k] through the defense's output stage, as the API applies it. */
function defend(d: Defense, y: Float32Array): Float32Array {
  return tf.tidy(() => {
    const r = d.output!(tf.tensor2d(y, [y.length / k, k]), { answered: 0, batch: 0, rng: new Rng(1), clientId: 't' });
    return r.probs!.dataSync() as Float32Array;
  });
}

/** softmax of logits N(0, spread²), one class raised by U(lo, hi): a classifier's confident answer. */
function natural(r: Rng, spread: number, lo: number, hi: number): Float32Array {
  const z = Array.from({ length: k }, () => r.normal(0, spread));
  z[r.int(k)] += r.uniform(lo, hi);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return Float32Array.from(e, (v) => v / s);
}

/** y_lo, where y − r(y) (Lee et al. eq. 3) stops falling, by brute force on a fine grid of y. */
function foldByScan(beta: number, gamma: number): number {
  let best = Infinity;
  let at = 0;
  for (let y = 1e-6; y < 0.5; y *= 1.0005) {
    const g = y - beta * (1 / (1 + ((1 - y) / y) ** gamma) - 0.5);
    if (g < best) [best, at] = [g, y];
  }
  return at;
}

const argmax = (v: ArrayLike<number>, o = 0) => {
  let b = 0;
  for (let j = 1; j < k; j++) if (v[o + j] > v[o + b]) b = j;
  return b;
};
const l1 = (a: ArrayLike<number>, b: ArrayLike<number>, o = 0) => {
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.abs(a[o + j] - b[o + j]);
  return s;
};

describe('invertReverseSigmoid (Lee et al. 2018, eqs. 3–4)', () => {
  it.each(SETTINGS)(
    'β=%s, γ=%s: natural rows whose other classes lie below half the fold come back within 1e-3 L1',
    (beta, gamma) => {
      const fold = foldByScan(beta, gamma);
      expect(new ReverseSigmoidCurve(beta, gamma).fold).toBeCloseTo(fold, 3);
      const r = new Rng(11);
      const rows: Float32Array[] = [];
      while (rows.length < 150) {
        const y = natural(r, 2, 2, 12); // a broad spread of confidences
        if ([...y].sort((a, b) => b - a)[1] < fold / 2) rows.push(y);
      }
      const y = new Float32Array(rows.length * k);
      rows.forEach((row, i) => y.set(row, i * k));
      const back = invertReverseSigmoid(defend(defense(beta, gamma), y), k, beta, gamma);
      for (let i = 0; i < rows.length; i++) {
        expect(l1(back, y, i * k)).toBeLessThan(1e-3);
        expect(argmax(back, i * k)).toBe(argmax(y, i * k));
      }
    },
  );

  it.each(SETTINGS)(
    'β=%s, γ=%s: confident classifier rows: at least 95 percent within 1e-3 L1, argmax always kept, every inverse re-defends to the answer',
    (beta, gamma) => {
      const r = new Rng(5);
      const n = 300;
      const y = new Float32Array(n * k);
      for (let i = 0; i < n; i++) y.set(natural(r, 1, 8, 14), i * k);
      const d = defense(beta, gamma);
      const answers = defend(d, y);
      const back = invertReverseSigmoid(answers, k, beta, gamma);
      const again = defend(d, back);
      let close = 0;
      for (let i = 0; i < n; i++) {
        if (l1(back, y, i * k) < 1e-3) close++;
        expect(argmax(back, i * k)).toBe(argmax(y, i * k));
        expect(l1(again, answers, i * k)).toBeLessThan(1e-4);
      }
      expect(close / n).toBeGreaterThanOrEqual(0.95);
    },
  );

  it('a class beyond the fold has a sparser preimage with the same answer, and gets it (the documented ambiguity)', () => {
    const d = defense(0.8, 0.1); // fold ≈ 0.0196
    const y = Float32Array.from([0.945, 0.04, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.001]);
    const answer = defend(d, y);
    const back = invertReverseSigmoid(answer, k, 0.8, 0.1);
    expect(back[1]).toBeLessThan(0.0196); // 0.04 answered like ≈ 0.0067
    expect(argmax(back)).toBe(0);
    expect(l1(defend(d, back), answer)).toBeLessThan(1e-5);
  });

  it('γ = 1 is an affine map, inverted in closed form (a golden row worked by hand)', () => {
    // ỹ ∝ (1 − β)·y + β/2: β = 0.5, y = (0.7, 0.2, 0.1) → (0.6, 0.35, 0.3)/1.25 = (0.48, 0.28, 0.24)
    const back = invertReverseSigmoid(Float32Array.from([0.48, 0.28, 0.24]), 3, 0.5, 1);
    [0.7, 0.2, 0.1].forEach((v, j) => expect(back[j]).toBeCloseTo(v, 6));
  });

  it('refuses what it cannot invert, in one line', () => {
    expect(() => invertReverseSigmoid(new Float32Array(4), 2, 1, 1)).toThrow(/uniform row whatever y is/);
    expect(() => invertReverseSigmoid(new Float32Array(5), 2, 0.5, 0.1)).toThrow(RangeError);
    expect(() => new ReverseSigmoidCurve(-1, 0.1)).toThrow(/beta must be ≥ 0/);
  });
});

describe('adapt=reverse-sigmoid on the surrogate attacks', () => {
  it('adds no parameter text unless asked: existing params and cell ids unchanged', () => {
    const { values } = parseAttackSpec('knockoff');
    expect(formatParams(values)).toBe('arch=auto,batch=64,epochs=10,labels=auto,lr=0.001,pool=auto');
    const adapted = parseAttackSpec('knockoff:adapt=reverse-sigmoid,adapt-beta=0.8,adapt-gamma=0.1').values;
    expect(formatParams(adapted)).toContain('adapt=reverse-sigmoid,adapt-beta=0.8,adapt-gamma=0.1');
  });

  it('checks the combination: β and γ only with adapt, both required, not with labels=top1', () => {
    expect(checkSurrogateParams({ 'adapt-beta': 0.8 })).toMatch(/need adapt=reverse-sigmoid/);
    expect(checkSurrogateParams({ adapt: 'reverse-sigmoid', 'adapt-beta': 0.8 })).toMatch(
      /needs adapt-beta and adapt-gamma/,
    );
    const ok = { adapt: 'reverse-sigmoid', 'adapt-beta': 0.8, 'adapt-gamma': 0.1 } as const;
    expect(checkSurrogateParams({ ...ok, labels: 'top1' })).toMatch(/labels=top1/);
    expect(checkSurrogateParams({ ...ok, 'adapt-beta': 1, 'adapt-gamma': 1 })).toMatch(/no inverse/);
    expect(checkSurrogateParams(ok)).toBeUndefined();
    expect(checkSurrogateParams({})).toBeUndefined();
  });

  /** A 4-input tanh MLP victim with k classes and confident answers. */
  function victim(): Net {
    const r = new Rng(21);
    const w1 = Float32Array.from({ length: 4 * 16 }, () => r.normal(0, 2));
    const w2 = Float32Array.from({ length: 16 * k }, () => r.normal(0, 3));
    return new Net(
      {
        kind: 'mlp',
        inputShape: [4],
        numClasses: k,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 16, activation: 'tanh' }, { type: 'dense', units: k }],
        head: 'softmax',
      },
      [w1, new Float32Array(16), w2, new Float32Array(k)],
    );
  }
  const domain = { min: -1, max: 1 };
  const x = Float32Array.from({ length: 64 * 4 }, (_, i) => Math.sin(i * 12.9898) * 0.9);
  const params = { adapt: 'reverse-sigmoid', 'adapt-beta': 0.8, 'adapt-gamma': 0.1, labels: 'auto' } as const;

  it('the query log inverts probability answers, as they arrive or when training starts, without leaking tensors', async () => {
    const v = victim();
    const api = () => new LocalPredictionApi(v, [defense(0.8, 0.1)], { rng: new Rng(1), domain, budget: 1000 });
    const before = tf.memory().numTensors;
    const live = new QueryLog(64, 4, k, api(), [4], params);
    await live.ask(x, 64);
    const late = new QueryLog(64, 4, k, api(), [4], 'auto');
    const answers = Float32Array.from(await late.ask(x, 64));
    late.adaptTo(params);
    late.adaptTo(params); // idempotent
    expect(tf.memory().numTensors).toBe(before);
    const expected = invertReverseSigmoid(answers, k, 0.8, 0.1);
    expect(Array.from(live.targets)).toEqual(Array.from(expected));
    expect(Array.from(late.targets)).toEqual(Array.from(expected));
    expect(live.throughput()).toMatch(/adapt: inverted 64 reverse-sigmoid answers \(β=0\.8, γ=0\.1\)/);
    // closer to the victim's own posteriors than the answers were
    const truth = await (async () => {
      const p = v.predict(tf.tensor2d(x, [64, 4]));
      try {
        return (await p.data()) as Float32Array;
      } finally {
        p.dispose();
      }
    })();
    let before1 = 0;
    let after1 = 0;
    for (let i = 0; i < 64; i++)
      [before1, after1] = [before1 + l1(answers, truth, i * k), after1 + l1(expected, truth, i * k)];
    expect(after1).toBeLessThan(before1 / 4);
    v.dispose();
  });

  it('leaves label answers alone, and a run with adapt-beta but no adapt fails with a usage error', async () => {
    const v = victim();
    const top1: Defense = {
      name: 'top1',
      params: {},
      reveals: 'labels',
      output: (p) => ({ labels: tf.argMax(p, 1) as tf.Tensor1D }),
    };
    const api = new LocalPredictionApi(v, [top1], { rng: new Rng(1), domain, budget: 1000 });
    const log = new QueryLog(64, 4, k, api, [4], params);
    const t = await log.ask(x, 64);
    expect(t.every((e) => e === 0 || e === 1)).toBe(true);
    expect(log.throughput()).toMatch(/no probability answers to invert/);
    const know = { inputShape: [4], numClasses: k, domain };
    const raw = { arch: ['mlp'], epochs: ['1'], 'adapt-beta': ['0.8'] };
    const bad = typed(SURROGATE_PARAMS, resolveParams('test', SURROGATE_PARAMS, raw));
    await expect(trainCurve(log, know, bad, 1)).rejects.toThrow(UsageError);
    v.dispose();
  });
});
