/**
 * `npm run bench:perf` — training and inference speed of the zoo's MLP and CNN, against references
 * measured in the same invocation, each side using T cores (default: all):
 *   - mse as shipped (wasm + mse's kernels, with the native BLAS when built): one process of T
 *     threads, and T processes of one thread (how a sweep uses the machine: one cell per worker);
 *   - mse without the native BLAS (MSE_NATIVE=0: mse's pure-wasm kernels);
 *   - stock tfjs-wasm (MSE_WASM_KERNELS=stock: only the missing Conv2DBackpropFilter added);
 *   - PyTorch CPU (scripts/torch_reference.py), one process of T threads and T of one thread,
 *     when `import torch` works.
 * Each model/phase is timed in fresh processes that warm up, then start together on a signal, so
 * the P-process figures measure P workers running over the same interval (Σ examples ÷ slowest).
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

type Model = 'mlp' | 'cnn';
type Phase = 'train' | 'infer';
const SPECS: Record<Model, { spec: string; shape: number[] }> = {
  mlp: { spec: 'mlp:hidden=256,128,activation=relu', shape: [784] },
  cnn: { spec: 'cnn', shape: [28, 28, 1] },
};

/** Child: warm up one model/phase, print "ready", time it once "go" arrives on stdin. */
async function child(model: Model, phase: Phase, threads: number, n: number): Promise<void> {
  const b = await initBackend('wasm', { threads });
  const before = tf.memory().numTensors;
  const rng = new Rng(0);
  const { spec, shape } = SPECS[model];
  const ds = { name: 'random', inputShape: shape, numClasses: 10, kind: 'image' as const };
  const net = createNet(parseModelSpec(spec), ds, rng.fork());
  const d = shape.reduce((a, c) => a * c, 1);
  const x = rng.fillUniform(new Float32Array(n * d), 0, 1);
  const y = Int32Array.from({ length: n }, () => rng.int(10));
  const opts = { epochs: 1, batchSize: 64, optimizer: 'sgd' as const, lr: 0.01, momentum: 0.9, rng: rng.fork() };
  if (phase === 'train') await fit(net, { x, y, n: Math.min(n, 512) }, opts);
  else await predictAll(net, x, Math.min(n, 512), 256); // warm-up: operator creation, heap growth
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  const t0 = performance.now();
  if (phase === 'train') await fit(net, { x, y, n }, opts);
  else await predictAll(net, x, n, 256);
  const seconds = (performance.now() - t0) / 1000;
  net.dispose();
  process.stdout.write(
    JSON.stringify({
      backend: b.label,
      threads: b.threads,
      examples: n,
      seconds,
      leaked_tensors: tf.memory().numTensors - before,
    }) + '\n',
  );
  process.exit(0);
}

interface Timed {
  examples: number;
  seconds: number;
  backend?: string;
  leaked_tensors?: number;
  torch?: string;
  blas?: string;
}

/** Start `procs` processes, wait until all are warm, start them together; aggregate = Σ examples / slowest time. */
function synced(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  procs: number,
): Promise<{ rate: number; first: Timed }> {
  return new Promise((resolve, reject) => {
    const kids = Array.from({ length: procs }, () =>
      spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    const outs = kids.map(() => '');
    const errs = kids.map(() => '');
    let ready = 0;
    let done = 0;
    const results: Timed[] = [];
    kids.forEach((k, i) => {
      k.stderr.on('data', (c: Buffer) => (errs[i] += c.toString()));
      k.stdout.on('data', (c: Buffer) => {
        outs[i] += c.toString();
        if (outs[i].startsWith('ready\n') && !(k as unknown as { ready?: boolean }).ready) {
          (k as unknown as { ready?: boolean }).ready = true;
          if (++ready === procs) for (const kk of kids) kk.stdin.write('go\n');
        }
      });
      k.on('error', reject);
      k.on('close', (code) => {
        if (code !== 0) return reject(new Error(errs[i].trim().split('\n').slice(-3).join(' ') || `exit ${code}`));
        results.push(JSON.parse(outs[i].trim().split('\n').pop()!) as Timed);
        if (++done === procs) {
          const slowest = Math.max(...results.map((r) => r.seconds));
          resolve({ rate: results.reduce((a, r) => a + r.examples, 0) / slowest, first: results[0] });
        }
      });
    });
  });
}

const PHASES: Array<[Model, Phase]> = [
  ['mlp', 'train'],
  ['mlp', 'infer'],
  ['cnn', 'train'],
  ['cnn', 'infer'],
];

// the MLP is ~40× cheaper per example: 16× the examples keeps each timed phase near a second or more
function counts(model: Model, phase: Phase, nTrain: number, nInfer: number): number {
  return (phase === 'train' ? nTrain : nInfer) * (model === 'mlp' ? 16 : 1);
}

async function mse(
  kernels: 'mse' | 'wasm-only' | 'stock',
  procs: number,
  threads: number,
  nTrain: number,
  nInfer: number,
): Promise<Result> {
  const env = {
    MSE_WASM_KERNELS: kernels === 'stock' ? 'stock' : '',
    MSE_NATIVE: kernels === 'mse' ? (process.env.MSE_NATIVE ?? '') : '0',
  };
  const res: Result = {
    mlp: { train_ex_s: 0, infer_ex_s: 0 },
    cnn: { train_ex_s: 0, infer_ex_s: 0 },
    leaked_tensors: 0,
  };
  // single-threaded workers (a sweep's layout) get V8's single-threaded GC: its helper threads would
  // otherwise take ~⅓ of a core per process and oversubscribe the machine (measured: 48k → 58k ex/s
  // for two MLP-training workers on 2 cores)
  const v8 = threads === 1 && procs > 1 ? ['--single-threaded-gc'] : [];
  for (const [m, ph] of PHASES) {
    const args = [
      ...v8,
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      '--model',
      m,
      '--phase',
      ph,
      '--threads',
      String(threads),
      '--n',
      String(counts(m, ph, nTrain, nInfer)),
    ];
    const r = await synced(process.execPath, args, env, procs);
    res[m][ph === 'train' ? 'train_ex_s' : 'infer_ex_s'] = r.rate;
    res.backend = r.first.backend;
    res.leaked_tensors = (res.leaked_tensors ?? 0) + (r.first.leaked_tensors ?? 0);
  }
  return res;
}

function findTorch(): string | undefined {
  return ['python3', '/usr/bin/python3'].find(
    (py) => spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0,
  );
}

async function torch(
  py: string,
  procs: number,
  threads: number,
  nTrain: number,
  nInfer: number,
): Promise<Result & { torch?: string; blas?: string }> {
  const script = path.join(ROOT, 'scripts', 'torch_reference.py');
  // each process pinned to `threads` compute threads: torch's pool, and a single-threaded BLAS under it,
  // with the same OpenBLAS kernel family mse picks (Debian's OpenBLAS falls back to SSE3 on new Xeons)
  const coretype = process.env.OPENBLAS_CORETYPE ?? chooseCoreType();
  const env = {
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: '1',
    MKL_NUM_THREADS: '1',
    ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}),
  };
  const res: Result & { torch?: string; blas?: string } = {
    mlp: { train_ex_s: 0, infer_ex_s: 0 },
    cnn: { train_ex_s: 0, infer_ex_s: 0 },
  };
  for (const [m, ph] of PHASES) {
    const r = await synced(
      py,
      [
        script,
        '--threads',
        String(threads),
        '--model',
        m,
        '--phase',
        ph,
        '--n',
        String(counts(m, ph, nTrain, nInfer)),
        '--sync',
      ],
      env,
      procs,
    );
    res[m][ph === 'train' ? 'train_ex_s' : 'infer_ex_s'] = r.rate;
    res.torch = r.first.torch;
    res.blas = r.first.blas;
  }
  return res;
}

async function main(): Promise<void> {
  const threads = arg('threads', Math.min(os.availableParallelism(), 8));
  const nTrain = arg('train', 4096);
  const nInfer = arg('infer', 8192);
  if (process.argv.includes('--child')) {
    const get = (k: string) => process.argv[process.argv.indexOf(`--${k}`) + 1];
    return child(get('model') as Model, get('phase') as Phase, threads, Number(get('n')));
  }
  const T = threads;
  console.log(
    `bench:perf — ${T} cores' worth on each side; CNN: ${nTrain} training / ${nInfer} inference examples per process, MLP: 16× that; batch 64 (train), 256 (inference)`,
  );
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
    console.log(
      'PyTorch reference skipped: `import torch` fails (Debian: apt-get install python3-torch libopenblas0-pthread)',
    );
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
  if (ours)
    console.log(`mse backend: ${ours.backend}; tensors left behind by the timed phases: ${ours.leaked_tensors}`);
  const t1 = results.get(`PyTorch 1×${T}t`) as (Result & { torch?: string; blas?: string }) | undefined;
  if (t1) console.log(`PyTorch ${t1.torch} (BLAS ${t1.blas})`);
  console.log('examples/s; "P×Nt" = P processes of N threads, speeds summed; ratio = best mse ÷ best PyTorch');
  const names = [...results.keys()];
  // issue 18's targets: PyTorch speed everywhere (issue 3's were 0.5× training, 0.8× CNN inference)
  const targets: Record<string, number> = { 'mlp train': 1, 'mlp infer': 1, 'cnn train': 1, 'cnn infer': 1 };
  // the targets hold per layout too: one process of T threads against PyTorch's, T workers against T
  const rows = [['model', 'phase', ...names, `1×${T}t ratio`, `${T}×1t ratio`, 'mse/PyTorch', 'target']];
  for (const m of ['mlp', 'cnn'] as const) {
    for (const [ph, key] of [
      ['train', 'train_ex_s'],
      ['infer', 'infer_ex_s'],
    ] as const) {
      const v = (n: string) => results.get(n)?.[m][key] ?? NaN;
      const best = (prefix: string) => Math.max(...names.filter((n) => n.startsWith(prefix)).map(v));
      const ratio = Math.max(v(`mse 1×${T}t`), v(`mse ${T}×1t`)) / best('PyTorch ');
      const t = targets[`${m} ${ph}`];
      const layout = (a: string, b: string) => {
        const r = v(a) / v(b);
        return Number.isFinite(r) ? `${r.toFixed(2)}×` : '-';
      };
      rows.push([
        m,
        ph,
        ...names.map((n) => v(n).toFixed(0)),
        layout(`mse 1×${T}t`, `PyTorch 1×${T}t`),
        layout(`mse ${T}×1t`, `PyTorch ${T}×1t`),
        Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '-',
        t ? `≥ ${t}×${Number.isFinite(ratio) ? (ratio >= t ? ' met' : ' not met') : ''}` : '',
      ]);
    }
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => v.padEnd(w[c])).join('  '));
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
