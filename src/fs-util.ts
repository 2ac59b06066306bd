/** File-system helpers the CLI's writers share. */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { MseError } from './errors.js';

const notADirectory = (d: string) =>
  new MseError('fs', `${d} is a file, not a directory`, 'give a directory path, or move the file away');

/**
 * What `ensureDir` would refuse, checked without creating anything (`--plan` writes nothing but
 * must fail where the run would): the path, or the first of its parents that exists, must be a directory.
 */
export function assertDirOrAbsent(dir: string): void {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    let isDir: boolean;
    try {
      isDir = statSync(d).isDirectory();
    } catch {
      if (path.dirname(d) === d) return;
      continue;
    }
    if (!isDir) throw notADirectory(d);
    return;
  }
}

/**
 * mkdir -p that always ends: Node's own recursive mkdirSync loops forever where a parent exists
 * but refuses mkdir with ENOENT (/proc, some FUSE mounts). This walks up at most once per path
 * component and throws the first real error (ENOTDIR, EACCES, ENOENT, …) for asUserError to word.
 */
export function ensureDir(dir: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    try {
      if (statSync(d).isDirectory()) break;
      throw notADirectory(d);
    } catch (e) {
      if (e instanceof MseError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw e;
      const parent = path.dirname(d);
      if (parent === d) throw e;
      missing.push(d);
      d = parent;
    }
  }
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(m).isDirectory()) throw e;
    }
  }
}
