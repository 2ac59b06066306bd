import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findFile, resolveFile, type DataFile } from '../../src/data/resolve.js';
import { availability } from '../../src/data/registry.js';
import { DataError } from '../../src/errors.js';
import { restoreEnv } from '../testing/fixtures.js';

const body = Buffer.from('hello,dataset\n1,2\n');
const sha = createHash('sha256').update(body).digest('hex');
const file = (urls: string[] = []): DataFile => ({ name: 'toy.csv', sha256: [sha], urls });

let server: Server;
let base = '';
let hits = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    hits++;
    if (req.url === '/toy.csv') res.end(body);
    else if (req.url === '/wrong.csv') res.end('not the data');
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'mse-data-'));
}

/** What `f` throws (undefined if nothing), so a test can look at the error's fields. */
function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('dataset file resolution', () => {
  it('prefers --data-dir over MSE_DATA_DIR, and finds files in a <dataset>/ sub-directory', () => {
    const a = tmp();
    const b = tmp();
    mkdirSync(path.join(a, 'toy'));
    writeFileSync(path.join(a, 'toy', 'toy.csv'), body);
    writeFileSync(path.join(b, 'toy.csv'), body);
    const old = process.env.MSE_DATA_DIR;
    process.env.MSE_DATA_DIR = b;
    try {
      expect(findFile('toy', file(), { dataDir: a })?.from).toBe('--data-dir');
      expect(findFile('toy', file(), {})?.from).toBe('MSE_DATA_DIR');
    } finally {
      restoreEnv('MSE_DATA_DIR', old);
    }
  });

  it('a file with the wrong checksum is an error naming the file and the fix', () => {
    const a = tmp();
    writeFileSync(path.join(a, 'toy.csv'), 'tampered');
    expect(() => findFile('toy', file(), { dataDir: a })).toThrow(DataError);
    try {
      findFile('toy', file(), { dataDir: a });
    } catch (err) {
      expect((err as DataError).message).toContain(path.join(a, 'toy.csv'));
      expect((err as DataError).hint).toMatch(/delete it/);
    }
  });

  it('offline and missing: a one-line error listing where it looked', async () => {
    const a = tmp();
    await expect(
      resolveFile('toy', 'toy', file([`${base}/toy.csv`]), { dataDir: a, cacheDir: tmp(), offline: true }),
    ).rejects.toThrow(/toy.csv not found \(looked in/);
  });

  it('downloads into the cache over loopback, verifies the checksum, and then finds it locally', async () => {
    const cache = tmp();
    const before = hits;
    const got = await resolveFile('toy', 'toy', file([`${base}/missing.csv`, `${base}/toy.csv`]), {
      cacheDir: cache,
      offline: false,
      dataDir: tmp(),
    });
    expect(Buffer.from(got).equals(body)).toBe(true);
    expect(existsSync(path.join(cache, 'toy', 'toy.csv'))).toBe(true);
    await resolveFile('toy', 'toy', file([`${base}/toy.csv`]), { cacheDir: cache, offline: false, dataDir: tmp() });
    expect(hits - before).toBe(2); // 404 + one good download; the second resolve was local
  });

  it('a download with the wrong checksum is rejected and nothing is written', async () => {
    const cache = tmp();
    await expect(
      resolveFile(
        'toy',
        'toy',
        { ...file([`${base}/wrong.csv`]) },
        { cacheDir: cache, offline: false, dataDir: tmp() },
      ),
    ).rejects.toThrow(/checksum mismatch/);
    expect(existsSync(path.join(cache, 'toy')) ? readdirSync(path.join(cache, 'toy')) : []).toEqual([]);
  });
  // issue 13 item 16: these were raw EISDIR/EACCES errors from readFileSync (a stack trace)
  it('a directory where a dataset file should be is a DataError naming the path and the fix', () => {
    const a = tmp();
    mkdirSync(path.join(a, 'toy.csv'));
    const err = thrownBy(() => findFile('toy', file(), { dataDir: a }));
    expect(err).toBeInstanceOf(DataError);
    const e = err as DataError;
    expect(e.message).toBe(`${path.join(a, 'toy.csv')}: is a directory, not a file`);
    expect(e.message).not.toContain('\n');
    expect(e.hint).toMatch(/remove or rename the directory/);
  });

  it('an unreadable dataset file is a DataError saying permission denied (skipped where root reads it anyway)', (ctx) => {
    const a = tmp();
    const p = path.join(a, 'toy.csv');
    writeFileSync(p, body);
    chmodSync(p, 0o000);
    let readable = true;
    try {
      readFileSync(p);
    } catch {
      readable = false;
    }
    // running as root, chmod 000 does not stop reads: there is nothing to test
    if (readable) ctx.skip();
    const err = thrownBy(() => findFile('toy', file(), { dataDir: a }));
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).message).toBe(`${p}: permission denied`);
    expect((err as DataError).hint).toMatch(/chmod/);
  });

  it('availability reports a directory in place of a dataset file as unreadable, not as a bad checksum', () => {
    const a = tmp();
    mkdirSync(path.join(a, 'sklearn'));
    mkdirSync(path.join(a, 'sklearn', 'iris.csv'));
    const iris = availability({ dataDir: a, cacheDir: tmp(), systemDirs: [] }).find((x) => x.name === 'iris')!;
    expect(iris.files[0]).toMatchObject({ name: 'iris.csv', status: 'unreadable' });
    expect(iris.files[0].problem).toMatch(/is a directory, not a file/);
    expect(iris.usable).toBe(false);
  });
});
