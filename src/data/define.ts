/**
 * `defineDataset`: a dataset as one value — its name, what it holds, and a loader that returns its
 * splits — for data that is not in mse's registry of published files (your own data, from a plugin).
 * mse checks what the loader returns (shapes, label range, finite features) once, and records the
 * plugin's content hash as the dataset's variant (loadDataset), so victims trained on other data are
 * not reused.
 *
 *     export default defineDataset({
 *       name: 'my-table',
 *       describe: 'my own tabular data, 8 features, 2 classes',
 *       kind: 'tabular',
 *       load: async () => ({ inputShape: [8], numClasses: 2, train: { x, y, n }, test: { x, y, n } }),
 *     });
 */
import { MseError, UsageError } from '../errors.js';
import type { Unit, UnitSource } from '../units/registry.js';
import type { Dataset, Split } from './types.js';
import type { ResolveOptions } from './resolve.js';

/** What a dataset's loader returns. Features are flat row-major Float32Arrays of n × prod(inputShape). */
export interface DatasetData {
  inputShape: number[];
  numClasses: number;
  classNames?: string[];
  train: Split;
  /** held out: the honest user's queries and every test-set metric */
  test: Split;
  /** the feature box uniform queries are drawn from (default: the range of the training features) */
  domain?: { min: number; max: number };
}

export interface DatasetDefinition {
  name: string;
  describe: string;
  /** 'image' inputs are h×w×c; 'tabular' a feature vector */
  kind: 'image' | 'tabular';
  /** the victim a sweep trains when it names none (default: cnn for images, logistic/softmax for tables) */
  victim?: string;
  /** the attacker's default transfer pool (`pool=auto`), a dataset of the same input shape */
  pool?: string;
  load(): Promise<DatasetData> | DatasetData;
}

export interface DatasetUnit extends Unit {
  readonly kind: 'dataset';
  readonly dataKind: 'image' | 'tabular';
  readonly victim?: string;
  readonly pool?: string;
  /** load (a published dataset from where `opts` says its files are) and check; loadDataset memoises */
  load(opts?: ResolveOptions): Promise<Dataset>;
}

function checkSplit(owner: string, which: string, s: Split | undefined, d: number, k: number): void {
  if (!s || !(s.x instanceof Float32Array) || !(s.y instanceof Int32Array) || !Number.isSafeInteger(s.n) || s.n < 1)
    throw new MseError('dataset', `${owner}: ${which} must be { x: Float32Array, y: Int32Array, n ≥ 1 }`);
  if (s.x.length !== s.n * d)
    throw new MseError(
      'dataset',
      `${owner}: ${which}.x has ${s.x.length} values, expected n·prod(inputShape) = ${s.n}·${d}`,
    );
  if (s.y.length !== s.n)
    throw new MseError('dataset', `${owner}: ${which}.y has ${s.y.length} labels, expected n = ${s.n}`);
  for (let i = 0; i < s.n; i++)
    if (s.y[i] < 0 || s.y[i] >= k)
      throw new MseError('dataset', `${owner}: ${which}.y[${i}] = ${s.y[i]} is not a class in 0…${k - 1}`);
  for (let i = 0; i < s.x.length; i++)
    if (!Number.isFinite(s.x[i])) throw new MseError('dataset', `${owner}: ${which}.x[${i}] is not a finite number`);
}

export function defineDataset(def: DatasetDefinition, source?: UnitSource): DatasetUnit {
  const owner = `dataset ${def.name}`;
  if (def.kind !== 'image' && def.kind !== 'tabular')
    throw new UsageError(`${owner}: kind must be 'image' or 'tabular'`);
  if (typeof def.load !== 'function') throw new UsageError(`${owner}: needs a load() function`);
  return {
    kind: 'dataset',
    name: def.name,
    describe: def.describe,
    dataKind: def.kind,
    victim: def.victim,
    pool: def.pool,
    source,
    async load(): Promise<Dataset> {
      let data: DatasetData;
      try {
        data = await def.load();
      } catch (e) {
        if (e instanceof MseError) throw e;
        throw new MseError(
          'dataset',
          `${owner}: load() failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
        );
      }
      const shape = data?.inputShape;
      if (!Array.isArray(shape) || !shape.length || shape.some((v) => !Number.isSafeInteger(v) || v < 1))
        throw new MseError('dataset', `${owner}: inputShape must be a list of positive integers`);
      if (def.kind === 'image' && shape.length !== 3)
        throw new MseError('dataset', `${owner}: image inputs are h×w×c, got ${shape.join('×')}`);
      const k = data.numClasses;
      if (!Number.isSafeInteger(k) || k < 2)
        throw new MseError('dataset', `${owner}: numClasses must be an integer ≥ 2`);
      const d = shape.reduce((a, b) => a * b, 1);
      checkSplit(owner, 'train', data.train, d, k);
      checkSplit(owner, 'test', data.test, d, k);
      let domain = data.domain;
      if (!domain) {
        let min = Infinity;
        let max = -Infinity;
        for (const v of data.train.x) {
          if (v < min) min = v;
          if (v > max) max = v;
        }
        domain = { min, max: max > min ? max : min + 1 };
      }
      if (!(Number.isFinite(domain.min) && Number.isFinite(domain.max) && domain.max > domain.min))
        throw new MseError('dataset', `${owner}: domain must be finite with max > min`);
      return {
        name: def.name,
        inputShape: [...shape],
        numClasses: k,
        classNames: data.classNames?.length === k ? data.classNames : Array.from({ length: k }, (_, i) => String(i)),
        train: data.train,
        test: data.test,
        domain,
        kind: def.kind,
        // the loader that registers the unit sets the plugin's hash here (data/registry.ts)
        variant: 'plugin',
        notes: [],
      };
    },
  };
}
