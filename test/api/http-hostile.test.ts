/**
 * Issue 13, item 13: the HTTP client does not trust the server. A tiny hostile server on loopback
 * answers /v1/info, /v1/challenge and /v1/predict with whatever each test sets; every bad answer
 * must become a one-line MseError, never a stack trace, a hang or a silently wrong result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs';
import { HttpPredictionApi } from '../../src/api/http-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { MseError } from '../../src/errors.js';

type Answer = { status?: number; type?: string; body: string };
const good = {
  inputShape: [4],
  numClasses: 3,
  domain: { min: -1, max: 1 },
  reveals: 'probs',
  defenses: [],
  pow: { required: false },
  maxBatch: 16,
};
const routes: Record<string, Answer> = {};
let server: Server;
let url: string;

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = routes[req.url ?? ''] ?? { status: 404, body: 'nope' };
      res.writeHead(a.status ?? 200, { 'content-type': a.type ?? 'application/json' });
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

describe('HttpPredictionApi against a hostile server', () => {
  it('/v1/info that is not JSON, or not an mse info, is refused before any query', async () => {
    routes['/v1/info'] = { type: 'text/html', body: '<html>hello</html>' };
    expect(await failure(HttpPredictionApi.connect(url))).toMatch(
      /server at http:\/\/127\.0\.0\.1:\d+ answered something that is not an mse \/v1\/info: not JSON/,
    );
    for (const over of [
      { inputShape: 'x' },
      { inputShape: [0] },
      { inputShape: [] },
      { numClasses: 1.5 },
      { numClasses: 0 },
      { reveals: 'everything' },
      { maxBatch: 0 },
      { maxBatch: 'many' },
      { pow: 'yes' },
      { domain: { min: 'a', max: 1 } },
    ]) {
      info(over);
      expect(await failure(HttpPredictionApi.connect(url))).toMatch(/not an mse \/v1\/info: /);
    }
    routes['/v1/info'] = { body: 'null' };
    expect(await failure(HttpPredictionApi.connect(url))).toMatch(/not an mse/);
  });

  it('a server whose input shape or class count differs from the attacker’s dataset is refused', async () => {
    info({ inputShape: [3] });
    expect(await failure(HttpPredictionApi.connect(url, { expect: { inputShape: [104], numClasses: 3 } }))).toMatch(
      /inputs of shape \[3\].*dataset.*\[104\]/,
    );
    info({ numClasses: 5 });
    expect(await failure(HttpPredictionApi.connect(url, { expect: { inputShape: [4], numClasses: 3 } }))).toMatch(
      /5 classes.*3/,
    );
    info({});
    const api = await HttpPredictionApi.connect(url, { expect: { inputShape: [4], numClasses: 3 } });
    const x = tf.zeros([2, 5]);
    expect(await failure(api.query(x))).toMatch(/shape/);
    x.dispose();
  });

  it('predict answers that are not JSON, or not a prediction of the right size, are one-line errors', async () => {
    info({});
    const api = await HttpPredictionApi.connect(url);
    const x = tf.zeros([2, 4]);
    const bodies = [
      { type: 'text/plain', body: 'OK' },
      { body: '{"probs": [[0.1, 0.2, 0.7]]' },
      { body: JSON.stringify({ probs: [[0.1, 0.2, 0.7]] }) }, // one row for two inputs
      {
        body: JSON.stringify({
          probs: [
            [0.1, 0.2],
            [0.3, 0.7],
          ],
        }),
      }, // two classes of three
      {
        body: JSON.stringify({
          probs: [
            [0.1, 0.2, 'x'],
            [0.3, 0.3, 0.4],
          ],
        }),
      },
      { body: JSON.stringify({ labels: [0, 7] }) },
      { body: JSON.stringify({ labels: [0, 1.5] }) },
      { body: JSON.stringify({}) },
      { body: '[]' },
    ];
    for (const b of bodies) {
      routes['/v1/predict'] = b;
      expect(await failure(api.query(x))).toMatch(
        /server at http:\/\/127\.0\.0\.1:\d+ answered something that is not an mse prediction: /,
      );
    }
    routes['/v1/predict'] = {
      body: JSON.stringify({
        probs: [
          [0.1, 0.2, 0.7],
          [0.3, 0.3, 0.4],
        ],
      }),
    };
    const r = await api.query(x);
    expect(r.probs!.shape).toEqual([2, 3]);
    tf.dispose([x, r.probs!]);
  });

  it('an error status with a non-JSON body, and a puzzle too hard to be honest, are one-line errors', async () => {
    info({});
    const api = await HttpPredictionApi.connect(url);
    const x = tf.zeros([1, 4]);
    routes['/v1/predict'] = { status: 502, type: 'text/html', body: '<html>bad gateway</html>' };
    expect(await failure(api.query(x))).toMatch(/502/);
    info({ pow: { required: true } });
    const powApi = await HttpPredictionApi.connect(url);
    routes['/v1/challenge'] = { body: JSON.stringify({ stamp: '1:60:x::y:', bits: 60, expires: 0 }) };
    expect(await failure(powApi.query(x))).toMatch(/not an mse challenge: /);
    routes['/v1/challenge'] = { body: 'hello' };
    expect(await failure(powApi.query(x))).toMatch(/not an mse challenge: /);
    x.dispose();
  });
});
