/**
 * The user's own data, named by a spec where a dataset name goes (`-d csv:path=data.csv,label=class`):
 *   csv:path=F[,label=COLUMN][,test=0.3]   a table with a header row; the label column by name or
 *       index (default: the last); columns holding anything but numbers are categorical (one-hot),
 *       every feature column is scaled to [−1, 1], and the rows are split train/test with a fixed
 *       data seed — the same preprocessing as the registry's tables (Tramèr et al. 2016)
 *   npz:path=F   NumPy arrays x_train, y_train, x_test, y_test (images as [n, h, w, c]; uint8 images
 *       are scaled to [0, 1])
 *   folder:path=DIR[,size=28x28][,channels=1|3][,test=0.3]   images, one subfolder per class (or
 *       train/ and test/ holding those), decoded and resized by sharp (formats/image-folder.ts)
 * Any of them can be an attacker's transfer pool too (`knockoff:pool=folder:path=DIR`; a spec with
 * several parameters in brackets: `pool=[csv:path=F,label=y]`): a pool folder needs no classes, and
 * its images are resized to the victim's input unless size= says otherwise.
 * The file's sha256 is the dataset's variant: it goes into the manifest, the victim cache key and
 * every cell id, so other data is never mistaken for this.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { DataError, UsageError, unknownChoice } from '../errors.js';
import {
  formatParams,
  parseSpec,
  resolveParams,
  typed,
  type Params,
  type ParamValues,
  type Schema,
} from '../params.js';
import { readImageFolder } from './formats/image-folder.js';
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
const FOLDER = {
  path: { type: 'string', help: 'the folder: one subfolder of images per class (or train/ and test/ holding those)' },
  size: {
    type: 'string',
    default: 'auto',
    help: "h×w to resize every image to, e.g. 28x28 or 28 (auto: the first image's size; for a pool, the victim's)",
  },
  channels: {
    type: 'string',
    choices: ['auto', '1', '3'],
    default: 'auto',
    help: "1 (grey) or 3 (RGB) (auto: the first image's; for a pool, the victim's)",
  },
  test: {
    type: 'number',
    min: 0.05,
    max: 0.95,
    default: 0.3,
    help: 'the fraction held out as the test set when the folder has no train/ and test/',
  },
} as const satisfies Schema;
const FORMATS: Record<string, Schema> = { csv: CSV, npz: NPZ, folder: FOLDER };

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

function parseSize(owner: string, v: string): [number, number] | undefined {
  if (v === 'auto') return undefined;
  const m = /^(\d+)(?:[x×](\d+))?$/.exec(v);
  const h = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(h >= 1 && w >= 1 && h <= 4096 && w <= 4096))
    throw new UsageError(`${owner}: size must be H×W (e.g. 28x28) or one number for a square, got '${v}'`);
  return [h, w];
}

async function folderDataset(name: string, p: Params<typeof FOLDER>, asPool: boolean): Promise<Dataset> {
  const dir = p.path ?? '';
  const f = await readImageFolder(dir, `dataset ${name}`, {
    size: parseSize(`dataset ${name}`, p.size),
    channels: p.channels === 'auto' ? undefined : (Number(p.channels) as 1 | 3),
  });
  const k = f.classNames.length;
  if (k < 2 && !asPool)
    throw new DataError(
      `dataset ${name}: ${dir} holds ${k} class; a classifier needs at least 2 (one subfolder of images per class)`,
    );
  const d = f.inputShape[0] * f.inputShape[1] * f.inputShape[2];
  const { train, test } = f.all ? splitRows(f.all.x, f.all.y, d, 1 - p.test, 0) : { train: f.train!, test: f.test! };
  if (!asPool && (!train.n || !test.n))
    throw new DataError(`dataset ${name}: ${dir} has too few images for a train and a test set`);
  return {
    name,
    inputShape: f.inputShape,
    numClasses: k,
    classNames: f.classNames,
    train,
    test,
    domain: { min: 0, max: 1 },
    kind: 'image',
    variant: `folder-${f.hash}`,
    notes: f.skipped ? [`${dir}: ${f.skipped} files that are not images were skipped`] : [],
  };
}

/** Whether a dataset name is the user's own file (`csv:…`, `npz:…`, `folder:…`) rather than a registered dataset. */
export function isUserDataSpec(spec: string): boolean {
  return /^[a-z]+:/.test(spec);
}

function resolveUserSpec(spec: string): { format: string; values: ParamValues; name: string } {
  const { name: format, raw } = parseSpec(spec);
  const schema = FORMATS[format];
  if (!schema) throw unknownChoice('data format', format, Object.keys(FORMATS));
  const values = resolveParams(`dataset ${format}`, schema, raw);
  if (!values.path) throw new UsageError(`dataset ${format} needs path=<${format === 'folder' ? 'folder' : 'file'}>`);
  return { format, values, name: `${format}:${formatParams(values)}` };
}

/**
 * A pool spec as it will be loaded against a victim taking `victimShape`: a folder's automatic size
 * and channels become the victim's (images of any size are the pool's business, not the user's), in
 * canonical form (the form rows record).
 */
export function concretePoolSpec(spec: string, victimShape: readonly number[]): string {
  const { format, values, name } = resolveUserSpec(spec);
  if (format !== 'folder' || victimShape.length !== 3) return name;
  const [h, w, c] = victimShape;
  const out = { ...values };
  if (out.size === 'auto') out.size = `${h}x${w}`;
  if (out.channels === 'auto' && (c === 1 || c === 3)) out.channels = String(c);
  return `folder:${formatParams(out)}`;
}

const pools = new Map<string, Promise<Dataset>>();
/** The user's data as a transfer pool: a folder may be one class (a pool needs images, not labels). Memoised per spec. */
export function loadUserPool(spec: string): Promise<Dataset> {
  const { format, values, name } = resolveUserSpec(spec);
  let p = pools.get(name);
  if (!p) {
    p = format === 'folder' ? folderDataset(name, typed(FOLDER, values), true) : userDataset(name)!.load();
    pools.set(name, p);
    p.catch(() => pools.delete(name));
  }
  return p;
}

const units = new Map<string, DatasetUnit>();

/** The dataset a `csv:`/`npz:` spec names (its canonical form is the dataset's name), or undefined for other names. */
export function userDataset(spec: string): DatasetUnit | undefined {
  if (!isUserDataSpec(spec)) return undefined;
  const { format, values, name } = resolveUserSpec(spec);
  const had = units.get(name);
  if (had) return had;
  const load = (): Promise<Dataset> => {
    switch (format) {
      case 'csv': {
        const p = typed(CSV, values);
        return Promise.resolve().then(() => csvDataset(name, p.path ?? '', p.label, p.test));
      }
      case 'npz':
        return Promise.resolve().then(() => npzDataset(name, typed(NPZ, values).path ?? ''));
      default:
        return folderDataset(name, typed(FOLDER, values), false);
    }
  };
  const unit: DatasetUnit = {
    kind: 'dataset',
    name,
    describe: `your ${format} ${format === 'folder' ? 'of images' : 'file'} ${String(values.path)}`,
    dataKind: format === 'folder' ? 'image' : 'tabular',
    load,
  };
  units.set(name, unit);
  return unit;
}
