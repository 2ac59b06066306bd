import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { parseAttack } from '../../src/attacks/registry.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { parseDefense, prepareDefense } from '../../src/defenses/registry.js';
import type { Defense } from '../../src/api/types.js';
import type { Prepared } from '../../src/defenses/define.js';
import type { Model } from '../../src/models/model.js';
import { argmaxRows } from '../../src/models/train.js';
import { Net } from '../../src/models/net.js';
import { paramError } from '../../src/metrics/param-error.js';
import { UsageError } from '../../src/errors.js';
import { fidelity, uniformInputs } from '../../src/metrics/agreement.js';
import { madArgmaxSets, madObjective } from '../../src/defenses/mad.js';
import { nativeBlas } from '../../src/compute/native.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

const k = 5;
const domain = { min: -1, max: 1 };

/** Random posteriors with a spread of confidences, [n, k]. */
function posteriors(n: number, seed = 1): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const t = r.uniform(0.3, 6);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[i * k + j] = Math.exp(t * r.normal());
    for (let j = 0; j < k; j++) out[i * k + j] /= s;
  }
  return out;
}

/** Apply a defense's output stage to posteriors as the API does. */
function apply(spec: string, p: Float32Array, seed = 1): { probs?: Float32Array; labels?: Int32Array } {
  const d = parseDefense(spec);
  const pt = tf.tensor2d(p, [p.length / k, k]);
  const r = d.output!(pt, { answered: 0, batch: 0, rng: new Rng(seed), clientId: 'test' });
  const out = {
    probs: r.probs ? (r.probs.dataSync() as Float32Array) : undefined,
    labels: r.labels ? (r.labels.dataSync() as Int32Array) : undefined,
  };
  tf.dispose([pt, r.probs ?? [], r.labels ?? []]);
  return out;
}

/** Prepare a defense from a defender that owns only its victim and setup stream (mad's proxy needs nothing else). */
async function prepared(spec: string, victim: Model, rng: Rng): Promise<{ defense: Defense; prepared: Prepared }> {
  const none = { x: new Float32Array(0), y: new Int32Array(0), n: 0 };
  return prepareDefense(spec, { victim, train: none, heldOut: none, rng });
}

function expectDistributions(p: Float32Array): void {
  for (let i = 0; i < p.length / k; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) {
      expect(p[i * k + j]).toBeGreaterThanOrEqual(0);
      s += p[i * k + j];
    }
    expect(s).toBeCloseTo(1, 5);
  }
}

describe('baseline defenses', () => {
  const y = posteriors(300);
  const top = argmaxRows(y, k);

  it('top1 reveals exactly the victim’s labels', () => {
    expect(Array.from(apply('top1', y).labels!)).toEqual(Array.from(top));
  });

  it('topk keeps the k largest, renormalised, and the argmax', () => {
    const p = apply('topk:k=2', y).probs!;
    expectDistributions(p);
    for (let i = 0; i < 300; i++)
      expect(Array.from(p.subarray(i * k, (i + 1) * k)).filter((v) => v > 0).length).toBeLessThanOrEqual(2);
    expect(Array.from(argmaxRows(p, k))).toEqual(Array.from(top));
  });

  it('round keeps r decimals of each probability (up to renormalisation)', () => {
    const p = apply('round:decimals=1', y).probs!;
    expectDistributions(p);
    for (let i = 0; i < 300; i++) {
      const row = Array.from(y.subarray(i * k, (i + 1) * k)).map((v) => Math.round(v * 10) / 10);
      const s = row.reduce((a, b) => a + b, 0);
      if (s > 0) row.forEach((v, j) => expect(p[i * k + j]).toBeCloseTo(v / s, 5));
    }
    // fewer decimals, a larger perturbation
    const l1 = (q: Float32Array) => q.reduce((a, v, i) => a + Math.abs(v - y[i]), 0);
    expect(l1(apply('round:decimals=1', y).probs!)).toBeGreaterThan(l1(apply('round:decimals=3', y).probs!));
  });

  it('noise is seeded: the same seed gives the same answers, another seed others; larger σ perturbs more', () => {
    const a = apply('noise:sigma=0.05', y, 7).probs!;
    expectDistributions(a);
    expect(Array.from(apply('noise:sigma=0.05', y, 7).probs!)).toEqual(Array.from(a));
    expect(Array.from(apply('noise:sigma=0.05', y, 8).probs!)).not.toEqual(Array.from(a));
    const l1 = (q: Float32Array) => q.reduce((s, v, i) => s + Math.abs(v - y[i]), 0);
    expect(l1(apply('noise:sigma=0.2', y, 7).probs!)).toBeGreaterThan(l1(a));
  });
});

describe('reverse-sigmoid (Lee et al. 2018, eqs. 3–4)', () => {
  const y = posteriors(300, 2);

  it('matches the formula, entry by entry', () => {
    const beta = 0.7;
    const gamma = 0.2;
    const p = apply(`reverse-sigmoid:beta=${beta},gamma=${gamma}`, y).probs!;
    expectDistributions(p);
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    for (let i = 0; i < 50; i++) {
      const row = Array.from(y.subarray(i * k, (i + 1) * k));
      const d = row.map((v) => {
        const c = Math.min(Math.max(v, 1e-9), 1 - 1e-9);
        return Math.min(1, Math.max(0, v - beta * (sig(gamma * Math.log(c / (1 - c))) - 0.5)));
      });
      const s = d.reduce((a, b) => a + b, 0);
      d.forEach((v, j) => expect(p[i * k + j]).toBeCloseTo(v / s, 4));
    }
  });

  it('β = γ = 1 answers exactly uniform; γ = 1, β < 1 is an affine mix toward uniform that keeps the argmax', () => {
    const u = apply('reverse-sigmoid:beta=1,gamma=1', y).probs!;
    for (const v of u) expect(v).toBeCloseTo(1 / k, 5);
    const beta = 0.5;
    const m = apply(`reverse-sigmoid:beta=${beta},gamma=1`, y).probs!;
    for (let i = 0; i < 300; i++) {
      const s = Array.from(y.subarray(i * k, (i + 1) * k)).reduce((a, v) => a + (1 - beta) * v + beta / 2, 0);
      for (let j = 0; j < k; j++) expect(m[i * k + j]).toBeCloseTo(((1 - beta) * y[i * k + j] + beta / 2) / s, 5);
    }
    expect(Array.from(argmaxRows(m, k))).toEqual(Array.from(argmaxRows(y, k)));
  });

  it('validates its parameters', () => {
    expect(() => parseDefense('reverse-sigmoid:beta=-1')).toThrow(UsageError);
    expect(() => parseDefense('reverse-sigmoid:delta=1')).toThrow(UsageError);
  });
});

describe('defenses against equation solving (Tramèr 2016 §7)', () => {
  it('rounding raises eq-lr’s parameter error, and coarser rounding raises it more', async () => {
    const d = 10;
    const r = new Rng(21);
    const w = Float32Array.from({ length: d }, () => r.normal(0, 1));
    const v = new Net(
      {
        kind: 'logistic',
        inputShape: [d],
        numClasses: 2,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 1 }],
        head: 'sigmoid',
      },
      [w, Float32Array.of(0.3)],
    );
    const err = async (defenses: string[]) => {
      const api = new LocalPredictionApi(v, defenses.map(parseDefense), {
        rng: new Rng(1),
        domain,
        budget: 20 * (d + 1),
      });
      const res = await parseAttack('eq-lr').run(
        api,
        { inputShape: [d], numClasses: 2, domain, family: { kind: 'logistic' } },
        new Rng(2),
      );
      const e = paramError(v, res.surrogate)!.relL2;
      res.surrogate.dispose();
      return e;
    };
    const exact = await err([]);
    const r4 = await err(['round:decimals=4']);
    const r2 = await err(['round:decimals=2']);
    expect(exact).toBeLessThan(1e-4);
    expect(r4).toBeGreaterThan(exact);
    expect(r2).toBeGreaterThan(r4);
    v.dispose();
  });
});

describe('mad / poison (Orekondy 2020)', () => {
  /** A small tanh victim with k classes over 6 features. */
  const tanhVictim = (k: number, seed: number) =>
    new Net(
      {
        kind: 'mlp',
        inputShape: [6],
        numClasses: k,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 8, activation: 'tanh' }, { type: 'dense', units: k }],
        head: 'softmax',
      },
      new Rng(seed),
    );
  /** The posteriors of the surrogate mad prepares from the defender's stream `seed` (its first fork). */
  const surrogatePosteriors = (x: tf.Tensor, k: number, seed: number) => {
    const proxy = createNet(
      parseModelSpec('mlp'),
      { name: 'proxy', inputShape: [6], numClasses: k, kind: 'tabular' },
      new Rng(seed).fork(),
    );
    const p = tf.tidy(() => proxy.predict(x)).dataSync() as Float32Array;
    proxy.dispose();
    return p;
  };

  it('its K-dimensional objective equals the angular deviation through a numeric last-layer Jacobian', () => {
    const r = new Rng(3);
    const K = 5;
    const H = 7;
    const h = Array.from({ length: H }, () => r.normal());
    const W = Array.from({ length: K * H }, () => r.normal(0, 0.5));
    const logp = (w: number[], c: number) => {
      const z = Array.from({ length: K }, (_, a) => h.reduce((s, hv, t) => s + w[a * H + t] * hv, 0));
      const m = Math.max(...z);
      const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
      return z[c] - lse;
    };
    // G[c] = ∇_W (−log p_c), by central differences
    const G = Array.from({ length: K }, (_, c) =>
      W.map((_, i) => {
        const a = [...W];
        const b = [...W];
        a[i] += 1e-5;
        b[i] -= 1e-5;
        return -(logp(a, c) - logp(b, c)) / 2e-5;
      }),
    );
    const p = Array.from({ length: K }, (_, c) => Math.exp(logp(W, c)));
    const Gt = (v: number[]) => W.map((_, i) => v.reduce((s, vc, c) => s + vc * G[c][i], 0));
    const unit = (v: number[]) => {
      const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      return v.map((x) => x / n);
    };
    const y = [0.6, 0.2, 0.1, 0.05, 0.05];
    const yt = [0.3, 0.1, 0.4, 0.1, 0.1];
    const a = unit(Gt(yt));
    const b = unit(Gt(y));
    const viaJacobian = a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);
    expect(madObjective(p, y, yt)).toBeCloseTo(viaJacobian, 6);
  });

  it('stays on the simplex within ε for each distance; ε = 0 changes nothing; MAD-argmax keeps every top-1', async () => {
    const x = tf.randomUniform([64, 6], -1, 1, 'float32', 5);
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
    const y = victim.predict(x);
    const yv = y.dataSync() as Float32Array;
    const run = async (spec: string) => {
      const d = await prepared(spec, victim, new Rng(9));
      const r = d.defense.output!(y, { answered: 0, batch: 0, rng: new Rng(9), clientId: 't', input: x });
      const v = r.probs!.dataSync() as Float32Array;
      r.probs!.dispose();
      d.prepared.dispose();
      return v;
    };
    for (const [dist, eps] of [
      ['l1', 0.5],
      ['l2', 0.3],
      ['kl', 0.2],
    ] as const) {
      const out = await run(`mad:eps=${eps},ydist=${dist}`);
      expectDistributions(out);
      for (let i = 0; i < 64; i++) {
        const a = Array.from(yv.subarray(i * k, (i + 1) * k));
        const b = Array.from(out.subarray(i * k, (i + 1) * k));
        const d =
          dist === 'l1'
            ? a.reduce((s, v, j) => s + Math.abs(v - b[j]), 0)
            : dist === 'l2'
              ? Math.sqrt(a.reduce((s, v, j) => s + (v - b[j]) ** 2, 0))
              : a.reduce((s, v, j) => s + v * Math.log(v / b[j]), 0);
        expect(d).toBeLessThanOrEqual(eps + 1e-4);
        expect(d).toBeGreaterThan(0);
      }
    }
    expect(Array.from(await run('mad:eps=0'))).toEqual(Array.from(yv));
    const am = await run('poison:eps=1,argmax=true');
    expectDistributions(am);
    expect(Array.from(argmaxRows(am, k))).toEqual(Array.from(argmaxRows(yv, k)));
    // plain MAD at a large ε moves mass onto the extreme vertex and flips labels
    const flips = argmaxRows(await run('mad:eps=2'), k).filter((c, i) => c !== argmaxRows(yv, k)[i]).length;
    expect(flips).toBeGreaterThan(0);
    tf.dispose([x, y]);
    victim.dispose();
  });

  it('the extreme oracle picks the vertex of largest objective (checked by brute force), from a seeded surrogate', async () => {
    const x = tf.randomUniform([16, 6], -1, 1, 'float32', 6);
    const victim = tanhVictim(k, 4);
    const y = victim.predict(x);
    const yv = y.dataSync() as Float32Array;
    const d1 = await prepared('mad:eps=100', victim, new Rng(9));
    const r1 = d1.defense.output!(y, { answered: 0, batch: 0, rng: new Rng(9), clientId: 't', input: x });
    const d2 = await prepared('mad:eps=100', victim, new Rng(9));
    const r2 = d2.defense.output!(y, { answered: 0, batch: 0, rng: new Rng(9), clientId: 't', input: x });
    const out = r1.probs!.dataSync() as Float32Array;
    expect(Array.from(r2.probs!.dataSync())).toEqual(Array.from(out)); // same seed, same surrogate
    // ε large: ỹ is the chosen vertex itself; reconstruct the surrogate's posteriors to check the choice
    const p = surrogatePosteriors(x, k, 9);
    for (let i = 0; i < 16; i++) {
      const yi = Array.from(yv.subarray(i * k, (i + 1) * k));
      const pi = Array.from(p.subarray(i * k, (i + 1) * k));
      const objs = Array.from({ length: k }, (_, c) =>
        madObjective(
          pi,
          yi,
          Array.from({ length: k }, (_, j) => (j === c ? 1 : 0)),
        ),
      );
      const best = objs.indexOf(Math.max(...objs));
      expect(out[i * k + best]).toBeCloseTo(1, 5);
    }
    tf.dispose([x, y, r1.probs!, r2.probs!]);
    d1.prepared.dispose();
    d2.prepared.dispose();
    victim.dispose();
  });

  it.runIf(nativeBlas() !== null)(
    'MAD-argmax in C chooses exactly what the JavaScript search chooses (random, confident, tied and degenerate rows)',
    () => {
      const r = new Rng(12);
      for (const k of [2, 3, 7, 10]) {
        const n = 300;
        const y = new Float32Array(n * k);
        const p = new Float32Array(n * k);
        for (let i = 0; i < n; i++) {
          const kind = i % 4; // 0 random, 1 confident, 2 uniform y (ties), 3 p = y (no direction)
          let sy = 0;
          let sp = 0;
          for (let j = 0; j < k; j++) {
            y[i * k + j] = kind === 2 ? 1 : kind === 1 && j === i % k ? 50 : r.uniform(0, 1);
            p[i * k + j] = r.uniform(0, 1);
            sy += y[i * k + j];
            sp += p[i * k + j];
          }
          for (let j = 0; j < k; j++) {
            y[i * k + j] /= sy;
            p[i * k + j] = kind === 3 ? y[i * k + j] : p[i * k + j] / sp;
          }
        }
        const inC = madArgmaxSets(y, p, n, k, true)!;
        const inJs = madArgmaxSets(y, p, n, k, false)!;
        expect(Array.from(inC)).toEqual(Array.from(inJs));
        expect(new Set(inC).size).toBeGreaterThan(k > 2 ? 2 : 1); // not one answer for every row
      }
    },
  );

  it('the MAD-argmax oracle picks the class set of largest objective among all 2^(K−1) (checked by brute force)', async () => {
    const k = 7;
    const x = tf.randomUniform([40, 6], -1, 1, 'float32', 8);
    const victim = tanhVictim(k, 5);
    const y = victim.predict(x);
    const yv = y.dataSync() as Float32Array;
    // ε large: α = 1, so ỹ is the chosen candidate itself
    const d = await prepared('mad:eps=100,argmax=true', victim, new Rng(10));
    const r = d.defense.output!(y, { answered: 0, batch: 0, rng: new Rng(10), clientId: 't', input: x });
    const out = r.probs!.dataSync() as Float32Array;
    const p = surrogatePosteriors(x, k, 10);
    let sets = 0;
    for (let i = 0; i < 40; i++) {
      const yi = Array.from(yv.subarray(i * k, (i + 1) * k));
      const pi = Array.from(p.subarray(i * k, (i + 1) * k));
      const top = yi.indexOf(Math.max(...yi));
      let best: number[] = [];
      let bestObj = -Infinity;
      for (let bits = 0; bits < 1 << k; bits++) {
        if (!(bits & (1 << top))) continue;
        const m = [...Array(k).keys()].filter((j) => bits & (1 << j)).length;
        const c = Array.from({ length: k }, (_, j) => (bits & (1 << j) ? (j === top ? 1 + 1e-5 : 1) / (m + 1e-5) : 0));
        const o = madObjective(pi, yi, c);
        if (o > bestObj) [bestObj, best] = [o, c];
      }
      for (let j = 0; j < k; j++) expect(out[i * k + j]).toBeCloseTo(best[j], 5);
      sets += best.filter((v) => v > 0).length > 1 ? 1 : 0;
    }
    expect(sets).toBeGreaterThan(0); // not only singletons: the subset sums are exercised
    tf.dispose([x, y, r.probs!]);
    d.prepared.dispose();
    victim.dispose();
  });
});

describe('input-noise (Grana 2020)', () => {
  it('independent noise leaves eq-lr consistent; a correlated part keeps its parameter error bounded away from zero', async () => {
    const d = 5;
    const r = new Rng(31);
    const w = Float32Array.from({ length: d }, () => r.normal(0, 1));
    const v = new Net(
      {
        kind: 'logistic',
        inputShape: [d],
        numClasses: 2,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 1 }],
        head: 'sigmoid',
      },
      [w, Float32Array.of(0.2)],
    );
    const err = async (spec: string, multiple: number) => {
      const api = new LocalPredictionApi(v, [parseDefense(spec)], {
        rng: new Rng(1),
        domain,
        budget: multiple * (d + 1),
      });
      const res = await parseAttack(`eq-lr:multiple=${multiple}`).run(
        api,
        { inputShape: [d], numClasses: 2, domain, family: { kind: 'logistic' } },
        new Rng(2),
      );
      const e = paramError(v, res.surrogate)!.relL2;
      res.surrogate.dispose();
      return e;
    };
    const indepFew = await err('input-noise:sigma=0.1', 2);
    const indepMany = await err('input-noise:sigma=0.1', 400);
    const corrMany = await err('input-noise:sigma=0.1,corr=0.2', 400);
    expect(indepFew).toBeGreaterThan(0.01);
    expect(indepMany).toBeLessThan(indepFew / 3); // more queries average independent noise away
    // plim b̂ = b·(1 + c): relative error → |c| = 0.2 however many queries (the bias dominates the noise)
    expect(corrMany).toBeGreaterThan(0.15);
    expect(corrMany).toBeLessThan(0.25);
    v.dispose();
  });
});

describe('defenses against a Knockoff attacker (small scale)', () => {
  const d = 8;
  const k4 = 4;
  const r = new Rng(21);
  const w1 = Float32Array.from({ length: d * 16 }, () => r.normal(0, 1.2));
  const w2 = Float32Array.from({ length: 16 * k4 }, () => r.normal(0, 0.7));
  const pr = new Rng(5);
  const n = 3000;
  const pool = {
    name: 'gauss',
    x: Float32Array.from({ length: n * d }, () => Math.max(-1, Math.min(1, pr.normal(0, 0.6)))),
    y: new Int32Array(n),
    n,
    numClasses: 1,
    classNames: ['all'],
  };

  /** mean agreement (2 seeds) of a 300-query Knockoff surrogate with the victim, on uniform inputs */
  async function attackerAgreement(spec: string, labels = 'auto'): Promise<number> {
    const v = new Net(
      {
        kind: 'mlp',
        inputShape: [d],
        numClasses: k4,
        layers: [{ type: 'flatten' }, { type: 'dense', units: 16, activation: 'tanh' }, { type: 'dense', units: k4 }],
        head: 'softmax',
      },
      [w1, new Float32Array(16), w2, new Float32Array(k4)],
    );
    const unif = uniformInputs(new Rng(99), 4000, d, domain);
    let sum = 0;
    for (const seed of [1, 2]) {
      // the defender's setup stream is the API's first defense stream (where the proxy used to be forked from lazily)
      const def = await prepared(spec, v, new Rng(1).fork());
      const api = new LocalPredictionApi(v, [def.defense], { rng: new Rng(1), domain, budget: 300 });
      const res = await parseAttack(`knockoff:arch=mlp,epochs=100,lr=0.03,batch=32,labels=${labels}`).run(
        api,
        { inputShape: [d], numClasses: k4, domain, pool },
        new Rng(seed),
      );
      sum += (await fidelity(v, res.surrogate, unif, 4000)).agreement;
      res.surrogate.dispose();
      def.prepared.dispose();
    }
    v.dispose();
    return sum / 2;
  }

  it('MAD-argmax: a larger ε lowers the attacker’s agreement (answers keep the victim’s top-1); an argmax attacker falls back to the labels-only level', async () => {
    const none = await attackerAgreement('none');
    const e02 = await attackerAgreement('mad:eps=0.2,argmax=true');
    const e05 = await attackerAgreement('mad:eps=0.5,argmax=true');
    const e1 = await attackerAgreement('mad:eps=1,argmax=true');
    expect(e02).toBeLessThan(none - 0.03);
    expect(e05).toBeLessThan(e02 - 0.03);
    expect(e1).toBeLessThan(e05 - 0.1);
    const labelsOnly = await attackerAgreement('top1');
    const argmaxAttacker = await attackerAgreement('mad:eps=1,argmax=true', 'top1');
    expect(argmaxAttacker).toBeCloseTo(labelsOnly, 6);
    expect(argmaxAttacker).toBeGreaterThan(e1 + 0.1);
  });

  it('reverse sigmoid: a larger β lowers the attacker’s agreement', async () => {
    const none = await attackerAgreement('none');
    const b02 = await attackerAgreement('reverse-sigmoid:beta=0.2');
    const b08 = await attackerAgreement('reverse-sigmoid:beta=0.8');
    expect(b02).toBeLessThan(none - 0.02);
    expect(b08).toBeLessThan(b02 - 0.02);
  });
});
