/**
 * Issue 13, items 8–12: the server's keys, challenges, /metrics, batch-vs-rate and audit log.
 * Each block fails on the server as it was before the fix.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import * as tf from '@tensorflow/tfjs';
import { HttpPredictionApi } from '../../src/api/http-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { solve } from '../../src/protocol/hashcash.js';
import { parseDefense, prepareDefense } from '../../src/defenses/registry.js';
import { MseError } from '../../src/errors.js';
import type { Net } from '../../src/models/net.js';
import { createServer, digestOf } from '../../src/serve/server.js';
import { toyBlobs, trainedSoftmax } from '../testing/fixtures.js';

const ds = toyBlobs(600);
const domain = ds.domain;
let victim: Net;

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  victim = await trainedSoftmax(ds, 5);
});
afterAll(() => victim.dispose());

const row = (i: number) => Array.from(ds.test.x.subarray(i * 4, (i + 1) * 4));
const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i % 100));
const auth = (k: string) => ({ authorization: `Bearer ${k}` });
const keys = [
  { key: 'k-admin', id: 'ops', admin: true },
  { key: 'k-alice', id: 'alice', budget: 3 },
  { key: 'k-bob', id: 'bob' },
  { key: 'k-slow', id: 'slow', ratePerSec: 5 },
  { key: 'k-trickle', id: 'trickle', ratePerSec: 0.5 },
];
interface Metrics {
  served: number;
  clients: Record<string, number>;
  challenges: { outstanding: number; used: number };
}
const metrics = async (app: FastifyInstance) =>
  (await app.inject({ url: '/metrics', headers: auth('k-admin') })).json() as Metrics;

describe('item 8: createServer refuses duplicate keys and ids', () => {
  it('two entries with one id, or one key twice, are refused', async () => {
    await expect(
      createServer({
        victim,
        defenses: [],
        domain,
        seed: 1,
        keys: [
          { key: 'a', id: 'x', budget: 2 },
          { key: 'b', id: 'x' },
        ],
      }),
    ).rejects.toThrow(MseError);
    await expect(
      createServer({
        victim,
        defenses: [],
        domain,
        seed: 1,
        keys: [
          { key: 'a', id: 'x', budget: 2 },
          { key: 'b', id: 'x' },
        ],
      }),
    ).rejects.toThrow(/duplicate id 'x'/);
    await expect(
      createServer({
        victim,
        defenses: [],
        domain,
        seed: 1,
        keys: [
          { key: 'a', id: 'x' },
          { key: 'a', id: 'y' },
        ],
      }),
    ).rejects.toThrow(/duplicate key/);
    await expect(
      createServer({ victim, defenses: [], domain, seed: 1, keys: [{ key: 'a', id: 'x', budget: -1 }] }),
    ).rejects.toThrow(/budget/);
  });
});

describe('items 10 and 11: /metrics needs an admin key; a batch over the rate is refused with the largest one allowed', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await createServer({ victim, defenses: [], domain, seed: 1, keys, maxBatch: 16 });
  });
  afterAll(() => app.close());

  it('/metrics: 401 without a key, 403 with a client key, 200 with the admin key', async () => {
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/metrics', headers: auth('k-nobody') })).statusCode).toBe(401);
    const bob = await app.inject({ url: '/metrics', headers: auth('k-bob') });
    expect(bob.statusCode).toBe(403);
    expect(bob.body).not.toContain('alice');
    expect(
      (await app.inject({ method: 'POST', url: '/v1/predict', headers: auth('k-bob'), payload: { inputs: rows(2) } }))
        .statusCode,
    ).toBe(200);
    const ok = await app.inject({ url: '/metrics', headers: auth('k-admin') });
    expect(ok.statusCode).toBe(200);
    expect((ok.json() as Metrics).clients.bob).toBe(2);
  });

  it('an open server serves /metrics to loopback clients only', async () => {
    const open = await createServer({ victim, defenses: [], domain, seed: 1 });
    try {
      expect((await open.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).statusCode).toBe(200);
      expect((await open.inject({ url: '/metrics', remoteAddress: '::1' })).statusCode).toBe(200);
      expect((await open.inject({ url: '/metrics', remoteAddress: '10.1.2.3' })).statusCode).toBe(403);
    } finally {
      await open.close();
    }
  });

  it('a batch larger than the key can ever afford is 413 with the largest allowed, not a 429 to wait for', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: auth('k-slow'),
      payload: { inputs: rows(12) },
    });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toMatchObject({ error: 'batch-too-large', maxBatch: 5 });
    expect(r.json().message).toMatch(/at most 5/);
    expect(r.headers['retry-after']).toBeUndefined();
    // /v1/info tells each key its effective batch: min(maxBatch, floor(rate)), and at least 1
    expect(
      ((await app.inject({ url: '/v1/info', headers: auth('k-slow') })).json() as { maxBatch: number }).maxBatch,
    ).toBe(5);
    expect(
      ((await app.inject({ url: '/v1/info', headers: auth('k-trickle') })).json() as { maxBatch: number }).maxBatch,
    ).toBe(1);
    expect(
      ((await app.inject({ url: '/v1/info', headers: auth('k-bob') })).json() as { maxBatch: number }).maxBatch,
    ).toBe(16);
    expect(((await app.inject({ url: '/v1/info' })).json() as { maxBatch: number }).maxBatch).toBe(16);
    expect((await app.inject({ url: '/v1/info', headers: auth('k-nobody') })).statusCode).toBe(401);
    // a rate under one query per second still gets one query through, never retry-after: Infinity
    expect(
      (
        await app.inject({
          method: 'POST',
          url: '/v1/predict',
          headers: auth('k-trickle'),
          payload: { inputs: rows(1) },
        })
      ).statusCode,
    ).toBe(200);
    const again = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: auth('k-trickle'),
      payload: { inputs: rows(1) },
    });
    expect(again.statusCode).toBe(429);
    expect(Number(again.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number.isFinite(Number(again.headers['retry-after']))).toBe(true);
  });

  it('over HTTP, the client splits batches to the key’s rate, so a slow key succeeds (slowly)', async () => {
    const addr = await app.listen({ port: 0, host: '127.0.0.1' });
    const remote = await HttpPredictionApi.connect(addr, { key: 'k-slow' });
    expect(remote.info.maxBatch).toBe(5);
    const x = tf.tensor2d(rows(12));
    const t0 = performance.now();
    const r = await remote.query(x);
    expect(performance.now() - t0).toBeLessThan(8_000);
    expect(r.probs!.shape).toEqual([12, 3]);
    expect(remote.ledger.queries).toBe(12);
    tf.dispose([x, r.probs!]);
  }, 15_000);
});

describe('item 9: challenges are rate limited, capped per client and swept', () => {
  let pow: ReturnType<typeof parseDefense>;
  beforeAll(async () => {
    pow = (
      await prepareDefense('pow:k=50,calib=60,maxbits=2,unit=0.01', {
        victim,
        train: ds.train,
        heldOut: ds.test,
        rng: new Rng(1),
      })
    ).defense;
  });
  const challenge = (app: FastifyInstance, key: string, inputs = rows(1)) =>
    app.inject({ method: 'POST', url: '/v1/challenge', headers: auth(key), payload: { digest: digestOf(inputs) } });

  it('a challenge counts against the key’s rate', async () => {
    const app = await createServer({ victim, defenses: [pow], domain, seed: 1, keys, pow: true });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 20; i++) codes.push((await challenge(app, 'k-slow')).statusCode);
      expect(codes.filter((c) => c === 200).length).toBeLessThanOrEqual(6);
      const limited = await challenge(app, 'k-slow');
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });

  it('outstanding challenges per client are capped', async () => {
    const app = await createServer({
      victim,
      defenses: [pow],
      domain,
      seed: 1,
      keys,
      pow: true,
      challengeTtlMs: 60_000,
      maxChallengesPerClient: 8,
    });
    try {
      const codes: number[] = [];
      for (let i = 0; i < 20; i++) codes.push((await challenge(app, 'k-bob')).statusCode);
      expect(codes.filter((c) => c === 200)).toHaveLength(8);
      const over = await challenge(app, 'k-bob');
      expect(over.statusCode).toBe(429);
      expect(over.json().error).toBe('too-many-challenges');
      expect((await metrics(app)).challenges.outstanding).toBe(8);
      // other clients are not blocked by bob's puzzles
      expect((await challenge(app, 'k-alice')).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('thousands of short-lived challenges leave the outstanding map bounded', async () => {
    const app = await createServer({ victim, defenses: [pow], domain, seed: 1, keys, pow: true, challengeTtlMs: 30 });
    try {
      let issued = 0;
      for (let i = 0; i < 3000; i++) {
        const r = await challenge(app, 'k-bob');
        if (r.statusCode === 200) issued++;
        else expect(r.json().error).toBe('too-many-challenges'); // faster than they expire: the cap holds
        if (i % 500 === 0) expect((await metrics(app)).challenges.outstanding).toBeLessThanOrEqual(64);
      }
      expect(issued).toBeGreaterThan(200); // expired puzzles free their slots
      expect((await metrics(app)).challenges.outstanding).toBeLessThanOrEqual(64);
    } finally {
      await app.close();
    }
  }, 30_000);

  it('used stamps are remembered until they expire, then forgotten', async () => {
    const app = await createServer({ victim, defenses: [pow], domain, seed: 1, keys, pow: true, challengeTtlMs: 400 });
    try {
      for (let i = 0; i < 5; i++) {
        const inputs = [row(i)];
        const ch = (await challenge(app, 'k-bob', inputs)).json() as { stamp: string; bits: number };
        const pow = { stamp: ch.stamp, counter: solve(ch).counter };
        expect(
          (await app.inject({ method: 'POST', url: '/v1/predict', headers: auth('k-bob'), payload: { inputs, pow } }))
            .statusCode,
        ).toBe(200);
        const replay = await app.inject({
          method: 'POST',
          url: '/v1/predict',
          headers: auth('k-bob'),
          payload: { inputs, pow },
        });
        expect(replay.json().message).toMatch(/already used/);
      }
      expect((await metrics(app)).challenges).toEqual({ outstanding: 0, used: 5 });
      await new Promise((r) => setTimeout(r, 500));
      expect((await challenge(app, 'k-bob')).statusCode).toBe(200); // sweeps as it goes
      expect((await metrics(app)).challenges).toEqual({ outstanding: 1, used: 0 });
    } finally {
      await app.close();
    }
  });
});

describe('item 12: the audit log', () => {
  it('records refusals too, with the client or "unauthenticated" and the reason', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-audit-'));
    const log = path.join(dir, 'audit.jsonl');
    const app = await createServer({ victim, defenses: [], domain, seed: 1, keys, auditLog: log });
    const post = (payload: unknown, headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: '/v1/predict', headers, payload: payload as object });
    expect((await post({ inputs: rows(1) }, {})).statusCode).toBe(401);
    expect((await post({ inputs: rows(1) }, auth('k-nobody'))).statusCode).toBe(401);
    expect((await post({ inputs: [[1, 2]] }, auth('k-bob'))).statusCode).toBe(400);
    expect((await post({ inputs: rows(3) }, auth('k-alice'))).statusCode).toBe(200);
    expect((await post({ inputs: rows(1) }, auth('k-alice'))).statusCode).toBe(429);
    await app.close();
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatchObject({ client: 'unauthenticated', status: 401, reason: 'unauthorized' });
    expect(lines[1]).toMatchObject({ client: 'unauthenticated', status: 401, reason: 'unauthorized' });
    expect(lines[2]).toMatchObject({ client: 'bob', status: 400, reason: 'bad-request' });
    expect(lines[3]).toMatchObject({ client: 'alice', status: 200, n: 3 });
    expect(lines[4]).toMatchObject({ client: 'alice', status: 429, reason: 'budget-exhausted' });
  });

  it('an audit log that cannot be opened fails at start-up with one line', async () => {
    const err = await createServer({ victim, defenses: [], domain, seed: 1, auditLog: '/nonexistent/dir/a.log' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MseError);
    expect((err as Error).message).toMatch(/audit log/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('a write failure later is a generic 500, the client is not charged, and the details go to stderr', async () => {
    const app = await createServer({ victim, defenses: [], domain, seed: 1, keys, auditLog: '/dev/full' });
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/predict',
        headers: auth('k-alice'),
        payload: { inputs: rows(2) },
      });
      expect(r.statusCode).toBe(500);
      expect(r.body).not.toMatch(/dev\/full|ENOSPC|\bat \S+:\d+/);
      expect(spy.mock.calls.map((c) => String(c[0])).join('')).toMatch(/dev\/full/);
      spy.mockRestore();
      expect((await metrics(app)).clients.alice ?? 0).toBe(0);
      // alice's budget of 3 is untouched: 3 queries would still be allowed if the log worked
      expect(
        (
          await app.inject({
            method: 'POST',
            url: '/v1/predict',
            headers: auth('k-alice'),
            payload: { inputs: rows(4) },
          })
        ).json(),
      ).toMatchObject({ error: 'budget-exhausted', remaining: 3 });
    } finally {
      spy.mockRestore();
      await app.close();
    }
  });
});

describe('issue 17: a detector in the stack', () => {
  it('an alarmed key gets 403 with the reason, for good; other keys are served; the audit log has the alarm', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-detect-'));
    const log = path.join(dir, 'audit.jsonl');
    const app = await createServer({ victim, defenses: [parseDefense('prada')], domain, seed: 1, keys, auditLog: log });
    const post = (inputs: number[][], key: string) =>
      app.inject({ method: 'POST', url: '/v1/predict', headers: auth(key), payload: { inputs } });
    try {
      // near-duplicates of three points: their minimum distances are far from normal
      const dup = (i: number) => [((i % 3) - 1) * 0.5 + (i % 7) * 1e-3, ((i % 3) - 1) * 0.5, 0.1, -0.1];
      let refused: { statusCode: number; json(): unknown } | undefined;
      let sent = 0;
      for (let s = 0; s < 1000 && !refused; s += 50) {
        const r = await post(
          Array.from({ length: 50 }, (_, i) => dup(s + i)),
          'k-bob',
        );
        if (r.statusCode !== 200) refused = r;
        else sent += 50;
      }
      expect(refused?.statusCode).toBe(403);
      const body = refused!.json() as { error: string; message: string; detectedAt: number };
      expect(body.error).toBe('detected');
      expect(body.message).toMatch(/^refused: extraction detected after \d+ queries \(prada: Shapiro–Wilk W = /);
      expect(body.detectedAt).toBeGreaterThanOrEqual(sent);
      expect(body.detectedAt).toBeLessThan(sent + 50);
      // refused for good, even for an innocent-looking row; another key is served
      expect((await post(rows(1), 'k-bob')).statusCode).toBe(403);
      expect((await post(rows(2), 'k-slow')).statusCode).toBe(200);
      // the client library reads it as a DetectedError
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      const client = await HttpPredictionApi.connect(address, { key: 'k-bob' });
      const xt = tf.tensor2d([row(0)], [1, 4]);
      await expect(client.query(xt)).rejects.toThrow(/extraction detected/);
      expect(client.ledger.detectedAt).toBe(body.detectedAt);
      xt.dispose();
    } finally {
      await app.close();
    }
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const alarms = lines.filter((l) => l.reason === 'detected');
    expect(alarms.length).toBeGreaterThanOrEqual(2);
    expect(alarms[0]).toMatchObject({ client: 'bob', status: 403 });
    expect(String(alarms[0].alarm)).toMatch(/^prada: Shapiro–Wilk W = /);
  });
});
