/**
 * DAWN: Dynamic Adversarial Watermarking of Neural Networks (Szyller, Atli, Marchal, Asokan, ACM MM
 * 2021). The API cannot stop a thief, but it can make the stolen copy carry proof of its origin: a
 * keyed filter — HMAC-SHA256 of the query under the defender's secret key — picks a fraction `rate`
 * of the inputs (§4.1; the paper's default 0.5%) and answers them with a wrong label, always the same
 * one for the same input (so repeating a query does not reveal the truth); the API records them per
 * client. A surrogate trained on the answers learns some of the wrong labels; one trained elsewhere
 * does not. Ownership verification (§4.2): the surrogate's agreement with the recorded wrong labels,
 * `watermark_acc`, against what a model not derived from this API would reach by chance.
 * With probabilities, the watermark answer swaps the top class's probability with the wrong
 * class's, so the answer keeps its shape and its top-1 is wrong. Honest users pay it too: about
 * `rate` of their answers are wrong (it shows in `defended_acc`).
 * Bounded state: at most `clients` clients' records (least recently seen evicted first), each at
 * most `marks` watermarks (the first ones kept).
 */
import { createHmac } from 'node:crypto';
import { tf } from '../compute/backend.js';
import type { Probs, QueryCtx } from '../api/types.js';
import { ClientStates } from './client-states.js';
import { defineDefense } from './define.js';

/** A client's watermarks: the inputs the filter chose and the wrong labels they were given. */
export interface Watermarks {
  x: Float32Array;
  labels: Int32Array;
  /** each watermark's place in the client's stream (queries answered before it) */
  at: Int32Array;
  n: number;
}

interface Record {
  d: number;
  x: Float32Array;
  labels: Int32Array;
  at: Int32Array;
  n: number;
}

export const dawn = defineDefense({
  name: 'dawn',
  describe:
    "DAWN watermarks: a keyed filter answers a fraction of queries with a fixed wrong label and records them per client, to prove a copy's origin (Szyller 2021)",
  params: {
    rate: {
      type: 'number',
      min: 0,
      max: 0.5,
      default: 0.005,
      help: 'share of queries the keyed filter watermarks (the paper: 0.5%)',
    },
    clients: {
      type: 'int',
      min: 1,
      max: 1_000_000,
      default: 64,
      help: 'clients whose watermarks are kept; the least recently seen is evicted first',
    },
    marks: {
      type: 'int',
      min: 1,
      max: 10_000_000,
      default: 10_000,
      help: 'watermarks kept per client (the first ones)',
    },
  },
  // the defender's secret key, drawn once per cell (per server) from its setup stream
  prepare: (_p, env) => {
    const bytes = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) bytes[i] = env.rng.int(256);
    return { key: bytes };
  },
  stages: ['output'],
  create: (p, prepared: { key: Buffer }) => {
    const records = new ClientStates<Record>(p.clients);
    const recordOf = (id: string, d: number): Record =>
      records.use(id, () => ({
        d,
        x: new Float32Array(d * 16),
        labels: new Int32Array(16),
        at: new Int32Array(16),
        n: 0,
      }));
    const keep = (r: Record, row: Float32Array, label: number, at: number) => {
      if (r.n >= p.marks) return;
      const d = row.length;
      if ((r.n + 1) * d > r.x.length) {
        const x = new Float32Array(Math.min(p.marks, r.n * 2) * d);
        x.set(r.x.subarray(0, r.n * d));
        r.x = x;
        const labels = new Int32Array(Math.min(p.marks, r.n * 2));
        labels.set(r.labels.subarray(0, r.n));
        r.labels = labels;
        const ats = new Int32Array(labels.length);
        ats.set(r.at.subarray(0, r.n));
        r.at = ats;
      }
      r.x.set(row, r.n * d);
      r.at[r.n] = at;
      r.labels[r.n++] = label;
    };
    return {
      output(probs: Probs, ctx: QueryCtx) {
        if (!ctx.input || p.rate === 0) return { probs: probs.clone() };
        const n = probs.shape[0];
        const k = probs.shape[1];
        const x = ctx.input.dataSync() as Float32Array;
        const d = x.length / n;
        const out = Float32Array.from(probs.dataSync() as Float32Array);
        let rec: Record | undefined;
        for (let i = 0; i < n; i++) {
          const row = x.subarray(i * d, (i + 1) * d);
          const h = createHmac('sha256', prepared.key)
            .update(Buffer.from(row.buffer, row.byteOffset, row.byteLength))
            .digest();
          // the first 6 bytes as a uniform draw in [0, 1): is this input a watermark?
          if (h.readUIntBE(0, 6) / 2 ** 48 >= p.rate) continue;
          let top = 0;
          for (let j = 1; j < k; j++) if (out[i * k + j] > out[i * k + top]) top = j;
          // a wrong class fixed by the key and the input (never the top one)
          const wrong = (top + 1 + (h.readUInt32BE(6) % (k - 1))) % k;
          const a = out[i * k + top];
          out[i * k + top] = out[i * k + wrong];
          out[i * k + wrong] = a;
          rec ??= recordOf(ctx.clientId, d);
          keep(rec, row, wrong, ctx.answered + i);
        }
        return { probs: tf.tensor2d(out, [n, k]) as Probs };
      },
      /** the watermarks recorded for a client (copies), or none */
      watermarksOf(clientId: string): Watermarks | undefined {
        const r = records.peek(clientId);
        if (!r || r.n === 0) return undefined;
        return { x: r.x.slice(0, r.n * r.d), labels: r.labels.slice(0, r.n), at: r.at.slice(0, r.n), n: r.n };
      },
      trackedClients: () => records.size,
    };
  },
});
