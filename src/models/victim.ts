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
import { stream } from '../compute/streams.js';
import type { Dataset } from '../data/types.js';
import { formatParams } from '../params.js';
import { DecisionTree, type TreeNode } from './decision-tree.js';
import type { Model, SerializedModel } from './model.js';
import { accuracyOf, argmaxRows, fit, predictAll } from './train.js';
import { createNet, loadModel, MODELS, trainOptions, treeOptions, type ModelSpec } from './zoo.js';

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
  /**
   * set when a cache entry existed but failed its checks and the victim was retrained instead:
   * one line, `victim cache entry <file> was invalid (<why>); retrained`, for the caller to print
   */
  cacheNote?: string;
}

export interface VictimOptions {
  /** skip reading and writing the cache */
  noCache?: boolean;
  onProgress?: (seen: number, total: number) => void;
}

export function victimKey(ds: Dataset, spec: ModelSpec, seed: number): string {
  // a plugin's model family is keyed by the plugin's content too: a changed architecture is another victim
  const plugin = MODELS.has(spec.kind) ? MODELS.get(spec.kind).source?.hash : undefined;
  const id = {
    v: 'victim/1',
    dataset: ds.name,
    variant: ds.variant,
    n: ds.train.n,
    model: spec.kind,
    params: formatParams(spec.params),
    seed,
    ...(plugin ? { plugin } : {}),
  };
  return createHash('sha256').update(JSON.stringify(id)).digest('hex').slice(0, 16);
}

export async function evaluate(model: Model, ds: Dataset): Promise<number> {
  const p =
    model instanceof DecisionTree
      ? model.predictArray(ds.test.x, ds.test.n)
      : await predictAll(model, ds.test.x, ds.test.n);
  return accuracyOf(argmaxRows(p, ds.numClasses), ds.test.y);
}

export async function trainVictim(
  ds: Dataset,
  spec: ModelSpec,
  seed: number,
  opts: VictimOptions = {},
): Promise<Omit<Victim, 'cached' | 'key'>> {
  const t0 = performance.now();
  let model: Model;
  if (spec.kind === 'tree') {
    model = DecisionTree.fit(ds.train.x, ds.train.y, ds.inputShape[0], ds.numClasses, treeOptions(spec));
  } else {
    const rng = stream(seed, 'victim');
    const net = createNet(spec, ds, rng.fork());
    await fit(
      net,
      { x: ds.train.x, y: ds.train.y, n: ds.train.n },
      { ...trainOptions(spec, ds, rng.fork()), onBatch: opts.onProgress },
    );
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
  /**
   * sha256 of the canonical JSON of every other field. Entries from before it existed have none;
   * they are accepted only after a full check and a fresh measurement of testAcc (see loadEntry).
   */
  checksum?: string;
}

/** JSON with object keys sorted at every level, so the checksum does not depend on key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function entryChecksum(entry: Omit<CachedVictim, 'checksum'>): string {
  return createHash('sha256').update(canonicalJson(entry)).digest('hex');
}

/** A value from a damaged file, fit for a one-line note: JSON-escaped, printable, short. */
function brief(v: unknown): string {
  const s = (JSON.stringify(v) ?? String(v)).replace(/[\u007f-\u009f\u2028\u2029]/g, '?');
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function sameShape(a: unknown, b: number[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Why a decoded model cannot be trusted (non-finite numbers, a malformed tree), or undefined. */
function modelProblem(model: Model): string | undefined {
  if (model instanceof DecisionTree) {
    const nodes: unknown = model.nodes;
    if (!Array.isArray(nodes) || nodes.length === 0) return 'the tree has no nodes';
    const d = model.inputShape[0];
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i] as Partial<TreeNode> | null;
      if (typeof n !== 'object' || n === null) return `tree node ${i} is not an object`;
      const dist = n.dist;
      if (
        !Array.isArray(dist) ||
        dist.length !== model.numClasses ||
        !dist.every((x) => typeof x === 'number' && Number.isFinite(x))
      )
        return `tree node ${i} has a malformed or non-finite class distribution`;
      if (!Number.isInteger(n.leaf)) return `tree node ${i} has no leaf id`;
      if ((n.leaf as number) >= 0) continue;
      // children after their parent (as fit builds them) also rules out cycles, so routing ends
      const child = (c: unknown) => Number.isInteger(c) && (c as number) > i && (c as number) < nodes.length;
      if (!Number.isInteger(n.feature) || (n.feature as number) < 0 || (n.feature as number) >= d)
        return `tree node ${i} splits on a feature out of range`;
      if (typeof n.threshold !== 'number' || !Number.isFinite(n.threshold))
        return `tree node ${i} has a non-finite threshold`;
      if (!child(n.left) || !child(n.right)) return `tree node ${i} has children out of range`;
    }
    return undefined;
  }
  const p = model.params?.();
  if (p) for (let i = 0; i < p.length; i++) if (!Number.isFinite(p[i])) return `non-finite weight at parameter ${i}`;
  return undefined;
}

type Loaded =
  | {
      ok: true;
      model: Model;
      testAcc: number;
      trainSeconds: number;
      legacy: boolean;
      entry: Omit<CachedVictim, 'checksum'>;
    }
  | { ok: false; why: string };

/**
 * Read and check one cache entry. Nothing in it is trusted until it passes: parseable JSON, a
 * checksum that matches, the expected key, a model of the requested kind and shape that loads,
 * and finite parameters. Entries without a checksum (written before it existed) get the same
 * checks and then a fresh test-set evaluation, so an edited testAcc is never reported; that costs
 * a prediction pass (about a second for the MNIST CNN) instead of a retraining (minutes).
 */
async function loadEntry(file: string, key: string, ds: Dataset, spec: ModelSpec): Promise<Loaded> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, why: `unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, why: 'not valid JSON, perhaps truncated' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, why: 'not a JSON object' };
  const { checksum, ...rest } = raw as CachedVictim;
  const legacy = checksum === undefined;
  if (!legacy && checksum !== entryChecksum(rest))
    return { ok: false, why: 'checksum mismatch: the file was changed after it was written' };
  const c = rest as Partial<CachedVictim>;
  if (c.key !== key) return { ok: false, why: `wrong key ${brief(c.key)}, expected ${key}` };
  const m = c.model;
  if (typeof m !== 'object' || m === null) return { ok: false, why: 'no model' };
  if (m.kind !== spec.kind) return { ok: false, why: `model kind ${brief(m.kind)}, expected ${spec.kind}` };
  if (!sameShape(m.inputShape, ds.inputShape) || m.numClasses !== ds.numClasses)
    return { ok: false, why: `model shape does not match ${ds.name}` };
  if (typeof c.testAcc !== 'number' || !(c.testAcc >= 0 && c.testAcc <= 1))
    return { ok: false, why: 'testAcc is not a number in [0, 1]' };
  const trainSeconds = typeof c.trainSeconds === 'number' && Number.isFinite(c.trainSeconds) ? c.trainSeconds : 0;
  let model: Model;
  try {
    model = loadModel(m);
  } catch (err) {
    return { ok: false, why: `the model does not load: ${brief((err as Error).message)}` };
  }
  let why = modelProblem(model);
  let testAcc = c.testAcc;
  if (!why && legacy) {
    try {
      testAcc = await evaluate(model, ds);
    } catch (err) {
      why = `the model does not predict: ${brief((err as Error).message)}`;
    }
  }
  if (why) {
    model.dispose();
    return { ok: false, why };
  }
  return { ok: true, model, testAcc, trainSeconds, legacy, entry: rest };
}

function writeEntry(file: string, entry: Omit<CachedVictim, 'checksum'>): void {
  writeAtomic(file, JSON.stringify({ ...entry, checksum: entryChecksum(entry) }));
}

export async function getVictim(ds: Dataset, spec: ModelSpec, seed: number, opts: VictimOptions = {}): Promise<Victim> {
  const key = victimKey(ds, spec, seed);
  // a model the user brings is loaded from its files, not trained (and not cached: its files are its form)
  const load = MODELS.get(spec.kind).load;
  if (load) {
    const t0 = performance.now();
    const model = await load(ds, spec.params);
    try {
      return {
        model,
        testAcc: await evaluate(model, ds),
        trainSeconds: (performance.now() - t0) / 1000,
        cached: false,
        key,
      };
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  const file = path.join(victimCacheDir(), `${ds.name}-${spec.kind}-${key}.json`);
  let cacheNote: string | undefined;
  if (!opts.noCache && existsSync(file)) {
    const got = await loadEntry(file, key, ds, spec);
    if (got.ok) {
      if (got.legacy) {
        // upgrade in place from what was checked (not a re-read, which could differ), with the
        // accuracy just measured; a failed write only costs the same check next time
        try {
          writeEntry(file, { ...got.entry, testAcc: got.testAcc });
        } catch {
          // the entry stays as it was and is checked again on the next load
        }
      }
      return { model: got.model, testAcc: got.testAcc, trainSeconds: got.trainSeconds, cached: true, key, path: file };
    }
    cacheNote = `victim cache entry ${file} was invalid (${got.why}); retrained`;
  }
  const v = await trainVictim(ds, spec, seed, opts);
  const note = cacheNote ? { cacheNote } : {};
  if (opts.noCache) return { ...v, cached: false, key };
  const entry: Omit<CachedVictim, 'checksum'> = {
    key,
    dataset: ds.name,
    variant: ds.variant,
    spec,
    seed,
    testAcc: v.testAcc,
    trainSeconds: v.trainSeconds,
    backend: activeBackend().label,
    model: v.model.serialize(),
  };
  try {
    writeEntry(file, entry);
  } catch (err) {
    return {
      ...v,
      cached: false,
      key,
      ...note,
      cacheError: `${(err as NodeJS.ErrnoException).code ?? (err as Error).message} writing ${file}`,
    };
  }
  return { ...v, cached: false, key, path: file, ...note };
}
