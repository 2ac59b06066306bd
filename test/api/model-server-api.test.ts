/**
 * The model-server API's concurrency limit, against a loopback KServe v2 server written here that
 * answers after a varying delay (so answers arrive out of order) and records how many requests it
 * holds at once: with --concurrency N a query's requests go N at a time, never more, and the answers
 * are those of one request at a time; 503s are retried per request; a failure stops new requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelServerApi, type ModelServerOptions } from '../../src/api/model-server-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { UsageError } from '../../src/errors.js';

let server: Server;
let url = '';
let inFlight = 0;
let maxInFlight = 0;
let requests = 0;
/** what the n-th request (counting from 1) gets instead of an answer */
const trouble = new Map<number, '503' | 'garbage'>();
/** answer class indices ([m] INT64) instead of logits */
let labels = false;

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const nth = ++requests;
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  try {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      inputs: Array<{ shape: number[]; data: number[] }>;
    };
    const { shape, data } = body.inputs[0];
    // later requests answer sooner: answers arrive out of order
    await new Promise((r) => setTimeout(r, 5 + ((1000 - nth * 7) % 40)));
    const what = trouble.get(nth);
    if (what === '503') return void res.writeHead(503, { 'retry-after': '0' }).end('busy');
    if (what === 'garbage')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"outputs": 1}');
    const m = shape[0];
    const rows = Array.from({ length: m }, (_, i) => [
      data[2 * i] + data[2 * i + 1],
      data[2 * i] - data[2 * i + 1],
      0.5,
    ]);
    const out = labels
      ? { name: 'label', shape: [m], datatype: 'INT64', data: rows.map((r) => r.indexOf(Math.max(...r))) }
      : { name: 'logits', shape: [m, 3], datatype: 'FP32', data: rows.flat() };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ outputs: [out] }));
  } finally {
    inFlight--;
  }
}

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/models/toy`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const N = 200; // inputs per query: 13 requests of at most 16
const x = new Float32Array(N * 2).map((_, i) => Math.sin(i * 0.37) * 2);
const options = (o: Partial<ModelServerOptions>): ModelServerOptions => ({
  protocol: 'kserve-v2',
  url,
  inputShape: [2],
  numClasses: 3,
  domain: { min: -2, max: 2 },
  batch: 16,
  ...o,
});

/** One query's answers, and the most requests the server held at once while answering it. */
async function ask(o: Partial<ModelServerOptions>): Promise<{ answers: number[]; most: number; sent: number }> {
  maxInFlight = 0;
  const before = requests;
  const api = new ModelServerApi(options(o));
  const xt = tf.tensor2d(x, [N, 2]);
  try {
    const r = await api.query(xt);
    const t = r.probs ?? r.labels!;
    const answers = Array.from(await t.data());
    t.dispose();
    expect(api.ledger.queries).toBe(N);
    return { answers, most: maxInFlight, sent: requests - before };
  } finally {
    xt.dispose();
  }
}

describe('a concurrency limit for model servers', () => {
  it('sends N requests at a time, never more, and answers exactly as one at a time', async () => {
    const one = await ask({});
    expect(one.most).toBe(1);
    expect(one.sent).toBe(13);
    for (const concurrency of [2, 4]) {
      const many = await ask({ concurrency });
      expect(many.most).toBe(concurrency);
      expect(many.sent).toBe(13);
      expect(many.answers).toEqual(one.answers);
    }
    // more than there are requests: as many as there are
    expect((await ask({ concurrency: 64, batch: 100 })).most).toBe(2);
    // labels, reassembled in order too
    labels = true;
    try {
      const l1 = await ask({ output: 'labels' });
      const l4 = await ask({ output: 'labels', concurrency: 4 });
      expect(l4.answers).toEqual(l1.answers);
      expect(l1.answers).toEqual(
        Array.from({ length: N }, (_, i) => {
          const r = [x[2 * i] + x[2 * i + 1], x[2 * i] - x[2 * i + 1], 0.5];
          return r.indexOf(Math.max(...r));
        }),
      );
      expect(new Set(l1.answers).size).toBe(3);
    } finally {
      labels = false;
    }
  });

  it('a 503 is retried per request, the others going on; the answers are unchanged', async () => {
    const one = await ask({});
    const start = requests;
    for (const k of [2, 3, 7]) trouble.set(start + k, '503');
    const many = await ask({ concurrency: 4 });
    expect(many.sent).toBe(13 + 3);
    expect(many.most).toBeLessThanOrEqual(4);
    expect(many.answers).toEqual(one.answers);
  });

  it('after a bad answer no new request starts, and the error is one line naming the URL', async () => {
    const start = requests;
    trouble.set(start + 3, 'garbage');
    const api = new ModelServerApi(options({ concurrency: 4 }));
    const xt = tf.tensor2d(x, [N, 2]);
    await expect(api.query(xt)).rejects.toThrow(
      /^http:\/\/127\.0\.0\.1:\d+\/v2\/models\/toy\/infer: answered something that is not a kserve-v2 prediction/,
    );
    xt.dispose();
    expect(requests - start).toBeLessThan(13); // it stopped sending
    expect(api.ledger.queries).toBe(0);
  });

  it('a concurrency that is not a positive integer is refused', () => {
    for (const concurrency of [0, -1, 1.5])
      expect(() => new ModelServerApi(options({ concurrency }))).toThrow(UsageError);
  });
});
