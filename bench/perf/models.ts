/**
 * `npm run bench:perf` — training and inference speed of the zoo's MLP and CNN, against references
 * measured in the same invocation:
 *   - mse as shipped (wasm + mse's kernels, T threads),
 *   - stock tfjs-wasm (MSE_WASM_KERNELS=stock: only the missing Conv2DBackpropFilter added), T threads,
 *   - PyTorch CPU (scripts/torch_reference.py) with T threads, when `import torch` works.
 * Prints examples/s and the ratio mse/PyTorch per model. A benchmark, never a test: it fails nothing.
 * Usage: npm run bench:perf [-- --threads 2 --train 4096 --infer 8192]
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { Rng } from '../../src/compute/rng.js';
import { fit, predictAll } from '../../src/models/train.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';

interface Speeds {
  train_ex_s: number;
  infer_ex_s: number;
}
type Result = { backend?: string; threads?: number; mlp: Speeds; cnn: Speeds; leaked_tensors?: number };

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

async function measure(threads: number, nTrain: number, nInfer: number): Promise<Result> {
  const b = await initBackend('wasm', { threads });
  const rng = new Rng(0);
  const before = tf.memory().numTensors;
  const one = async (spec: string, shape: number[], trainN: number, inferN: number): Promise<Speeds> => {
    const ds = { name: 'random', inputShape: shape, numClasses: 10, kind: 'image' as const };
    const net = createNet(parseModelSpec(spec), ds, rng.fork());
    const d = shape.reduce((a, c) => a * c, 1);
    const x = rng.fillUniform(new Float32Array(Math.max(trainN, inferN) * d), 0, 1);
    const y = Int32Array.from({ length: trainN }, () => rng.int(10));
    const opts = { epochs: 1, batchSize: 64, optimizer: 'sgd' as const, lr: 0.01, momentum: 0.9, rng: rng.fork() };
    await fit(net, { x, y, n: 256 }, opts); // warm-up: XNNPACK operator creation, heap growth
    const t0 = performance.now();
    await fit(net, { x, y, n: trainN }, opts);
    const train = trainN / ((performance.now() - t0) / 1000);
    await predictAll(net, x, 512, 256);
    const t1 = performance.now();
    await predictAll(net, x, inferN, 256);
    const infer = inferN / ((performance.now() - t1) / 1000);
    net.dispose();
    return { train_ex_s: train, infer_ex_s: infer };
  };
  const mlp = await one('mlp:hidden=256,128,activation=relu', [784], nTrain * 4, nInfer * 4);
  const cnn = await one('cnn', [28, 28, 1], nTrain, nInfer);
  return { backend: b.name, threads: b.threads, mlp, cnn, leaked_tensors: tf.memory().numTensors - before };
}

function child(kernels: 'mse' | 'stock', threads: number, nTrain: number, nInfer: number): Result | string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--threads', String(threads), '--train', String(nTrain), '--infer', String(nInfer)], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, MSE_WASM_KERNELS: kernels === 'stock' ? 'stock' : '' },
    timeout: 900_000,
  });
  if (r.status !== 0) return `failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' ')}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
}

function torch(threads: number, nTrain: number, nInfer: number): Result | string {
  const script = path.join(ROOT, 'scripts', 'torch_reference.py');
  for (const py of ['python3', '/usr/bin/python3']) {
    if (spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) continue;
    // pin the whole process to `threads` compute threads: torch's pool, and a single-threaded BLAS under it
    const r = spawnSync(py, [script, '--threads', String(threads), '--train', String(nTrain), '--infer', String(nInfer)], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
      timeout: 900_000,
    });
    if (r.status !== 0) return `failed: ${r.stderr.trim().split('\n').pop()}`;
    return JSON.parse(r.stdout.trim()) as Result;
  }
  return 'skipped: `import torch` fails (Debian: apt-get install python3-torch libopenblas0-pthread)';
}

async function main(): Promise<void> {
  const threads = arg('threads', Math.min(os.availableParallelism(), 8));
  const nTrain = arg('train', 4096);
  const nInfer = arg('infer', 8192);
  if (process.argv.includes('--child')) {
    process.stdout.write(JSON.stringify(await measure(threads, nTrain, nInfer)) + '\n');
    process.exit(0);
  }
  console.log(`bench:perf — ${threads} thread(s) on each side; CNN: ${nTrain} training / ${nInfer} inference examples, MLP: 4× that; batch 64 (train), 256 (inference)`);
  const ours = child('mse', threads, nTrain, nInfer);
  const stock = child('stock', threads, nTrain, nInfer);
  const ref = torch(threads, nTrain, nInfer);
  if (typeof ours === 'string') throw new Error(`mse run ${ours}`);
  console.log(`mse backend: ${ours.backend} (${ours.threads} threads); tensors leaked across the whole bench: ${ours.leaked_tensors}`);
  if (typeof ref === 'string') console.log(`PyTorch reference ${ref}`);
  else console.log(`PyTorch ${(ref as unknown as { torch: string }).torch}, ${ref.threads} thread(s), BLAS ${(ref as unknown as { blas: string }).blas}`);
  const targets: Record<string, number> = { 'mlp train': 0.5, 'cnn train': 0.5, 'cnn infer': 0.8 };
  const rows = [['model', 'phase', 'mse ex/s', 'stock-wasm ex/s', 'mse/stock', 'PyTorch ex/s', 'mse/PyTorch', 'target']];
  for (const m of ['mlp', 'cnn'] as const) {
    for (const [ph, key] of [['train', 'train_ex_s'], ['infer', 'infer_ex_s']] as const) {
      const o = ours[m][key];
      const s = typeof stock === 'string' ? NaN : stock[m][key];
      const p = typeof ref === 'string' ? NaN : ref[m][key];
      const t = targets[`${m} ${ph}`];
      rows.push([m, ph, o.toFixed(0), Number.isNaN(s) ? '-' : s.toFixed(0), Number.isNaN(s) ? '-' : `${(o / s).toFixed(2)}×`, Number.isNaN(p) ? '-' : p.toFixed(0), Number.isNaN(p) ? '-' : `${(o / p).toFixed(2)}×`, t ? `≥ ${t}× ${Number.isNaN(p) ? '' : o / p >= t ? 'met' : 'NOT met'}` : '']);
    }
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => v.padEnd(w[c])).join('  '));
  if (typeof stock === 'string') console.log(`stock-wasm run ${stock}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
