/**
 * Tabular preprocessing as Tramèr et al. 2016 did it (Steal-ML, regression/utils.py `prepare_data`):
 * one-hot encode categorical features (`pd.get_dummies`, which keeps a row whose categorical value is
 * missing and gives "?" its own column), MinMax-scale every resulting column to [−1, 1], split 70/30
 * with a fixed data seed (0), so the victim's data never depends on the experiment's --seed. On
 * Adult that is 48,842 rows and 105 features for Adult-Race, hence the paper's 530 softmax and
 * 2,225 MLP unknowns. `missing: 'drop'` is the common cleaned variant (rows with any missing value
 * dropped: 45,222 Adult rows). A missing numeric value or label always drops its row.
 */
import { Rng } from '../compute/rng.js';
import type { Split } from './types.js';

export interface TableSpec {
  /** column index of the label */
  label: number;
  /** columns that are categorical (others are parsed as numbers) */
  categorical: Set<number>;
  /** columns to drop entirely */
  drop?: Set<number>;
  /** tokens meaning "missing" */
  missing?: string[];
  /** a missing categorical value: its own category (Tramèr's `get_dummies`, the default) or drop the row */
  missingCategorical?: 'category' | 'drop';
  /** map a raw label to its class name (e.g. strip the trailing '.' in adult.test) */
  labelMap?: (raw: string) => string;
  /** fixed class order; default: sorted distinct labels */
  classNames?: string[];
}

export interface EncodedTable {
  x: Float32Array;
  y: Int32Array;
  n: number;
  d: number;
  featureNames: string[];
  classNames: string[];
}

export function encodeTable(rows: string[][], spec: TableSpec, header?: string[]): EncodedTable {
  const missing = new Set(spec.missing ?? ['?', '']);
  const keepCat = (spec.missingCategorical ?? 'category') === 'category';
  const clean = rows.filter(
    (r) =>
      r.length > spec.label &&
      r.every((v, c) => !missing.has(v.trim()) || (keepCat && c !== spec.label && spec.categorical.has(c))),
  );
  const ncol = clean[0]?.length ?? 0;
  const cols = [...Array(ncol).keys()].filter((c) => c !== spec.label && !spec.drop?.has(c));
  const labelOf = (r: string[]) => (spec.labelMap ?? ((s: string) => s))(r[spec.label].trim());
  const classNames = spec.classNames ?? [...new Set(clean.map(labelOf))].sort();
  const classIndex = new Map(classNames.map((c, i) => [c, i]));

  // one block of output columns per input column
  const blocks = cols.map((c) => {
    const name = header?.[c] ?? `f${c}`;
    if (spec.categorical.has(c)) {
      const cats = [...new Set(clean.map((r) => r[c].trim()))].sort();
      return { c, cats, names: cats.map((v) => `${name}=${v}`) };
    }
    return { c, cats: undefined, names: [name] };
  });
  const d = blocks.reduce((a, b) => a + b.names.length, 0);
  const n = clean.length;
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  clean.forEach((r, i) => {
    let o = i * d;
    for (const b of blocks) {
      const v = r[b.c].trim();
      if (b.cats) {
        x[o + b.cats.indexOf(v)] = 1;
        o += b.cats.length;
      } else {
        const num = Number(v);
        if (!Number.isFinite(num)) throw new Error(`non-numeric value '${v}' in column ${b.c}, row ${i}`);
        x[o++] = num;
      }
    }
    const k = classIndex.get(labelOf(r));
    if (k === undefined) throw new Error(`unknown label '${labelOf(r)}' in row ${i}`);
    y[i] = k;
  });
  minMaxScale(x, n, d, -1, 1);
  return { x, y, n, d, featureNames: blocks.flatMap((b) => b.names), classNames };
}

/** Scale every column to [lo, hi] in place (constant columns go to the middle). */
export function minMaxScale(x: Float32Array, n: number, d: number, lo: number, hi: number): void {
  for (let j = 0; j < d; j++) {
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = x[i * d + j];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    const span = mx - mn;
    for (let i = 0; i < n; i++) {
      x[i * d + j] = span > 0 ? lo + ((x[i * d + j] - mn) / span) * (hi - lo) : (lo + hi) / 2;
    }
  }
}

/** Deterministic split: `trainFrac` of a permutation drawn from `seed`. */
export function splitRows(
  x: Float32Array,
  y: Int32Array,
  d: number,
  trainFrac: number,
  seed = 0,
): { train: Split; test: Split } {
  const n = y.length;
  const perm = new Rng(seed).permutation(n);
  const nTrain = Math.round(n * trainFrac);
  const take = (idx: Int32Array): Split => {
    const xs = new Float32Array(idx.length * d);
    const ys = new Int32Array(idx.length);
    idx.forEach((r, i) => {
      xs.set(x.subarray(r * d, (r + 1) * d), i * d);
      ys[i] = y[r];
    });
    return { x: xs, y: ys, n: idx.length };
  };
  return { train: take(perm.subarray(0, nTrain)), test: take(perm.subarray(nTrain)) };
}
