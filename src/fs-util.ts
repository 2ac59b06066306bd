/** File-system helpers the CLI's writers share. */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

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
      mkdirSync(d); // exists but is not a directory: mkdir says so (EEXIST/ENOTDIR)
    } catch (e) {
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
