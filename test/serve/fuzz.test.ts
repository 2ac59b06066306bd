/**
 * Seeded fuzzing of every `mse serve` route through fastify's inject (no sockets): random JSON
 * values, wrong types, huge numbers, NaN-ish strings, deep nesting, random bytes, wrong content
 * types, oversized bodies, random methods, paths and keys. No response may be a 5xx or carry a
 * stack trace or a server path, the server must still answer a valid predict afterwards, and the
 * ledgers must count exactly the answered queries (refusals are free).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { solve } from '../../src/protocol/hashcash.js';
import { parseDefense, prepareDefense } from '../../src/defenses/registry.js';
import type { Net } from '../../src/models/net.js';
import { createServer, digestOf } from '../../src/serve/server.js';
import { toyBlobs, trainedSoftmax } from '../testing/fixtures.js';

const ds = toyBlobs(300);
let victim: Net;
const BUDGET = 100_000;
const keys = [
  { key: 'k-admin', id: 'ops', admin: true },
  { key: 'k-fuzz', id: 'fuzz', budget: BUDGET },
  { key: 'k-small', id: 'small', budget: 40 },
  { key: 'k-slow', id: 'slow', ratePerSec: 3 },
];

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  victim = await trainedSoftmax(ds, 2);
});
afterAll(() => victim.dispose());

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'] as const;
const PATHS = [
  '/v1/predict',
  '/v1/predict',
  '/v1/predict',
  '/v1/challenge',
  '/v1/challenge',
  '/v1/info',
  '/metrics',
  '/healthz',
  '/',
  '/v1',
  '/v1/predict/',
  '/v1/predict?x=1',
  '/v1//predict',
  '/%E0%A4%A',
  '/v1/info?' + 'a'.repeat(3000),
  '/../../etc/passwd',
  '/v1/predict#frag',
];
const TYPES = [
  'application/json',
  'application/json',
  'application/json',
  'text/plain',
  'application/octet-stream',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'image/png',
  '',
  'garbage/;;;',
  undefined,
];
const NASTY = [
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '-0',
  '0x10',
  '',
  ' ',
  '__proto__',
  'constructor',
  '{}',
  '[]',
  'null',
  '\u0000',
  '\ud800',
  '%s%n',
  '${x}',
  '<script>',
];

function value(r: Rng, depth = 0): unknown {
  const k = r.int(depth > 3 ? 7 : 10);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.next() < 0.5;
    case 2:
      return [0, -0, 1, -1, 1e308, -1e308, 5e-324, 2 ** 53 + 1, r.normal() * 1e6, r.uniform(-2, 2)][r.int(10)];
    case 3:
      return NASTY[r.int(NASTY.length)];
    case 4:
      return 'x'.repeat(r.int(200));
    case 5:
      return r.int(1000);
    case 6:
      return r.uniform(-1, 1);
    case 7:
      return Array.from({ length: r.int(6) }, () => value(r, depth + 1));
    case 8:
      return Object.fromEntries(
        Array.from({ length: r.int(5) }, () => [
          [`inputs`, 'pow', 'digest', 'stamp', 'counter', '__proto__', 'constructor', 'x'][r.int(8)],
          value(r, depth + 1),
        ]),
      );
    default:
      return {
        inputs: Array.from({ length: r.int(4) }, () =>
          Array.from({ length: r.next() < 0.7 ? 4 : r.int(8) }, () => value(r, 4)),
        ),
      };
  }
}

/** Well-formed inputs (a batch of up to 9, one over the max), sometimes with a junk or well-shaped but unsolved proof. */
function nearValid(r: Rng): string {
  const inputs = Array.from({ length: 1 + r.int(9) }, () => [
    r.uniform(-1, 1),
    r.uniform(-1, 1),
    r.uniform(-1, 1),
    r.uniform(-1, 1),
  ]);
  const u = r.next();
  return JSON.stringify(
    u < 0.6
      ? { inputs }
      : u < 0.8
        ? { inputs, pow: { stamp: `1:2:260101:x::${r.int(1e6)}:`, counter: r.int(1e6).toString(36) } }
        : { inputs, pow: value(r) },
  );
}

/** A body: mostly JSON (near-valid or random), sometimes raw bytes, deep nesting or too large. */
function body(r: Rng): string | Buffer | undefined {
  const k = r.int(12);
  if (k === 0) return undefined;
  if (k === 1) return Buffer.from(Array.from({ length: r.int(400) }, () => r.int(256)));
  if (k === 2) return '['.repeat(5000 + r.int(50_000)) + ']'.repeat(r.int(2) ? 0 : 5000);
  if (k === 3) return JSON.stringify({ inputs: [[0, 0, 0, 0]], pad: 'x'.repeat(70_000) });
  if (k === 4) return '{"inputs": [[' + NASTY[r.int(NASTY.length)] + ', 0, 0, 0]]}';
  if (k === 5) return JSON.stringify({ digest: r.next() < 0.5 ? 'a'.repeat(64) : value(r) });
  if (k === 6) return nearValid(r);
  if (k === 7) return '{"__proto__": {"inputs": 1}, "inputs": [[0,0,0,0]]}';
  if (k === 8) return JSON.stringify(value(r)).slice(0, r.int(40));
  return JSON.stringify(value(r)) ?? 'undefined';
}

function headers(r: Rng): Record<string, string> {
  const h: Record<string, string> = {};
  const auth = [
    undefined,
    'Bearer k-fuzz',
    'Bearer k-fuzz',
    'Bearer k-small',
    'Bearer k-slow',
    'Bearer k-admin',
    'Bearer ',
    'Bearer nope',
    'Basic k-fuzz',
    'Bearer ' + 'k'.repeat(5000),
    'bearer k-fuzz',
  ][r.int(11)];
  if (auth !== undefined) h.authorization = auth;
  if (r.next() < 0.1) h['x-api-key'] = ['k-fuzz', 'nope', ''][r.int(3)];
  const type = TYPES[r.int(TYPES.length)];
  if (type !== undefined) h['content-type'] = type;
  return h;
}

const LEAK = /\bat \S+ \(|\bat [^\s]+:\d+:\d+|node_modules|\/work\/|\/home\/|\/tmp\/|\.ts:\d+|\.js:\d+|\bstack\b/i;

async function fuzz(app: FastifyInstance, seed: number, n: number, charged: Map<string, number>): Promise<Set<number>> {
  const statuses = new Set<number>();
  const r = new Rng(seed);
  const ids: Record<string, string> = {
    'Bearer k-fuzz': 'fuzz',
    'Bearer k-small': 'small',
    'Bearer k-slow': 'slow',
    'Bearer k-admin': 'ops',
  };
  for (let i = 0; i < n; i++) {
    // a third of the requests are near-valid predicts, so the fuzzing gets past the parser to the
    // key, batch, rate, budget and proof checks
    const focused = r.next() < 0.35;
    const method = focused ? 'POST' : METHODS[r.int(METHODS.length)];
    const url = focused ? '/v1/predict' : PATHS[r.int(PATHS.length)];
    const h = headers(r);
    if (focused) h['content-type'] = 'application/json';
    const payload = method === 'GET' || method === 'HEAD' ? undefined : focused ? nearValid(r) : body(r);
    const res = await app.inject({ method, url, headers: h, ...(payload === undefined ? {} : { payload }) });
    const where = `request ${i}: ${method} ${url.slice(0, 40)} ${JSON.stringify(h).slice(0, 80)} ${String(payload).slice(0, 80)} → ${res.statusCode} ${res.body.slice(0, 200)}`;
    statuses.add(res.statusCode);
    expect(res.statusCode, where).toBeLessThan(500);
    expect(res.body, where).not.toMatch(LEAK);
    if (res.statusCode === 200 && method === 'POST' && url.startsWith('/v1/predict') && payload !== undefined) {
      // answered: charge the client whose key the server read (Authorization wins over x-api-key)
      const id = ids[h.authorization ?? ''] ?? (h['x-api-key'] === 'k-fuzz' ? 'fuzz' : 'anonymous');
      const answered = res.json() as { probs?: unknown[]; labels?: unknown[] };
      charged.set(id, (charged.get(id) ?? 0) + (answered.probs ?? answered.labels ?? []).length);
    }
  }
  return statuses;
}

describe('mse serve: fuzzing every route', () => {
  let app: FastifyInstance;
  let powApp: FastifyInstance;
  beforeAll(async () => {
    app = await createServer({
      victim,
      defenses: [],
      domain: ds.domain,
      seed: 1,
      keys,
      maxBatch: 8,
      bodyLimit: 64 * 1024,
    });
    const { defense: pow } = await prepareDefense('pow:k=50,calib=60,maxbits=2,unit=0.01', {
      victim,
      train: ds.train,
      heldOut: ds.test,
      rng: new Rng(1),
    });
    powApp = await createServer({
      victim,
      defenses: [pow],
      domain: ds.domain,
      seed: 1,
      keys,
      pow: true,
      maxBatch: 8,
      bodyLimit: 64 * 1024,
      challengeTtlMs: 5_000,
    });
  });
  afterAll(async () => {
    await app.close();
    await powApp.close();
  });

  it('no 5xx, no leaks, exact ledgers, still serving', async () => {
    const charged = new Map<string, number>();
    const statuses = await fuzz(app, 13, 1200, charged);
    const powCharged = new Map<string, number>();
    const powStatuses = await fuzz(powApp, 14, 600, powCharged);
    // the fuzzing reached past every gate, not just the body parser
    for (const code of [200, 400, 401, 403, 404, 413, 415, 429]) expect(statuses, `status ${code}`).toContain(code);
    for (const code of [200, 400, 401, 402, 403])
      expect(powStatuses, `status ${code} with proof-of-work`).toContain(code);

    for (const [server, ch] of [
      [app, charged],
      [powApp, powCharged],
    ] as const) {
      const m = (await server.inject({ url: '/metrics', headers: { authorization: 'Bearer k-admin' } })).json() as {
        served: number;
        clients: Record<string, number>;
      };
      for (const id of ['fuzz', 'small', 'slow', 'ops']) expect(m.clients[id] ?? 0, id).toBe(ch.get(id) ?? 0);
      expect(m.served).toBe([...ch.values()].reduce((a, b) => a + b, 0));
    }
    // the small key's budget is exactly what the answered requests left of it
    const left = 40 - (charged.get('small') ?? 0);
    const over = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { authorization: 'Bearer k-small' },
      payload: { inputs: Array.from({ length: Math.min(8, left + 1) }, () => [0, 0, 0, 0]) },
    });
    if (left < 8) expect(over.json()).toMatchObject({ error: 'budget-exhausted', remaining: left });

    // still answering valid requests, with and without proof-of-work
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { authorization: 'Bearer k-fuzz' },
      payload: { inputs: [[0.1, 0.2, 0.3, 0.4]] },
    });
    expect(ok.statusCode).toBe(200);
    expect((ok.json() as { probs: number[][] }).probs[0]).toHaveLength(3);
    const inputs = [[0.1, 0.2, 0.3, 0.4]];
    const ch = (
      await powApp.inject({
        method: 'POST',
        url: '/v1/challenge',
        headers: { authorization: 'Bearer k-fuzz' },
        payload: { digest: digestOf(inputs) },
      })
    ).json() as { stamp: string; bits: number };
    const powOk = await powApp.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { authorization: 'Bearer k-fuzz' },
      payload: { inputs, pow: { stamp: ch.stamp, counter: solve(ch).counter } },
    });
    expect(powOk.statusCode).toBe(200);
  }, 30_000);
});
