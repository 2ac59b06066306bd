/** The user's own data files as datasets: a CSV table and NumPy arrays, named where a dataset name goes. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { assertDatasetName, loadDataset } from '../../src/data/registry.js';
import { userDataset } from '../../src/data/user-data.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mse-userdata-'));

function csv(name: string, rows: number): string {
  const f = path.join(dir, name);
  const lines = ['age,color,score,label'];
  for (let i = 0; i < rows; i++)
    lines.push(`${i % 10},${['red', 'green', 'blue'][i % 3]},${(i * 7) % 5},${i % 10 > 4 ? 'yes' : 'no'}`);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

/** A C-order .npy of float32, int32 or uint8 values, or of raw bytes under any dtype. */
function npy(values: ArrayLike<number>, shape: number[], descr: '<f4' | '<i4' | '|u1' | string): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64) header += ' ';
  header += '\n';
  const data =
    descr === '<f4' ? new Float32Array(values) : descr === '<i4' ? new Int32Array(values) : new Uint8Array(values);
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
    expect(ds.variant).toMatch(/^file2-[0-9a-f]{16}$/);
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

/** The message a load fails with (asserting it is one line). */
async function failure(spec: string): Promise<string> {
  try {
    await loadDataset(spec);
  } catch (e) {
    expect((e as Error).message).not.toContain('\n');
    const hint = (e as { hint?: string }).hint;
    return (e as Error).message + (hint ? ` (${hint})` : '');
  }
  throw new Error(`${spec} loaded`);
}

/** An .npz of the four arrays; x as float32 [n, …shape] (values i mod 7), y int32 */
function npz(name: string, arrays: Record<string, Uint8Array>): string {
  const f = path.join(dir, name);
  writeFileSync(f, zipSync(Object.fromEntries(Object.entries(arrays).map(([k, v]) => [`${k}.npy`, v]))));
  return f;
}
const xs = (shape: number[], f = (i: number) => i % 7) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return npy(
    Array.from({ length: n }, (_, i) => f(i)),
    shape,
    '<f4',
  );
};
const ys = (labels: number[], descr: '<i4' | '<f4' = '<i4') => npy(labels, [labels.length], descr);
const cycle = (n: number, k: number) => Array.from({ length: n }, (_, i) => i % k);

describe("the user's NumPy arrays, as numpy.savez and PyTorch users save them", () => {
  it('300k labels load (no spread into Math.max)', async () => {
    const n = 300_000;
    const f = npz('big.npz', {
      x_train: xs([n, 1]),
      y_train: ys(cycle(n, 2)),
      x_test: xs([8, 1]),
      y_test: ys(cycle(8, 2)),
    });
    const ds = await loadDataset(`npz:path=${f}`);
    expect([ds.train.n, ds.numClasses]).toEqual([n, 2]);
  });

  it('channels-first images [n, c, h, w] are transposed to [n, h, w, c], and said so', async () => {
    // x[0] as [c=3, h=1, w=2] holds 0…5: channel c of pixel (0, j) is 2c + j, so NHWC reads 0 2 4 1 3 5
    const x = xs([4, 3, 1, 2], (i) => i);
    const f = npz('nchw.npz', { x_train: x, y_train: ys([0, 1, 0, 1]), x_test: x, y_test: ys([0, 1, 0, 1]) });
    const ds = await loadDataset(`npz:path=${f}`);
    expect(ds.inputShape).toEqual([1, 2, 3]);
    expect(Array.from(ds.train.x.subarray(0, 6))).toEqual([0, 2, 4, 1, 3, 5]);
    expect(ds.notes.join()).toMatch(/\[n, c, h, w\] \(channels first.*transposed to \[n, h, w, c\]/);
    const grey = xs([4, 1, 28, 28]);
    const g = npz('nchw1.npz', { x_train: grey, y_train: ys([0, 1, 0, 1]), x_test: grey, y_test: ys([0, 1, 0, 1]) });
    expect((await loadDataset(`npz:path=${g}`)).inputShape).toEqual([28, 28, 1]);
    const odd = xs([4, 3, 5, 3]);
    const a = npz('ambiguous.npz', { x_train: odd, y_train: ys([0, 1, 0, 1]), x_test: odd, y_test: ys([0, 1, 0, 1]) });
    expect(await failure(`npz:path=${a}`)).toMatch(/channels first or last\? .*x\.transpose\(0, 2, 3, 1\)/);
  });

  it('x of one axis, labels that are no class indices, NaN, an empty test split: one line naming the array', async () => {
    const x = xs([6, 2]);
    const ok = { x_train: x, y_train: ys(cycle(6, 3)), x_test: x, y_test: ys(cycle(6, 3)) };
    const bad = async (name: string, change: Record<string, Uint8Array>) =>
      failure(`npz:path=${npz(name, { ...ok, ...change })}`);
    expect(await bad('x1d.npz', { x_train: xs([6]), x_test: xs([6]) })).toMatch(
      /^dataset npz:path=.*x1d\.npz: .*x1d\.npz: x_train must be \[n, features\] or \[n, h, w, c\], got \[6\]/,
    );
    expect(await bad('yfloat.npz', { y_train: ys([0, 1.5, 2, 0, 1, 2], '<f4') })).toMatch(
      /y_train holds 1\.5 \(index 1\); labels must be class indices/,
    );
    expect(await bad('gap.npz', { y_train: ys([0, 50, 100, 0, 50, 100]) })).toMatch(
      /labels must be class indices 0…k−1; remap them \(y_train holds 3 distinct labels from 0 to 100\)/,
    );
    expect(await bad('oor.npz', { y_test: ys([0, 1, 2, 3, 0, 1]) })).toMatch(
      /y_test holds label 3, but y_train's labels are 0…2/,
    );
    expect(await bad('nan.npz', { x_train: xs([6, 2], (i) => (i === 3 || i === 7 ? NaN : i)) })).toMatch(
      /x_train holds 2 NaN or infinite values/,
    );
    expect(await bad('empty.npz', { x_test: xs([0, 2]), y_test: ys([]) })).toMatch(
      /x_test has no examples \(\[0, 2\]\)/,
    );
    expect(await bad('mism.npz', { y_train: ys([0, 1, 2]) })).toMatch(/y_train has 3 labels for 6 examples/);
  });

  it('one-hot labels are read by argmax; unused text arrays are not read', async () => {
    const x = xs([4, 2]);
    const hot = npy([0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0], [4, 3], '<f4'); // classes 1, 0, 2, 1
    const f = npz('onehot.npz', {
      x_train: x,
      y_train: hot,
      x_test: x,
      y_test: hot,
      class_names: npy(new Array(12).fill(0), [3], '<U1'),
    });
    const ds = await loadDataset(`npz:path=${f}`);
    expect(ds.numClasses).toBe(3);
    expect(Array.from(ds.train.y)).toEqual([1, 0, 2, 1]);
    expect(ds.notes.join()).toMatch(/one-hot labels \[n, k\] read as class indices/);
  });

  it('a file that is no .npz says so, after the dataset and the file', async () => {
    const f = path.join(dir, 'random.npz');
    writeFileSync(f, Buffer.from('not a zip at all, just some bytes'));
    expect(await failure(`npz:path=${f}`)).toMatch(
      /^dataset npz:path=.*random\.npz: .*random\.npz: is not an \.npz \(a zip of \.npy arrays, as numpy\.savez writes\) \(numpy\.savez/,
    );
  });
});

describe("the user's CSV tables, as spreadsheets export them", () => {
  const table = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  /** rows of a, b (numbers), label y (0/1 as given by `label`) */
  const rows = (
    n: number,
    cell = (i: number, c: number) => String(((i * (c + 3)) % 11) - 5),
    label = (i: number) => String(i % 2),
  ) => Array.from({ length: n }, (_, i) => `${cell(i, 0)},${cell(i, 1)},${label(i)}`).join('\n');

  it("a ';'-separated file or one with only a label: 'no feature columns', with sep= to read it", async () => {
    const semi = table('semi.csv', 'a;b;y\n' + rows(20).replace(/,/g, ';'));
    expect(await failure(`csv:path=${semi}`)).toMatch(
      /no feature columns \(the header is 'a;b;y', one column\) \(the file looks ;-separated: give sep=;\)/,
    );
    const ds = await loadDataset(`csv:path=${semi},sep=;`);
    expect([ds.inputShape, ds.numClasses]).toEqual([[2], 2]);
    expect(await failure(`csv:path=${table('labelonly.csv', 'y\n0\n1\n0\n1\n0\n')}`)).toMatch(/no feature columns/);
  });

  it("an empty column (a ',' ending every line) is ignored, with a note", async () => {
    const f = table('trailing.csv', 'a,b,y,\n' + rows(20).replace(/\n/g, ',\n') + ',');
    expect(await failure(`csv:path=${f}`)).toMatch(/the label column '' is empty .*give label=<column>/);
    const ds = await loadDataset(`csv:path=${f},label=y`);
    expect([ds.inputShape, ds.train.n + ds.test.n, ds.notes]).toEqual([[2], 20, [`${f}: column '' is empty: ignored`]]);
  });

  it('values beyond 32-bit floats are refused, naming the column', async () => {
    const f = table('huge.csv', 'a,b,y\n1e308,1,0\n-1e308,2,1\n' + rows(10));
    expect(await failure(`csv:path=${f}`)).toMatch(/column 'a' row 1 holds 1e308, beyond 32-bit floats/);
  });

  it('a NaN, inf or empty cell drops its row (with a note); thousands separators are numbers', async () => {
    const f = table('nan.csv', 'a,b,y\nNaN,1,0\n2,inf,1\n3,,0\n' + rows(20));
    const ds = await loadDataset(`csv:path=${f}`);
    expect(ds.inputShape).toEqual([2]); // a and b stay numeric: no one-hot column per value
    expect(ds.train.n + ds.test.n).toBe(20);
    expect(ds.notes).toEqual([`${f}: dropped 3 of 23 rows with missing values (first: row 1, column 'a': 'NaN')`]);
    const t = table('thousands.csv', 'a,b,y\n"1,257.5",1,0\n"12,345",2,1\n' + rows(20));
    const th = await loadDataset(`csv:path=${t}`);
    expect(th.inputShape).toEqual([2]);
    // a's range is −5…12345 (the thousands value is its maximum, scaled to 1)
    expect(Math.max(...th.train.x.filter((_, i) => i % 2 === 0), ...th.test.x.filter((_, i) => i % 2 === 0))).toBe(1);
  });

  it('a text column with a value per row gets a note (an id or free text?)', async () => {
    const f = table(
      'email.csv',
      'email,a,y\n' + Array.from({ length: 20 }, (_, i) => `u${i}@x.org,${i % 5},${i % 2}`).join('\n'),
    );
    const ds = await loadDataset(`csv:path=${f}`);
    expect(ds.notes.join()).toMatch(/column 'email' has 20 distinct values in 20 rows .*becomes 20 one-hot features/);
  });

  it("numeric labels are numbers: '0' and '0.0' are one class, and 10 comes after 9", async () => {
    const mixed = table(
      'mixlabel.csv',
      'a,b,y\n' + rows(20, undefined, (i) => (i % 4 === 0 ? '0.0' : i % 4 === 1 ? '1' : i % 4 === 2 ? '0' : '1.0')),
    );
    expect((await loadDataset(`csv:path=${mixed}`)).classNames).toEqual(['0', '1']);
    const many = table('eleven.csv', 'a,b,y\n' + rows(66, undefined, (i) => String(i % 11)));
    expect((await loadDataset(`csv:path=${many}`)).classNames).toEqual([
      '0',
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
      '10',
    ]);
  });

  it('a label column with a value per row is refused: is it the label?', async () => {
    const f = table('regress.csv', 'a,b,c\n' + rows(20, undefined, (i) => String(i / 7)));
    expect(await failure(`csv:path=${f}`)).toMatch(
      /label column 'c' has 20 distinct values for 20 rows; is it the label\? give label=<column>/,
    );
    const dup = table('dup.csv', 'y,b,y\n' + rows(20));
    expect(await failure(`csv:path=${dup},label=y`)).toMatch(
      /the header names two columns 'y'; give label=<0-based index>/,
    );
  });

  it("a path with ',' needs brackets; a trailing ',' is named", async () => {
    expect(() => userDataset('folder:path=my dir,v2')).toThrow(
      "dataset folder: a path with ',' must be written in brackets: path=[my dir,v2]",
    );
    expect(() => userDataset('folder:path=img/good,')).toThrow(
      "dataset folder: a stray ',' after path=img/good; remove it",
    );
    expect(userDataset('folder:path=[my dir,v2]')!.name).toBe(
      'folder:channels=auto,path=[my dir,v2],size=auto,test=0.3',
    );
  });
});
