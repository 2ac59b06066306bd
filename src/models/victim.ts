/**
 * Victims: train once, cache forever. The cache key hashes (dataset + variant + size, model spec,
 * seed), so a sweep trains each victim once and a re-run loads it. Files are written atomically
 * (temp + rename): a killed run never leaves a half-written victim.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { activeBackend } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import type { Dataset } from '../data/types.js';
import { formatParams } from '../params.js';
import { DecisionTree } from './decision-tree.js';
import type { Model, SerializedModel } from './model.js';
import { accuracyOf, argmaxRows, fit, predictAll } from './train.js';
import { createNet, loadModel, trainOptions, type ModelSpec } from './zoo.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Write via a temp file and rename, so a killed process never leaves half a file. */
export function writeAtomic(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function victimCacheDir(): string {
  return path.join(process.env.MSE_CACHE_DIR ?? path.join(PACKAGE_ROOT, '.mse-cache'), 'victims');
}

export interface Victim {
  model: Model;
  testAcc: number;
  trainSeconds: number;
  cached: boolean;
  key: string;
  path?: string;
  /** why the trained victim could not be written to the cache (it is still returned) */
  cacheError?: string;
}

export interface VictimOptions {
  /** skip reading and writing the cache */
  noCache?: boolean;
  onProgress?: (seen: number, total: number) => void;
}

export function victimKey(ds: Dataset, spec: ModelSpec, seed: number): string {
  const id = { v: 'victim/1', dataset: ds.name, variant: ds.variant, n: ds.train.n, model: spec.kind, params: formatParams(spec.params), seed };
  return createHash('sha256').update(JSON.stringify(id)).digest('hex').slice(0, 16);
}

export async function evaluate(model: Model, ds: Dataset): Promise<number> {
  const p = model instanceof DecisionTree ? model.predictArray(ds.test.x, ds.test.n) : await predictAll(model, ds.test.x, ds.test.n);
  return accuracyOf(argmaxRows(p, ds.numClasses), ds.test.y);
}

export async function trainVictim(ds: Dataset, spec: ModelSpec, seed: number, opts: VictimOptions = {}): Promise<Omit<Victim, 'cached' | 'key'>> {
  const t0 = performance.now();
  let model: Model;
  if (spec.kind === 'tree') {
    model = DecisionTree.fit(ds.train.x, ds.train.y, ds.inputShape[0], ds.numClasses, { maxDepth: spec.params.depth as number, minSamplesLeaf: spec.params['min-leaf'] as number });
  } else {
    const rng = new Rng(seed);
    const net = createNet(spec, ds, rng.fork());
    await fit(net, { x: ds.train.x, y: ds.train.y, n: ds.train.n }, { ...trainOptions(spec, ds, rng.fork()), onBatch: opts.onProgress });
    model = net;
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  return { model, testAcc: await evaluate(model, ds), trainSeconds };
}

interface CachedVictim {
  key: string;
  dataset: string;
  variant: string;
  spec: ModelSpec;
  seed: number;
  testAcc: number;
  trainSeconds: number;
  backend: string;
  model: SerializedModel;
}

export async function getVictim(ds: Dataset, spec: ModelSpec, seed: number, opts: VictimOptions = {}): Promise<Victim> {
  const key = victimKey(ds, spec, seed);
  const file = path.join(victimCacheDir(), `${ds.name}-${spec.kind}-${key}.json`);
  if (!opts.noCache && existsSync(file)) {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as CachedVictim;
      if (c.key === key) return { model: loadModel(c.model), testAcc: c.testAcc, trainSeconds: c.trainSeconds, cached: true, key, path: file };
    } catch {
      // unreadable cache entry: retrain and overwrite it
    }
  }
  const v = await trainVictim(ds, spec, seed, opts);
  if (opts.noCache) return { ...v, cached: false, key };
  const entry: CachedVictim = { key, dataset: ds.name, variant: ds.variant, spec, seed, testAcc: v.testAcc, trainSeconds: v.trainSeconds, backend: activeBackend().label, model: v.model.serialize() };
  try {
    writeAtomic(file, JSON.stringify(entry));
  } catch (err) {
    return { ...v, cached: false, key, cacheError: `${(err as NodeJS.ErrnoException).code ?? (err as Error).message} writing ${file}` };
  }
  return { ...v, cached: false, key, path: file };
}
