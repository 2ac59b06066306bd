/**
 * Issue 13, items 8, 12, 13 and 14 through the built CLI (npm test builds first): bad start-up
 * input for `mse serve`, and `mse attack --target` against a lying server, each give one line and
 * the right exit code — before any victim is trained.
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

function mse(args: string[]) {
  const r = spawnSync(process.execPath, ['bin/mse.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
/** The same, without blocking this process's event loop (a server in this process must answer). */
function mseAsync(args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['bin/mse.js', ...args], { env: { ...process.env, NO_COLOR: '1' } });
    let err = '';
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, err });
    });
  });
}
const oneLine = (s: string) => s.trim().split('\n');

describe('mse serve: start-up errors are one line', () => {
  it('item 14: --port out of range is a usage error (exit 2)', () => {
    for (const port of ['70000', '-1', '65536', 'http']) {
      const r = mse(['serve', '-d', 'blobs', '--port', port]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/port/);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it('item 14: a port in use and a host that is not an address here exit 1 with one line', async () => {
    const holder = createNetServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as AddressInfo).port;
    try {
      const inUse = mse(['serve', '-d', 'blobs', '--port', String(port)]);
      expect(inUse.code).toBe(1);
      expect(oneLine(inUse.err)).toHaveLength(1);
      expect(inUse.err).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*already in use`));
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
    const badHost = mse(['serve', '-d', 'blobs', '--port', '0', '--host', '999.1.1.1']);
    expect(badHost.code).toBe(1);
    expect(oneLine(badHost.err)).toHaveLength(1);
    expect(badHost.err).toMatch(/999\.1\.1\.1/);
  });

  it('item 12: an audit log that cannot be written exits 1 with one line', () => {
    const r = mse(['serve', '-d', 'blobs', '--port', '0', '--audit-log', '/nonexistent/dir/a.log']);
    expect(r.code).toBe(1);
    expect(oneLine(r.err)).toHaveLength(1);
    expect(r.err).toMatch(/audit log.*\/nonexistent\/dir\/a\.log/);
  });

  it('item 8: a bad keys file exits 1 with one line naming the file and the entry', () => {
    const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'mse-keys-')), 'keys.json');
    writeFileSync(
      f,
      JSON.stringify({
        keys: [
          { key: 'a', id: 'alice' },
          { key: 'b', id: 'bob', budget: 'abc' },
        ],
      }),
    );
    const r = mse(['serve', '-d', 'blobs', '--port', '0', '--keys', f]);
    expect(r.code).toBe(1);
    expect(oneLine(r.err)).toHaveLength(1);
    expect(r.err).toContain(`${f}: keys[1]: budget must be a positive integer`);
  });
});

describe('mse attack --target: a server that does not match the dataset is refused before the first query', () => {
  it('item 13: input shape, and a non-JSON /v1/info', async () => {
    let body = JSON.stringify({
      inputShape: [3],
      numClasses: 3,
      domain: { min: 0, max: 1 },
      reveals: 'probs',
      defenses: [],
      pow: { required: false },
      maxBatch: 16,
    });
    let predicts = 0;
    const server = createHttpServer((req, res) => {
      if (req.url === '/v1/predict') predicts++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const shape = await mseAsync(['attack', '-d', 'blobs', '-b', '20', '--target', url]);
      expect(shape.code).toBe(1);
      expect(oneLine(shape.err).filter((l) => l.startsWith('mse: error'))).toHaveLength(1);
      expect(shape.err).toMatch(/inputs of shape \[3\].*blobs.*\[2\]/);
      expect(shape.err).not.toMatch(/\n\s+at /);
      body = 'OK';
      const junk = await mseAsync(['attack', '-d', 'blobs', '-b', '20', '--target', url]);
      expect(junk.code).toBe(1);
      expect(junk.err).toMatch(/not an mse \/v1\/info/);
      expect(junk.err).not.toMatch(/\n\s+at /);
      expect(predicts).toBe(0);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('mse attack --target: a server whose budget for the key is smaller than the attacker’s', () => {
  it('a surrogate attack trains on what it got (ok-budget-exhausted); one that cannot stop early says so in its row', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-stingy-'));
    const keys = path.join(dir, 'keys.json');
    writeFileSync(
      keys,
      JSON.stringify({
        keys: [
          { key: 'k1', id: 'a', budget: 150 },
          { key: 'k2', id: 'b', budget: 150 },
        ],
      }),
    );
    const child = spawn(
      process.execPath,
      ['bin/mse.js', 'serve', '-d', 'blobs', '-v', 'softmax', '-p', '0', '--keys', keys],
      { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let url = '';
    child.stdout.on('data', (d: Buffer) => (url += d.toString()));
    try {
      for (let i = 0; i < 600 && !url.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
      url = url.trim();
      const run = async (key: string, attack: string) => {
        const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          const p = spawn(
            process.execPath,
            [
              'bin/mse.js',
              'attack',
              '-d',
              'blobs',
              '-v',
              'softmax',
              '-a',
              attack,
              '-b',
              '400',
              '--target',
              url,
              '--key',
              key,
              '--json',
            ],
            { env: { ...process.env, NO_COLOR: '1' } },
          );
          let out = '';
          let err = '';
          p.stdout.on('data', (b: Buffer) => (out += b.toString()));
          p.stderr.on('data', (b: Buffer) => (err += b.toString()));
          p.on('close', (code) => resolve({ code, out, err }));
        });
        expect(r.code, r.err).toBe(0);
        return JSON.parse(r.out) as Record<string, string | number>;
      };
      const jbda = await run('k1', 'jbda:seedsize=20,arch=mlp');
      expect(jbda.status).toBe('ok-budget-exhausted');
      expect(jbda.queries).toBeLessThanOrEqual(150);
      expect(Number(jbda.agreement_test)).toBeGreaterThan(0.5);
      const uniform = await run('k2', 'retrain-uniform');
      expect(String(uniform.status)).toMatch(
        /^budget-exhausted: the API refused retrain-uniform after \d+ queries .*; no surrogate$/,
      );
    } finally {
      const exit = new Promise((res) => child.on('close', res));
      child.kill('SIGTERM');
      await exit;
    }
  }, 120_000);
});
