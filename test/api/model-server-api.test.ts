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
import { MseError, UsageError } from '../../src/errors.js';

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

/**
 * A model server that misbehaves as servers do, by model name: rate limits with long or dated
 * Retry-After, flaky 5xx and resets, answers cut short or dripped, redirects, huge bodies, integer
 * labels for two classes, several outputs. Each answer is one line, retried where a retry helps.
 */
describe('a model server that misbehaves', () => {
  let odd: Server;
  let oddBase = '';
  const counts = new Map<string, number>();
  const paths: string[] = [];
  /** the toy model: p = softmax([a + b, a − b, 0]) for inputs [a, b] */
  const probsOf = (data: number[], m: number, k = 3) =>
    Array.from({ length: m }, (_, i) => {
      const z = [data[2 * i] + data[2 * i + 1], data[2 * i] - data[2 * i + 1], 0].slice(0, k);
      const e = z.map((v) => Math.exp(v));
      return e.map((v) => v / e.reduce((a, b) => a + b, 0));
    });
  const json = (res: ServerResponse, v: unknown) =>
    void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
  const kserve = (res: ServerResponse, rows: number[][]) =>
    json(res, {
      outputs: [{ name: 'probs', shape: [rows.length, rows[0].length], datatype: 'FP32', data: rows.flat() }],
    });

  async function oddHandle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    paths.push(req.url ?? '');
    const name = /\/v[12]\/models\/([^/:?]+)/.exec(req.url ?? '')?.[1] ?? '';
    const c = (counts.get(name) ?? 0) + 1;
    counts.set(name, c);
    if (req.method !== 'POST') return void res.writeHead(405).end(`method ${req.method}`);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      inputs?: Array<{ shape: number[]; data: number[] }>;
      instances?: number[][];
    };
    const input = body.inputs?.[0] ?? { shape: [body.instances!.length, 2], data: body.instances!.flat() };
    const m = input.shape[0];
    const probs = probsOf(input.data, m);
    switch (name) {
      case 'ok':
        return kserve(res, probs);
      case 'r429':
        return void res.writeHead(429, { 'retry-after': '99999' }).end('slow down');
      case 'r429date':
        if (c === 1)
          return void res.writeHead(429, { 'retry-after': new Date(Date.now() + 2000).toUTCString() }).end('slow down');
        return kserve(res, probs);
      case 'flaky': {
        // a 500, a 502, a reset and a 504, then answers
        if (c === 1) return void res.writeHead(500).end('<html>Internal Server Error</html>');
        if (c === 2) return void res.writeHead(502).end('Bad Gateway');
        if (c === 3) return void req.socket.destroy();
        if (c === 4) return void res.writeHead(504).end('Gateway Timeout');
        return kserve(res, probs);
      }
      case 'down':
        return void res.writeHead(502).end('Bad Gateway');
      case 'closemid':
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"outputs": [{"name": "probs", "sha');
        return void setTimeout(() => req.socket.destroy(), 20);
      case 'drip': {
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"outputs": ');
        const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(' ')), 100);
        return;
      }
      case 'redirect':
        return void res.writeHead(302, { location: (req.url ?? '').replace('redirect', 'ok') }).end();
      case 'huge': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const block = Buffer.alloc(1 << 20, 0x20);
        let sent = 0;
        const write = (): void => {
          while (sent < 70 && !res.destroyed) {
            sent++;
            if (!res.write(block)) return void res.once('drain', write);
          }
          res.end('{}');
        };
        return write();
      }
      case 'labels2':
        return json(res, {
          outputs: [{ name: 'label', shape: [m], datatype: 'INT64', data: probs.map((p) => (p[0] > p[1] ? 0 : 1)) }],
        });
      case 'two':
        return json(res, {
          outputs: [
            { name: 'label', shape: [m], datatype: 'INT64', data: probs.map((p) => p.indexOf(Math.max(...p))) },
            { name: 'probs', shape: [m, 3], datatype: 'FP32', data: probs.flat() },
          ],
        });
      case 'tfmulti':
        return json(res, {
          predictions: probs.map((p) => ({ classes: p.indexOf(Math.max(...p)), probabilities: p })),
        });
      case 'probsthenlogits':
        return kserve(res, c === 1 ? probs : probs.map((p) => p.map((v) => Math.log(v) + 1)));
      default:
        return void res.writeHead(404).end('no such model');
    }
  }

  beforeAll(async () => {
    odd = createServer((req, res) => void oddHandle(req, res));
    await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
    oddBase = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    odd.closeAllConnections();
    await new Promise((r) => odd.close(r));
  });

  const xs = new Float32Array(10 * 2).map((_, i) => Math.cos(i));
  /** The API at /v2/models/<name> (or a URL of its own), asked 10 inputs; its answer's numbers, or the error. */
  async function query(
    name: string,
    o: Partial<ModelServerOptions> = {},
  ): Promise<{ values?: number[]; error?: MseError; api: ModelServerApi; seconds: number }> {
    const api = new ModelServerApi(options({ url: `${oddBase}/v2/models/${name}`, numClasses: 3, ...o }));
    const x = tf.tensor2d(xs, [10, 2]);
    const t0 = performance.now();
    try {
      const r = await api.query(x);
      const t = r.probs ?? r.labels!;
      const values = Array.from(await t.data());
      t.dispose();
      return { values, api, seconds: (performance.now() - t0) / 1000 };
    } catch (e) {
      if (!(e instanceof MseError)) throw e;
      return { error: e, api, seconds: (performance.now() - t0) / 1000 };
    } finally {
      x.dispose();
    }
  }
  const want = probsOf(Array.from(xs), 10).flat();
  const close = (a: number[] | undefined, b: number[]) => {
    expect(a).toHaveLength(b.length);
    a!.forEach((v, i) => expect(v).toBeCloseTo(b[i], 5));
  };

  it('a Retry-After far beyond the timeout gives up at once; one given as a date is honoured', async () => {
    const long = await query('r429', { timeoutS: 5 });
    expect(long.seconds).toBeLessThan(2);
    expect(long.error?.message).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/v2\/models\/r429\/infer: answered 429 and asks to retry after 99999 s; giving up — rerun later, the run resumes$/,
    );
    expect(long.error?.hint).toMatch(/--timeout/);
    const dated = await query('r429date');
    expect(dated.error).toBeUndefined();
    expect(dated.seconds).toBeGreaterThan(0.9); // the date has whole seconds: 1–2 s from now
    close(dated.values, want);
  });

  it('500, 502, 504 and a reset connection are retried; a server that stays down is one line saying to rerun', async () => {
    const flaky = await query('flaky');
    expect(flaky.error).toBeUndefined();
    close(flaky.values, want);
    expect(counts.get('flaky')).toBe(5);
    const down = await query('down', { retries: 2 });
    expect(down.error?.message).toMatch(/\/down\/infer: answered 502: "Bad Gateway"; gave up after 2 retries$/);
    expect(down.error?.hint).toMatch(/rerun .*resumes/);
    expect(counts.get('down')).toBe(3);
  });

  it('an answer cut short, or dripping past the timeout, says so', async () => {
    const cut = await query('closemid', { retries: 1 });
    expect(cut.error?.message).toMatch(/\/closemid\/infer: the connection closed before the answer was complete/);
    const drip = await query('drip', { timeoutS: 1 });
    expect(drip.error?.message).toMatch(/\/drip\/infer: timed out after 1 s while reading the answer$/);
    const huge = await query('huge');
    expect(huge.error?.message).toMatch(/\/huge\/infer: answered more than 64 MiB/);
  });

  it('a redirect is not followed (a POST must stay a POST): the line names where it points', async () => {
    const r = await query('redirect');
    expect(r.error?.message).toBe(
      `${oddBase}/v2/models/redirect/infer: redirects to ${oddBase}/v2/models/ok/infer: give ${oddBase}/v2/models/ok as --target`,
    );
    expect(counts.get('ok') ?? 0).toBe(0);
  });

  it('a query string is kept after the path; credentials in the URL are refused without being echoed', async () => {
    const q = await query('ok', { url: `${oddBase}/v2/models/ok/?x=1` });
    expect(q.error).toBeUndefined();
    expect(paths.at(-1)).toBe('/v2/models/ok/infer?x=1');
    const tfq = new ModelServerApi(options({ protocol: 'tf-serving', url: `${oddBase}/v1/models/ok?sig=a#frag` }));
    expect(tfq.ledger.queries).toBe(0);
    let err: unknown;
    try {
      new ModelServerApi(options({ url: 'http://me:hunter2@127.0.0.1/v2/models/ok' }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toMatch(/put the credentials in --key, not the URL/);
    expect(`${(err as UsageError).message} ${(err as UsageError).hint ?? ''}`).not.toMatch(/hunter2/);
  });

  it('INT64 answers of shape [m] are labels for two classes too', async () => {
    const undeclared = await query('labels2', { numClasses: 2 });
    expect(undeclared.error?.message).toMatch(/\/labels2\/infer: answers class labels/);
    expect(undeclared.error?.hint).toMatch(/--target-output labels/);
    const declared = await query('labels2', { numClasses: 2, output: 'labels' });
    expect(declared.values).toEqual(probsOf(Array.from(xs), 10).map((p) => (p[0] > p[1] ? 0 : 1)));
  });

  it('of several outputs, outputName picks one; without it the first is used and a note says so', async () => {
    const named = await query('two', { outputName: 'probs' });
    close(named.values, want);
    expect(named.api.notes).toEqual([]);
    const first = await query('two', { output: 'labels' });
    expect(first.values).toEqual(probsOf(Array.from(xs), 10).map((p) => p.indexOf(Math.max(...p))));
    expect(first.api.notes).toEqual([`${oddBase}/v2/models/two/infer has outputs label, probs: using label`]);
    const missing = await query('two', { outputName: 'logits' });
    expect(missing.error?.message).toMatch(/\/two\/infer: has no output 'logits': its outputs are label, probs$/);
    // TF Serving's row format with several outputs: one object per instance
    const tfNamed = await query('tfmulti', {
      protocol: 'tf-serving',
      url: `${oddBase}/v1/models/tfmulti`,
      outputName: 'probabilities',
    });
    close(tfNamed.values, want);
    const tfFirst = await query('tfmulti', { protocol: 'tf-serving', url: `${oddBase}/v1/models/tfmulti` });
    expect(tfFirst.error?.message).toMatch(/answers class labels/);
    expect(tfFirst.error?.hint).toMatch(
      /--target-output labels.*; it has outputs classes, probabilities and classes was read: choose one with --target-output-name$/,
    );
    expect(tfFirst.api.notes).toEqual([
      `${oddBase}/v1/models/tfmulti:predict has outputs classes, probabilities: using classes`,
    ]);
  });

  it('answers that turn from probabilities to logits contradict auto: the line says it was read so, not declared', async () => {
    const api = new ModelServerApi(options({ url: `${oddBase}/v2/models/probsthenlogits`, numClasses: 3 }));
    const x = tf.tensor2d(xs, [10, 2]);
    (await api.query(x)).probs!.dispose();
    await expect(api.query(x)).rejects.toThrow(
      /probsthenlogits\/infer: was read as --target-output probs \(auto: decided from its answers to the first 10 inputs\), but 10 of 10 later rows are not probabilities$/,
    );
    x.dispose();
  });
});
