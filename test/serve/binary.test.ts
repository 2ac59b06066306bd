/**
 * Issue 18, item 4: the binary wire of `mse serve`. POST /v1/predict takes raw little-endian float32
 * (application/octet-stream) and, asked with Accept: application/octet-stream, answers raw float32
 * probabilities or int32 labels; everything after the body (auth, rate, budget, audit, defenses,
 * detection, metrics) is the JSON path's, errors stay JSON, and proof-of-work stays JSON-only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import * as tf from '@tensorflow/tfjs';
import { HttpPredictionApi } from '../../src/api/http-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { parseDefense, prepareDefense } from '../../src/defenses/registry.js';
import { BudgetExhaustedError, DetectedError, MseError } from '../../src/errors.js';
import type { Net } from '../../src/models/net.js';
import { createServer } from '../../src/serve/server.js';
import { toyBlobs, trainedSoftmax } from '../testing/fixtures.js';

const ds = toyBlobs(600);
const domain = ds.domain;
const OCTET = 'application/octet-stream';
let victim: Net;

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  victim = await trainedSoftmax(ds, 5);
});
afterAll(() => victim.dispose());

const keys = [
  { key: 'k-admin', id: 'ops', admin: true },
  { key: 'k-alice', id: 'alice', budget: 10 },
  { key: 'k-bob', id: 'bob' },
  { key: 'k-slow', id: 'slow', ratePerSec: 5 },
];
const auth = (k: string) => ({ authorization: `Bearer ${k}` });
const row = (i: number) => Array.from(ds.test.x.subarray(i * 4, (i + 1) * 4));
const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i % 100));
/** Rows as the wire's little-endian float32 bytes. */
const bytes = (r: number[][]) => Buffer.from(Float32Array.from(r.flat()).buffer);

type Injected = Awaited<ReturnType<FastifyInstance['inject']>>;
const predictJson = (app: FastifyInstance, inputs: number[][], key = 'k-bob') =>
  app.inject({ method: 'POST', url: '/v1/predict', headers: auth(key), payload: { inputs } });
const predictBinary = (
  app: FastifyInstance,
  payload: Buffer | string,
  key = 'k-bob',
  extra: Record<string, string> = { accept: OCTET },
) =>
  app.inject({
    method: 'POST',
    url: '/v1/predict',
    headers: { 'content-type': OCTET, ...auth(key), ...extra },
    payload,
  });
/** A refusal: JSON on one line, whatever was asked, with the expected status and error. */
function refusal(r: Injected, status: number, error: string): { error: string; message: string } {
  expect(r.statusCode, r.body).toBe(status);
  expect(String(r.headers['content-type'])).toMatch(/^application\/json/);
  expect(r.body).not.toContain('\n');
  const body = r.json() as { error: string; message: string };
  expect(body.error).toBe(error);
  expect(body.message).not.toContain('\n');
  return body;
}
const floats = (r: Injected) => {
  const b = r.rawPayload;
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const ints = (r: Injected) => {
  const b = r.rawPayload;
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

describe('mse serve: the binary wire', () => {
  let app: FastifyInstance;
  let labelsApp: FastifyInstance;
  beforeAll(async () => {
    app = await createServer({ victim, defenses: [], domain, seed: 1, keys, maxBatch: 16, bodyLimit: 64 * 1024 });
    labelsApp = await createServer({ victim, defenses: [parseDefense('top1')], domain, seed: 1, keys, maxBatch: 16 });
  });
  afterAll(async () => {
    await app.close();
    await labelsApp.close();
  });

  it('/v1/info says binary: true', async () => {
    for (const headers of [{}, auth('k-slow')]) {
      const info = (await app.inject({ url: '/v1/info', headers })).json() as Record<string, unknown>;
      expect(info.binary).toBe(true);
      expect(info).toMatchObject({ inputShape: [4], numClasses: 3, reveals: 'probs', pow: { required: false } });
    }
    expect(
      ((await app.inject({ url: '/v1/info', headers: auth('k-slow') })).json() as { ratePerSec: number }).ratePerSec,
    ).toBe(5);
  });

  it('binary and JSON give the same probabilities, and the same labels, for the same inputs', async () => {
    const inputs = rows(7);
    const json = predictJson(app, inputs);
    const bin = predictBinary(app, bytes(inputs));
    const [j, b] = await Promise.all([json, bin]);
    expect(j.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    expect(b.headers['content-type']).toBe(OCTET);
    expect(b.headers['x-mse-answer']).toBe('probs');
    expect(b.headers['x-mse-shape']).toBe('7,3');
    expect(Array.from(floats(b))).toEqual((j.json() as { probs: number[][] }).probs.flat());
    // a binary body with a JSON answer, and a JSON body with a binary answer
    const bj = await predictBinary(app, bytes(inputs), 'k-bob', {});
    expect(bj.json()).toEqual(j.json());
    const jb = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { ...auth('k-bob'), accept: `${OCTET}, application/json;q=0.5` },
      payload: { inputs },
    });
    expect(Array.from(floats(jb))).toEqual(Array.from(floats(b)));

    const lj = await predictJson(labelsApp, inputs);
    const lb = await predictBinary(labelsApp, bytes(inputs));
    expect(lb.headers['x-mse-answer']).toBe('labels');
    expect(lb.headers['x-mse-shape']).toBe('7');
    expect(lb.rawPayload.byteLength).toBe(7 * 4);
    expect(Array.from(ints(lb))).toEqual((lj.json() as { labels: number[] }).labels);
  });

  it('the HTTP client uses binary against a server that offers it, JSON when told to, with identical answers', async () => {
    for (const server of [app, labelsApp]) {
      const seen: string[] = [];
      const s = await createServer({
        victim,
        defenses: server === app ? [] : [parseDefense('top1')],
        domain,
        seed: 1,
        keys,
        maxBatch: 16,
      });
      s.addHook('onRequest', async (req) => {
        if (req.url === '/v1/predict') seen.push(`${req.headers['content-type']} → ${req.headers.accept ?? ''}`);
      });
      try {
        const address = await s.listen({ port: 0, host: '127.0.0.1' });
        const bin = await HttpPredictionApi.connect(address, { key: 'k-bob' });
        const json = await HttpPredictionApi.connect(address, { key: 'k-bob', wire: 'json' });
        expect(bin.wire).toBe('binary');
        expect(json.wire).toBe('json');
        // 40 inputs: three chunks of the server's max batch of 16
        const x = tf.tensor2d(rows(40), [40, 4]);
        const a = await bin.query(x);
        expect(seen).toHaveLength(3);
        expect(new Set(seen)).toEqual(new Set([`${OCTET} → ${OCTET}`]));
        const b = await json.query(x);
        expect(seen.slice(3)).toHaveLength(3);
        expect(new Set(seen.slice(3))).toEqual(new Set(['application/json → */*']));
        if (server === app) {
          expect(a.probs!.shape).toEqual([40, 3]);
          expect(Array.from(await a.probs!.data())).toEqual(Array.from(await b.probs!.data()));
        } else {
          expect(a.probs).toBeUndefined();
          expect(Array.from(await a.labels!.data())).toEqual(Array.from(await b.labels!.data()));
        }
        expect(bin.ledger.queries).toBe(40);
        tf.dispose([x, a.probs ?? [], a.labels ?? [], b.probs ?? [], b.labels ?? []]);
      } finally {
        await s.close();
      }
    }
  });

  it('hostile binary bodies get one-line JSON errors with the right status, are never charged, and the server stays healthy', async () => {
    const before = (await app.inject({ url: '/metrics', headers: auth('k-admin') })).json() as {
      clients: Record<string, number>;
    };
    const nan = bytes(rows(2));
    nan.writeFloatLE(NaN, 4);
    const inf = bytes(rows(2));
    inf.writeFloatLE(-Infinity, 28);
    // length not a multiple of one row (16 bytes), empty, non-finite values
    for (const [payload, what] of [
      [Buffer.alloc(5), /multiple of 16 bytes\), got 5 bytes/],
      [Buffer.alloc(20), /multiple of 16 bytes\), got 20 bytes/],
      [Buffer.alloc(0), /got 0 bytes/],
      [nan, /finite/],
      [inf, /finite/],
    ] as const) {
      for (const accept of [{ accept: OCTET }, {}] as Record<string, string>[])
        expect(refusal(await predictBinary(app, payload, 'k-bob', accept), 400, 'bad-request').message).toMatch(what);
    }
    // one row over the server's max batch: refused unread, with the batch to send
    const over = refusal(await predictBinary(app, bytes(rows(17))), 413, 'batch-too-large');
    expect(over).toMatchObject({ maxBatch: 16 });
    expect(over.message).toMatch(/at most 16 inputs/);
    // over one key's rate: the same 413 as JSON
    expect(refusal(await predictBinary(app, bytes(rows(8)), 'k-slow'), 413, 'batch-too-large')).toMatchObject({
      maxBatch: 5,
    });
    // no key, a wrong key
    refusal(await predictBinary(app, bytes(rows(1)), 'nobody'), 401, 'unauthorized');
    // wrong content types
    for (const type of ['image/png', 'application/x-www-form-urlencoded'])
      refusal(
        await app.inject({
          method: 'POST',
          url: '/v1/predict',
          headers: { 'content-type': type, ...auth('k-bob'), accept: OCTET },
          payload: bytes(rows(1)),
        }),
        415,
        'unsupported-media-type',
      );
    refusal(
      await app.inject({
        method: 'POST',
        url: '/v1/predict',
        headers: { 'content-type': 'text/plain', ...auth('k-bob') },
        payload: bytes(rows(1)),
      }),
      400,
      'bad-request',
    );
    // a binary body elsewhere is not a predict
    refusal(
      await app.inject({
        method: 'POST',
        url: '/v1/challenge',
        headers: { 'content-type': OCTET },
        payload: bytes(rows(1)),
      }),
      400,
      'bad-request',
    );
    const after = (await app.inject({ url: '/metrics', headers: auth('k-admin') })).json() as {
      clients: Record<string, number>;
    };
    expect(after.clients).toEqual(before.clients);
    expect((await predictBinary(app, bytes(rows(2)))).statusCode).toBe(200);
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ ok: true });
  });

  it('seeded random binary bodies: no 5xx, JSON errors on one line, exactly the answered rows charged', async () => {
    const s = await createServer({ victim, defenses: [], domain, seed: 1, keys, maxBatch: 8 });
    const r = new Rng(18);
    const charged = new Map<string, number>();
    try {
      for (let i = 0; i < 300; i++) {
        // mostly whole rows (some over the max batch), sometimes ragged; some non-finite or huge values
        const len = r.next() < 0.7 ? 16 * r.int(11) : r.int(200);
        const body = Buffer.from(Array.from({ length: len }, () => r.int(256)));
        for (let j = 0; j + 4 <= len; j += 4)
          body.writeFloatLE(r.next() < 0.97 ? r.uniform(-2, 2) : [NaN, Infinity, -Infinity, 3e38, -0][r.int(5)], j);
        const key = ['k-bob', 'k-slow', 'k-alice', 'nobody'][r.int(4)];
        const accept = [OCTET, 'application/json', `${OCTET};q=0`, '*/*', ''][r.int(5)];
        const res = await predictBinary(s, body, key, accept ? { accept } : {});
        expect(res.statusCode, `${i}: ${len} bytes → ${res.body.slice(0, 200)}`).toBeLessThan(500);
        if (res.statusCode === 200) {
          const n = len / 16;
          if (res.headers['content-type'] === OCTET) {
            expect(accept).toBe(OCTET);
            expect(res.headers['x-mse-shape']).toBe(`${n},3`);
            expect(res.rawPayload.byteLength).toBe(n * 12);
          } else expect((res.json() as { probs: number[][] }).probs).toHaveLength(n);
          const id = { 'k-bob': 'bob', 'k-slow': 'slow', 'k-alice': 'alice' }[key]!;
          charged.set(id, (charged.get(id) ?? 0) + n);
        } else {
          expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
          expect(res.body).not.toContain('\n');
          expect(Object.keys(res.json() as object)).toContain('error');
        }
      }
      const m = (await s.inject({ url: '/metrics', headers: auth('k-admin') })).json() as {
        clients: Record<string, number>;
      };
      for (const id of ['bob', 'slow', 'alice']) expect(m.clients[id] ?? 0, id).toBe(charged.get(id) ?? 0);
      expect(charged.get('bob')).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });

  it('a client declaring gigabytes is refused before it sends them', async () => {
    const s = await createServer({ victim, defenses: [], domain, seed: 1, maxBatch: 16 });
    try {
      const address = new URL(await s.listen({ port: 0, host: '127.0.0.1' }));
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          {
            host: address.hostname,
            port: address.port,
            method: 'POST',
            path: '/v1/predict',
            headers: { 'content-type': OCTET, 'content-length': String(2 ** 31) },
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.write(Buffer.alloc(64));
      });
      expect(answer.status).toBe(413);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'batch-too-large', maxBatch: 16 });
    } finally {
      await s.close();
    }
  });

  it('budget exhaustion over binary: 429 with what is left, and a BudgetExhaustedError in the client', async () => {
    refusal(await predictBinary(app, bytes(rows(11)), 'k-alice'), 429, 'budget-exhausted');
    expect((await predictBinary(app, bytes(rows(6)), 'k-alice')).statusCode).toBe(200);
    expect(refusal(await predictBinary(app, bytes(rows(6)), 'k-alice'), 429, 'budget-exhausted')).toMatchObject({
      remaining: 4,
    });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const client = await HttpPredictionApi.connect(address, { key: 'k-alice' });
    expect(client.wire).toBe('binary');
    const x = tf.tensor2d(rows(4), [4, 4]);
    const r = await client.query(x);
    expect(r.probs!.shape).toEqual([4, 3]);
    await expect(client.query(x)).rejects.toBeInstanceOf(BudgetExhaustedError);
    tf.dispose([x, r.probs!]);
  });
});

describe('mse serve: a victim that answers NaN', () => {
  it('JSON writes it as null (as before the response schema), binary as NaN bytes; the client refuses both in one line', async () => {
    const broken = {
      kind: 'net',
      inputShape: [4],
      numClasses: 3,
      predict: (x: tf.Tensor) => tf.fill([x.shape[0], 3], NaN) as tf.Tensor2D,
      serialize: () => ({ format: 'mse-model/1', kind: 'net', inputShape: [4], numClasses: 3 }),
      dispose: () => undefined,
    } as unknown as Net;
    const app = await createServer({ victim: broken, defenses: [], domain, seed: 1 });
    try {
      const j = await app.inject({ method: 'POST', url: '/v1/predict', payload: { inputs: rows(1) } });
      expect(j.statusCode).toBe(200);
      expect(j.body).toBe('{"probs":[[null,null,null]]}');
      const b = await predictBinary(app, bytes(rows(1)));
      expect(b.statusCode).toBe(200);
      expect(Array.from(floats(b)).every(Number.isNaN)).toBe(true);
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      for (const wire of ['auto', 'json'] as const) {
        const client = await HttpPredictionApi.connect(address, { wire });
        const x = tf.tensor2d(rows(2), [2, 4]);
        const err = await client.query(x).catch((e: unknown) => e);
        x.dispose();
        expect(err).toBeInstanceOf(MseError);
        expect((err as Error).message).toMatch(/not an mse prediction: probs must be finite numbers$/);
      }
    } finally {
      await app.close();
    }
  });
});

describe('mse serve: binary with a detector, an audit log and proof-of-work', () => {
  it('detection over binary: 403 detected, for good, a DetectedError in the client, and the audit log has it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-binary-'));
    const log = path.join(dir, 'audit.jsonl');
    const app = await createServer({ victim, defenses: [parseDefense('prada')], domain, seed: 1, keys, auditLog: log });
    try {
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      const client = await HttpPredictionApi.connect(address, { key: 'k-bob' });
      expect(client.wire).toBe('binary');
      // near-duplicates of three points: their minimum distances are far from normal
      const dup = (i: number) => [((i % 3) - 1) * 0.5 + (i % 7) * 1e-3, ((i % 3) - 1) * 0.5, 0.1, -0.1];
      let err: unknown;
      for (let s = 0; s < 1000 && err === undefined; s += 50) {
        const x = tf.tensor2d(
          Array.from({ length: 50 }, (_, i) => dup(s + i)),
          [50, 4],
        );
        try {
          const r = await client.query(x);
          tf.dispose([r.probs ?? [], r.labels ?? []]);
        } catch (e) {
          err = e;
        } finally {
          x.dispose();
        }
      }
      expect(err).toBeInstanceOf(DetectedError);
      expect((err as Error).message).toMatch(/extraction detected after \d+ queries \(prada: /);
      expect(client.ledger.detectedAt).toBeGreaterThanOrEqual(client.ledger.queries);
      expect(client.ledger.detectedAt).toBeLessThan(client.ledger.queries + 50);
      const again = refusal(await predictBinary(app, bytes(rows(1))), 403, 'detected');
      expect(again).toMatchObject({ detectedAt: client.ledger.detectedAt });
      expect((await predictBinary(app, bytes(rows(2)), 'k-slow')).statusCode).toBe(200);
    } finally {
      await app.close();
    }
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[1]).toMatchObject({ route: 'POST /v1/predict', client: 'bob', status: 200, n: 50 });
    const alarms = lines.filter((l) => l.reason === 'detected');
    expect(alarms.length).toBeGreaterThanOrEqual(2);
    expect(alarms[0]).toMatchObject({ client: 'bob', status: 403 });
    expect(String(alarms[0].alarm)).toMatch(/^prada: /);
    expect(lines.at(-1)).toMatchObject({ client: 'slow', status: 200, n: 2 });
  });

  it('proof-of-work is JSON-only: a binary predict is refused clearly, and the client keeps to JSON', async () => {
    const { defense: pow } = await prepareDefense('pow:k=50,calib=60,maxbits=2,unit=0.01', {
      victim,
      train: ds.train,
      heldOut: ds.test,
      rng: new Rng(1),
    });
    const app = await createServer({ victim, defenses: [pow], domain, seed: 1, keys, pow: true });
    try {
      const r = refusal(await predictBinary(app, bytes(rows(2))), 415, 'unsupported-media-type');
      expect(r.message).toMatch(/proof-of-work.*JSON/);
      const info = (await app.inject({ url: '/v1/info' })).json() as { binary: boolean; pow: { required: boolean } };
      expect(info).toMatchObject({ binary: true, pow: { required: true } });
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      const client = await HttpPredictionApi.connect(address, { key: 'k-bob' });
      expect(client.wire).toBe('json');
      const x = tf.tensor2d(rows(3), [3, 4]);
      const a = await client.query(x);
      expect(a.probs!.shape).toEqual([3, 3]);
      tf.dispose([x, a.probs!]);
    } finally {
      await app.close();
    }
  });
});
