import { describe, expect, it } from 'vitest';
import { encodeTable, splitRows } from '../../src/data/tabular.js';
import { makeSynthetic, SYNTHETIC } from '../../src/data/synthetic.js';

describe('tabular encoding (Tramèr 2016 preprocessing)', () => {
  it('drops rows with missing values, one-hot encodes categoricals, scales every column to [-1, 1]', () => {
    const rows = [
      ['10', 'red', 'yes'],
      ['20', 'blue', 'no'],
      ['?', 'red', 'yes'], // dropped
      ['30', 'red', 'no'],
    ];
    const t = encodeTable(rows, { label: 2, categorical: new Set([1]) });
    expect(t.n).toBe(3);
    expect(t.d).toBe(3); // age, color=blue, color=red
    expect(t.featureNames).toEqual(['f0', 'f1=blue', 'f1=red']);
    expect(t.classNames).toEqual(['no', 'yes']);
    // worked by hand: age 10,20,30 → -1,0,1; blue one-hot 0,1,0 → -1,1,-1; red 1,0,1 → 1,-1,1
    expect(Array.from(t.x)).toEqual([-1, -1, 1, 0, 1, -1, 1, -1, 1]);
    expect(Array.from(t.y)).toEqual([1, 0, 0]);
  });

  it('splits deterministically and without overlap', () => {
    const n = 50;
    const x = Float32Array.from({ length: n }, (_, i) => i);
    const y = Int32Array.from({ length: n }, (_, i) => i % 2);
    const a = splitRows(x, y, 1, 0.7, 0);
    const b = splitRows(x, y, 1, 0.7, 0);
    expect(Array.from(a.train.x)).toEqual(Array.from(b.train.x));
    expect(a.train.n).toBe(35);
    expect(a.test.n).toBe(15);
    expect(new Set([...a.train.x, ...a.test.x]).size).toBe(n);
  });

  it.each(SYNTHETIC)('synthetic %s is in [-1, 1], balanced-ish and reproducible', (name) => {
    const a = makeSynthetic(name);
    const b = makeSynthetic(name);
    expect(Array.from(a.train.x.subarray(0, 20))).toEqual(Array.from(b.train.x.subarray(0, 20)));
    expect(Math.min(...a.train.x)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...a.train.x)).toBeLessThanOrEqual(1);
    const counts = new Array(a.numClasses).fill(0);
    for (const c of a.train.y) counts[c]++;
    expect(Math.min(...counts)).toBeGreaterThan((0.2 * a.train.n) / a.numClasses);
  });
});
