/**
 * A PredictionApi over HTTP (`mse serve`, or anything speaking its protocol): batches queries to the
 * largest batch the server allows this key (its max batch, capped by the key's rate), solves the
 * proof-of-work puzzle when the server asks for one (timing it into the ledger's PoW seconds), and
 * retries rate-limited calls after the server's retry-after. Budget exhaustion on the server
 * surfaces as the same BudgetExhaustedError a local API throws, so attacks run unchanged.
 *
 * Where the server's /v1/info says `binary: true` and no proof-of-work is asked (a puzzle is bound to
 * the JSON inputs), predictions travel as raw little-endian float32 both ways (application/octet-stream:
 * n × d inputs up, n × k probabilities or n int32 labels down, said by x-mse-answer and x-mse-shape);
 * otherwise as JSON. Errors are JSON on either wire, so retries, shrinking, budget and detection are
 * handled alike.
 *
 * The server is not trusted: every body it sends is checked against the protocol (and /v1/info
 * against what the attacker knows, before the first query), and anything else becomes a one-line
 * MseError rather than a stack trace, a hang or a silently wrong answer.
 */
import { tf } from '../compute/backend.js';
import { solve } from '../protocol/hashcash.js';
import { BudgetExhaustedError, DetectedError, MseError } from '../errors.js';
import { digestOf } from '../protocol/digest.js';
import { notePow } from './pow-trace.js';
import type { ApiInfo, ApiResponse, Ledger, PredictionApi, Reveal } from './types.js';

interface RemoteInfo extends ApiInfo {
  pow: { required: boolean };
  maxBatch: number;
  /** the server takes and gives raw little-endian float32 on /v1/predict (absent on older servers) */
  binary?: boolean;
}

/** How predictions travel: JSON rows, or raw little-endian float32 both ways (servers whose info says `binary: true`). */
export type Wire = 'json' | 'binary';

/** What the attacker knows of the victim (its dataset): the server must agree before any query. */
export interface RemoteExpectation {
  inputShape: number[];
  numClasses: number;
  /** the dataset's name, for the message */
  name?: string;
}

/** The hardest puzzle an honest `mse serve` issues (the pow defense's maxbits is at most 32). */
const MAX_BITS = 32;
/** The longest a retry-after is honoured; a longer one is the server's problem, not a reason to sleep for days. */
const MAX_RETRY_S = 60;
const INFO_TIMEOUT_MS = 30_000;
const PREDICT_TIMEOUT_MS = 300_000;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const snippet = (s: string) => JSON.stringify(s.replace(/\s+/g, ' ').trim().slice(0, 60));
const OCTET = 'application/octet-stream';
/** This machine stores typed arrays little-endian (the wire's order), as every platform Node runs on today does. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** A Response's media type, lower case, without parameters ('' when absent). */
const mediaOf = (res: Response) => (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();

/** Why `v` is not a /v1/info body, or undefined when it is one. */
function infoProblem(v: unknown): string | undefined {
  if (!isObj(v)) return `expected a JSON object, got ${Array.isArray(v) ? 'an array' : String(v)}`;
  if (!Array.isArray(v.inputShape) || v.inputShape.length === 0 || !v.inputShape.every(isPosInt))
    return 'inputShape must be a non-empty list of positive integers';
  if (!isPosInt(v.numClasses)) return 'numClasses must be a positive integer';
  if (!(['probs', 'labels', 'leaf'] satisfies Reveal[] as unknown[]).includes(v.reveals))
    return "reveals must be 'probs', 'labels' or 'leaf'";
  if (!isPosInt(v.maxBatch)) return 'maxBatch must be a positive integer';
  if (!isObj(v.pow) || typeof v.pow.required !== 'boolean') return 'pow must be {required: boolean}';
  if (
    !isObj(v.domain) ||
    typeof v.domain.min !== 'number' ||
    typeof v.domain.max !== 'number' ||
    !(v.domain.min < v.domain.max)
  )
    return 'domain must be {min, max} numbers with min < max';
  if (!Array.isArray(v.defenses) || !v.defenses.every((x) => typeof x === 'string'))
    return 'defenses must be a list of names';
  // absent on servers older than the binary wire
  if (v.binary !== undefined && typeof v.binary !== 'boolean') return 'binary must be a boolean when given';
  return undefined;
}

/** A prediction of one chunk, as typed arrays: n × k probabilities, or n labels. */
interface Chunk {
  probs?: Float32Array;
  labels?: Int32Array;
}

/** Why `v` is not a prediction of `n` inputs over `k` classes, or undefined when it is one. */
function predictionProblem(v: unknown, n: number, k: number): string | undefined {
  if (!isObj(v)) return `expected a JSON object, got ${Array.isArray(v) ? 'an array' : String(v)}`;
  if (v.probs === undefined && v.labels === undefined) return 'neither probs nor labels';
  if (v.probs !== undefined) {
    if (!Array.isArray(v.probs) || v.probs.length !== n) return `probs must be ${n} rows (one per input)`;
    for (const row of v.probs as unknown[]) {
      if (!Array.isArray(row) || row.length !== k) return `each row of probs must hold ${k} numbers (one per class)`;
      if (!row.every((p) => typeof p === 'number' && Number.isFinite(p))) return 'probs must be finite numbers';
      if (!row.every((p) => (p as number) >= 0 && (p as number) <= 1)) return 'probs must be in [0, 1]';
    }
  }
  if (v.labels !== undefined) {
    if (!Array.isArray(v.labels) || v.labels.length !== n) return `labels must be ${n} class indices (one per input)`;
    if (!v.labels.every((c) => typeof c === 'number' && Number.isInteger(c) && c >= 0 && c < k))
      return `labels must be integers in [0, ${k})`;
  }
  return undefined;
}

/**
 * A binary answer to `n` inputs over `k` classes as typed arrays, or why it is not one: the headers
 * must say what it holds (x-mse-answer) and its shape (x-mse-shape), and the bytes must be exactly that.
 */
function binaryAnswer(res: Response, bytes: ArrayBuffer, n: number, k: number): Chunk | string {
  const what = res.headers.get('x-mse-answer');
  const shape = res.headers.get('x-mse-shape');
  if (what !== 'probs' && what !== 'labels')
    return `x-mse-answer must be probs or labels, got ${snippet(String(what))}`;
  const want = what === 'probs' ? `${n},${k}` : `${n}`;
  if (shape === null || shape.replace(/\s+/g, '') !== want)
    return `x-mse-shape must be ${want} for ${n} inputs${what === 'probs' ? ` over ${k} classes` : ''}, got ${snippet(String(shape))}`;
  const count = what === 'probs' ? n * k : n;
  if (bytes.byteLength !== count * 4)
    return `${what} of shape [${want}] are ${count * 4} bytes, got ${bytes.byteLength}`;
  const dv = LITTLE_ENDIAN ? undefined : new DataView(bytes);
  if (what === 'probs') {
    const p = dv ? Float32Array.from({ length: count }, (_, i) => dv.getFloat32(i * 4, true)) : new Float32Array(bytes);
    for (const v of p) {
      if (!Number.isFinite(v)) return 'probs must be finite numbers';
      if (!(v >= 0 && v <= 1)) return 'probs must be in [0, 1]';
    }
    return { probs: p };
  }
  const l = dv ? Int32Array.from({ length: count }, (_, i) => dv.getInt32(i * 4, true)) : new Int32Array(bytes);
  for (const c of l) if (!(c >= 0 && c < k)) return `labels must be integers in [0, ${k})`;
  return { labels: l };
}

/** Little-endian float32 bytes of `a` (a view when this machine is little-endian). */
function littleEndianBytes(a: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const dv = new DataView(out.buffer);
  a.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return out;
}

export class HttpPredictionApi implements PredictionApi {
  private readonly _ledger: Ledger;
  /** inputs per request: the server's max batch for this key, shrunk if the server says so */
  private batch: number;
  /** how predictions travel: binary when the server offers it and no proof-of-work is asked (proofs are bound to JSON) */
  readonly wire: Wire;
  private constructor(
    private readonly base: string,
    readonly info: RemoteInfo,
    private readonly key: string | undefined,
    budget: number,
    wire: 'auto' | 'json',
  ) {
    this._ledger = { queries: 0, budget, batches: 0, apiSeconds: 0, powSeconds: 0 };
    this.batch = info.maxBatch;
    this.wire = wire === 'auto' && info.binary === true && !info.pow.required ? 'binary' : 'json';
  }

  /**
   * `wire: 'json'` keeps to JSON even against a server that offers binary (to compare the two);
   * by default ('auto') binary is used where the server's /v1/info says `binary: true` and PoW is off.
   */
  static async connect(
    url: string,
    opts: { key?: string; budget?: number; expect?: RemoteExpectation; wire?: 'auto' | 'json' } = {},
  ): Promise<HttpPredictionApi> {
    const base = url.replace(/\/+$/, '');
    let res: Response;
    try {
      res = await fetch(`${base}/v1/info`, {
        headers: opts.key ? { authorization: `Bearer ${opts.key}` } : {},
        signal: AbortSignal.timeout(INFO_TIMEOUT_MS),
      });
    } catch (e) {
      throw new MseError('http', `cannot reach ${base}: ${HttpPredictionApi.why(e)}`, 'is `mse serve` running there?');
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      // a model server's URL given without --protocol: say which protocol it looks like
      const where = new URL(base).pathname;
      const looks = /\/v2\/models\/[^/]+/.test(where)
        ? 'kserve-v2'
        : /\/v1\/models\/[^/:]+/.test(where)
          ? 'tf-serving'
          : undefined;
      throw new MseError(
        'http',
        looks
          ? `${base} is not an mse server (its /v1/info answered ${res.status}): the URL names a ${looks} model`
          : `${base}/v1/info answered ${res.status}${text ? `: ${snippet(text)}` : ''}`,
        looks ? `give --protocol ${looks}` : res.status === 401 ? 'give a valid API key with --key' : undefined,
      );
    }
    const body = await HttpPredictionApi.json(base, res, '/v1/info');
    const problem = infoProblem(body);
    if (problem)
      throw new MseError('http', `server at ${base} answered something that is not an mse /v1/info: ${problem}`);
    const info = body as unknown as RemoteInfo;
    const e = opts.expect;
    if (e) {
      const of = e.name ? `the dataset ${e.name}` : "the attacker's dataset";
      if (info.inputShape.join() !== e.inputShape.join()) {
        throw new MseError(
          'http',
          `server at ${base} takes inputs of shape [${info.inputShape.join(', ')}], but ${of} has inputs of shape [${e.inputShape.join(', ')}]`,
          'is --target serving the victim of this -d dataset?',
        );
      }
      if (info.numClasses !== e.numClasses) {
        throw new MseError(
          'http',
          `server at ${base} answers ${info.numClasses} classes, but ${of} has ${e.numClasses}`,
          'is --target serving the victim of this -d dataset?',
        );
      }
    }
    return new HttpPredictionApi(base, info, opts.key, opts.budget ?? Infinity, opts.wire ?? 'auto');
  }

  private static why(e: unknown): string {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    if (err.name === 'TimeoutError') return 'no answer in time';
    return (err.cause?.code ?? err.cause?.message ?? err.message).replace(/\s+/g, ' ');
  }

  /** The body as JSON, or a one-line MseError saying the server sent something else. */
  private static async json(base: string, res: Response, what: string): Promise<unknown> {
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw new MseError('http', `server at ${base} broke off its answer to ${what}: ${HttpPredictionApi.why(e)}`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new MseError(
        'http',
        `server at ${base} answered something that is not an mse ${what}: not JSON (${snippet(text)})`,
      );
    }
  }

  get ledger(): Readonly<Ledger> {
    return this._ledger;
  }

  /** POST a JSON value, or raw bytes (binary both ways: the answer too is asked for as bytes). */
  private async post(path: string, body: unknown): Promise<Response> {
    const binary = body instanceof Uint8Array;
    const headers: Record<string, string> = binary
      ? { 'content-type': OCTET, accept: OCTET }
      : { 'content-type': 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    try {
      return await fetch(`${this.base}${path}`, {
        method: 'POST',
        headers,
        body: binary ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(PREDICT_TIMEOUT_MS),
      });
    } catch (e) {
      throw new MseError(
        'http',
        `${this.base}${path} failed: ${HttpPredictionApi.why(e)}`,
        'is `mse serve` still running there?',
      );
    }
  }

  async query(x: tf.Tensor): Promise<ApiResponse> {
    const n = x.shape[0];
    const l = this._ledger;
    if (x.rank < 2 || x.shape.slice(1).join() !== this.info.inputShape.join()) {
      throw new MseError(
        'http',
        `query shape [${x.shape.join(', ')}] does not match the server's input shape [n, ${this.info.inputShape.join(', ')}]`,
      );
    }
    if (l.queries + n > l.budget) throw new BudgetExhaustedError(l.queries, l.budget, n);
    const d = x.size / n;
    const k = this.info.numClasses;
    const data = await x.data();
    // an int32 or bool query is sent as the float32 values the server reads (the binary wire is float32)
    const flat = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    let probs: Float32Array | undefined;
    let labels: Int32Array | undefined;
    let probRows = 0;
    let labelRows = 0;
    for (let s = 0; s < n;) {
      const m = Math.min(this.batch, n - s);
      const out = await this.predict(flat.subarray(s * d, (s + m) * d), m, d, l.queries + s);
      if ('shrink' in out) {
        this.batch = out.shrink;
        continue;
      }
      if (out.probs) {
        (probs ??= new Float32Array(n * k)).set(out.probs, s * k);
        probRows += m;
      }
      if (out.labels) {
        (labels ??= new Int32Array(n)).set(out.labels, s);
        labelRows += m;
      }
      s += m;
    }
    // a server that answered probabilities for some chunks and labels for others is not one API
    if (probs && probRows !== n) throw this.notAPrediction('probabilities for only some of the inputs');
    if (labels && labelRows !== n) throw this.notAPrediction('labels for only some of the inputs');
    l.queries += n;
    l.batches += 1;
    notePow((l.powTrace ??= []), l.queries - n, l);
    return {
      ...(probs ? { probs: tf.tensor2d(probs, [n, k]) } : {}),
      ...(labels ? { labels: tf.tensor1d(labels, 'int32') } : {}),
    };
  }

  private notAPrediction(why: string): MseError {
    return new MseError('http', `server at ${this.base} answered something that is not an mse prediction: ${why}`);
  }

  /** Seconds to wait before retrying, from the server's retry-after (bounded) or exponential backoff. */
  private static waitMs(res: Response, attempt: number): number {
    const retry = Number(res.headers.get('retry-after') ?? 0);
    return Math.max(Number.isFinite(retry) ? Math.min(Math.max(retry, 0), MAX_RETRY_S) * 1000 : 0, 50 * 2 ** attempt);
  }

  private async challenge(inputs: number[][]): Promise<{ stamp: string; counter: string }> {
    for (let attempt = 0; ; attempt++) {
      const t0 = performance.now();
      const res = await this.post('/v1/challenge', { digest: digestOf(inputs) });
      if (res.status === 429 && attempt < 8) {
        await res.arrayBuffer().catch(() => undefined);
        await new Promise((r) => setTimeout(r, HttpPredictionApi.waitMs(res, attempt)));
        continue;
      }
      if (!res.ok)
        throw new MseError('http', `challenge refused: ${res.status} ${snippet(await res.text().catch(() => ''))}`);
      const ch = await HttpPredictionApi.json(this.base, res, 'challenge');
      // a hostile server could ask for a puzzle that takes years: refuse rather than spin
      if (
        !isObj(ch) ||
        typeof ch.stamp !== 'string' ||
        ch.stamp.length > 512 ||
        !(typeof ch.bits === 'number' && Number.isInteger(ch.bits) && ch.bits >= 0 && ch.bits <= MAX_BITS)
      ) {
        throw new MseError(
          'http',
          `server at ${this.base} answered something that is not an mse challenge: expected {stamp, bits} with bits an integer in [0, ${MAX_BITS}]`,
        );
      }
      const counter = solve({ stamp: ch.stamp, bits: ch.bits }).counter;
      this._ledger.powSeconds += (performance.now() - t0) / 1000;
      return { stamp: ch.stamp, counter };
    }
  }

  /** One chunk of `m` inputs of `d` values (a view of the query's data), answered or refused. */
  private async predict(
    rows: Float32Array,
    m: number,
    d: number,
    answered: number,
  ): Promise<Chunk | { shrink: number }> {
    const k = this.info.numClasses;
    // PoW binds its puzzle to the JSON inputs; the rows are only built for the JSON wire
    const inputs =
      this.wire === 'json'
        ? Array.from({ length: m }, (_, i) => Array.from(rows.subarray(i * d, (i + 1) * d)))
        : undefined;
    for (let attempt = 0; ; attempt++) {
      const pow = inputs && this.info.pow.required ? await this.challenge(inputs) : undefined;
      const t1 = performance.now();
      const res = await this.post(
        '/v1/predict',
        inputs ? (pow ? { inputs, pow } : { inputs }) : littleEndianBytes(rows),
      );
      this._ledger.apiSeconds += (performance.now() - t1) / 1000;
      if (res.ok) {
        // asked for bytes, a server may still answer JSON (it decides); anything else is not a prediction
        if (inputs === undefined && mediaOf(res) !== 'application/json') {
          if (mediaOf(res) !== OCTET)
            throw this.notAPrediction(
              `a binary answer must be ${OCTET}, got ${snippet(res.headers.get('content-type') ?? 'no content type')}`,
            );
          // never read more than the largest honest answer (probabilities): a hostile length is refused unread
          const most = m * k * 4;
          const declared = Number(res.headers.get('content-length') ?? NaN);
          if (declared > most) {
            await res.body?.cancel().catch(() => undefined);
            throw this.notAPrediction(`a binary answer to ${m} inputs is at most ${most} bytes, got ${declared}`);
          }
          let bytes: ArrayBuffer;
          try {
            bytes = await res.arrayBuffer();
          } catch (e) {
            throw new MseError(
              'http',
              `server at ${this.base} broke off its answer to prediction: ${HttpPredictionApi.why(e)}`,
            );
          }
          const out = binaryAnswer(res, bytes, m, k);
          if (typeof out === 'string') throw this.notAPrediction(out);
          return out;
        }
        const out = await HttpPredictionApi.json(this.base, res, 'prediction');
        const problem = predictionProblem(out, m, k);
        if (problem) throw this.notAPrediction(problem);
        const v = out as { probs?: number[][]; labels?: number[] };
        const chunk: Chunk = {};
        if (v.probs) {
          chunk.probs = new Float32Array(m * k);
          v.probs.forEach((row, i) => chunk.probs!.set(row, i * k));
        }
        if (v.labels) chunk.labels = Int32Array.from(v.labels);
        return chunk;
      }
      const text = await res.text().catch(() => '');
      let body: { error?: unknown; message?: unknown; remaining?: unknown; maxBatch?: unknown } = {};
      try {
        const parsed = JSON.parse(text) as unknown;
        if (isObj(parsed)) body = parsed;
      } catch {
        // an error page: its status and first words are the message below
      }
      if (res.status === 429 && body.error === 'budget-exhausted') {
        const remaining =
          typeof body.remaining === 'number' && Number.isFinite(body.remaining) && body.remaining >= 0
            ? body.remaining
            : 0;
        throw new BudgetExhaustedError(answered, answered + remaining, m);
      }
      if (res.status === 403 && body.error === 'detected') {
        const at = (body as { detectedAt?: unknown }).detectedAt;
        const reason =
          typeof body.message === 'string' ? body.message.slice(0, 300) : 'the server detected an extraction';
        this._ledger.detectedAt ??= typeof at === 'number' && Number.isSafeInteger(at) && at >= 0 ? at : answered;
        this._ledger.alarm ??= reason;
        throw new DetectedError(reason, this._ledger.detectedAt);
      }
      // the batch is over what this key's rate can ever afford: send smaller ones
      if (res.status === 413 && body.error === 'batch-too-large' && isPosInt(body.maxBatch) && body.maxBatch < m)
        return { shrink: body.maxBatch };
      if (res.status === 429 && attempt < 8) {
        await new Promise((r) => setTimeout(r, HttpPredictionApi.waitMs(res, attempt)));
        continue;
      }
      const message =
        typeof body.message === 'string'
          ? body.message
          : typeof body.error === 'string'
            ? body.error
            : text
              ? snippet(text)
              : 'no message';
      throw new MseError('http', `predict answered ${res.status}: ${message.replace(/\s+/g, ' ').slice(0, 300)}`);
    }
  }
}
