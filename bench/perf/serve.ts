/**
 * `npm run bench:serve` — `mse serve` over loopback: requests/s and p50/p99 latency for C concurrent
 * clients sending batches of 64 MNIST-shaped inputs, undefended and with MAD and PoW (the client
 * solves every puzzle). The victim is the zoo's CNN (untrained weights cost the same); PoW is
 * calibrated on random stand-in data. A benchmark, never a test.
 * Usage: npm run bench:serve [-- --requests 200 --clients 16]
 */
import { HttpPredictionApi } from '../../src/api/http-api.js';
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
const info = await initBackend('auto');
const shape = [28, 28, 1];
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
  `backend ${info.label}; ${requests} requests of 64 inputs from ${clients} concurrent clients over loopback`,
);
console.log('| server | requests/s | inputs/s | p50 ms | p99 ms | client PoW s |');
console.log('|---|---|---|---|---|---|');
for (const [name, specs, pow] of [
  ['undefended', [], false],
  ['mad:eps=0.5', ['mad:eps=0.5'], false],
  ['pow (client solves)', ['pow'], true],
] as const) {
  const defenses = [];
  for (const spec of specs)
    defenses.push((await prepareDefense(spec, { victim, train, heldOut, rng: new Rng(1) })).defense);
  const app = await createServer({ victim, defenses, domain: { min: 0, max: 1 }, seed: 1, pow });
  const addr = await app.listen({ port: 0, host: '127.0.0.1' });
  const lat: number[] = [];
  let powS = 0;
  const x = tf.randomUniform([64, ...shape], 0, 1, 'float32', 4);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const api = await HttpPredictionApi.connect(addr);
      while (next < requests) {
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
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1);
  console.log(
    `| ${name} | ${(lat.length / secs).toFixed(1)} | ${Math.round((lat.length * 64) / secs)} | ${q(0.5)} | ${q(0.99)} | ${powS.toFixed(2)} |`,
  );
  x.dispose();
  await app.close();
}
