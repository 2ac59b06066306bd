/**
 * `npm run bench:serve` — `mse serve` over loopback: requests/s, inputs/s and p50/p99 latency for C
 * concurrent clients sending batches of 64 MNIST-shaped inputs. The undefended server is measured
 * over both wires (JSON rows, and raw little-endian float32 both ways), beside the same victim
 * queried in this process through LocalPredictionApi (same batches, same concurrency), with each
 * wire's inputs/s as a fraction of in-process (the three interleaved in rounds); then MAD (binary
 * wire) and PoW (JSON: proofs are bound to the JSON inputs; the client solves every puzzle). The
 * victim is the zoo's CNN (untrained weights cost the same); PoW is calibrated on random stand-in
 * data. A benchmark, never a test.
 * Usage: npm run bench:serve [-- --requests 200 --clients 16 --rounds 2] */
import { HttpPredictionApi } from '../../src/api/http-api.js';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import type { PredictionApi } from '../../src/api/types.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { prepareDefense } from '../../src/defenses/registry.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';
import { createServer } from '../../src/serve/server.js';
import * as tf from '@tensorflow/tfjs';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const requests = arg('requests', 160);
const clients = arg('clients', 16);
const rounds = Math.max(1, arg('rounds', 2));
const BATCH = 64;
const info = await initBackend('auto');
const shape = [28, 28, 1];
const domain = { min: 0, max: 1 };
const victim = createNet(
  parseModelSpec('cnn'),
  { name: 'mnist', inputShape: shape, numClasses: 10, kind: 'image' },
  new Rng(1),
);
const r = new Rng(2);
const split = (n: number) => ({
  x: Float32Array.from({ length: n * 784 }, () => r.next()),
  y: Int32Array.from({ length: n }, () => r.int(10)),
  n,
});
const train = split(2000);
const heldOut = split(1000);
console.log(
  `backend ${info.label}; ${requests} requests of ${BATCH} inputs from ${clients} concurrent clients (over loopback, or in process; undefended rows interleaved in ${rounds} rounds)`,
);
console.log('| server | wire | requests/s | inputs/s | × in-process | p50 ms | p99 ms | client PoW s |');
console.log('|---|---|---|---|---|---|---|---|');

/** Latencies (ms) and wall seconds of one or more measured runs. */
interface Sample {
  lat: number[];
  secs: number;
  powS: number;
}
interface Row {
  requestsPerSec: number;
  inputsPerSec: number;
  p50: number;
  p99: number;
  powS: number;
}

/** `n` batches of 64 from `clients` concurrent loops, each with its own API from `connect`. */
async function sample(connect: () => Promise<PredictionApi>, n: number): Promise<Sample> {
  const lat: number[] = [];
  let powS = 0;
  const x = tf.randomUniform([BATCH, ...shape], 0, 1, 'float32', 4);
  const apis = await Promise.all(Array.from({ length: clients }, connect));
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    apis.map(async (api) => {
      while (next < n) {
        next++;
        const s = performance.now();
        const res = await api.query(x);
        lat.push(performance.now() - s);
        tf.dispose([res.probs ?? [], res.labels ?? []]);
      }
      powS += api.ledger.powSeconds;
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  x.dispose();
  return { lat, secs, powS };
}

function summarise(samples: Sample[]): Row {
  const lat = samples.flatMap((s) => s.lat).sort((a, b) => a - b);
  const secs = samples.reduce((a, s) => a + s.secs, 0);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return {
    requestsPerSec: lat.length / secs,
    inputsPerSec: (lat.length * BATCH) / secs,
    p50: q(0.5),
    p99: q(0.99),
    powS: samples.reduce((a, s) => a + s.powS, 0),
  };
}

const measure = async (connect: () => Promise<PredictionApi>) => summarise([await sample(connect, requests)]);

function print(name: string, wire: string, row: Row, base?: Row): void {
  const ratio = base ? `${(row.inputsPerSec / base.inputsPerSec).toFixed(2)}×` : '—';
  console.log(
    `| ${name} | ${wire} | ${row.requestsPerSec.toFixed(1)} | ${Math.round(row.inputsPerSec)} | ${ratio} | ${row.p50.toFixed(1)} | ${row.p99.toFixed(1)} | ${row.powS.toFixed(2)} |`,
  );
}

// warm the victim (kernels, wasm pages) so that no row pays for it
{
  const warm = new LocalPredictionApi(victim, [], { rng: new Rng(1), domain });
  const x = tf.randomUniform([BATCH, ...shape], 0, 1, 'float32', 5);
  for (let i = 0; i < 5; i++) tf.dispose((await warm.query(x)).probs!);
  x.dispose();
}

// the undefended victim in process and over loopback with each wire, in one run: the three are
// interleaved in rounds (each a share of the requests), so a busy machine's swings fall on all alike
const seeds = new Rng(3);
{
  const app = await createServer({ victim, defenses: [], domain, seed: 1 });
  const addr = await app.listen({ port: 0, host: '127.0.0.1' });
  const ways: [string, () => Promise<PredictionApi>][] = [
    ['in-process', async () => new LocalPredictionApi(victim, [], { rng: seeds.fork(), domain })],
    ['JSON', () => HttpPredictionApi.connect(addr, { wire: 'json' })],
    ['binary', () => HttpPredictionApi.connect(addr)],
  ];
  const samples = ways.map((): Sample[] => []);
  for (let round = 0; round < rounds; round++)
    for (const [i, [, connect]] of ways.entries()) samples[i].push(await sample(connect, Math.ceil(requests / rounds)));
  const rows = samples.map(summarise);
  for (const [i, [wire]] of ways.entries()) print('undefended', wire, rows[i], rows[0]);
  await app.close();
}

for (const [name, specs, pow] of [
  ['mad:eps=0.5', ['mad:eps=0.5'], false],
  ['pow (client solves)', ['pow'], true],
] as const) {
  const defenses = [];
  for (const spec of specs)
    defenses.push((await prepareDefense(spec, { victim, train, heldOut, rng: new Rng(1) })).defense);
  const app = await createServer({ victim, defenses, domain, seed: 1, pow });
  const addr = await app.listen({ port: 0, host: '127.0.0.1' });
  // the client picks the wire: binary where the server offers it, JSON under proof-of-work
  let wire = '';
  const row = await measure(async () => {
    const api = await HttpPredictionApi.connect(addr);
    wire = api.wire === 'binary' ? 'binary' : 'JSON';
    return api;
  });
  print(name, wire, row);
  await app.close();
}
