/**
 * A model where it is deployed: mse attacks it over TF Serving's REST protocol and the KServe v2 /
 * Open Inference Protocol, against small loopback servers written here that serve a TF.js model's
 * raw logits (as a real server would). The rows equal those of the same model attacked in-process;
 * a server that is slow, rate-limits, or answers garbage gets retries or one clear line.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/compute/backend.js';
import { loadDataset } from '../../src/data/registry.js';
import { saveLayersModel } from '../testing/tfjs-files.js';
import { onnxRuntime } from '../../src/models/onnx.js';
import { HAVE_SHARED } from '../testing/fixtures.js';

const ROOT = path.resolve('.');
function mse(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/mse.js'), ...args],
      { env: { ...process.env, NO_COLOR: '1' }, timeout: 180_000 },
      (e, out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
    );
  });
}

let model: tf.LayersModel;
let file = '';
let server: Server;
let base = '';
/** what the next requests get instead of an answer, consumed one per request */
const misbehave: Array<'503' | '500' | 'reset' | 'garbage' | 'hang'> = [];
let requests = 0;
/** the range of every value the KServe iris endpoint received */
const seen = { min: Infinity, max: -Infinity };
let onnxSession: import('onnxruntime-node').InferenceSession | undefined;
const ONNX = path.join(ROOT, 'test/fixtures/onnx/mnist-cnn.onnx');

function logits(rows: number[][]): number[][] {
  return tf.tidy(() => (model.predict(tf.tensor2d(rows)) as tf.Tensor2D).arraySync());
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  requests++;
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks).toString('utf8');
  if (req.method !== 'POST' || !raw) {
    res.writeHead(404).end('no such route'); // e.g. mse's /v1/info probe, when --protocol is left out
    return;
  }
  const body = JSON.parse(raw) as Record<string, unknown>;
  const trouble = misbehave.shift();
  if (trouble === 'hang') return; // never answers
  if (trouble === 'reset') return void req.socket.destroy();
  if (trouble === '500') return void res.writeHead(500).end('<html>Internal Server Error</html>');
  if (trouble === '503') {
    res.writeHead(503, { 'retry-after': '0' }).end('busy');
    return;
  }
  if (trouble === 'garbage') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"predictions": "soon"}');
    return;
  }
  if (req.url === '/v1/models/iris:predict') {
    const out = logits(body.instances as number[][]);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ predictions: out }));
  } else if (req.url === '/v2/models/iris/infer') {
    const input = (body.inputs as Array<{ shape: number[]; data: number[] }>)[0];
    for (const v of input.data) [seen.min, seen.max] = [Math.min(seen.min, v), Math.max(seen.max, v)];
    const [n, d] = input.shape;
    const rows = Array.from({ length: n }, (_, i) => input.data.slice(i * d, (i + 1) * d));
    const out = logits(rows);
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        model_name: 'iris',
        outputs: [{ name: 'logits', shape: [n, out[0].length], datatype: 'FP32', data: out.flat() }],
      }),
    );
  } else if (req.url === '/v2/models/iris-other/infer') {
    // another model than the local copy: its logits reversed, so its top class is another
    const input = (body.inputs as Array<{ shape: number[]; data: number[] }>)[0];
    const [n, d] = input.shape;
    const out = logits(Array.from({ length: n }, (_, i) => input.data.slice(i * d, (i + 1) * d))).map((r) =>
      r.map((v) => -v),
    );
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        outputs: [
          { name: 'scores', shape: [n, out[0].length], datatype: 'FP32', data: out.flat() },
          { name: 'logits', shape: [n, out[0].length], datatype: 'FP32', data: out.flat() },
        ],
      }),
    );
  } else if (req.url === '/v2/models/mnist-cnn/infer' && onnxSession) {
    // the PyTorch-exported ONNX fixture, served as Triton would serve it: NCHW in, logits out
    const input = (body.inputs as Array<{ name: string; shape: number[]; data: number[] }>)[0];
    const ort = (await onnxRuntime())!;
    const out = await onnxSession.run({ input: new ort.Tensor('float32', Float32Array.from(input.data), input.shape) });
    const logits = out.logits;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        outputs: [
          { name: 'logits', shape: logits.dims, datatype: 'FP32', data: Array.from(logits.data as Float32Array) },
        ],
      }),
    );
  } else res.writeHead(404).end('no such model');
}

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
  const ds = await loadDataset('iris');
  model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: ds.inputShape,
        units: 12,
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
      }),
      tf.layers.dense({ units: ds.numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.05), loss: tf.losses.softmaxCrossEntropy });
  const x = tf.tensor(ds.train.x, [ds.train.n, ...ds.inputShape]);
  const y = tf.oneHot(tf.tensor1d(ds.train.y, 'int32'), ds.numClasses);
  await model.fit(x, y, { epochs: 40, batchSize: 32, shuffle: false, verbose: 0 });
  tf.dispose([x, y]);
  file = await saveLayersModel(model, mkdtempSync(path.join(os.tmpdir(), 'mse-served-')));
  const ort = await onnxRuntime();
  if (ort) onnxSession = await ort.InferenceSession.create(ONNX);
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  await onnxSession?.release();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  model.dispose();
});

const METRICS = ['victim_acc', 'queries', 'surrogate_acc', 'agreement_test', 'agreement_unif', 'status'];
const pick = (row: Record<string, unknown>) => Object.fromEntries(METRICS.map((k) => [k, row[k]]));
const attack = (extra: string[]) =>
  mse([
    'attack',
    '-d',
    'iris',
    '-v',
    `tfjs:path=${file}`,
    '-a',
    'jbda:seedsize=20,epochs=5',
    '-b',
    '200',
    '--json',
    '-q',
    ...extra,
  ]);

describe('attacking a model server', () => {
  it('over TF Serving REST and KServe v2 the rows equal the in-process attack on the same model', async () => {
    const local = await attack([]);
    expect(local.code, local.err).toBe(0);
    const want = pick(JSON.parse(local.out) as Record<string, unknown>);
    expect(want.status).toBe('ok');
    for (const [protocol, url] of [
      ['tf-serving', `${base}/v1/models/iris`],
      ['kserve-v2', `${base}/v2/models/iris`],
    ]) {
      const before = requests;
      const r = await attack(['--target', url, '--protocol', protocol]);
      expect(r.code, r.err).toBe(0);
      expect(pick(JSON.parse(r.out) as Record<string, unknown>)).toEqual(want);
      expect(requests - before).toBeGreaterThanOrEqual(Math.ceil(200 / 64)); // the queries went over the wire, in batches
    }
  });

  it("--concurrency N sends a query's requests N at a time and gives the same row as one at a time", async () => {
    // a seed set of 100: the first query spans two requests of 64
    const run = (extra: string[]) =>
      mse([
        'attack',
        '-d',
        'iris',
        '-v',
        `tfjs:path=${file}`,
        '-a',
        'jbda:seedsize=100,epochs=5',
        '-b',
        '300',
        '--json',
        '-q',
        '--target',
        `${base}/v2/models/iris`,
        '--protocol',
        'kserve-v2',
        ...extra,
      ]);
    const one = await run([]);
    expect(one.code, one.err).toBe(0);
    const before = requests;
    const three = await run(['--concurrency', '3']);
    expect(three.code, three.err).toBe(0);
    expect(requests - before).toBeGreaterThanOrEqual(Math.ceil(300 / 64));
    const row = JSON.parse(three.out) as Record<string, unknown>;
    expect(row.status).toBe('ok');
    expect(pick(row)).toEqual(pick(JSON.parse(one.out) as Record<string, unknown>));
    expect(row.cell_id).toBe((JSON.parse(one.out) as Record<string, unknown>).cell_id); // it changes no answer, so no id
  });

  it('with no local copy (no -v) the victim is the served model, measured through the server: the same row', async () => {
    const local = await attack([]);
    expect(local.code, local.err).toBe(0);
    const args = ['-d', 'iris', '-a', 'jbda:seedsize=20,epochs=5', '-b', '200', '--json'];
    const url = `${base}/v2/models/iris`;
    const before = requests;
    const r = await mse(['attack', ...args, '--target', url, '--protocol', 'kserve-v2']);
    expect(r.code, r.err).toBe(0);
    const row = JSON.parse(r.out) as Record<string, unknown>;
    expect(row.victim).toBe('served');
    // the victim's accuracy and the agreements are the server's, exactly as the local copy's
    expect(pick(row)).toEqual(pick(JSON.parse(local.out) as Record<string, unknown>));
    // iris's 45 test rows and the uniform set were asked once each (answers kept), besides the attack's 200
    const asked = Number(/the served model answered (\d+) inputs/.exec(r.err)?.[1]);
    expect(asked).toBeGreaterThan(45);
    expect(requests - before).toBeGreaterThanOrEqual(Math.ceil(200 / 64) + Math.ceil(asked / 64));
    // the defenses of a served model are the server's: naming one without a local copy is refused
    const defended = await mse(['attack', ...args, '--target', url, '--protocol', 'kserve-v2', '--defense', 'round']);
    expect(defended.code).toBe(2);
    expect(defended.err).toMatch(/--defense round with no local copy of the served model/);
    // and without a model server there is nothing to serve it
    const bare = await mse(['attack', ...args, '-v', 'served']);
    expect(bare.code).toBe(2);
    expect(bare.err).toMatch(/the served victim is the model behind --target/);
    expect(bare.err).not.toMatch(/\n\s+at /);
  });

  it('a local copy that is not the served model is said to differ; several outputs: which one is read is said', async () => {
    const r = await attack(['--target', `${base}/v2/models/iris-other`, '--protocol', 'kserve-v2']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(
      /the local copy \(-v tfjs:.*\) and the server at .*iris-other disagree on \d+ of the first 45 test inputs/,
    );
    expect(r.err).toMatch(/outputs scores, logits: .*scores/);
    const same = await attack(['--target', `${base}/v2/models/iris`, '--protocol', 'kserve-v2']);
    expect(same.code, same.err).toBe(0);
    expect(same.err).not.toMatch(/disagree/);
    const named = await attack([
      '--target',
      `${base}/v2/models/iris-other`,
      '--protocol',
      'kserve-v2',
      '--target-output-name',
      'logits',
    ]);
    expect(named.code, named.err).toBe(0);
    expect(named.err).not.toMatch(/outputs scores, logits/);
    const a = JSON.parse(r.out) as Record<string, unknown>;
    expect((JSON.parse(named.out) as Record<string, unknown>).cell_id).not.toBe(a.cell_id);
  });

  it('--target-mean/--target-std: the server gets (x − mean)/std, and it is another cell', async () => {
    const args = ['-d', 'iris', '-a', 'jbda:seedsize=20,epochs=5', '-b', '100', '--json'];
    const url = `${base}/v2/models/iris`;
    const plain = await mse(['attack', ...args, '--target', url, '--protocol', 'kserve-v2']);
    expect(plain.code, plain.err).toBe(0);
    Object.assign(seen, { min: Infinity, max: -Infinity });
    const r = await mse([
      'attack',
      ...args,
      '--target',
      url,
      '--protocol',
      'kserve-v2',
      '--target-mean',
      '0.5',
      '--target-std',
      '4',
    ]);
    expect(r.code, r.err).toBe(0);
    // iris's features lie in [−1, 1]: sent as (x − 0.5)/4 they lie in [−0.375, 0.125]
    expect(seen.min).toBeGreaterThanOrEqual(-0.375 - 1e-6);
    expect(seen.max).toBeLessThanOrEqual(0.125 + 1e-6);
    expect(seen.max - seen.min).toBeGreaterThan(0.2);
    const a = JSON.parse(plain.out) as Record<string, unknown>;
    const b = JSON.parse(r.out) as Record<string, unknown>;
    expect(b.cell_id).not.toBe(a.cell_id);
    const bad = await mse(['attack', ...args, '--target', url, '--protocol', 'kserve-v2', '--target-std', '0']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/std must be > 0/);
  });

  it.skipIf(!HAVE_SHARED)(
    'the PyTorch-exported ONNX fixture served over KServe v2 (NCHW) gives the in-process row',
    async () => {
      const args = [
        'attack',
        '-d',
        'mnist',
        '-v',
        `onnx:path=${ONNX}`,
        '-a',
        'knockoff:epochs=2',
        '-b',
        '500',
        '--json',
        '-q',
      ];
      const local = await mse(args);
      expect(local.code, local.err).toBe(0);
      const remote = await mse([
        ...args,
        '--target',
        `${base}/v2/models/mnist-cnn`,
        '--protocol',
        'kserve-v2',
        '--target-layout',
        'nchw',
      ]);
      expect(remote.code, remote.err).toBe(0);
      const want = pick(JSON.parse(local.out) as Record<string, unknown>);
      expect(want.status).toBe('ok');
      expect(pick(JSON.parse(remote.out) as Record<string, unknown>)).toEqual(want);
      // and with no local copy at all: the served model measured through the server, 4 requests at a time
      const servedOnly = await mse([
        ...args.filter((a) => a !== '-v' && a !== `onnx:path=${ONNX}`),
        '--target',
        `${base}/v2/models/mnist-cnn`,
        '--protocol',
        'kserve-v2',
        '--target-layout',
        'nchw',
        '--concurrency',
        '4',
      ]);
      expect(servedOnly.code, servedOnly.err).toBe(0);
      const served = JSON.parse(servedOnly.out) as Record<string, unknown>;
      expect(served.victim).toBe('served');
      for (const k of ['victim_acc', 'surrogate_acc', 'agreement_test', 'queries', 'status'])
        expect(served[k], k).toBe(want[k]);
      // the uniform inputs are where float rounding (server JSON vs in-process) could flip a near tie
      expect(Number(served.agreement_unif)).toBeCloseTo(Number(want.agreement_unif), 3);
    },
  );

  it('a 503 with retry-after is retried; garbage, a wrong model name and silence are one line each', async () => {
    misbehave.push('503', '503');
    const retried = await attack(['--target', `${base}/v2/models/iris`, '--protocol', 'kserve-v2']);
    expect(retried.code, retried.err).toBe(0);
    misbehave.push('garbage');
    const garbage = await attack(['--target', `${base}/v1/models/iris`, '--protocol', 'tf-serving']);
    expect(garbage.code).toBe(1);
    expect(garbage.err).toMatch(
      /^mse: error: http:\/\/127\.0\.0\.1:\d+\/v1\/models\/iris:predict: answered something that is not a tf-serving prediction: "predictions" must hold \d+ answers/m,
    );
    const missing = await attack(['--target', `${base}/v1/models/nope`, '--protocol', 'tf-serving']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(
      /nope:predict: answered 404: "no such model" \(is the model name in --target right\?\)/,
    );
    misbehave.push('hang');
    const silent = await attack(['--target', `${base}/v1/models/iris`, '--protocol', 'tf-serving', '--timeout', '1']);
    expect(silent.code).toBe(1);
    expect(silent.err).toMatch(/iris:predict: no answer within 1 s/);
    for (const r of [garbage, missing, silent]) expect(r.err).not.toMatch(/internal error|\n\s+at /);
  });

  it('a 500 and a reset connection are retried; an ONNX victim exported with a fixed batch of 1 runs', async () => {
    misbehave.push('500', 'reset');
    const before = requests;
    const flaky = await attack(['--target', `${base}/v2/models/iris`, '--protocol', 'kserve-v2']);
    expect(flaky.code, flaky.err).toBe(0);
    expect(requests - before).toBeGreaterThanOrEqual(Math.ceil(200 / 64) + 2);
    expect((JSON.parse(flaky.out) as Record<string, unknown>).status).toBe('ok');
    // scripts/make-onnx-odd-fixtures.py: torch.onnx.export without dynamic_axes takes batches of exactly 1
    const fixed = await mse([
      'attack',
      '-d',
      'iris',
      '-v',
      `onnx:path=${path.join(ROOT, 'test/fixtures/onnx/iris-batch1.onnx')}`,
      '-a',
      'jbda:seedsize=20,epochs=5',
      '-b',
      '100',
      '--json',
      '-q',
    ]);
    expect(fixed.code, fixed.err).toBe(0);
    const row = JSON.parse(fixed.out) as Record<string, unknown>;
    expect(row.status).toBe('ok');
    expect(Number(row.victim_acc)).toBeGreaterThan(0.7); // nearest centroid on iris
  });

  it('flags that do not fit are usage errors', async () => {
    const noName = await attack(['--target', `${base}/v1/models`, '--protocol', 'tf-serving']);
    expect(noName.code).toBe(2);
    expect(noName.err).toMatch(/--target for tf-serving must name the model/);
    const proto = await attack(['--target', base, '--protocol', 'grpc']);
    expect(proto.code).toBe(2);
    expect(proto.err).toMatch(/unknown protocol 'grpc'/);
    const noProtocol = await attack(['--target', `${base}/v2/models/iris`]);
    expect(noProtocol.code).toBe(1);
    expect(noProtocol.err).toMatch(
      /is not an mse server .*the URL names a kserve-v2 model \(give --protocol kserve-v2\)/,
    );
    const stray = await attack(['--protocol', 'kserve-v2']);
    expect(stray.code).toBe(2);
    expect(stray.err).toMatch(/describe a --target; give one/);
    const alone = await attack(['--concurrency', '4']);
    expect(alone.code).toBe(2);
    expect(alone.err).toMatch(/--concurrency describe a --target; give one/);
    const mseProtocol = await attack(['--target', base, '--concurrency', '4']);
    expect(mseProtocol.code).toBe(2);
    expect(mseProtocol.err).toMatch(/--concurrency is for model servers/);
    const zero = await attack(['--target', `${base}/v2/models/iris`, '--protocol', 'kserve-v2', '--concurrency', '0']);
    expect(zero.code).toBe(2);
    expect(zero.err).toMatch(/--concurrency.*must be an integer ≥ 1/);
  });
});
