/**
 * Backend selection at run time, fastest first: tfjs-node-gpu → tfjs-node → wasm → cpu.
 * tfjs-node(-gpu) are optional dependencies (their install downloads libtensorflow, which fails
 * offline), so each is tried by dynamic import and skipped when absent. tfjs can fall back
 * silently, so we always read back `tf.getBackend()` and report that.
 */
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { UsageError, MseError } from '../errors.js';
import { registerWasmKernels } from './kernels/index.js';
import { defaultThreads, installNodeWasmThreads, withDoubledCpuCount } from './wasm-threads.js';
import { nativeBlas, nativeStatus } from './native.js';

export const BACKENDS = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** mse's name for it: node-gpu | node | wasm | cpu */
  name: BackendChoice;
  /** what tf.getBackend() says (tensorflow | wasm | cpu) */
  tfBackend: string;
  /** compute threads (wasm: the XNNPACK pool, or the native addon's own when it is used) */
  threads: number;
  /** 'OpenBLAS (…)' when mse's wasm kernels run their GEMMs natively, else why not */
  native: string;
  /** what result rows record: tf.getBackend(), plus '+openblas' when the native BLAS is in use */
  label: string;
  /** why earlier candidates were skipped */
  skipped: string[];
}

export interface BackendOptions {
  /** wasm threads; default MSE_THREADS or the machine's cores (max 8) */
  threads?: number;
}

let active: BackendInfo | undefined;

export function parseBackend(value: string): BackendChoice {
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendChoice;
  throw new UsageError(`unknown backend '${value}'. Available: ${BACKENDS.join(', ')}, auto`);
}

async function tryNode(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<string | undefined> {
  try {
    await import(pkg);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ERR_MODULE_NOT_FOUND'
      ? `${pkg} not installed`
      : `${pkg} failed to load (${(err as Error).message.split('\n')[0]})`;
  }
  if (!(await tf.setBackend('tensorflow'))) return `${pkg} loaded but the tensorflow backend failed to initialise`;
  return undefined;
}

async function activateWasm(threads: number): Promise<string | undefined> {
  if (threads > 1) {
    try {
      installNodeWasmThreads();
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
      tfwasm.setThreadsCount(threads);
      if (await withDoubledCpuCount(() => tf.setBackend('wasm'))) return undefined;
    } catch {
      // fall through to the single-threaded build
    }
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  }
  return (await tf.setBackend('wasm')) ? undefined : 'wasm backend failed to initialise';
}

async function activate(choice: BackendChoice, threads: number): Promise<string | undefined> {
  switch (choice) {
    case 'node-gpu':
      return tryNode('@tensorflow/tfjs-node-gpu');
    case 'node':
      return tryNode('@tensorflow/tfjs-node');
    case 'wasm': {
      // With the native BLAS, GEMMs and convolutions run on the addon's own threads (OpenBLAS stays
      // single-threaded); the rest of the wasm work is elementwise, where the single-threaded build
      // is faster (no shared memory).
      const blas = nativeBlas();
      if (blas) blas.setThreads(threads);
      const why = await activateWasm(blas ? 1 : threads);
      if (why === undefined) registerWasmKernels();
      return why;
    }
    case 'cpu':
      if (!(await tf.setBackend('cpu'))) return 'cpu backend failed to initialise';
      return undefined;
  }
}

/**
 * Initialise the compute backend. `preferred` = a single backend (fails if unavailable) or
 * 'auto' (fastest available). Env MSE_BACKEND is honoured when no flag is given.
 */
export async function initBackend(
  preferred: BackendChoice | 'auto' = 'auto',
  opts: BackendOptions = {},
): Promise<BackendInfo> {
  const threads = opts.threads ?? defaultThreads();
  // PROD silences tfjs's console hints (e.g. "install tfjs-node"); mse prints its own backend line.
  tf.env().set('PROD', true);
  const want = preferred === 'auto' && process.env.MSE_BACKEND ? parseBackend(process.env.MSE_BACKEND) : preferred;
  if (active && (want === 'auto' || want === active.name)) return active;
  const order: readonly BackendChoice[] = want === 'auto' ? BACKENDS : [want];
  const skipped: string[] = [];
  for (const choice of order) {
    const why = await activate(choice, threads);
    if (why === undefined) {
      await tf.ready();
      const blas = choice === 'wasm' ? nativeBlas() : null;
      // the addon's own count (it clamps to 1…16), as it runs them
      const used =
        choice === 'wasm'
          ? blas
            ? blas.setThreads(threads)
            : tfwasm.getThreadsCount()
          : choice === 'cpu'
            ? 1
            : threads;
      const native = choice === 'wasm' ? nativeStatus() : 'not used by this backend';
      active = {
        name: choice,
        tfBackend: tf.getBackend(),
        threads: used,
        native,
        label: blas ? `${tf.getBackend()}+openblas` : tf.getBackend(),
        skipped,
      };
      return active;
    }
    skipped.push(`${choice}: ${why}`);
  }
  throw new MseError(
    'backend',
    `backend '${want}' is not available: ${skipped.join('; ')}`,
    'try --backend wasm or --backend cpu',
  );
}

export function activeBackend(): BackendInfo {
  if (!active) throw new Error('compute backend not initialised: call initBackend() first');
  return active;
}

export { tf };
