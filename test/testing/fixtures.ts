/** Small fakes shared by tests: a toy dataset and the path of the shared real datasets, if present. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Rng } from '../../src/compute/rng.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import type { Dataset } from '../../src/data/types.js';
import type { Net } from '../../src/models/net.js';
import { fit } from '../../src/models/train.js';
import { createNet, parseModelSpec } from '../../src/models/zoo.js';

export const SHARED_DATA = path.resolve(process.env.MSE_DATA_DIR ?? '../shared/datasets');
export const HAVE_SHARED = existsSync(path.join(SHARED_DATA, 'sklearn', 'iris.csv'));

export function toyBlobs(n = 600, classes = 3, d = 4): Dataset {
  return makeSynthetic('blobs', { n, classes, d, seed: 3 });
}

/** A softmax-regression victim trained on `ds` (Adam, lr 0.05, batch 64, seeds 1 and 2); the caller disposes it. */
export async function trainedSoftmax(ds: Dataset, epochs: number): Promise<Net> {
  const victim = createNet(parseModelSpec('softmax'), ds, new Rng(1));
  await fit(
    victim,
    { x: ds.train.x, y: ds.train.y, n: ds.train.n },
    { epochs, batchSize: 64, optimizer: 'adam', lr: 0.05, rng: new Rng(2) },
  );
  return victim;
}

/** Put an environment variable back as it was (deleting it if it was unset). */
export function restoreEnv(name: string, old: string | undefined): void {
  if (old === undefined) delete process.env[name];
  else process.env[name] = old;
}
