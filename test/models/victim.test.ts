import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../src/compute/backend.js';
import { evaluate, getVictim, type Victim } from '../../src/models/victim.js';
import { parseModelSpec } from '../../src/models/zoo.js';
import { restoreEnv, toyBlobs } from '../testing/fixtures.js';
import { makeSynthetic } from '../../src/data/synthetic.js';

beforeAll(async () => {
  await initBackend('wasm', { threads: 1 });
});

describe('victim cache', () => {
  it('trains once per (dataset, model, params, seed) and loads it the second time', async () => {
    const ds = toyBlobs(300);
    const spec = parseModelSpec('softmax:epochs=30');
    const a = await getVictim(ds, spec, 5);
    expect(a.cached).toBe(false);
    expect(a.testAcc).toBeGreaterThan(0.9);
    const b = await getVictim(ds, spec, 5);
    expect(b.cached).toBe(true);
    expect(b.testAcc).toBe(a.testAcc);
    expect(Array.from(b.model.params!())).toEqual(Array.from(a.model.params!()));
    const c = await getVictim(ds, spec, 6);
    expect(c.cached).toBe(false);
    for (const v of [a, b, c]) v.model.dispose();
  });

  it('each model kind trains on a tabular dataset and beats chance clearly', async () => {
    for (const [d, m] of [
      ['linear', 'logistic'],
      ['linear', 'ovr'],
      ['moons', 'tree:depth=6'],
      ['moons', 'mlp'],
    ] as const) {
      const v = await getVictim(makeSynthetic(d), parseModelSpec(m), 1, { noCache: true });
      expect([m, v.testAcc > 0.8]).toEqual([m, true]);
      v.model.dispose();
    }
  });
});

/**
 * A cache entry is checked before it is trusted: anything edited, damaged or not loadable is
 * retrained and overwritten, and the Victim says so in `cacheNote`.
 */
describe('victim cache integrity', () => {
  const ds = toyBlobs(300);
  const spec = parseModelSpec('softmax:epochs=30');
  const seed = 7;
  let dir = '';
  const old = process.env.MSE_CACHE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mse-victim-'));
    process.env.MSE_CACHE_DIR = dir;
  });
  afterEach(() => {
    restoreEnv('MSE_CACHE_DIR', old);
    rmSync(dir, { recursive: true, force: true });
  });

  type Entry = Record<string, unknown> & {
    model: Record<string, unknown> & { weights?: string[] };
    testAcc: number;
    checksum?: string;
  };
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Entry;
  const write = (file: string, e: Entry) => writeFileSync(file, JSON.stringify(e));
  /** Train (and cache) the victim, note its true accuracy and weights, and return its cache file. */
  async function fresh(): Promise<{ file: string; testAcc: number; params: number[] }> {
    const v = await getVictim(ds, spec, seed);
    expect(v.cached).toBe(false);
    const r = { file: v.path!, testAcc: v.testAcc, params: Array.from(v.model.params!()) };
    v.model.dispose();
    return r;
  }
  function withNaN(e: Entry): Entry {
    const buf = Buffer.from(e.model.weights![0], 'base64');
    const w = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    w[0] = Number.NaN;
    return {
      ...e,
      model: { ...e.model, weights: [Buffer.from(w.buffer).toString('base64'), ...e.model.weights!.slice(1)] },
    };
  }
  function legacy(e: Entry): Entry {
    const { checksum: _drop, ...rest } = e;
    return rest as Entry;
  }
  /** The entry was retrained (same seed: same weights), with a one-line note naming the file and why. */
  async function expectRetrained(t: { file: string; testAcc: number; params: number[] }, why: RegExp): Promise<Victim> {
    const v = await getVictim(ds, spec, seed);
    expect(v.cached).toBe(false);
    expect(v.cacheNote).toMatch(/^victim cache entry .+ was invalid \(.+\); retrained$/);
    expect(v.cacheNote).toContain(path.basename(t.file));
    expect(v.cacheNote).toMatch(why);
    expect(v.cacheNote).not.toMatch(/\n/);
    expect(v.testAcc).toBe(t.testAcc);
    const p = Array.from(v.model.params!());
    expect(p.every(Number.isFinite)).toBe(true);
    expect(p).toEqual(t.params);
    expect(await evaluate(v.model, ds)).toBe(t.testAcc);
    v.model.dispose();
    // and the entry was overwritten with a good one
    const again = await getVictim(ds, spec, seed);
    expect([again.cached, again.cacheNote]).toEqual([true, undefined]);
    again.model.dispose();
    return v;
  }

  it('a valid entry loads (cached, no note) and carries a checksum', async () => {
    const t = await fresh();
    expect(read(t.file).checksum).toMatch(/^[0-9a-f]{64}$/);
    const v = await getVictim(ds, spec, seed);
    expect([v.cached, v.cacheNote, v.testAcc]).toEqual([true, undefined, t.testAcc]);
    expect(Array.from(v.model.params!())).toEqual(t.params);
    v.model.dispose();
  });

  it('NaN weights injected into an entry: retrained, finite model, note given', async () => {
    const t = await fresh();
    write(t.file, withNaN(read(t.file)));
    await expectRetrained(t, /checksum/);
  });

  it('NaN weights in an entry without a checksum (older version): retrained, note names the non-finite weights', async () => {
    const t = await fresh();
    write(t.file, legacy(withNaN(read(t.file))));
    await expectRetrained(t, /non-finite/);
  });

  it('an edited testAcc is detected: the true accuracy is reported', async () => {
    const t = await fresh();
    write(t.file, { ...read(t.file), testAcc: 0.999 });
    await expectRetrained(t, /checksum/);
  });

  it('an entry without a checksum is accepted only after its accuracy is measured again, and is upgraded', async () => {
    const t = await fresh();
    write(t.file, { ...legacy(read(t.file)), testAcc: 0.999 });
    const v = await getVictim(ds, spec, seed);
    expect([v.cached, v.cacheNote, v.testAcc]).toEqual([true, undefined, t.testAcc]);
    v.model.dispose();
    const upgraded = read(t.file);
    expect(upgraded.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(upgraded.testAcc).toBe(t.testAcc);
  });

  it('a changed model kind does not throw: retrained', async () => {
    const t = await fresh();
    write(t.file, { ...read(t.file), model: { ...read(t.file).model, kind: 'tree' } });
    await expectRetrained(t, /checksum/);
    for (const kind of ['tree', 'cnn', 'nonsense']) {
      write(t.file, legacy({ ...read(t.file), model: { ...read(t.file).model, kind } }));
      await expectRetrained(t, /kind/);
    }
  });

  it('a model that does not load (weights of the wrong size) is retrained', async () => {
    const t = await fresh();
    const e = read(t.file);
    write(
      t.file,
      legacy({
        ...e,
        model: {
          ...e.model,
          weights: [Buffer.from(new Float32Array(3).buffer).toString('base64'), ...e.model.weights!.slice(1)],
        },
      }),
    );
    await expectRetrained(t, /does not load/);
  });

  it('a truncated entry is retrained', async () => {
    const t = await fresh();
    const text = readFileSync(t.file, 'utf8');
    writeFileSync(t.file, text.slice(0, Math.floor(text.length / 2)));
    await expectRetrained(t, /JSON/);
  });

  it('an entry for another key is retrained', async () => {
    const t = await fresh();
    write(t.file, legacy({ ...read(t.file), key: '0123456789abcdef' }));
    await expectRetrained(t, /key/);
  });

  it('a decision tree entry with a non-finite threshold or a cycle is retrained, not looped on', async () => {
    const moons = makeSynthetic('moons');
    const tree = parseModelSpec('tree:depth=4');
    const v0 = await getVictim(moons, tree, seed);
    const file = v0.path!;
    type TreeEntry = Entry & { model: { nodes: Array<Record<string, number | null>> } };
    const good = read(file) as TreeEntry;
    const root = good.model.nodes[0];
    expect(root.leaf).toBeLessThan(0);
    for (const change of [{ threshold: null }, { left: 0 }]) {
      const bad = { ...good, model: { ...good.model, nodes: [{ ...root, ...change }, ...good.model.nodes.slice(1)] } };
      write(file, legacy(bad));
      const v = await getVictim(moons, tree, seed);
      expect(v.cached).toBe(false);
      expect(v.cacheNote).toMatch(/tree node 0/);
      expect(v.testAcc).toBe(v0.testAcc);
    }
    write(file, legacy(good));
    const ok = await getVictim(moons, tree, seed);
    expect([ok.cached, ok.cacheNote, ok.testAcc]).toEqual([true, undefined, v0.testAcc]);
  });
});
