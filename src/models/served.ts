/**
 * The model behind a model server, with no local copy (`mse attack --target URL --protocol
 * kserve-v2|tf-serving` without `-v`): the victim is measured where it runs. Its accuracy, the
 * stolen model's agreement with it and the honest user's view are all read from the server's own
 * answers, through an unmetered connection of the evaluator's — apart from the attacker's, whose
 * budget counts only the attack's queries. Each distinct input is asked once (answers are kept by
 * the input's hash), and the row's notes say how many the server answered for the measuring.
 */
import { createHash } from 'node:crypto';
import { tf } from '../compute/backend.js';
import type { Dataset } from '../data/types.js';
import { MseError, UsageError } from '../errors.js';
import { ModelServerApi, type ModelServerOptions } from '../api/model-server-api.js';
import { evaluate, type Victim } from './victim.js';
import type { Model, Probs, SerializedModel } from './model.js';

export class ServedModel implements Model {
  readonly kind = 'served';
  /** inputs the server answered for measuring (each distinct input once) */
  asked = 0;
  private readonly answers = new Map<string, Float32Array>();
  private labels = false;

  constructor(
    private readonly api: ModelServerApi,
    readonly inputShape: number[],
    readonly numClasses: number,
  ) {}

  /** What the user should know about how the server's answers are read (which of several outputs). */
  get notes(): readonly string[] {
    return this.api.notes;
  }

  /** Whether the server answered labels (declared with --target-output labels, or one column of class indices). */
  get labelsOnly(): boolean {
    return this.labels || this.api.info.reveals === 'labels';
  }

  predict(): Probs {
    throw new MseError('internal', 'a served model answers asynchronously: call predictProbs');
  }

  async predictAsync(x: tf.Tensor): Promise<Probs> {
    const n = x.shape[0];
    const rows = (await x.data()) as Float32Array;
    const d = rows.length / n;
    const k = this.numClasses;
    const keys = Array.from({ length: n }, (_, i) =>
      createHash('sha1')
        .update(new Uint8Array(rows.buffer, rows.byteOffset + i * d * 4, d * 4))
        .digest('base64'),
    );
    const missing = [...new Set(keys.filter((key) => !this.answers.has(key)))];
    if (missing.length) {
      const first = new Map(keys.map((key, i) => [key, i] as const).reverse());
      const xs = new Float32Array(missing.length * d);
      missing.forEach((key, j) => xs.set(rows.subarray(first.get(key)! * d, (first.get(key)! + 1) * d), j * d));
      const input = tf.tensor(xs, [missing.length, ...this.inputShape]);
      let got: Float32Array;
      try {
        const resp = await this.api.query(input);
        try {
          if (resp.probs) got = (await resp.probs.data()) as Float32Array;
          else if (resp.labels) {
            this.labels = true;
            const labels = await resp.labels.data();
            got = new Float32Array(missing.length * k);
            labels.forEach((c, j) => (got[j * k + c] = 1));
          } else throw new MseError('internal', 'the server answered neither probabilities nor labels');
        } finally {
          tf.dispose([resp.probs ?? [], resp.labels ?? []]);
        }
      } finally {
        input.dispose();
      }
      this.asked += missing.length;
      missing.forEach((key, j) => this.answers.set(key, got.slice(j * k, (j + 1) * k)));
    }
    const out = new Float32Array(n * k);
    keys.forEach((key, i) => out.set(this.answers.get(key)!, i * k));
    return tf.tensor2d(out, [n, k]);
  }

  serialize(): SerializedModel {
    throw new UsageError('the served model has no local copy to save');
  }

  dispose(): void {
    this.answers.clear();
  }
}

/** The served model as the cell's victim: connected (unmetered) and measured on the test set. */
export async function servedVictim(
  target: Omit<ModelServerOptions, 'budget' | 'inputShape' | 'numClasses' | 'domain'>,
  ds: Dataset,
): Promise<Victim & { model: ServedModel }> {
  const t0 = performance.now();
  const api = new ModelServerApi({
    ...target,
    inputShape: ds.inputShape,
    numClasses: ds.numClasses,
    domain: ds.domain,
  });
  const model = new ServedModel(api, ds.inputShape, ds.numClasses);
  try {
    const testAcc = await evaluate(model, ds);
    return { model, testAcc, trainSeconds: (performance.now() - t0) / 1000, cached: false, key: 'served' };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
