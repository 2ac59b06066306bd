/**
 * Synthetic datasets for tests and quick runs (Tramèr et al. Table 3 used circles, moons, blobs and
 * a 5-class set). Generated from a fixed data seed, so they are the same for every --seed.
 */
import { Rng } from '../compute/rng.js';
import { minMaxScale, splitRows } from './tabular.js';
import type { Dataset } from './types.js';

export const SYNTHETIC = ['blobs', 'moons', 'circles', 'linear'] as const;
export type SyntheticName = (typeof SYNTHETIC)[number];

export interface SyntheticOptions {
  n?: number;
  d?: number;
  classes?: number;
  seed?: number;
}

export function makeSynthetic(name: SyntheticName, opts: SyntheticOptions = {}): Dataset {
  const rng = new Rng(opts.seed ?? 0);
  const n = opts.n ?? (name === 'linear' ? 2000 : 5000);
  let d = 2;
  let k = 2;
  let x: Float32Array;
  const y = new Int32Array(n);
  switch (name) {
    case 'blobs': {
      k = opts.classes ?? 3;
      d = opts.d ?? 2;
      const centers = Array.from({ length: k }, () => Array.from({ length: d }, () => rng.uniform(-10, 10)));
      x = new Float32Array(n * d);
      for (let i = 0; i < n; i++) {
        y[i] = i % k;
        for (let j = 0; j < d; j++) x[i * d + j] = centers[y[i]][j] + rng.normal();
      }
      break;
    }
    case 'moons': {
      x = new Float32Array(n * 2);
      for (let i = 0; i < n; i++) {
        y[i] = i % 2;
        const t = rng.uniform(0, Math.PI);
        const [px, py] = y[i] === 0 ? [Math.cos(t), Math.sin(t)] : [1 - Math.cos(t), 0.5 - Math.sin(t)];
        x[2 * i] = px + rng.normal(0, 0.1);
        x[2 * i + 1] = py + rng.normal(0, 0.1);
      }
      break;
    }
    case 'circles': {
      x = new Float32Array(n * 2);
      for (let i = 0; i < n; i++) {
        y[i] = i % 2;
        const t = rng.uniform(0, 2 * Math.PI);
        const r = y[i] === 0 ? 1 : 0.5;
        x[2 * i] = r * Math.cos(t) + rng.normal(0, 0.05);
        x[2 * i + 1] = r * Math.sin(t) + rng.normal(0, 0.05);
      }
      break;
    }
    case 'linear': {
      // a random hyperplane with a margin of label noise: the textbook logistic-regression victim
      d = opts.d ?? 10;
      k = 2;
      const w = Array.from({ length: d }, () => rng.normal());
      x = new Float32Array(n * d);
      for (let i = 0; i < n; i++) {
        let z = 0.3;
        for (let j = 0; j < d; j++) {
          const v = rng.uniform(-1, 1);
          x[i * d + j] = v;
          z += w[j] * v;
        }
        const p = 1 / (1 + Math.exp(-3 * z));
        y[i] = rng.next() < p ? 1 : 0;
      }
      break;
    }
  }
  minMaxScale(x, n, d, -1, 1);
  const { train, test } = splitRows(x, y, d, 0.7, 0);
  return {
    name,
    inputShape: [d],
    numClasses: k,
    classNames: Array.from({ length: k }, (_, i) => `class_${i}`),
    train,
    test,
    domain: { min: -1, max: 1 },
    kind: 'tabular',
    variant: 'synthetic',
    notes: [],
  };
}
