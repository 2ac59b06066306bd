/**
 * The optional native BLAS (native/mse_blas.c, OpenBLAS). When it was built (scripts/build-native.mjs
 * runs during `npm ci`) and MSE_NATIVE is not 0, mse's wasm kernels run their GEMMs and patch
 * copies through it, in place on the wasm heap. Otherwise everything stays in wasm.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeBlas {
  sgemm(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: number,
    transB: number,
    strideA: number,
    strideB: number,
    beta: number,
  ): void;
  biasAct(c: Float32Array, bias: Float32Array, rows: number, cols: number, act: number): void;
  /** out = act(im2col(x) · w + bias) over the batch, split between OpenBLAS's thread count (native/mse_blas.cc) */
  convForward(x: Float32Array, w: Float32Array, bias: Float32Array, out: Float32Array, ...dims: number[]): void;
  /** dw = Σ over chunks of im2col(x)ᵀ · dy, chunks split between threads, summed in chunk order */
  convBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, ...dims: number[]): void;
  /** dx = col2im(dy · wᵀ), chunks of examples split between threads */
  convBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, ...dims: number[]): void;
  momentum(
    w: Float32Array,
    vel: Float32Array,
    g: Float32Array,
    outW: Float32Array,
    outVel: Float32Array,
    lr: number,
    mu: number,
  ): void;
  adam(
    w: Float32Array,
    m: Float32Array,
    v: Float32Array,
    g: Float32Array,
    outW: Float32Array,
    outM: Float32Array,
    outV: Float32Array,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    b1t: number,
    b2t: number,
  ): void;
  actBiasGrad(
    dy: Float32Array,
    y: Float32Array,
    dz: Float32Array,
    db: Float32Array,
    rows: number,
    cols: number,
    relu: number,
  ): void;
  maxPoolGrad2(x: Float32Array, dy: Float32Array, dx: Float32Array, ...dims: number[]): void;
  maxPool2(x: Float32Array, out: Float32Array, ...dims: number[]): void;
  /** MAD-argmax's chosen class set per row (src/defenses/mad.ts, madArgmaxSets) */
  madArgmax(y: Float32Array, p: Float32Array, best: Int32Array, n: number, k: number): void;
  setThreads(n: number): number;
  config(): string;
}

/** the built addon; MSE_NATIVE_ADDON names another (a test points it at a missing file) */
const ADDON =
  process.env.MSE_NATIVE_ADDON ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build', 'Release', 'mse_blas.node');
let loaded: NativeBlas | null | undefined;
let why = '';

/** The addon, or null (with `nativeStatus()` saying why). */
export function nativeBlas(): NativeBlas | null {
  if (loaded !== undefined) return loaded;
  if (process.env.MSE_NATIVE === '0') {
    why = 'disabled by MSE_NATIVE=0';
    return (loaded = null);
  }
  if (!existsSync(ADDON)) {
    why = 'not built (needs g++ and Debian libopenblas0 when `npm ci` runs)';
    return (loaded = null);
  }
  const coretype = chooseCoreType();
  if (coretype) process.env.OPENBLAS_CORETYPE = coretype; // read by OpenBLAS when the addon loads it
  try {
    const blas = createRequire(import.meta.url)(ADDON) as NativeBlas;
    const err = selfCheck(blas);
    if (err) {
      why = `failed its self-check (${err})`;
      return (loaded = null);
    }
    loaded = blas;
  } catch (err) {
    why = `failed to load: ${(err as Error).message.split('\n')[0]}`;
    loaded = null;
  }
  return loaded;
}

/**
 * OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and falls back to its SSE3
 * "Prescott" kernels, 4–5× slower than its AVX-512 ones on the same core. Unless the user (or the
 * machine) already chose, pick the newest kernel family the CPU's flags support.
 */
export function chooseCoreType(): string | undefined {
  if (process.env.OPENBLAS_CORETYPE) return undefined;
  let flags: Set<string>;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    if (!line) return undefined;
    flags = new Set(line.split(':')[1].trim().split(/\s+/));
  } catch {
    return undefined;
  }
  if (readVendor() !== 'GenuineIntel') return undefined; // AMD: OpenBLAS detects Zen itself
  if (['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.has(f))) return 'SkylakeX';
  if (['avx2', 'fma'].every((f) => flags.has(f))) return 'Haswell';
  return undefined;
}

function readVendor(): string | undefined {
  try {
    return /vendor_id\s*:\s*(\S+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** A product checked against a plain loop, so a kernel family that computes wrong results is never used. */
function selfCheck(blas: NativeBlas): string | undefined {
  // an addon built from an older native/mse_blas.cc lacks what this version calls
  const missing = (
    [
      'sgemm',
      'convForward',
      'convBackpropFilter',
      'convBackpropInput',
      'adam',
      'actBiasGrad',
      'maxPoolGrad2',
      'maxPool2',
      'madArgmax',
    ] as const
  ).filter((f) => typeof blas[f] !== 'function');
  if (missing.length) return `built from older sources, no ${missing.join(', ')}: run npm run build`;
  const [m, n, k] = [37, 29, 53];
  const a = new Float32Array(m * k).map((_, i) => Math.sin(i));
  const b = new Float32Array(k * n).map((_, i) => Math.cos(i));
  const c = new Float32Array(m * n);
  blas.sgemm(a, b, c, 1, m, n, k, 0, 0, 0, 0, 0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[t * n + j];
      if (Math.abs(s - c[i * n + j]) > 1e-3 * (1 + Math.abs(s))) return `sgemm[${i},${j}] = ${c[i * n + j]}, want ${s}`;
    }
  }
  return undefined;
}

/**
 * What the pure-wasm path costs and how to leave it, in one line, when the addon could have been
 * used but is not (not built, or failed to load); undefined when it is in use or was turned off on
 * purpose (MSE_NATIVE=0). The figures are `npm run bench:perf` on the 2-core development machine
 * (README, Performance): training examples/s with the native BLAS vs pure wasm.
 */
export function nativeHint(): string | undefined {
  if (nativeBlas() || process.env.MSE_NATIVE === '0') return undefined;
  return (
    `native BLAS ${why}: training runs on pure wasm, 3–5× slower (bench:perf, 2-core Xeon: MLP 68k vs 16k, ` +
    `CNN 5.6k vs 1.3k examples/s); to build it: apt-get install g++ libopenblas0-pthread, then ` +
    `\`node scripts/build-native.mjs\` in mse's folder (or \`npm ci\` again)`
  );
}

export function nativeStatus(): string {
  const n = nativeBlas();
  return n ? `OpenBLAS (${n.config().trim()})` : why;
}
