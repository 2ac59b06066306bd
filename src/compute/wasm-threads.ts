/**
 * Multi-threaded wasm in Node. tfjs-backend-wasm ships a threaded SIMD build (XNNPACK on a
 * pthreadpool) but disables it under Node (tfjs issue 3830) for three reasons we work around here:
 *  1. it starts its pthread workers from `blob:` URLs, which Node's Worker rejects: we start them
 *     from the worker source the package exports, with `eval: true`;
 *  2. each worker then loads the main script from a Blob: we point it at the script's file;
 *  3. the C++ side sizes its pool as cores/2 (hyper-threading heuristic) from os.cpus(): we report
 *     twice the cores while the backend initialises, so `threads` is what we asked for.
 * Workers are unref'd so they never keep the process alive. If anything fails, the caller falls
 * back to the single-threaded SIMD build.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import wt from 'node:worker_threads';

const require = createRequire(import.meta.url);
let installed = false;

interface LoadMessage {
  cmd?: string;
  urlOrBlob?: unknown;
}

export function installNodeWasmThreads(): void {
  if (installed) return;
  const workerSource: string = (
    require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
      wasmWorkerContents: string;
    }
  ).wasmWorkerContents.replace(/\n/g, '\\n');
  const mainScript = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const NodeWorker = wt.Worker;
  class BlobFreeWorker extends NodeWorker {
    constructor(filename: string | URL, options?: wt.WorkerOptions) {
      if (typeof filename === 'string' && filename.startsWith('blob:')) super(workerSource, { ...options, eval: true });
      else super(filename, options);
      this.unref();
    }
    override postMessage(msg: unknown, transfer?: readonly wt.TransferListItem[]): void {
      const m = msg as LoadMessage;
      if (m && m.cmd === 'load' && typeof m.urlOrBlob !== 'string') msg = { ...m, urlOrBlob: mainScript };
      super.postMessage(msg, transfer);
    }
  }
  (wt as { Worker: typeof NodeWorker }).Worker = BlobFreeWorker;
  installed = true;
}

/** Run `f` while os.cpus() reports twice the real count (see 3. above). */
export async function withDoubledCpuCount<T>(f: () => Promise<T>): Promise<T> {
  const real = os.cpus;
  os.cpus = () => {
    const c = real();
    return [...c, ...c];
  };
  try {
    return await f();
  } finally {
    os.cpus = real;
  }
}

export function defaultThreads(): number {
  const env = Number(process.env.MSE_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, Math.min(8, os.availableParallelism()));
}
