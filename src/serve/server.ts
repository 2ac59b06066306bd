/**
 * `mse serve`: a victim behind its defenses as an HTTP prediction API (fastify, JSON-schema-checked
 * bodies). Each API key is a client with its own ledger (budget), token-bucket rate limit and, when
 * proof-of-work is on, puzzles whose difficulty follows that client's privacy cost (Dziedzic 2022):
 *   POST /v1/challenge {digest}     → a HashCash stamp bound to the client and sha256(inputs)
 *   POST /v1/predict {inputs, pow?} → probabilities or labels, as the defenses allow; or, without
 *        proof-of-work, n × d raw little-endian float32 (Content-Type: application/octet-stream), and
 *        with Accept: application/octet-stream a binary answer (float32 n × k probabilities or int32
 *        n labels, said by x-mse-answer and x-mse-shape); errors are JSON whatever the wire
 *   GET  /v1/info (the caller's effective max batch), /healthz, /metrics (admin key, or loopback
 *        when the server is open)
 * Every request but /healthz is appended to an audit log (JSON lines, rotated by size), refusals
 * included; an answer is recorded before it is revealed, so an unwritable log answers nothing.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { tf } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import { LocalPredictionApi } from '../api/local-api.js';
import type { Defense } from '../api/types.js';
import { issueChallenge, verify, type Challenge } from '../protocol/hashcash.js';
import type { PowDefense } from '../defenses/pow.js';
import { BudgetExhaustedError, DetectedError, UsageError } from '../errors.js';
import type { Model } from '../models/model.js';
import { AuditLog } from './audit.js';
import { digestOf } from '../protocol/digest.js';
import { parseKeys, type ClientKey } from './keys.js';

export type { ClientKey };

export interface ServeOptions {
  victim: Model;
  defenses: Defense[];
  domain: { min: number; max: number };
  seed: number;
  /** API keys; without them the server is open and everyone is client "anonymous" */
  keys?: ClientKey[];
  /** require a solved puzzle per predict call (needs a `pow` defense in the stack) */
  pow?: boolean;
  maxBatch?: number;
  bodyLimit?: number;
  auditLog?: string;
  auditMaxBytes?: number;
  challengeTtlMs?: number;
  /** unanswered puzzles one client may hold at once (default 64) */
  maxChallengesPerClient?: number;
  logger?: boolean;
}

interface Bucket {
  tokens: number;
  last: number;
}

interface ClientState {
  id: string;
  api: LocalPredictionApi;
  /** queries per second (Infinity: unlimited) */
  rate: number;
  /** the largest batch this client can ever afford: min(server max, one bucketful) */
  maxBatch: number;
  queries: Bucket;
  /** puzzles have their own bucket at the same rate, so asking for one never shrinks the batch a client can send */
  puzzles: Bucket;
  served: number;
  outstanding: number;
}

/** What the audit line of a request needs to know, filled in as the request is handled. */
interface RequestNote {
  client?: string;
  reason?: string;
  /** a detector's alarm on this client, for the audit line */
  alarm?: string;
  n?: number;
  /** the handler already wrote this request's line: 'answer' (logged before it is sent; a later failure still gets its own line) or 'done' */
  audited?: 'answer' | 'done';
}

/** Cumulative latency histogram buckets (seconds), Prometheus style. */
const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export { digestOf };

const OCTET = 'application/octet-stream';
/** This machine stores typed arrays little-endian (the wire's order), as every platform Node runs on today does. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Whether an Accept header asks for a binary answer: application/octet-stream, preferred at least as much as JSON. */
function wantsBinary(accept: string | undefined): boolean {
  if (!accept || !accept.includes(OCTET)) return false;
  let bin = 0;
  let json = 0;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';');
    let q = 1;
    for (const param of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(param);
      if (m) q = Number(m[1]) || 0;
    }
    const t = type.trim().toLowerCase();
    if (t === OCTET) bin = Math.max(bin, q);
    else if (t === 'application/json') json = Math.max(json, q);
  }
  return bin > 0 && bin >= json;
}

/** A copy of little-endian float32 bytes as this machine's Float32Array (aligned, owned by the caller). */
function decodeFloat32(buf: Buffer): Float32Array {
  const out = new Float32Array(buf.length / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(buf);
  else {
    const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(i * 4, true);
  }
  return out;
}

/** A typed array's values as little-endian bytes (a copy). */
function toLittleEndian(a: Float32Array | Int32Array): Buffer {
  const out = Buffer.alloc(a.length * 4);
  if (LITTLE_ENDIAN) out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  else if (a instanceof Float32Array) a.forEach((x, i) => out.writeFloatLE(x, i * 4));
  else a.forEach((x, i) => out.writeInt32LE(x, i * 4));
  return out;
}

/**
 * A token bucket of `rate` per second holding one second's worth, but at least one token (so a rate
 * under 1/s still lets single queries through). Takes `n` and returns 0, or the whole seconds to wait.
 */
function take(b: Bucket, rate: number, n: number, now: number): number {
  if (!Number.isFinite(rate)) return 0;
  const cap = Math.max(1, rate);
  b.tokens = Math.min(cap, b.tokens + ((now - b.last) / 1000) * rate);
  b.last = now;
  if (b.tokens >= n) {
    b.tokens -= n;
    return 0;
  }
  return Math.max(1, Math.ceil((n - b.tokens) / rate));
}

export async function createServer(o: ServeOptions): Promise<FastifyInstance> {
  const maxBatch = o.maxBatch ?? 1024;
  const d = o.victim.inputShape.reduce((a, b) => a * b, 1);
  const powDefense = o.defenses.find((x) => x.name === 'pow') as PowDefense | undefined;
  if (o.pow && !powDefense) throw new UsageError('--pow on needs the pow defense in the stack');
  // the same checks as a keys file: a duplicate id would merge two clients' ledgers
  const keyList = o.keys?.length ? parseKeys({ keys: o.keys }, 'API keys') : [];
  const ttl = o.challengeTtlMs ?? 60_000;
  const maxOutstanding = o.maxChallengesPerClient ?? 64;
  // opened now so that an unwritable path fails at start-up, not on the first query
  const auditLog = o.auditLog ? AuditLog.open(o.auditLog, o.auditMaxBytes) : undefined;
  // strict bodies: fastify's default Ajv would silently drop unknown fields and coerce "1" to 1
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit ?? 8 * 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  const keys = new Map(keyList.map((k) => [k.key, k]));
  const clients = new Map<string, ClientState>();
  const challenges = new Map<string, Challenge & { client: string; digest: string }>();
  /** used stamps until they expire; after that a replay is refused as unknown anyway */
  const used = new Map<string, number>();
  const notes = new WeakMap<FastifyRequest, RequestNote>();
  const hist = new Array<number>(BUCKETS.length + 1).fill(0);
  let served = 0;
  const rootRng = new Rng(o.seed);

  const probe = new LocalPredictionApi(o.victim, o.defenses, { rng: new Rng(o.seed), domain: o.domain });
  const info = {
    ...probe.info,
    pow: o.pow ? { required: true, batch: powDefense?.params.batch } : { required: false },
    maxBatch,
    /** POST /v1/predict also takes and gives raw little-endian float32 (application/octet-stream) */
    binary: true,
  };

  const note = (req: FastifyRequest): RequestNote => {
    let n = notes.get(req);
    if (!n) notes.set(req, (n = {}));
    return n;
  };

  /** A refusal: the JSON error body, with its reason kept for the audit line. */
  function refuse(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    error: string,
    message: string,
    extra: Record<string, unknown> = {},
  ): FastifyReply {
    note(req).reason = error;
    return reply.code(status).send({ error, message, ...extra });
  }

  function tokenOf(req: FastifyRequest): string | undefined {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return auth.slice(7);
    const x = req.headers['x-api-key'];
    return typeof x === 'string' ? x : undefined;
  }

  /** Who a request is, for the audit log, without refusing anything. */
  function identify(req: FastifyRequest): string {
    if (!keys.size) return 'anonymous';
    const t = tokenOf(req);
    return (t !== undefined && keys.get(t)?.id) || 'unauthenticated';
  }

  function stateOf(id: string, key: ClientKey | undefined): ClientState {
    let c = clients.get(id);
    if (!c) {
      const rate = key?.ratePerSec ?? Infinity;
      const now = Date.now();
      c = {
        id,
        api: new LocalPredictionApi(o.victim, o.defenses, {
          rng: rootRng.fork(),
          domain: o.domain,
          budget: key?.budget,
          clientId: id,
        }),
        rate,
        maxBatch: Number.isFinite(rate) ? Math.min(maxBatch, Math.max(1, Math.floor(rate))) : maxBatch,
        queries: { tokens: Math.max(1, rate), last: now },
        puzzles: { tokens: Math.max(1, rate), last: now },
        served: 0,
        outstanding: 0,
      };
      clients.set(id, c);
    }
    return c;
  }

  function clientOf(req: FastifyRequest, reply: FastifyReply): ClientState | undefined {
    let key: ClientKey | undefined;
    if (keys.size) {
      const token = tokenOf(req);
      key = token !== undefined ? keys.get(token) : undefined;
      if (!key) {
        refuse(req, reply, 401, 'unauthorized', 'a valid API key is required (Authorization: Bearer <key>)');
        return undefined;
      }
    }
    const id = key?.id ?? 'anonymous';
    note(req).client = id;
    return stateOf(id, key);
  }

  function dropChallenge(stamp: string): void {
    const ch = challenges.get(stamp);
    if (!ch) return;
    challenges.delete(stamp);
    const c = clients.get(ch.client);
    if (c) c.outstanding--;
  }

  // expired puzzles and used stamps are forgotten, amortised over requests and on a timer
  const sweepEveryMs = Math.min(Math.max(ttl, 10), 60_000);
  let nextSweep = 0;
  function sweep(now: number): void {
    nextSweep = now + sweepEveryMs;
    for (const [stamp, ch] of challenges) if (ch.expires < now) dropChallenge(stamp);
    for (const [stamp, expires] of used) if (expires < now) used.delete(stamp);
  }
  const sweepMaybe = (now: number) => {
    if (now >= nextSweep) sweep(now);
  };
  if (powDefense) {
    const timer = setInterval(() => sweep(Date.now()), Math.max(sweepEveryMs, 1_000));
    timer.unref(); // never keeps a process alive
    app.addHook('onClose', async () => clearInterval(timer));
  }
  if (auditLog) {
    app.addHook('onResponse', async (req, reply) => {
      const n = notes.get(req);
      if (req.url === '/healthz' || n?.audited === 'done' || (n?.audited === 'answer' && reply.statusCode === 200))
        return;
      const route = req.routeOptions.url ?? req.url.slice(0, 120);
      writeAudit({
        route: `${req.method} ${route}`,
        client: n?.client ?? identify(req),
        status: reply.statusCode,
        ...(n?.n !== undefined ? { n: n.n } : {}),
        ...(reply.statusCode >= 400 ? { reason: n?.reason ?? 'error' } : {}),
        ...(n?.alarm !== undefined ? { alarm: n.alarm } : {}),
      });
    });
    app.addHook('onClose', async () => auditLog.close());
  }

  /** Append to the audit log; false (with the details on the server's stderr) when it failed. */
  function writeAudit(entry: Record<string, unknown>): boolean {
    if (!auditLog) return true;
    try {
      auditLog.write(entry);
      return true;
    } catch (e) {
      process.stderr.write(`mse serve: cannot write the audit log ${auditLog.file}: ${(e as Error).message}\n`);
      return false;
    }
  }

  app.get('/healthz', async () => ({ ok: true }));

  // serialised by fast-json-stringify; every field listed in the order it is built, any other passes through
  const infoSchema = {
    response: {
      200: {
        type: 'object',
        additionalProperties: true,
        properties: {
          inputShape: { type: 'array', items: { type: 'integer' } },
          numClasses: { type: 'integer' },
          domain: { type: 'object', additionalProperties: true },
          reveals: { type: 'string' },
          defenses: { type: 'array', items: { type: 'string' } },
          pow: { type: 'object', additionalProperties: true },
          maxBatch: { type: 'integer' },
          binary: { type: 'boolean' },
          ratePerSec: { type: 'number' },
        },
      },
    },
  };

  app.get('/v1/info', { schema: infoSchema }, async (req, reply) => {
    // a key, when given, must be valid; the answer then carries that key's effective max batch
    if (!keys.size || tokenOf(req) === undefined) return info;
    const c = clientOf(req, reply);
    if (!c) return reply;
    return { ...info, maxBatch: c.maxBatch, ...(Number.isFinite(c.rate) ? { ratePerSec: c.rate } : {}) };
  });

  app.get('/metrics', async (req, reply) => {
    // every client's id and volume is the operator's business: an admin key, or (open server) loopback
    if (keys.size) {
      const token = tokenOf(req);
      const key = token !== undefined ? keys.get(token) : undefined;
      if (!key)
        return refuse(req, reply, 401, 'unauthorized', 'an admin API key is required (Authorization: Bearer <key>)');
      note(req).client = key.id;
      if (!key.admin)
        return refuse(req, reply, 403, 'forbidden', 'metrics need an admin key ("admin": true in the keys file)');
    } else if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
      return refuse(
        req,
        reply,
        403,
        'forbidden',
        'an open server (no --keys) shows metrics to loopback clients only; give it keys with an admin entry',
      );
    }
    return {
      served,
      clients: Object.fromEntries([...clients.values()].map((c) => [c.id, c.served])),
      challenges: { outstanding: challenges.size, used: used.size },
      latency_seconds: { buckets: BUCKETS, counts: hist },
    };
  });

  app.post<{ Body: { digest: string } }>(
    '/v1/challenge',
    {
      schema: {
        body: {
          type: 'object',
          required: ['digest'],
          additionalProperties: false,
          properties: { digest: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
        },
      },
    },
    async (req, reply) => {
      const c = clientOf(req, reply);
      if (!c) return reply;
      if (!powDefense) return refuse(req, reply, 404, 'not-found', 'this server does not use proof-of-work');
      const now = Date.now();
      sweepMaybe(now);
      const wait = take(c.puzzles, c.rate, 1, now);
      if (wait) {
        void reply.header('retry-after', String(wait));
        return refuse(req, reply, 429, 'rate-limited', `at most ${c.rate} puzzles/s for ${c.id}`);
      }
      if (c.outstanding >= maxOutstanding) sweep(now);
      if (c.outstanding >= maxOutstanding) {
        void reply.header('retry-after', String(Math.max(1, Math.ceil(ttl / 1000))));
        return refuse(
          req,
          reply,
          429,
          'too-many-challenges',
          `${c.id} holds ${c.outstanding} unanswered puzzles, the most allowed; use or let them expire first`,
        );
      }
      const ch = issueChallenge(powDefense.nextBits(c.id), `${c.id}.${req.body.digest.slice(0, 16)}`, {
        ttlMs: ttl,
        now,
      });
      challenges.set(ch.stamp, { ...ch, client: c.id, digest: req.body.digest });
      c.outstanding++;
      return { stamp: ch.stamp, bits: ch.bits, expires: ch.expires };
    },
  );

  /** The JSON body of a predict: n rows of d numbers, and a proof when the server asks for one. */
  const jsonPredictSchema = {
    type: 'object',
    required: ['inputs'],
    additionalProperties: false,
    properties: {
      inputs: {
        type: 'array',
        minItems: 1,
        maxItems: maxBatch,
        items: { type: 'array', minItems: d, maxItems: d, items: { type: 'number' } },
      },
      pow: {
        type: 'object',
        required: ['stamp', 'counter'],
        additionalProperties: false,
        properties: { stamp: { type: 'string', maxLength: 512 }, counter: { type: 'string', maxLength: 32 } },
      },
    },
  };
  const predictSchema = {
    // per content type: JSON (and text/plain, refused by the same schema as before) is checked by Ajv;
    // a binary body is a Buffer the handler decodes (its size already bounded by the parser's limit)
    body: {
      content: {
        'application/json': { schema: jsonPredictSchema },
        'text/plain': { schema: jsonPredictSchema },
        [OCTET]: { schema: {} },
      },
    },
    // answers serialised by fast-json-stringify (a binary answer is a Buffer and bypasses it)
    response: {
      200: {
        type: 'object',
        properties: {
          probs: { type: 'array', items: { type: 'array', items: { type: 'number' } } },
          labels: { type: 'array', items: { type: 'integer' } },
        },
      },
    },
  };

  // raw little-endian float32 inputs: at most maxBatch rows of d values, so a hostile client cannot
  // make the server buffer more than one full batch (a longer Content-Length is refused unread)
  const binaryLimit = maxBatch * d * 4;
  app.addContentTypeParser(OCTET, { parseAs: 'buffer', bodyLimit: binaryLimit }, (_req, body, done) =>
    done(null, body),
  );

  app.post<{ Body: { inputs: number[][]; pow?: { stamp: string; counter: string } } | Buffer | undefined }>(
    '/v1/predict',
    { schema: predictSchema },
    async (req, reply) => {
      const t0 = performance.now();
      const binaryOut = wantsBinary(req.headers.accept);
      const body = req.body;
      if (Buffer.isBuffer(body)) {
        // the puzzle is bound to sha256 of the JSON inputs: a proof travels with them, as JSON
        if (o.pow)
          return refuse(
            req,
            reply,
            415,
            'unsupported-media-type',
            'this server requires proof-of-work, and a predict with a proof is JSON: send {inputs, pow} as application/json (the puzzle is bound to sha256 of the JSON inputs)',
          );
        const rowBytes = 4 * d;
        if (body.length === 0 || body.length % rowBytes !== 0)
          return refuse(
            req,
            reply,
            400,
            'bad-request',
            `a binary body is n × ${d} little-endian float32 values (a positive multiple of ${rowBytes} bytes), got ${body.length} bytes`,
          );
        const n = body.length / rowBytes;
        return answer(req, reply, t0, decodeFloat32(body), n, binaryOut);
      }
      // only a body Ajv checked against the JSON schema gets here as JSON
      if (req.mediaType !== 'application/json' || body === undefined || !Array.isArray(body.inputs))
        return refuse(
          req,
          reply,
          400,
          'bad-request',
          `body must be JSON {inputs: number[][]} or ${OCTET} (n × ${d} little-endian float32 values)`,
        );
      const { inputs } = body;
      const n = inputs.length;
      const flat = new Float32Array(n * d);
      inputs.forEach((row, i) => flat.set(row, i * d));
      return answer(req, reply, t0, flat, n, binaryOut, { inputs, proof: body.pow });
    },
  );

  /**
   * One predict, whatever its wire: `flat` holds the n × d inputs (JSON rows or binary, already
   * decoded); `json` carries the JSON inputs and proof, which proof-of-work needs. Auth, rate limit,
   * budget, audit log, defenses, detection and metrics are the same for both.
   */
  async function answer(
    req: FastifyRequest,
    reply: FastifyReply,
    t0: number,
    flat: Float32Array,
    n: number,
    binaryOut: boolean,
    json?: { inputs: number[][]; proof?: { stamp: string; counter: string } },
  ): Promise<unknown> {
    const c = clientOf(req, reply);
    if (!c) return reply;
    note(req).n = n;
    // checked as the victim will see them: a JSON 1e39 is finite but overflows float32
    for (let i = 0; i < flat.length; i++)
      if (!Number.isFinite(flat[i])) return refuse(req, reply, 400, 'bad-request', 'inputs must be finite numbers');
    // a batch over one bucketful could never be answered: say so, rather than a 429 to wait for forever
    if (n > c.maxBatch)
      return refuse(
        req,
        reply,
        413,
        'batch-too-large',
        `a batch of ${n} exceeds ${c.id}'s rate of ${c.rate} queries/s; send at most ${c.maxBatch} inputs per request`,
        { maxBatch: c.maxBatch },
      );
    const now = Date.now();
    sweepMaybe(now);
    const wait = take(c.queries, c.rate, n, now);
    if (wait) {
      void reply.header('retry-after', String(wait));
      return refuse(req, reply, 429, 'rate-limited', `at most ${c.rate} queries/s for ${c.id}`);
    }
    if (c.api.ledger.queries + n > c.api.ledger.budget)
      return refuse(
        req,
        reply,
        429,
        'budget-exhausted',
        `${c.id} has ${c.api.ledger.budget - c.api.ledger.queries} of ${c.api.ledger.budget} queries left`,
        { remaining: c.api.ledger.budget - c.api.ledger.queries },
      );
    const proof = json?.proof;
    if (o.pow) {
      if (!json) return refuse(req, reply, 415, 'unsupported-media-type', 'a predict with a proof of work is JSON');
      if (!proof)
        return refuse(
          req,
          reply,
          402,
          'pow-required',
          'solve a puzzle from POST /v1/challenge and send it as {pow: {stamp, counter}}',
        );
      const ch = challenges.get(proof.stamp);
      if (!ch)
        return refuse(
          req,
          reply,
          403,
          'pow-invalid',
          used.has(proof.stamp)
            ? 'this puzzle was already used'
            : 'unknown puzzle (not issued by this server, or expired long ago)',
        );
      if (ch.client !== c.id) return refuse(req, reply, 403, 'pow-invalid', 'this puzzle was issued to another client');
      if (ch.digest !== digestOf(json.inputs))
        return refuse(req, reply, 403, 'pow-invalid', 'this puzzle is bound to other inputs');
      const v = verify(ch, proof.counter);
      if (!v.ok) {
        if (v.why === 'expired') dropChallenge(proof.stamp);
        return refuse(
          req,
          reply,
          403,
          'pow-invalid',
          v.why === 'expired'
            ? 'the puzzle expired; ask for a new one'
            : v.why === 'malformed'
              ? 'malformed counter'
              : 'the counter does not solve the puzzle',
        );
      }
    }
    // recorded before anything is charged or revealed: an answer the log cannot hold is not given
    if (!writeAudit({ route: 'POST /v1/predict', client: c.id, n, status: 200 })) {
      note(req).audited = 'done';
      return refuse(req, reply, 500, 'internal', 'internal server error');
    }
    note(req).audited = 'answer';
    if (o.pow && proof) {
      const ch = challenges.get(proof.stamp);
      dropChallenge(proof.stamp);
      used.set(proof.stamp, ch?.expires ?? now + ttl);
    }
    const x = tf.tensor(flat, [n, ...o.victim.inputShape]);
    try {
      const r = await c.api.query(x);
      const p = r.probs ? ((await r.probs.data()) as Float32Array) : undefined;
      const k = r.probs ? r.probs.shape[1] : 0;
      const labels = r.labels ? ((await r.labels.data()) as Int32Array) : undefined;
      tf.dispose([r.probs ?? [], r.labels ?? []]);
      served += n;
      c.served += n;
      const s = (performance.now() - t0) / 1000;
      const b = BUCKETS.findIndex((u) => s <= u);
      hist[b < 0 ? BUCKETS.length : b]++;
      // binary: one typed array, so an answer with both (no stack gives one) stays JSON
      if (binaryOut && (p === undefined) !== (labels === undefined)) {
        const arr = p ?? labels!;
        void reply
          .header('content-type', OCTET)
          .header('x-mse-answer', p ? 'probs' : 'labels')
          .header('x-mse-shape', p ? `${n},${k}` : `${n}`);
        return reply.send(toLittleEndian(arr));
      }
      const body: { probs?: number[][]; labels?: number[] } = {};
      if (p) {
        body.probs = Array.from({ length: n }, (_, i) => Array.from(p.subarray(i * k, (i + 1) * k)));
        // fast-json-stringify refuses NaN; such an answer goes out as JSON.stringify writes it (null), as before
        if (!p.every(Number.isFinite)) void reply.serializer((v: unknown) => JSON.stringify(v));
      }
      if (labels) body.labels = Array.from(labels);
      return body;
    } catch (e) {
      if (e instanceof BudgetExhaustedError) return refuse(req, reply, 429, 'budget-exhausted', e.message);
      // a detector watching this key's stream raised an alarm (now or before): refused for good
      if (e instanceof DetectedError) {
        note(req).alarm = e.reason;
        return refuse(req, reply, 403, 'detected', e.message, { detectedAt: e.at });
      }
      throw e;
    } finally {
      x.dispose();
    }
  }

  app.setNotFoundHandler((req, reply) =>
    refuse(req, reply, 404, 'not-found', `no route ${req.method} ${req.url.slice(0, 100)}`),
  );

  app.setErrorHandler(
    (err: { statusCode?: number; message: string; validation?: unknown; stack?: string }, req, reply) => {
      const status =
        err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : err.validation ? 400 : 500;
      if (status === 500) {
        // the details are the operator's (stderr); a client learns nothing about the server's insides
        process.stderr.write(
          `mse serve: internal error on ${req.method} ${req.url.slice(0, 100)}: ${err.stack ?? err.message}\n`,
        );
        return refuse(req, reply, 500, 'internal', 'internal server error');
      }
      // a binary body longer than maxBatch rows: refused unread, with the batch a client should send
      if (
        status === 413 &&
        req.routeOptions.url === '/v1/predict' &&
        (err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE' &&
        req.mediaType === OCTET
      )
        return refuse(
          req,
          reply,
          413,
          'batch-too-large',
          `a binary body holds at most ${maxBatch} inputs (${binaryLimit} bytes); send at most ${maxBatch} inputs per request`,
          { maxBatch },
        );
      const error =
        status === 413
          ? 'too-large'
          : status === 415
            ? 'unsupported-media-type'
            : status === 404
              ? 'not-found'
              : 'bad-request';
      return refuse(req, reply, status, error, err.message);
    },
  );
  return app;
}
