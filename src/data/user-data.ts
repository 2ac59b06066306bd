/**
 * The user's own data, named by a spec where a dataset name goes (`-d csv:path=data.csv,label=class`):
 *   csv:path=F[,label=COLUMN][,test=0.3]   a table with a header row; the label column by name or
 *       index (default: the last); columns holding anything but numbers are categorical (one-hot),
 *       every feature column is scaled to [−1, 1], and the rows are split train/test with a fixed
 *       data seed — the same preprocessing as the registry's tables (Tramèr et al. 2016)
 *   npz:path=F   NumPy arrays x_train, y_train, x_test, y_test (images as [n, h, w, c]; uint8 images
 *       are scaled to [0, 1])
 * The file's sha256 is the dataset's variant: it goes into the manifest, the victim cache key and
 * every cell id, so other data is never mistaken for this.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { DataError, UsageError, unknownChoice } from '../errors.js';
import { formatParams, parseSpec, resolveParams, typed, type Schema } from '../params.js';
import { parseNpz } from './formats/npz.js';
import { encodeTable, splitRows } from './tabular.js';
import type { DatasetUnit } from './define.js';
import type { Dataset, Split } from './types.js';

const CSV = {
  path: { type: 'string', help: 'the CSV file (a header row, then one example per row)' },
  label: { type: 'string', help: 'the label column, by name or 0-based index (default: the last column)' },
  test: { type: 'number', min: 0.05, max: 0.95, default: 0.3, help: 'the fraction of rows held out as the test set' },
} as const satisfies Schema;
const NPZ = {
  path: { type: 'string', help: 'the .npz file with x_train, y_train, x_test, y_test' },
} as const satisfies Schema;
const FORMATS: Record<string, Schema> = { csv: CSV, npz: NPZ };

function readFile(file: string, spec: string): Buffer {
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(
      `dataset ${spec}: ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`}`,
    );
  }
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

function csvDataset(name: string, file: string, label: string | undefined, testFrac: number): Dataset {
  const bytes = readFile(file, name);
  let rows: string[][];
  try {
    rows = parseCsv(bytes.toString('utf8'), { skip_empty_lines: true, trim: true }) as string[][];
  } catch (e) {
    throw new DataError(`dataset ${name}: ${file} is not a CSV: ${(e as Error).message.split('\n')[0]}`);
  }
  const header = rows.shift();
  if (!header || rows.length < 4)
    throw new DataError(`dataset ${name}: ${file} needs a header row and at least 4 rows of data`);
  let col = header.length - 1;
  if (label !== undefined) {
    const byName = header.indexOf(label);
    const byIndex = /^\d+$/.test(label) ? Number(label) : -1;
    col = byName >= 0 ? byName : byIndex >= 0 && byIndex < header.length ? byIndex : -1;
    if (col < 0) throw unknownChoice(`label column in ${file}`, label, header);
  }
  const numeric = (v: string) => v.trim() !== '' && Number.isFinite(Number(v));
  const categorical = new Set(
    header.map((_, c) => c).filter((c) => c !== col && rows.some((r) => r[c] !== undefined && !numeric(r[c]))),
  );
  let t: ReturnType<typeof encodeTable>;
  try {
    t = encodeTable(rows, { label: col, categorical, missing: [''] }, header);
  } catch (e) {
    throw new DataError(`dataset ${name}: ${file}: ${(e as Error).message}`);
  }
  if (t.classNames.length < 2)
    throw new DataError(
      `dataset ${name}: the label column '${header[col]}' holds ${t.classNames.length} class; a classifier needs at least 2`,
    );
  const { train, test } = splitRows(t.x, t.y, t.d, 1 - testFrac, 0);
  return {
    name,
    inputShape: [t.d],
    numClasses: t.classNames.length,
    classNames: t.classNames,
    train,
    test,
    domain: { min: -1, max: 1 },
    kind: 'tabular',
    variant: `file-${sha(bytes)}`,
    notes: [],
  };
}

function npzDataset(name: string, file: string): Dataset {
  const bytes = readFile(file, name);
  const arrays = parseNpz(bytes, file);
  const need = ['x_train', 'y_train', 'x_test', 'y_test'];
  const missing = need.filter((k) => !arrays[k]);
  if (missing.length)
    throw new DataError(
      `dataset ${name}: ${file} lacks ${missing.join(', ')} (it has ${Object.keys(arrays).join(', ') || 'nothing'})`,
    );
  const xTr = arrays.x_train;
  const shape = xTr.shape.slice(1);
  if (!shape.length || arrays.x_test.shape.slice(1).join() !== shape.join())
    throw new DataError(`dataset ${name}: x_train and x_test must have the same example shape`);
  const scale = xTr.dtype.includes('u1') ? 1 / 255 : 1;
  const floats = (a: (typeof arrays)[string]) =>
    Float32Array.from(a.data as ArrayLike<number>, (v) => Number(v) * scale);
  const ints = (a: (typeof arrays)[string]) => Int32Array.from(a.data as ArrayLike<number>, (v) => Number(v));
  const split = (x: (typeof arrays)[string], y: (typeof arrays)[string]): Split => {
    const n = x.shape[0];
    if (y.data.length !== n) throw new DataError(`dataset ${name}: ${n} examples but ${y.data.length} labels`);
    return { x: floats(x), y: ints(y), n };
  };
  const train = split(xTr, arrays.y_train);
  const test = split(arrays.x_test, arrays.y_test);
  const k = Math.max(...train.y, ...test.y) + 1;
  if (Math.min(...train.y, ...test.y) < 0 || k < 2)
    throw new DataError(`dataset ${name}: labels must be class indices 0…k−1 with k ≥ 2`);
  let min = Infinity;
  let max = -Infinity;
  for (const v of train.x) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const image = shape.length === 3;
  return {
    name,
    inputShape: shape,
    numClasses: k,
    classNames: Array.from({ length: k }, (_, i) => String(i)),
    train,
    test,
    domain: image && scale !== 1 ? { min: 0, max: 1 } : { min, max: max > min ? max : min + 1 },
    kind: image ? 'image' : 'tabular',
    variant: `file-${sha(bytes)}`,
    notes: [],
  };
}

const units = new Map<string, DatasetUnit>();

/** The dataset a `csv:`/`npz:` spec names (its canonical form is the dataset's name), or undefined for other names. */
export function userDataset(spec: string): DatasetUnit | undefined {
  if (!/^[a-z]+:/.test(spec)) return undefined;
  const { name: format, raw } = parseSpec(spec);
  const schema = FORMATS[format];
  if (!schema) throw unknownChoice('data format', format, Object.keys(FORMATS));
  const values = resolveParams(`dataset ${format}`, schema, raw);
  if (!values.path) throw new UsageError(`dataset ${format} needs path=<file>`);
  const name = `${format}:${formatParams(values)}`;
  const csv = typed(CSV, values);
  const npz = typed(NPZ, values);
  const had = units.get(name);
  if (had) return had;
  const unit: DatasetUnit = {
    kind: 'dataset',
    name,
    describe: `your ${format} file ${values.path}`,
    dataKind: 'tabular',
    load: async () =>
      format === 'csv' ? csvDataset(name, csv.path ?? '', csv.label, csv.test) : npzDataset(name, npz.path ?? ''),
  };
  units.set(name, unit);
  return unit;
}
