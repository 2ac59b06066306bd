/**
 * `npm run bench:headline` (also run by `npm run bench:perf`) — the command users run first, timed
 * end to end as a user runs it (issue 18.5): `mse bench --defense poison --dataset mnist` with the
 * victim already cached (target ≤ 90 s on 2 cores), and `--quick` from a cold victim cache (target
 * ≤ 60 s). Each prints its wall time, its ratio to the target and the sweep's own phase line. Needs
 * the built CLI (`npm run build`) and MNIST where mse finds it (MSE_DATA_DIR). A benchmark, never a test.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BIN = path.resolve('bin/mse.js');

function run(args: string[], env: Record<string, string>): { s: number; phases: string; backend: string } {
  const out = mkdtempSync(path.join(os.tmpdir(), 'mse-headline-'));
  try {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [BIN, ...args, '-o', out], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', ...env },
    });
    const s = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`mse ${args.join(' ')} failed: ${r.stderr.trim().split('\n').pop()}`);
    const phases = r.stdout.split('\n').find((l) => l.startsWith('time by phase')) ?? '(no phase line)';
    const backend = /backend (\S+); rows in/.exec(r.stdout)?.[1] ?? '?';
    return { s, phases, backend };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const headline = ['bench', '--defense', 'poison', '--dataset', 'mnist'];
// warm the victim cache the way a user's first run would, then time the command itself
run([...headline, '--quick'], {});
const warm = run(headline, {});
console.log(`backend ${warm.backend}`);
console.log(
  `mse ${headline.join(' ')} (victim cached): ${warm.s.toFixed(0)} s, ${(warm.s / 90).toFixed(2)}× the 90 s target`,
);
console.log(`  ${warm.phases}`);
const coldCache = mkdtempSync(path.join(os.tmpdir(), 'mse-cold-cache-'));
try {
  const cold = run([...headline, '--quick'], { MSE_CACHE_DIR: coldCache });
  console.log(
    `mse ${headline.join(' ')} --quick (cold victim cache): ${cold.s.toFixed(0)} s, ${(cold.s / 60).toFixed(2)}× the 60 s target`,
  );
  console.log(`  ${cold.phases}`);
} finally {
  rmSync(coldCache, { recursive: true, force: true });
}
