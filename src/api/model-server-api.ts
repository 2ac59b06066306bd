/**
 * A PredictionApi over the protocols model servers speak, for attacking a model where it is
 * deployed (`mse attack --target URL --protocol tf-serving|kserve-v2`):
 *   tf-serving  TF Serving's REST API:   POST <url>:predict  {"instances": [...]} → {"predictions": [...]}
 *               (<url> = http://host:8501/v1/models/<name>)
 *   kserve-v2   the KServe v2 / Open Inference Protocol (Triton, KServe, TorchServe, Seldon MLServer):
 *               POST <url>/infer  {"inputs": [{name, shape, datatype, data}]} → {"outputs": [{name, shape, datatype, data}]}
 *               (<url> = http://host:8000/v2/models/<name>)
 * Inputs go in the layout the model takes (NHWC as mse's data, NCHW as PyTorch exports, or flat);
 * answers are read as probabilities, logits (softmax applied; one column: sigmoid) or labels.
 * A query is sent in requests of at most `batch` inputs, up to `concurrency` of them in flight at
 * once (default one at a time); answers are read in the order of the inputs, so every concurrency
 * gives the same answers. Each request has a timeout and is retried where a retry helps (429, 5xx,
 * a reset: model-server-http.ts); an API key goes in `Authorization: Bearer`, never in the URL. A
 * model with several outputs is read through `outputName` (KServe's named outputs, TF Serving's
 * keys of one object per instance), else the first, and `notes` says so. The server is not trusted:
 * an answer of the wrong shape, non-finite numbers, anything but JSON, or answers whose kind changes
 * after output=auto read the first ones (answers.ts) is a one-line error naming the URL, never a
 * silently wrong row. The budget is counted here, as the attacker's own.
 */
import { tf } from '../compute/backend.js';
import { BudgetExhaustedError, MseError, UsageError } from '../errors.js';
import { answersProblem, autoKind, toProbs, type Reading } from '../models/answers.js';
import { normalizeRows, type Normalization } from '../models/normalize.js';
import { postJson, type Connection } from './model-server-http.js';
import type { ApiInfo, ApiResponse, Ledger, PredictionApi } from './types.js';

export const PROTOCOLS = ['mse', 'tf-serving', 'kserve-v2'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export interface ModelServerOptions {
  protocol: Exclude<Protocol, 'mse'>;
  url: string;
  key?: string;
  budget?: number;
  /** the data's shape (NHWC for images), classes and feature box */
  inputShape: number[];
  numClasses: number;
  domain: { min: number; max: number };
  /** how inputs are sent: as the data is (nhwc), channels first (nchw), or flattened */
  layout?: 'nhwc' | 'nchw' | 'flat';
  /** how answers are read; auto: probabilities when they are distributions, else logits */
  output?: 'auto' | 'probs' | 'logits' | 'labels';
  /** KServe v2: the input tensor's name (default "input") */
  inputName?: string;
  /** the output to read when the model has several (KServe's output name, TF Serving's key); default: the first */
  outputName?: string;
  /** inputs per request (default 64) */
  batch?: number;
  /** seconds each request may take (default 30) */
  timeoutS?: number;
  /** retries of a request on 429, 500, 502, 503, 504 or a reset connection (default 6) */
  retries?: number;
  /** requests in flight at once, when a query spans several (default 1) */
  concurrency?: number;
  /** (x − mean)/std per channel before sending: the preprocessing an exported model expects (Normalize) */
  normalization?: Normalization;
}

/** One request's answer: its numbers and their shape, and the integer datatype KServe declared for them. */
interface Answer {
  data: number[];
  cols: number;
  integerType?: string;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** the flag that sets `outputName` on the command line, for hints */
export const OUTPUT_NAME_FLAG = '--target-output-name';
/** a URL fit to echo: any user name and password cut out */
const redact = (url: string) => url.replace(/\/\/[^/@]*@/, '//…@');

export class ModelServerApi implements PredictionApi {
  readonly info: ApiInfo;
  /** what the user should know about how the server's answers are read (which of several outputs) */
  readonly notes: string[] = [];
  private readonly _ledger: Ledger;
  private readonly endpoint: string;
  private readonly connection: Connection;
  private readonly output: 'auto' | 'probs' | 'logits' | 'labels';
  /** when the model has several outputs and none was named: which was read, and how to choose */
  private defaulted: string | undefined;
  /** how answers are read, settled from the first answer (output=auto decides there) */
  private reading: Reading | undefined;
  /** requests in flight now, and since when one has been (apiSeconds is wall time with one or more in flight) */
  private inFlight = 0;
  private busySince = 0;

  constructor(private readonly o: ModelServerOptions) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new UsageError(`--target must be a URL, got '${redact(o.url)}'`);
    }
    if (u.username || u.password)
      throw new UsageError(
        `--target ${u.protocol}//${u.host}${u.pathname} has a user name or password in it: put the credentials in --key, not the URL`,
        'mse sends --key as Authorization: Bearer <key>',
      );
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new UsageError(`--target must be http:// or https://, got '${o.url}'`);
    const path = u.pathname.replace(/\/+$/, '');
    const want =
      o.protocol === 'tf-serving'
        ? /\/v1\/models\/[^/:]+(\/versions\/\d+)?$/
        : /\/v2\/models\/[^/]+(\/versions\/[^/]+)?$/;
    if (!want.test(path))
      throw new UsageError(
        `--target for ${o.protocol} must name the model: ${o.protocol === 'tf-serving' ? 'http://host:8501/v1/models/<name>' : 'http://host:8000/v2/models/<name>'}, got '${o.url}'`,
      );
    if (o.concurrency !== undefined && !(Number.isSafeInteger(o.concurrency) && o.concurrency >= 1))
      throw new UsageError(`--concurrency must be an integer ≥ 1, got ${o.concurrency}`);
    // the protocol's verb after the path, any query string kept after it (…/infer?x=1), no fragment
    u.pathname = path + (o.protocol === 'tf-serving' ? ':predict' : '/infer');
    u.hash = '';
    this.endpoint = u.href;
    this.connection = {
      endpoint: this.endpoint,
      key: o.key,
      timeoutS: o.timeoutS ?? 30,
      retries: o.retries ?? 6,
      meter: {
        enter: () => {
          if (this.inFlight++ === 0) this.busySince = performance.now();
        },
        leave: () => {
          if (--this.inFlight === 0) this._ledger.apiSeconds += (performance.now() - this.busySince) / 1000;
        },
      },
    };
    this.output = o.output ?? 'auto';
    this.info = {
      inputShape: o.inputShape,
      numClasses: o.numClasses,
      domain: o.domain,
      reveals: this.output === 'labels' ? 'labels' : 'probs',
      defenses: [],
    };
    this._ledger = { queries: 0, budget: o.budget ?? Infinity, batches: 0, apiSeconds: 0, powSeconds: 0 };
  }

  get ledger(): Readonly<Ledger> {
    return this._ledger;
  }

  private fail(why: string, hint?: string): MseError {
    return new MseError('http', `${this.endpoint}: ${why}`, hint);
  }

  /** An answer that cannot be read as it is: when it is the first of several outputs, the hint says so. */
  private misread(why: string, hint?: string): MseError {
    return this.fail(why, [hint, this.defaulted].filter(Boolean).join('; ') || undefined);
  }

  /** One request body for rows [m·d] in the model's layout. */
  private body(rows: Float32Array, m: number): unknown {
    const [h, w, c] = this.o.inputShape;
    const layout = this.o.layout ?? 'nhwc';
    let data = this.o.normalization ? normalizeRows(rows, this.o.normalization) : rows;
    const src = data;
    let shape = [m, ...this.o.inputShape];
    if (layout === 'flat') shape = [m, rows.length / m];
    else if (layout === 'nchw' && this.o.inputShape.length === 3) {
      data = new Float32Array(rows.length);
      for (let i = 0; i < m; i++)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            for (let k = 0; k < c; k++)
              data[i * h * w * c + k * h * w + y * w + x] = src[i * h * w * c + (y * w + x) * c + k];
      shape = [m, c, h, w];
    }
    const values = Array.from(data);
    if (this.o.protocol === 'kserve-v2')
      return { inputs: [{ name: this.o.inputName ?? 'input', shape, datatype: 'FP32', data: values }] };
    // TF Serving's row format: one nested array per instance
    const nest = (flat: number[], dims: number[]): unknown => {
      if (dims.length === 1) return flat;
      const step = flat.length / dims[0];
      return Array.from({ length: dims[0] }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), dims.slice(1)));
    };
    return { instances: nest(values, shape) };
  }

  /**
   * Which of several outputs to read (by their names): `outputName`, else the first, said once in
   * `notes`; an `outputName` the model does not have is one line listing those it has.
   */
  private pick(names: string[]): number {
    const asked = this.o.outputName;
    if (asked !== undefined) {
      const i = names.indexOf(asked);
      if (i < 0)
        throw this.fail(
          `has no output '${asked}': its outputs are ${names.join(', ')}`,
          `name one with ${OUTPUT_NAME_FLAG}`,
        );
      return i;
    }
    const note = `${this.endpoint} has outputs ${names.join(', ')}: using ${names[0]}`;
    if (names.length > 1 && !this.notes.includes(note)) {
      this.notes.push(note);
      this.defaulted = `it has outputs ${names.join(', ')} and ${names[0]} was read: choose one with ${OUTPUT_NAME_FLAG}`;
    }
    return 0;
  }

  /** The answer's numbers and their shape, per protocol. */
  private answer(v: unknown, m: number): Answer {
    const bad = (why: string) => this.fail(`answered something that is not a ${this.o.protocol} prediction: ${why}`);
    if (!isObj(v)) throw bad('expected a JSON object');
    let data: unknown[];
    let cols: number;
    let integerType: string | undefined;
    if (this.o.protocol === 'tf-serving') {
      let p = v.predictions;
      if (!Array.isArray(p) || p.length !== m) throw bad(`"predictions" must hold ${m} answers (one per input)`);
      if (p.every(isObj)) {
        // several outputs: one object per instance, an output per key
        const names = Object.keys(p[0] as Record<string, unknown>);
        const name = names[this.pick(names)];
        if (!p.every((r) => name in (r as Record<string, unknown>)))
          throw bad(`each answer must have the output "${name}"`);
        p = p.map((r) => (r as Record<string, unknown>)[name]);
      }
      if (!Array.isArray(p)) throw bad('"predictions" must be a list');
      if (p.every((r) => typeof r === 'number')) {
        data = p;
        cols = 1;
      } else {
        if (!p.every((r) => Array.isArray(r) && r.length === (p[0] as unknown[]).length))
          throw bad('each answer must be a number or a list of the same length');
        cols = (p[0] as unknown[]).length;
        data = p.flat();
      }
    } else {
      const outs = v.outputs;
      if (!Array.isArray(outs) || !outs.length || !outs.every(isObj)) throw bad('"outputs" must be a non-empty list');
      const out = outs[this.pick(outs.map((x, i) => (typeof x.name === 'string' ? x.name : `#${i}`)))];
      const shape = out.shape;
      if (!Array.isArray(shape) || shape[0] !== m || shape.length > 2)
        throw bad(`the output's shape must be [${m}] or [${m}, k], got ${JSON.stringify(shape)}`);
      if (!Array.isArray(out.data)) throw bad('the output must carry "data" as a flat list');
      cols = shape.length === 2 ? Number(shape[1]) : 1;
      data = out.data;
      if (data.length !== m * cols) throw bad(`"data" holds ${data.length} numbers for shape ${JSON.stringify(shape)}`);
      if (typeof out.datatype === 'string' && /^U?INT/.test(out.datatype)) integerType = out.datatype;
    }
    if (!data.every((x) => typeof x === 'number' && Number.isFinite(x)))
      throw bad('the answers must be finite numbers');
    return { data: data as number[], cols, ...(integerType ? { integerType } : {}) };
  }

  /**
   * Send the chunks (rows [m·d] each), `concurrency` requests at a time, and hand each answer to
   * `read` in chunk order as soon as those before it are read (with one at a time: answer, read,
   * next request, as a single client would). After a failure no request starts; once those in
   * flight end, the failure of the earliest chunk is thrown.
   */
  private async sendAll(chunks: Array<{ rows: Float32Array; m: number }>, read: (a: Answer) => void): Promise<void> {
    const ready: Array<Answer | undefined> = [];
    const errors: unknown[] = [];
    let next = 0; // the next chunk to send
    let done = 0; // chunks read so far
    let failed = false;
    const worker = async () => {
      while (!failed && next < chunks.length) {
        const i = next++;
        try {
          ready[i] = this.answer(await postJson(this.connection, this.body(chunks[i].rows, chunks[i].m)), chunks[i].m);
        } catch (e) {
          failed = true;
          errors[i] = e;
          return;
        }
        try {
          for (; !failed && done < chunks.length && ready[done]; done++) {
            read(ready[done]!);
            ready[done] = undefined;
          }
        } catch (e) {
          failed = true;
          errors[done] = e;
        }
      }
    };
    const workers = Math.min(this.o.concurrency ?? 1, chunks.length);
    await Promise.all(Array.from({ length: workers }, worker));
    const first = errors.findIndex((e) => e !== undefined);
    if (first >= 0) throw errors[first];
  }

  async query(x: tf.Tensor): Promise<ApiResponse> {
    const n = x.shape[0];
    const l = this._ledger;
    if (x.rank < 2 || x.shape.slice(1).join() !== this.info.inputShape.join())
      throw new UsageError(
        `query shape [${x.shape.join(', ')}] does not match the API's input shape [n, ${this.info.inputShape.join(', ')}]`,
      );
    if (l.queries + n > l.budget) throw new BudgetExhaustedError(l.queries, l.budget, n);
    const k = this.o.numClasses;
    const d = x.size / n;
    const flat = (await x.data()) as Float32Array;
    const batch = this.o.batch ?? 64;
    const chunks: Array<{ rows: Float32Array; m: number }> = [];
    for (let s = 0; s < n; s += batch) {
      const m = Math.min(batch, n - s);
      chunks.push({ rows: flat.subarray(s * d, (s + m) * d), m });
    }
    const probs: number[] = [];
    const labels: number[] = [];
    await this.sendAll(chunks, (a) => {
      // one column of class indices: of an integer datatype (KServe), or integers for more than two classes
      const indices = a.cols === 1 && (a.integerType !== undefined || (k > 2 && a.data.every(Number.isInteger)));
      if (this.output === 'labels' || indices) {
        if (this.output !== 'labels')
          throw this.misread(
            `answers class labels: one column of ${a.integerType ?? 'integers'}`,
            'declare it with --target-output labels, so attacks that need probabilities refuse at once',
          );
        if (a.cols !== 1 || !a.data.every((c) => Number.isInteger(c) && c >= 0 && c < k))
          throw this.misread(`answers that are not class labels in [0, ${k})`);
        labels.push(...a.data);
        return;
      }
      if (a.cols !== k && !(k === 2 && a.cols === 1))
        throw this.misread(`answers ${a.cols} numbers per input, the data has ${k} classes`);
      if (!this.reading) {
        // the first answer settles how all are read: declared, or decided by output=auto from it
        const auto = autoKind(a.data, a.cols);
        if (this.output !== 'auto') this.reading = { kind: this.output };
        else if ('mixed' in auto)
          throw this.misread(auto.mixed, 'declare what it answers: --target-output logits or --target-output probs');
        else this.reading = { kind: auto.kind, decidedFrom: a.data.length / a.cols };
      }
      const problem = answersProblem(a.data, a.cols, this.reading, '--target-output ');
      if (problem) throw this.misread(problem.why, problem.hint);
      probs.push(...a.data);
    });
    l.queries += n;
    l.batches += 1;
    if (labels.length) return { labels: tf.tensor1d(labels, 'int32') };
    const cols = probs.length / n;
    const kind = this.reading?.kind === 'logits' ? 'logits' : 'probs';
    const p = tf.tidy(() => toProbs(tf.tensor2d(probs, [n, cols]), kind, k));
    return { probs: p };
  }
}
