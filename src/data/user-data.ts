/**
 * The user's own data, named by a spec where a dataset name goes (`-d csv:path=data.csv,label=class`):
 *   csv:path=F[,label=COLUMN][,sep=;|tab|'|'][,test=0.3]   a table with a header row; the label column
 *       by name or index (default: the last); columns holding anything but numbers are categorical
 *       (one-hot), every feature column is scaled to [−1, 1], and the rows are split train/test with a
 *       fixed data seed — the same preprocessing as the registry's tables (Tramèr et al. 2016); rows
 *       with a missing value (empty, NaN, inf) are dropped, as theirs are, and a note says how many
 *   npz:path=F   NumPy arrays x_train, y_train, x_test, y_test (formats/npz.ts: images as [n, h, w, c],
 *       or [n, c, h, w] transposed; uint8 images are scaled to [0, 1]; labels 0…k−1 or one-hot)
 *   folder:path=DIR[,size=28x28][,channels=1|3][,test=0.3]   images, one subfolder per class (or
 *       train/ and test/ holding those), decoded and resized by sharp (formats/image-folder.ts)
 * Any of them can be an attacker's transfer pool too (`knockoff:pool=folder:path=DIR`; a spec with
 * several parameters in brackets: `pool=[csv:path=F,label=y]`): a pool folder needs no classes, and
 * its images are resized to the victim's input unless size= says otherwise.
 * The file's sha256 is the dataset's variant (`file2-…`: the 2 is how mse reads the file — bumped when
 * that changes, so a victim cached from an older reading is not reused): it goes into the manifest,
 * the victim cache key and every cell id, so other data is never mistaken for this.
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
import { npzExamples, npzMembers, parseNpz } from './formats/npz.js';
import { encodeTable, splitRows } from './tabular.js';
import type { DatasetUnit } from './define.js';
import type { Dataset, Split } from './types.js';

const CSV = {
  path: { type: 'string', help: 'the CSV file (a header row, then one example per row)' },
  label: { type: 'string', help: 'the label column, by name or 0-based index (default: the last column)' },
  sep: { type: 'string', choices: [';', 'tab', '|'], help: "the field separator when it is not ','" },
  test: { type: 'number', min: 0.05, max: 0.95, default: 0.3, help: 'the fraction of rows held out as the test set' },
} as const satisfies Schema;
const NPZ = {
  path: { type: 'string', help: 'the .npz file with x_train, y_train, x_test, y_test' },
} as const satisfies Schema;
const MAX_SIDE = 4096;
const FOLDER = {
  path: { type: 'string', help: 'the folder: one subfolder of images per class (or train/ and test/ holding those)' },
  size: {
    type: 'string',
    default: 'auto',
    help: "h×w to resize every image to, e.g. 28x28 or 28 (auto: the images' most common size; for a pool, the victim's)",
  },
  channels: {
    type: 'string',
    choices: ['auto', '1', '3'],
    default: 'auto',
    help: "1 (grey) or 3 (RGB) (auto: the images' most common; for a pool, the victim's)",
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

/** A note when the training split lacks some class (a class with too few examples for the split). */
function missingClasses(where: string, train: Split, classNames: readonly string[], advice: string): string[] {
  const has = new Set(train.y);
  const lack = classNames.filter((_, i) => !has.has(i));
  if (!lack.length) return [];
  const which = lack.slice(0, 5).join(', ') + (lack.length > 5 ? ', …' : '');
  return [`${where}: the training split has no examples of class${lack.length > 1 ? 'es' : ''} ${which}; ${advice}`];
}

/** Cells that mean "no value" in a numeric column (pandas' and R's spellings; inf is no value to learn from either). */
const NO_NUMBER = /^(nan|na|n\/a|null|none|\?|-|[+-]?inf(inity)?)$/i;
const FLOAT32_MAX = 3.4028234663852886e38;

/** `v` as a number if it is one: plain, with thousands separators ('12,345.6') in a ','-separated file, or with a decimal comma ('0,5') in another. */
function asNumber(v: string, sep: string): number | undefined {
  if (v === '') return undefined;
  let n = Number(v);
  if (!Number.isFinite(n)) {
    if (sep === ',' && /^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$/.test(v)) n = Number(v.replace(/,/g, ''));
    else if (sep !== ',' && /^[+-]?\d+,\d+$/.test(v)) n = Number(v.replace(',', '.'));
  }
  return Number.isFinite(n) ? n : undefined;
}

/**
 * A CSV table as Tramèr et al.'s preprocessing takes it (tabular.ts), made safe for files from anywhere:
 * a column is numeric when (nearly) all its values are numbers (NaN, inf, '?' and the odd stray cell
 * count as missing); rows with a missing value are dropped, and said so; numeric labels are numbers
 * ('1' and '1.0' are one class, ordered 0, 1, 2, …, 10); a label with a value per row is refused.
 */
function csvDataset(name: string, p: Params<typeof CSV>): Dataset {
  const file = p.path ?? '';
  const where = `dataset ${name}: ${file}`;
  const bytes = readFile(file, name);
  const text = bytes.toString('utf8');
  const sep = p.sep === 'tab' ? '\t' : (p.sep ?? ',');
  const firstLine = text.split(/\r?\n/, 1)[0];
  const looks = sep === ',' && /[;\t]/.test(firstLine) ? (firstLine.includes(';') ? ';' : 'tab') : undefined;
  const sepHint = looks && `the file looks ${looks}-separated: give sep=${looks}`;
  let rows: string[][];
  try {
    rows = parseCsv(text, { skip_empty_lines: true, trim: true, bom: true, delimiter: sep }) as string[][];
  } catch (e) {
    throw new DataError(`${where} is not a CSV: ${(e as Error).message.split('\n')[0]}`, sepHint);
  }
  const header = rows.shift();
  if (!header || rows.length < 4)
    throw new DataError(`dataset ${name}: ${file} needs a header row and at least 4 rows of data`);
  if (header.length < 2)
    throw new DataError(
      `${where}: no feature columns (the header is '${header.join(sep)}', one column)`,
      sepHint ?? 'a header row naming every column, the label among them',
    );
  let col = header.length - 1;
  if (p.label !== undefined) {
    const byName = header.indexOf(p.label);
    const byIndex = /^\d+$/.test(p.label) ? Number(p.label) : -1;
    col = byName >= 0 ? byName : byIndex >= 0 && byIndex < header.length ? byIndex : -1;
    if (col < 0) throw unknownChoice(`label column in ${file}`, p.label, header);
    if (byName >= 0 && header.indexOf(p.label, byName + 1) >= 0)
      throw new UsageError(`${where}: the header names two columns '${p.label}'; give label=<0-based index>`);
  }
  const categorical = new Set<number>();
  const drop = new Set<number>();
  const missing = new Map<number, string>(); // row → its first missing cell
  const notes: string[] = [];
  let numericLabel = false;
  header.forEach((h, c) => {
    const cells = rows.map((r) => r[c]);
    const filled = cells.filter((v) => v !== '').length;
    if (!filled) {
      // a column with no values at all (a ',' ending every line): nothing to learn, nothing missing
      if (c === col)
        throw new DataError(
          `${where}: the label column '${h}' is empty (a ',' ending every line?); give label=<column>`,
        );
      drop.add(c);
      return void notes.push(`${file}: column '${h}' is empty: ignored`);
    }
    const nums = cells.map((v) => asNumber(v, sep));
    const parsed = nums.filter((v) => v !== undefined).length;
    const stray = cells.filter((v, i) => v !== '' && nums[i] === undefined && !NO_NUMBER.test(v)).length;
    const numeric = parsed > 0 && 2 * parsed >= filled && stray <= (c === col ? 0 : Math.max(1, filled / 100));
    cells.forEach((v, i) => {
      const num = nums[i];
      if (v === '' || (numeric && num === undefined)) {
        if (!missing.has(i)) missing.set(i, `row ${i + 1}, column '${h}': ${v === '' ? 'empty' : `'${v}'`}`);
      } else if (numeric && num !== undefined) {
        if (Math.abs(num) > FLOAT32_MAX && c !== col)
          throw new DataError(
            `${where}: column '${h}' row ${i + 1} holds ${v}, beyond 32-bit floats (±3.4e38)`,
            'rescale the column (other units) or drop it',
          );
        rows[i][c] = String(num);
      }
    });
    if (c === col) numericLabel = numeric;
    else if (!numeric) categorical.add(c);
  });
  if (header.length - drop.size < 2) throw new DataError(`${where}: no feature columns (every one is empty)`);
  const clean = rows.filter((_, i) => !missing.has(i));
  if (missing.size) {
    const first = missing.values().next().value;
    notes.push(`${file}: dropped ${missing.size} of ${rows.length} rows with missing values (first: ${first})`);
  }
  if (clean.length < 4)
    throw new DataError(`${where}: only ${clean.length} rows have every value; a dataset needs at least 4`);
  const labels = new Set(clean.map((r) => r[col]));
  if (labels.size > clean.length / 2)
    throw new DataError(
      `${where}: label column '${header[col]}' has ${labels.size} distinct values for ${clean.length} rows; is it the label? give label=<column>`,
      'a classifier needs each class on several rows',
    );
  for (const c of categorical) {
    const k = new Set(clean.map((r) => r[c])).size;
    if (k > clean.length / 2)
      notes.push(
        `${file}: column '${header[c]}' has ${k} distinct values in ${clean.length} rows (an id, free text or a number mis-read?): it becomes ${k} one-hot features`,
      );
  }
  const classNames = numericLabel ? [...labels].sort((a, b) => Number(a) - Number(b)) : undefined;
  let t: ReturnType<typeof encodeTable>;
  try {
    t = encodeTable(clean, { label: col, categorical, drop, missing: [], classNames }, header);
  } catch (e) {
    throw new DataError(`${where}: ${(e as Error).message}`);
  }
  for (let j = 0; j < t.d; j++)
    for (let i = 0; i < t.n; i++)
      if (!Number.isFinite(t.x[i * t.d + j]))
        throw new DataError(`${where}: column '${t.featureNames[j]}' does not scale to finite numbers`, 'rescale it');
  if (t.classNames.length < 2)
    throw new DataError(
      `dataset ${name}: the label column '${header[col]}' holds ${t.classNames.length} class; a classifier needs at least 2`,
    );
  const { train, test } = splitRows(t.x, t.y, t.d, 1 - p.test, 0);
  notes.push(...missingClasses(file, train, t.classNames, 'add rows of it or lower test='));
  return {
    name,
    inputShape: [t.d],
    numClasses: t.classNames.length,
    classNames: t.classNames,
    train,
    test,
    domain: { min: -1, max: 1 },
    kind: 'tabular',
    variant: `file2-${sha(bytes)}`,
    notes,
  };
}

function npzDataset(name: string, file: string): Dataset {
  const bytes = readFile(file, name);
  const where = `dataset ${name}: ${file}`;
  const need = ['x_train', 'y_train', 'x_test', 'y_test'];
  const save = 'numpy.savez(file, x_train=…, y_train=…, x_test=…, y_test=…) writes one';
  const arrays = parseNpz(bytes, where, { only: need, hint: save });
  const missing = need.filter((k) => !arrays[k]);
  if (missing.length)
    throw new DataError(
      `${where} lacks ${missing.join(', ')} (it has ${npzMembers(bytes).join(', ') || 'nothing'})`,
      save,
    );
  const ex = npzExamples(arrays, where, file);
  let min = Infinity;
  let max = -Infinity;
  for (const v of ex.train.x) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const image = ex.inputShape.length === 3;
  const classNames = Array.from({ length: ex.numClasses }, (_, i) => String(i));
  return {
    name,
    inputShape: ex.inputShape,
    numClasses: ex.numClasses,
    classNames,
    train: ex.train,
    test: ex.test,
    domain: image && ex.uint8 ? { min: 0, max: 1 } : { min, max: max > min ? max : min + 1 },
    kind: image ? 'image' : 'tabular',
    variant: `file2-${sha(bytes)}`,
    notes: [...ex.notes, ...missingClasses(file, ex.train, classNames, 'its label is never learnt')],
  };
}

function parseSize(owner: string, v: string): [number, number] | undefined {
  if (v === 'auto') return undefined;
  const m = /^(\d+)(?:[x×](\d+))?$/.exec(v);
  const h = m ? Number(m[1]) : NaN;
  const w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(h >= 1 && w >= 1 && h <= MAX_SIDE && w <= MAX_SIDE))
    throw new UsageError(
      `${owner}: size must be H×W (e.g. 28x28) or one number for a square, each side 1…${MAX_SIDE}, got '${v}'`,
    );
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
  const notes = [...f.notes];
  if (f.skipped) notes.push(`${dir}: skipped ${f.skipped} file${f.skipped === 1 ? '' : 's'} that are not images`);
  if (!asPool) notes.push(...missingClasses(dir, train, f.classNames, 'add images of it or lower test='));
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
    notes,
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
  // a ',' in a value ends it: `path=my dir,v2` reads as two values of path, and so does a trailing ','
  for (const [key, vals] of Object.entries(raw))
    if (vals.length > 1 && schema[key]?.type === 'string')
      throw new UsageError(
        vals.slice(1).every((v) => v === '')
          ? `dataset ${format}: a stray ',' after ${key}=${vals[0]}; remove it`
          : `dataset ${format}: a ${key} with ',' must be written in brackets: ${key}=[${vals.join(',')}]`,
      );
  let values: ParamValues;
  try {
    values = resolveParams(`dataset ${format}`, schema, raw);
  } catch (e) {
    // `path=a,b=c` reads as path=a and a parameter b: a path with ',' needs its brackets
    if (e instanceof UsageError && raw.path && Object.keys(raw).some((k) => !schema[k]))
      throw new UsageError(e.message, "a path holding ',' must be written in brackets: path=[…]");
    throw e;
  }
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

/**
 * Advice for a pool whose inputs are not the victim's shape (for the message that says so): a folder
 * given size= or channels= should drop them, since a folder pool takes the victim's by default.
 */
export function poolShapeHint(spec: string): string | undefined {
  if (!isUserDataSpec(spec)) return undefined;
  const { format, values } = resolveUserSpec(spec);
  if (format !== 'folder') return undefined;
  const given = (['size', 'channels'] as const).filter((k) => values[k] !== 'auto').map((k) => `${k}=`);
  return given.length
    ? `drop ${given.join(' and ')} from the pool: a folder pool's images are resized to the victim's input by default`
    : undefined;
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
        return Promise.resolve().then(() => csvDataset(name, typed(CSV, values)));
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
