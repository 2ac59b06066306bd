/**
 * `npm run bench:perf` — training and inference speed of the zoo's MLP and CNN, against references
 * measured in the same invocation, each side using T cores (default: all):
 *   - mse as shipped (wasm + mse's kernels, with the native BLAS when built): one process of T
 *     threads, and T processes of one thread (how a sweep uses the machine: one cell per worker);
 *   - mse without the native BLAS (MSE_NATIVE=0: mse's pure-wasm kernels);
 *   - stock tfjs-wasm (MSE_WASM_KERNELS=stock: only the missing Conv2DBackpropFilter added);
 *   - PyTorch CPU (scripts/torch_reference.py), one process of T threads and T of one thread,
 *     when `import torch` works.
 * Prints examples/s and best-mse ÷ best-PyTorch per model and phase. A benchmark, never a test.
 * Usage: npm run bench:perf [-- --threads 2 --train 4096 --infer 8192]
 */
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/compute/backend.js';
import { chooseCoreType } from '../../src/compute/native.js';
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
  return { backend: b.label, threads: b.threads, mlp, cnn, leaked_tensors: tf.memory().numTensors - before };
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n').pop()!) : reject(new Error(err.trim().split('\n').slice(-3).join(' ')))));
  });
}

/** `procs` concurrent processes of `threads` threads each; speeds are summed (aggregate throughput). */
async function mse(kernels: 'mse' | 'wasm-only' | 'stock', procs: number, threads: number, nTrain: number, nInfer: number): Promise<Result> {
  const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', '--threads', String(threads), '--train', String(nTrain), '--infer', String(nInfer)];
  const env = { MSE_WASM_KERNELS: kernels === 'stock' ? 'stock' : '', MSE_NATIVE: kernels === 'mse' ? (process.env.MSE_NATIVE ?? '') : '0' };
  const outs = await Promise.all(Array.from({ length: procs }, () => run(process.execPath, args, env)));
  return sum(outs.map((o) => JSON.parse(o) as Result));
}

function sum(rs: Result[]): Result {
  const add = (k: 'mlp' | 'cnn'): Speeds => ({ train_ex_s: rs.reduce((a, r) => a + r[k].train_ex_s, 0), infer_ex_s: rs.reduce((a, r) => a + r[k].infer_ex_s, 0) });
  return { ...rs[0], mlp: add('mlp'), cnn: add('cnn'), leaked_tensors: rs.reduce((a, r) => a + (r.leaked_tensors ?? 0), 0) };
}

function findTorch(): string | undefined {
  return ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
}

async function torch(py: string, procs: number, threads: number, nTrain: number, nInfer: number): Promise<Result & { torch?: string; blas?: string }> {
  const script = path.join(ROOT, 'scripts', 'torch_reference.py');
  // each process pinned to `threads` compute threads: torch's pool, and a single-threaded BLAS under it
  // …and the same OpenBLAS kernel family mse picks (Debian's OpenBLAS falls back to SSE3 on new Xeons)
  const coretype = process.env.OPENBLAS_CORETYPE ?? chooseCoreType();
  const env = { OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1', ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}) };
  const outs = await Promise.all(Array.from({ length: procs }, () => run(py, [script, '--threads', String(threads), '--train', String(nTrain), '--infer', String(nInfer)], env)));
  return sum(outs.map((o) => JSON.parse(o) as Result));
}

async function main(): Promise<void> {
  const threads = arg('threads', Math.min(os.availableParallelism(), 8));
  const nTrain = arg('train', 4096);
  const nInfer = arg('infer', 8192);
  if (process.argv.includes('--child')) {
    process.stdout.write(JSON.stringify(await measure(threads, nTrain, nInfer)) + '\n');
    process.exit(0);
  }
  const T = threads;
  console.log(`bench:perf — ${T} cores' worth on each side; CNN: ${nTrain} training / ${nInfer} inference examples per process, MLP: 4× that; batch 64 (train), 256 (inference)`);
  // one configuration at a time, so they never compete for the cores
  const configs: Array<[string, () => Promise<Result>]> = [
    [`mse 1×${T}t`, () => mse('mse', 1, T, nTrain, nInfer)],
    [`mse ${T}×1t`, () => mse('mse', T, 1, nTrain, nInfer)],
    [`mse-wasm-only 1×${T}t`, () => mse('wasm-only', 1, T, nTrain, nInfer)],
    [`stock-wasm 1×${T}t`, () => mse('stock', 1, T, nTrain, nInfer)],
  ];
  const py = findTorch();
  if (py) {
    configs.push([`PyTorch 1×${T}t`, () => torch(py, 1, T, nTrain, nInfer)]);
    if (T > 1) configs.push([`PyTorch ${T}×1t`, () => torch(py, T, 1, nTrain, nInfer)]);
  } else {
    console.log('PyTorch reference skipped: `import torch` fails (Debian: apt-get install python3-torch libopenblas0-pthread)');
  }
  const results = new Map<string, Result>();
  for (const [name, f] of configs) {
    try {
      results.set(name, await f());
    } catch (err) {
      console.log(`${name}: failed: ${(err as Error).message}`);
    }
  }
  const ours = results.get(`mse 1×${T}t`);
  if (ours) console.log(`mse backend: ${ours.backend}; tensors left after the bench: ${ours.leaked_tensors}`);
  const t1 = results.get(`PyTorch 1×${T}t`) as (Result & { torch?: string; blas?: string }) | undefined;
  if (t1) console.log(`PyTorch ${t1.torch} (BLAS ${t1.blas})`);
  console.log('examples/s; "P×Nt" = P processes of N threads, speeds summed; ratio = best mse ÷ best PyTorch');
  const names = [...results.keys()];
  const targets: Record<string, number> = { 'mlp train': 0.5, 'cnn train': 0.5, 'cnn infer': 0.8 };
  const rows = [['model', 'phase', ...names, 'mse/PyTorch', 'target']];
  for (const m of ['mlp', 'cnn'] as const) {
    for (const [ph, key] of [['train', 'train_ex_s'], ['infer', 'infer_ex_s']] as const) {
      const v = (n: string) => results.get(n)?.[m][key] ?? NaN;
      const best = (prefix: string) => Math.max(...names.filter((n) => n.startsWith(prefix)).map(v));
      const ratio = Math.max(v(`mse 1×${T}t`), v(`mse ${T}×1t`)) / best('PyTorch ');
      const t = targets[`${m} ${ph}`];
      rows.push([m, ph, ...names.map((n) => v(n).toFixed(0)), Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '-', t ? `≥ ${t}×${Number.isFinite(ratio) ? (ratio >= t ? ' met' : ' not met') : ''}` : '']);
    }
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => v.padEnd(w[c])).join('  '));
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
