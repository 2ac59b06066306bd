/**
 * `npm run bench:defenses` (also run by `npm run bench:perf`) — answered queries/s of a defended
 * API versus the same victim undefended, measured in the same process, alternating rounds. The
 * victim is the zoo's MNIST CNN (weights need not be trained for speed); batches of 256. Target
 * for MAD (issue 6): ≥ 0.5× undefended. Prints ratios; a benchmark, never a test.
 * Usage: npm run bench:defenses [-- --n 4096 --rounds 3]
 */
import * as tf from '@tensorflow/tfjs';
import { LocalPredictionApi } from '../../src/api/local-api.js';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { prepareDefense } from '../../src/defenses/registry.js';
import type { Defense } from '../../src/api/types.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const n = arg('n', 4096);
const rounds = arg('rounds', 3);
const batch = 256;
const info = await initBackend('auto');
console.log(
  `backend ${info.label}, ${info.threads} threads; ${n} queries per measurement, batch ${batch}, best of ${rounds}`,
);
const shape = [28, 28, 1];
const victim = createNet(
  parseModelSpec('cnn'),
  { name: 'mnist', inputShape: shape, numClasses: 10, kind: 'image' },
  new Rng(1),
);
const x = tf.randomUniform([batch, ...shape], 0, 1, 'float32', 3);
const domain = { min: 0, max: 1 };

// the defender's own data for defenses that prepare from it (MAD's proxy needs only the victim's shape)
const split = { x: new Float32Array(64 * 784), y: new Int32Array(64), n: 64 };
const defenses = new Map<string, Defense[]>();
async function stack(spec: string): Promise<Defense[]> {
  if (spec === 'none') return [];
  if (!defenses.has(spec))
    defenses.set(spec, [
      (await prepareDefense(spec, { victim, train: split, heldOut: split, rng: new Rng(3) })).defense,
    ]);
  return defenses.get(spec)!;
}

async function rate(spec: string): Promise<number> {
  const api = new LocalPredictionApi(victim, await stack(spec), { rng: new Rng(2), domain });
  const once = async () => {
    const r = await api.query(x);
    await (r.probs ?? r.labels)!.data();
    tf.dispose([r.probs ?? [], r.labels ?? []]);
  };
  await once(); // warm-up
  const t0 = performance.now();
  for (let s = 0; s < n; s += batch) await once();
  return n / ((performance.now() - t0) / 1000);
}

const specs = [
  'none',
  'mad:eps=1',
  'mad:eps=1,argmax=true',
  'mad:eps=1,proxy=mlp',
  'reverse-sigmoid:beta=0.5',
  'noise:sigma=0.1',
  'top1',
];
const best = new Map<string, number>();
for (let r = 0; r < rounds; r++) for (const s of specs) best.set(s, Math.max(best.get(s) ?? 0, await rate(s)));
const base = best.get('none')!;
console.log('| defense | queries/s | × undefended |');
console.log('|---|---|---|');
for (const s of specs) console.log(`| ${s} | ${Math.round(best.get(s)!)} | ${(best.get(s)! / base).toFixed(2)}× |`);
