/**
 * `mse serve`: a victim behind its defenses as an HTTP prediction API (fastify, JSON-schema-checked
 * bodies). Each API key is a client with its own ledger (budget), token-bucket rate limit and, when
 * proof-of-work is on, puzzles whose difficulty follows that client's privacy cost (Dziedzic 2022):
 *   POST /v1/challenge {digest}     → a HashCash stamp bound to the client and sha256(inputs)
 *   POST /v1/predict {inputs, pow?} → probabilities or labels, as the defenses allow
 *   GET  /v1/info, /healthz, /metrics
 * Every answered request is appended to an audit log (JSON lines, rotated by size).
 */
import { appendFileSync, existsSync, renameSync, statSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { tf } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import { LocalPredictionApi } from '../api/local-api.js';
import type { Defense } from '../api/types.js';
import { issueChallenge, verify, type Challenge } from '../defenses/pow/hashcash.js';
import type { PowDefense } from '../defenses/pow.js';
import { BudgetExhaustedError } from '../errors.js';
import type { Model } from '../models/model.js';
import { digestOf } from './digest.js';

export interface ClientKey {
  key: string;
  id: string;
  /** queries allowed (default unlimited) */
  budget?: number;
  /** sustained queries per second (default unlimited) */
  ratePerSec?: number;
}

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
  logger?: boolean;
}

interface ClientState {
  id: string;
  api: LocalPredictionApi;
  tokens: number;
  last: number;
  rate: number;
  served: number;
}

/** Cumulative latency histogram buckets (seconds), Prometheus style. */
const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

export { digestOf };

export async function createServer(o: ServeOptions): Promise<FastifyInstance> {
  const maxBatch = o.maxBatch ?? 1024;
  const d = o.victim.inputShape.reduce((a, b) => a * b, 1);
  const powDefense = o.defenses.find((x) => x.name === 'pow') as PowDefense | undefined;
  if (o.pow && !powDefense) throw new Error('--pow on needs the pow defense in the stack');
  // strict bodies: fastify's default Ajv would silently drop unknown fields and coerce "1" to 1
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: o.bodyLimit ?? 8 * 1024 * 1024, ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } } });
  const keys = new Map((o.keys ?? []).map((k) => [k.key, k]));
  const clients = new Map<string, ClientState>();
  const challenges = new Map<string, Challenge & { client: string; digest: string }>();
  const used = new Set<string>();
  const hist = new Array<number>(BUCKETS.length + 1).fill(0);
  let served = 0;
  const rootRng = new Rng(o.seed);

  const probe = new LocalPredictionApi(o.victim, o.defenses, { rng: new Rng(o.seed), domain: o.domain });
  const info = { ...probe.info, pow: o.pow ? { required: true, batch: powDefense?.params.batch } : { required: false }, maxBatch };

  function audit(entry: Record<string, unknown>): void {
    if (!o.auditLog) return;
    if (o.auditMaxBytes && existsSync(o.auditLog) && statSync(o.auditLog).size > o.auditMaxBytes) renameSync(o.auditLog, `${o.auditLog}.${Date.now()}`);
    appendFileSync(o.auditLog, JSON.stringify({ t: new Date().toISOString(), ...entry }) + '\n');
  }

  function clientOf(req: FastifyRequest, reply: FastifyReply): ClientState | undefined {
    let id = 'anonymous';
    let key: ClientKey | undefined;
    if (keys.size) {
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7) : (req.headers['x-api-key'] as string | undefined);
      key = token ? keys.get(token) : undefined;
      if (!key) {
        void reply.code(401).send({ error: 'unauthorized', message: 'a valid API key is required (Authorization: Bearer <key>)' });
        return undefined;
      }
      id = key.id;
    }
    let c = clients.get(id);
    if (!c) {
      c = { id, api: new LocalPredictionApi(o.victim, o.defenses, { rng: rootRng.fork(), domain: o.domain, budget: key?.budget, clientId: id }), tokens: key?.ratePerSec ?? Infinity, last: Date.now(), rate: key?.ratePerSec ?? Infinity, served: 0 };
      clients.set(id, c);
    }
    return c;
  }

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/v1/info', async () => info);
  app.get('/metrics', async () => ({
    served,
    clients: Object.fromEntries([...clients.values()].map((c) => [c.id, c.served])),
    latency_seconds: { buckets: BUCKETS, counts: hist },
  }));

  app.post<{ Body: { digest: string } }>(
    '/v1/challenge',
    { schema: { body: { type: 'object', required: ['digest'], additionalProperties: false, properties: { digest: { type: 'string', pattern: '^[0-9a-f]{64}$' } } } } },
    async (req, reply) => {
      const c = clientOf(req, reply);
      if (!c) return reply;
      if (!powDefense) return reply.code(404).send({ error: 'not-found', message: 'this server does not use proof-of-work' });
      const ch = issueChallenge(powDefense.nextBits(c.id), `${c.id}.${req.body.digest.slice(0, 16)}`, { ttlMs: o.challengeTtlMs ?? 60_000 });
      challenges.set(ch.stamp, { ...ch, client: c.id, digest: req.body.digest });
      return { stamp: ch.stamp, bits: ch.bits, expires: ch.expires };
    },
  );

  const predictSchema = {
    body: {
      type: 'object',
      required: ['inputs'],
      additionalProperties: false,
      properties: {
        inputs: { type: 'array', minItems: 1, maxItems: maxBatch, items: { type: 'array', minItems: d, maxItems: d, items: { type: 'number' } } },
        pow: { type: 'object', required: ['stamp', 'counter'], additionalProperties: false, properties: { stamp: { type: 'string', maxLength: 512 }, counter: { type: 'string', maxLength: 32 } } },
      },
    },
  };

  app.post<{ Body: { inputs: number[][]; pow?: { stamp: string; counter: string } } }>('/v1/predict', { schema: predictSchema }, async (req, reply) => {
    const t0 = performance.now();
    const c = clientOf(req, reply);
    if (!c) return reply;
    const { inputs } = req.body;
    const n = inputs.length;
    for (const row of inputs) for (const v of row) if (!Number.isFinite(v)) return reply.code(400).send({ error: 'bad-request', message: 'inputs must be finite numbers' });
    // rate limit: a token bucket of `rate` queries per second, at most one second's worth banked
    if (Number.isFinite(c.rate)) {
      const now = Date.now();
      c.tokens = Math.min(c.rate, c.tokens + ((now - c.last) / 1000) * c.rate);
      c.last = now;
      if (c.tokens < n) return reply.code(429).header('retry-after', String(Math.ceil((n - c.tokens) / c.rate))).send({ error: 'rate-limited', message: `at most ${c.rate} queries/s for ${c.id}` });
      c.tokens -= n;
    }
    if (c.api.ledger.queries + n > c.api.ledger.budget) return reply.code(429).send({ error: 'budget-exhausted', message: `${c.id} has ${c.api.ledger.budget - c.api.ledger.queries} of ${c.api.ledger.budget} queries left`, remaining: c.api.ledger.budget - c.api.ledger.queries });
    if (o.pow) {
      const proof = req.body.pow;
      if (!proof) return reply.code(402).send({ error: 'pow-required', message: 'solve a puzzle from POST /v1/challenge and send it as {pow: {stamp, counter}}' });
      const ch = challenges.get(proof.stamp);
      if (!ch) return reply.code(403).send({ error: 'pow-invalid', message: used.has(proof.stamp) ? 'this puzzle was already used' : 'unknown puzzle (not issued by this server)' });
      if (ch.client !== c.id) return reply.code(403).send({ error: 'pow-invalid', message: 'this puzzle was issued to another client' });
      if (ch.digest !== digestOf(inputs)) return reply.code(403).send({ error: 'pow-invalid', message: 'this puzzle is bound to other inputs' });
      const v = verify(ch, proof.counter);
      if (!v.ok) {
        if (v.why === 'expired') challenges.delete(proof.stamp);
        return reply.code(403).send({ error: 'pow-invalid', message: v.why === 'expired' ? 'the puzzle expired; ask for a new one' : v.why === 'malformed' ? 'malformed counter' : 'the counter does not solve the puzzle' });
      }
      challenges.delete(proof.stamp);
      used.add(proof.stamp);
    }
    const flat = new Float32Array(n * d);
    inputs.forEach((row, i) => flat.set(row, i * d));
    const x = tf.tensor(flat, [n, ...o.victim.inputShape]);
    try {
      const r = await c.api.query(x);
      const body: { probs?: number[][]; labels?: number[] } = {};
      if (r.probs) {
        const p = (await r.probs.data()) as Float32Array;
        const k = r.probs.shape[1];
        body.probs = Array.from({ length: n }, (_, i) => Array.from(p.subarray(i * k, (i + 1) * k)));
      }
      if (r.labels) body.labels = Array.from((await r.labels.data()) as Int32Array);
      tf.dispose([r.probs ?? [], r.labels ?? []]);
      served += n;
      c.served += n;
      const s = (performance.now() - t0) / 1000;
      const b = BUCKETS.findIndex((u) => s <= u);
      hist[b < 0 ? BUCKETS.length : b]++;
      audit({ client: c.id, n, status: 200, seconds: s });
      return body;
    } catch (e) {
      if (e instanceof BudgetExhaustedError) return reply.code(429).send({ error: 'budget-exhausted', message: e.message });
      throw e;
    } finally {
      x.dispose();
    }
  });

  app.setErrorHandler((err: { statusCode?: number; message: string; validation?: unknown }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : err.validation ? 400 : 500;
    void reply.code(status).send({ error: status === 413 ? 'too-large' : status === 500 ? 'internal' : 'bad-request', message: err.message });
  });
  return app;
}
