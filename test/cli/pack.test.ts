/**
 * What `npm pack` ships is enough to use mse: the package is packed, unpacked into a temp dir as an
 * install would lay it out (its dependencies linked from this checkout: no network in tests), and
 * the installed `mse reproduce tramer-2016` runs from there — which needs the paper specs, the
 * embedded pools and the compiled code to be in the package — and a plugin placed outside any
 * project imports 'mse' and runs.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HAVE_SHARED, SHARED_DATA } from '../testing/fixtures.js';

const run = (cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) => {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
    timeout: 300_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

describe.skipIf(!HAVE_SHARED)('the packed package', () => {
  it('installed into a temp dir, runs mse reproduce tramer-2016 and a plugin', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-pack-'));
    // dist is built already (npm test builds first): pack without re-running the build scripts
    const pack = run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--silent'], process.cwd());
    expect(pack.code, pack.err).toBe(0);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();
    const prefix = path.join(dir, 'node_modules', 'mse');
    mkdirSync(prefix, { recursive: true });
    expect(run('tar', ['-xzf', path.join(dir, tarball!), '-C', prefix, '--strip-components', '1'], dir).code).toBe(0);
    for (const f of [
      'bench/papers/tramer-2016.json',
      'bench/pools',
      'dist/index.js',
      'bin/mse.js',
      'examples/plugins/temperature.mjs',
    ])
      expect(existsSync(path.join(prefix, f)), f).toBe(true);
    // nothing of the checkout's own state travels: no results, no tests, no sources
    for (const f of ['test', 'src', 'results']) expect(existsSync(path.join(prefix, f)), f).toBe(false);
    symlinkSync(path.resolve('node_modules'), path.join(prefix, 'node_modules'), 'dir');
    const bin = path.join(prefix, 'bin', 'mse.js');
    const out = path.join(dir, 'tramer');
    const r = run(process.execPath, [bin, 'reproduce', 'tramer-2016', '--scale', 'ci', '--out', out], dir, {
      MSE_DATA_DIR: SHARED_DATA,
    });
    expect(r.code, r.err.slice(-2000)).toBe(0);
    expect(r.out).toMatch(/\d+ passed, 0 failed/);
    // a plugin outside any project (no node_modules beside it) still imports 'mse': the mse that loads it
    const plugin = path.join(dir, 'elsewhere', 'temperature.mjs');
    mkdirSync(path.dirname(plugin));
    copyFileSync(path.join(prefix, 'examples/plugins/temperature.mjs'), plugin);
    const l = run(process.execPath, [bin, '--plugin', plugin, 'list', 'defenses'], os.tmpdir());
    expect(l.code, l.err).toBe(0);
    expect(l.out).toContain('temperature (plugin');
  });
});
