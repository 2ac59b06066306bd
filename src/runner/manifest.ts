/** `manifest.json` beside a run's CSV: the command, spec, git commit, versions and backend. */
import { ensureDir } from '../fs-util.js';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { BackendInfo } from '../compute/backend.js';
import { UsageError } from '../errors.js';

const require = createRequire(import.meta.url);

export function mseVersion(): string {
  return (require('../../package.json') as { version: string }).version;
}

export function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: path.dirname(require.resolve('../../package.json')),
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

export function versions(): Record<string, string> {
  const v = (pkg: string): string => {
    try {
      return (require(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      return 'absent';
    }
  };
  return {
    mse: mseVersion(),
    node: process.versions.node,
    '@tensorflow/tfjs': v('@tensorflow/tfjs'),
    '@tensorflow/tfjs-backend-wasm': v('@tensorflow/tfjs-backend-wasm'),
  };
}

export interface Manifest {
  run_id: string;
  created: string;
  command: string[];
  spec: unknown;
  git_commit?: string;
  versions: Record<string, string>;
  backend: { name: string; tf_backend: string; label: string; threads: number; native: string };
  host: { platform: string; cpus: number; memory_gb: number };
  datasets: Record<string, { variant: string; notes: string[] }>;
  /** the plugins whose units the run uses: path and content hash (part of those cells' ids) */
  plugins: Array<{ path: string; hash: string }>;
}

export function makeManifest(
  runId: string,
  backend: BackendInfo,
  spec: unknown,
  datasets: Manifest['datasets'] = {},
  plugins: Manifest['plugins'] = [],
): Manifest {
  return {
    run_id: runId,
    created: new Date().toISOString(),
    command: redactArgs(process.argv.slice(1)),
    spec: redactSpec(spec),
    git_commit: gitCommit(),
    versions: versions(),
    backend: {
      name: backend.name,
      tf_backend: backend.tfBackend,
      label: backend.label,
      threads: backend.threads,
      native: backend.native,
    },
    host: {
      platform: `${os.platform()}-${os.arch()}`,
      cpus: os.availableParallelism(),
      memory_gb: Math.round(os.totalmem() / 2 ** 30),
    },
    datasets,
    plugins: plugins.map((p) => ({ path: p.path, hash: p.hash })),
  };
}

const REDACTED = '(redacted)';

/** The command line without the value of --key: results folders are shared and committed, API keys are not. */
export function redactArgs(args: string[]): string[] {
  return args.map((a, i) => (args[i - 1] === '--key' ? REDACTED : a.startsWith('--key=') ? `--key=${REDACTED}` : a));
}

/** The spec with every target's API key blanked (a target: an object with a url and a key). */
function redactSpec(spec: unknown): unknown {
  return JSON.parse(
    JSON.stringify(spec ?? null, (_k, v: unknown) =>
      typeof v === 'object' && v !== null && !Array.isArray(v) && 'url' in v && 'key' in v
        ? { ...(v as Record<string, unknown>), key: REDACTED }
        : v,
    ),
  ) as unknown;
}

export function writeManifest(dir: string, m: Manifest): void {
  ensureDir(dir);
  const file = path.join(dir, 'manifest.json');
  // the plugins of every run that wrote into this directory stay recorded (checkPluginVersions reads them)
  m = { ...m, plugins: mergePlugins(recordedPlugins(dir), m.plugins ?? []) };
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true }); // a full disk leaves no empty temp file behind
    throw e;
  }
}

type PluginEntry = { path: string; hash: string };

/** The plugin entries a directory's manifest records (none when there is no readable manifest). */
function recordedPlugins(dir: string): PluginEntry[] {
  try {
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { plugins?: unknown };
    return Array.isArray(m?.plugins)
      ? (m.plugins as PluginEntry[]).filter((p) => typeof p?.path === 'string' && typeof p?.hash === 'string')
      : [];
  } catch {
    return [];
  }
}

function mergePlugins(old: PluginEntry[], now: ReadonlyArray<PluginEntry>): PluginEntry[] {
  const by = new Map(old.map((p) => [p.path, { path: p.path, hash: p.hash }]));
  for (const p of now) by.set(p.path, { path: p.path, hash: p.hash });
  return [...by.values()];
}

/** Add plugins to an existing manifest (a later `mse attack -o` into the directory), keeping the rest as written. */
export function recordPlugins(dir: string, plugins: ReadonlyArray<PluginEntry>): void {
  if (!plugins.length) return;
  let m: Manifest;
  try {
    m = readManifest(dir);
  } catch {
    return;
  }
  writeManifest(dir, { ...m, plugins: mergePlugins(m.plugins ?? [], plugins) });
}

/**
 * A run's manifest for display (the report and compare pages): its content when it is a JSON
 * object, else why it cannot be used (absent: neither). Never throws: provenance only informs.
 */
export function manifestForDisplay(dir: string): { value?: Record<string, unknown>; problem?: string } {
  const file = path.join(dir, 'manifest.json');
  if (!existsSync(file)) return {};
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      return { value: value as Record<string, unknown> };
    return { problem: 'is not a JSON object' };
  } catch (e) {
    return { problem: (e as NodeJS.ErrnoException).code === 'EISDIR' ? 'is a directory' : 'is not valid JSON' };
  }
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

/**
 * A results directory holds one version of each plugin: rows of two versions in one CSV would be
 * told apart by nothing but their ids (`report` would average them as seeds), and shards run with
 * two versions would never merge. Refuse to add to a directory whose manifest names a plugin at
 * another hash than now.
 */
export function checkPluginVersions(dir: string, plugins: ReadonlyArray<{ path: string; hash: string }>): void {
  const file = path.join(dir, 'manifest.json');
  let had: Array<{ path?: unknown; hash?: unknown }> = [];
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as { plugins?: unknown };
    if (Array.isArray(m?.plugins)) had = m.plugins as typeof had;
  } catch {
    return; // no manifest yet (or one that is not ours to judge): nothing recorded to differ from
  }
  for (const p of plugins) {
    const old = had.find((h) => h.path === p.path);
    if (old && old.hash !== p.hash)
      throw new UsageError(
        `${dir} holds results of the plugin ${p.path} at hash ${String(old.hash)}; the plugin has changed (hash ${p.hash})`,
        'a changed plugin is another experiment: write to a new --out, or move the old results away',
      );
  }
}
