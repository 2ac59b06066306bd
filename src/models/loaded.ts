/**
 * A victim the user brings: a TF.js model on disk (`-v tfjs:path=model.json`), a LayersModel or a
 * GraphModel as `tfjs.converters` / `model.save('file://…')` write them — model.json and its weight
 * files. It is loaded, not trained, and wrapped as an mse Model:
 *   - layout: mse's image datasets are NHWC; a model exported from PyTorch takes NCHW. The model's
 *     declared input shape decides where it is unambiguous ([n, 1, 28, 28] for 28×28×1 data is NCHW;
 *     [n, 784] takes the image flattened); `layout=nhwc|nchw` decides where it is not.
 *   - output: probabilities, or logits (softmax applied; one column: sigmoid, as binary [1 − p, p]),
 *     or labels (one column of class indices, or the argmax of k columns: one-hot rows, and the API
 *     reveals labels only); `output=auto` decides once, from the model's answers to the first test
 *     examples (one column of integers for k > 2 classes, or an int32 output, is labels); every
 *     later batch is checked against that (answers.ts): finite, and of the kind decided. A model
 *     with several outputs is read through its first, and `notes` says so.
 *   - mean, std: a model trained on normalized inputs (PyTorch's `transforms.Normalize`) gets
 *     (x − mean) / std per channel, in the data's NHWC layout before any transpose (normalize.ts);
 *     the data, the API and the attacker stay in the dataset's domain.
 * The files' content hash is part of every cell id (a retrained model is another experiment).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../compute/backend.js';
import type { Dataset } from '../data/types.js';
import { DataError, UsageError } from '../errors.js';
import { checkAnswers, settleOutput, toProbs, type OutputKind, type Reading } from './answers.js';
import type { Model, Probs, SerializedModel } from './model.js';
import { normalize, type Normalization } from './normalize.js';

export type Layout = 'nhwc' | 'nchw' | 'flat';

interface ModelJson {
  format?: string;
  modelTopology?: unknown;
  weightsManifest?: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  [k: string]: unknown;
}

/** model.json and the weight files it names, in the order it names them. */
export function modelFiles(file: string): string[] {
  const json = readModelJson(file);
  const dir = path.dirname(file);
  return [file, ...(json.weightsManifest ?? []).flatMap((g) => g.paths.map((p) => path.join(dir, p)))];
}

/** sha256 over the model's files (names relative to model.json, and bytes), first 16 hex digits. */
export function modelHash(file: string): string {
  const h = createHash('sha256');
  const dir = path.dirname(file);
  for (const f of modelFiles(file)) {
    h.update(`${path.relative(dir, f)}\0`);
    h.update(readBytes(f, file));
  }
  return h.digest('hex').slice(0, 16);
}

function readBytes(f: string, model: string): Buffer {
  try {
    if (!statSync(f).isFile()) throw new Error('not a file');
    return readFileSync(f);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`;
    throw new DataError(f === model ? `model ${f} ${why}` : `model ${model}: its weight file ${f} ${why}`);
  }
}

function readModelJson(file: string): ModelJson {
  const text = readBytes(file, file).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataError(
      `model ${file} is not JSON: ${(e as Error).message}`,
      'point path= at the model.json TF.js wrote',
    );
  }
  const j = json as ModelJson;
  if (typeof j !== 'object' || j === null || typeof j.modelTopology !== 'object' || j.modelTopology === null)
    throw new DataError(
      `model ${file} is not a TF.js model.json (no modelTopology)`,
      'point path= at the model.json TF.js wrote',
    );
  if (j.weightsManifest !== undefined && !Array.isArray(j.weightsManifest))
    throw new DataError(`model ${file}: weightsManifest must be a list`);
  return j;
}

/** Load a LayersModel or GraphModel from model.json and its weight files, without a file:// handler (tfjs-node is optional). */
async function loadTfjs(file: string): Promise<tf.LayersModel | tf.GraphModel> {
  const json = readModelJson(file);
  const dir = path.dirname(file);
  const groups = json.weightsManifest ?? [];
  const buffers = groups.flatMap((g) => g.paths.map((p) => readBytes(path.join(dir, p), file)));
  const total = buffers.reduce((a, b) => a + b.length, 0);
  const weightData = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    weightData.set(b, at);
    at += b.length;
  }
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: groups.flatMap((g) => g.weights),
    weightData: weightData.buffer,
    format: json.format,
    ...(json.signature ? { signature: json.signature as tf.io.ModelArtifacts['signature'] } : {}),
    ...(json.userDefinedMetadata
      ? { userDefinedMetadata: json.userDefinedMetadata as tf.io.ModelArtifacts['userDefinedMetadata'] }
      : {}),
  };
  const graph = json.format === 'graph-model' || Array.isArray((json.modelTopology as { node?: unknown }).node);
  try {
    return graph
      ? await tf.loadGraphModel(tf.io.fromMemory(artifacts))
      : await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (e) {
    throw new DataError(`model ${file} could not be loaded: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** How the model's declared input shape maps the dataset's: identity, NHWC → NCHW, or flattened. */
export function chooseLayout(
  modelShape: ReadonlyArray<number | null>,
  data: number[],
  asked: 'auto' | 'nhwc' | 'nchw',
  file: string,
): Layout {
  const shape = modelShape.slice(1);
  const same = (a: ReadonlyArray<number | null>, b: number[]) =>
    a.length === b.length && a.every((v, i) => v === null || v === b[i]);
  const d = data.reduce((a, b) => a * b, 1);
  const nchw = data.length === 3 ? [data[2], data[0], data[1]] : undefined;
  const fits = { nhwc: same(shape, data), nchw: nchw !== undefined && same(shape, nchw), flat: same(shape, [d]) };
  const said = (l: Layout) => `[n, ${shape.map((v) => v ?? '?').join(', ')}]`;
  if (asked !== 'auto') {
    if (!fits[asked])
      throw new UsageError(
        `model ${file} takes inputs of shape ${said(asked)}, which is not the data's ${data.join('×')} in ${asked}`,
      );
    return asked;
  }
  if (fits.flat && !fits.nhwc) return 'flat';
  if (fits.nhwc && fits.nchw)
    throw new UsageError(
      `model ${file} takes ${said('nhwc')}: NHWC or NCHW cannot be told apart`,
      'give layout=nhwc or layout=nchw',
    );
  if (fits.nhwc) return 'nhwc';
  if (fits.nchw) return 'nchw';
  throw new UsageError(
    `model ${file} takes inputs of shape ${said('nhwc')}, the data has ${data.join('×')} features`,
    'check the model was exported for this dataset',
  );
}

export class LoadedModel implements Model {
  readonly kind = 'tfjs';
  /** what the user should know about how the model is read (which of several outputs) */
  readonly notes: string[] = [];
  /** how its answers are read, settled from its answers to the first test examples */
  private reading: Reading = { kind: 'probs' };
  private constructor(
    private readonly net: tf.LayersModel | tf.GraphModel,
    readonly inputShape: number[],
    readonly numClasses: number,
    private readonly layout: Layout,
    private readonly file: string,
    private readonly norm: Normalization | undefined,
  ) {}

  /** Load, fit the dataset's shape and classes, and settle what the model outputs. */
  static async load(
    file: string,
    ds: Pick<Dataset, 'inputShape' | 'numClasses' | 'test'>,
    opts: { layout: 'auto' | 'nhwc' | 'nchw'; output: 'auto' | OutputKind; normalization?: Normalization },
  ): Promise<LoadedModel> {
    const net = await loadTfjs(file);
    try {
      const inputs = net.inputs;
      if (inputs.length !== 1) throw new UsageError(`model ${file} has ${inputs.length} inputs; mse feeds one`);
      const layout = chooseLayout(inputs[0].shape ?? [], ds.inputShape, opts.layout, file);
      const m = new LoadedModel(net, ds.inputShape, ds.numClasses, layout, file, opts.normalization);
      const outputs = net instanceof tf.GraphModel ? net.outputNodes : net.outputNames;
      if (outputs.length > 1) m.notes.push(`model ${file} has outputs ${outputs.join(', ')}: using ${outputs[0]}`);
      // what it outputs, from its answers to the first test examples (a declared kind is checked there too)
      const n = Math.min(64, ds.test.n);
      const d = ds.inputShape.reduce((a, b) => a * b, 1);
      const raw = tf.tidy(() => m.raw(tf.tensor(ds.test.x.subarray(0, n * d), [n, ...ds.inputShape])));
      const v = raw.dataSync();
      const cols = raw.shape[1];
      const integerType = raw.dtype === 'int32';
      raw.dispose();
      const kind = settleOutput(file, v, cols, ds.numClasses, opts.output, integerType);
      m.reading = opts.output === 'auto' && kind !== 'labels' ? { kind, decidedFrom: n } : { kind };
      return m;
    } catch (e) {
      net.dispose();
      throw e;
    }
  }

  /** The model's own answer for NHWC inputs [n, ...inputShape]: [n, k] (or [n, 1]). Call inside tf.tidy. */
  private raw(x: tf.Tensor): tf.Tensor2D {
    const n = x.shape[0];
    const z = this.norm ? normalize(x, this.norm) : x; // normalized in NHWC, then laid out
    const fed =
      this.layout === 'flat' ? tf.reshape(z, [n, -1]) : this.layout === 'nchw' ? tf.transpose(z, [0, 3, 1, 2]) : z;
    const out = this.net instanceof tf.GraphModel ? this.net.execute(fed) : this.net.predict(fed);
    const t = Array.isArray(out) ? out[0] : (out as tf.Tensor);
    return tf.reshape(t, [n, -1]) as tf.Tensor2D;
  }

  /** Its answers are class labels (declared, or found by output=auto): an API around it reveals labels only. */
  get labelsOnly(): boolean {
    return this.reading.kind === 'labels';
  }

  predict(x: tf.Tensor): Probs {
    return tf.tidy(() => {
      const y = this.raw(x); // [n, k] or [n, 1]
      checkAnswers(this.file, y.dataSync(), y.shape[1], this.numClasses, this.reading);
      return toProbs(y, this.reading.kind, this.numClasses);
    });
  }

  serialize(): SerializedModel {
    // its file is its form: nothing to cache
    throw new UsageError(`model ${this.file} is loaded from its file and not saved again`);
  }

  dispose(): void {
    this.net.dispose();
  }
}
