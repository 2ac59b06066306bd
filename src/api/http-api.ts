/**
 * A PredictionApi over HTTP (`mse serve`, or anything speaking its protocol): batches queries to the
 * server's maximum, solves the proof-of-work puzzle when the server asks for one (timing it into the
 * ledger's PoW seconds), and retries rate-limited calls with exponential backoff. Budget exhaustion
 * on the server surfaces as the same BudgetExhaustedError a local API throws, so attacks run unchanged.
 */
import { tf } from '../compute/backend.js';
import { solve } from '../defenses/pow/hashcash.js';
import { BudgetExhaustedError, MseError } from '../errors.js';
import { digestOf } from '../serve/digest.js';
import type { ApiInfo, ApiResponse, Ledger, PredictionApi } from './types.js';

interface RemoteInfo extends ApiInfo {
  pow: { required: boolean };
  maxBatch: number;
}

export class HttpPredictionApi implements PredictionApi {
  private readonly _ledger: Ledger;
  private constructor(
    private readonly base: string,
    readonly info: RemoteInfo,
    private readonly key: string | undefined,
    budget: number,
  ) {
    this._ledger = { queries: 0, budget, batches: 0, apiSeconds: 0, powSeconds: 0 };
  }

  static async connect(url: string, opts: { key?: string; budget?: number } = {}): Promise<HttpPredictionApi> {
    const base = url.replace(/\/+$/, '');
    let res: Response;
    try {
      res = await fetch(`${base}/v1/info`, { headers: opts.key ? { authorization: `Bearer ${opts.key}` } : {} });
    } catch (e) {
      throw new MseError('http', `cannot reach ${base}: ${(e as Error).message}`, 'is `mse serve` running there?');
    }
    if (!res.ok) throw new MseError('http', `${base}/v1/info answered ${res.status}`);
    return new HttpPredictionApi(base, (await res.json()) as RemoteInfo, opts.key, opts.budget ?? Infinity);
  }

  get ledger(): Readonly<Ledger> {
    return this._ledger;
  }

  private async post(path: string, body: unknown): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    return fetch(`${this.base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  }

  async query(x: tf.Tensor): Promise<ApiResponse> {
    const n = x.shape[0];
    const l = this._ledger;
    if (l.queries + n > l.budget) throw new BudgetExhaustedError(l.queries, l.budget, n);
    const d = x.size / n;
    const flat = (await x.data()) as Float32Array;
    const probs: number[] = [];
    const labels: number[] = [];
    for (let s = 0; s < n; s += this.info.maxBatch) {
      const m = Math.min(this.info.maxBatch, n - s);
      const inputs = Array.from({ length: m }, (_, i) => Array.from(flat.subarray((s + i) * d, (s + i + 1) * d)));
      const out = await this.predict(inputs, l.queries + s);
      if (out.probs) for (const row of out.probs) probs.push(...row);
      if (out.labels) labels.push(...out.labels);
    }
    l.queries += n;
    l.batches += 1;
    const k = this.info.numClasses;
    return {
      ...(probs.length ? { probs: tf.tensor2d(probs, [n, k]) } : {}),
      ...(labels.length ? { labels: tf.tensor1d(labels, 'int32') } : {}),
    };
  }

  private async predict(inputs: number[][], answered: number): Promise<{ probs?: number[][]; labels?: number[] }> {
    for (let attempt = 0; ; attempt++) {
      let pow: { stamp: string; counter: string } | undefined;
      if (this.info.pow.required) {
        const t0 = performance.now();
        const ch = await this.post('/v1/challenge', { digest: digestOf(inputs) });
        if (!ch.ok) throw new MseError('http', `challenge refused: ${ch.status} ${await ch.text()}`);
        const { stamp, bits } = (await ch.json()) as { stamp: string; bits: number };
        pow = { stamp, counter: solve({ stamp, bits }).counter };
        this._ledger.powSeconds += (performance.now() - t0) / 1000;
      }
      const t1 = performance.now();
      const res = await this.post('/v1/predict', pow ? { inputs, pow } : { inputs });
      this._ledger.apiSeconds += (performance.now() - t1) / 1000;
      if (res.ok) return (await res.json()) as { probs?: number[][]; labels?: number[] };
      const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string; remaining?: number };
      if (res.status === 429 && body.error === 'budget-exhausted') throw new BudgetExhaustedError(answered, answered + (body.remaining ?? 0), inputs.length);
      if (res.status === 429 && attempt < 8) {
        const retry = Number(res.headers.get('retry-after') ?? 0);
        await new Promise((r) => setTimeout(r, Math.max(retry * 1000, 50 * 2 ** attempt)));
        continue;
      }
      throw new MseError('http', `predict answered ${res.status}: ${body.message ?? body.error ?? 'no message'}`);
    }
  }
}
