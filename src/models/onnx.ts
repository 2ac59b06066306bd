/**
 * A victim the user brings as ONNX (`-v onnx:path=model.onnx`), as `torch.onnx.export` writes it:
 * run by onnxruntime-node on the CPU (an optional dependency: `mse doctor` says whether it is here).
 * Layout and output are read as for TF.js victims (loaded.ts): NCHW inputs — what PyTorch exports
 * take — are recognised from the graph's input shape, and logits get a softmax. A graph that ends in
 * argmax (an int64 output of shape [n] or [n, 1]) answers labels: output=auto reads it so, and the
 * API then reveals labels only. A graph exported without the `transforms.Normalize(mean, std)` it was
 * trained behind takes `mean=…,std=…`: (x − mean) / std per channel, applied to the NHWC rows before
 * the NCHW transpose (normalize.ts), so the data and the attacker keep the dataset's domain.
 * A graph exported without dynamic_axes takes batches of exactly its traced size (often 1): it is
 * run that many inputs at a time (the last batch padded with copies of its last input, whose answers
 * are dropped). A graph with several outputs is read through its first. Either is said in `notes`.
 * Every batch's answers are checked against how they were read (answers.ts: finite, of one kind).
 */
import { createRequire } from 'node:module';
import { tf } from '../compute/backend.js';
import type { Dataset } from '../data/types.js';
import { DataError, UsageError } from '../errors.js';
import { checkAnswers, settleOutput, toProbs, type OutputKind, type Reading } from './answers.js';
import { chooseLayout, type Layout } from './loaded.js';
import type { Model, Probs, SerializedModel } from './model.js';
import { normalizeRows, type Normalization } from './normalize.js';

type Ort = typeof import('onnxruntime-node');
let ort: Ort | undefined | null;

/** onnxruntime-node if it is installed (an optional dependency), else undefined. */
export async function onnxRuntime(): Promise<Ort | undefined> {
  if (ort === undefined) {
    try {
      createRequire(import.meta.url).resolve('onnxruntime-node');
      ort = (await import('onnxruntime-node')) as Ort;
    } catch {
      ort = null;
    }
  }
  return ort ?? undefined;
}

export class OnnxModel implements Model {
  readonly kind = 'onnx';
  /** what the user should know about how the graph is run (a fixed batch size, which of several outputs) */
  readonly notes: string[] = [];
  /** how its answers are read, settled from its answers to the first test examples */
  private reading: Reading = { kind: 'probs' };
  private constructor(
    private readonly session: import('onnxruntime-node').InferenceSession,
    private readonly rt: Ort,
    readonly inputShape: number[],
    readonly numClasses: number,
    private readonly layout: Layout,
    private readonly file: string,
    private readonly norm: Normalization | undefined,
    /** the batch size the graph takes, when it takes only one (exported without dynamic_axes) */
    private readonly fixedBatch: number | undefined,
  ) {}

  static async load(
    file: string,
    ds: Pick<Dataset, 'inputShape' | 'numClasses' | 'test'>,
    opts: { layout: 'auto' | 'nhwc' | 'nchw'; output: 'auto' | OutputKind; normalization?: Normalization },
  ): Promise<OnnxModel> {
    const rt = await onnxRuntime();
    if (!rt)
      throw new UsageError(
        'ONNX victims need onnxruntime-node, which is not installed',
        'npm install onnxruntime-node (an optional dependency of mse); mse doctor says whether it is here',
      );
    let session: import('onnxruntime-node').InferenceSession;
    try {
      session = await rt.InferenceSession.create(file, { executionProviders: ['cpu'] });
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      throw new DataError(
        /no such file|ENOENT|File doesn't exist/i.test(msg)
          ? `model ${file} does not exist`
          : `model ${file} is not an ONNX model onnxruntime can load: ${msg}`,
      );
    }
    try {
      if (session.inputNames.length !== 1)
        throw new UsageError(`model ${file} has ${session.inputNames.length} inputs; mse feeds one`);
      const meta = session.inputMetadata[0] as {
        isTensor?: boolean;
        shape?: ReadonlyArray<number | string>;
        type?: string;
      };
      if (meta.isTensor === false) throw new UsageError(`model ${file}: its input is not a tensor`);
      if (meta.type && meta.type !== 'float32')
        throw new UsageError(`model ${file} takes ${meta.type} inputs; mse sends float32`);
      const shape = (meta.shape ?? []).map((v) => (typeof v === 'number' && v > 0 ? v : null));
      const layout = chooseLayout(shape, ds.inputShape, opts.layout, file);
      const batch = shape[0] ?? undefined;
      const m = new OnnxModel(session, rt, ds.inputShape, ds.numClasses, layout, file, opts.normalization, batch);
      if (batch !== undefined)
        m.notes.push(
          `model ${file} takes batches of exactly ${batch}: run ${batch} at a time; export with dynamic_axes={'${session.inputNames[0]}': {0: 'n'}} for speed`,
        );
      if (session.outputNames.length > 1)
        m.notes.push(`model ${file} has outputs ${session.outputNames.join(', ')}: using ${session.outputNames[0]}`);
      // what it outputs, from its answers to the first test examples (a declared kind is checked there)
      const n = Math.min(64, ds.test.n);
      const d = ds.inputShape.reduce((a, b) => a * b, 1);
      const { values, cols, integerType } = await m.raw(ds.test.x.subarray(0, n * d), n);
      const kind = settleOutput(file, values, cols, ds.numClasses, opts.output, integerType);
      m.reading = opts.output === 'auto' && kind !== 'labels' ? { kind, decidedFrom: n } : { kind };
      return m;
    } catch (e) {
      await session.release().catch(() => undefined);
      throw e;
    }
  }

  /** The graph's first output for n NHWC rows, flat, its values per input, and whether its type is an integer one. */
  private async raw(x: Float32Array, n: number): Promise<{ values: number[]; cols: number; integerType: boolean }> {
    const b = this.fixedBatch;
    if (b === undefined || b === n) return this.run(x, n);
    // a graph that takes batches of exactly b: b rows at a time, the last batch padded with its last row
    const d = x.length / n;
    const values: number[] = [];
    let integerType = false;
    for (let s = 0; s < n; s += b) {
      const m = Math.min(b, n - s);
      const rows = new Float32Array(b * d);
      rows.set(x.subarray(s * d, (s + m) * d));
      for (let i = m; i < b; i++) rows.copyWithin(i * d, (m - 1) * d, m * d);
      const out = await this.run(rows, b);
      values.push(...out.values.slice(0, m * out.cols));
      integerType = out.integerType;
    }
    return { values, cols: values.length / n, integerType };
  }

  /** One run of the graph on n NHWC rows. */
  private async run(x: Float32Array, n: number): Promise<{ values: number[]; cols: number; integerType: boolean }> {
    const z = this.norm ? normalizeRows(x, this.norm) : x; // normalized in NHWC (a new array), then laid out
    let data = z;
    let dims = [n, ...this.inputShape];
    if (this.layout === 'flat') dims = [n, x.length / n];
    else if (this.layout === 'nchw') {
      const [h, w, c] = this.inputShape;
      data = new Float32Array(x.length);
      for (let i = 0; i < n; i++)
        for (let y = 0; y < h; y++)
          for (let xx = 0; xx < w; xx++)
            for (let k = 0; k < c; k++) data[((i * c + k) * h + y) * w + xx] = z[((i * h + y) * w + xx) * c + k];
      dims = [n, c, h, w];
    }
    const input = new this.rt.Tensor('float32', data, dims);
    const out = await this.session.run({ [this.session.inputNames[0]]: input });
    const first = out[this.session.outputNames[0]];
    // int64 answers (an exported argmax) come as BigInt64Array: class indices are small, Number is exact
    const values = Array.from(first.data as ArrayLike<number | bigint>, Number);
    return { values, cols: values.length / n, integerType: /^u?int/.test(first.type) };
  }

  /** Its answers are class labels (declared, or found by output=auto): an API around it reveals labels only. */
  get labelsOnly(): boolean {
    return this.reading.kind === 'labels';
  }

  async predictAsync(x: tf.Tensor): Promise<Probs> {
    const n = x.shape[0];
    const { values, cols } = await this.raw((await x.data()) as Float32Array, n);
    checkAnswers(this.file, values, cols, this.numClasses, this.reading);
    return tf.tidy(() => toProbs(tf.tensor2d(values, [n, cols]), this.reading.kind, this.numClasses));
  }

  predict(): Probs {
    throw new Error(`model ${this.file} answers asynchronously: use predictProbs`);
  }

  serialize(): SerializedModel {
    throw new UsageError(`model ${this.file} is loaded from its file and not saved again`);
  }

  dispose(): void {
    void this.session.release().catch(() => undefined);
  }
}
