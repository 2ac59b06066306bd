/** The user's own data files as datasets: a CSV table and NumPy arrays, named where a dataset name goes. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { assertDatasetName, loadDataset } from '../../src/data/registry.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-userdata-'));

function csv(name: string, rows: number): string {
  const f = path.join(dir, name);
  const lines = ['age,color,score,label'];
  for (let i = 0; i < rows; i++)
    lines.push(`${i % 10},${['red', 'green', 'blue'][i % 3]},${(i * 7) % 5},${i % 10 > 4 ? 'yes' : 'no'}`);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

/** A C-order .npy of float32 or int32 values. */
function npy(values: ArrayLike<number>, shape: number[], descr: '<f4' | '<i4'): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64) header += ' ';
  header += '\n';
  const data = descr === '<f4' ? new Float32Array(values) : new Int32Array(values);
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(data.buffer), 10 + header.length);
  return out;
}

describe("the user's own data", () => {
  it('a CSV: the label column by name, text columns one-hot, features scaled, a fixed split, its hash the variant', async () => {
    const f = csv('a.csv', 100);
    const ds = await loadDataset(`csv:path=${f},label=label`);
    expect(ds.name).toBe(`csv:label=label,path=${f},test=0.3`);
    expect(ds.inputShape).toEqual([5]); // age, color×3, score
    expect(ds.classNames).toEqual(['no', 'yes']);
    expect(ds.train.n + ds.test.n).toBe(100);
    expect(ds.test.n).toBe(30);
    expect(Math.min(...ds.train.x)).toBe(-1);
    expect(Math.max(...ds.train.x)).toBe(1);
    expect(ds.variant).toMatch(/^file-[0-9a-f]{16}$/);
    const other = await loadDataset(`csv:path=${csv('b.csv', 120)}`); // label: the last column by default
    expect(other.variant).not.toBe(ds.variant);
  });

  it('NumPy arrays: x_train, y_train, x_test, y_test; uint8-free float images keep their range', async () => {
    const f = path.join(dir, 'd.npz');
    const n = 12;
    const x = Array.from({ length: n * 4 * 4 * 1 }, (_, i) => (i % 17) / 16);
    const y = Array.from({ length: n }, (_, i) => i % 3);
    writeFileSync(
      f,
      zipSync({
        'x_train.npy': npy(x, [n, 4, 4, 1], '<f4'),
        'y_train.npy': npy(y, [n], '<i4'),
        'x_test.npy': npy(x, [n, 4, 4, 1], '<f4'),
        'y_test.npy': npy(y, [n], '<i4'),
      }),
    );
    const ds = await loadDataset(`npz:path=${f}`);
    expect(ds.inputShape).toEqual([4, 4, 1]);
    expect(ds.kind).toBe('image');
    expect(ds.numClasses).toBe(3);
    expect(ds.train.n).toBe(n);
    expect(ds.domain).toEqual({ min: 0, max: 1 });
  });

  it('bad files and specs are one line naming the file', async () => {
    await expect(loadDataset(`csv:path=${path.join(dir, 'nope.csv')}`)).rejects.toThrow(/nope\.csv does not exist/);
    await expect(loadDataset(`csv:path=${csv('c.csv', 20)},label=lbl`)).rejects.toThrow(
      /unknown label column in .*c\.csv 'lbl'\. Did you mean 'label'\?/,
    );
    writeFileSync(path.join(dir, 'one.csv'), 'a,label\n1,x\n2,x\n3,x\n4,x\n');
    await expect(loadDataset(`csv:path=${path.join(dir, 'one.csv')}`)).rejects.toThrow(
      /holds 1 class; a classifier needs at least 2/,
    );
    writeFileSync(path.join(dir, 'e.npz'), zipSync({ 'x_train.npy': npy([1, 2], [2, 1], '<f4') }));
    await expect(loadDataset(`npz:path=${path.join(dir, 'e.npz')}`)).rejects.toThrow(/lacks y_train, x_test, y_test/);
    expect(() => assertDatasetName('xls:path=a.xls')).toThrow(/unknown data format 'xls'/);
    expect(() => assertDatasetName('csv:label=y')).toThrow(/needs path=<file>/);
  });
});
