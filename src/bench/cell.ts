/**
 * One bench cell, end to end: dataset → victim (cached) → defended PredictionApi → attack →
 * metrics → ResultRow. The attack sees only the API and the attacker's knowledge; the metrics see
 * everything. Evaluation queries (test set, uniform set, defender utility) never count against the
 * attacker's budget: they go to separate, unmetered APIs.
 */
import { activeBackend, tf } from '../compute/backend.js';
import { Rng } from '../compute/rng.js';
import { LocalPredictionApi } from '../api/local-api.js';
import type { ApiResponse, Defense } from '../api/types.js';
import { parseAttack } from '../attacks/registry.js';
import { AttackNotApplicable, type AttackerKnowledge } from '../attacks/types.js';
import { loadDataset } from '../data/registry.js';
import type { ResolveOptions } from '../data/resolve.js';
import type { Dataset } from '../data/types.js';
import { parseDefense } from '../defenses/registry.js';
import { fidelity, probsOf, testAccuracy, uniformInputs } from '../metrics/agreement.js';
import { paramError } from '../metrics/param-error.js';
import { getVictim } from '../models/victim.js';
import { parseModelSpec } from '../models/zoo.js';
import { formatParams } from '../params.js';
import { mseVersion } from './manifest.js';
import { cellId, makeRow, type CellSpec, type ResultRow } from './result-row.js';

export interface CellInput {
  dataset: string;
  victim: string;
  defenses: string[];
  attack: string;
  budget: number;
  seed: number;
  runId: string;
  data?: ResolveOptions;
  /** |U| for R_unif (Tramèr: 10,000) */
  unifSize?: number;
  onProgress?: (phase: string) => void;
}

export interface CellOutput {
  row: ResultRow;
  dataset: Dataset;
  notes: string[];
}

export function cellSpecOf(c: CellInput): CellSpec {
  const defs = c.defenses.length ? c.defenses.map(parseDefense) : [parseDefense('none')];
  const attack = parseAttack(c.attack);
  const victim = parseModelSpec(c.victim);
  return {
    dataset: c.dataset,
    victim: `${victim.kind}${Object.keys(victim.params).length ? `:${formatParams(victim.params)}` : ''}`,
    defense: defs.map((d) => d.name).join('+'),
    defense_params: defs.map((d) => formatParams(d.params)).join('+'),
    attack: attack.name,
    attack_params: formatParams(attack.params),
    budget: c.budget,
    seed: c.seed,
  };
}

export async function runCell(c: CellInput): Promise<CellOutput> {
  const t0 = performance.now();
  const spec = cellSpecOf(c);
  const ds = await loadDataset(c.dataset, c.data);
  const victimSpec = parseModelSpec(c.victim);
  c.onProgress?.('victim');
  const v = await getVictim(ds, victimSpec, c.seed);
  const rng = new Rng(c.seed);
  const defenses: Defense[] = (c.defenses.length ? c.defenses : ['none']).map(parseDefense);
  // tree victims are served like BigML: each answer carries the leaf's identifier
  const api = new LocalPredictionApi(v.model, defenses, { rng: rng.fork(), domain: ds.domain, budget: c.budget, revealLeaves: victimSpec.kind === 'tree' });
  const know: AttackerKnowledge = { inputShape: ds.inputShape, numClasses: ds.numClasses, domain: ds.domain, family: { kind: victimSpec.kind, hidden: victimSpec.params.hidden as number[] | undefined } };
  const base = { cell_id: cellId(spec), run_id: c.runId, mse_version: mseVersion(), backend: activeBackend().label, ...spec, dataset_variant: ds.variant, victim_acc: v.testAcc };
  const notes: string[] = [];
  const d = ds.inputShape.reduce((a, b) => a * b, 1);

  // defender utility on the test set, through an unmetered copy of the defended API
  c.onProgress?.('utility');
  const utility = await defendedUtility(v.model, defenses, ds, rng.fork());

  c.onProgress?.('attack');
  let status = 'ok';
  let result;
  const cpuAttack0 = process.cpuUsage();
  try {
    result = await parseAttack(c.attack).run(api, know, rng.fork());
    notes.push(...result.notes);
    if (result.budgetExhausted) status = 'ok-budget-exhausted';
  } catch (err) {
    if (!(err instanceof AttackNotApplicable)) throw err;
    status = `not-applicable: ${err.message}`;
  }
  const attackCpu = process.cpuUsage(cpuAttack0);
  let metrics = {};
  if (result) {
    c.onProgress?.('metrics');
    const unifN = c.unifSize ?? 10000;
    const unif = uniformInputs(new Rng(c.seed ^ 0x5eed), unifN, d, ds.domain);
    const pe = paramError(v.model, result.surrogate);
    metrics = {
      surrogate_acc: await testAccuracy(result.surrogate, ds.test.x, ds.test.y),
      agreement_test: (await fidelity(v.model, result.surrogate, ds.test.x, ds.test.n)).agreement,
      agreement_unif: (await fidelity(v.model, result.surrogate, unif, unifN)).agreement,
      param_error: pe ? pe.relL2 : undefined,
    };
    result.surrogate.dispose();
  }
  const row = makeRow({
    ...base,
    queries: api.ledger.queries,
    ...metrics,
    defended_acc: utility.acc,
    perturbation_l1: utility.l1,
    perturbation_kl: utility.kl,
    // the attacker's own compute: CPU seconds during the attack, less the time the API spent answering
    attacker_cpu_s: Math.max(0, (attackCpu.user + attackCpu.system) / 1e6 - api.ledger.apiSeconds),
    pow_s: api.ledger.powSeconds,
    wall_s: (performance.now() - t0) / 1000,
    status,
  });
  v.model.dispose();
  return { row, dataset: ds, notes };
}

/** Top-1 accuracy of what the defended API returns, and its mean L1 and KL(y‖ỹ) distance from the victim's posteriors. */
async function defendedUtility(victim: import('../models/model.js').Model, defenses: Defense[], ds: Dataset, rng: Rng): Promise<{ acc: number; l1?: number; kl?: number }> {
  const api = new LocalPredictionApi(victim, defenses, { rng, domain: ds.domain });
  const k = ds.numClasses;
  const n = ds.test.n;
  const d = ds.inputShape.reduce((a, b) => a * b, 1);
  const y = await probsOf(victim, ds.test.x, n);
  let correct = 0;
  let l1 = 0;
  let kl = 0;
  let probsSeen = true;
  const batch = 1024;
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const xt = tf.tensor(ds.test.x.subarray(s * d, (s + m) * d), [m, ...ds.inputShape]);
    let r: ApiResponse = {};
    try {
      r = await api.query(xt);
      const labels = r.labels ? ((await r.labels.data()) as Int32Array) : undefined;
      const p = r.probs ? ((await r.probs.data()) as Float32Array) : undefined;
      if (!p) probsSeen = false;
      for (let i = 0; i < m; i++) {
        let top = labels ? labels[i] : 0;
        if (p) {
          for (let j = 1; j < k; j++) if (p[i * k + j] > p[i * k + top]) top = j;
          for (let j = 0; j < k; j++) {
            const a = y[(s + i) * k + j];
            const b = p[i * k + j];
            l1 += Math.abs(a - b);
            if (a > 0) kl += a * Math.log(a / Math.max(b, 1e-12));
          }
        }
        if (top === ds.test.y[s + i]) correct++;
      }
    } finally {
      tf.dispose([xt, r.probs ?? [], r.labels ?? []]);
    }
  }
  return { acc: correct / n, l1: probsSeen ? l1 / n : undefined, kl: probsSeen ? kl / n : undefined };
}
