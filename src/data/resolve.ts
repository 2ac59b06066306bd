/**
 * Finding a dataset's files. Lookup order: --data-dir, $MSE_DATA_DIR, the project's `datasets/`
 * cache, system dirs (Debian's dataset-* packages install to /usr/share/datasets), then a download
 * into the cache with a checksum check and a progress bar. Every file found is checked against
 * its sha256 (or, for re-compressed .gz files, the published checksum of the content), so a
 * corrupt, truncated or substituted file stops with one line naming it and the fix.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors.js';

export interface DataFile {
  /** file name inside the dataset's directory */
  name: string;
  /** accepted sha256 of the file as stored */
  sha256: string[];
  /** accepted md5 of the file as stored, where only an md5 is published */
  md5?: string[];
  /** md5 of the decompressed content, accepted when a .gz was re-compressed (Debian does) */
  contentMd5?: string;
  /** canonical download URLs, tried in order */
  urls: string[];
}

export interface ResolveOptions {
  /** --data-dir */
  dataDir?: string;
  /** never download (default: MSE_OFFLINE=1) */
  offline?: boolean;
  /** planning only (`--plan`): never download, and say the run would */
  plan?: boolean;
  /** show a download progress bar */
  progress?: boolean;
  /** where downloads go (default: <package>/datasets, or MSE_CACHE_DIR) */
  cacheDir?: string;
  /** system-wide data dirs searched after the cache (default SYSTEM_DIRS); tests pass [] to stand for a bare machine */
  systemDirs?: string[];
}

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SYSTEM_DIRS = ['/usr/share/datasets', '/usr/local/share/datasets'];

export function cacheDir(opts: ResolveOptions = {}): string {
  return opts.cacheDir ?? process.env.MSE_CACHE_DIR ?? path.join(PACKAGE_ROOT, 'datasets');
}

/** Directories searched for a dataset stored under `dir`, in order, with where each came from. */
export function searchDirs(dir: string, opts: ResolveOptions = {}): Array<{ dir: string; from: string }> {
  const out: Array<{ dir: string; from: string }> = [];
  const add = (base: string | undefined, from: string) => {
    if (!base) return;
    out.push({ dir: path.join(base, dir), from });
    out.push({ dir: base, from });
  };
  add(opts.dataDir, '--data-dir');
  add(process.env.MSE_DATA_DIR, 'MSE_DATA_DIR');
  out.push({ dir: path.join(cacheDir(opts), dir), from: 'cache' });
  for (const s of opts.systemDirs ?? SYSTEM_DIRS) out.push({ dir: path.join(s, dir), from: 'system' });
  return out;
}

const verified = new Map<string, boolean>();

/** Whether `bytes` is an accepted version of `file`. */
export function checksumOk(file: DataFile, bytes: Uint8Array): boolean {
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (file.sha256.includes(sha)) return true;
  if (file.md5?.includes(createHash('md5').update(bytes).digest('hex'))) return true;
  if (file.contentMd5 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return createHash('md5').update(gunzipSync(bytes)).digest('hex') === file.contentMd5;
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * Read a candidate dataset file: its bytes, or undefined when nothing is there. A path that exists
 * but cannot be read is the user's to fix, so it is a DataError naming the path, what is wrong and
 * the fix, never a raw system error (whose stack trace would reach the user).
 */
export function readCandidate(p: string, fileName: string): Uint8Array | undefined {
  try {
    return readFileSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: a part of the path is a file (e.g. MSE_DATA_DIR names a file); nothing to find there
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'EISDIR') {
      throw new DataError(
        `${p}: is a directory, not a file`,
        `remove or rename the directory and put the file ${fileName} there, or point --data-dir/MSE_DATA_DIR at a directory that has the file`,
      );
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new DataError(
        `${p}: permission denied`,
        `make it readable (chmod a+r ${p}), or point --data-dir/MSE_DATA_DIR at a readable copy`,
      );
    }
    throw new DataError(
      `${p}: cannot read the dataset file (${code ?? (err as Error).message})`,
      `check the file, or point --data-dir/MSE_DATA_DIR at a good copy`,
    );
  }
}

/** Locate `file` without downloading; throws DataError when a found copy fails its checksum or cannot be read. */
export function findFile(
  dir: string,
  file: DataFile,
  opts: ResolveOptions = {},
): { path: string; bytes: Uint8Array; from: string } | undefined {
  for (const cand of searchDirs(dir, opts)) {
    const p = path.join(cand.dir, file.name);
    const bytes = readCandidate(p, file.name);
    if (!bytes) continue;
    const key = `${p}:${bytes.length}`;
    if (verified.get(key) === true || checksumOk(file, bytes)) {
      verified.set(key, true);
      return { path: p, bytes, from: cand.from };
    }
    throw new DataError(
      `${p}: checksum mismatch (corrupt, truncated or a different file)`,
      `delete it and run \`mse datasets fetch\`, or point MSE_DATA_DIR at a good copy`,
    );
  }
  return undefined;
}

export function isOffline(opts: ResolveOptions): boolean {
  return opts.plan === true || (opts.offline ?? process.env.MSE_OFFLINE === '1');
}

/** Locate `file`, downloading it into the cache if needed (and allowed). */
export async function resolveFile(
  dataset: string,
  dir: string,
  file: DataFile,
  opts: ResolveOptions = {},
): Promise<Uint8Array> {
  const found = findFile(dir, file, opts);
  if (found) return found.bytes;
  const looked = searchDirs(dir, opts).map((c) => c.dir);
  if (isOffline(opts) || file.urls.length === 0) {
    throw new DataError(
      `${dataset}: ${file.name} not found (looked in ${[...new Set(looked)].join(', ')})`,
      opts.plan && file.urls.length
        ? `--plan does not download: the run would fetch it first; fetch it now with \`mse datasets fetch ${dataset}\`, or set MSE_DATA_DIR`
        : `put the file in one of those directories or set MSE_DATA_DIR${file.urls.length ? '; or allow downloads (unset MSE_OFFLINE)' : ''}`,
    );
  }
  const target = path.join(cacheDir(opts), dir, file.name);
  const errors: string[] = [];
  for (const url of file.urls) {
    try {
      const bytes = await download(url, file.name, opts.progress ?? false);
      if (!checksumOk(file, bytes)) {
        errors.push(`${url}: checksum mismatch`);
        continue;
      }
      mkdirSync(path.dirname(target), { recursive: true });
      const tmp = `${target}.part-${process.pid}`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, target); // atomic: a killed download leaves no half file under the real name
      return bytes;
    } catch (err) {
      errors.push(`${url}: ${(err as Error).message}`);
    }
  }
  rmSync(`${target}.part-${process.pid}`, { force: true });
  throw new DataError(
    `${dataset}: could not fetch ${file.name} (${errors.join('; ')})`,
    `download it by hand into ${path.dirname(target)} or set MSE_DATA_DIR to a directory that has it`,
  );
}

async function download(url: string, name: string, progress: boolean): Promise<Uint8Array> {
  const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const chunks: Uint8Array[] = [];
  let got = 0;
  const { SingleBar, Presets } = await import('cli-progress');
  const bar =
    progress && process.stderr.isTTY
      ? new SingleBar(
          { format: `${name} [{bar}] {percentage}% {value}/{total} bytes`, stream: process.stderr },
          Presets.shades_classic,
        )
      : undefined;
  bar?.start(total || 1, 0);
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    got += value.length;
    bar?.update(Math.min(got, total || got));
  }
  bar?.stop();
  if (total && got !== total) throw new Error(`truncated download (${got} of ${total} bytes)`);
  const out = new Uint8Array(got);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
