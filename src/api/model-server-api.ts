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
 * gives the same answers. Each request has a timeout and is retried with backoff on 429 and 503
 * (honouring retry-after); an API key goes in `Authorization: Bearer`. The server is not
 * trusted: an answer of the wrong shape, non-finite numbers or anything but JSON is a one-line error
 * naming the URL, never a silently wrong row. The budget is counted here, as the attacker's own.
 */
import { tf } from '../compute/backend.js';
import { BudgetExhaustedError, MseError, UsageError } from '../errors.js';
import { isDistribution, toProbs } from '../models/answers.js';
import { normalizeRows, type Normalization } from '../models/normalize.js';
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
  /** inputs per request (default 64) */
  batch?: number;
  /** seconds each request may take (default 30) */
  timeoutS?: number;
  /** retries on 429/503 (default 6) */
  retries?: number;
  /** requests in flight at once, when a query spans several (default 1) */
  concurrency?: number;
  /** (x − mean)/std per channel before sending: the preprocessing an exported model expects (Normalize) */
  normalization?: Normalization;
}

/** One request's answer: its numbers and their shape. */
interface Answer {
  data: number[];
  cols: number;
  integers: boolean;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const snippet = (s: string) => JSON.stringify(s.replace(/\s+/g, ' ').trim().slice(0, 80));
const MAX_RETRY_S = 60;

export class ModelServerApi implements PredictionApi {
  readonly info: ApiInfo;
  private readonly _ledger: Ledger;
  private readonly endpoint: string;
  private output: 'auto' | 'probs' | 'logits' | 'labels';
  /** requests in flight now, and since when one has been (apiSeconds is wall time with one or more in flight) */
  private inFlight = 0;
  private busySince = 0;

  constructor(private readonly o: ModelServerOptions) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new UsageError(`--target must be a URL, got '${o.url}'`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new UsageError(`--target must be http:// or https://, got '${o.url}'`);
    const base = o.url.replace(/\/+$/, '');
    const want =
      o.protocol === 'tf-serving'
        ? /\/v1\/models\/[^/:]+(\/versions\/\d+)?$/
        : /\/v2\/models\/[^/]+(\/versions\/[^/]+)?$/;
    if (!want.test(new URL(base).pathname))
      throw new UsageError(
        `--target for ${o.protocol} must name the model: ${o.protocol === 'tf-serving' ? 'http://host:8501/v1/models/<name>' : 'http://host:8000/v2/models/<name>'}, got '${o.url}'`,
      );
    if (o.concurrency !== undefined && !(Number.isSafeInteger(o.concurrency) && o.concurrency >= 1))
      throw new UsageError(`--concurrency must be an integer ≥ 1, got ${o.concurrency}`);
    this.endpoint = o.protocol === 'tf-serving' ? `${base}:predict` : `${base}/infer`;
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

  private async post(body: unknown): Promise<unknown> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.o.key) headers.authorization = `Bearer ${this.o.key}`;
    const retries = this.o.retries ?? 6;
    const timeoutS = this.o.timeoutS ?? 30;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      if (this.inFlight++ === 0) this.busySince = performance.now();
      try {
        res = await fetch(this.endpoint, {
          method: 'POST',
          headers,
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutS * 1000),
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        throw this.fail(
          err.name === 'TimeoutError'
            ? `no answer within ${timeoutS} s`
            : `cannot reach the server (${err.cause?.code ?? err.cause?.message ?? err.message})`,
        );
      } finally {
        if (--this.inFlight === 0) this._ledger.apiSeconds += (performance.now() - this.busySince) / 1000;
      }
      const text = await res.text().catch(() => '');
      if ((res.status === 429 || res.status === 503) && attempt < retries) {
        const after = Number(res.headers.get('retry-after'));
        const wait = Number.isFinite(after) && after > 0 ? Math.min(after, MAX_RETRY_S) * 1000 : 100 * 2 ** attempt;
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      if (!res.ok)
        throw this.fail(
          `answered ${res.status}${text ? `: ${snippet(text)}` : ''}`,
          res.status === 401 || res.status === 403
            ? 'give a valid API key with --key'
            : res.status === 404
              ? 'is the model name in --target right?'
              : undefined,
        );
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw this.fail(`answered something that is not JSON (${snippet(text)})`);
      }
    }
  }

  /** The answer's numbers and their shape, per protocol. */
  private answer(v: unknown, m: number): Answer {
    const bad = (why: string) => this.fail(`answered something that is not a ${this.o.protocol} prediction: ${why}`);
    if (!isObj(v)) throw bad('expected a JSON object');
    let data: unknown[];
    let cols: number;
    let integers = false;
    if (this.o.protocol === 'tf-serving') {
      const p = v.predictions;
      if (!Array.isArray(p) || p.length !== m) throw bad(`"predictions" must hold ${m} answers (one per input)`);
      if (p.every((r) => typeof r === 'number')) {
        data = p;
        cols = 1;
        integers = p.every((x) => Number.isInteger(x));
      } else {
        if (!p.every((r) => Array.isArray(r) && r.length === (p[0] as unknown[]).length))
          throw bad('each answer must be a number or a list of the same length');
        cols = (p[0] as unknown[]).length;
        data = p.flat();
      }
    } else {
      const outs = v.outputs;
      if (!Array.isArray(outs) || !outs.length || !isObj(outs[0])) throw bad('"outputs" must be a non-empty list');
      const out = outs[0];
      const shape = out.shape;
      if (!Array.isArray(shape) || shape[0] !== m || shape.length > 2)
        throw bad(`the output's shape must be [${m}] or [${m}, k], got ${JSON.stringify(shape)}`);
      if (!Array.isArray(out.data)) throw bad('the output must carry "data" as a flat list');
      cols = shape.length === 2 ? Number(shape[1]) : 1;
      data = out.data;
      if (data.length !== m * cols) throw bad(`"data" holds ${data.length} numbers for shape ${JSON.stringify(shape)}`);
      integers = typeof out.datatype === 'string' && /^U?INT/.test(out.datatype);
    }
    if (!data.every((x) => typeof x === 'number' && Number.isFinite(x)))
      throw bad('the answers must be finite numbers');
    return { data: data as number[], cols, integers };
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
          ready[i] = this.answer(await this.post(this.body(chunks[i].rows, chunks[i].m)), chunks[i].m);
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
      if (this.output === 'labels' || (a.cols === 1 && a.integers && k > 2)) {
        if (this.output !== 'labels')
          throw this.fail(
            'answers class labels',
            'declare it with --target-output labels, so attacks that need probabilities refuse at once',
          );
        if (a.cols !== 1 || !a.data.every((c) => Number.isInteger(c) && c >= 0 && c < k))
          throw this.fail(`answers that are not class labels in [0, ${k})`);
        labels.push(...a.data);
        return;
      }
      if (a.cols !== k && !(k === 2 && a.cols === 1))
        throw this.fail(`answers ${a.cols} numbers per input, the data has ${k} classes`);
      if (this.output === 'auto') this.output = isDistribution(a.data, a.cols) ? 'probs' : 'logits';
      else if (this.output === 'probs' && !isDistribution(a.data, a.cols))
        throw this.fail(
          'was declared to answer probabilities, but its rows are not distributions',
          'use --target-output logits (or auto)',
        );
      probs.push(...a.data);
    });
    l.queries += n;
    l.batches += 1;
    if (labels.length) return { labels: tf.tensor1d(labels, 'int32') };
    const cols = probs.length / n;
    const p = tf.tidy(() => toProbs(tf.tensor2d(probs, [n, cols]), this.output === 'logits' ? 'logits' : 'probs', k));
    return { probs: p };
  }
}
