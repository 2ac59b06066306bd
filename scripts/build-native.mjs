#!/usr/bin/env node
// Builds the optional native BLAS addon (native/, OpenBLAS) during `npm ci` / `npm run build`.
// Never fails the install: without g++, Node's headers or Debian's libopenblas0, mse runs on
// pure wasm and `mse doctor` says why. MSE_NATIVE=0 skips it.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'native');
const say = (msg) => process.stderr.write(`mse native BLAS: ${msg}\n`);

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((p) => p && existsSync(p));
}

function haveOpenBlas() {
  try {
    return execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }).includes('libopenblas.so.0');
  } catch {
    return [
      '/usr/lib/x86_64-linux-gnu/libopenblas.so.0',
      '/usr/lib/aarch64-linux-gnu/libopenblas.so.0',
      '/usr/lib/libopenblas.so.0',
    ].some(existsSync);
  }
}

async function main() {
  if (process.env.MSE_NATIVE === '0') return say('skipped (MSE_NATIVE=0)');
  if (!haveOpenBlas())
    return say('skipped: libopenblas.so.0 not found (Debian: apt-get install libopenblas0-pthread); using pure wasm');
  const gyp = nodeGyp();
  if (!gyp) return say('skipped: node-gyp not found; using pure wasm');
  const args = [gyp, 'rebuild', '-C', dir];
  const nodedir = process.env.npm_config_nodedir || (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  const addon = path.join(dir, 'build', 'Release', 'mse_blas.node');
  if (r.status !== 0 || !existsSync(addon)) {
    rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    const why = `${r.stderr ?? ''}${r.stdout ?? ''}`
      .split('\n')
      .filter((l) => /error/i.test(l))
      .slice(0, 3)
      .join(' | ');
    return say(`build failed, using pure wasm (${why || `exit ${r.status}`})`);
  }
  try {
    // the kernel family mse will pick at run time (dist/ was just built by tsc)
    const coretype = await import('../dist/compute/native.js').then((m) => m.chooseCoreType()).catch(() => undefined);
    if (coretype) process.env.OPENBLAS_CORETYPE = coretype;
    // smoke test: [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
    const blas = createRequire(import.meta.url)(addon);
    const c = new Float32Array(4);
    blas.sgemm(new Float32Array([1, 2, 3, 4]), new Float32Array([5, 6, 7, 8]), c, 1, 2, 2, 2, 0, 0, 0, 0, 0);
    if (c.join() !== '19,22,43,50') throw new Error(`sgemm gave ${c.join()}`);
    say(`built (${blas.config().trim()})`);
  } catch (err) {
    rmSync(path.join(dir, 'build'), { recursive: true, force: true });
    say(`built but failed its smoke test, using pure wasm (${err.message})`);
  }
}

await main();
