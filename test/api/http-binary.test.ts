/**
 * Issue 18, item 4: the HTTP client's binary wire. It is used only where the server's /v1/info says
 * `binary: true` and no proof-of-work is asked; a binary answer is checked like a JSON one (content
 * type, what it holds, its shape, exact length, finite probabilities in [0, 1], labels in range), and
 * anything else is a one-line MseError. A tiny hostile server on loopback answers as each test sets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs';
import { HttpPredictionApi } from '../../src/api/http-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { BudgetExhaustedError, DetectedError, MseError } from '../../src/errors.js';

const OCTET = 'application/octet-stream';
type Answer = { status?: number; headers?: Record<string, string>; body: string | Buffer };
const good = {
  inputShape: [4],
  numClasses: 3,
  domain: { min: -1, max: 1 },
  reveals: 'probs',
  defenses: [],
  pow: { required: false },
  maxBatch: 16,
  binary: true,
};
const routes: Record<string, Answer | ((body: Buffer) => Answer)> = {};
/** what each predict request sent: content type, accept, and its body */
const seen: { type: string; accept: string; body: Buffer }[] = [];
let server: Server;
let url: string;

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/predict')
        seen.push({
          type: req.headers['content-type'] ?? '',
          accept: req.headers.accept ?? '',
          body: Buffer.concat(chunks),
        });
      const route = routes[req.url ?? ''] ?? { status: 404, body: 'nope' };
      const a = typeof route === 'function' ? route(Buffer.concat(chunks)) : route;
      res.writeHead(a.status ?? 200, { 'content-type': 'application/json', ...a.headers });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const info = (over: Record<string, unknown>) => {
  routes['/v1/info'] = { body: JSON.stringify({ ...good, ...over }) };
};
const f32 = (v: number[]) => Buffer.from(Float32Array.from(v).buffer);
const i32 = (v: number[]) => Buffer.from(Int32Array.from(v).buffer);
const binary = (answer: string, shape: string, body: Buffer, type = OCTET): Answer => ({
  headers: { 'content-type': type, 'x-mse-answer': answer, 'x-mse-shape': shape },
  body,
});
/** The MseError a promise rejects with, checked to be one line. */
async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(MseError);
  const msg = (e as Error).message;
  expect(msg).not.toContain('\n');
  return msg;
}

describe('HttpPredictionApi: the binary wire', () => {
  it('uses binary both ways when the info says binary: true, and JSON when it does not say so or asks for PoW', async () => {
    const x = tf.tensor2d(
      [
        [0.1, 0.2, 0.3, 0.4],
        [-0.5, 0.5, 0, 1],
      ],
      [2, 4],
    );
    routes['/v1/predict'] = binary('probs', '2,3', f32([0.1, 0.2, 0.7, 0.5, 0.25, 0.25]));
    info({});
    seen.length = 0;
    const api = await HttpPredictionApi.connect(url);
    expect(api.wire).toBe('binary');
    const r = await api.query(x);
    expect(seen).toHaveLength(1);
    expect(seen[0].type).toBe(OCTET);
    expect(seen[0].accept).toBe(OCTET);
    // the inputs as little-endian float32, row after row
    expect(Array.from(new Float32Array(new Uint8Array(seen[0].body).buffer))).toEqual(Array.from(await x.data()));
    expect(Array.from(await r.probs!.data())).toEqual(Array.from(Float32Array.from([0.1, 0.2, 0.7, 0.5, 0.25, 0.25])));
    r.probs!.dispose();

    // an int32 query goes up as the float32 values the server reads
    seen.length = 0;
    const xi = tf.tensor2d([1, -2, 3, 4, 0, 0, 0, 1], [2, 4], 'int32');
    tf.dispose((await api.query(xi)).probs!);
    xi.dispose();
    expect(Array.from(new Float32Array(new Uint8Array(seen[0].body).buffer))).toEqual([1, -2, 3, 4, 0, 0, 0, 1]);

    // labels
    routes['/v1/predict'] = binary('labels', '2', i32([2, 0]));
    const l = await api.query(x);
    expect(l.probs).toBeUndefined();
    expect(Array.from(await l.labels!.data())).toEqual([2, 0]);
    l.labels!.dispose();

    // a server asked for bytes may still answer JSON
    routes['/v1/predict'] = { body: JSON.stringify({ labels: [1, 1] }) };
    const j = await api.query(x);
    expect(Array.from(await j.labels!.data())).toEqual([1, 1]);
    j.labels!.dispose();

    // an older server (no binary field), one that says false, one that asks for proof-of-work: JSON
    routes['/v1/predict'] = { body: JSON.stringify({ labels: [1, 2] }) };
    for (const over of [{ binary: undefined }, { binary: false }]) {
      info(over);
      seen.length = 0;
      const old = await HttpPredictionApi.connect(url);
      expect(old.wire).toBe('json');
      const o = await old.query(x);
      expect(Array.from(await o.labels!.data())).toEqual([1, 2]);
      o.labels!.dispose();
      expect(seen).toHaveLength(1);
      expect(seen[0].type).toBe('application/json');
      expect(JSON.parse(seen[0].body.toString())).toEqual({ inputs: await x.array() });
    }
    info({ pow: { required: true } });
    expect((await HttpPredictionApi.connect(url)).wire).toBe('json');
    // told to keep to JSON
    info({});
    expect((await HttpPredictionApi.connect(url, { wire: 'json' })).wire).toBe('json');
    // an info whose binary is not a boolean is not an mse info
    info({ binary: 'yes' });
    expect(await failure(HttpPredictionApi.connect(url))).toMatch(/not an mse \/v1\/info: binary must be a boolean/);
    x.dispose();
  });

  it('a malformed binary answer is a one-line MseError', async () => {
    info({});
    const api = await HttpPredictionApi.connect(url);
    const x = tf.zeros([2, 4]);
    const p6 = f32([0.1, 0.2, 0.7, 0.5, 0.25, 0.25]);
    const nan = f32([0.1, 0.2, 0.7, 0.5, 0.25, 0.25]);
    nan.writeFloatLE(NaN, 8);
    const inf = f32([0.1, 0.2, 0.7, 0.5, 0.25, 0.25]);
    inf.writeFloatLE(Infinity, 0);
    for (const [answer, why] of [
      [binary('probs', '2,3', f32([0.1, 0.2, 0.7, 0.5, 0.25])), /are 24 bytes, got 20/], // a value short
      [binary('probs', '2,3', Buffer.concat([p6, Buffer.alloc(1)])), /are 24 bytes, got 25/],
      [binary('probs', '2,3', Buffer.alloc(0)), /got 0/],
      [binary('probs', '3,2', p6), /x-mse-shape must be 2,3/], // the right bytes, the wrong shape
      [binary('probs', '2', p6), /x-mse-shape must be 2,3/],
      [binary('probs', '2,3,1', p6), /x-mse-shape must be 2,3/],
      [{ headers: { 'content-type': OCTET, 'x-mse-answer': 'probs' }, body: p6 }, /x-mse-shape must be 2,3/],
      [binary('logits', '2,3', p6), /x-mse-answer must be probs or labels/],
      [{ headers: { 'content-type': OCTET }, body: p6 }, /x-mse-answer must be probs or labels/],
      [binary('probs', '2,3', nan), /finite/],
      [binary('probs', '2,3', inf), /finite/],
      [binary('probs', '2,3', f32([0.1, 0.2, 0.7, 1.5, -0.25, -0.25])), /\[0, 1\]/],
      // a declared length past any honest answer is refused before it is read
      [
        {
          headers: {
            'content-type': OCTET,
            'x-mse-answer': 'probs',
            'x-mse-shape': '2,3',
            'content-length': '1000000000',
          },
          body: p6,
        },
        /at most 24 bytes, got 1000000000/,
      ],
      [binary('labels', '2', i32([0, 3])), /labels must be integers in \[0, 3\)/],
      [binary('labels', '2', i32([-1, 0])), /labels must be integers/],
      [binary('labels', '2', i32([0])), /are 8 bytes, got 4/],
      [binary('labels', '2,3', i32([0, 1])), /x-mse-shape must be 2 /],
      [binary('probs', '2,3', p6, 'text/plain'), /must be application\/octet-stream, got "text\/plain"/],
      [{ headers: { 'content-type': 'application/json' }, body: p6 }, /not JSON/],
      // the JSON answer's probabilities are held to the same range
      [
        {
          body: JSON.stringify({
            probs: [
              [0.1, 0.2, 0.7],
              [1.5, -0.25, -0.25],
            ],
          }),
        },
        /probs must be in \[0, 1\]/,
      ],
    ] as const) {
      routes['/v1/predict'] = answer;
      expect(await failure(api.query(x))).toMatch(
        new RegExp(
          /server at http:\/\/127\.0\.0\.1:\d+ answered something that is not an mse prediction: .*/.source +
            why.source,
        ),
      );
    }
    x.dispose();
  });

  it('errors stay JSON over binary: budget, detection, shrink and non-JSON error pages as before', async () => {
    info({});
    const api = await HttpPredictionApi.connect(url);
    const x = tf.zeros([4, 4]);
    routes['/v1/predict'] = {
      status: 429,
      body: JSON.stringify({ error: 'budget-exhausted', message: 'no more', remaining: 0 }),
    };
    await expect(api.query(x)).rejects.toBeInstanceOf(BudgetExhaustedError);
    routes['/v1/predict'] = {
      status: 502,
      headers: { 'content-type': 'text/html' },
      body: '<html>bad gateway</html>',
    };
    expect(await failure(api.query(x))).toMatch(/predict answered 502/);
    // a batch too large for the key: the client sends smaller ones, still binary
    seen.length = 0;
    routes['/v1/predict'] = (body) =>
      body.length > 32
        ? { status: 413, body: JSON.stringify({ error: 'batch-too-large', message: 'too many', maxBatch: 2 }) }
        : binary('labels', '2', i32([1, 2]));
    const shrink = api.query(x);
    const s = await shrink;
    expect(Array.from(await s.labels!.data())).toEqual([1, 2, 1, 2]);
    s.labels!.dispose();
    expect(seen.map((r) => r.body.length)).toEqual([64, 32, 32]);
    expect(new Set(seen.map((r) => r.type))).toEqual(new Set([OCTET]));
    routes['/v1/predict'] = {
      status: 403,
      body: JSON.stringify({ error: 'detected', message: 'refused: extraction detected', detectedAt: 7 }),
    };
    await expect(api.query(x)).rejects.toBeInstanceOf(DetectedError);
    expect(api.ledger.detectedAt).toBe(7);
    x.dispose();
  });
});
