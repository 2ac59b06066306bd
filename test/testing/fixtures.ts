/** Small fakes shared by tests: a toy dataset and the path of the shared real datasets, if present. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { makeSynthetic } from '../../src/data/synthetic.js';
import type { Dataset } from '../../src/data/types.js';

export const SHARED_DATA = path.resolve(process.env.MSE_DATA_DIR ?? '../shared/datasets');
export const HAVE_SHARED = existsSync(path.join(SHARED_DATA, 'sklearn', 'iris.csv'));

export function toyBlobs(n = 600, classes = 3, d = 4): Dataset {
  return makeSynthetic('blobs', { n, classes, d, seed: 3 });
}

/** Put an environment variable back as it was (deleting it if it was unset). */
export function restoreEnv(name: string, old: string | undefined): void {
  if (old === undefined) delete process.env[name];
  else process.env[name] = old;
}
