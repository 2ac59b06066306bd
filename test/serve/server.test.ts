import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { FastifyInstance } from 'fastify';
import { HttpPredictionApi } from '../../src/api/http-api.js';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { parseAttack } from '../../src/attacks/registry.js';
import type { Pool } from '../../src/attacks/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { solve, verify } from '../../src/protocol/hashcash.js';
import { parseDefense, prepareDefense } from '../../src/defenses/registry.js';
import { BudgetExhaustedError } from '../../src/errors.js';
import { probsOf, uniformInputs } from '../../src/metrics/agreement.js';
import type { Net } from '../../src/models/net.js';
import { createServer, digestOf } from '../../src/serve/server.js';
import { toyBlobs, trainedSoftmax } from '../testing/fixtures.js';

const ds = toyBlobs(600);
const domain = ds.domain;
let victim: Net;

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  victim = await trainedSoftmax(ds, 10);
});
afterAll(() => victim.dispose());

const keys = [
  { key: 'k-alice', id: 'alice', budget: 50 },
  { key: 'k-bob', id: 'bob' },
  { key: 'k-slow', id: 'slow', ratePerSec: 5 },
  { key: 'k-admin', id: 'ops', admin: true },
];
const row = (i: number) => Array.from(ds.test.x.subarray(i * 4, (i + 1) * 4));
const auth = (k: string) => ({ authorization: `Bearer ${k}` });

describe('mse serve: rejects bad requests and stays healthy', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await createServer({ victim, defenses: [], domain, seed: 1, keys, bodyLimit: 4096, maxBatch: 16 });
  });
  afterAll(() => app.close());

  it('answers valid requests with probabilities and counts them per client', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: auth('k-bob'),
      payload: { inputs: [row(0), row(1)] },
    });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { probs: number[][] };
    expect(body.probs).toHaveLength(2);
    expect(body.probs[0].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const m = (await app.inject({ url: '/metrics', headers: auth('k-admin') })).json() as {
      served: number;
      clients: Record<string, number>;
    };
    expect(m.clients.bob).toBe(2);
  });

  it('missing or unknown keys, malformed JSON, wrong shapes, non-finite values, oversized bodies, over-budget keys', async () => {
    const post = (payload: unknown, headers: Record<string, string> = auth('k-bob')) =>
      app.inject({
        method: 'POST',
        url: '/v1/predict',
        headers: { 'content-type': 'application/json', ...headers },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
    expect((await post({ inputs: [row(0)] }, {})).statusCode).toBe(401);
    expect((await post({ inputs: [row(0)] }, auth('k-mallory'))).statusCode).toBe(401);
    expect((await post('{"inputs": [[1, 2,')).statusCode).toBe(400);
    expect((await post({ inputs: [[1, 2, 3]] })).statusCode).toBe(400);
    expect((await post({ inputs: [[1, 2, 3, 'x']] })).statusCode).toBe(400);
    expect((await post({ inputs: [] })).statusCode).toBe(400);
    expect((await post({ inputs: [row(0)], extra: 1 })).statusCode).toBe(400);
    expect((await post({ inputs: [['1', 2, 3, 4]] })).statusCode).toBe(400); // no type coercion
    expect((await post('{"inputs": [[1e999, 0, 0, 0]]}')).statusCode).toBe(400); // parses to Infinity
    expect((await post({ inputs: Array.from({ length: 17 }, () => row(0)) })).statusCode).toBe(400); // over maxBatch
    expect((await post(`{"inputs": [[0, 0, 0, 0]]${' '.repeat(5000)}}`)).statusCode).toBe(413); // over the 4 KiB body limit
    // alice may ask 50 queries
    expect((await post({ inputs: Array.from({ length: 16 }, (_, i) => row(i)) }, auth('k-alice'))).statusCode).toBe(
      200,
    );
    expect((await post({ inputs: Array.from({ length: 16 }, (_, i) => row(i)) }, auth('k-alice'))).statusCode).toBe(
      200,
    );
    expect((await post({ inputs: Array.from({ length: 16 }, (_, i) => row(i)) }, auth('k-alice'))).statusCode).toBe(
      200,
    );
    const over = await post({ inputs: Array.from({ length: 16 }, (_, i) => row(i)) }, auth('k-alice'));
    expect(over.statusCode).toBe(429);
    expect(over.json()).toMatchObject({ error: 'budget-exhausted', remaining: 2 });
    // a rate-limited key gets 429 with retry-after
    expect((await post({ inputs: [row(0), row(1), row(2), row(3), row(4)] }, auth('k-slow'))).statusCode).toBe(200);
    const fast = await post({ inputs: [row(0), row(1), row(2)] }, auth('k-slow'));
    expect(fast.statusCode).toBe(429);
    expect(Number(fast.headers['retry-after'])).toBeGreaterThan(0);
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ ok: true });
  });
});

describe('mse serve: proof-of-work', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    const { defense: pow } = await prepareDefense('pow:k=50,calib=60,maxbits=6,unit=0.01', {
      victim,
      train: ds.train,
      heldOut: ds.test,
      rng: new Rng(1),
    });
    app = await createServer({ victim, defenses: [pow], domain, seed: 1, keys, pow: true, challengeTtlMs: 2_000 });
  });
  afterAll(() => app.close());

  const challenge = async (inputs: number[][], key = 'k-bob') =>
    (
      await app.inject({
        method: 'POST',
        url: '/v1/challenge',
        headers: auth(key),
        payload: { digest: digestOf(inputs) },
      })
    ).json() as { stamp: string; bits: number };
  const predict = (inputs: number[][], pow?: { stamp: string; counter: string }, key = 'k-bob') =>
    app.inject({ method: 'POST', url: '/v1/predict', headers: auth(key), payload: pow ? { inputs, pow } : { inputs } });

  it('requires a valid, unused, unexpired proof bound to the client and the inputs', async () => {
    const inputs = [row(0), row(1)];
    expect((await predict(inputs)).statusCode).toBe(402);
    const ch = await challenge(inputs);
    expect(ch.bits).toBeGreaterThanOrEqual(0);
    const { counter } = solve(ch);
    // forged: a counter that does not solve it (bits ≥ 1 makes most counters fail; find one)
    if (ch.bits > 0) {
      let bad = 0;
      while (verify({ ...ch, expires: Date.now() + 1e6 }, bad.toString(36)).ok) bad++;
      expect((await predict(inputs, { stamp: ch.stamp, counter: bad.toString(36) })).statusCode).toBe(403);
    }
    expect((await predict(inputs, { stamp: 'forged:stamp', counter })).statusCode).toBe(403);
    expect((await predict([row(2), row(3)], { stamp: ch.stamp, counter })).statusCode).toBe(403); // other inputs
    expect((await predict(inputs, { stamp: ch.stamp, counter }, 'k-alice')).statusCode).toBe(403); // other client
    const ok = await predict(inputs, { stamp: ch.stamp, counter });
    expect(ok.statusCode).toBe(200);
    const replay = await predict(inputs, { stamp: ch.stamp, counter });
    expect(replay.statusCode).toBe(403);
    expect(replay.json().message).toMatch(/already used/);
    const stale = await challenge(inputs);
    await new Promise((r) => setTimeout(r, 2_100));
    const late = await predict(inputs, { stamp: stale.stamp, counter: solve(stale).counter });
    expect(late.statusCode).toBe(403);
    expect(late.json().message).toMatch(/expired/);
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('mse serve: audit log', () => {
  it('appends one JSON line per answered request and rotates by size', async () => {
    const { mkdtempSync, readdirSync, readFileSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-audit-'));
    const log = path.join(dir, 'audit.jsonl');
    const app = await createServer({ victim, defenses: [], domain, seed: 1, keys, auditLog: log, auditMaxBytes: 300 });
    for (let i = 0; i < 8; i++)
      expect(
        (
          await app.inject({
            method: 'POST',
            url: '/v1/predict',
            headers: auth('k-bob'),
            payload: { inputs: [row(i)] },
          })
        ).statusCode,
      ).toBe(200);
    await app.close();
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThan(1); // rotated at 300 bytes
    const lines = files.flatMap((f) => readFileSync(path.join(dir, f), 'utf8').trim().split('\n'));
    expect(lines).toHaveLength(8);
    expect(JSON.parse(lines[0])).toMatchObject({ client: 'bob', n: 1, status: 200 });
  });
});

describe('over HTTP', () => {
  it('200 concurrent clients: no errors and no lost accounting', async () => {
    const many = Array.from({ length: 200 }, (_, i) => ({ key: `key-${i}`, id: `c${i}` }));
    const app = await createServer({
      victim,
      defenses: [],
      domain,
      seed: 1,
      keys: [...many, { key: 'k-admin', id: 'ops', admin: true }],
    });
    const addr = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const results = await Promise.all(
        many.map(async (k, i) => {
          let ok = 0;
          for (let r = 0; r < 3; r++) {
            const res = await fetch(`${addr}/v1/predict`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: `Bearer ${k.key}` },
              body: JSON.stringify({ inputs: [row(i % 100), row((i + 1) % 100)] }),
            });
            if (res.status === 200) ok += 2;
            await res.arrayBuffer();
          }
          return ok;
        }),
      );
      const sent = results.reduce((a, b) => a + b, 0);
      expect(sent).toBe(200 * 3 * 2);
      const m = (await (await fetch(`${addr}/metrics`, { headers: auth('k-admin') })).json()) as {
        served: number;
        clients: Record<string, number>;
      };
      expect(m.served).toBe(sent);
      expect(Object.values(m.clients).reduce((a, b) => a + b, 0)).toBe(m.served);
    } finally {
      await app.close();
    }
  });

  it('a Knockoff attack through HttpPredictionApi (with PoW) gets the answers and metrics of the in-process run', async () => {
    const { defense: pow } = await prepareDefense('pow:k=50,calib=60,maxbits=4,unit=0.001', {
      victim,
      train: ds.train,
      heldOut: ds.test,
      rng: new Rng(1),
    });
    const app = await createServer({ victim, defenses: [pow], domain, seed: 1, pow: true, maxBatch: 64 });
    const addr = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const r = new Rng(5);
      const pool: Pool = {
        name: 'box',
        x: Float32Array.from({ length: 400 * 4 }, () => r.uniform(-1, 1)),
        y: new Int32Array(400),
        n: 400,
        numClasses: 1,
        classNames: ['all'],
      };
      const know = { inputShape: [4], numClasses: ds.numClasses, domain, pool };
      const attack = 'knockoff:arch=softmax,epochs=20,lr=0.05';
      const remote = await HttpPredictionApi.connect(addr, { budget: 200 });
      const viaHttp = await parseAttack(attack).run(remote, know, new Rng(3));
      const local = new LocalPredictionApi(victim, [], { rng: new Rng(1), domain, budget: 200 });
      const inProcess = await parseAttack(attack).run(local, know, new Rng(3));
      expect(remote.ledger.queries).toBe(200);
      expect(remote.ledger.powSeconds).toBeGreaterThan(0);
      const u = uniformInputs(new Rng(9), 500, 4, domain);
      const a = await probsOf(viaHttp.surrogate, u, 500);
      const b = await probsOf(inProcess.surrogate, u, 500);
      expect(Array.from(a)).toEqual(Array.from(b)); // float32 answers survive JSON exactly
      await expect(remote.query(tf.zeros([1, 4]))).rejects.toThrow(BudgetExhaustedError);
      viaHttp.surrogate.dispose();
      inProcess.surrogate.dispose();
    } finally {
      await app.close();
    }
  });
});
